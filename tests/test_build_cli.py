"""`bundle build` and `bundle export` as a user runs them (subprocess, real tools)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from test_rpm_fixtures import (
    REPO, make_gpg_key, mini_data, needs_rpm, stop_gpg_agent, synthetic_wheelhouse, write_site,
)

pytestmark = [pytest.mark.integration, needs_rpm]


def bundle(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "builder", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def test_build_then_export_prints_a_summary(tmp_path):
    wh = synthetic_wheelhouse()
    key = make_gpg_key(tmp_path / "gnupg")
    data = mini_data("clisite")
    data["publish"] = {"gpg_key": key.fingerprint, "gpg_home": str(key.home)}
    site = write_site(tmp_path / "site.toml", data)
    args = ["build", "--site", str(site), "--out", str(tmp_path / "out"), "--wheelhouse", str(wh.dir),
            "--lock", str(wh.lock), "--uv-wheel", str(wh.uv_wheel), "--rpm-cache", str(tmp_path / "cache")]
    proc = bundle(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for step in ("lock", "wheelhouse", "render", "package", "publish"):
        assert f"[{step}] " in out
    assert "site clisite: 8 packages" in out
    assert f"signed by {key.fingerprint}" in out
    assert "airflow-prod-config-clisite-" in out and "MiB" in out

    again = bundle(*args)
    assert "steps skipped (inputs unchanged or given): lock, wheelhouse, render, package, publish" in again.stdout

    exp = bundle("export", "--site", str(site), "--out", str(tmp_path / "out"))
    assert exp.returncode == 0, exp.stderr
    assert "wrote " in exp.stdout and "sha256 " in exp.stdout
    assert list((tmp_path / "out" / "export").glob("airflow-prod-clisite-*.tar.sha256"))
    key.stop()


def test_wheelhouse_without_lock_is_a_usage_error(tmp_path):
    site = write_site(tmp_path / "site.toml", mini_data())
    proc = bundle("build", "--site", str(site), "--wheelhouse", str(tmp_path))
    assert proc.returncode == 2
    assert "--wheelhouse needs --lock" in proc.stderr


def test_missing_signing_key_says_how_to_fix_it(tmp_path):
    wh = synthetic_wheelhouse()
    home = tmp_path / "empty-gnupg"
    home.mkdir(mode=0o700)
    data = mini_data("nokey")
    data["publish"] = {"gpg_home": str(home)}
    site = write_site(tmp_path / "site.toml", data)
    proc = bundle("build", "--site", str(site), "--out", str(tmp_path / "out"), "--wheelhouse", str(wh.dir),
                  "--lock", str(wh.lock), "--uv-wheel", str(wh.uv_wheel), "--rpm-cache", str(tmp_path / "cache"))
    stop_gpg_agent(home)
    assert proc.returncode == 1
    assert "no secret key (default)" in proc.stderr and "hint:" in proc.stderr and "Traceback" not in proc.stderr


def test_export_before_build_is_a_clear_error(tmp_path):
    site = write_site(tmp_path / "site.toml", mini_data())
    proc = bundle("export", "--site", str(site), "--out", str(tmp_path / "nothing"))
    assert proc.returncode == 1 and "nothing built in" in proc.stderr


def test_truncated_wheel_is_a_clear_error(tmp_path):
    import shutil

    wh = synthetic_wheelhouse()
    broken = tmp_path / "wheels"
    shutil.copytree(wh.dir, broken)
    victim = next(p for p in sorted(broken.glob("*.whl")) if not p.name.startswith("uv-"))
    victim.write_bytes(victim.read_bytes()[:100])
    site = write_site(tmp_path / "site.toml", {**mini_data("trunc"), "publish": {"sign": False}})
    proc = bundle("build", "--site", str(site), "--out", str(tmp_path / "out"), "--wheelhouse", str(broken),
                  "--lock", str(wh.lock), "--uv-wheel", str(wh.uv_wheel), "--rpm-cache", str(tmp_path / "cache"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{victim}: not a valid wheel (truncated or corrupted zip)" in proc.stderr
    assert "Traceback" not in proc.stderr
