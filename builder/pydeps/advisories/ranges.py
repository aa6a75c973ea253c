"""Whether a pinned version is affected: OSV's evaluation, in PEP 440 order.

An entry affects a version listed in its `versions`, or one inside an ECOSYSTEM range.
A range's events are sorted by version and walked as the OSV schema describes:
`introduced` opens (its "0" is the beginning of time), `fixed` closes at that version,
`last_affected` closes just after it, and `limit` events cap the whole range ("*": no
cap). GIT ranges name commits, not releases, and SEMVER is not PyPI's ordering: both are
ignored (osv.dev's PyPI records state their release ranges as ECOSYSTEM). A range with a
version PEP 440 cannot read is not guessed at: it is reported as unreadable.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from builder.pydeps.advisories.osv import EVENTS, Affected, Event

_FIRST = (0, Version("0"))   # introduced "0": before every version
_LAST = (2, Version("0"))    # limit "*": after every version


@dataclass(frozen=True)
class Verdict:
    affected: bool
    unreadable: tuple[str, ...] = ()  # ranges that could not be evaluated, and why


def _key(event: Event) -> tuple[tuple[int, Version], int]:
    if event.kind == "introduced" and event.version == "0":
        place = _FIRST
    elif event.kind == "limit" and event.version == "*":
        place = _LAST
    else:
        place = (1, Version(event.version))
    return place, EVENTS.index(event.kind)


def in_range(events: tuple[Event, ...], version: Version) -> bool:
    """OSV's IncludedInRange and BeforeLimits for one ECOSYSTEM range (InvalidVersion if an
    event's version is not PEP 440)."""
    ordered = sorted(events, key=_key)
    vulnerable = False
    for event in ordered:
        if event.kind == "limit":
            continue
        at = None if event.version == "0" and event.kind == "introduced" else Version(event.version)
        if event.kind == "introduced":
            if at is None or version >= at:
                vulnerable = True
        elif event.kind == "fixed" and at is not None and version >= at:
            vulnerable = False
        elif event.kind == "last_affected" and at is not None and version > at:
            vulnerable = False
    limits = [e for e in ordered if e.kind == "limit"]
    return vulnerable and (not limits or any(e.version == "*" or version < Version(e.version) for e in limits))


def listed(versions: tuple[str, ...], version: str) -> bool:
    """Whether `version` is in an explicit list: the same string, or the same PEP 440 version."""
    if version in versions:
        return True
    try:
        wanted = Version(version)
    except InvalidVersion:
        return False
    for item in versions:
        try:
            if Version(item) == wanted:
                return True
        except InvalidVersion:
            continue  # real lists have some (paramiko's "0.1-bulbasaur"); they name other releases
    return False


def affects(entry: Affected, version: str) -> Verdict:
    """Whether the package at `version` is affected by this entry of an advisory."""
    if listed(entry.versions, version):
        return Verdict(True)
    try:
        pinned = Version(version)
    except InvalidVersion:
        return Verdict(False, (f"version {version!r} is not PEP 440: only the explicit list was read",))
    unreadable = []
    for rng in entry.ranges:
        if rng.kind != "ECOSYSTEM":
            continue
        try:
            if in_range(rng.events, pinned):
                return Verdict(True)
        except InvalidVersion as exc:
            unreadable.append(f"range not evaluated: {exc}")
    return Verdict(False, tuple(unreadable))
