"""The typed, frozen model of site.toml: `Site`, made of the tables in `sections`.

Every setting is declared once, with its type, default and help; the JSON Schema
for editors, validation and rendering all come from this model. Validating a site
is three jobs, in this order: the schema (fields and their single-value checks),
then `derive` fills the defaults that follow from other settings, then `rules`
checks what no single field can. Values that follow from others (base_url,
execution_api_server_url, the Celery result backend, ...) are *derived*
properties, never settings, so they cannot disagree with each other.
"""

from __future__ import annotations

from typing import cast
from urllib.parse import quote

from pydantic import Field, model_validator

from builder.site import derive, rules
from builder.site.sections import (
    PATTERN_MEANING,
    ROLE_LIMITS,
    ROLES,
    AirflowSpec,
    Api,
    Broker,
    Celery,
    Core,
    Dags,
    Database,
    Host,
    Kerberos,
    Ldap,
    Limits,
    Metrics,
    Model,
    Override,
    Paths,
    Publish,
    Retention,
    Role,
    SiteInfo,
    Target,
    Tls,
    WorkerSet,
)
from builder.site.values import CfgName, CfgValue, EnvName, EnvValue, Items, is_local, url_host

# Callers import the tables from here too.
__all__ = [
    "PATTERN_MEANING", "ROLES", "AirflowSpec", "Api", "Broker", "Celery", "Core", "Dags", "Database",
    "Host", "Kerberos", "Ldap", "Limits", "Metrics", "Override", "Paths", "Publish", "Retention", "Site", "SiteInfo",
    "Target", "Tls", "WorkerSet",
]


class Site(Model):
    """One deployment: every host, role and setting, validated."""

    site: SiteInfo
    airflow: AirflowSpec = AirflowSpec()
    target: Target = Target()
    # model_validate, not Paths(): only validation returns the Paths with its derived directories.
    paths: Paths = Paths.model_validate({})
    hosts: Items[Host] = Field(min_length=1)
    database: Database
    broker: Broker = Broker()
    core: Core = Core()
    api: Api = Api()
    tls: Tls = Tls()
    ldap: Ldap | None = None
    kerberos: Kerberos | None = None
    celery: Celery = Celery()
    worker_sets: Items[WorkerSet] = Field(
        (), description="Celery worker sets. Default: one set of celery.queues on every celery-worker host "
        "(unit airflow-celery-worker).",
    )
    dags: Dags = Dags()
    retention: Retention = Retention()
    metrics: Metrics = Metrics()
    limits: dict[Role, Limits] = Field(
        default_factory=dict, description="[limits.<role>] memory_max, tasks_max, cpu_quota: systemd resource "
        "limits per role, over the defaults (celery-worker: memory_max 50%, tasks_max 4096).",
    )
    environment: dict[EnvName, EnvValue] = Field(
        default_factory=dict, description="Extra variables for /etc/sysconfig/airflow (e.g. HADOOP_CONF_DIR)."
    )
    airflow_cfg: dict[CfgName, dict[CfgName, CfgValue]] = Field(
        default_factory=dict, description="Free-form airflow.cfg overrides: [airflow_cfg.<section>] option = value."
    )
    publish: Publish = Field(
        default_factory=Publish, description="Signing of the RPMs and the repository (bundle build)."
    )

    @model_validator(mode="after")
    def _derive_and_check(self) -> Site:
        # Validation returns the site `derive` builds; self stays as parsed. (`Site(...)` would
        # return self: sites are made by model_validate, in builder.site.load.)
        rules.check_as_written(self)
        site = derive.site_defaults(self)
        rules.check_with_defaults(site)
        return site

    # --- derived values: one source of truth -----------------------------------

    def hosts_with(self, role: str) -> list[Host]:
        return [h for h in self.hosts if role in self.host_roles(h)]

    def host_roles(self, host: Host) -> tuple[str, ...]:
        """The roles a host runs, in canonical order: its own, plus the Kerberos renewer on
        every host that runs tasks or the triggerer when the site uses Kerberos."""
        roles = set(host.roles)
        if self.kerberos and roles & {"celery-worker", "triggerer"}:
            roles.add("kerberos")
        return tuple(r for r in ROLES if r in roles)

    def worker_sets_of(self, host: Host) -> list[WorkerSet]:
        return [ws for ws in self.worker_sets if host.name in ws.hosts]

    def limits_of(self, role: str) -> Limits:
        """The role's resource limits: the site's settings over the role's defaults."""
        default = ROLE_LIMITS.get(role, Limits())
        given = cast(dict[str, Limits], self.limits).get(role)  # any unit's role; db-migrate has none
        if given is None:
            return default
        return default.model_copy(update=given.model_dump(exclude_none=True))

    @property
    def roles(self) -> tuple[str, ...]:
        """Roles run somewhere on this site, in canonical order."""
        return tuple(r for r in ROLES if self.hosts_with(r))

    @property
    def base_url(self) -> str:
        port = "" if self.api.port == 443 else f":{self.api.port}"
        return f"https://{url_host(self.api.host)}{port}"

    @property
    def execution_api_server_url(self) -> str:
        return f"{self.base_url}/execution/"

    @property
    def _db_location(self) -> str:
        db = self.database
        # No password and no ?sslmode: libpq (psycopg2) and asyncpg both read
        # PGPASSWORD (secrets file) and PGSSLMODE (sysconfig); asyncpg rejects
        # an sslmode query argument on the derived async URL.
        return f"{db.user}@{url_host(db.host)}:{db.port}/{db.name}"

    @property
    def sql_alchemy_conn(self) -> str:
        return f"postgresql+psycopg2://{self._db_location}"

    @property
    def result_backend(self) -> str:
        """The same Redis, user and TLS as the broker: the worker then holds no database
        password at all (docs/security.md, "Secrets per role")."""
        return self.broker_url

    @property
    def broker_url(self) -> str:
        """Without the password: role-env inserts it (URL-quoted) for the roles that get it.
        TLS as URL parameters, which both kombu (the broker) and Celery's Redis result
        backend read; `[celery] ssl_active` reaches the broker only."""
        b = self.broker
        scheme, query = "redis", ""
        if b.tls:
            scheme = "rediss"
            query = ("?ssl_cert_reqs=required&ssl_ca_certs=" + quote(b.ca_file, safe="/")
                     + "&ssl_check_hostname=true")
        return f"{scheme}://{b.user}@{url_host(b.host)}:{b.port}/{b.db}{query}"

    @property
    def broker_is_local(self) -> bool:
        return is_local(self.broker.host)

