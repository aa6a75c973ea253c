"""The two time-stamp policies: the build time an RPM records comes from its inputs, never the clock.

    source_date_epoch   the site packages: SOURCE_DATE_EPOCH, else the site file's commit or mtime
    lock_epoch          the wheelhouse: the lock's resolution date, the same for every site
"""

from __future__ import annotations

import os
from pathlib import Path

from builder import run
from builder.errors import BundleError, UsageError
from builder.pydeps.lockfile import Lock


def source_date_epoch(path: Path) -> tuple[int, str]:
    """The build time recorded in RPMs, from the inputs, never from the clock.

    SOURCE_DATE_EPOCH if set; else the last commit of `path` if git tracks it
    unmodified; else its mtime. Commits and edits only move it forward, so
    releases built from newer inputs sort higher.
    """
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        if not env.isdigit():
            raise UsageError(f"SOURCE_DATE_EPOCH={env!r} is not a Unix time stamp")
        return int(env), "SOURCE_DATE_EPOCH"
    path = path.resolve()
    try:
        status = run.run(["git", "-C", str(path.parent), "status", "--porcelain", "--", path.name], check=False)
        if status.returncode == 0 and not status.stdout.strip():
            proc = run.run(["git", "-C", str(path.parent), "log", "-1", "--format=%ct", "--", path.name], check=False)
            if proc.returncode == 0 and proc.stdout.strip().isdigit():
                return int(proc.stdout.strip()), f"git commit of {path.name}"
    except BundleError:  # no git
        pass
    return int(path.stat().st_mtime), f"mtime of {path.name}"


def lock_epoch(lock: Lock) -> tuple[int, str]:
    """The wheelhouse's time stamp: the lock's resolution date (stable while the lock is
    reused, whichever site or directory builds it), else as for any other input."""
    if not os.environ.get("SOURCE_DATE_EPOCH") and lock.date is not None:
        return int(lock.date.timestamp()), f"date in {lock.path.name}"
    return source_date_epoch(lock.path)
