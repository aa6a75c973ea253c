"""The lock's pins against an advisory feed: findings, as text and as JSON.

One vulnerability often has several records in one feed (osv.dev's PyPI export holds
both PYSEC-… and GHSA-… for most, each naming the other in `aliases`). Records that
match the same pin and name each other are one finding: the ID of a record that
matched, every other name as an alias, the worst severity any of them gives, and
every version any of them says is fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from packaging.version import InvalidVersion, Version

from builder.errors import BundleError
from builder.pydeps.advisories.feed import Feed, FeedInfo, load_imported, read_sources
from builder.pydeps.advisories.osv import Advisory
from builder.pydeps.advisories.ranges import affects
from builder.pydeps.advisories.severity import LEVELS, UNKNOWN, Severity, worst
from builder.pydeps.lockfile import Lock, pinned_versions
from builder.report import Notify, emit

NO_FEED = "no advisory feed imported"
STALE_DAYS = 30  # a feed older than this is announced: an air-gapped copy ages silently otherwise
_PREFERRED = ("GHSA-", "PYSEC-", "CVE-")  # which of a group's record IDs names the finding


class AuditFailed(BundleError):
    """Findings at or above the --fail-on severity (exit code 3: not a usage or tool error)."""

    exit_code = 3


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    severity: Severity
    fixed: tuple[str, ...]      # every fixed version the records give, PEP 440 order
    upgrade_to: str | None      # the lowest fixed version above the pin
    summary: str
    sources: tuple[str, ...]    # the files of the records that matched

    def as_json(self) -> dict[str, object]:
        return {"package": self.package, "version": self.version, "id": self.id, "aliases": list(self.aliases),
                "severity": self.severity.as_json(), "fixed": list(self.fixed), "upgrade_to": self.upgrade_to,
                "summary": self.summary, "sources": list(self.sources)}


@dataclass(frozen=True)
class Resolution:
    """An advisory a site override names as its reason, and whether the override's pin reaches a fix."""

    package: str
    version: str                # the pin the override took
    id: str                     # as the site names it
    resolved: bool              # the pin is outside every affected range the feed gives
    fixed: tuple[str, ...]      # the fixed versions the feed's records give
    records: tuple[str, ...]    # the feed's IDs that matched the reason (by ID or alias); none: not in the feed

    def text(self) -> str:
        fixed = f"fixed in {', '.join(self.fixed)}" if self.fixed else "no fixed version in the feed"
        if not self.records:
            return (f"  {self.id:<20} not in the feed: the override's reason cannot be checked "
                    "(import a newer feed, or check the ID)")
        if self.resolved:
            return f"  {self.id:<20} resolved by the override ({fixed})"
        return f"  {self.id:<20} STILL OPEN: {self.version} does not reach a fixed version ({fixed})"

    def as_json(self) -> dict[str, object]:
        status = "not-in-feed" if not self.records else "resolved" if self.resolved else "open"
        return {"package": self.package, "version": self.version, "id": self.id, "status": status,
                "fixed": list(self.fixed), "records": list(self.records)}


@dataclass(frozen=True)
class AuditReport:
    lock: str
    packages: int
    feed: FeedInfo | None          # None: no feed, nothing was audited
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()    # ranges that could not be evaluated
    overrides: tuple[Resolution, ...] = ()  # the advisories the lock's overrides name as reasons

    def counts(self) -> dict[str, int]:
        levels = (*reversed(LEVELS), UNKNOWN)
        return {level: sum(1 for f in self.findings if f.severity.level == level) for level in levels}

    def failing(self, threshold: str | None) -> list[Finding]:
        return [f for f in self.findings if threshold and f.severity.meets(threshold)]

    def summary(self) -> str:
        if self.feed is None:
            return f"{self.lock}: {self.packages} packages, not audited: {NO_FEED}"
        counts = ", ".join(f"{n} {level}" for level, n in self.counts().items() if n)
        affected = len({f.package for f in self.findings})
        return (f"{self.lock}: {len(self.findings)} advisories in {affected} of {self.packages} packages"
                + (f" ({counts})" if counts else ""))

    def as_json(self) -> dict[str, object]:
        return {
            "lock": self.lock, "packages": self.packages,
            "feed": self.feed.as_json() if self.feed else None,
            "status": NO_FEED if self.feed is None else "audited",
            "findings": [f.as_json() for f in self.findings] if self.feed else None,
            "counts": self.counts() if self.feed else None,
            "notes": list(self.notes),
            "overrides": [r.as_json() for r in self.overrides] if self.feed else None,
        }

    def lines(self) -> list[str]:
        """The findings as plain text: the feed, one block per package, a line per finding (the
        summary goes through the report)."""
        if self.feed is None:
            return [f"{NO_FEED}: the {self.packages} packages of {self.lock} were not checked against any "
                    "advisories (bundle advisories import PATH; docs/advisories.md)"]
        out = [f"feed: {self.feed.describe()}"]
        package = None
        for f in self.findings:
            if f.package != package:
                package = f.package
                out.append(f"{f.package} {f.version}")
            fixed = f"fixed in {', '.join(f.fixed)}" if f.fixed else "no fixed version"
            upgrade = f" (upgrade to {f.upgrade_to})" if f.upgrade_to and len(f.fixed) > 1 else ""
            out.append(f"  {f.id:<20} {f.severity.text():<24} {fixed}{upgrade}")
            if f.aliases:
                out.append(f"  {'':<20} aliases: {', '.join(f.aliases)}")
            if f.summary:
                out.append(f"  {'':<20} {f.summary}")
        out += self._override_lines()
        out += [f"note: {n}" for n in self.notes]
        return out

    def _override_lines(self) -> list[str]:
        out, package = [], None
        for r in self.overrides:
            if r.package != package:
                package = r.package
                out.append(f"{r.package} {r.version} (airflow.overrides)")
            out.append(r.text())
        return out


def audit_lock(lock: Lock, paths: Sequence[Path] = (), directory: Path | None = None,
               notify: Notify = emit, now: datetime | None = None) -> AuditReport:
    """The lock against the feed in `paths` if given, else the imported one (in `directory`)."""
    pins = pinned_versions(lock)
    feed = read_sources(paths, notify=notify)[0] if paths else load_imported(pins, directory)
    result = audit(pins, feed, lock.path, {o.name: o.reasons for o in lock.overrides})
    if feed is not None:
        age = _age_days(feed.info.newest_modified, now or datetime.now(timezone.utc))
        if age is not None and age > STALE_DAYS:
            notify("warn", f"the advisory feed's newest record is {age} days old "
                           f"({feed.info.newest_modified}): advisories published since are not in it; "
                           "import a newer export (docs/advisories.md)")
    notify("info", result.summary())
    return result


def _age_days(stamp: str, now: datetime) -> int | None:
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (now - when).days


def audit(pins: dict[str, str], feed: Feed | None, lock: str | Path,
          reasons: dict[str, tuple[str, ...]] | None = None) -> AuditReport:
    """Every pin (canonical name -> version) against the feed; `reasons`: the advisory IDs the
    lock's overrides name, by package, each shown resolved or still open."""
    if feed is None:
        return AuditReport(str(lock), len(pins), None, ())
    findings: list[Finding] = []
    notes: list[str] = []
    for name in sorted(pins):
        matched = []
        for advisory in feed.advisories(name):
            verdicts = [affects(entry, pins[name]) for entry in advisory.affecting(name)]
            notes += [f"{advisory.id} ({name}): {why}" for v in verdicts for why in v.unreadable]
            if any(v.affected for v in verdicts):
                matched.append(advisory)
        findings += [_finding(name, pins[name], group) for group in _groups(matched)]
    findings.sort(key=lambda f: (f.package, -f.severity.rank if f.severity.level != UNKNOWN else 1, f.id))
    resolutions = tuple(_resolution(feed, name, pins[name], rid)
                        for name, ids in sorted((reasons or {}).items()) if name in pins for rid in ids)
    return AuditReport(str(lock), len(pins), feed.info, tuple(findings), tuple(notes), resolutions)


def _resolution(feed: Feed, name: str, version: str, rid: str) -> Resolution:
    """The feed's records for `name` that are `rid` or name it as an alias: does the pin escape them all?"""
    records = [a for a in feed.advisories(name) if rid == a.id or rid in a.aliases]
    affected = any(affects(entry, version).affected for a in records for entry in a.affecting(name))
    fixed = _sorted_versions({v for a in records for entry in a.affecting(name) for v in entry.fixed})
    return Resolution(name, version, rid, bool(records) and not affected, tuple(fixed),
                      tuple(sorted(a.id for a in records)))


def _groups(advisories: list[Advisory]) -> list[list[Advisory]]:
    """Advisories that name each other (by ID or a shared alias), merged."""
    groups: list[tuple[set[str], list[Advisory]]] = []
    for advisory in advisories:
        names = {advisory.id, *advisory.aliases}
        joined = [g for g in groups if g[0] & names]
        merged = (names.union(*(g[0] for g in joined)), [a for g in joined for a in g[1]] + [advisory])
        groups = [g for g in groups if not any(g is j for j in joined)] + [merged]
    return [members for _, members in groups]


def _finding(name: str, version: str, group: list[Advisory]) -> Finding:
    ids = sorted(a.id for a in group)
    primary = min(ids, key=lambda i: (next((n for n, p in enumerate(_PREFERRED) if i.startswith(p)), 9), i))
    aliases = sorted({primary, *ids, *(x for a in group for x in a.aliases)} - {primary})
    fixed = _sorted_versions({v for a in group for entry in a.affecting(name) for v in entry.fixed})
    summary = next((a.summary for a in sorted(group, key=lambda a: a.id != primary) if a.summary), "")
    return Finding(name, version, primary, tuple(aliases), worst([a.severity for a in group]),
                   tuple(fixed), _upgrade(version, fixed), summary, tuple(sorted(a.source for a in group)))


def _sorted_versions(versions: set[str]) -> list[str]:
    """PEP 440 order; a version it cannot read goes last, as written."""
    def key(v: str) -> tuple[int, Version, str]:
        try:
            return (0, Version(v), "")
        except InvalidVersion:
            return (1, Version("0"), v)
    return sorted(versions, key=key)


def _upgrade(version: str, fixed: list[str]) -> str | None:
    """The lowest fixed version above the pin (as the record writes it)."""
    try:
        pinned = Version(version)
    except InvalidVersion:
        return None
    above = []
    for v in fixed:
        try:
            if Version(v) > pinned:
                above.append((Version(v), v))
        except InvalidVersion:
            continue
    return min(above)[1] if above else None
