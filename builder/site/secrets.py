"""The secrets a site needs: their names in the secrets environment file, what each
means, and which `bundle secrets init` generates. One definition for the secrets
command, the rendered files, the units and webserver_config.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from builder.site.model import Site


@dataclass(frozen=True)
class SecretVar:
    name: str
    meaning: str
    generated: bool  # True: `bundle secrets init` makes a value; False: the admin fills it in


FERNET_KEY = SecretVar("AIRFLOW__CORE__FERNET_KEY", "Fernet key encrypting connections and variables", True)
API_SECRET_KEY = SecretVar("AIRFLOW__API__SECRET_KEY", "[api] secret_key: signs UI sessions and the log servers' tokens; identical on every node", True)
JWT_SECRET = SecretVar("AIRFLOW__API_AUTH__JWT_SECRET", "[api_auth] jwt_secret: signs task and API tokens; identical on every node", True)
DB_PASSWORD = SecretVar("PGPASSWORD", "Password of the metadata database user (libpq and asyncpg read it)", False)
BROKER_PASSWORD = SecretVar("AIRFLOW_BROKER_PASSWORD", "Password of the Redis ACL user broker.user (the broker and the result backend)", True)
LDAP_BIND_PASSWORD = SecretVar("AIRFLOW_LDAP_BIND_PASSWORD", "Password of the LDAP bind DN (read by webserver_config.py)", False)

PLACEHOLDER = "CHANGE-ME"


def secret_vars(site: Site) -> list[SecretVar]:
    """The variables this site's secrets file must define, in file order."""
    found = [FERNET_KEY, API_SECRET_KEY, JWT_SECRET, DB_PASSWORD, BROKER_PASSWORD]
    if site.ldap:
        found.append(LDAP_BIND_PASSWORD)
    return found



# What each role's units receive (docs/security.md has the reasons, from Airflow 3.1.4's own
# sources). The worker holds no fernet key, no jwt_secret and no LDAP password: its tasks
# can read its environment. [api] secret_key: its log server checks log-fetch tokens with it.
# The broker password reaches the units only inside the broker URLs role-env composes.
ROLE_SECRETS: dict[str, tuple[SecretVar, ...]] = {
    "api-server": (FERNET_KEY, API_SECRET_KEY, JWT_SECRET, DB_PASSWORD, LDAP_BIND_PASSWORD),
    "scheduler": (FERNET_KEY, JWT_SECRET, DB_PASSWORD, BROKER_PASSWORD),  # signs the task tokens it queues
    "dag-processor": (FERNET_KEY, JWT_SECRET, DB_PASSWORD),   # its in-process execution API
    "triggerer": (FERNET_KEY, API_SECRET_KEY, JWT_SECRET, DB_PASSWORD),
    # No database password: the result backend is the broker's Redis, and 3.1.4's worker and
    # its tasks reach the metadata only through the execution API.
    "celery-worker": (API_SECRET_KEY, BROKER_PASSWORD),
    "kerberos": (DB_PASSWORD,),                               # `airflow kerberos` checks the schema
    "db-migrate": (DB_PASSWORD,),
    "db-clean": (DB_PASSWORD,),                               # airflow db clean, drop-archived
    "log-groom": (),                                          # files only
}


def role_secrets(site: Site, role: str) -> list[SecretVar]:
    """The secrets of this site that one role's units receive, in file order."""
    return [v for v in secret_vars(site) if v in ROLE_SECRETS[role]]


def read_env_values(path: Path) -> dict[str, str]:
    """NAME=value lines of a secrets file (env_values of its text)."""
    return env_values(path.read_text())


def env_values(text: str) -> dict[str, str]:
    """NAME=value lines as `bundle secrets init` writes them (plain, '...' or "..." with
    \\" \\\\ \\` \\$ escapes, the quoting systemd and sh agree on)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        name, _, raw = line.partition("=")
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == "'":
            value = raw[1:-1]
        elif len(raw) >= 2 and raw[0] == raw[-1] == '"':
            value = re.sub(r'\\(["\\`$])', r"\1", raw[1:-1])
        else:
            value = raw
        values[name.strip()] = value
    return values
