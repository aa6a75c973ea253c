"""What `bundle wheelhouse` left in a directory, read back from its manifest."""

from __future__ import annotations

import json
from pathlib import Path

from builder.pipeline.context import BuildError
from builder.rpm import plan as P


def find_uv(wheel_dir: Path) -> Path:
    found = sorted(wheel_dir.glob("uv-*.whl"))
    if not found:
        raise BuildError(f"no uv wheel in {wheel_dir}", hint="pass --uv-wheel or add uv to the wheelhouse")
    return found[-1]


def wheelhouse_outputs(wdir: Path) -> list[Path]:
    """The files a wheelhouse must still have to be reused: offline lock, manifest, every listed file."""
    from builder.pydeps.wheelhouse import MANIFEST, OFFLINE_LOCK

    outputs = [wdir / OFFLINE_LOCK, wdir / MANIFEST]
    try:
        outputs += [wdir / f["filename"] for f in json.loads((wdir / MANIFEST).read_text())["files"]]
    except (OSError, ValueError, KeyError):
        pass
    return outputs


def wheelhouse_input(wdir: Path) -> P.WheelhouseInput:
    """What `bundle wheelhouse` left in wdir: wheels, offline lock, manifest."""
    from builder.pydeps.wheelhouse import MANIFEST, OFFLINE_LOCK

    manifest = json.loads((wdir / MANIFEST).read_text())
    build_packages = manifest.get("compile_on_target", {}).get("build_packages") or []
    return P.WheelhouseInput(
        wdir, wdir / OFFLINE_LOCK, find_uv(wdir),
        build_packages=tuple(build_packages),
    )
