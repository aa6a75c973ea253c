"""What `bundle wheelhouse` left in a directory, read back from its manifest (builder.pydeps.manifest)."""

from __future__ import annotations

from pathlib import Path

from builder.pipeline.context import BuildError
from builder.pydeps import manifest
from builder.rpm import plan as P


def find_uv(wheel_dir: Path) -> Path:
    found = sorted(wheel_dir.glob("uv-*.whl"))
    if not found:
        raise BuildError(f"no uv wheel in {wheel_dir}", hint="pass --uv-wheel or add uv to the wheelhouse")
    return found[-1]


def wheelhouse_outputs(wdir: Path) -> list[Path]:
    """The files a wheelhouse must still have to be reused: offline lock, manifest, every listed file."""
    from builder.pydeps.wheelhouse import OFFLINE_LOCK

    return [wdir / OFFLINE_LOCK, wdir / manifest.MANIFEST] + [wdir / f for f in manifest.listed_files(wdir)]


def wheelhouse_input(wdir: Path) -> P.WheelhouseInput:
    """What `bundle wheelhouse` left in wdir: wheels, offline lock, manifest."""
    from builder.pydeps.wheelhouse import OFFLINE_LOCK

    build_packages = manifest.build_packages(wdir)
    return P.WheelhouseInput(wdir, wdir / OFFLINE_LOCK, find_uv(wdir), build_packages=build_packages)
