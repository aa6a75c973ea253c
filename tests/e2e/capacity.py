"""Issue 22 item 5: the gunicorn api-server (Airflow >= 3.2.0) on the booted host.

- Rolling refresh: the installed api-server is gunicorn with REFRESH_WORKERS workers refreshed
  every REFRESH_SECONDS. While a client asks without pause, every worker is replaced and not one
  request fails (a connection a retiring worker closes before any answer is repeated, as HTTP
  allows for a GET, and counted: at most one per retired worker).
- Capacity: requests per second of the authenticated DAG list (`wrk`, a C load generator, so
  the client takes little of the two cores), gunicorn as installed against one uvicorn worker
  (a drop-in that sets [api] server_type/workers through the environment: same host, venv,
  site and data). The sides run in alternating rounds, A B B A A B B A ..., so that a
  machine's drift during the run falls on both sides alike.

The suite runs a short smoke (CAPACITY_ROUNDS, CAPACITY_SECONDS); bench/bench_load.py --api-server
runs it at length.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .faults import UNIT_PROCS
from .phases import alternating
from .proc import run

UNIT = "airflow-api-server.service"
# What the newest release's bundle sets in the e2e: short enough to see whole refresh cycles.
REFRESH_WORKERS = 2
REFRESH_SECONDS = 20
CAPACITY_ROUNDS = int(os.environ.get("AIRFLOW_PROD_API_ROUNDS", "1"))
CAPACITY_SECONDS = int(os.environ.get("AIRFLOW_PROD_API_SECONDS", "8"))
CAPACITY_CONNECTIONS = int(os.environ.get("AIRFLOW_PROD_API_CONNECTIONS", "8"))
CAPACITY_OUT = os.environ.get("AIRFLOW_PROD_API_OUT")
# The uvicorn side: Airflow reads AIRFLOW__<SECTION>__<OPTION> over airflow.cfg.
UVICORN_DROPIN = "/etc/systemd/system/airflow-api-server.service.d/zz-e2e-uvicorn.conf"
UVICORN_ENV = "[Service]\nEnvironment=AIRFLOW__API__SERVER_TYPE=uvicorn AIRFLOW__API__WORKERS=1\nKillMode=control-group\n"
LOAD_PATH = "/api/v2/dags?limit=25"


def _procs(host: Any) -> set[str]:
    return set(host.run(["sh", "-c", UNIT_PROCS + 'unit_procs "$1"', "procs", UNIT]).stdout.split())


def api_server_workers(host: Any) -> tuple[str, set[str]]:
    """The api-server's main process (gunicorn's master) and the other processes of its cgroup."""
    main = host.systemctl("show", "-P", "MainPID", UNIT).stdout.strip()
    return main, _procs(host) - {main}


def server_type_seen(host: Any) -> str:
    """What the api-server says it runs, from its banner ("Running the API server with X")."""
    out = host.run(["journalctl", "-b", "-u", UNIT, "--no-pager", "-o", "cat", "-g", "Running the API server with"],
                   check=False).stdout
    found = re.findall(r"Running the API server with (\w+)", out)
    return found[-1] if found else ""


class Poller:
    """GETs the health endpoint back to back in a thread, each on a new connection; counts
    answers, connections closed before any answer, and failures.

    A retiring uvicorn worker closes every connection it has accepted but not yet read a
    request from (uvicorn's graceful shutdown: `H11Protocol.shutdown` with no cycle), so a
    request that reaches it in that instant gets no answer at all. HTTP lets a client repeat
    an idempotent request then (RFC 9110, 9.2.2), as HTTP libraries do: the poller does once,
    and only a repeat that fails too is a failure.
    """

    def __init__(self, api: Any) -> None:
        self.api, self.ok, self.unanswered = api, 0, 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _ask(self) -> None:
        status = self.api.request("GET", "/api/v2/monitor/health").status
        if status == 200:
            self.ok += 1
        else:
            self.failed.append(f"HTTP {status}")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                try:
                    self._ask()
                except (http.client.RemoteDisconnected, ssl.SSLEOFError):  # no answer, nor a handshake
                    self.unanswered += 1
                    self._ask()
            except (OSError, http.client.HTTPException) as exc:
                self.failed.append(repr(exc))

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def rolling_refresh(host: Any, api: Any) -> dict[str, object]:
    """Every worker the master had is replaced by the refresh while clients are served."""
    assert server_type_seen(host) == "gunicorn", host.journal(UNIT)
    master, first = api_server_workers(host)
    assert len(first) == REFRESH_WORKERS, f"gunicorn master {master} has workers {first}"
    seen: set[str] = set(first)
    t0 = time.monotonic()
    with Poller(api) as poller:
        deadline = t0 + 3 * REFRESH_SECONDS + 60
        while time.monotonic() < deadline:
            now_master, workers = api_server_workers(host)
            assert now_master == master, f"the master changed: {master} -> {now_master}"
            seen |= workers
            if not workers & first and len(workers) >= REFRESH_WORKERS:
                break
            time.sleep(0.5)
        replaced_in = time.monotonic() - t0
    assert not workers & first, f"after {replaced_in:.0f} s the first workers {first} still serve: {workers}"
    assert poller.ok > 0 and not poller.failed, f"{len(poller.failed)} failed of {poller.ok}: {poller.failed[:5]}"
    # One client thread: each retiring worker can hold at most its one unread connection.
    retired = seen - workers
    assert poller.unanswered <= len(retired), (
        f"{poller.unanswered} connections closed unanswered while {len(retired)} workers retired")
    refreshed = host.run(["journalctl", "-b", "-u", UNIT, "--no-pager", "-o", "cat", "-g",
                          "Killing old worker .* for refresh"], check=False).stdout
    assert refreshed.strip(), "no refresh in the api-server's journal"
    return {"workers replaced": len(first), "processes seen": len(seen), "seconds": round(replaced_in, 1),
            "requests answered during it": poller.ok,
            "closed unanswered, then repeated": poller.unanswered, "failed": len(poller.failed)}


def _wrk(api: Any, token: str, seconds: int, connections: int) -> dict[str, float]:
    """One wrk run against the loopback address (wrk does not check the certificate: the
    suite's own client did, for the same server)."""
    out = run(["wrk", "--threads", "1", "--connections", str(connections), "--duration", f"{seconds}s",
               "--timeout", "30s", "--latency", "--header", f"Authorization: Bearer {token}",
               f"https://{api.address}:{api.port}{LOAD_PATH}"], timeout=seconds + 120).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    assert rps and total, out
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    connect, read, write, timeout = map(int, errors.groups()) if errors else (0, 0, 0, 0)
    latency = {p: _ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M)}
    return {"requests": int(total[1]), "rps": float(rps[1]), "non_2xx": int(bad[1]) if bad else 0,
            "closed_keepalive": read, "socket_errors": connect + write + timeout,
            "p50_ms": latency.get("50", 0.0), "p99_ms": latency.get("99", 0.0)}


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _switch(host: Any, side: str, healthy: Callable[[], object]) -> None:
    if side == "uvicorn":
        host.put(UVICORN_DROPIN, UVICORN_ENV)
    else:
        host.run(["rm", "-f", UVICORN_DROPIN])
    host.systemctl("daemon-reload")
    host.systemctl("restart", UNIT)
    healthy()
    assert server_type_seen(host) == side, host.journal(UNIT)


def _memory_mib(host: Any) -> float:
    """Proportional set size of the unit's processes: pages gunicorn's workers share with the
    master after fork count once, not once per process as RSS would."""
    rollups = host.run(["sh", "-c", 'for p in "$@"; do cat /proc/$p/smaps_rollup; done', "pss",
                        *sorted(_procs(host))], check=False).stdout
    return round(sum(int(kb) for kb in re.findall(r"^Pss:\s+(\d+) kB", rollups, re.M)) / 1024, 1)


def capacity(host: Any, api: Any, token: str, healthy: Callable[[], object],
             rounds: int = CAPACITY_ROUNDS, seconds: int = CAPACITY_SECONDS,
             connections: int = CAPACITY_CONNECTIONS) -> dict[str, Any]:
    """gunicorn (as installed) against one uvicorn worker, in alternating rounds."""
    if shutil.which("wrk") is None:
        raise AssertionError("wrk is not installed: scripts/setup installs it (scripts/deps-debian.txt)")
    current = server_type_seen(host)
    sides: dict[str, list[dict[str, float]]] = {"gunicorn": [], "uvicorn": []}
    try:
        for side in alternating("gunicorn", "uvicorn", rounds):
            if side != current:
                _switch(host, side, healthy)
                current = side
            _wrk(api, token, 2, connections)  # warm: each worker's first requests load what they use
            row = _wrk(api, token, seconds, connections)
            row["memory_mib"] = _memory_mib(host)
            assert row["non_2xx"] == 0 and row["socket_errors"] == 0, (side, row)
            # A worker being replaced closes its idle keep-alive connections; a request wrk had
            # just sent on one reads EOF (browsers and HTTP libraries retry an idempotent request
            # then). Only a refresh does that: one uvicorn worker never may.
            assert side == "gunicorn" or row["closed_keepalive"] == 0, (side, row)
            assert row["requests"] > 0, (side, row)
            sides[side].append(row)
    finally:
        if current != "gunicorn":
            _switch(host, "gunicorn", healthy)
    result = {side: _summary(rows) for side, rows in sides.items()}
    result["ratio"] = round(result["gunicorn"]["rps"] / result["uvicorn"]["rps"], 2)
    result["order"] = alternating("gunicorn", "uvicorn", rounds)
    result["settings"] = {"rounds": rounds, "seconds": seconds, "connections": connections,
                          "gunicorn_workers": REFRESH_WORKERS, "path": LOAD_PATH}
    if CAPACITY_OUT:
        Path(CAPACITY_OUT).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def _summary(rows: list[dict[str, float]]) -> dict[str, Any]:
    """The mean of the side's rounds, and each round's own figure."""
    return {"rps": round(sum(r["rps"] for r in rows) / len(rows), 1),
            "rounds_rps": [r["rps"] for r in rows],
            "p50_ms": round(max(r["p50_ms"] for r in rows), 1), "p99_ms": round(max(r["p99_ms"] for r in rows), 1),
            "memory_mib": max(r["memory_mib"] for r in rows), "requests": sum(int(r["requests"]) for r in rows),
            "closed_keepalive": sum(int(r["closed_keepalive"]) for r in rows)}
