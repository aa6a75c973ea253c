"""The lock file format: pins with sha256 hashes in pip-tools/uv requirements syntax,
under a commented header (`# key: value`) recording how they were made.

How a lock was made is machine-readable from its header, so that a later `bundle build`
or `bundle wheelhouse` uses it the same way or refuses it, never re-resolves it otherwise:

    # backend: uv 0.13.9            resolver name (uv | pip-compile), then its version
    # index: https://pypi.org/simple the Simple API it was resolved against
    # input-hash: sha256:...         of everything the resolve depended on (builder.pydeps.resolve.input_hash)

`Lock` is the one structured model of a lock, parsed here and nowhere else: its pins and
hashes, and what the header records as data (method, date cutoff, backend, index, the
requirements resolved, the resolution date, the input hash). Later steps read those
fields, never the file's text. `files` carries each locked file's URL and size when the
resolve that made the lock in this process already had them from the index (the
pip-compile backend), so the wheelhouse need not ask again; a lock read from disk has
none (the requirements format has no place for them; see docs/lock-and-wheelhouse.md).

Reading and writing only; `builder.pydeps.resolve` resolves.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from packaging.utils import canonicalize_name

from builder.errors import BundleError


class LockError(BundleError):
    """The site's Airflow cannot be locked as asked."""



@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str
    hashes: tuple[str, ...]  # "sha256:<hex>", sorted


@dataclass(frozen=True)
class LockedFile:
    """One locked file as the index described it when the lock was made."""

    filename: str
    url: str
    sha256: str  # hex, no "sha256:" prefix
    size: int | None


@dataclass(frozen=True)
class LockOverride:
    """One `[airflow.overrides]` entry as the lock was made with it (the header's `overrides:`)."""

    name: str                   # canonical
    version: str                # the release taken
    asked: str                  # the site's version or specifier
    reasons: tuple[str, ...]    # advisory IDs
    raised: tuple[str, ...] = ()  # its requirements released from the constraints or cutoff with it

    def text(self) -> str:
        raised = f" raising {' '.join(self.raised)}" if self.raised else ""
        return f"{self.name} {self.version} (asked {self.asked}) for {' '.join(self.reasons)}{raised}"

    def as_json(self) -> dict[str, object]:
        return {"package": self.name, "version": self.version, "asked": self.asked,
                "reasons": list(self.reasons), "raised": list(self.raised)}


_OVERRIDE = re.compile(r"(?P<name>\S+) (?P<version>\S+) \(asked (?P<asked>[^()]+)\) for (?P<ids>[A-Za-z0-9 -]+?)"
                       r"(?: raising (?P<raised>[a-z0-9 ._-]+))?")


def render_overrides(overrides: tuple[LockOverride, ...]) -> str:
    return "; ".join(o.text() for o in overrides)


@dataclass(frozen=True)
class Lock:
    path: Path
    pins: dict[str, Pin]
    header: dict[str, str] = field(default_factory=dict)  # as written, in order (`# key: value`)
    files: dict[str, LockedFile] = field(default_factory=dict)  # sha256 hex -> file, when known
    reused: bool = False
    notices: tuple[tuple[str, str], ...] = ()

    @property
    def input_hash(self) -> str:
        return self.header.get("input-hash", "")

    @property
    def method(self) -> str:
        """How it was resolved, as said to the user: "date-cutoff <ISO> (...)" or "constraints ..."."""
        return self.header.get("method", "")

    @property
    def cutoff(self) -> str | None:
        """The upload-time cutoff (ISO 8601, as uv's --exclude-newer takes it) of a date-cutoff lock."""
        if "cutoff" in self.header:
            return self.header["cutoff"]
        # Locks written before the `cutoff:` line said it only in the method's description.
        words = self.method.split()
        return words[1] if len(words) > 1 and words[0] == "date-cutoff" else None

    @property
    def requirements(self) -> tuple[str, ...]:
        """The top-level requirements that were resolved (the header's `requirements`)."""
        text = self.header.get("requirements", "")
        return tuple(text.split("; ")) if text else ()

    @property
    def overrides(self) -> tuple[LockOverride, ...]:
        """The packages taken above the release's constraints, and why (the header's `overrides`)."""
        text = self.header.get("overrides", "")
        found = []
        for item in filter(None, text.split("; ")):
            m = _OVERRIDE.fullmatch(item)
            if not m:
                raise LockError(f"{self.path}: the header's overrides entry {item[:120]!r} is not "
                                "'<name> <version> (asked <spec>) for <IDs>[ raising <names>]'",
                                hint="re-lock it: bundle lock --site <file> --refresh")
            found.append(LockOverride(m["name"], m["version"], m["asked"], tuple(m["ids"].split()),
                                      tuple((m["raised"] or "").split())))
        return tuple(found)

    @property
    def date(self) -> datetime | None:
        """When it was resolved (the header's `date`), or None if absent or unreadable."""
        try:
            return datetime.fromisoformat(self.header["date"].strip().replace("Z", "+00:00"))
        except (KeyError, ValueError):
            return None

    @property
    def backend(self) -> str:
        """The resolver that made this lock: "uv" or "pip-compile" (the header's first word)."""
        words = self.header.get("backend", "").split()
        if not words or words[0] not in ("uv", "pip-compile"):
            raise LockError(
                f"{self.path}: the header does not say which resolver made it "
                f"(backend: {self.header.get('backend', '(missing)')!r})",
                hint="re-lock it: bundle lock --site <file> --refresh [--backend ...] [--index-url ...]",
            )
        return words[0]

    @property
    def index(self) -> str:
        """The package index this lock was resolved against (and its files come from)."""
        index = self.header.get("index", "").rstrip("/")
        if not index:
            raise LockError(f"{self.path}: the header does not say which index it was resolved against",
                            hint="re-lock it: bundle lock --site <file> --refresh [--index-url ...]")
        return index

    @property
    def body_hash(self) -> str:
        """Hash of the pins and hashes alone: what the wheelhouse depends on."""
        return hashlib.sha256(render_pins(self.pins).encode()).hexdigest()

    def requirements_text(self, head: str = "") -> str:
        """The hashed requirements export (pip/uv `--require-hashes`): `head`, then the pins."""
        return head + render_pins(self.pins)

    @classmethod
    def parse(cls, text: str, path: str | Path = "<lock>") -> Lock:
        """The one parser of a lock's text: header lines and pins."""
        header: dict[str, str] = {}
        for line in text.splitlines():
            m = re.match(r"^#\s+([a-z-]+):\s+(.*)$", line)
            if m:
                header.setdefault(m.group(1), m.group(2))
        return cls(Path(path), parse_requirements(text, source=str(path)), header)

    @classmethod
    def read(cls, path: str | Path) -> Lock:
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise LockError(f"{path}: no such lock file", hint="run `bundle lock --site <file>` first") from None
        lock = cls.parse(text, path)
        if not lock.pins:
            raise LockError(f"{path}: no pins in this lock file")
        return lock


def pinned_versions(lock: Lock | str | Path) -> dict[str, str]:
    """Canonical name -> pinned version, for every package in the lock."""
    if not isinstance(lock, Lock):
        lock = Lock.read(lock)
    return {name: pin.version for name, pin in sorted(lock.pins.items())}


def iso(dt: datetime) -> str:
    """A time as the header records it (`date`, `cutoff`), which is also how uv's --exclude-newer takes it."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)(.*)$")


def parse_requirements(text: str, source: str = "<lock>") -> dict[str, Pin]:
    """Pins of a pip-tools/uv style file: `name[extras]==version --hash=...`."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        line = line.rstrip()
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            logical.append(buf.strip())
        buf = ""
    pins: dict[str, Pin] = {}
    for line in logical:
        if line.startswith("-"):
            continue
        m = _PIN.match(line)
        if not m:
            raise LockError(f"{source}: not an exact pin: {line[:80]!r}")
        name = canonicalize_name(m.group(1))
        hashes = tuple(sorted(set(re.findall(r"--hash[= ](sha256:[0-9a-f]{64})", m.group(3)))))
        pins[name] = Pin(name, m.group(2), hashes)
    return pins


def render_pins(pins: dict[str, Pin]) -> str:
    lines: list[str] = []
    for name in sorted(pins):
        pin = pins[name]
        if not pin.hashes:
            lines.append(f"{name}=={pin.version}")
            continue
        lines.append(f"{name}=={pin.version} \\")
        for i, h in enumerate(pin.hashes):
            lines.append(f"    --hash={h}" + (" \\" if i < len(pin.hashes) - 1 else ""))
    return "\n".join(lines) + "\n"
