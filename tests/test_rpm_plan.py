"""Unit tests of the RPM plans and spec rendering (pure; rpm only to compare versions)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from builder.pydeps.lockfile import Lock
from builder.rpm import plan as P
from builder.render.escape import rpm as _rpmesc


def vercmp(a: str, b: str) -> int:
    out = subprocess.run(["rpm", "--eval", f'%{{lua: print(rpm.vercmp("{a}", "{b}"))}}'],
                         capture_output=True, text=True, check=True).stdout.strip()
    return int(out)


@pytest.mark.skipif(not shutil.which("rpm"), reason="needs rpm")
def test_releases_order_by_stamp_then_serial_never_by_hash():
    t = 1765352100
    older = P.release_of(t, 7, "f" * 64)
    newer_stamp = P.release_of(t + 1, 1, "0" * 64)
    assert vercmp(newer_stamp, older) == 1
    same_stamp_next = P.release_of(t, 8, "0" * 64)
    assert vercmp(same_stamp_next, older) == 1
    assert P.release_of(t, 1, "ab" * 32) != P.release_of(t, 1, "cd" * 32)  # content differs: NVR differs
    assert P.release_of(t, 1, "ab" * 32).endswith(".el9")


def test_offline_lock_drops_site_comments_but_keeps_every_pin_and_hash():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    src = ("# Offline lock of the wheelhouse for site 'bigdata-prod'\n# date: 2025-12-10\n\n"
           f"idna==3.10 \\\n    --hash={b}\nsix==1.17.0 \\\n    --hash={a}\n")
    out = P.offline_lock_text(Lock.parse(src))
    assert "bigdata-prod" not in out and "date:" not in out
    assert f"idna==3.10 \\\n    --hash={b}\nsix==1.17.0 \\\n    --hash={a}\n" in out
    assert P.offline_lock_text(Lock.parse(src.replace("bigdata-prod", "other"))) == out


def test_rpm_escape_doubles_percent_signs():
    assert _rpmesc("100% of %{name}") == "100%% of %%{name}"


def test_site_plan_puts_files_in_the_right_packages(example_site):
    from builder.render import render_site
    from builder.rpm.spec import render_build_venv, render_spec

    inputs = P.SiteInputs("3.1.4-1.1.abc.el9", 1000, ("airflow",))
    plan = P.site_plan(example_site, render_site(example_site), inputs, 1765352100,
                       render_build_venv(example_site, inputs.smoke_imports))
    by_name = {p.name: p for p in plan.packages}
    cfg = {e.dest: e for e in by_name["airflow-prod-config-bigdata-prod"].entries}
    assert cfg["/etc/airflow/airflow.cfg"].config and cfg["/etc/airflow/airflow.cfg"].group == "airflow"
    assert "/etc/airflow/secrets.env" not in cfg
    base = {e.dest: e for e in by_name["airflow-prod"].entries}
    # Documentation of the secrets file, not configuration: nothing under /etc but %config.
    assert not base["/usr/share/doc/airflow-prod/secrets.env.example"].config
    assert not any(e.dest.startswith("/etc/") and e.kind == "file" and not e.config
                   for pkg in plan.packages for e in pkg.entries)
    assert base["/opt/airflow/venvs"].owner == "root" and base["/opt/airflow/logs"].mode == 0o770
    assert "/usr/libexec/airflow-prod/build-venv" in base
    api = [e.dest for e in by_name["airflow-prod-api-server"].entries]
    assert "/usr/lib/systemd/system/airflow-api-server.service" in api
    assert "/usr/lib/firewalld/services/airflow-api-server.xml" in api
    # firewalld-filesystem's directories are its own: required, never re-owned.
    assert "/usr/lib/firewalld" not in api and "/usr/lib/firewalld/services" not in api
    assert "firewalld-filesystem" in by_name["airflow-prod-api-server"].requires
    assert "firewalld-filesystem" not in by_name["airflow-prod-scheduler"].requires
    spec = render_spec(plan)
    assert "%config(noreplace) %attr(0644,root,airflow) /etc/airflow/airflow.cfg" in spec
    assert "%package -n airflow-prod-kerberos" in spec and "Requires:       krb5-workstation" in spec
    # Same inputs, same plan; a different stamp, a different release.
    again = P.site_plan(example_site, render_site(example_site), inputs, 1765352100,
                        render_build_venv(example_site, inputs.smoke_imports))
    assert render_spec(again) == spec


def test_a_wheelhouse_from_an_older_lock_still_upgrades_over_the_last_one(tmp_path):
    """The wheelhouse's stamp is its lock's date; a build of other content from an older lock
    (a reverted lock file) must still sort above what this directory published last, or dnf
    sees the site packages' required wheelhouse as a downgrade and refuses the upgrade."""
    from builder.pipeline.state import BuildState

    state = BuildState.load(tmp_path / "state.json")
    newer_lock, older_lock = 1765352100, 1765352100 - 3600
    first = state.wheelhouse_stamp("content-a", newer_lock)
    assert first == newer_lock
    assert state.wheelhouse_stamp("content-a", newer_lock) == first        # same content: same stamp
    second = state.wheelhouse_stamp("content-b", older_lock)
    assert second > first
    assert vercmp(P.release_of(second, 1, "0" * 64), P.release_of(first, 9, "f" * 64)) == 1
    state.save()
    again = BuildState.load(tmp_path / "state.json")
    assert again.wheelhouse_stamp("content-b", older_lock) == second       # recorded across builds
    assert again.wheelhouse_stamp("content-c", newer_lock + 7200) == newer_lock + 7200  # a newer lock wins
