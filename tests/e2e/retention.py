"""Retention on the booted host (issue 22 item 2): the timers are armed, and when they fire,
aged metadata rows and log files go while fresh ones, and whatever a link points to, stay.

The aged rows are audit-log rows dated 200 days back (the site keeps 90); the aged files are
the real worker's task logs of the runs so far, dated 20 days back (the site keeps 15), plus
what a task could plant: a link to the site's configuration.
"""

from __future__ import annotations

import re
from typing import Any

from .target import TargetHost

LOGS = "/opt/airflow/logs"
TIMERS = ("airflow-db-clean.timer", "airflow-log-groom.timer")
AGED_ROWS, FRESH_ROWS = 500, 20
PLANTED = f"{LOGS}/dag_id=test_bash/planted-link"
TARGET = "/etc/airflow/airflow.cfg"


def timers_armed(host: TargetHost) -> dict[str, str]:
    """Each timer active, with the next time it fires."""
    found = {}
    for timer in TIMERS:
        assert host.is_active(timer), f"{timer} is not active: {host.systemctl('status', timer, check=False).stdout}"
        # A calendar timer's next run is a wall-clock time, an interval timer's a monotonic one.
        shown = host.systemctl("show", "-p", "NextElapseUSecRealtime", "-p", "NextElapseUSecMonotonic",
                               timer).stdout
        found[timer] = "; ".join(line for line in shown.splitlines()
                                 if line.split("=", 1)[1] not in ("", "0", "n/a", "infinity"))
        assert found[timer], f"{timer} has no next run: {shown}"
    return found


def _rows(pg: Any, event: str) -> int:
    return int(pg.psql(f"SELECT count(*) FROM log WHERE event = '{event}'"))


def _archive_tables(pg: Any) -> int:
    return int(pg.psql(r"SELECT count(*) FROM pg_tables WHERE tablename LIKE '\_airflow\_deleted\_\_%'"))


def _run_oneshot(host: TargetHost, unit: str) -> str:
    """Start the unit its timer would start, wait for it, return what it said."""
    host.run(["systemctl", "start", unit], timeout=1800)
    result = host.systemctl("show", "-P", "Result", unit).stdout.strip()
    journal = host.journal(unit, 200)
    assert result == "success", f"{unit}: {result}\n{journal[-3000:]}"
    return journal


def database(host: TargetHost, pg: Any) -> dict[str, Any]:
    pg.psql(f"INSERT INTO log (dttm, event, extra) SELECT now() - interval '200 days', 'e2e-aged', 'retention' "
            f"FROM generate_series(1, {AGED_ROWS});"
            f"INSERT INTO log (dttm, event, extra) SELECT now() - interval '1 day', 'e2e-fresh', 'retention' "
            f"FROM generate_series(1, {FRESH_ROWS})")
    journal = _run_oneshot(host, "airflow-db-clean.service")
    said = re.findall(r"db-clean: deleted (\d+) rows from (\d+) tables; no archive table left", journal)
    assert said, journal[-3000:]
    assert _rows(pg, "e2e-aged") == 0, "aged rows survived airflow db clean"
    assert _rows(pg, "e2e-fresh") == FRESH_ROWS, "rows inside the retention were deleted"
    assert _archive_tables(pg) == 0, "an archive table was left behind"
    deleted, tables = map(int, said[-1])
    assert deleted >= AGED_ROWS, journal[-3000:]
    # The site's batch size reached Airflow: the log table's aged rows went in several transactions.
    batches = [int(n) for n in re.findall(r"Performing Delete \(batch (\d+), max 200 rows\)", journal)]
    assert max(batches, default=0) >= -(-AGED_ROWS // 200), journal[-3000:]
    return {"rows deleted": deleted, "tables": tables, "transactions (200 rows at most)": len(batches)}


def logs(host: TargetHost) -> dict[str, Any]:
    # The real worker's task logs so far: their directories must let the groomer (airflow)
    # delete what the worker (airflow-worker) wrote.
    task_logs = host.run(["find", f"{LOGS}/dag_id=test_bash", "-type", "f"]).stdout.split()
    assert task_logs, "no task log yet: the groomer would prove nothing"
    modes = host.run(["find", f"{LOGS}/dag_id=test_bash", "-type", "d", "-printf", "%u:%g %m\n"]).stdout.split("\n")
    assert all(m.endswith(" 770") or m.endswith(" 2770") for m in modes if m.startswith("airflow-worker:")), modes
    host.run(["find", f"{LOGS}/dag_id=test_bash", "-type", "f", "-exec", "touch", "-d", "20 days ago", "{}", "+"])
    # What a task could plant: a link to the configuration, itself old.
    host.run(["ln", "-s", TARGET, PLANTED], user="airflow-worker")
    host.run(["touch", "-h", "-d", "20 days ago", PLANTED])
    before = host.run(["sha256sum", TARGET]).stdout
    fresh = f"{LOGS}/dag_id=e2e_fresh/attempt=1.log"
    host.run(["sh", "-c", f"mkdir -p {LOGS}/dag_id=e2e_fresh && echo fresh > {fresh}"], user="airflow-worker",
             umask="0007")
    journal = _run_oneshot(host, "airflow-log-groom.service")
    said = re.findall(r"log-groom: removed (\d+) files \(([^)]*)\)", journal)
    assert said, journal[-3000:]
    left = [p for p in task_logs if host.exists(p)]
    assert not left, f"aged task logs survived: {left[:5]}"
    assert host.exists(fresh), "a fresh log was removed"
    assert host.run(["sha256sum", TARGET]).stdout == before, "the link's target changed"
    assert host.run(["test", "-L", PLANTED], check=False).returncode == 0, "the groomer removed a link it must skip"
    host.run(["rm", "-f", PLANTED, fresh])
    return {"task log files aged": len(task_logs), "files removed": int(said[-1][0]), "freed": said[-1][1]}
