"""The backup before a migration and the way back (docs/upgrades.md), against a real PostgreSQL.

The rendered db-backup and db-restore run as the host runs them, with libpq's own tools
(pg_dump, pg_restore, psql). One stand-in: `airflow db check-migrations`'s verdict (a script
that exits 0 or 1), since no Airflow venv exists here; the booted e2e runs the real one
across a real 3.1.4 -> newest upgrade and back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from builder.render import render_site
from builder.site import site_from_data
from support.sites import example_data

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg():
    from e2e.fixtures import scratch_dir
    from e2e.servers import postgres_server

    if not shutil.which("pg_dump"):
        pytest.fail("pg_dump is missing (Debian: postgresql-client; scripts/setup installs it)")
    base = scratch_dir("db-backup")  # PostgreSQL runs as its own user: a traversable directory
    try:
        with postgres_server(base / "pg") as server:
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def host(pg, tmp_path):
    """The two scripts rendered for a site on `pg`, their paths pointed into a scratch host:
    a root-owned directory outside /tmp (db-restore trusts only root's, unwritable paths)."""
    data = example_data()
    data["database"] = {"host": pg.host, "port": pg.port, "name": pg.dbname, "user": pg.user,
                        "sslmode": "disable", "backups_keep": 2}
    files = {f.dest: f.text for f in render_site(site_from_data(data)).files}
    root = Path(tempfile.mkdtemp(prefix="db-backup-", dir="/run"))
    (root / "backups").mkdir()
    (root / "venv" / "bin").mkdir(parents=True)
    (root / "sysconfig").write_text("PGSSLMODE=disable\n")
    (root / "secrets.env").write_text(f"PGPASSWORD='{pg.password}'\nAIRFLOW__CORE__FERNET_KEY=x\n")
    for f in (root / "sysconfig", root / "secrets.env"):
        f.chmod(0o600)
    scripts = {}
    for name in ("db-backup", "db-restore"):
        text = files[f"/usr/libexec/airflow-prod/{name}"]
        for const, value in (("BACKUP_DIR", root / "backups"), ("VENV", root / "venv"),
                             ("SYSCONFIG", root / "sysconfig"), ("SECRETS", root / "secrets.env")):
            text, _ = _set_constant(text, const, str(value))
        scripts[name] = root / name
        scripts[name].write_text(text)
        scripts[name].chmod(0o755)
    _verdict(root, current=False)
    pg.psql("DROP OWNED BY CURRENT_USER CASCADE")
    yield root, scripts
    shutil.rmtree(root)


def _set_constant(text: str, name: str, value: str) -> tuple[str, int]:
    lines = text.splitlines(keepends=True)
    n = 0
    for i, line in enumerate(lines):
        if line.startswith(f"{name} = "):
            lines[i] = f"{name} = {value!r}\n"
            n += 1
    return "".join(lines), n


def _verdict(root: Path, *, current: bool) -> None:
    """The stand-in for `airflow db check-migrations`: is the schema this venv's?"""
    stub = root / "venv" / "bin" / "airflow"
    stub.write_text(f"#!/bin/sh\nexit {0 if current else 1}\n")
    stub.chmod(0o755)


def _env(pg) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "PGPASSWORD": pg.password, "PGSSLMODE": "disable"}


def _release_314(pg) -> None:
    pg.psql("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
            "INSERT INTO alembic_version VALUES ('eaf332f43c7c');"
            "CREATE TABLE dag_run (id serial PRIMARY KEY, run_id text NOT NULL);"
            "INSERT INTO dag_run (run_id) VALUES ('before-1'), ('before-2');"
            "CREATE TABLE team (name text PRIMARY KEY)")


def _migrate_to_newest(pg) -> None:
    pg.psql("UPDATE alembic_version SET version_num = 'a1b2c3d4e5f6';"
            "CREATE TYPE store_state AS ENUM ('fresh', 'stale');"
            "CREATE TABLE state_store (key text PRIMARY KEY, value text, state store_state);"
            "CREATE SEQUENCE newest_seq;"
            "ALTER TABLE dag_run ADD COLUMN partition_key text;"
            # As 3.3 did: a table the backup has gains a reference to another one it has, so
            # dropping the latter's key (pg_restore --clean) needs the former's gone first.
            "ALTER TABLE dag_run ADD COLUMN team_name text REFERENCES team (name);"
            "INSERT INTO dag_run (run_id) VALUES ('on-newest')")


def test_backup_before_a_migration_then_the_way_back(pg, host):
    root, scripts = host
    _release_314(pg)
    proc = subprocess.run([scripts["db-backup"]], env=_env(pg), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (dump,) = (root / "backups").glob("*.dump")
    assert "-eaf332f43c7c-to-3.1.4.dump" in dump.name and "the way back:" in proc.stderr
    note = json.loads(dump.with_suffix(".json").read_text())
    assert note["revision"] == "eaf332f43c7c" and note["bytes"] == dump.stat().st_size
    assert not list((root / "backups").glob(".*")), "a partial file was left"

    _migrate_to_newest(pg)
    # Refused while a unit runs is systemd's to show; here: a file that is not a backup
    # changes nothing.
    junk = root / "backups" / "junk.dump"
    junk.write_bytes(b"not a dump")
    bad = subprocess.run([scripts["db-restore"], str(junk)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "not a backup pg_restore can read" in bad.stderr, bad.stderr
    assert pg.psql("SELECT version_num FROM alembic_version") == "a1b2c3d4e5f6"
    missing = subprocess.run([scripts["db-restore"], str(root / "nope.dump")], capture_output=True, text=True)
    assert missing.returncode == 1 and "no such backup" in missing.stderr

    proc = subprocess.run([scripts["db-restore"], str(dump)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "of which 2 relations the backup does not have" in proc.stderr, proc.stderr
    assert pg.psql("SELECT version_num FROM alembic_version") == "eaf332f43c7c"
    assert pg.psql("SELECT string_agg(run_id, ',' ORDER BY id) FROM dag_run") == "before-1,before-2"
    assert pg.psql("SELECT count(*) FROM pg_class WHERE relname IN ('state_store', 'newest_seq')") == "0"
    assert pg.psql("SELECT count(*) FROM information_schema.columns "
                   "WHERE column_name IN ('partition_key', 'team_name')") == "0"
    assert pg.psql("SELECT count(*) FROM pg_type WHERE typname = 'store_state'") == "0"
    # The restored sequence goes on where the backup left it.
    assert pg.psql("INSERT INTO dag_run (run_id) VALUES ('after') RETURNING id").splitlines()[0] == "3"


def test_no_backup_when_the_schema_is_current_or_the_database_new(pg, host):
    root, scripts = host
    proc = subprocess.run([scripts["db-backup"]], env=_env(pg), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "a new database" in proc.stderr, proc.stderr
    _release_314(pg)
    _verdict(root, current=True)
    proc = subprocess.run([scripts["db-backup"]], env=_env(pg), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "no migration, no backup" in proc.stderr, proc.stderr
    assert not list((root / "backups").iterdir())


def test_only_the_newest_backups_are_kept(pg, host):
    root, scripts = host
    _release_314(pg)
    for revision in ("r1", "r2", "r3"):
        pg.psql(f"UPDATE alembic_version SET version_num = '{revision}'")
        proc = subprocess.run([scripts["db-backup"]], env=_env(pg), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
    kept = sorted(p.name.split("-")[2] for p in (root / "backups").glob("*.dump"))
    assert kept == ["r2", "r3"], kept  # backups_keep = 2
    assert len(list((root / "backups").glob("*.json"))) == 2


def test_a_failed_dump_stops_the_migration_and_leaves_nothing(pg, host):
    root, scripts = host
    _release_314(pg)
    env = {**_env(pg), "PGPASSWORD": "wrong"}
    proc = subprocess.run([scripts["db-backup"]], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, proc.stderr
    assert not list((root / "backups").iterdir())
