#!/usr/bin/env python3
"""Load on a booted airflow-prod host, two sides in alternating rounds.

Runs the end-to-end deployment (tests/e2e/test_e2e.py: bundle build, boot the Debian 12
stand-in, dnf install every role, real PostgreSQL/Redis/slapd/KDC on loopback) and then one of
two comparisons. Each runs its two sides in alternating rounds, A B B A A B ..., so that the
drift of a shared machine falls on both sides alike (issue 22: run one after the other, the
units comparison read 1.26x; in alternating rounds 1.12x).

units (default; issue 14): our hardened units against the guide's (bash login-shell wrapper,
    no hardening, no limits: tests/e2e/faults.py GUIDE_UNIT) on the same host, venv and site.
    Each round: one fault_fanout DAG run of --mapped dynamically mapped tasks plus --runs more
    runs at once, all through Celery. Recorded per side: task instances per minute over all its
    rounds (and each round's), peak RSS per unit, peak task and fd counts against TasksMax and
    LimitNOFILE. Goal: ours / guide's >= 0.95.

--api-server (issue 22): the api-server of the newest release the e2e proves, gunicorn with
    several workers (as its bundle installs it) against one uvicorn worker (a drop-in), after
    the upgrade from the guide's release (tests/e2e/capacity.py). Each round: `wrk` for
    --seconds on the authenticated DAG list with --connections connections. Recorded per side:
    requests per second (mean of its rounds, and each round's), p50/p99 latency, the unit's
    memory.

Needs what the e2e needs (root, scripts/setup). Takes ~20-40 min on 2 cores. Writes
bench/results/<kind>-<time>.json and, with --doc, docs/bench-load.md or docs/bench-api-server.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOISE = ("Timings on a shared 2-core machine are noisy: compare the two sides of one run, not runs of "
         "different days.")


def _header(title: str, how: str, args: argparse.Namespace, wall: float, load: str) -> list[str]:
    return [
        f"# {title}",
        "",
        f"Written by `python bench/bench_load.py{how} --doc` (see the script's docstring). {NOISE}",
        "",
        f"- run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}, load average before: {args.load_before}",
        f"- {load}",
        f"- rounds: {args.rounds} pairs in alternating order (A B B A ...)",
        f"- whole bench (build, boot, install, every round): {wall:.0f} s",
        "",
    ]


def units_markdown(results: dict, args: argparse.Namespace, wall: float) -> str:
    ours, guide = results.get("ours"), results.get("guide")
    lines = _header("Load: our units against the guide's", "", args, wall,
                    f"load per round: one run of {args.mapped} mapped tasks + {args.runs} concurrent runs "
                    "(2 mapped each); worker concurrency, parallelism and max_active_tasks from the e2e site")
    lines += ["| units | task instances | seconds | tasks/min | each round's tasks/min | retried |",
              "| --- | ---: | ---: | ---: | --- | ---: |"]
    for name, side in (("ours (hardened)", ours), ("guide's (bash wrapper)", guide)):
        if side:
            each = ", ".join(str(x) for x in side["rounds_tasks_per_min"])
            lines.append(f"| {name} | {side['task_instances']} | {side['seconds']} | {side['tasks_per_min']} "
                         f"| {each} | {side['retried']} |")
    if ours and guide:
        lines += ["", f"**ratio ours / guide's: {ours['tasks_per_min'] / guide['tasks_per_min']:.2f}** (goal >= 0.95)"]
    lines += ["", "| unit | units | peak RSS (MiB) | peak tasks / TasksMax | peak fds / LimitNOFILE |",
              "| --- | --- | ---: | ---: | ---: |"]
    for name, side in (("ours", ours), ("guide's", guide)):
        for unit, row in sorted((side or {}).get("units", {}).items()):
            lines.append(f"| {unit} | {name} | {row['peak_rss_mib']} | {row['peak_tasks']} / {row['tasks_max']} "
                         f"| {row['peak_fds']} / {row['limit_nofile']} |")
    return "\n".join(lines) + "\n"


def api_markdown(results: dict, args: argparse.Namespace, wall: float) -> str:
    s = results["settings"]
    lines = _header("api-server capacity: gunicorn workers against one uvicorn worker", " --api-server", args, wall,
                    f"load per round: `wrk`, 1 thread, {s['connections']} connections, {s['seconds']} s on "
                    f"GET {s['path']} with an admin's token (after a 2 s warm-up); gunicorn with "
                    f"{s['gunicorn_workers']} workers, refreshed every 20 s (the e2e's setting), uvicorn with 1")
    lines += ["| server | requests/s (mean) | each round's | p50 ms (worst round) | p99 ms (worst round) "
              "| unit memory MiB (PSS) | requests | keep-alive connections closed under a request |",
              "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for side in ("gunicorn", "uvicorn"):
        r = results[side]
        lines.append(f"| {side} | {r['rps']} | {', '.join(str(x) for x in r['rounds_rps'])} | {r['p50_ms']} "
                     f"| {r['p99_ms']} | {r['memory_mib']} | {r['requests']} | {r['closed_keepalive']} |")
    lines += ["", f"**ratio gunicorn / uvicorn: {results['ratio']}**; order: {' '.join(results['order'])}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-server", action="store_true", help="gunicorn against uvicorn, not the units")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of rounds, each side once per pair")
    parser.add_argument("--mapped", type=int, default=100, help="units: mapped tasks per round")
    parser.add_argument("--runs", type=int, default=10, help="units: concurrent small runs per round")
    parser.add_argument("--no-guide", action="store_true", help="units: only ours")
    parser.add_argument("--seconds", type=int, default=30, help="api-server: seconds of load per round")
    parser.add_argument("--connections", type=int, default=16, help="api-server: wrk connections")
    parser.add_argument("--doc", action="store_true", help="write the docs/ table")
    args = parser.parse_args()
    args.load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results_dir = REPO / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    kind = "api-server" if args.api_server else "load"
    out = results_dir / f"{kind}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    if args.api_server:
        env = {"AIRFLOW_PROD_API_ROUNDS": str(args.rounds), "AIRFLOW_PROD_API_SECONDS": str(args.seconds),
               "AIRFLOW_PROD_API_CONNECTIONS": str(args.connections), "AIRFLOW_PROD_API_OUT": str(out)}
        test = "test_newest_release_upgrade_with_a_backup_and_the_way_back"
    else:
        env = {"AIRFLOW_PROD_LOAD_MAPPED": str(args.mapped), "AIRFLOW_PROD_LOAD_RUNS": str(args.runs),
               "AIRFLOW_PROD_LOAD_GUIDE": "0" if args.no_guide else "1", "AIRFLOW_PROD_LOAD_ROUNDS": str(args.rounds),
               "AIRFLOW_PROD_LOAD_OUT": str(out)}
        test = "test_load_mapped_and_concurrent_runs"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/e2e/test_e2e.py", "-p", "no:cacheprovider",
                           "-k", test, "-x"], cwd=REPO, env={**os.environ, **env})
    wall = time.monotonic() - t0
    if proc.returncode != 0 or not out.exists():
        print(f"the load run failed (pytest exit {proc.returncode}); no results", file=sys.stderr)
        return 1
    results = json.loads(out.read_text())
    text = (api_markdown if args.api_server else units_markdown)(results, args, wall)
    print(text)
    if args.doc:
        doc = REPO / "docs" / ("bench-api-server.md" if args.api_server else "bench-load.md")
        tmp = doc.with_suffix(".md.tmp")
        tmp.write_text(text)
        tmp.replace(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
