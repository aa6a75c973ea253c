"""The wheelhouse's manifest.json: written by `bundle wheelhouse`, read back by `bundle build`.

It records where each file came from (downloaded, built here or in docker, an sdist that
compiles on the target), the native builder and its image, the lock the wheelhouse was
made from, and the command that installs it. Writer and readers live here together so
the format has one home; builder.pipeline reads it through this module only.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.fsutil import write_atomic
from builder.pydeps.lockfile import Lock
from builder.site.model import Site

if TYPE_CHECKING:  # wheelhouse.py imports this module to write the manifest
    from builder.pydeps.wheelhouse import Wheelhouse

MANIFEST = "manifest.json"


def write(wh: Wheelhouse, site: Site, lock: Lock, cythonized: dict[str, dict[str, object]]) -> Path:
    """manifest.json of `wh`; `cythonized` maps each derived sdist to how it was derived."""
    manifest = {
        "site": site.site.name,
        "airflow": site.airflow.version,
        "target": {"python": site.target.python, "arch": site.target.arch, "os": site.target.os},
        "lock": {"path": str(lock.path), "method": lock.method, "pins-sha256": lock.body_hash},
        "native_builder": asdict(wh.builder) if wh.builder else None,
        "compile_on_target": {"sdists": wh.target_sdists, "build_packages": wh.target_build_packages,
                              "cythonized_here": cythonized},
        "install": " ".join(wh.install_argv("<venv>/bin/python", "<this directory>")),
        "files": [asdict(e) | {"origin": e.origin.replace("reused", "downloaded")} for e in wh.files],
    }
    return write_atomic(wh.out_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _read(wdir: Path) -> Any:
    return json.loads((wdir / MANIFEST).read_text())


def listed_files(wdir: Path) -> list[str]:
    """The names of the files the manifest in `wdir` lists; none if it is missing or unreadable."""
    try:
        return [f["filename"] for f in _read(wdir)["files"]]
    except (OSError, ValueError, KeyError):
        return []


def build_packages(wdir: Path) -> tuple[str, ...]:
    """The RHEL packages the target needs to compile the wheelhouse's compile-on-target sdists."""
    return tuple(_read(wdir).get("compile_on_target", {}).get("build_packages") or [])
