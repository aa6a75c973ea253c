"""A real StatsD collector for the e2e (issue 22 item 4): the reference StatsD daemon
(github.com/statsd/statsd, 0.9.0), the server the protocol was defined by, run by Node.js.

Why this one: it is the StatsD server itself rather than a bridge, it installs here (Node.js
from Debian, the daemon's npm tarball and its one dependency fetched from the npm registry,
each checked against the registry's sha512), and its management port answers `counters`,
`gauges` and `timers` with everything received, which is what the e2e asserts on. Sites feed
statsd_exporter or Telegraf the same packets (docs/operations.md, Metrics). Flushes are an
hour apart and idle stats kept, so counters add up over the whole run.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import socket
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .proc import Daemon, free_port, wait_until

LOOPBACK = "127.0.0.1"
CACHE = Path.home() / ".cache" / "airflow-prod" / "statsd-0.9.0"
# name, tarball, the registry's integrity (sha512, base64)
TARBALLS = (
    ("statsd", "https://registry.npmjs.org/statsd/-/statsd-0.9.0.tgz",
     "DwQDAZ3osm5ZaQshq7Z/C8nxpqWjj7NVBmHkxZLta9lDOYelPZ8vR976OU1TCHRgGA1bSBuB6glOw9cFkxlyzA=="),
    ("generic-pool", "https://registry.npmjs.org/generic-pool/-/generic-pool-2.2.0.tgz",
     "mPcLSdb8iADPF5Fy5M7AcFQ07QDxhAbz0KvzUIXVhJBYi8ELRHWXweJ8XTy6lyjh9b3nndSsTeOo3ElOOu2FsA=="),
)


def install() -> Path:
    """node_modules with the daemon, made once per machine (checked, then moved into place)."""
    modules = CACHE / "node_modules"
    if (modules / "statsd" / "stats.js").exists():
        return modules
    staging = CACHE.with_name(CACHE.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    for name, url, integrity in TARBALLS:
        with urllib.request.urlopen(url, timeout=60) as resp:
            data = resp.read()
        got = base64.b64encode(hashlib.sha512(data).digest()).decode()
        if got != integrity:
            raise AssertionError(f"{url}: sha512 {got}, the registry said {integrity}")
        dest = staging / "node_modules" / name
        dest.mkdir(parents=True)
        tgz = staging / f"{name}.tgz"
        tgz.write_bytes(data)
        with tarfile.open(tgz) as tar:
            for member in tar.getmembers():
                member.name = member.name.split("/", 1)[1] if "/" in member.name else ""
            tar.extractall(dest, members=[m for m in tar.getmembers() if m.name], filter="data")
    shutil.rmtree(CACHE, ignore_errors=True)
    staging.rename(CACHE)
    return modules


@dataclass(frozen=True)
class StatsD:
    host: str
    port: int        # UDP: where the site sends
    mgmt_port: int   # TCP: what was received
    log: Path
    started_in: float

    def _ask(self, command: str) -> set[str]:
        """The metric names of one kind. The answer is Node's util.inspect of an object, which
        elides long arrays ("... 900 more items"): only the quoted keys are read."""
        with socket.create_connection((self.host, self.mgmt_port), timeout=10) as s:
            s.sendall(command.encode() + b"\n")
            data = b""
            while not data.rstrip().endswith(b"END"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return set(re.findall(r"'([^'\s]+)':", data.decode(errors="replace")))

    def received(self) -> dict[str, set[str]]:
        return {kind: self._ask(kind) for kind in ("counters", "gauges", "timers")}


@contextmanager
def statsd_server(base: Path) -> Iterator[StatsD]:
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        raise AssertionError("Node.js is missing (Debian: nodejs; scripts/setup installs it)")
    modules = install()
    base.mkdir(parents=True, exist_ok=True)
    port, mgmt = free_port(), free_port()
    config = base / "config.js"
    config.write_text(f'{{ address: "{LOOPBACK}", port: {port}, mgmt_address: "{LOOPBACK}", mgmt_port: {mgmt}, '
                      'backends: [], flushInterval: 3600000, deleteIdleStats: false }\n')
    t0 = time.monotonic()
    daemon = Daemon("statsd", [node, str(modules / "statsd" / "stats.js"), str(config)], log=base / "statsd.log").start()
    server = StatsD(LOOPBACK, port, mgmt, daemon.log, 0.0)
    try:
        wait_until(lambda: _answers(server), 15, "statsd management port", alive=daemon.exited)
        yield StatsD(LOOPBACK, port, mgmt, daemon.log, time.monotonic() - t0)
    finally:
        daemon.stop()


def _answers(server: StatsD) -> bool:
    try:
        return "statsd.packets_received" in server._ask("counters")
    except OSError:
        return False


# What a dashboard needs first (docs/operations.md, Metrics): one family per component.
EXPECTED = {
    "scheduler": ("counters", "airflow.scheduler_heartbeat"),
    "executor": ("gauges", "airflow.executor.open_slots"),
    "pools": ("gauges", "airflow.pool.open_slots.default_pool"),
    "dag runs": ("timers", "airflow.dagrun.duration.success"),
    "dag processor": ("counters", "airflow.dag_processor_heartbeat"),
    "triggerer": ("counters", "airflow.triggerer_heartbeat"),
    "tasks (from the worker)": ("counters", "airflow.ti"),
}


def assert_airflow_metrics(server: StatsD) -> dict[str, object]:
    """Every expected family arrived; the facts: how many names of each kind, and which matched."""
    got = server.received()
    missing, matched = [], {}
    for family, (kind, prefix) in EXPECTED.items():
        names = sorted(n for n in got[kind] if n.startswith(prefix))
        if names:
            matched[family] = names[0]
        else:
            missing.append(f"{family} ({kind} {prefix}*)")
    airflow = {kind: sorted(n for n in got[kind] if n.startswith("airflow.")) for kind in got}
    assert not missing, f"not received: {missing}; received: {airflow}"
    return {"names": {kind: len(names) for kind, names in airflow.items()}, "matched": matched,
            "all": sorted(n for names in airflow.values() for n in names)}
