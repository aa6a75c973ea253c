"""One OSV record (https://ossf.github.io/osv-schema/), read and checked.

`parse(data, source)` is the one reader: it checks the structure this audit relies on
(types of every field it reads, the four range events, readable severities) and fails
with `OSVError` naming the file, the key path and what is wrong. Fields it does not
use (references, credits, ecosystem_specific) are not checked: a new schema version
that adds some must not make a feed unreadable.

Package names of the PyPI ecosystem are PEP 503 normalized here, so `Flask_AppBuilder`
in a record matches `flask-appbuilder` in a lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.utils import canonicalize_name

from builder.errors import BundleError
from builder.pydeps.advisories.severity import (
    CVSS_TYPES, UNKNOWN, Severity, SeverityError, from_word, score_vector, worst,
)

PYPI = "PyPI"
_PROJECT_NAME = re.compile(r"([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])", re.IGNORECASE)
EVENTS = ("introduced", "fixed", "last_affected", "limit")


class OSVError(BundleError):
    """An advisory file is not an OSV record this audit can read."""


@dataclass(frozen=True)
class Event:
    kind: str     # one of EVENTS
    version: str  # as written ("0" for introduced: every version)


@dataclass(frozen=True)
class Range:
    kind: str     # ECOSYSTEM | SEMVER | GIT
    events: tuple[Event, ...]


@dataclass(frozen=True)
class Affected:
    ecosystem: str
    name: str     # PEP 503 normalized for PyPI
    ranges: tuple[Range, ...]
    versions: tuple[str, ...]

    @property
    def fixed(self) -> tuple[str, ...]:
        """The versions its ECOSYSTEM ranges say are fixed."""
        return tuple(e.version for r in self.ranges if r.kind == "ECOSYSTEM" for e in r.events if e.kind == "fixed")


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    summary: str
    modified: str
    published: str
    withdrawn: str
    affected: tuple[Affected, ...]
    severity: Severity
    source: str   # the file it came from, e.g. "PyPI.zip:GHSA-xxxx.json"

    def affecting(self, name: str) -> list[Affected]:
        """Its PyPI entries for the normalized package `name`."""
        return [a for a in self.affected if a.ecosystem == PYPI and a.name == name]


class _Reader:
    """Typed access to a record's fields, each failure naming the file and key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, what: str) -> OSVError:
        return OSVError(f"{self.source}: {where}: {what}",
                        hint="an OSV record as osv.dev exports it (https://ossf.github.io/osv-schema/)")

    def obj(self, value: object, where: str) -> dict[str, object]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, found {_kind(value)}")
        return value

    def items(self, parent: dict[str, object], key: str, where: str) -> list[object]:
        value = parent.get(key, [])
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"{where}{key}", f"expected a list, found {_kind(value)}")
        return value

    def text(self, parent: dict[str, object], key: str, where: str, required: bool = False) -> str:
        value = parent.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(f"{where}{key}", f"expected a non-empty string, found {_kind(value)}")
        return value

    def strings(self, parent: dict[str, object], key: str, where: str) -> tuple[str, ...]:
        items = self.items(parent, key, where)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise self.fail(f"{where}{key}[{i}]", f"expected a string, found {_kind(item)}")
        return tuple(str(i) for i in items)


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    shown = repr(value)
    return f"{type(value).__name__} {shown[:60]}{'...' if len(shown) > 60 else ''}"


def parse(data: object, source: str) -> Advisory:
    """The advisory in one decoded OSV JSON document; OSVError when it is not one."""
    r = _Reader(source)
    record = r.obj(data, "the file")
    ident = r.text(record, "id", "", required=True)
    r = _Reader(f"{source} ({ident})")
    affected = tuple(_affected(r, r.obj(item, f"affected[{i}]"), f"affected[{i}]")
                     for i, item in enumerate(r.items(record, "affected", "")))
    return Advisory(
        id=ident,
        aliases=tuple(a for a in r.strings(record, "aliases", "") if a != ident),
        summary=r.text(record, "summary", "") or _first_line(r.text(record, "details", "")),
        modified=r.text(record, "modified", ""),
        published=r.text(record, "published", ""),
        withdrawn=r.text(record, "withdrawn", ""),
        affected=affected,
        severity=_severity(r, record),
        source=source,
    )


def _first_line(details: str) -> str:
    line = details.strip().split("\n", 1)[0].strip()
    return line if len(line) <= 120 else line[:117] + "..."


def _affected(r: _Reader, entry: dict[str, object], where: str) -> Affected:
    package = r.obj(entry.get("package", {}), f"{where}.package")
    ecosystem = r.text(package, "ecosystem", f"{where}.package.")
    name = r.text(package, "name", f"{where}.package.")
    if ecosystem == PYPI:
        if not _PROJECT_NAME.fullmatch(name):
            raise r.fail(f"{where}.package.name", f"{name[:80]!r} is not a PyPI project name (PEP 508)")
        name = canonicalize_name(name)
    ranges = tuple(_range(r, r.obj(item, f"{where}.ranges[{i}]"), f"{where}.ranges[{i}]")
                   for i, item in enumerate(r.items(entry, "ranges", f"{where}.")))
    return Affected(ecosystem, name, ranges, r.strings(entry, "versions", f"{where}."))


def _range(r: _Reader, item: dict[str, object], where: str) -> Range:
    kind = r.text(item, "type", f"{where}.", required=True)
    events = []
    for i, raw in enumerate(r.items(item, "events", f"{where}.")):
        event = r.obj(raw, f"{where}.events[{i}]")
        if len(event) != 1 or next(iter(event)) not in EVENTS:
            raise r.fail(f"{where}.events[{i}]", f"expected one of {', '.join(EVENTS)}, found {_kind(event)}")
        key, value = next(iter(event.items()))
        if not isinstance(value, str) or not value.strip():
            raise r.fail(f"{where}.events[{i}].{key}", f"expected a version string, found {_kind(value)}")
        events.append(Event(key, value.strip()))
    if kind == "ECOSYSTEM" and not any(e.kind == "introduced" for e in events):
        raise r.fail(f"{where}.events", "an ECOSYSTEM range needs an `introduced` event")
    return Range(kind, tuple(events))


def _severity(r: _Reader, record: dict[str, object]) -> Severity:
    """The newest CVSS version's base score; else the database's word; else unknown."""
    scored = []
    for i, raw in enumerate(r.items(record, "severity", "")):
        entry = r.obj(raw, f"severity[{i}]")
        kind = r.text(entry, "type", f"severity[{i}].", required=True)
        if kind not in CVSS_TYPES:
            continue  # e.g. "Ubuntu": a distribution's priority, not about the PyPI package
        try:
            scored.append(score_vector(kind, r.text(entry, "score", f"severity[{i}].", required=True)))
        except SeverityError as exc:
            raise r.fail(f"severity[{i}].score", str(exc)) from None
    words = [("database_specific", record.get("database_specific"))]
    words += [(f"affected[{i}].database_specific", a.get("database_specific"))
              for i, a in enumerate(r.items(record, "affected", "")) if isinstance(a, dict)]
    found = []
    for where, specific in words:
        if isinstance(specific, dict) and specific.get("severity") not in (None, ""):
            word = specific["severity"]
            try:
                found.append(from_word(word if isinstance(word, str) else repr(word)))
            except SeverityError as exc:
                raise r.fail(f"{where}.severity", str(exc)) from None
    if scored:
        return max(scored, key=lambda s: s.kind)
    return worst(found) if found else Severity(UNKNOWN)
