"""A hostile tenant on the booted host (docs/security.md, "DAG author / task").

One DAG written as an untrusted author would write it: each task tries one attack and
exits 0 only when the attack was stopped (`blocked_*`), or only when it worked (`open_*`:
what issue 20 has not closed yet, measured and written down, never asserted away). The
e2e asserts every blocked_* task succeeded, nothing was planted, and ordinary DAGs still run.
"""

from __future__ import annotations

import time
from typing import Any

HOSTILE_DAG_ID = "hostile_tenant"
HOSTILE_DAG_PATH = "/opt/airflow/dags/hostile_tenant.py"

VENV_PYTHON = "/opt/airflow/venv/bin/python"

# The broker as airflow.cfg names it (readable by the service user, so by every task), with
# no user and no password: exit 0 only when Redis answers NOAUTH (redis-py from the venv).
_BROKER_WITHOUT_CREDENTIALS = (
    "import re, sys, redis; "
    "url = re.search(r\"^broker_url = (\\S+)$\", open(\"/etc/airflow/airflow.cfg\").read(), re.M).group(1); "
    "bare = re.sub(r\"://[^@/]*@\", \"://\", url); "
    "exec(\"try:\\n redis.Redis.from_url(bare, socket_timeout=5).ping()\\n"
    "except redis.AuthenticationError:\\n sys.exit(0)\\nsys.exit(1)\")"
)

# task id -> shell command; exit 0 means: blocked (blocked_*) or possible (open_*).
ATTACKS = {
    "blocked_read_secrets_file": "! cat /etc/airflow/secrets.env",
    "blocked_env_holds_fernet_jwt_or_ldap":
        "! env | grep -E '^(AIRFLOW__CORE__FERNET_KEY|AIRFLOW__API_AUTH__JWT_SECRET|AIRFLOW_LDAP_BIND_PASSWORD)='",
    "blocked_write_dags": "! touch /opt/airflow/dags/planted.py",
    "blocked_write_plugins": "! touch /opt/airflow/plugins/planted.py",
    "blocked_write_config": "! touch /etc/airflow/planted",
    "blocked_write_security": "! touch /opt/airflow/security/planted",
    "blocked_write_run_dir": "! touch /run/airflow/planted",
    "blocked_write_venv": "! touch /opt/airflow/venv/bin/planted",
    "blocked_read_role_env_files": "! cat /run/airflow-prod/scheduler.env",
    "blocked_open_a_terminal": "! (exec 3<>/dev/tty)",
    # The worker (and so each task) runs as airflow-worker: the TLS key and the keytab are root's
    # (the api-server and the renewer get them as systemd credentials), other components'
    # processes are invisible (ProtectProc=invisible) and their environ closed.
    "blocked_run_as_the_components_user": "test \"$(id -un)\" = airflow-worker",
    "blocked_read_tls_key": "! cat /opt/airflow/security/airflow_key.pem",
    "blocked_read_keytab": "! cat /opt/airflow/security/airflow.keytab",
    "blocked_read_credentials": "! cat /run/credentials/*/*",
    # Hidden (ProtectProc=invisible) or, on Airflow >= 3.2, listed but another uid's: either way
    # the scheduler's environment stays closed.
    "blocked_read_scheduler_environ":
        "! (p=$(pgrep -o -u airflow -f 'airflow scheduler'); test -n \"$p\" && cat /proc/$p/environ)",
    "blocked_secrets_in_any_environ":
        "! (for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null; done "
        "| grep -E '^(AIRFLOW__CORE__FERNET_KEY|AIRFLOW__API_AUTH__JWT_SECRET|AIRFLOW_LDAP_BIND_PASSWORD)=')",
    # Issue 20 item 2: the broker has an ACL user and a password (docs/security.md).
    "blocked_broker_without_credentials": f"{VENV_PYTHON} -c '{_BROKER_WITHOUT_CREDENTIALS}'",
    # The worker needs no database password: the result backend is Redis.
    "blocked_database_password_in_env": "test -z \"$PGPASSWORD\"",
    # Stays (docs/security.md): the worker's own broker credential. Tasks run in its process
    # tree (Celery hands them the messages it reads), so they can read the queue too; the task
    # tokens in it give no more than a task's own token does in 3.1.4, and no database access.
    "open_broker_url_in_env": "test -n \"$AIRFLOW__CELERY__BROKER_URL\"",
}

# Run as root on the host while the DAG's tasks ran: what they failed to read exists, so a
# blocked_* task passed because it was stopped, not because there was nothing to find.
CONTROLS = (
    "test -s /opt/airflow/security/airflow_key.pem && test -s /opt/airflow/security/airflow.keytab",
    "test -s /run/credentials/airflow-api-server.service/tls.key",
    "test -s /run/credentials/airflow-kerberos.service/keytab",
    "pgrep -u airflow -f 'airflow scheduler' >/dev/null",
    "tr '\\0' '\\n' < /proc/$(pgrep -o -u airflow -f 'airflow scheduler')/environ | grep -q '^AIRFLOW__CORE__FERNET_KEY='",
)

PLANTED = ("/opt/airflow/dags/planted.py", "/opt/airflow/plugins/planted.py", "/etc/airflow/planted",
           "/opt/airflow/security/planted", "/run/airflow/planted", "/opt/airflow/venv/bin/planted")


def hostile_dag() -> str:
    tasks = "\n".join(f"    BashOperator(task_id={task!r}, bash_command={cmd!r})" for task, cmd in ATTACKS.items())
    return ("from datetime import datetime\n"
            "from airflow import DAG\n"
            "from airflow.providers.standard.operators.bash import BashOperator\n\n"
            f"with DAG({HOSTILE_DAG_ID!r}, start_date=datetime(2025, 1, 1), schedule=None, catchup=False,\n"
            "         default_args={'retries': 0}):\n"
            f"{tasks}\n")


def run_hostile_tenant(api: Any, host: Any) -> dict[str, str]:
    """Put the DAG in place (as an admin does: root's file), run it once; each task's state."""
    host.put(HOSTILE_DAG_PATH, hostile_dag(), 0o644, "root", "root")
    host.systemctl("restart", "airflow-dag-processor.service")
    api.wait_dag(HOSTILE_DAG_ID)
    # A second run (the newest release, after the upgrade) finds the DAG row left from the first
    # while the file is being parsed again: triggering answers 404 until it is.
    deadline = time.monotonic() + 180
    while True:
        try:
            run_id = api.trigger(HOSTILE_DAG_ID)
            break
        except AssertionError as exc:
            if ": 404 " not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(3)
    api.wait_runs(HOSTILE_DAG_ID, [run_id], timeout=600)
    return {ti["task_id"]: ti["state"] for ti in api.task_instances(HOSTILE_DAG_ID, run_id)}


def no_credentials_probes(data: dict, ca_file: str | None = None) -> dict[str, list[str]]:
    """What a local unprivileged user or a network peer tries, without the site's secrets:
    the broker with no user and with a guessed password, and the metadata database without
    a password. Each command exits 0 only when it is refused for want of credentials."""
    b, db = data["broker"], data["database"]
    tls = ["--tls", "--cacert", ca_file] if ca_file else []
    cli = ["redis-cli", "-h", b["host"], "-p", str(b["port"]), *tls, "--no-auth-warning"]
    refused = "case \"$(\"$@\" 2>&1)\" in *NOAUTH*|*WRONGPASS*) exit 0;; *) exit 1;; esac"
    connect = ("import sys, psycopg2\n"
               "try:\n"
               f"    psycopg2.connect(host={db['host']!r}, port={db['port']}, user={db['user']!r},"
               f" dbname={db['name']!r}, connect_timeout=10, sslmode='prefer')\n"
               "except psycopg2.OperationalError as e:\n"
               "    sys.exit(0 if 'password' in str(e) else 2)\n"
               "sys.exit(1)\n")
    return {
        "broker, no user": ["sh", "-c", refused, "-", *cli, "PING"],
        "broker, guessed password": ["sh", "-c", refused, "-", *cli, "--user", b.get("user", "airflow"),
                                     "--pass", "airflow", "PING"],
        "database, no password": ["env", "-u", "PGPASSWORD", "-u", "PGPASSFILE", VENV_PYTHON, "-c", connect],
    }
