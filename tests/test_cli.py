"""The `bundle` command as a user runs it: exit codes, messages, no tracebacks."""

from __future__ import annotations

import json

import pytest

from support.cli import bundle
from support.sites import EXAMPLE, REPO


def test_help_teaches():
    proc = bundle("--help")
    assert proc.returncode == 0
    for word in ("check", "render", "secrets", "tls", "schema", "Typical session"):
        assert word in proc.stdout
    # Every command group is registered (none may vanish behind a swallowed ImportError).
    commands = {line.split()[0] for line in proc.stdout.split("Commands:", 1)[1].splitlines() if line.strip()}
    assert commands == {"advisories", "audit", "build", "check", "export", "lock", "render", "schema", "secrets", "tls",
                        "wheelhouse"}


def test_check_valid_example():
    proc = bundle("check", "--site", str(EXAMPLE), "--offline")
    assert proc.returncode == 0, proc.stderr
    assert "valid site 'bigdata-prod'" in proc.stdout
    assert "airflow.my.bigdata.local: api-server, scheduler" in proc.stdout


def test_check_bad_site_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "site.toml"
    bad.write_text(EXAMPLE.read_text().replace("parallelism = 32", "parallelism = -1")
                   .replace("[core]", "[core]\nexecuter = 'x'"))
    proc = bundle("check", "--site", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"error: {bad}: 2 problems" in proc.stderr
    assert "core.executer: unknown key (did you mean 'executor'?)" not in proc.stderr  # not a model key
    assert "core.executer: unknown key" in proc.stderr
    assert "core.parallelism = -1: Input should be greater than or equal to 1" in proc.stderr


def test_check_missing_file(tmp_path):
    proc = bundle("check", "--site", str(tmp_path / "none.toml"))
    assert proc.returncode == 2 and "none.toml: 1 problem\n  - file not found" in proc.stderr


def test_missing_option_is_a_usage_error():
    proc = bundle("check")
    assert proc.returncode == 2 and "Missing option '--site'" in proc.stderr


def test_render_writes_tree_and_keeps_old_on_failure(tmp_path):
    out = tmp_path / "out"
    proc = bundle("render", "--site", str(EXAMPLE), "--out", str(out), "--no-validate")
    assert proc.returncode == 0, proc.stderr
    assert (out / "etc/airflow/airflow.cfg").is_file()
    assert oct((out / "usr/bin/airflow").stat().st_mode & 0o777) == "0o755"
    bad = tmp_path / "bad.toml"
    bad.write_text("[site\n")
    proc = bundle("render", "--site", str(bad), "--out", str(out), "--no-validate")
    assert proc.returncode == 2
    assert (out / "etc/airflow/airflow.cfg").is_file(), "a failed render must not remove the old tree"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")], "no staging left behind"


def test_schema_is_published_and_current(tmp_path):
    proc = bundle("schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert schema["title"] == "airflow-prod site.toml"
    assert "ldap" in schema["properties"]
    published = REPO / "docs" / "site.schema.json"
    assert published.read_text() == proc.stdout, "docs/site.schema.json is stale: run `bundle schema --out docs/site.schema.json`"


def test_secrets_and_tls_commands(tmp_path):
    secrets = tmp_path / "s.env"
    proc = bundle("secrets", "init", "--site", str(EXAMPLE), "--out", str(secrets))
    assert proc.returncode == 0, proc.stderr
    assert "install -o root -g root -m 0600" in proc.stdout
    proc = bundle("secrets", "init", "--site", str(EXAMPLE), "--out", str(secrets))
    assert proc.returncode == 2 and "pass --force" in proc.stderr

    tls = tmp_path / "tls"
    assert bundle("tls", "self-signed", "--site", str(EXAMPLE), "--out", str(tls)).returncode == 0
    proc = bundle("tls", "check", "--site", str(EXAMPLE), "--dir", str(tls))
    assert proc.returncode == 0, proc.stderr
    assert "ok: key matches, SANs cover airflow.my.bigdata.local, chain complete" in proc.stdout
    (tls / "airflow_key.pem").unlink()
    assert bundle("tls", "csr", "--site", str(EXAMPLE), "--out", str(tls)).returncode == 0
    proc = bundle("tls", "check", "--site", str(EXAMPLE), "--dir", str(tls))
    assert proc.returncode == 1 and "does not match the certificate" in proc.stderr


@pytest.mark.network
def test_render_validates_against_airflow_schema(tmp_path):
    proc = bundle("render", "--site", str(EXAMPLE), "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    assert "options valid for apache-airflow-core 3.1.4" in proc.stdout


def test_render_checks_by_the_build_rules(tmp_path):
    """`bundle render` and the build's render step share one validate: a lock that installs no
    Airflow leaves airflow.cfg unchecked in both (said, not silently passed), units are verified."""
    lock = tmp_path / "lock.txt"
    lock.write_text("six==1.16.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    proc = bundle("render", "--site", str(EXAMPLE), "--out", str(tmp_path / "r"), "--lock", str(lock))
    assert proc.returncode == 0, proc.stderr
    assert "warning: airflow.cfg not checked: the lock pins no apache-airflow-core" in proc.stderr
    # 7 services, the target, the ccache copy + .path, redis.service with our drop-in
    assert "systemd-analyze verify: 15 units clean" in proc.stdout
    assert "rendered " in proc.stdout


def test_verbose_shows_each_command_run_and_quiet_shows_none(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("six==1.16.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    args = ["render", "--site", str(EXAMPLE), "--out", str(tmp_path / "r"), "--lock", str(lock)]
    loud = bundle("-v", *args)
    assert loud.returncode == 0, loud.stderr
    assert "run: systemd-analyze verify --root=" in loud.stderr
    quiet = bundle(*args)
    assert "run: " not in quiet.stderr and "\x1b" not in quiet.stderr  # no status line into a pipe
    assert quiet.stdout == loud.stdout
