"""The tables of site.toml ([site], [airflow], [target], [paths], [[hosts]], ...): their
settings, with type, default, help and the checks of single values.

`builder.site.model.Site` puts them together. Each model here validates what it holds
alone; `derive` fills defaults that follow from other settings and `rules` checks what
no single field can.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from builder import report
from builder.site import derive, rules
from builder.site.rules import FAB_PROVIDER
from builder.site.values import (
    DN,
    AbsPath,
    AdvisoryId,
    CfgText,
    DnsName,
    ExtraName,
    HostName,
    HostPath,
    IPAddress,
    ImageRef,
    Items,
    Line,
    OwnedDir,
    PackageName,
    Principal,
    RequirementText,
    SiteName,
    TimeZone,
    Version,
    VersionSpecifier,
    WorkerSetName,
    hostname,
    override_specifier,
)

ROLES = ("api-server", "scheduler", "dag-processor", "triggerer", "celery-worker", "kerberos")
Role = Literal["api-server", "scheduler", "dag-processor", "triggerer", "celery-worker", "kerberos"]

GUIDE_EXTRAS = (
    "jdbc", "kerberos", "ldap", "redis", "rabbitmq", "ssh", "apache-hdfs", "apache-spark",
    "celery", "microsoft-mssql", "oracle", "postgres",
)

# Patterns stay in the JSON Schema for editors; PATTERN_MEANING words them for error messages.
# No '$' (PostgreSQL allows it): the name lands in airflow.cfg URLs, where Airflow expands $NAME.
PG_NAME = r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$"
COUNTRY = r"^[A-Z]{2}$"
QUEUE = r"^[A-Za-z0-9_.-]+$"
# A Redis ACL user: one word in the ACL file, and plain in a URL.
REDIS_USER = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
# systemd's MemoryMax=: bytes with an optional K/M/G/T, a share of the host's memory, or none.
MEMORY = r"^([1-9][0-9]{0,14}[KMGT]?|[1-9][0-9]?%|100%|infinity)$"
CPU_QUOTA = r"^[1-9][0-9]{0,4}%$"
# A size of the log folder: bytes with K, M, G or T.
SIZE = r"^[1-9][0-9]{0,14}[KMGT]?$"
# A StatsD metric prefix: dotted words.
METRIC_PREFIX = r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$"
PATTERN_MEANING = {
    PG_NAME: "a PostgreSQL name: up to 63 letters, digits, '_' or '-', starting with a letter or '_'",
    COUNTRY: "two upper-case letters, an ISO 3166 country code (e.g. EG)",
    QUEUE: "a Celery queue name: letters, digits, '_', '.' or '-'",
    REDIS_USER: "a Redis user name: up to 64 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
    MEMORY: "a systemd memory size: bytes with K, M, G or T (e.g. 4G), a share of the host's memory "
            "(1% to 100%), or infinity",
    CPU_QUOTA: "a share of one CPU in percent (e.g. 200% for two CPUs)",
    SIZE: "a size in bytes with K, M, G or T (e.g. 20G)",
    METRIC_PREFIX: "words of letters, digits and '_' joined by '.' (e.g. airflow or prod.airflow)",
}

Port = Annotated[int, Field(ge=1, le=65535)]
Positive = Annotated[int, Field(ge=1)]


def _listed_once(value: tuple[str, ...]) -> tuple[str, ...]:
    dupes = sorted({v for v in value if value.count(v) > 1})
    if dupes:
        raise PydanticCustomError("site_value", "listed twice: {d}", {"d": ", ".join(dupes)})
    return value


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SiteInfo(Model):
    name: SiteName = Field(description="Short site name; part of package names and the lock file name.")
    description: Line = Field("", description="Free text shown in package descriptions.")


class Override(Model):
    """[airflow.overrides.<package>]: take a package above the release's constraints for a fix."""

    version: VersionSpecifier = Field(
        description="The version to take: exactly this (3.7.2) or a PEP 440 specifier (>=3.7.2,<3.8: "
        "the newest matching release on the index when the lock is made).",
    )
    reason: Items[AdvisoryId] = Field(
        min_length=1, description="The advisories this fixes: CVE-YYYY-NNNN, GHSA-xxxx-xxxx-xxxx or PYSEC-YYYY-N IDs "
        "(bundle audit shows them as resolved once the pin reaches a fixed version).",
    )

    @field_validator("reason")
    @classmethod
    def _no_duplicates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _listed_once(value)

    @property
    def specifier(self) -> SpecifierSet:
        return override_specifier(self.version)


class AirflowSpec(Model):
    version: Version = Field("3.1.4", description="Exact apache-airflow version to install.")
    extras: Items[ExtraName] = Field(GUIDE_EXTRAS, description="apache-airflow extras.")
    providers: Items[RequirementText] = Field(
        (FAB_PROVIDER,), description="Extra provider distributions (FAB is needed for LDAP login)."
    )
    constraints: str | None = Field(
        None,
        description="Constraints file path or URL; default: the official "
        "constraints-<version>/constraints-<python minor>.txt URL.",
    )
    refuse_unsupported: bool = Field(
        False, description="Refuse (bundle check and bundle lock fail) instead of warning when the index "
        "says airflow.version is yanked or its line gets no more fixes.",
    )
    overrides: dict[PackageName, Override] = Field(
        default_factory=dict, description="[airflow.overrides.<package>] version, reason: raise a package "
        "above the release's constraints (or date cutoff) to take a fix, naming the advisories it fixes.",
    )

    @field_validator("overrides")
    @classmethod
    def _overridden_once(cls, value: dict[str, Override]) -> dict[str, Override]:
        names: dict[str, list[str]] = {}
        for name in value:
            names.setdefault(canonicalize_name(name), []).append(name)
        dupes = [" and ".join(repr(n) for n in spelled) for spelled in names.values() if len(spelled) > 1]
        if dupes:
            raise PydanticCustomError("site_value", "the same package twice (names compare as PEP 503 "
                                      "normalizes them): {d}", {"d": "; ".join(dupes)})
        return value

    def override_of(self, name: str) -> Override | None:
        """The override of a package, by any spelling of its name."""
        want = canonicalize_name(name)
        return next((o for n, o in self.overrides.items() if canonicalize_name(n) == want), None)

    @field_validator("constraints")
    @classmethod
    def _constraints_location(cls, value: str | None) -> str | None:
        if value is not None and (any(not ch.isprintable() or ch.isspace() for ch in value)):
            raise PydanticCustomError(
                "site_value", "must not contain spaces or control characters (it is a URL or path)", None
            )
        if value is None or value.startswith(("https://", "http://", "file://", "/")):
            return value
        raise PydanticCustomError(
            "site_value",
            "must be an https:// URL or an absolute file path of a pip constraints file",
            None,
        )

    @field_validator("extras", "providers")
    @classmethod
    def _no_duplicates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _listed_once(value)


class Target(Model):
    os: Literal["el9"] = Field(
        "el9", description="Target OS family: el9 (RHEL 9 and its rebuilds: Rocky, Alma, Oracle)."
    )
    arch: Literal["x86_64"] = Field("x86_64", description="Target CPU architecture.")
    python: Version = Field("3.11.7", description="Exact target interpreter version (RHEL 9.4 python3.11 is 3.11.7).")
    native_builder: Literal["auto", "docker", "host", "target"] = Field(
        "auto", description="How sdist-only native packages are built; auto picks docker, host or target."
    )
    builder_image: ImageRef | None = Field(
        None,
        description="A prepared native-wheel builder image (what Dockerfile.rhel9 makes on a host that "
        "reaches RHEL or Rocky repositories), already in the docker engine: used as is, never built; "
        "its image ID is recorded in the wheelhouse manifest. Default: build Dockerfile.rhel9.",
    )

    @model_validator(mode="after")
    def _check(self) -> Target:
        rules.check_target(self)
        return self

    @property
    def python_minor(self) -> str:
        return ".".join(self.python.split(".")[:2])

    @property
    def interpreter(self) -> str:
        return f"/usr/bin/python{self.python_minor}"


# Settings whose default follows from others: declared None ("derive it"), typed as the
# value they hold once validated. A model validator returns the copy `derive` fills;
# only model_validate passes that copy on (`Paths()` keeps None).
DERIVED: Any = None


class Paths(Model):
    home: OwnedDir = Field("/opt/airflow", description="AIRFLOW_HOME and the airflow user's home.")
    config: OwnedDir = Field("/etc/airflow", description="airflow.cfg, webserver_config.py and secrets.env.")
    venv: OwnedDir = Field(DERIVED, description="Stable venv path (a symlink switched atomically). Default: <home>/venv.")
    dags: OwnedDir = Field(DERIVED, description="DAGs folder. Default: <home>/dags.")
    logs: OwnedDir = Field(DERIVED, description="Task and component logs. Default: <home>/logs.")
    plugins: OwnedDir = Field(DERIVED, description="Plugins folder. Default: <home>/plugins.")
    security: OwnedDir = Field(DERIVED, description="Keytab, TLS key and certificates. Default: <home>/security.")
    run: OwnedDir = Field("/run/airflow", description="Runtime directory (Kerberos ccache).")

    @model_validator(mode="after")
    def _derive_and_check(self) -> Paths:
        # The layout is checked here, not with the site's rules, so that its problems are
        # reported together with those of the other tables.
        paths = derive.paths_under_home(self)
        rules.check_layout(paths)
        return paths

    def directories(self) -> dict[str, str]:
        """Every directory this site creates, by the key that sets it."""
        dirs = {f"paths.{n}": getattr(self, n) for n in ("home", "config", "venv", "dags", "logs",
                                                          "plugins", "security", "run")}
        dirs["paths.venv (its versioned venvs)"] = self.venvs
        return dirs

    @property
    def venvs(self) -> str:
        """Versioned venvs live beside the stable symlink."""
        return f"{self.venv}s"


class Host(Model):
    name: HostName = Field(description="Fully qualified host name.")
    roles: Items[Role] = Field(min_length=1, description=f"Roles this host runs: {', '.join(ROLES)}.")

    @field_validator("roles")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise PydanticCustomError("site_value", "a role is listed twice", None)
        return value


class Database(Model):
    host: HostName = Field(description="PostgreSQL server host.")
    port: Port = 5432
    name: str = Field("airflow", pattern=PG_NAME)
    user: str = Field("airflow", pattern=PG_NAME)
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        DERIVED, description="libpq's sslmode (PGSSLMODE). Default: verify-full for a database on another "
        "host (its certificate checked against ca_file), prefer for one on this host.",
    )
    ca_file: AbsPath = Field(
        DERIVED, description="CA certificates that verify the database's certificate (PGSSLROOTCERT), "
        "read when sslmode is verify-ca or verify-full. Default: RHEL's system trust, "
        "/etc/pki/tls/certs/ca-bundle.crt.",
    )
    migrate_host: HostName = Field(
        DERIVED, description="The one host whose airflow-db-migrate unit runs `airflow db migrate` "
        "(before its scheduler and api-server). Default: the first scheduler host.",
    )
    migration_wait: Positive = Field(
        600, description="Seconds every other component waits for the schema "
        "(`airflow db check-migrations`) before its start fails.",
    )
    backups_keep: int = Field(
        3, ge=0, le=100, description="Before a migration to another release, airflow-db-migrate writes "
        "a pg_dump of the database (the way back: docs/upgrades.md) and keeps this many. 0: no backup "
        "(your own backups must then cover every upgrade).",
    )


class Broker(Model):
    host: HostName = Field("localhost", description="Redis host of the Celery broker.")
    port: Port = 6379
    db: int = Field(0, ge=0, le=15)
    user: str = Field(
        "airflow", pattern=REDIS_USER, description="Redis ACL user of the scheduler and the workers; its "
        "password is AIRFLOW_BROKER_PASSWORD in the secrets file. A local broker is configured with it "
        "by our packages; a remote one needs the ACL line of docs/cluster.md.",
    )
    tls: bool = Field(
        DERIVED, description="rediss:// (TLS, the broker's certificate checked against ca_file and its "
        "name against host). Default: on for a broker on another host, off for one on this host.",
    )
    ca_file: AbsPath = Field(
        DERIVED, description="CA certificates that verify the broker's certificate when tls is on. "
        "Default: RHEL's system trust, /etc/pki/tls/certs/ca-bundle.crt.",
    )
    plaintext_reason: Line | None = Field(
        None, description="Why this site talks to a broker on another host without TLS, sending its "
        "password and every task's token in clear (e.g. a private link). Without it tls = false is "
        "refused for a remote broker.",
    )


class Core(Model):
    default_timezone: TimeZone = "UTC"
    parallelism: Positive = 32
    max_active_tasks_per_dag: Positive = 16
    max_active_runs_per_dag: Positive = 16
    load_examples: bool = False
    test_connection: Literal["Disabled", "Enabled", "Hidden"] = "Disabled"


class Api(Model):
    host: HostName = Field(
        DERIVED, description="Public host name of the api-server (or its load balancer). "
        "Default: the one host running api-server."
    )
    port: Port = 8080
    bind: IPAddress = Field("0.0.0.0", description="Address the api-server listens on.")
    instance_name: CfgText = "Airflow"
    expose_config: bool = False
    server_type: Literal["uvicorn", "gunicorn"] = Field(
        "uvicorn", description="[api] server_type. uvicorn: one worker process (Airflow's default; scale "
        "with more api-server hosts). gunicorn (Airflow 3.2.0 and newer): a master with api.workers "
        "uvicorn workers that share the loaded app, replaced one batch at a time without a dropped "
        "request (docs/operations.md).",
    )
    workers: int = Field(
        DERIVED, ge=1, description="api-server worker processes. Default: 1 with uvicorn (which loses "
        "extra workers), 2 with gunicorn; about the host's CPU cores is Airflow's advice.",
    )
    worker_refresh_interval: int = Field(
        DERIVED, ge=0, description="gunicorn only: seconds between rolling refreshes of the workers "
        "(new ones start before old ones stop; bounds memory growth). 0 turns it off. Default: 43200 "
        "(12 h, Airflow's example value).",
    )
    worker_refresh_batch_size: int = Field(
        1, ge=1, description="gunicorn only: workers replaced at a time (at most api.workers).")
    jwt_audience: CfgText | None = Field(
        DERIVED, description="[api_auth] jwt_audience: the audience of this site's UI and API tokens, so "
        "no other deployment's token is accepted here. Airflow 3.3.0 and newer; default there: "
        "airflow-prod/<site.name>. Earlier releases sign and check tokens with different options "
        "(docs/upgrades.md): setting it there is refused.",
    )


class Tls(Model):
    @model_validator(mode="before")
    @classmethod
    def _no_mode(cls, data: Any) -> Any:
        # tls.mode (csr | self-signed | provided) was never read: which of `bundle tls csr` and
        # `bundle tls self-signed` you run, or bringing your own files, decides. Site files that
        # still set it stay valid; the key is dropped with a warning (docs/site-values.md).
        if isinstance(data, dict) and "mode" in data:
            report.warn("site.toml tls.mode is not read (`bundle tls csr`, `bundle tls self-signed` or "
                        "your own files decide): remove it")
            data = {k: v for k, v in data.items() if k != "mode"}
        return data

    common_name: HostName = Field(DERIVED, description="Default: api.host.")
    organization: Line | None = None
    country: str | None = Field(None, pattern=COUNTRY)
    dns_names: Items[DnsName] = Field((), description="DNS subjectAltNames. Default: [api.host].")
    ip_addresses: Items[IPAddress] = ()
    days: int = Field(365, ge=1, le=3650, description="Validity of a self-signed certificate.")
    key_size: Literal[2048, 3072, 4096] = 4096
    cert: AbsPath = Field(DERIVED, description="Full chain (server first, then CAs). Default: <security>/airflow_cert.pem.")
    key: AbsPath = Field(DERIVED, description="Private key. Default: <security>/airflow_key.pem.")
    ca: AbsPath = Field(DERIVED, description="CA bundle the chain ends in. Default: <security>/ca-chain.pem.")


class Ldap(Model):
    url: str = Field(description="ldap://host[:port] or ldaps://host[:port].")
    starttls: bool = Field(False, description="StartTLS on an ldap:// URL.")
    ca_file: AbsPath | None = Field(None, description="CA certificates to verify the LDAP server (needed for ldaps/StartTLS).")
    plaintext_reason: Line | None = Field(
        None, description="Why this site binds to an ldap:// URL without StartTLS, sending the bind password "
        "and every user's password in clear (e.g. a directory on this host). Without it such a URL is refused.",
    )
    search_base: DN
    search_filter: Line = ""
    bind_dn: DN = Field(description="Service account DN; its password lives in the secrets file.")
    uid_field: Line = "sAMAccountName"
    group_field: Line = "memberOf"
    firstname_field: Line = "givenName"
    lastname_field: Line = "sn"
    email_field: Line = "mail"
    role_mapping: dict[DN, Items[Line]] = Field(
        default_factory=dict, description="Group DN (exactly as in memberOf) -> Airflow roles."
    )
    registration: bool = True
    registration_role: Line = "Viewer"
    roles_sync_at_login: bool = True
    network_timeout: Positive = Field(10, description="Seconds to connect before a login fails.")
    operation_timeout: Positive = Field(30, description="Seconds per LDAP operation.")

    @field_validator("url")
    @classmethod
    def _ldap_url(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        rest = rest[:-1] if rest.endswith("/") else rest
        if rest.startswith("["):  # [IPv6]:port
            host, bracket, port = rest[1:].partition("]")
            ok = bool(bracket) and ":" in host and (not port or port.startswith(":"))
            port = port[1:]
        else:
            host, _, port = rest.partition(":")
            ok = True
        ok = ok and bool(sep) and scheme in ("ldap", "ldaps") and bool(host) and (
            not port or (port.isascii() and port.isdigit() and 0 < int(port) < 65536))
        if ok:
            try:
                hostname(host)
            except PydanticCustomError:
                ok = False
        if not ok:
            raise PydanticCustomError(
                "site_value",
                "not an LDAP URL: use ldap://host[:port] or ldaps://host[:port], an IPv6 address "
                "in brackets (e.g. ldaps://dc.example.com:636 or ldap://[2001:db8::5])",
                None,
            )
        return value

    @property
    def ldaps(self) -> bool:
        return self.url.startswith("ldaps://")


class Kerberos(Model):
    principal: Principal
    keytab: AbsPath = Field(DERIVED, description="Default: <security>/airflow.keytab.")
    ccache: AbsPath = Field(DERIVED, description="FILE ccache shared by all components. Default: <run>/krb5cc_airflow.")
    reinit_frequency: Positive = Field(3600, description="Seconds between ticket renewals.")
    include_ip: bool = Field(
        False, description="Request tickets bound to the host's addresses (kinit -a). Off: addressless "
        "tickets work behind NAT, and the kerberos unit needs no netlink socket.",
    )
    krb5_conf: AbsPath = "/etc/krb5.conf"


class Celery(Model):
    concurrency: Positive = 16
    stop_timeout: Positive = Field(
        600, description="Seconds systemd waits for Celery's warm shutdown (running tasks finish) before SIGKILL."
    )
    queues: Items[Annotated[str, Field(pattern=QUEUE)]] = Field(("default",), min_length=1)
    read_write_paths: Items[AbsPath] = Field(
        (), description="Directories task code may write besides the logs and a private /tmp (the "
        "worker's file system is otherwise read-only).",
    )


class Limits(Model):
    """[limits.<role>]: systemd resource limits of that role's units (every worker set's too)."""

    memory_max: str | None = Field(None, pattern=MEMORY, description="MemoryMax=: e.g. 4G, or 50% of the "
                                   "host's memory; infinity lifts the default.")
    tasks_max: Positive | None = Field(None, description="TasksMax=: processes and threads of the unit.")
    cpu_quota: str | None = Field(None, pattern=CPU_QUOTA, description="CPUQuota=: 200% is two CPUs.")


# Defaults per role (docs/security.md): the worker runs code DAG authors wrote, so one task
# must not take the memory or the process table of the scheduler, the broker and the
# api-server beside it. The servers run trusted code: a cap on processes only. No CPU quota
# by default (the host's CPU count is not known here): the worker's CPUWeight= is lower.
ROLE_LIMITS = {
    "celery-worker": Limits(memory_max="50%", tasks_max=4096),
    **{role: Limits(tasks_max=1024) for role in ("api-server", "scheduler", "dag-processor", "triggerer")},
    "kerberos": Limits(tasks_max=256),
}


class Retention(Model):
    """[retention]: what the hosts delete by themselves, on systemd timers (docs/operations.md).
    The defaults are the official Helm chart's (databaseCleanup, logGroomerSidecar)."""

    database_days: int = Field(
        90, ge=0, le=36500, description="Daily, the migrate host's airflow-db-clean.timer runs `airflow db "
        "clean --skip-archive` for rows older than this many days (runs, task instances, XComs, the "
        "audit log, ...; Airflow keeps each DAG's latest run). No archive tables are left behind. 0: never.",
    )
    database_batch_size: int | None = Field(
        None, ge=1, le=10_000_000, description="Rows `airflow db clean` deletes per transaction "
        "(`--batch-size`; the chart's databaseCleanup.batchSize): a large first clean then holds its "
        "locks for one batch at a time, not one whole table. Default: each table in one transaction.",
    )
    logs_days: int = Field(
        15, ge=0, le=36500, description="Every 15 minutes each host's airflow-log-groom.timer deletes files "
        "in the log folder last written more than this many days ago. 0: never by age.",
    )
    logs_max_size: str | None = Field(
        None, pattern=SIZE, description="Then, if the log folder is still larger, the groomer deletes its "
        "oldest files (none written in the last 10 minutes) until it is under this size (e.g. 20G). "
        "Default: no limit by size.",
    )

    @property
    def logs_max_bytes(self) -> int | None:
        if not self.logs_max_size:
            return None
        unit = self.logs_max_size[-1]
        power = "KMGT".find(unit) + 1
        return int(self.logs_max_size[:-1] if power else self.logs_max_size) * 1024 ** power


class Metrics(Model):
    """[metrics]: every component sends its metrics by StatsD (UDP) to the site's collector
    (statsd_exporter, Telegraf, a StatsD daemon; docs/operations.md, Metrics)."""

    statsd_host: HostName | None = Field(
        None, description="The collector's host. Setting it turns metrics on (and adds Airflow's statsd "
        "extra to the lock). Default: no metrics.",
    )
    statsd_port: Port = 8125
    prefix: Annotated[str, Field(pattern=METRIC_PREFIX)] = Field(
        "airflow", description="The prefix of every metric name (StatsD's dotted words).")


class WorkerSet(Model):
    """[[worker_sets]]: Celery workers that serve some queues on some hosts."""

    name: WorkerSetName = Field(description="Unit airflow-celery-worker-<name>, package "
                                "airflow-prod-celery-worker-<name>.")
    queues: Items[Annotated[str, Field(pattern=QUEUE)]] = Field(
        min_length=1, description="Queues these workers consume (a task's queue= routes it here).")
    concurrency: Positive | None = Field(None, description="Task slots per worker. Default: celery.concurrency.")
    hosts: Items[HostName] = Field(min_length=1, description="Hosts (with the celery-worker role) running this set.")

    @field_validator("queues", "hosts")
    @classmethod
    def _no_duplicates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _listed_once(value)


class Dags(Model):
    shared: bool = Field(
        False, description="The DAG folder is shared by every host (an NFS mount, ...): components "
        "refuse to start while it is empty, as an unmounted mount point is.",
    )


class Publish(Model):
    """[publish]: who signs the RPMs and repomd.xml. The key never leaves the build host."""

    gpg_key: Line | None = Field(
        None, description="Signing key: fingerprint (best), key ID or user ID. Default: the keyring's only secret key."
    )
    gpg_home: HostPath | None = Field(None, description="GnuPG home holding the key. Default: $GNUPGHOME or ~/.gnupg.")
    sign: bool = Field(True, description="Sign RPMs and repomd.xml; false only for local test repositories.")


