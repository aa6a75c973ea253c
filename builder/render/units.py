"""What each role's systemd unit runs and how tightly it is confined.

Every component runs in the foreground with the venv's `airflow` as MainPID
(no `-D`: dag-processor crashes with it; no bash wrapper: bash would become
MainPID and hide exits).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from builder.layout import (
    BACKUP_DIR, CHECK_NODE, DB_BACKUP, DB_CLEAN, LOG_GROOM, ROLE_ENV, SERVICE_USER, WORKER_USER, role_env_path,
    worker_ccache,
)
from builder.site import Site
from builder.site.model import Host, Limits
from builder.site.releases import release
from builder.render.airflow_cfg import TRIGGERER_LOG_PORT, WORKER_LOG_PORT

MIGRATE_ROLE = "db-migrate"
MIGRATE_UNIT = "airflow-db-migrate.service"
# Retention (docs/operations.md): oneshot units their timers start.
DB_CLEAN_ROLE = "db-clean"
LOG_GROOM_ROLE = "log-groom"
# Components that must not start on a schema older than their code (`airflow kerberos`
# too: it exits "You need to initialize the database" before the schema exists). Not the
# worker: in 3.1.4 it never reads the metadata (tasks use the execution API), and it holds
# no database password (docs/security.md).
SCHEMA_ROLES = ("api-server", "scheduler", "dag-processor", "triggerer", "kerberos")
# Components that read the DAG folder.
DAG_ROLES = ("scheduler", "dag-processor", "triggerer", "celery-worker")


@dataclass(frozen=True)
class Firewall:
    service: str
    description: str
    port: int


@dataclass(frozen=True)
class Credential:
    """A root-only file systemd hands to one unit (LoadCredential=): the unit reads its copy
    in $CREDENTIALS_DIRECTORY, and each of `env` names it there (variable, prefix)."""

    name: str
    source: str
    env: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Timer:
    """When a oneshot unit runs: its .timer, which the package's preset enables and
    airflow.target starts and stops (the unit itself has no [Install])."""

    description: str
    on_calendar: str = ""     # OnCalendar= (with Persistent=: a run missed while off happens at start)
    every: str = ""           # OnUnitActiveSec=, the first run OnActiveSec= after the timer starts
    randomized_delay: str = ""


# The worker's tasks read the renewer's ticket through this pair (site with Kerberos only).
CCACHE_UNIT = "airflow-worker-ccache"


@dataclass(frozen=True)
class UnitSpec:
    role: str
    description: str
    args: tuple[str, ...]
    restart: str = "on-failure"
    # Paces the attempts while the database is away (components exit on losing it, their
    # start checks fail until it is back; no start limit): docs/operations.md.
    restart_sec: int = 10
    # Components that run no user code get the strict profile; the worker runs
    # arbitrary task code and can only be confined as far as tasks allow.
    strict: bool = True
    stop_timeout: int = 90
    kill_mode: str = "control-group"
    # AF_NETLINK on top of the strict families: only for `kinit -a` (address-bound tickets).
    netlink: bool = False
    after: tuple[str, ...] = ()
    wants: tuple[str, ...] = ()
    firewall: tuple[Firewall, ...] = field(default=())
    # A worker set's name: unit airflow-celery-worker-<set>, package airflow-prod-celery-worker-<set>.
    instance: str = ""
    type: str = "exec"
    remain_after_exit: bool = False
    before: tuple[str, ...] = ()
    # ExecStartPre= commands, each an argv whose first word is an absolute path.
    pre: tuple[tuple[str, ...], ...] = ()
    # ExecCondition= / ExecStartPost= commands (the migration unit's once-only stamp).
    condition: tuple[tuple[str, ...], ...] = ()
    post: tuple[tuple[str, ...], ...] = ()
    timeout_start: int = 90
    limits: Limits = Limits()
    # CPUWeight= under contention (systemd's default is 100): lower for the worker, whose
    # tasks must not slow the scheduler and the api-server down.
    cpu_weight: int | None = None
    # Writable beyond the logs and paths.run (the worker: beyond a private /tmp only).
    read_write: tuple[str, ...] = ()
    # The worker runs as its own user: its tasks see no other component's process.
    user: str = SERVICE_USER
    # /proc as the unit sees it: "invisible" hides other users' processes (hidepid).
    protect_proc: str = "invisible"
    credentials: tuple[Credential, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    # What ExecStart= runs: the venv's airflow, or a helper of ours (retention).
    program: str = ""
    timer: Timer | None = None
    # Files it creates: the worker's are group-writable (UMask=0007), so that the triggerer
    # writes beside a task's log and the log groomer, as the service user, deletes them.
    umask: str = "0027"
    # No network at all (PrivateNetwork=): the log groomer.
    private_network: bool = False

    @property
    def env_file(self) -> str:
        """This role's share of the secrets, which role-env writes as the unit starts."""
        return role_env_path(self.role)

    @property
    def secrets_pre(self) -> tuple[str, ...]:
        """ExecStartPre=+ (as root): role-env, before anything reads env_file."""
        return (ROLE_ENV, self.role)

    @property
    def ident(self) -> str:
        return f"airflow-{self.role}-{self.instance}" if self.instance else f"airflow-{self.role}"

    @property
    def name(self) -> str:
        return f"{self.ident}.service"

    @property
    def enabled(self) -> str:
        """The unit a preset enables: the timer of a unit that has one."""
        return f"{self.ident}.timer" if self.timer else self.name

    @property
    def package(self) -> str:
        """Key of the package that ships the unit (airflow-prod-<package>)."""
        return f"{self.role}-{self.instance}" if self.instance else self.role

    @property
    def firewall_package(self) -> str:
        """The role package ships the firewalld service, shared by every worker set."""
        return self.role


def _checks(site: Site, role: str) -> tuple[tuple[str, ...], ...]:
    """ExecStartPre= of a component: this node's secrets and DAG folder, then the schema."""
    checks: list[tuple[str, ...]] = []
    if role != "kerberos":
        checks.append((CHECK_NODE, "--role", role, *(("--dags",) if role in DAG_ROLES else ())))
    if role in SCHEMA_ROLES:
        checks.append((f"{site.paths.venv}/bin/airflow", "db", "check-migrations",
                       "--migration-wait-timeout", str(site.database.migration_wait)))
    return tuple(checks)


def _timeout(site: Site, role: str) -> int:
    # Waiting for the schema is part of starting: systemd must not give up first.
    return site.database.migration_wait + 120 if role in SCHEMA_ROLES else 90


def _role_specs(site: Site) -> dict[str, UnitSpec]:
    """Each role's unit before its start checks: what it runs and what it starts after."""
    broker_after = ("redis.service",) if site.broker_is_local else ()
    # Tickets first: components using Kerberos start after the renewer if it is
    # on the same host (ordering only; it pulls nothing in).
    krb_after = ("airflow-kerberos.service",) if site.kerberos else ()
    # The schema first on the host that migrates it (ordering only: elsewhere the unit
    # does not exist and check-migrations waits instead).
    migrate_after = (MIGRATE_UNIT,)
    gunicorn = site.api.server_type == "gunicorn"
    return {
        "api-server": UnitSpec(
            role="api-server",
            description="Airflow API server and UI",
            args=("api-server",),
            # The TLS key reaches this unit alone (airflow.cfg names the file; it is root's).
            credentials=(Credential("tls.key", site.tls.key, (("AIRFLOW__API__SSL_KEY", ""),)),),
            # gunicorn's master stops its workers gracefully (gunicorn's own systemd advice);
            # SIGKILL for all only after the timeout.
            kill_mode="mixed" if gunicorn else "control-group",
            # gunicorn trusts X-Forwarded-* from loopback by default (Airflow 3.2.x keeps that
            # without --proxy-headers; 3.3 empties it): a task on this host could fake its
            # address. Empty: no client is trusted (docs/security.md).
            environment=(("FORWARDED_ALLOW_IPS", ""),) if gunicorn else (),
            after=krb_after + migrate_after,
            firewall=(Firewall("airflow-api-server", "Airflow API server and UI (HTTPS)", site.api.port),),
        ),
        "scheduler": UnitSpec(
            role="scheduler",
            description="Airflow scheduler",
            args=("scheduler",),
            after=krb_after + migrate_after + broker_after,
            wants=broker_after,
        ),
        "dag-processor": UnitSpec(
            role="dag-processor",
            description="Airflow DAG processor",
            args=("dag-processor",),
            after=krb_after,
        ),
        "triggerer": UnitSpec(
            role="triggerer",
            description="Airflow triggerer",
            args=("triggerer",),
            after=krb_after,
            firewall=(Firewall("airflow-triggerer-logs", "Airflow triggerer log server", TRIGGERER_LOG_PORT),),
        ),
        "celery-worker": _worker_spec(site, krb_after + broker_after, broker_after),
        "kerberos": UnitSpec(
            role="kerberos",
            description="Airflow Kerberos ticket renewer",
            args=("kerberos",),
            # `airflow kerberos` exits 1 on any kinit failure (KDC down, ...):
            # always come back (like every component, it never hits a start limit).
            restart="always",
            netlink=bool(site.kerberos and site.kerberos.include_ip),
            # The keytab reaches the renewer alone (kinit -k -t reads it; KRB5_KTNAME too).
            credentials=(Credential("keytab", site.kerberos.keytab, (
                ("AIRFLOW__KERBEROS__KEYTAB", ""), ("KRB5_KTNAME", "FILE:"))),) if site.kerberos else (),
        ),
    }


def _worker_spec(site: Site, after: tuple[str, ...], wants: tuple[str, ...]) -> UnitSpec:
    ccache: tuple[tuple[str, str], ...] = ()
    if site.kerberos:
        # Tasks use the renewer's ticket through the worker's copy, refreshed at each renewal.
        shared = worker_ccache(site.kerberos.ccache)
        ccache = (("KRB5CCNAME", f"FILE:{shared}"), ("AIRFLOW__KERBEROS__CCACHE", shared))
        after, wants = after + (f"{CCACHE_UNIT}.service",), wants + (f"{CCACHE_UNIT}.path", f"{CCACHE_UNIT}.service")
    return UnitSpec(
        role="celery-worker",
        description="Airflow Celery worker",
        args=("celery", "worker", "--queues", ",".join(site.celery.queues)),
        strict=False,
        user=WORKER_USER,
        # Airflow >= 3.2 makes each task non-dumpable, which hidepid hides from the task's own
        # supervisor: there the worker keeps /proc's default (other uids' environ and memory
        # stay closed: the worker's own user does that; builder/site/releases.py).
        protect_proc="default" if release(site.airflow.version).nondumpable_tasks else "invisible",
        environment=ccache,
        umask="0007",
        cpu_weight=50,
        # Task logs, and whatever the site lets tasks write.
        read_write=(site.paths.logs, *site.celery.read_write_paths),
        # SIGTERM to the main process only: Celery's warm shutdown lets
        # running tasks finish; SIGKILL for all only after the timeout.
        kill_mode="mixed",
        stop_timeout=site.celery.stop_timeout,
        after=after,
        wants=wants,
        firewall=(Firewall("airflow-worker-logs", "Airflow Celery worker log server", WORKER_LOG_PORT),),
    )


def _worker_set_specs(site: Site, spec: UnitSpec) -> list[UnitSpec]:
    """One celery-worker unit per worker set, on its own queues and concurrency."""
    return [replace(
        spec, instance=ws.name, description=f"Airflow Celery worker, set {ws.name}",
        # No --celery-hostname: Airflow 3.1.4 then asks the broker whether that
        # name runs (control.inspect() in the parent), and with kombu's Redis
        # transport the prefork children inherit the pending BRPOP socket and hang
        # in their after-fork cleanup (celery/celery#8874; seen in the cluster
        # e2e: tasks "received", never run). Celery's default node name,
        # celery@<host FQDN>, is already unique: a host runs one set.
        args=("celery", "worker", "--queues", ",".join(ws.queues), "--concurrency",
              str(ws.concurrency or site.celery.concurrency)),
    ) for ws in site.worker_sets]


def _migrate_spec(site: Site, before: tuple[str, ...]) -> UnitSpec:
    """The once-per-site schema migration, before every other unit on its host."""
    return UnitSpec(
        role=MIGRATE_ROLE,
        description="Airflow metadata database migration (airflow db migrate), once per site",
        args=("db", "migrate"),
        type="oneshot",
        remain_after_exit=True,
        restart="no",
        # Before everything on its host, the renewer included (it waits for the schema too):
        # the database needs a password, not a ticket.
        before=before,
        # A backup first when the schema is another release's: the dependable way back.
        pre=_checks(site, MIGRATE_ROLE) + (((DB_BACKUP,),) if site.database.backups_keep else ()),
        read_write=(BACKUP_DIR,) if site.database.backups_keep else (),
        # Once per new venv or configuration (and boot), however often an upgrade restarts it.
        condition=((CHECK_NODE, "--migration-needed"),),
        post=((CHECK_NODE, "--migrated"),),
        # A long migration is still a start: never cut one off half-way.
        timeout_start=3600,
    )


def _retention_specs(site: Site, ccache: tuple[tuple[str, str], ...]) -> list[UnitSpec]:
    """The units that delete what the site no longer keeps ([retention]), each on its timer;
    `ccache` for the one that runs Airflow."""
    r = site.retention
    found = []
    if r.database_days:
        found.append(UnitSpec(
            role=DB_CLEAN_ROLE,
            description="Airflow metadata retention (airflow db clean), once per site",
            args=(), program=DB_CLEAN, type="oneshot", restart="no", environment=ccache,
            pre=((CHECK_NODE, "--role", DB_CLEAN_ROLE),),
            # A first clean of a years-old database is long: never cut it off (stopping
            # airflow.target still does; the next run drops what it left).
            timeout_start=6 * 3600,
            timer=Timer(f"Daily Airflow metadata retention ({r.database_days} days)", on_calendar="daily",
                        randomized_delay="1h"),
        ))
    if r.logs_days or r.logs_max_size:
        found.append(UnitSpec(
            role=LOG_GROOM_ROLE,
            description="Airflow log retention (the log folder's old files)",
            args=(), program=LOG_GROOM, type="oneshot", restart="no", timeout_start=3600,
            private_network=True,
            timer=Timer("Airflow log retention, every 15 minutes", every="15min"),
        ))
    return found


def _with_ccache(ccache: tuple[tuple[str, str], ...], own: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """The renewer's ccache, then the unit's own variables (the worker's own KRB5CCNAME wins)."""
    return tuple({**dict(ccache), **dict(own)}.items())


def unit_specs(site: Site) -> list[UnitSpec]:
    """One spec per unit this site runs anywhere: roles in canonical order (one unit per
    worker set), then the migration unit, then the retention units."""
    specs = _role_specs(site)
    # Every other unit uses the renewer's ccache itself (the worker: its copy).
    ccache = (("KRB5CCNAME", f"FILE:{site.kerberos.ccache}"),) if site.kerberos else ()
    found: list[UnitSpec] = []
    for role in site.roles:
        spec = replace(specs[role], pre=_checks(site, role), timeout_start=_timeout(site, role),
                       limits=site.limits_of(role), environment=_with_ccache(ccache, specs[role].environment))
        if role == "celery-worker" and site.worker_sets:
            found += _worker_set_specs(site, spec)
        else:
            found.append(spec)
    found.append(replace(_migrate_spec(site, tuple(u.name for u in found)), environment=ccache))
    return found + _retention_specs(site, ccache)


def host_units(site: Site, host: Host, units: list[UnitSpec]) -> list[UnitSpec]:
    """Of the site's `units`, those one host runs: its roles (the Kerberos renewer where tasks
    or the triggerer run), its worker set, the migration and database retention units on the
    site's migrate host, and the log groomer everywhere."""
    roles = site.host_roles(host)
    sets = {ws.name for ws in site.worker_sets_of(host)}
    return [
        u for u in units
        if (u.role in (MIGRATE_ROLE, DB_CLEAN_ROLE) and host.name == site.database.migrate_host)
        or u.role == LOG_GROOM_ROLE
        or (u.role in roles and (not u.instance or u.instance in sets))
    ]


def packages(units: list[UnitSpec]) -> list[str]:
    """Keys of the unit packages (airflow-prod-<key>), in unit order; with worker sets the
    celery-worker role package still ships the shared firewalld service."""
    keys: list[str] = []
    for u in units:
        for key in (u.firewall_package if u.firewall else None, u.package):
            if key and key not in keys:
                keys.append(key)
    return keys
