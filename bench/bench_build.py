#!/usr/bin/env python3
"""Benchmark `bundle build` on the example site with a warm wheelhouse.

Measures, each from a fresh output directory and RPM cache unless said:
  package   rpmbuild of the wheelhouse RPM alone: MB/s of payload (target >= 150 MB/s),
            median of --runs; optional --payloads compares payload settings
  repro     two wheelhouse RPM builds compared byte for byte
  full      `bundle build` of the example, signed with a throwaway key: wall time,
            peak RSS (target <= 400 MB)
  noop      the same build again: every step reused
  config    a config-only change, rebuilt in the same directory (target <= 10 s)

Peak memory is reported two ways: the largest single process (getrusage of the
waited children) and the whole process tree summed (sampled from /proc every 20 ms).

The wheelhouse comes from --wheelhouse DIR --lock FILE (a `bundle wheelhouse`
output), or with --from-download-cache from the files `bundle wheelhouse` left in
~/.cache/airflow-prod (blobs + selections): the same files, pins and hashes,
without compile-on-target sdist handling. Results: bench/results/*.json (git-ignored).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from builder.resources import cache_dir  # noqa: E402
from builder.rpm import plan as P  # noqa: E402
from builder.rpm import rpmbuild  # noqa: E402
from builder.rpm.spec import render_spec  # noqa: E402


def assemble_from_download_cache(dest: Path) -> tuple[Path, Path]:
    """Hard-link the newest full selection's files out of the download cache, with a hash lock."""
    cache = cache_dir()
    selections = sorted((cache / "selections").glob("*.json"), key=lambda p: -len(json.loads(p.read_text())))
    if not selections:
        sys.exit("no selection in the download cache: run `bundle wheelhouse --site examples/site.toml` once")
    arts = json.loads(selections[0].read_text())
    wheels = dest / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    lines = ["# date: 2025-12-10T07:35:00Z", ""]
    for a in sorted(arts, key=lambda a: a["name"]):
        blob = cache / "blobs" / "sha256" / a["sha256"][:2] / a["sha256"]
        if not blob.is_file():
            sys.exit(f"{a['filename']} is not in the download cache: run `bundle wheelhouse` first")
        target = wheels / a["filename"]
        if not target.exists():
            os.link(blob, target)
        lines += [f"{a['name']}=={a['version']} \\", f"    --hash=sha256:{a['sha256']}"]
    lock = dest / "requirements.txt"
    lock.write_text("\n".join(lines) + "\n")
    return wheels, lock


class TreeSampler(threading.Thread):
    """Peak of the summed RSS of a process and all its descendants, from /proc."""

    def __init__(self, pid: int, interval: float = 0.02):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak_kb, self._done = pid, interval, 0, threading.Event()

    def _tree_rss_kb(self) -> int:
        children: dict[int, list[int]] = {}
        rss: dict[int, int] = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                ppid, pages = int(fields[1]), int(fields[21])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
            rss[int(d)] = pages * os.sysconf("SC_PAGE_SIZE") // 1024
        total, todo = 0, [self.pid]
        while todo:
            p = todo.pop()
            total += rss.get(p, 0)
            todo += children.get(p, [])
        return total

    def run(self) -> None:
        while not self._done.is_set():
            self.peak_kb = max(self.peak_kb, self._tree_rss_kb())
            time.sleep(self.interval)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak_kb


def run_build(argv: list[str], env: dict) -> dict:
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    tree_kb = sampler.stop()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"build failed:\n{out}")
    return {"seconds": round(seconds, 2), "largest_process_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "tree_rss_mb": round(tree_kb / 1024, 1), "output_tail": out.splitlines()[-14:]}


def bench_package(wh: P.WheelhouseInput, runs: int, payloads: list[str], work: Path) -> dict:
    plan = P.wheelhouse_plan(wh, "3.1.4", 1765352100)
    spec = render_spec(plan)
    payload_bytes = sum(Path(e.source).stat().st_size for e in plan.main.entries if e.source)
    results = {}
    for payload in payloads:
        times, size = [], 0
        for i in range(runs):
            out = work / f"pkg-{payload}-{i}"
            built = rpmbuild.build(plan, spec, out, payload)
            times.append(built.seconds)
            size = built.paths[0].stat().st_size
            if i:
                shutil.rmtree(out)
        med = statistics.median(times)
        results[payload] = {"seconds": [round(t, 2) for t in times], "median_s": round(med, 2),
                            "mb_per_s": round(payload_bytes / 1e6 / med), "rpm_mb": round(size / 1e6, 1)}
        print(f"  {payload:14} median {med:5.2f}s  {payload_bytes / 1e6 / med:5.0f} MB/s  rpm {size / 1e6:.1f} MB")
    first = work / f"pkg-{payloads[0]}-0" / plan.rpm_filename(plan.main)
    again = rpmbuild.build(plan, spec, work / "repro", payloads[0]).paths[0]
    # Streamed comparison: reading both into memory would also inflate the peak RSS the
    # build children inherit from this process (ru_maxrss survives fork).
    same = filecmp.cmp(first, again, shallow=False)
    print(f"  reproducible: two builds byte-identical = {same}")
    return {"payload_mb": round(payload_bytes / 1e6, 1), "files": len(plan.main.entries), "payloads": results,
            "reproducible": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheelhouse", type=Path, help="wheelhouse directory (from `bundle wheelhouse`)")
    ap.add_argument("--lock", type=Path, help="its offline hash lock (requirements.lock)")
    ap.add_argument("--from-download-cache", action="store_true", help="assemble the wheelhouse from the download cache")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--payloads", default=rpmbuild.PAYLOAD, help="comma-separated rpm payload settings to compare")
    ap.add_argument("--site", type=Path, default=REPO / "examples" / "site.toml")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        if args.from_download_cache:
            wdir, lock = assemble_from_download_cache(work / "wheelhouse")
        elif args.wheelhouse and args.lock:
            wdir, lock = args.wheelhouse.resolve(), args.lock.resolve()
        else:
            ap.error("give --wheelhouse DIR --lock FILE, or --from-download-cache")
        uv = sorted(wdir.glob("uv-*.whl"))[-1]
        wh = P.WheelhouseInput(wdir, lock, uv)
        print(f"wheelhouse: {wdir} ({len(wh.wheels())} files)")
        print("[package] wheelhouse RPM, payload MB/s")
        results = {"package": bench_package(wh, args.runs, args.payloads.split(","), work)}

        gnupg = work / "gnupg"
        gnupg.mkdir(mode=0o700)
        subprocess.run(["gpg", "--batch", "--homedir", str(gnupg), "--passphrase", "", "--quick-gen-key",
                        "bench throwaway <bench@example.invalid>", "rsa3072", "sign", "1d"], check=True,
                       capture_output=True)
        site = work / "site.toml"
        base_text = args.site.read_text() + f'\n[publish]\ngpg_home = "{gnupg}"\n'
        site.write_text(base_text)
        env = {**os.environ, "SOURCE_DATE_EPOCH": "1765352100"}
        argv = [sys.executable, "-m", "builder", "build", "--site", str(site), "--out", str(work / "out"),
                "--wheelhouse", str(wdir), "--lock", str(lock), "--rpm-cache", str(work / "rpm-cache")]
        for name, text in (("full", None), ("noop", None), ("config", base_text.replace("parallelism = 32", "parallelism = 33"))):
            if text:
                site.write_text(text)
            r = run_build(argv, env)
            results[name] = r
            print(f"[{name}] {r['seconds']:.2f}s, largest process {r['largest_process_rss_mb']} MB, "
                  f"process tree {r['tree_rss_mb']} MB")
        print("\n".join(results["config"]["output_tail"]))
        out = REPO / "bench" / "results"
        out.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        (out / f"build-{stamp}.json").write_text(json.dumps(results, indent=1) + "\n")
        print(f"results: bench/results/build-{stamp}.json")
    finally:
        subprocess.run(["gpgconf", "--homedir", str(work / "gnupg"), "--kill", "all"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
