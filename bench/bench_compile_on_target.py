#!/usr/bin/env python3
"""Benchmark compile-on-target: each native sdist as PyPI ships it against the sdist the
wheelhouse ships (Cython already run on the build host, builder/pydeps/cythonized.py).

    python bench/bench_compile_on_target.py [--site examples/site.toml] [--repeat 3]

Each build is what build-venv does on the target for one sdist: `uv build --wheel`, offline,
from the wheelhouse's build requirements, a fresh uv cache, the compile policy of
native.COMPILE_ENV and parallel_config. Original and shipped builds alternate, so a change in
machine load hits both. Needs the target's compile headers here (Debian: libkrb5-dev,
libldap2-dev, libsasl2-dev, python3.11-dev, gcc, g++ from scripts/deps-debian.txt).
Results: a Markdown table on stdout and JSON in bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from builder import run  # noqa: E402
from builder.pydeps import native  # noqa: E402
from builder.pydeps.blobs import BlobStore  # noqa: E402
from builder.pydeps.index import Registry  # noqa: E402
from builder.pydeps.resolve import ensure_lock  # noqa: E402
from builder.pydeps.uv import uv_bin  # noqa: E402
from builder.pydeps.wheelhouse import build_wheelhouse, select_artifacts  # noqa: E402
from builder.report import silent  # noqa: E402
from builder.site import load_site  # noqa: E402


def build_seconds(sdist: Path, links: Path, work: Path) -> float:
    cfg = work / "setuptools.cfg"
    cfg.write_text(native.parallel_config(os.cpu_count() or 1))
    started = time.monotonic()
    run.run([uv_bin(), "build", "--no-config", "--offline", "--no-index", "--find-links", str(links), "--wheel",
             "--cache-dir", str(work / "uv"), "--out-dir", str(work / "out"), str(sdist)],
            env={**native.COMPILE_ENV, "DIST_EXTRA_CONFIG": str(cfg)}, what=f"building {sdist.name}",
            notify=silent)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", default=str(REPO / "examples" / "site.toml"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    site = load_site(Path(args.site))
    lock = ensure_lock(site, locks_dir=REPO / "locks", may_relock=False, notify=silent)
    registry = Registry(lock.index)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-compile-") as tmp:
        wh = build_wheelhouse(site, lock, Path(tmp, "wheelhouse"), registry=registry, notify=silent)
        if not wh.target_sdists:
            sys.exit(f"{args.site}: no sdists compile on the target (native builder {wh.builder})")
        names = {f.filename: f.name for f in wh.files if f.filename in wh.target_sdists}
        originals = {a.filename: BlobStore().path(a.sha256)
                     for a in select_artifacts({n: lock.pins[n] for n in names.values()}, site, registry, lock.files)}
        for filename in sorted(wh.target_sdists):
            times: dict[str, list[float]] = {"original": [], "shipped": []}
            for i in range(args.repeat):
                for kind, sdist in (("original", originals[filename]), ("shipped", wh.out_dir / filename)):
                    named = Path(tmp, f"{filename}-{kind}-{i}", filename)
                    named.parent.mkdir()
                    os.link(sdist, named)
                    times[kind].append(build_seconds(named, wh.out_dir, named.parent))
            rows.append({"sdist": filename, "cythonized_here": filename in wh.cythonized, **times})
            print(f"{filename}: original {times['original']}, shipped {times['shipped']}", file=sys.stderr)

    print(f"Machine: {platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"{args.repeat} builds of each, alternating\n")
    print("| sdist | Cython ran on the build host | as PyPI ships it (s, median) | as the wheelhouse ships it (s, median) |")
    print("| --- | --- | ---: | ---: |")
    for r in rows:
        print(f"| {r['sdist']} | {'yes' if r['cythonized_here'] else 'no'} | "
              f"{statistics.median(r['original']):.1f} | {statistics.median(r['shipped']):.1f} |")
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (results / f"compile-on-target-{stamp}.json").write_text(json.dumps({"site": args.site, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
