"""The lock file format: pins with sha256 hashes in pip-tools/uv requirements syntax,
under a commented header (`# key: value`) recording how they were made.

How a lock was made is machine-readable from its header, so that a later `bundle build`
or `bundle wheelhouse` uses it the same way or refuses it, never re-resolves it otherwise:

    # backend: uv 0.13.9            resolver name (uv | pip-compile), then its version
    # index: https://pypi.org/simple the Simple API it was resolved against
    # input-hash: sha256:...         of everything the resolve depended on (builder.pydeps.resolve.input_hash)

Reading and writing only; `builder.pydeps.resolve` resolves.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
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


@dataclass
class Lock:
    path: Path
    pins: dict[str, Pin]
    header: dict[str, str]
    reused: bool = False
    notices: list[tuple[str, str]] = field(default_factory=list)

    @property
    def input_hash(self) -> str:
        return self.header.get("input-hash", "")

    @property
    def method(self) -> str:
        return self.header.get("method", "")

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

    @classmethod
    def read(cls, path: str | Path) -> Lock:
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise LockError(f"{path}: no such lock file", hint="run `bundle lock --site <file>` first") from None
        header: dict[str, str] = {}
        for line in text.splitlines():
            m = re.match(r"^#\s+([a-z-]+):\s+(.*)$", line)
            if m:
                header.setdefault(m.group(1), m.group(2))
        pins = parse_requirements(text, source=str(path))
        if not pins:
            raise LockError(f"{path}: no pins in this lock file")
        return cls(path, pins, header)


def pinned_versions(lock: Lock | str | Path) -> dict[str, str]:
    """Canonical name -> pinned version, for every package in the lock."""
    if not isinstance(lock, Lock):
        lock = Lock.read(lock)
    return {name: pin.version for name, pin in sorted(lock.pins.items())}


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
