"""The site file of the end-to-end test: the guide's deployment, pointed at the test's servers.

One host runs every role. It targets RHEL 9 (`os = "el9"`, the default) at the
stand-in's exact interpreter (Debian 12's python3.11 is 3.11.2). The native sdists
compile on the booted host (`native_builder = "target"`), against its own libldap
and libkrb5, as they do on a RHEL 9 host for a bundle built without docker.
"""

from __future__ import annotations

from typing import Any

from builder.site.model import ROLES

from .fixtures import TARGET_HOST

STANDIN_PYTHON = "3.11.2"
# Enough of the guide's extras for every service the test proves; the heavy
# ones (apache-spark alone is 415 MB of wheels) prove nothing more here.
E2E_EXTRAS = ["celery", "redis", "postgres", "ldap", "kerberos"]


def tls_only_site_data() -> dict[str, Any]:
    """The smallest valid site carrying the e2e host's TLS settings (for the CSR flow)."""
    return {
        "site": {"name": "e2e"},
        "target": {"python": STANDIN_PYTHON, "native_builder": "target"},
        "hosts": [{"name": TARGET_HOST, "roles": [r for r in ROLES if r != "kerberos"]}],
        "database": {"host": "127.0.0.1"},
        "api": {"host": TARGET_HOST, "bind": "127.0.0.1"},
        "tls": {"organization": "airflow-prod e2e", "country": "EG",
                "dns_names": [TARGET_HOST, "localhost"], "ip_addresses": ["127.0.0.1"],
                "key_size": 2048},
    }


def e2e_site_data(*, api_port: int, postgres, redis, ldap, kdc, ca_on_target: str) -> dict[str, Any]:
    """The full e2e site. `ca_on_target`: where the test CA lands on the target host."""
    data = tls_only_site_data()
    data["hosts"] = [{"name": TARGET_HOST, "roles": list(ROLES)}]
    data["airflow"] = {"version": "3.1.4", "extras": E2E_EXTRAS,
                       "providers": ["apache-airflow-providers-fab"]}
    data["database"] = {"host": postgres.host, "port": postgres.port, "name": postgres.dbname,
                        "user": postgres.user, "sslmode": "disable"}
    data["broker"] = {"host": redis.host, "port": redis.port, "db": 0}
    data["core"] = {"default_timezone": "UTC", "load_examples": False, "parallelism": 8,
                    "max_active_tasks_per_dag": 4, "max_active_runs_per_dag": 4}
    data["api"] = {"host": TARGET_HOST, "port": api_port, "bind": "127.0.0.1",
                   "instance_name": "airflow-prod e2e", "workers": 1}
    mapped = [ldap.admin_group, ldap.users_group]
    data["ldap"] = {
        "url": ldap.url, "starttls": True, "ca_file": ca_on_target,
        "search_base": ldap.users_base,
        # Only members of a mapped group may log in: the no-group user is refused.
        "search_filter": "(|" + "".join(f"(memberOf={g})" for g in mapped) + ")",
        "bind_dn": ldap.bind.dn,
        "uid_field": "sAMAccountName", "group_field": "memberOf",
        "role_mapping": {ldap.admin_group: ["Admin"], ldap.users_group: ["User"]},
        "registration": True, "registration_role": "Public", "roles_sync_at_login": True,
        "network_timeout": 5, "operation_timeout": 10,
    }
    data["kerberos"] = {"principal": kdc.principal, "reinit_frequency": 30, "krb5_conf": "/etc/krb5.conf"}
    data["celery"] = {"concurrency": 2, "queues": ["default"], "stop_timeout": 60}
    # A task killed with its worker is retried once its heartbeat is this old (Airflow: 300 s);
    # shorter here so the fault phase's kill of the worker stays within CI time (docs/operations.md).
    data["airflow_cfg"] = {"scheduler": {"task_instance_heartbeat_timeout": 60}}
    return data


# --- writing site.toml (the CLI reads files; the standard library only reads TOML) ---------

_BARE_KEY = __import__("re").compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML here")


def _table(prefix: str, data: dict[str, Any], out: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and not _is_table_list(v)}
    if prefix and (scalars or not data):
        out.append(f"\n[{prefix}]")
    for k, v in scalars.items():
        out.append(f"{_key(k)} = {_value(v)}")
    for k, v in data.items():
        path = f"{prefix}.{_key(k)}" if prefix else _key(k)
        if isinstance(v, dict):
            _table(path, v, out)
        elif _is_table_list(v):
            for item in v:
                out.append(f"\n[[{path}]]")
                for ik, iv in item.items():
                    out.append(f"{_key(ik)} = {_value(iv)}")


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def to_toml(data: dict[str, Any]) -> str:
    """site.toml text for `data` (tables, arrays of tables, scalars and arrays of scalars)."""
    out: list[str] = ["# Generated by tests/e2e/site.py for one end-to-end run."]
    _table("", data, out)
    return "\n".join(out).lstrip("\n") + "\n"
