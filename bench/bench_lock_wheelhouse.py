#!/usr/bin/env python3
"""Benchmark `bundle lock` and `bundle wheelhouse` against bare uv / pip on the same inputs.

    python bench/bench_lock_wheelhouse.py [--site examples/site.toml] [--skip-cold-wheelhouse]

Every row runs in this one invocation, on this machine, with the same inputs:
- lock:       `bundle lock --refresh`  vs  `uv pip compile` of the same requirements.in
              with the same flags (hashes, target python/platform, cutoff or constraints);
- wheelhouse: `bundle wheelhouse`      vs  `pip download --no-deps --require-hashes` of the
              same lock with the target's platform tags.
Cold = empty caches (fresh temp dirs for ours and theirs); warm = run again.
Tools run isolated from host pip/uv config, like the engine. Results: a Markdown table on
stdout and JSON in bench/results/ (git-ignored). Cold wheelhouse rows download ~0.5 GB each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from builder import run, target  # noqa: E402
from builder.pydeps.resolve import Lock  # noqa: E402
from builder.pydeps.uv import uv_bin  # noqa: E402
from builder.pydeps.index import PYPI, network_env  # noqa: E402
from builder.site import load_site  # noqa: E402


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    run.run(argv, env={**network_env(), **(env or {})}, cwd=REPO, what="benchmark step")
    return time.monotonic() - started


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--site", default=str(REPO / "examples" / "site.toml"))
    ap.add_argument("--skip-cold-wheelhouse", action="store_true", help="skip the two ~0.5 GB cold downloads")
    args = ap.parse_args()

    site = load_site(args.site)
    lock_file = REPO / "locks" / f"{site.site.name}.txt"
    lock = Lock.read(lock_file)
    bundle = [sys.executable, "-m", "builder"]
    plat = target.uv_platform(site.target)
    rows: list[tuple[str, str, float, float]] = []
    facts: dict[str, object] = {}

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        t = Path(tmp)
        # --- lock -----------------------------------------------------------------------------
        reqs_in = t / "requirements.in"
        reqs_in.write_text("\n".join(lock.requirements) + "\n")
        bare_lock = [uv_bin(), "pip", "compile", str(reqs_in), "-o", str(t / "bare.txt"), "--no-config",
                     "--quiet", "--generate-hashes", "--python-version", site.target.python,
                     "--python-platform", plat, "--index-url", PYPI, "--cache-dir", str(t / "uv-bare")]
        if lock.cutoff:
            bare_lock += ["--exclude-newer", lock.cutoff]
        ours_cache = {"AIRFLOW_PROD_CACHE": str(t / "cache-ours")}
        locks_dir = t / "locks"
        ours_lock = [*bundle, "lock", "--site", args.site, "--locks-dir", str(locks_dir), "--refresh"]
        cold = (timed(ours_lock, ours_cache), timed(bare_lock))
        warm = (timed(ours_lock, ours_cache), timed(bare_lock))
        rows += [("lock", "cold", *cold), ("lock", "warm", *warm)]
        ours_pins = Lock.read(locks_dir / lock_file.name)
        facts["lock_packages"] = len(ours_pins.pins)
        facts["lock_same_pins_as_committed"] = ours_pins.body_hash == lock.body_hash
        facts["lock_method"] = ours_pins.method

        # --- wheelhouse --------------------------------------------------------------------------
        shutil.copy(lock_file, locks_dir / lock_file.name)
        platforms = sorted({str(tag.platform) for tag in target.wheel_tags(site.target) if tag.platform != "any"})
        py = site.target.python_minor.replace(".", "")
        bare_dl = [sys.executable, "-m", "pip", "download", "--isolated", "--no-deps", "--require-hashes",
                   "-r", str(lock_file), "-d", str(t / "bare-wh"), "--index-url", PYPI,
                   "--python-version", site.target.python_minor, "--implementation", "cp", "--abi", f"cp{py}",
                   "--cache-dir", str(t / "pip-cache"), "--progress-bar", "off", "--quiet"]
        for p in platforms:
            bare_dl += ["--platform", p]
        if network_env().get("SSL_CERT_FILE"):  # --isolated ignores PIP_CERT
            bare_dl += ["--cert", network_env()["SSL_CERT_FILE"]]
        ours_wh = [*bundle, "wheelhouse", "--site", args.site, "--locks-dir", str(locks_dir), "--out", str(t / "wh")]
        if not args.skip_cold_wheelhouse:
            rows.append(("wheelhouse", "cold", timed(ours_wh, ours_cache), timed(bare_dl)))
        else:  # warm our cache from the shared one without timing it
            ours_cache = {}
            timed(ours_wh)
            timed(bare_dl)
        manifest = json.loads((t / "wh" / "manifest.json").read_text())
        started = time.monotonic()
        out = run.run(ours_wh, env={**network_env(), **ours_cache}, cwd=REPO).stdout
        ours_warm = time.monotonic() - started
        rows.append(("wheelhouse", "warm", ours_warm, timed(bare_dl)))
        facts["wheelhouse_warm_summary"] = out.splitlines()[0]
        facts["wheelhouse_files"] = len(manifest["files"])
        facts["wheelhouse_mb"] = round(dir_size(t / "wh") / 1e6)
        facts["bare_download_files"] = len(list((t / "bare-wh").iterdir()))
        facts["bare_download_mb"] = round(dir_size(t / "bare-wh") / 1e6)
        facts["native_builder"] = manifest["native_builder"]

    print("| step | cache | bundle (s) | bare (s) | ratio |")
    print("|---|---|---:|---:|---:|")
    for step, cache, ours, bare in rows:
        print(f"| {step} | {cache} | {ours:.1f} | {bare:.1f} | {ours / bare:.2f}x |")
    for key, value in facts.items():
        print(f"- {key}: {value}")
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (results / f"lock-wheelhouse-{stamp}.json").write_text(json.dumps({
        "date": stamp, "host": platform.node(), "cpus": os.cpu_count(),
        "rows": [dict(zip(("step", "cache", "bundle_s", "bare_s"), r, strict=True)) for r in rows], "facts": facts,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
