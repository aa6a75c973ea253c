"""The CI skip policy (tests/conftest.py): under CI a skip fails, except SKIP_ALLOWED."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import SKIP_ALLOWED, skip_allowed
from support.sites import REPO

SAMPLE = '''
import pytest

def test_runs():
    pass

def test_skips():
    pytest.skip("needs a frobnicator")

@pytest.mark.skipif(True, reason="marker says no")
def test_marked():
    pass

def test_allowed():
    pytest.skip("this host could build el9 wheels itself")
'''


def run_sample(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "AIRFLOW_PROD_CI")}
    # The project's conftest as a plugin, on a test file outside the project.
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-rA", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(tmp_path / "test_sample.py")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**clean, "PYTHONPATH": str(REPO / "tests"), **env},
    )


@pytest.mark.parametrize("env", [{"AIRFLOW_PROD_CI": "1"}, {"CI": "true"}], ids=["AIRFLOW_PROD_CI", "CI"])
def test_under_ci_a_skip_fails(tmp_path, env):
    proc = run_sample(tmp_path, **env)
    assert proc.returncode == 1, proc.stdout
    # a skipif marker acts in setup: its failure is reported as an error
    assert "1 failed, 1 passed, 1 skipped, 1 error" in proc.stdout
    assert "test skipped under CI (AIRFLOW_PROD_CI=1 or CI=true): needs a frobnicator" in proc.stdout
    assert "test skipped under CI (AIRFLOW_PROD_CI=1 or CI=true): marker says no" in proc.stdout
    assert re.search(r"SKIPPED \[1\] test_sample.py:\d+: this host could build el9 wheels itself", proc.stdout)


def test_outside_ci_a_skip_is_a_skip(tmp_path):
    proc = run_sample(tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 3 skipped" in proc.stdout


def test_allow_list_is_short_and_every_entry_says_why():
    assert 0 < len(SKIP_ALLOWED) <= 5
    assert all(len(why) > 40 for why in SKIP_ALLOWED.values())
    assert skip_allowed("Skipped: this host could build el9 wheels itself")
    assert skip_allowed("needs root") is None


def test_update_golden_is_refused_under_ci(tmp_path):
    proc = run_sample(tmp_path, AIRFLOW_PROD_CI="1", UPDATE_GOLDEN="1")
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's usage error
    assert "UPDATE_GOLDEN is set under CI (AIRFLOW_PROD_CI=1 or CI=true): CI compares with the goldens" in proc.stderr
    golden = REPO / "tests" / "golden"
    before = {p: p.stat().st_mtime_ns for p in golden.rglob("*") if p.is_file()}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_render_golden.py"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CI": "true", "UPDATE_GOLDEN": "1"})
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert before == {p: p.stat().st_mtime_ns for p in golden.rglob("*") if p.is_file()}, "a golden was rewritten"
