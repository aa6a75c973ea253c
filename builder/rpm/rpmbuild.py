"""Drive rpmbuild reproducibly: own _topdir per build, SOURCE_DATE_EPOCH, fixed macros.

Two builds from the same plan give byte-identical unsigned RPMs: build time and
file mtimes come from SOURCE_DATE_EPOCH, the build host name is fixed, the
payload is zstd at a fixed level and thread count (zstd output depends on the
thread count), and files are listed in sorted order.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from builder import run
from builder.errors import BundleError
from builder.fsutil import write_atomic
from builder.rpm.plan import SpecPlan

# Wheels are already deflate-compressed: zstd level 1 is within 0.1 % of level 3's
# size and ~15 % faster; level 19 is ~40x slower for no gain (docs/bench-build.md).
# T2: a pinned thread count, because zstd's output depends on it.
PAYLOAD = "w1T2.zstdio"
BUILDHOST = "airflow-prod-build"


def macros(topdir: Path, payload: str = PAYLOAD) -> dict[str, str]:
    return {
        "_topdir": str(topdir),
        "_tmppath": str(topdir / "tmp"),
        "_buildhost": BUILDHOST,
        "use_source_date_epoch_as_buildtime": "1",
        "clamp_mtime_to_source_date_epoch": "1",
        "_dbpath": "/var/lib/rpm",           # Debian's rpm defaults to ~/.rpmdb
        "_binary_payload": payload,
        "_build_name_fmt": "%%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
        "_binary_filedigest_algorithm": "8",  # sha256
    }


@dataclass(frozen=True)
class BuiltRpms:
    paths: tuple[Path, ...]
    seconds: float


def _stage(plan: SpecPlan, root: Path) -> None:
    """Lay the payload out under root: text written, source files hard-linked.

    A hard link shares the source's mtime; rpm clamps mtimes newer than
    SOURCE_DATE_EPOCH but keeps older ones, so an older source is copied and
    its copy given the epoch (never touching the source's own mtime).
    """
    epoch = plan.source_date_epoch
    for pkg in plan.packages:
        for e in pkg.entries:
            dest = root / e.relpath
            if e.kind == "dir":
                dest.mkdir(parents=True, exist_ok=True)
                os.chmod(dest, e.mode)
            elif e.text is not None:
                write_atomic(dest, e.text, e.mode)
            else:
                assert e.source is not None  # an entry has text or a source file
                src = Path(e.source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                if src.stat().st_mtime >= epoch:
                    try:
                        os.link(src, dest)
                        continue
                    except OSError:  # another filesystem
                        pass
                shutil.copyfile(src, dest)
                os.chmod(dest, e.mode)
                os.utime(dest, (epoch, epoch))


def build(plan: SpecPlan, spec_text: str, out_dir: Path, payload: str = PAYLOAD) -> BuiltRpms:
    """rpmbuild -bb in a private _topdir; the RPMs land in out_dir (replacing same names)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    topdir = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".rpmbuild-{plan.spec_name}-"))
    try:
        for sub in ("SOURCES", "SPECS", "RPMS", "BUILD", "BUILDROOT", "tmp"):
            (topdir / sub).mkdir()
        _stage(plan, topdir / "SOURCES" / "root")
        spec = write_atomic(topdir / "SPECS" / f"{plan.spec_name}.spec", spec_text)
        argv = ["rpmbuild", "-bb", "--nodeps"]
        for name, value in macros(topdir, payload).items():
            argv += ["--define", f"{name} {value}"]
        argv.append(str(spec))
        run.run(argv, what=f"rpmbuild {plan.spec_name}",
                env={"SOURCE_DATE_EPOCH": str(plan.source_date_epoch)}, cwd=topdir)
        built = []
        for name in plan.filenames():
            src = topdir / "RPMS" / name
            if not src.is_file():
                made = sorted(str(p.relative_to(topdir)) for p in topdir.rglob("*.rpm"))
                raise BundleError(
                    f"rpmbuild {plan.spec_name} succeeded but did not write {name} into {topdir / 'RPMS'} "
                    f"(it wrote: {', '.join(made) or 'no RPM there'})",
                    hint="a macro file of this build host (~/.rpmmacros, /etc/rpm/macros*) may set "
                    "%_rpmdir, %_build_name_fmt or the architecture; build without it")
            dest = out_dir / name
            os.replace(src, dest)
            built.append(dest)
        return BuiltRpms(tuple(built), time.monotonic() - start)
    finally:
        shutil.rmtree(topdir, ignore_errors=True)
