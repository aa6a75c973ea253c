"""Where everything lands on the target host: paths, kinds, owners and modes, as data.

render writes its files to these paths, rpm packages them with these owners and
modes, material and the CLI name them to admins, and the site model keeps its own
directories clear of them. No host path is written anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# RHEL's places for what packages ship.
UNIT_DIR = "/usr/lib/systemd/system"
PRESET_DIR = "/usr/lib/systemd/system-preset"
FIREWALLD_DIR = "/usr/lib/firewalld/services"
SYSUSERS = "/usr/lib/sysusers.d/airflow-prod.conf"
TMPFILES = "/usr/lib/tmpfiles.d/airflow-prod.conf"
SYSCONFIG = "/etc/sysconfig/airflow"

# The admin's entry point.
WRAPPER = "/usr/bin/airflow"
# Root's day-2 commands (`airflow-prod doctor`), for admins and monitoring, as root or airflow.
ADMIN_TOOL = "/usr/sbin/airflow-prod"

# Who runs what: every component as the service user, but the Celery worker and so every
# task as its own user, in the service group (config, logs) and nothing more: a task reads
# neither another component's /proc/<pid>/environ nor its memory (docs/security.md).
SERVICE_USER = "airflow"
SERVICE_GROUP = "airflow"
WORKER_USER = "airflow-worker"
# The worker's copy of the renewer's Kerberos ccache (kinit writes it 0600, the renewer's):
# airflow-worker-ccache.service refreshes it after every renewal, group-readable.
WORKER_CCACHE_DIR = "/run/airflow-worker"

# The site-independent payload (airflow-prod-wheelhouse).
LIBDIR = "/usr/lib/airflow-prod"
WHEEL_DIR = f"{LIBDIR}/wheelhouse"
LOCK_PATH = f"{LIBDIR}/requirements.txt"
UV_DIR = f"{LIBDIR}/uv"

# Root's helpers (airflow-prod): the venv builder and every component's start check.
LIBEXEC = "/usr/libexec/airflow-prod"
BUILD_VENV = f"{LIBEXEC}/build-venv"
CHECK_NODE = f"{LIBEXEC}/check-node"
ROLE_ENV = f"{LIBEXEC}/role-env"
# The metadata database's backup before a migration, and the way back (docs/upgrades.md).
DB_BACKUP = f"{LIBEXEC}/db-backup"
DB_RESTORE = f"{LIBEXEC}/db-restore"
# Retention, each on its timer (docs/operations.md): old metadata rows, old log files.
DB_CLEAN = f"{LIBEXEC}/db-clean"
LOG_GROOM = f"{LIBEXEC}/log-groom"
STATE_DIR = "/var/lib/airflow-prod"
BACKUP_DIR = f"{STATE_DIR}/backups"
# Each role's share of the secrets file, written by role-env as each unit starts: root's alone.
ROLE_ENV_DIR = "/run/airflow-prod"
# The local broker (RHEL's redis.service): our drop-in, and the ACL file role-env writes from
# the secrets at each start (root:redis 0640, the password's hash only).
REDIS_UNIT = "redis.service"
REDIS_DROPIN = f"{UNIT_DIR}/{REDIS_UNIT}.d/50-airflow-prod.conf"
REDIS_ACL = "/run/airflow-prod-redis/users.acl"
REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CONF = "/etc/redis/redis.conf"  # RHEL 9's (redis 6.2), read first; our options follow it

LOG_DIR = "/var/log/airflow-prod"
BUILD_VENV_LOG = f"{LOG_DIR}/build-venv.log"
# fapolicyd's trust list of the venvs build-venv makes (`fapolicyd-cli --trust-file NAME`).
FAPOLICYD_TRUST_NAME = "airflow-prod"
FAPOLICYD_TRUST = f"/etc/fapolicyd/trust.d/{FAPOLICYD_TRUST_NAME}"
DOC_DIR = "/usr/share/doc/airflow-prod"
SECRETS_EXAMPLE = f"{DOC_DIR}/secrets.env.example"
# The CycloneDX SBOM of the wheelhouse the venv is built from (docs/sbom.md).
WHEELHOUSE_SBOM = f"{DOC_DIR}/wheelhouse.cdx.json"

# The files airflow-prod writes into paths.config (the secrets file is the admin's).
CONFIG_FILES = ("airflow.cfg", "webserver_config.py", "secrets.env", "secrets.fingerprint")


class _Paths(Protocol):
    """The site's directories (builder.site.model.Paths), as far as this table reads them:
    the site model imports this module, so it is named by shape, not imported."""

    @property
    def home(self) -> str: ...
    @property
    def config(self) -> str: ...
    @property
    def dags(self) -> str | None: ...
    @property
    def plugins(self) -> str | None: ...
    @property
    def logs(self) -> str | None: ...
    @property
    def security(self) -> str | None: ...
    @property
    def venvs(self) -> str: ...
    @property
    def run(self) -> str: ...


class Site(Protocol):
    @property
    def paths(self) -> _Paths: ...


@dataclass(frozen=True)
class HostDir:
    """A directory airflow-prod owns on every host, with the owner and mode rpm gives it."""

    path: str
    mode: int
    owner: str = "root"
    group: str = "root"


def config_file(site: Site, name: str) -> str:
    """One of CONFIG_FILES, in the site's configuration directory."""
    assert name in CONFIG_FILES, name
    return f"{site.paths.config}/{name}"


def secrets_path(site: Site) -> str:
    """Where the secrets file lives on every host (root:root 0600: each unit gets its role's share)."""
    return config_file(site, "secrets.env")


def role_env_path(role: str) -> str:
    return f"{ROLE_ENV_DIR}/{role}.env"


def fingerprint_path(site: Site) -> str:
    return config_file(site, "secrets.fingerprint")


def _filled(path: str | None) -> str:
    assert path is not None, "Paths fills in every directory under home"
    return path


def site_dirs(site: Site) -> tuple[HostDir, ...]:
    """The site's own directories, as the base package owns them and systemd-tmpfiles keeps
    them (at every boot too: a volume mounted late still gets its owner and mode)."""
    p = site.paths
    return (
        # Root's, like the venvs and the venv symlink in it: a service user that could
        # rename entries here could swap the code root runs in %post.
        HostDir(p.home, 0o755),
        # Code every component imports: root's, so no task changes what the scheduler, the
        # api-server or the next task runs. Putting DAGs in place is an admin's act (docs/security.md).
        HostDir(_filled(p.dags), 0o755),
        HostDir(_filled(p.plugins), 0o755),
        # The worker writes task logs as its own user in the service group.
        HostDir(_filled(p.logs), 0o770, SERVICE_USER, SERVICE_GROUP),
        # The CA chain and certificate; the TLS key and the keytab in it are root's alone
        # (0600), handed to the api-server and the renewer as systemd credentials.
        HostDir(_filled(p.security), 0o750, "root", SERVICE_GROUP),
        HostDir(p.config, 0o750, "root", SERVICE_GROUP),
    )


def runtime_dir(site: Site) -> HostDir:
    """paths.run: made at boot (tmpfiles) and by the units (RuntimeDirectory=), never packaged."""
    return HostDir(site.paths.run, 0o750, SERVICE_USER, SERVICE_GROUP)


def worker_ccache_dir() -> HostDir:
    """Written by airflow-worker-ccache.service as the service user; read by the worker's group."""
    return HostDir(WORKER_CCACHE_DIR, 0o750, SERVICE_USER, SERVICE_GROUP)


def worker_ccache(ccache: str) -> str:
    """Where the worker's tasks find the renewer's ticket (`ccache`: [kerberos] ccache)."""
    return f"{WORKER_CCACHE_DIR}/{ccache.rsplit('/', 1)[-1]}"


def owned_dirs(site: Site) -> tuple[HostDir, ...]:
    """Every directory the base package owns, in a fixed order.

    Explicit, so no mode comes from the build host's umask; none of them is a RHEL
    directory (builder/rpm/dirs.py checks)."""
    return (
        *site_dirs(site),
        # The venvs are root's: the service user must not be able to rewrite its own code.
        HostDir(site.paths.venvs, 0o755),
        HostDir(LIBEXEC, 0o755),
        HostDir(STATE_DIR, 0o755),
        # Database dumps: the service user's alone (they hold every connection, encrypted).
        HostDir(BACKUP_DIR, 0o700, SERVICE_USER, SERVICE_GROUP),
        HostDir(LOG_DIR, 0o750),
        HostDir(DOC_DIR, 0o755),
    )


def file_group(site: Site, dest: str) -> str:
    """The group of a packaged file: under the config directory the service user's group
    may read it (root alone writes it); everywhere else root's."""
    return SERVICE_GROUP if dest.startswith(site.paths.config + "/") else "root"
