"""Hardened RHEL 9 hosts (issue 10): what build-venv and the scriptlets do about noexec temp
directories, umask 077, fapolicyd and SELinux, checked on the rendered scripts.

The installed behaviour is proven by tests/test_rpm_install.py (a hardened installroot, the
real fapolicyd-cli) and the e2e (a booted hardened host); these tests pin the pieces that
decide it and run what can run here: the shell syntax, the smoke-import program.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from builder.pipeline import SMOKE_IMPORTS, smoke_imports, smoke_optional
from builder.pydeps.lockfile import Lock
from builder.rpm import scriptlets
from builder.rpm.spec import render_build_venv

REPO = Path(__file__).resolve().parents[1]
LOCK = Lock.read(REPO / "locks" / "bigdata-prod.txt")


@pytest.fixture(scope="module")
def build_venv(example_site) -> str:
    return render_build_venv(example_site, smoke_imports(LOCK), smoke_optional(LOCK))


def _code(script: str) -> str:
    """The script without comments, so a word in an explanation never passes for a command."""
    return "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))


def _heredoc(script: str, after: str) -> str:
    start = script.index("<<'PY'", script.index(after))
    body = script[script.index("\n", start) + 1:]
    return body[:body.index("\nPY\n")]


@pytest.mark.skipif(not shutil.which("dash"), reason="needs dash (RHEL runs scriptlets with bash; dash is stricter)")
def test_build_venv_is_posix_sh(build_venv, tmp_path):
    script = tmp_path / "build-venv"
    script.write_text(build_venv)
    for shell in ("dash", "bash"):
        proc = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, (shell, proc.stderr)


def test_nothing_runs_or_lives_in_the_temp_directories(build_venv):
    code = _code(build_venv)
    assert not re.search(r'(?<!"\$WORK)/(var/)?tmp\b', code) and "mktemp" not in code
    assert "UV_NO_CACHE" not in code  # uv's throwaway cache would be in TMPDIR, i.e. /tmp
    # uv, its cache and TMPDIR are in one work directory on the venvs' filesystem.
    assert 'WORK="$VENVS/.build-$ID"' in code
    assert 'UV="$WORK/bin/uv"' in code
    assert 'UV_CACHE_DIR="$WORK/cache" TMPDIR="$WORK/tmp"' in code
    assert 'mkdir -m 0700 "$WORK"' in code              # root's only
    assert "trap cleanup EXIT" in code and 'rm -rf "$WORK"; WORK=' in code
    # Files hard-linked from a cache on the same filesystem: the venv's size counts once.
    assert "--link-mode hardlink" in code


def test_umask_is_set_before_anything_is_created(build_venv):
    code = _code(build_venv)
    first_write = min(code.index(w) for w in ('mkdir -p "$LOG_DIR"', ">>\"$LOG\"", "mkdir -m"))
    assert code.index("umask 022") < first_write


def test_every_scriptlet_that_creates_files_sets_its_umask(example_site):
    bodies = {
        "pre": scriptlets.base_pre(example_site, 1000),
        "post": scriptlets.base_post(example_site),
        "postun": scriptlets.base_postun(example_site),
        "units_post": scriptlets.units_post(["airflow-scheduler.service"]),
    }
    for name, body in bodies.items():
        assert body.startswith("umask 022\n"), name


def test_pre_counts_the_work_space_beside_the_venvs(example_site):
    body = scriptlets.base_pre(example_site, 1_500_000)
    assert "venv_kb=1500000\n" in body and f"work_kb={scriptlets.WORK_KB}\n" in body
    assert "need_kb=$((venv_kb + work_kb))" in body
    assert 'if [ "$avail_kb" -lt "$need_kb" ]' in body
    assert scriptlets.WORK_KB >= 64 * 1024  # uv's binary alone is ~40 MiB
    # It measures the venvs' filesystem, where the work space now is.
    assert body.rstrip().count("/opt/airflow/venvs)") == 1


def test_smoke_imports_every_native_module_of_the_lock_as_the_airflow_user(build_venv):
    required = smoke_imports(LOCK)
    for mod in ("airflow", "ldap", "gssapi.raw", "krb5", "kerberos", "psycopg2",
                "cryptography.hazmat.bindings._rust", "_cffi_backend", "pydantic_core"):
        assert mod in required, mod
    assert "thrift=thrift.protocol.fastbinary" in smoke_optional(LOCK)
    assert f'SMOKE_IMPORTS="{" ".join(required)}"' in build_venv
    code = _code(build_venv)
    # As the airflow user with its groups, none of root's environment, from /.
    assert "setpriv --reuid=airflow --regid=airflow --init-groups" in code
    assert re.search(r'smoke=\$\(as_airflow "\$TARGET/bin/python" -I -B - "\$SMOKE_IMPORTS" "\$SMOKE_OPTIONAL"', code)
    # fapolicyd must trust the files before the airflow user tries them; the venv is marked
    # complete only after the smoke test.
    assert code.index('fapolicyd_trust "$TARGET"') < code.index("smoke=$(as_airflow")
    assert code.index("smoke=$(as_airflow") < code.index('echo "$ID" >"$TARGET/.airflow-prod-complete"')


def test_lock_names_map_to_distributions_that_exist_in_the_lock_format():
    # Keys are normalised distribution names as the lock writes them (lowercase, dashes).
    assert all(k == k.lower() and "_" not in k for k in SMOKE_IMPORTS)


def test_the_smoke_program_fails_on_a_missing_module_and_warns_on_a_fallback(build_venv, tmp_path):
    program = _heredoc(build_venv, "smoke=$(as_airflow")
    ok = subprocess.run([sys.executable, "-", "json sqlite3", "thrift=thrift.protocol.no_such_ext"],
                        input=program, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "imported 2 modules as the airflow user" in ok.stdout
    assert re.search(r"^warning: thrift has no compiled extension thrift\.protocol\.no_such_ext", ok.stdout, re.M)
    bad = subprocess.run([sys.executable, "-", "json no_such_module_anywhere", ""],
                         input=program, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "cannot import no_such_module_anywhere (ModuleNotFoundError" in bad.stdout


def test_fapolicyd_trusts_exactly_the_venv_and_forgets_it_with_the_venv(build_venv, example_site):
    code = _code(build_venv)
    assert "FAPOLICYD_CLI=/usr/sbin/fapolicyd-cli" in code and "TRUST_FILE=airflow-prod" in code
    assert '[ -x "$FAPOLICYD_CLI" ] || return 0' in code          # only where fapolicyd is installed
    assert '"$FAPOLICYD_CLI" --file add "$1/" --trust-file "$TRUST_FILE"' in code
    assert '"$FAPOLICYD_CLI" --file delete "$1/" --trust-file "$TRUST_FILE"' in code
    assert '"$FAPOLICYD_CLI" --update' in code
    # Every wait on the daemon is bounded: --dump-db overlapping a reload can spin forever.
    assert 'until timeout 10 "$FAPOLICYD_CLI" --dump-db' in code and '--dump-db 2>/dev/null | grep' in code
    assert code.count('-ge 600 ]') == 2                                  # 60 s, then go on and say so
    # An old venv loses its trust before it is removed; a failed smoke test too.
    assert code.index('fapolicyd_untrust "$dir"') < code.index('rm -rf "$dir"')
    postun = scriptlets.base_postun(example_site)
    erase = postun[postun.index("if [ $1 -eq 0 ]"):]
    assert "rm -f /etc/fapolicyd/trust.d/airflow-prod" in erase
    assert "/usr/sbin/fapolicyd-cli --update" in erase


def test_selinux_relabels_the_new_venv_before_it_serves_and_only_what_we_made_after(build_venv, example_site):
    code = _code(build_venv)
    assert "/usr/sbin/selinuxenabled && [ -x /usr/sbin/restorecon ]" in code
    assert '/usr/sbin/restorecon -R "$@"' in code
    assert code.index('selinux_relabel "$TARGET"') < code.index('mv -Tf "$VENV_LINK.new" "$VENV_LINK"')
    post = scriptlets.base_post(example_site)
    # After a successful build only: our directories themselves, never walking the logs or a
    # DAG folder that may be an NFS mount; recursively only the venvs.
    dirs = post.index("/usr/sbin/restorecon /opt/airflow /opt/airflow/dags /opt/airflow/plugins "
                      "/opt/airflow/logs /opt/airflow/security /etc/airflow || :")
    venvs = post.index("/usr/sbin/restorecon -R /opt/airflow/venvs || :")
    assert post.index("THE AIRFLOW VIRTUALENV WAS NOT BUILT") < dirs < venvs
    assert post.count("restorecon -R") == 1


def test_venvs_outside_opt_and_usr_get_opt_like_selinux_labels(example_site):
    """/opt/airflow (the default): nothing to add. /srv/airflow: usr_t and bin_t rules before the
    build (or a loud stop without semanage), removed on erase."""
    from builder.site import site_from_data

    assert scriptlets.selinux_fcontext_rules(example_site) == []
    post = scriptlets.base_post(example_site)
    assert "semanage" not in post
    data = example_site.model_dump(mode="json", exclude_none=True, by_alias=True)
    data["paths"] = {"home": "/srv/airflow", "config": "/etc/airflow"}
    srv = site_from_data(data)
    assert scriptlets.selinux_fcontext_rules(srv) == [
        ("usr_t", "/srv/airflow/venvs(/.*)?"), ("bin_t", "/srv/airflow/venvs/[^/]+/bin(/.*)?")]
    post = scriptlets.base_post(srv)
    assert "/usr/sbin/semanage fcontext -a -t usr_t '/srv/airflow/venvs(/.*)?'" in post
    assert post.index("semanage fcontext -a") < post.index("if ! /usr/libexec/airflow-prod/build-venv")
    assert "units would fail with 203/EXEC" in post and "    exit 1\n" in post
    postun = scriptlets.base_postun(srv)
    assert "/usr/sbin/semanage fcontext -d '/srv/airflow/venvs(/.*)?'" in postun
    for body in (post, postun):
        proc = subprocess.run(["sh", "-n"], input=body, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_the_base_package_requires_the_tools_its_scripts_run(example_site):
    """build-venv (run by %post) switches to the airflow user with setpriv and asks getent; the
    airflow wrapper runs commands as airflow with runuser. On RHEL 9 setpriv and runuser are
    util-linux's, getent glibc-common's: a minimal or container-built host may lack them."""
    from builder.render import render_site
    from builder.rpm import plan as P
    from builder.rpm.spec import render_build_venv, render_spec

    inputs = P.SiteInputs("3.1.4-1.1.abc.el9", 1000, ("airflow",))
    script = render_build_venv(example_site, inputs.smoke_imports)
    rendered = render_site(example_site)
    plan = P.site_plan(example_site, rendered, inputs, 1765352100, script)
    base = next(p for p in plan.packages if p.name == "airflow-prod")
    wrapper = next(f.text for f in rendered.files if f.dest == "/usr/bin/airflow")
    assert "setpriv --reuid=airflow" in _code(script) and "getent passwd airflow" in _code(script)
    assert '"/usr/sbin/runuser"' in wrapper
    assert {"util-linux", "glibc-common", "coreutils"} <= set(base.requires_post)
    assert "util-linux" in base.requires
    assert "/usr/bin/airflow" in {e.dest for e in base.entries}
    spec = render_spec(plan)
    section = spec[spec.index("Name:"):spec.index("%package")]
    assert re.search(r"^Requires\(post\):\s+util-linux$", section, re.M), section
