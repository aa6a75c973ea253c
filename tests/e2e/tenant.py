"""A hostile tenant on the booted host (docs/security.md, "DAG author / task").

One DAG written as an untrusted author would write it: each task tries one attack and
exits 0 only when the attack was stopped (`blocked_*`), or only when it worked (`open_*`:
what issue 20 has not closed yet, measured and written down, never asserted away). The
e2e asserts every blocked_* task succeeded, nothing was planted, and ordinary DAGs still run.
"""

from __future__ import annotations

from typing import Any

HOSTILE_DAG_ID = "hostile_tenant"
HOSTILE_DAG_PATH = "/opt/airflow/dags/hostile_tenant.py"

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
    "blocked_see_other_components": "! pgrep -u airflow",
    "blocked_secrets_in_any_environ":
        "! (for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null; done "
        "| grep -E '^(AIRFLOW__CORE__FERNET_KEY|AIRFLOW__API_AUTH__JWT_SECRET|AIRFLOW_LDAP_BIND_PASSWORD)=')",
    # Open (issue 20): the broker has no password yet; the worker holds the database password.
    "open_database_password_in_env": "test -n \"$PGPASSWORD\"",
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
    run_id = api.trigger(HOSTILE_DAG_ID)
    api.wait_runs(HOSTILE_DAG_ID, [run_id], timeout=600)
    return {ti["task_id"]: ti["state"] for ti in api.task_instances(HOSTILE_DAG_ID, run_id)}
