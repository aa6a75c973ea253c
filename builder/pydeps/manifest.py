"""A built wheelhouse, and its manifest.json: written by `bundle wheelhouse`, read back by
`bundle build`.

It records where each file came from (downloaded, built here or in docker, an sdist that
compiles on the target), the native builder and its image, the lock the wheelhouse was
made from, and the command that installs it. Writer and readers live here together so
the format has one home; builder.pipeline reads it through this module only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from builder.fsutil import write_atomic
from builder.pydeps import native, uv
from builder.pydeps.lockfile import Lock
from builder.site.model import Site

MANIFEST = "manifest.json"
OFFLINE_LOCK = "requirements.lock"


@dataclass
class WheelhouseFile:
    name: str
    version: str
    filename: str
    sha256: str
    size: int
    origin: str  # downloaded | reused | built-host | built-docker | sdist-for-target | build-requirement


@dataclass
class Wheelhouse:
    out_dir: Path
    files: list[WheelhouseFile]
    offline_lock: Path
    build_requirements: Path | None
    manifest: Path
    builder: native.BuilderChoice | None
    target_sdists: list[str] = field(default_factory=list)
    target_build_packages: list[str] = field(default_factory=list)
    cythonized: list[str] = field(default_factory=list)  # target sdists whose Cython step ran here
    downloaded: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    built: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def install_argv(self, python: str, directory: str | Path | None = None, *, command: str = "uv",
                     cache: Path | None = None) -> list[str]:
        """The offline install the target runs (its uv; --require-hashes, no index)."""
        d = Path(directory or self.out_dir)
        return uv.install_argv(python, "-r", str(d / OFFLINE_LOCK), find_links=d, require_hashes=True,
                               cache=cache, quiet=False, command=command)



def write(wh: Wheelhouse, site: Site, lock: Lock, cythonized: dict[str, dict[str, object]]) -> Path:
    """manifest.json of `wh`; `cythonized` maps each derived sdist to how it was derived."""
    manifest = {
        "site": site.site.name,
        "airflow": site.airflow.version,
        "target": {"python": site.target.python, "arch": site.target.arch, "os": site.target.os},
        "lock": {"path": str(lock.path), "method": lock.method, "pins-sha256": lock.body_hash,
                 "overrides": [o.as_json() for o in lock.overrides]},
        "native_builder": asdict(wh.builder) if wh.builder else None,
        "compile_on_target": {"sdists": wh.target_sdists, "build_packages": wh.target_build_packages,
                              "cythonized_here": cythonized},
        "install": " ".join(wh.install_argv("<venv>/bin/python", "<this directory>")),
        "files": [asdict(e) | {"origin": e.origin.replace("reused", "downloaded")} for e in wh.files],
    }
    return write_atomic(wh.out_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def record(wdir: Path, key: str, value: object) -> Path:
    """Add what a later step learnt about these wheels (the advisory audit) to manifest.json."""
    data = _read(wdir)
    data[key] = value
    return write_atomic(wdir / MANIFEST, json.dumps(data, indent=1, sort_keys=True) + "\n")


def has(wdir: Path, key: str) -> bool:
    """Whether manifest.json in `wdir` records `key` (False if it is missing or unreadable)."""
    try:
        return key in _read(wdir)
    except (OSError, ValueError):
        return False


def _read(wdir: Path) -> Any:
    return json.loads((wdir / MANIFEST).read_text())


def listed_files(wdir: Path) -> list[str]:
    """The names of the files the manifest in `wdir` lists; none if it is missing or unreadable."""
    try:
        return [f["filename"] for f in _read(wdir)["files"]]
    except (OSError, ValueError, KeyError):
        return []


def origins(wdir: Path) -> dict[str, str]:
    """Where each listed file came from (downloaded, built-host, ...), by file name; none without a manifest."""
    try:
        return {f["filename"]: f["origin"] for f in _read(wdir)["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def build_packages(wdir: Path) -> tuple[str, ...]:
    """The RHEL packages the target needs to compile the wheelhouse's compile-on-target sdists."""
    return tuple(_read(wdir).get("compile_on_target", {}).get("build_packages") or [])
