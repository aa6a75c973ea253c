"""What the e2e suites do on a booted target host (tests/e2e/target.py) and its REST API:
dnf as the admin runs it, a unit's state, waiting for a DAG to be parsed.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Sequence

from e2e.target import HARDENED_UMASK

# What `unit_state` reads unless told: the single-host e2e compares exactly these.
UNIT_PROPERTIES = ("ActiveState", "SubState", "NRestarts")


def dnf(host, *args: str, check: bool = True, timeout: float = 1200):
    """`dnf -y` on the host. As on a CIS host, root's umask is 077 (the booted host's /tmp and
    /var/tmp are noexec). Under enforcing fapolicyd the rpmdb trust is renewed after it, as
    RHEL's rpm plugin tells fapolicyd what a transaction installed. Its exit code and output
    tails go to stderr (shown for a failing test)."""
    started = time.monotonic()
    proc = host.run(["dnf", "-y", "--setopt=install_weak_deps=False", *args], check=check, timeout=timeout,
                    umask=HARDENED_UMASK)
    took = time.monotonic() - started
    if host.fapolicyd:
        host.trust_rpmdb()
    # The packages restart services with --no-block (no rpm transaction waits for a drain or
    # a migration): the test goes on once systemd has run those jobs, as an admin would.
    settled = wait_jobs_done(host, timeout=timeout)
    out = proc.stdout + proc.stderr
    loud = [line for line in out.splitlines() if re.search(r"FAILED|[Ee]rror|warning:", line)]
    print(f"[{host.hostname}] dnf {' '.join(args)}: exit {proc.returncode} after {took:.1f} s; "
          f"systemd's jobs done {settled:.1f} s later", *loud, proc.stdout[-3000:],
          proc.stderr[-2000:], sep="\n", file=sys.stderr)
    return proc


def wait_jobs_done(host, *, timeout: float) -> float:
    """Wait until systemd has no queued or running job on the host; the seconds it took."""
    started = time.monotonic()
    while host.systemctl("list-jobs", "--no-legend", check=False).stdout.strip():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"[{host.hostname}] systemd jobs still running after {timeout:.0f} s:\n"
                                 + host.systemctl("list-jobs", check=False).stdout)
        time.sleep(1)
    return time.monotonic() - started


def unit_state(host, unit: str, properties: Sequence[str] = UNIT_PROPERTIES) -> dict[str, str]:
    """`systemctl show` of those properties of the unit, as a dict."""
    out = host.systemctl("show", f"--property={','.join(properties)}", unit).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def api_answers(api, token: str) -> Callable[[str], bool]:
    """For wait_dag: GET path with the token (an e2e.api.ApiClient) answers 200."""
    return lambda path: api.get(path, token=token).status == 200


def wait_dag(dag_id: str, listed: Callable[[str], bool], *, timeout: float = 180) -> None:
    """Wait until the dag-processor has parsed the DAG: `listed("/api/v2/dags/<dag_id>")`,
    asked every 2 s, says the api-server has it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listed(f"/api/v2/dags/{dag_id}"):
            return
        time.sleep(2)
    raise AssertionError(f"DAG {dag_id} not parsed (not in /api/v2/dags) after {timeout:.0f} s")
