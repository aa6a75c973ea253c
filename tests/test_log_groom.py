"""The log groomer (templates/log-groom.py.j2) on a real file system, as a host runs it: the
rendered script, its log folder pointed at a scratch directory, run by an unprivileged user
(the service user's place: deleting needs the directories' write permission, as on the host).

What a task can plant in the log folder (links to files and directories outside it, FIFOs)
must come through untouched, and so must what those links point to.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.layout import LOG_GROOM
from builder.render import render_site
from builder.site import site_from_data
from support.sites import example_data

pytestmark = pytest.mark.integration

USER = "nobody"
DAY = 86400


def _render(days: int, max_size: str | None) -> str:
    data = example_data()
    data["retention"] = {"logs_days": days, **({"logs_max_size": max_size} if max_size else {})}
    return next(f.text for f in render_site(site_from_data(data)).files if f.dest == LOG_GROOM)


@pytest.fixture
def scratch():
    """A directory the unprivileged user can reach (pytest's tmp_path is root's 0700)."""
    root = Path(tempfile.mkdtemp(prefix="log-groom-", dir="/var/tmp"))
    root.chmod(0o755)
    (root / "logs").mkdir()
    (root / "outside").mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def groom(root: Path, days: int = 15, max_size: str | None = None) -> subprocess.CompletedProcess[str]:
    """Render the groomer for these limits, point it at root/logs, run it as USER."""
    text = _render(days, max_size)
    text = "".join(f"LOGS = {str(root / 'logs')!r}\n" if line.startswith("LOGS = ") else line
                   for line in text.splitlines(keepends=True))
    script = root / "log-groom"
    script.write_text(text)
    script.chmod(0o755)
    owner = pwd.getpwnam(USER)
    for path in [root / "logs", *(root / "logs").rglob("*")]:
        if not path.is_symlink():
            os.chown(path, owner.pw_uid, owner.pw_gid)
    return subprocess.run(["runuser", "-u", USER, "--", str(script)], capture_output=True, text=True, timeout=60)


def put(path: Path, age_days: float, size: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    when = time.time() - age_days * DAY
    os.utime(path, (when, when))
    return path


def age(path: Path, days: float) -> None:
    when = time.time() - days * DAY
    os.utime(path, (when, when), follow_symlinks=False)


def test_aged_files_go_fresh_files_links_and_their_targets_stay(scratch):
    logs, outside = scratch / "logs", scratch / "outside"
    old = [put(logs / "dag_id=a/run_id=r/task_id=t/attempt=1.log", 20), put(logs / "dag_processor/x.log", 16)]
    fresh = put(logs / "dag_id=a/run_id=s/task_id=t/attempt=1.log", 2)
    secret = put(outside / "secret.env", 100)
    (outside / "dir").mkdir()
    kept_outside = put(outside / "dir" / "old.log", 100)
    link = logs / "dag_id=a/planted"
    link.symlink_to(secret)
    age(link, 30)
    (logs / "dag_id=a/into-outside").symlink_to(outside / "dir")
    os.mkfifo(logs / "dag_id=a/fifo")
    age(logs / "dag_id=a/fifo", 30)

    proc = groom(scratch)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "removed 2 files (200 B) older than 15 days" in proc.stdout, proc.stdout
    assert not any(p.exists() for p in old)
    assert fresh.exists() and secret.exists() and kept_outside.exists()
    assert link.is_symlink() and (logs / "dag_id=a/fifo").exists()


def test_over_the_size_limit_the_oldest_go_but_never_a_file_being_written(scratch):
    logs = scratch / "logs"
    aged = [put(logs / f"dag_id=a/{i}.log", i / 24, 4096) for i in range(5, 0, -1)]  # 5 h .. 1 h old
    busy = put(logs / "dag_id=a/now.log", 0, 4096)
    proc = groom(scratch, days=0, max_size="10K")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 24 KiB: the four oldest go (8 KiB left); the newest aged one and the busy one stay.
    assert [p.exists() for p in aged] == [False, False, False, False, True] and busy.exists()
    assert "removed 4 files (16.0 KiB) over 10K" in proc.stdout, proc.stdout

    many = [put(logs / f"dag_id=b/{i}.log", 0, 4096) for i in range(4)]
    proc = groom(scratch, days=0, max_size="1K")
    assert all(p.exists() for p in many), "a file written in the last 10 minutes was removed"


def test_a_file_it_may_not_delete_is_named_and_fails_the_run(scratch):
    logs = scratch / "logs"
    groom(scratch)  # renders the script
    locked = logs / "locked"
    put(locked / "old.log", 20)
    os.chown(locked, 0, 0)
    locked.chmod(0o755)
    os.chown(locked / "old.log", 0, 0)
    proc = subprocess.run(["runuser", "-u", USER, "--", str(scratch / "log-groom")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert f"could not remove 1 files: {locked / 'old.log'}: Permission denied" in proc.stdout, proc.stdout
    assert "must be writable by group airflow" in proc.stdout


def test_empty_directories_go_once_they_are_old(scratch):
    logs = scratch / "logs"
    (logs / "old/empty").mkdir(parents=True)
    (logs / "new/empty").mkdir(parents=True)
    for d in (logs / "old/empty", logs / "old"):
        age(d, 20)
    proc = groom(scratch)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (logs / "old/empty").exists() and (logs / "new/empty").is_dir() and logs.is_dir()


# --- by property: any tree, any limits ---------------------------------------------------------

FILE = st.tuples(st.integers(0, 3), st.floats(0, 40), st.integers(0, 20_000))  # depth, age in days, size


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(FILE, min_size=0, max_size=25), days=st.sampled_from([0, 1, 15]),
       cap=st.sampled_from([None, "8K", "64K"]))
def test_any_tree_keeps_exactly_what_the_limits_allow(scratch, files, days, cap):
    if not days and not cap:
        days = 15  # the site refuses neither; nothing to check with no limit at all
    logs = scratch / "logs"
    shutil.rmtree(logs)
    logs.mkdir()
    made = []
    for i, (depth, days_old, size) in enumerate(files):
        path = logs.joinpath(*[f"d{j}" for j in range(depth)], f"{i}.log")
        made.append((put(path, days_old, size), days_old, size))
    proc = groom(scratch, days, cap)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    left = [(p, days_old, size) for p, days_old, size in made if p.exists()]
    hour = 1 / 24
    for p, days_old, _ in made:
        if not p.exists():
            assert (days and days_old > days - hour) or cap, (p, days_old, days)
    assert all(not days or days_old <= days + hour for _, days_old, _ in left)
    if cap:
        limit = int(cap[:-1]) * 1024
        # Over the limit only by files written in the last 10 minutes.
        over = sum(size for _, _, size in left) - limit
        assert over <= 0 or all(days_old < 11 / 1440 for _, days_old, size in left if size), (over, left)
        # The oldest went first: whatever is left is newer than whatever the size pass removed.
        by_size = [days_old for p, days_old, _ in made if not p.exists() and (not days or days_old <= days - hour)]
        if by_size and left:
            assert min(by_size) >= max(days_old for _, days_old, _ in left) - 1e-6
