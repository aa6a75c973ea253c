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
from builder.pipeline.context import Context, digest_of
from builder.pydeps import manifest
from builder.pydeps.advisories.audit import NO_FEED, audit_lock
from builder.pydeps.advisories.feed import imported_info
from builder.report import nested

REPORT_JSON = "advisories.json"
REPORT_TEXT = "advisories.txt"


def audit_advisories(ctx: Context) -> tuple[bool, str]:
    """Every pin against the imported advisory feed; the report beside the packages.

    Reused while the pins and the imported feed (its feed.json) are what they were."""
    assert ctx.lock is not None
    info = imported_info()
    # The overrides' reasons are read from the lock's header: a changed reason is a changed audit.
    reasons = [json.dumps([o.as_json() for o in ctx.lock.overrides], sort_keys=True)] if ctx.lock.overrides else []
    digest = digest_of(ctx.lock.body_hash, json.dumps(info.as_json(), sort_keys=True) if info else NO_FEED, *reasons)
    repo = ctx.repo or ctx.out_dir / "repo"
    wdir = ctx.out_dir / "wheelhouse"
    ours = ctx.wheelhouse is not None and ctx.wheelhouse.wheel_dir.resolve() == wdir.resolve()
    if ctx.unchanged("audit", digest, [repo / REPORT_JSON, repo / REPORT_TEXT]) and (
            not ours or manifest.has(wdir, "advisories")):
        return True, f"feed and pins unchanged: {repo / REPORT_JSON}"
    result = audit_lock(ctx.lock, notify=nested(ctx.notify))
    data = result.as_json()
    write_atomic(repo / REPORT_JSON, json.dumps(data, indent=1, sort_keys=True) + "\n")
    write_atomic(repo / REPORT_TEXT, "\n".join([*result.lines(), result.summary()]) + "\n")
    if ours:
        manifest.record(wdir, "advisories", data)
    ctx.state.record("audit", digest)
    severe = result.failing("high")
    if severe:
        ctx.notify("warn", f"{len(severe)} advisories of high, critical or unknown severity affect the lock: "
                           f"{repo / REPORT_TEXT} lists them (bundle audit --site ... --fail-on high to gate on it)")
    return False, result.summary().split(": ", 1)[-1] + f" -> {repo / REPORT_JSON}"
