"""The build's advisory audit: the lock against the imported feed, recorded with the build.

The report lands in <out>/repo (advisories.json and .txt), so `bundle export` carries it
across the air gap inside the tarball and its SHA256SUMS, and in the wheelhouse's
manifest.json. Without an imported feed the record says so ("no advisory feed
imported"): an absent audit must never read as a clean one. The build does not fail on
findings; `bundle audit --fail-on` is the gate for pipelines.
"""

from __future__ import annotations

import json

from builder.fsutil import write_atomic
from builder.pipeline.context import Context
from builder.pydeps import manifest
from builder.pydeps.advisories.audit import audit_lock
from builder.report import nested

REPORT_JSON = "advisories.json"
REPORT_TEXT = "advisories.txt"


def audit_advisories(ctx: Context) -> tuple[bool, str]:
    """Every pin against the imported advisory feed; the report beside the packages."""
    assert ctx.lock is not None
    result = audit_lock(ctx.lock, notify=nested(ctx.notify))
    data = result.as_json()
    repo = ctx.repo or ctx.out_dir / "repo"
    write_atomic(repo / REPORT_JSON, json.dumps(data, indent=1, sort_keys=True) + "\n")
    write_atomic(repo / REPORT_TEXT, "\n".join([*result.lines(), result.summary()]) + "\n")
    wdir = ctx.out_dir / "wheelhouse"
    if ctx.wheelhouse is not None and ctx.wheelhouse.wheel_dir.resolve() == wdir.resolve():
        manifest.record(wdir, "advisories", data)
    severe = result.failing("high")
    if severe:
        ctx.notify("warn", f"{len(severe)} advisories of high, critical or unknown severity affect the lock: "
                           f"{repo / REPORT_TEXT} lists them (bundle audit --site ... --fail-on high to gate on it)")
    return False, result.summary().split(": ", 1)[-1] + f" -> {repo / REPORT_JSON}"
