"""The database retention script (templates/db-clean.py.j2) as the timer's unit runs it: the
rendered script with its `airflow` pointed at a recording stand-in, so what it passes Airflow
and how it reports are seen here. Airflow's own `db clean` reading those arguments is the e2e's
part (tests/e2e/retention.py: 500 aged rows in transactions of 200, no archive table left).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from builder.layout import DB_CLEAN
from builder.render import render_site
from builder.site import site_from_data
from support.sites import example_data

pytestmark = pytest.mark.integration

# What `airflow db clean` prints per table (airflow/utils/db_cleanup.py), then the exit code.
FAKE_AIRFLOW = """#!/bin/sh
echo "$*" >> "{calls}"
case "$2" in
  clean) echo "Found 3 rows meeting deletion criteria."; echo "Found 0 rows meeting deletion criteria.";;
esac
exit {code}
"""


def clean(tmp_path: Path, retention: dict, code: int = 0) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    data = example_data()
    data["retention"] = retention
    text = next(f.text for f in render_site(site_from_data(data)).files if f.dest == DB_CLEAN)
    calls, airflow = tmp_path / "calls", tmp_path / "airflow"
    airflow.write_text(FAKE_AIRFLOW.format(calls=calls, code=code))
    airflow.chmod(0o755)
    text = "".join(f"AIRFLOW = {str(airflow)!r}\n" if line.startswith("AIRFLOW = ") else line
                   for line in text.splitlines(keepends=True))
    script = tmp_path / "db-clean"
    script.write_text(text)
    proc = subprocess.run([sys.executable, "-I", str(script)], capture_output=True, text=True, timeout=60)
    return proc, calls.read_text().splitlines() if calls.exists() else []


def test_clean_then_drop_archived_with_the_site_batch_size(tmp_path):
    proc, calls = clean(tmp_path, {"database_days": 30, "database_batch_size": 200})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(calls) == 2 and calls[1] == "db drop-archived --yes", calls
    args = calls[0].split()
    assert args[:3] == ["db", "clean", "--clean-before-timestamp"]
    assert "--skip-archive" in args and args[args.index("--batch-size") + 1] == "200", args
    assert "at most 200 per transaction" in proc.stdout
    assert "deleted 3 rows from 1 tables; no archive table left" in proc.stdout


def test_without_a_batch_size_each_table_goes_at_once(tmp_path):
    proc, calls = clean(tmp_path, {"database_days": 30})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--batch-size" not in calls[0] and "per transaction" not in proc.stdout, calls


def test_a_failed_clean_fails_the_unit_and_skips_nothing_silently(tmp_path):
    proc, calls = clean(tmp_path, {"database_days": 30}, code=3)
    assert proc.returncode == 1
    assert "airflow db clean failed (exit 3)" in proc.stdout
    assert len(calls) == 1, "drop-archived ran after a failed clean"

