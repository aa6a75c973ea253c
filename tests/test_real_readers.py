"""Every rendered file, read by the program that reads it on the target host, for sites
whose values are full of characters that mean something to those programs.

- airflow.cfg: Airflow 3.1.4's own AirflowConfigParser (apache-airflow-core at the
  lock's pins, in a venv this test session makes), also under Hypothesis;
- the spec: `rpmspec -P` expands nothing of the site's;
- units: `systemd-analyze verify`;
- tmpfiles.d / sysusers.d: `systemd-tmpfiles --create` and `systemd-sysusers` in a root;
- the env files by systemd itself: tests/test_target_host.py (booted host).
"""

from __future__ import annotations

import copy
import json
import os
import pwd
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import readers
from builder.pydeps.lockfile import pinned_versions
from builder.render import render_site
from builder.rpm import plan as P
from builder.rpm.spec import render_build_venv, render_spec
from builder.site import Site, site_from_data
from builder.check.units import verify_units
from support.sites import REPO
from test_hostile_values import ACCEPTED, EXAMPLE_DATA, PRINTABLE, STRING_FIELDS

LOCK = REPO / "locks" / "bigdata-prod.txt"

READER = r"""
import json, sys
from airflow.configuration import AirflowConfigParser
for line in sys.stdin:
    path = json.loads(line)
    parser = AirflowConfigParser()
    try:
        parser.read(path)
        seen = {s: {o: parser.get(s, o) for o in parser._sections[s]} for s in parser.sections()}
        print(json.dumps({"options": seen}), flush=True)
    except Exception as exc:  # reported to the test, which fails with it
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
"""


def accepted_sites() -> list[tuple[str, Site]]:
    out = [("example", site_from_data(copy.deepcopy(EXAMPLE_DATA)))]
    for field, value in ACCEPTED:
        data = copy.deepcopy(EXAMPLE_DATA)
        STRING_FIELDS[field](data, value)
        if field == "api.host":
            data["tls"]["dns_names"] = data["tls"]["dns_names"][1:]
            data["tls"]["ip_addresses"].append(value)
        out.append((f"{field}={value!r}"[:50], site_from_data(data)))
    return out


SITES = accepted_sites()


# --- Airflow's own parser -------------------------------------------------------------------

class AirflowReader:
    """One long-lived Python in a venv with apache-airflow-core: cfg path in, options out."""

    def __init__(self, python: Path, home: Path) -> None:
        env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(home), "PYTHONUTF8": "1", **readers.CANARY_ENV}
        self.proc = subprocess.Popen([str(python), "-c", READER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)

    def read(self, path: Path) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(str(path)) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        assert "error" not in answer, f"Airflow cannot read {path}: {answer['error']}"
        return answer["options"]

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def airflow_reader(tmp_path_factory):
    """apache-airflow-core at the lock's versions (from PyPI or uv's cache)."""
    base = tmp_path_factory.mktemp("airflow-core")
    constraints = base / "constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in pinned_versions(LOCK).items()))
    uv = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "uv"
    uv = uv if uv.exists() else REPO / ".venv" / "bin" / "uv"
    # The host's uv/pip configuration stays out; its CA settings (a TLS-inspecting proxy) stay in.
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "UV_NO_CONFIG": "1",
             **{k: v for k, v in os.environ.items() if k in ("SSL_CERT_FILE", "SSL_CERT_DIR")}}
    subprocess.run([str(uv), "venv", "-q", "-p", str(REPO / ".venv" / "bin" / "python"), str(base / "venv")],
                   check=True, env=clean, timeout=300)
    version = pinned_versions(LOCK)["apache-airflow-core"]
    subprocess.run([str(uv), "pip", "install", "-q", "-p", str(base / "venv" / "bin" / "python"),
                    f"apache-airflow-core=={version}", "-c", str(constraints)],
                   check=True, env=clean, timeout=900)
    home = base / "home"
    home.mkdir()
    reader = AirflowReader(base / "venv" / "bin" / "python", home)
    yield reader
    reader.close()


@pytest.mark.network
@pytest.mark.integration
@pytest.mark.parametrize("name,site", SITES, ids=[n for n, _ in SITES])
def test_airflow_reads_every_option_as_meant(name, site, airflow_reader, tmp_path):
    files = {f.dest: f.text for f in render_site(site).files}
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text(files[f"{site.paths.config}/airflow.cfg"], encoding="utf-8")
    assert airflow_reader.read(cfg) == readers.airflow_cfg_intent(site)


@pytest.mark.network
@pytest.mark.integration
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.lists(st.sampled_from(PRINTABLE), min_size=1, max_size=6).map("".join),
       option=st.sampled_from(["logging.log_format", "api.instance_name", "webserver.x"]))
def test_airflow_reads_drawn_values_as_meant(value, option, airflow_reader, tmp_path):
    """Drawn printable values that `bundle check` accepts reach Airflow unchanged (and the
    mirror in tests/support/readers.py, which the fast property test uses, agrees with Airflow)."""
    data = copy.deepcopy(EXAMPLE_DATA)
    STRING_FIELDS["airflow_cfg.logging.log_format" if option == "logging.log_format" else
                  "api.instance_name" if option == "api.instance_name" else "airflow_cfg.webserver.x"](data, value)
    try:
        site = site_from_data(data)
    except Exception:
        return  # refused: the property test covers how
    text = {f.dest: f.text for f in render_site(site).files}["/etc/airflow/airflow.cfg"]
    cfg = tmp_path / f"drawn-{abs(hash(value))}.cfg"
    cfg.write_text(text, encoding="utf-8")
    seen = airflow_reader.read(cfg)
    assert seen == readers.airflow_cfg_intent(site) == readers.airflow_cfg_reads(text)


# --- rpm -----------------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("name,site", SITES, ids=[n for n, _ in SITES])
def test_rpmspec_expands_nothing_of_the_site(name, site, tmp_path):
    canary = tmp_path / "ran"
    data = site.model_dump(mode="json", exclude_none=True)
    data["site"]["description"] = f"{site.site.description} %(touch {canary}) %{{lua:os.exit(3)}} %{{_prefix}} 100%"
    site = site_from_data(data)
    inputs = P.SiteInputs("3.1.4-1.1.abc.el9", 1000, ("airflow",))
    plan = P.site_plan(site, render_site(site), inputs, 1765352100, render_build_venv(site, inputs.smoke_imports))
    spec = tmp_path / "site.spec"
    spec.write_text(render_spec(plan))
    proc = subprocess.run(["rpmspec", "-P", str(spec)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not canary.exists(), "rpmspec ran a command from the site file"
    # Written literally (descriptions are re-wrapped), %(...) and %{...} unexpanded.
    assert "".join(site.site.description.split()) in "".join(proc.stdout.split())
    shipped = {e.dest for pkg in plan.packages for e in pkg.entries}
    listed = {line.rsplit(") ", 1)[1] for line in proc.stdout.splitlines() if line.startswith(("%dir %attr(", "%attr(", "%config(noreplace) %attr("))}
    assert listed == shipped


# --- systemd ---------------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("name,site", SITES, ids=[n for n, _ in SITES])
def test_systemd_analyze_verify_accepts_the_units(name, site):
    assert verify_units(site, render_site(site).files)


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-tmpfiles chowns to the airflow user")
@pytest.mark.parametrize("name,site", [s for s in SITES if s[0] == "example" or "paths.home" in s[0]],
                         ids=[n for n, _ in SITES if n == "example" or "paths.home" in n])
def test_sysusers_and_tmpfiles_create_what_the_site_names(name, site, tmp_path):
    files = {f.dest: f for f in render_site(site).files}
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name_ in ("passwd", "group", "shadow", "gshadow"):
        (root / "etc" / name_).write_text("root:x:0:0:root:/root:/bin/sh\n" if name_ == "passwd" else
                                          "root:x:0:\n" if name_ == "group" else "")
    sysusers = tmp_path / "sysusers.conf"
    sysusers.write_text(files["/usr/lib/sysusers.d/airflow-prod.conf"].text)
    subprocess.run(["systemd-sysusers", f"--root={root}", str(sysusers)], check=True, timeout=60)
    entry = next(line for line in (root / "etc" / "passwd").read_text().splitlines() if line.startswith("airflow:"))
    assert entry.split(":")[5:] == [site.paths.home, "/sbin/nologin"]
    # The worker's own user, in the airflow group as its primary group (no group of its own).
    worker = next(line for line in (root / "etc" / "passwd").read_text().splitlines()
                  if line.startswith("airflow-worker:"))
    assert worker.split(":")[3] == entry.split(":")[3] and worker.split(":")[2] != entry.split(":")[2]
    assert "airflow-worker" not in (root / "etc" / "group").read_text()
    tmpfiles = tmp_path / "tmpfiles.conf"
    tmpfiles.write_text(files["/usr/lib/tmpfiles.d/airflow-prod.conf"].text)
    proc = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create", str(tmpfiles)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    uid = int(entry.split(":")[2])
    gid = int(entry.split(":")[3])
    # DAGs, plugins and the security files are root's: no task changes them (docs/security.md).
    for path, mode, owner, group in [(site.paths.home, 0o755, 0, 0), (site.paths.dags, 0o755, 0, 0),
                                     (site.paths.plugins, 0o755, 0, 0), (site.paths.security, 0o750, 0, gid),
                                     (site.paths.logs, 0o770, uid, gid), (site.paths.config, 0o750, 0, gid)]:
        st_ = (root / path.lstrip("/")).stat()
        assert (oct(st_.st_mode & 0o7777), st_.st_uid, st_.st_gid) == (oct(mode), owner, group), path
    assert pwd.getpwuid(0).pw_name == "root"  # the host's own users were not touched
