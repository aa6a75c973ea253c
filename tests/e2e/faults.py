"""Issue 14: what production does to a deployment, done to the booted e2e host.

Each fault goes through systemd and the REST API only, waits a bounded time and says what
it waited for when it gives up. Recovery times (fault -> healthy) are recorded as facts of
the run (docs/e2e-timings.md); nothing here asserts a duration.

    process kills  kill -9 of each component's MainPID (the worker while a task runs)
    database       PostgreSQL stopped 60 s while DAG runs are active
    broker         Redis stopped 60 s with tasks queued in it (stopped as a persistent Redis is)
    log disk full  the logs directory on a small tmpfs, filled up, then freed
    reboot         the host powered off and booted again
    load           one DAG run of mapped tasks plus concurrent runs through Celery; rates,
                   peak RSS, process and fd counts against TasksMax/LimitNOFILE

The fault DAGs live in one file dropped into the DAG folder (FAULT_DAGS).
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from support import booted

# Retries as a production DAG has them: a task killed with its worker is retried (Airflow's
# semantics), and the test reports how many tasks needed one.
FAULT_DAGS = """\
from datetime import datetime, timedelta
import time

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, task

ARGS = {"retries": 2, "retry_delay": timedelta(seconds=5)}

with DAG("fault_nap", start_date=datetime(2025, 1, 1), schedule=None, catchup=False, default_args=ARGS,
         params={"seconds": 30}):
    BashOperator(task_id="nap", bash_command="sleep {{ params.seconds }}")

with DAG("fault_fanout", start_date=datetime(2025, 1, 1), schedule=None, catchup=False, default_args=ARGS,
         params={"n": 8, "seconds": 1}, max_active_runs=32):
    @task
    def items(**context):
        return list(range(int(context["params"]["n"])))

    @task
    def work(i, **context):
        time.sleep(float(context["params"]["seconds"]))
        return i

    work.expand(i=items())
"""
FAULT_DAG_PATH = "/opt/airflow/dags/faults.py"
HEARTBEATS = {"scheduler": "latest_scheduler_heartbeat", "triggerer": "latest_triggerer_heartbeat",
              "dag_processor": "latest_dag_processor_heartbeat"}
TERMINAL = ("success", "failed")


def say(msg: str) -> None:
    print(f"[faults] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


# --- the REST API ------------------------------------------------------------------------

@dataclass
class Api:
    """The admin's REST session: logs in again when the token is refused (api-server restarts
    keep the JWT secret, so this only happens when a token expires)."""

    client: Any                    # api.ApiClient
    login: Callable[[], str]
    token: str = ""

    def call(self, method: str, path: str, body: Any = None, ok: Iterable[int] = (200,)) -> Any:
        if not self.token:
            self.token = self.login()
        resp = self.client.request(method, path, body, token=self.token)
        if resp.status == 401:
            self.token = self.login()
            resp = self.client.request(method, path, body, token=self.token)
        if resp.status not in tuple(ok):
            raise AssertionError(f"{method} {path}: {resp.status} {resp.text[:800]}")
        return resp.json() if resp.body else None

    def try_call(self, method: str, path: str, body: Any = None) -> Any | None:
        """The same, but None while the api-server (or its database) is away."""
        try:
            return self.call(method, path, body)
        except (OSError, http.client.HTTPException, AssertionError, ValueError):
            return None

    def wait_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Parsed (asked through try_call: the api-server may be away a while), then unpaused."""
        booted.wait_dag(dag_id, lambda path: self.try_call("GET", path) is not None, timeout=timeout)
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        body = {"logical_date": None, "conf": conf or {}}
        return self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", body, ok=(200, 201))["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        got = self.try_call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        return got["state"] if got else None

    def wait_runs(self, dag_id: str, run_ids: Iterable[str], timeout: float) -> dict[str, str]:
        """Every run in a terminal state; their states. Fails naming the runs still open."""
        pending = dict.fromkeys(run_ids, "?")
        done: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for run_id in list(pending):
                state = self.run_state(dag_id, run_id)
                pending[run_id] = state or "?"
                if state in TERMINAL:
                    done[run_id] = pending.pop(run_id)
            if pending:
                time.sleep(2)
        if pending:
            raise AssertionError(f"{dag_id}: runs not finished after {timeout:.0f} s: {pending}; "
                                 f"task instances of one: {self.brief(dag_id, next(iter(pending)))}")
        return done

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        found: list[dict] = []
        while True:
            page = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
                                    f"?limit=100&offset={len(found)}")
            found += page["task_instances"]
            if len(found) >= page["total_entries"] or not page["task_instances"]:
                return found

    def brief(self, dag_id: str, run_id: str) -> dict[str, int]:
        """Task instances of a run by state (and how many needed more than one try)."""
        counts: dict[str, int] = {}
        try:
            tis = self.task_instances(dag_id, run_id)
        except (OSError, http.client.HTTPException, AssertionError, ValueError) as exc:
            return {f"unavailable: {exc}"[:200]: 0}
        for ti in tis:
            counts[str(ti["state"])] = counts.get(str(ti["state"]), 0) + 1
            if (ti.get("try_number") or 1) > 1:
                counts["retried"] = counts.get("retried", 0) + 1
        return counts

    def runs_of(self, dag_id: str) -> set[str]:
        found: set[str] = set()
        while True:
            page = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&offset={len(found)}")
            found |= {r["dag_run_id"] for r in page["dag_runs"]}
            if len(found) >= page["total_entries"] or not page["dag_runs"]:
                return found


def assert_all_success(api: Api, dag_id: str, run_ids: Iterable[str], expect_tis: int | None = None) -> int:
    """Every run and every one of its task instances succeeded; returns how many TIs were retried."""
    retried = 0
    for run_id in run_ids:
        state = api.run_state(dag_id, run_id)
        tis = api.task_instances(dag_id, run_id)
        bad = [(t["task_id"], t.get("map_index"), t["state"], t.get("try_number")) for t in tis
               if t["state"] != "success"]
        assert state == "success" and not bad, f"{dag_id} {run_id}: run {state}; not success: {bad[:20]}"
        if expect_tis is not None:
            assert len(tis) == expect_tis, f"{dag_id} {run_id}: {len(tis)} task instances, expected {expect_tis}"
        retried += sum(1 for t in tis if (t.get("try_number") or 1) > 1)
    return retried


# --- health -----------------------------------------------------------------------------

def _when(value: str | None) -> float:
    if not value:
        return 0.0
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


def wait_fresh_health(client: Any, since: float, timeout: float = 240) -> float:
    """/api/v2/monitor/health healthy with every heartbeat newer than `since` (wall clock):
    the components are alive *now*, not still within the threshold of a dead one's last beat.
    Returns the wall-clock time it was first seen so."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = client.health()
            healthy = last.get("metadatabase", {}).get("status") == "healthy" and all(
                last.get(c, {}).get("status") == "healthy" and _when(last[c].get(k)) > since
                for c, k in HEARTBEATS.items())
            if healthy:
                return time.time()
        except (OSError, ValueError, http.client.HTTPException) as exc:
            last = repr(exc)
        time.sleep(1)
    raise AssertionError(f"/api/v2/monitor/health not healthy with heartbeats after the fault "
                         f"within {timeout:.0f} s: {json.dumps(last)[:1500]}")


# --- systemd ------------------------------------------------------------------------------

def unit_props(host: Any, unit: str, *props: str) -> dict[str, str]:
    out = host.systemctl("show", f"--property={','.join(props)}", unit).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def restarts(host: Any, units: Iterable[str]) -> dict[str, int]:
    return {u: int(unit_props(host, u, "NRestarts")["NRestarts"] or 0) for u in units}


def assert_no_unit_dead(host: Any, units: Iterable[str]) -> None:
    """No airflow unit failed, none at its start limit (Result=start-limit-hit)."""
    failed = [u for u in host.failed_units() if u.startswith("airflow")]
    limits = {u: p for u in units if (p := unit_props(host, u, "Result", "ActiveState"))["Result"]
              in ("start-limit-hit", "failed") or p["ActiveState"] == "failed"}
    assert not failed and not limits, f"units failed or at their start limit: {failed} {limits}"


def wait_running(host: Any, units: Iterable[str], timeout: float, not_pids: dict[str, str] | None = None) -> None:
    """Every unit active/running with a MainPID (other than the one in `not_pids`); fails
    at once on a unit that systemd gave up on."""
    units = tuple(units)
    deadline = time.monotonic() + timeout
    state: dict[str, dict[str, str]] = {}
    while time.monotonic() < deadline:
        state = {u: unit_props(host, u, "ActiveState", "SubState", "MainPID", "Result") for u in units}
        dead = {u: s for u, s in state.items() if s["ActiveState"] == "failed" or s["Result"] == "start-limit-hit"}
        assert not dead, f"systemd gave up on: {dead}"
        if all(s["ActiveState"] == "active" and s["SubState"] == "running" and s["MainPID"] not in ("0", "")
               and s["MainPID"] != (not_pids or {}).get(u) for u, s in state.items()):
            return
        time.sleep(1)
    raise AssertionError(f"units not running again within {timeout:.0f} s: {state}")


# --- measurements -------------------------------------------------------------------------

# A shell function: the PIDs of a unit's processes, from cgroup v2 (RHEL 9) or v1's systemd
# hierarchy (the stand-in boots with cgroups v1).
UNIT_PROCS = r"""
unit_procs() {
  cg=$(systemctl show -P ControlGroup "$1")
  procs=/sys/fs/cgroup$cg/cgroup.procs
  [ -r "$procs" ] || procs=/sys/fs/cgroup/systemd$cg/cgroup.procs
  cat "$procs" 2>/dev/null
}
"""


@dataclass
class Sampler:
    """Peak RSS (sum over the unit's cgroup), task and fd counts of each unit, sampled."""

    host: Any
    units: tuple[str, ...]
    peak_rss_kib: dict[str, int] = field(default_factory=dict)
    peak_tasks: dict[str, int] = field(default_factory=dict)
    peak_fds: dict[str, int] = field(default_factory=dict)
    limits: dict[str, tuple[str, str]] = field(default_factory=dict)

    SCRIPT = UNIT_PROCS + r"""
for u in "$@"; do
  rss=0; fds=0; n=0
  for p in $(unit_procs "$u"); do
    r=$(awk '/^VmRSS/{print $2}' /proc/$p/status 2>/dev/null); rss=$((rss + ${r:-0}))
    f=$(ls /proc/$p/fd 2>/dev/null | wc -l); fds=$((fds + f))
    n=$((n + 1))
  done
  t=$(systemctl show -P TasksCurrent "$u")
  case $t in ''|*[!0-9]*) t=$n ;; esac
  echo "$u $rss $t $fds"
done
"""

    def __post_init__(self) -> None:
        for u in self.units:
            p = unit_props(self.host, u, "TasksMax", "LimitNOFILE")
            self.limits[u] = (p["TasksMax"], p["LimitNOFILE"])

    def sample(self) -> None:
        out = self.host.run(["sh", "-c", self.SCRIPT, "sampler", *self.units], check=False).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) != 4:
                continue
            u, rss, tasks, fds = parts[0], int(parts[1]), int(parts[2]), int(parts[3])
            self.peak_rss_kib[u] = max(self.peak_rss_kib.get(u, 0), rss)
            self.peak_tasks[u] = max(self.peak_tasks.get(u, 0), tasks)
            self.peak_fds[u] = max(self.peak_fds.get(u, 0), fds)

    def table(self) -> dict[str, dict[str, Any]]:
        return {u: {"peak_rss_mib": round(self.peak_rss_kib.get(u, 0) / 1024, 1),
                    "peak_tasks": self.peak_tasks.get(u, 0), "tasks_max": self.limits[u][0],
                    "peak_fds": self.peak_fds.get(u, 0), "limit_nofile": self.limits[u][1]}
                for u in self.units}


def run_load(api: Api, sampler: Sampler, mapped: int, runs: int, seconds: float = 0,
             timeout: float = 1800) -> dict[str, Any]:
    """One fault_fanout run of `mapped` tasks and `runs` more small ones at once; all must
    succeed. Returns tasks/min (task instances over trigger -> last run done) and peaks."""
    api.wait_dag("fault_fanout")
    t0 = time.monotonic()
    big = api.trigger("fault_fanout", {"n": mapped, "seconds": seconds})
    small = [api.trigger("fault_fanout", {"n": 2, "seconds": seconds}) for _ in range(runs)]
    ids = [big, *small]
    deadline = time.monotonic() + timeout
    done: dict[str, str] = {}
    while time.monotonic() < deadline and len(done) < len(ids):
        sampler.sample()
        for run_id in ids:
            if run_id not in done and (state := api.run_state("fault_fanout", run_id)) in TERMINAL:
                done[run_id] = state
        time.sleep(3)
    elapsed = time.monotonic() - t0
    assert len(done) == len(ids), f"load: {len(ids) - len(done)} runs not done after {timeout:.0f} s"
    total = (mapped + 1) + runs * (2 + 1)
    retried = assert_all_success(api, "fault_fanout", [big], expect_tis=mapped + 1)
    retried += assert_all_success(api, "fault_fanout", small, expect_tis=3)
    return {"task_instances": total, "dag_runs": len(ids), "seconds": round(elapsed, 1),
            "tasks_per_min": round(total / elapsed * 60, 1), "retried": retried, "units": sampler.table()}


# --- the fault phase, step by step (called from test_e2e.py on the deployed host) ----------

def combine_rounds(rounds: list[dict]) -> dict:
    """One side of the load over its rounds: task instances over the seconds of all of them,
    each round's tasks/min, and each unit's peaks over all rounds."""
    total, seconds = sum(r["task_instances"] for r in rounds), sum(r["seconds"] for r in rounds)
    units: dict[str, dict] = {}
    for r in rounds:
        for unit, row in r["units"].items():
            seen = units.setdefault(unit, dict(row))
            for key in ("peak_rss_mib", "peak_tasks", "peak_fds"):
                seen[key] = max(seen[key], row[key])
    return {"task_instances": total, "seconds": round(seconds, 1), "tasks_per_min": round(total / seconds * 60, 1),
            "retried": sum(r["retried"] for r in rounds), "rounds_tasks_per_min": [r["tasks_per_min"] for r in rounds],
            "units": units}


WORKER = "airflow-celery-worker.service"
KERBEROS = "airflow-kerberos.service"
CCACHE = "/run/airflow/krb5cc_airflow"
LOGS_DIR = "/opt/airflow/logs"


def admin_api(d: Any) -> Api:
    return Api(d.api, lambda: d.api.login(d.ldap.admin.account, d.ldap.admin.password))


def install_fault_dags(d: Any) -> Api:
    """The fault DAGs in the DAG folder, parsed. The dag-processor looks for new files every
    `[dag_processor] refresh_interval` (300 s by default): restart it (systemd) to list them now."""
    if not d.host.exists(FAULT_DAG_PATH) or d.host.read(FAULT_DAG_PATH) != FAULT_DAGS:
        d.host.put(FAULT_DAG_PATH, FAULT_DAGS, 0o644, "root", "root")
        d.host.systemctl("restart", "airflow-dag-processor.service")
    api = admin_api(d)
    api.wait_dag("fault_nap")
    api.wait_dag("fault_fanout")
    api.wait_dag("test_bash")
    return api


def _wait_ti_state(api: Api, dag_id: str, run_id: str, task_id: str, states: tuple[str, ...],
                   timeout: float) -> str:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        ti = api.try_call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        state = ti and ti["state"]
        if state in states:
            return state
        time.sleep(1)
    raise AssertionError(f"{dag_id}.{task_id} in {run_id} not {states} within {timeout:.0f} s (last: {state})")


def _ticket_since(host: Any, since: float, timeout: float) -> None:
    """The renewer wrote the ccache after `since` and it holds a valid TGT."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        mtime = host.run(["stat", "-c", "%Y", CCACHE], check=False).stdout.strip()
        valid = host.run(["klist", "-s", "-c", f"FILE:{CCACHE}"], user="airflow", check=False).returncode == 0
        last = f"mtime {mtime or 'missing'}, klist -s {'ok' if valid else 'fails'}"
        if mtime and int(mtime) >= int(since) and valid:
            return
        time.sleep(1)
    raise AssertionError(f"no Kerberos ticket renewed in {CCACHE} within {timeout:.0f} s: {last}")


def kill_each_component(d: Any, units: tuple[str, ...]) -> dict[str, float]:
    """kill -9 of each unit's MainPID in turn; seconds from the kill to healthy again."""
    host = d.host
    api = install_fault_dags(d)
    recovered: dict[str, Any] = {}
    interrupted: tuple[str, float] | None = None
    for unit in units:
        before = restarts(host, [unit])[unit]
        pid = unit_props(host, unit, "MainPID")["MainPID"]
        assert pid not in ("", "0"), f"{unit} has no main process to kill"
        run_id = None
        if unit == WORKER:  # during a running task
            run_id = api.trigger("fault_nap", {"seconds": 30})
            _wait_ti_state(api, "fault_nap", run_id, "nap", ("running",), 180)
            time.sleep(3)
        since, t0 = time.time(), time.monotonic()
        say(f"kill -9 {unit} MainPID {pid}")
        host.run(["kill", "-9", pid])
        wait_running(host, [unit], 240, not_pids={unit: pid})
        if unit == KERBEROS:
            _ticket_since(host, since, 120)
        wait_fresh_health(d.api, since, 240)
        recovered[unit.removeprefix("airflow-").removesuffix(".service")] = round(time.monotonic() - t0, 1)
        say(f"{unit} healthy again after {time.monotonic() - t0:.1f} s")
        after = restarts(host, [unit])[unit]
        assert after > before, f"{unit}: NRestarts {before} -> {after}; systemd did not restart it"
        assert_no_unit_dead(host, units)
        if run_id:
            interrupted = (run_id, t0)
    # systemd SIGKILLs what is left of the worker's cgroup when its main process dies, the task
    # with it: the scheduler finds the task's heartbeat gone after task_instance_heartbeat_timeout
    # and retries it (checked last, so the other kills overlap that wait).
    if interrupted:
        run_id, t0 = interrupted
        state = api.wait_runs("fault_nap", [run_id], 600)[run_id]
        ti = api.call("GET", f"/api/v2/dags/fault_nap/dagRuns/{run_id}/taskInstances/nap")
        assert state == "success", f"the task running when the worker was killed ended {state}: {ti}"
        recovered["worker's task tries"] = ti.get("try_number")
        recovered["worker kill -> its task success (s)"] = round(time.monotonic() - t0, 1)
    return recovered


def _outage(d: Any, control: Any, units: tuple[str, ...], what: str, seconds: float,
            runs: list[str], api: Api) -> dict[str, Any]:
    host = d.host
    r0 = restarts(host, units)
    seen: dict[str, set[str]] = {u: set() for u in units}
    t0 = time.monotonic()
    say(f"{what} stopped for {seconds:.0f} s")
    with control.outage():
        while time.monotonic() - t0 < seconds:
            for u in units:
                p = unit_props(host, u, "ActiveState", "SubState")
                seen[u].add(f"{p['ActiveState']}/{p['SubState']}")
            time.sleep(5)
    since, t_up = time.time(), time.monotonic()
    say(f"{what} up again; states seen meanwhile: {seen}")
    wait_running(host, units, 300)
    wait_fresh_health(d.api, since, 300)
    recovery = round(time.monotonic() - t_up, 1)
    assert_no_unit_dead(host, units)
    api.wait_runs("fault_fanout", runs, 600)
    retried = assert_all_success(api, "fault_fanout", runs)
    r1 = restarts(host, units)
    return {"down (s)": round(seconds), "up -> healthy (s)": recovery,
            "runs done after up (s)": round(time.monotonic() - t_up, 1),
            "restarts": {u.removeprefix("airflow-").removesuffix(".service"): r1[u] - r0[u]
                         for u in units if r1[u] != r0[u]},
            "retried tasks": retried,
            "states seen": {u.removeprefix("airflow-").removesuffix(".service"): sorted(s)
                            for u, s in seen.items() if s != {"active/running"}}}


def database_outage(d: Any, postgres: Any, units: tuple[str, ...], seconds: float = 60) -> dict[str, Any]:
    """PostgreSQL down `seconds` while two fault_fanout runs are active; all recover by themselves."""
    api = install_fault_dags(d)
    before = api.runs_of("fault_fanout")
    runs = [api.trigger("fault_fanout", {"n": 6, "seconds": 2}) for _ in range(2)]
    _wait_ti_state(api, "fault_fanout", runs[0], "items", ("success",), 180)
    result = _outage(d, postgres.control, units, "PostgreSQL", seconds, runs, api)
    after = api.runs_of("fault_fanout")
    assert after == before | set(runs), f"DAG runs lost or invented: {sorted(after ^ (before | set(runs)))}"
    return result


def broker_outage(d: Any, redis: Any, units: tuple[str, ...], seconds: float = 60) -> dict[str, Any]:
    """Redis down `seconds` with task messages queued in it (more mapped tasks than the
    worker's slots); the worker reconnects and runs them."""
    api = install_fault_dags(d)
    runs = [api.trigger("fault_fanout", {"n": 8, "seconds": 2})]
    deadline = time.monotonic() + 180
    queued = 0
    while time.monotonic() < deadline:
        tis = api.task_instances("fault_fanout", runs[0])
        queued = sum(1 for t in tis if t["state"] == "queued")
        if queued >= 1 and any(t["state"] == "running" for t in tis):
            break
        time.sleep(1)
    else:
        raise AssertionError(f"no task queued behind running ones within 180 s: {api.brief('fault_fanout', runs[0])}")
    result = _outage(d, redis.control, units, "Redis", seconds, runs, api)
    result["queued at stop"] = queued
    return result


def log_disk_full(d: Any, units: tuple[str, ...], size: str = "48m") -> dict[str, Any]:
    """The logs directory on a small tmpfs, filled to the last block: what a task does, what
    else keeps working, and that freeing space is all it takes to work again."""
    host = d.host
    api = install_fault_dags(d)
    owner = host.run(["stat", "-c", "%u %g %a", LOGS_DIR]).stdout.split()
    result: dict[str, Any] = {}
    host.systemctl("stop", "airflow.target")
    host.run(["mount", "-t", "tmpfs", "-o", f"size={size},uid={owner[0]},gid={owner[1]},mode={owner[2]}",
              "e2e-logs", LOGS_DIR])
    try:
        since = time.time()
        host.systemctl("start", "airflow.target")
        wait_running(host, units, 240)
        wait_fresh_health(d.api, since, 240)
        host.run(["runuser", "-u", "airflow", "--", "dd", "if=/dev/zero", f"of={LOGS_DIR}/e2e-filler", "bs=1M"],
                 check=False, timeout=120)
        avail = host.run(["df", "--output=avail", "-k", LOGS_DIR]).stdout.split()[-1]
        assert int(avail) < 1024, f"the logs file system is not full: {avail} KiB free"
        full_at = time.time()
        run_id = api.trigger("test_bash")
        state = api.wait_runs("test_bash", [run_id], 300)[run_id]
        result["task on a full disk"] = state
        if state != "success":
            said = host.run(["journalctl", "--no-pager", "-o", "cat", "--since", f"@{int(full_at)}"],
                            check=False).stdout
            assert "No space left on device" in said, \
                f"test_bash {state} on the full log disk, but no journal line says why:\n{said[-3000:]}"
        # Nothing else broke: every unit running, every component beating.
        wait_running(host, units, 60)
        wait_fresh_health(d.api, time.time(), 120)
        assert_no_unit_dead(host, units)
        host.run(["rm", "-f", f"{LOGS_DIR}/e2e-filler"])
        t_free = time.monotonic()
        run_id = api.trigger("test_bash")
        state = api.wait_runs("test_bash", [run_id], 300)[run_id]
        assert state == "success", f"test_bash after space was freed: {state}: {api.brief('test_bash', run_id)}"
        result["freed -> next run success (s)"] = round(time.monotonic() - t_free, 1)
        assert_no_unit_dead(host, units)
    finally:
        host.systemctl("stop", "airflow.target", check=False)
        host.run(["umount", LOGS_DIR], check=False)
        since = time.time()
        host.systemctl("start", "airflow.target", check=False)
    wait_running(host, units, 240)
    wait_fresh_health(d.api, since, 240)
    return result


def reboot(d: Any, units: tuple[str, ...]) -> dict[str, Any]:
    """Power off, boot again: everything enabled comes back by itself, a ticket is renewed
    into the fresh /run, and the next DAG run succeeds."""
    host = d.host
    api = admin_api(d)
    t0 = time.monotonic()
    off = host.shutdown()
    since = time.time()
    host.boot()
    host.harden()
    booted = time.monotonic()
    enabled = {u: host.systemctl("is-enabled", u, check=False).stdout.strip() for u in ("airflow.target", *units)}
    assert all(v == "enabled" for v in enabled.values()), f"not enabled, so not started at boot: {enabled}"
    wait_running(host, units, 300)
    _ticket_since(host, since, 120)
    wait_fresh_health(d.api, since, 300)
    healthy = time.monotonic()
    assert_no_unit_dead(host, units)
    api.wait_dag("test_bash")
    run_id = api.trigger("test_bash")
    state = api.wait_runs("test_bash", [run_id], 300)[run_id]
    assert state == "success", f"test_bash after the reboot: {state}: {api.brief('test_bash', run_id)}"
    return {"power off (s)": round(off, 1), "boot -> healthy (s)": round(healthy - booted, 1),
            "total (s)": round(time.monotonic() - t0, 1)}


# --- the guide's own units, as the load anchor ------------------------------------------------

# The guide's unit pattern (bench/data/guide-scheduler.service): a bash login shell sources the
# venv and execs airflow; no hardening, no start checks, no limits beyond systemd's defaults.
# One deviation, so that it runs this site at all: our secrets file is loaded too (the guide
# kept the passwords in airflow.cfg), and role-env's share of it, which alone carries the
# broker URLs with the broker's password.
GUIDE_UNIT = """\
[Unit]
Description=Airflow {role} (the guide's unit, load anchor)
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile=/etc/sysconfig/airflow
EnvironmentFile=/etc/airflow/secrets.env
EnvironmentFile=-/run/airflow-prod/{role}.env
ExecStartPre=+/usr/libexec/airflow-prod/role-env {role}
User=airflow
Group=airflow
WorkingDirectory=/opt/airflow
Type=simple
ExecStart=/bin/bash -lc 'source "${{AIRFLOW_VENV}}/bin/activate" && exec airflow {args}'
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


def guide_unit_text(host: Any, unit: str) -> str:
    """The guide's unit for the command our unit runs (same arguments)."""
    execstart = unit_props(host, unit, "ExecStart")["ExecStart"]
    # systemctl show: { path=... ; argv[]=/opt/airflow/venv/bin/airflow celery worker ... ; ... }
    argv = execstart.split("argv[]=", 1)[1].split(" ;", 1)[0].split()
    role = unit.removeprefix("airflow-").removesuffix(".service")
    return GUIDE_UNIT.format(role=role, args=" ".join(argv[1:]))


# Since issue 20 the TLS key and the keytab are root's (LoadCredential= hands them to our
# units alone); the guide's units read them as airflow, as the guide's ownership had it.
GUIDE_READS = ("/opt/airflow/security/airflow_key.pem", "/opt/airflow/security/airflow.keytab")


def use_guide_units(host: Any, units: tuple[str, ...], on: bool) -> None:
    """Swap every unit for the guide's (in /etc/systemd/system, which shadows /usr/lib) or
    back to ours, and restart them."""
    for unit in units:
        path = f"/etc/systemd/system/{unit}"
        if on:
            host.put(path, guide_unit_text(host, unit))
        else:
            host.run(["rm", "-f", path])
    host.run(["chown", "airflow:airflow" if on else "root:root", *GUIDE_READS])
    host.systemctl("daemon-reload")
    # Not checked: a restart job can fail once (on this nspawn host systemd sometimes cannot
    # kill the old cgroup, "Input/output error", and the first start exits 219/CGROUP); the
    # units' own Restart= brings them up, which wait_running waits for.
    host.systemctl("restart", *units, check=False)
    wait_running(host, units, 300)
