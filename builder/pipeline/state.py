"""<out>/state.json: what one build directory remembers between builds.

    steps     each step's input hash (and what it needs to reuse its outputs)
    digests   file digests (sha256_file's memo), so unchanged wheels are not re-read
    serial    the site packages' build serial and the content it was given to
    release, version, stamp   what `bundle export` names and dates the tarball with

A file of another format, or none, is an empty state: every step runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builder.fsutil import write_atomic

STATE_FORMAT = 1


class BuildState:
    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data

    @classmethod
    def load(cls, path: Path) -> BuildState:
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            data = {}
        if data.get("format") != STATE_FORMAT:
            data = {"format": STATE_FORMAT}
        return cls(path, data)

    def save(self) -> None:
        write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True) + "\n")

    @property
    def memo(self) -> dict[str, str]:
        return self.data.setdefault("digests", {})

    def unchanged(self, step: str, input_hash: str, outputs: list[Path]) -> bool:
        """The step ran before on these inputs and its outputs are all still there."""
        return self.recorded(step).get("hash") == input_hash and all(p.exists() for p in outputs)

    def record(self, step: str, input_hash: str, **extra: object) -> None:
        self.data.setdefault("steps", {})[step] = {"hash": input_hash, **extra}

    def recorded(self, step: str) -> dict:
        return self.data.get("steps", {}).get(step, {})

    def site_serial(self, digest: str) -> int:
        """The site packages' build serial: the last one again for the same content, else +1."""
        rec = self.data.get("serial", {})
        if rec.get("digest") == digest:
            return rec["serial"]
        n = rec.get("serial", 0) + 1
        self.data["serial"] = {"digest": digest, "serial": n}
        return n

    def wheelhouse_stamp(self, content: str, stamp: int) -> int:
        """The wheelhouse RPM's time stamp: `stamp` (its lock's date), but above the stamp this
        directory last published other wheelhouse content with. A lock dated before the last one
        (a reverted lock file, or one kept from an earlier resolve) would otherwise give a
        release that sorts lower, and the site packages requiring it could not be upgraded to."""
        rec = self.data.get("wheelhouse", {})
        if rec.get("content") == content:
            stamp = rec["stamp"]
        elif isinstance(rec.get("stamp"), int) and stamp <= rec["stamp"]:
            stamp = rec["stamp"] + 1
        self.data["wheelhouse"] = {"content": content, "stamp": stamp}
        return stamp

    def built(self, version: str, release: str, stamp: int) -> None:
        """What `bundle export` names the tarball after and dates its members with."""
        self.data["release"] = release
        self.data["version"] = version
        self.data["stamp"] = stamp

    @property
    def stamp(self) -> int | None:
        return self.data.get("stamp")
