"""Defaults that follow from other settings: directories under paths.home, api.host from
the hosts, the certificate's names from api.host, files under paths.security, ...

The schema declares such a setting with the default DERIVED (None: "derive it"). Each
function here takes a validated, frozen model and returns a new one with those settings
filled (`model_copy`); the model it is given is never changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from builder.site.releases import release
from builder.site.values import is_ip, is_local

if TYPE_CHECKING:
    from builder.site.model import Site
    from builder.site.sections import Api, Broker, Database, Kerberos, Paths, Tls

# RHEL's system trust: what verifies a database certificate unless the site names a CA file.
SYSTEM_CA = "/etc/pki/tls/certs/ca-bundle.crt"
# The apache-airflow extra that brings the StatsD client.
METRICS_EXTRA = "statsd"
# The extra that brings gunicorn, for [api] server_type = gunicorn.
GUNICORN_EXTRA = "gunicorn"
# With gunicorn: two workers (one can be replaced while the other serves), refreshed every
# 12 h (Airflow's example value for [api] worker_refresh_interval).
GUNICORN_WORKERS = 2
GUNICORN_REFRESH = 43200
# Directories that default to <home>/<name>.
UNDER_HOME = ("venv", "dags", "logs", "plugins", "security")


def paths_under_home(paths: Paths) -> Paths:
    missing = {name: f"{paths.home}/{name}" for name in UNDER_HOME if getattr(paths, name) is None}
    return paths.model_copy(update=missing) if missing else paths


def site_defaults(site: Site) -> Site:
    """`site` with api.host, database.migrate_host and the tls and kerberos files filled.

    Needs the rules of `rules.check_as_written` to hold: some host runs each required role,
    and api.host is set when several hosts run api-server."""
    api_host = site.api.host or site.hosts_with("api-server")[0].name
    migrate_host = site.database.migrate_host or site.hosts_with("scheduler")[0].name
    update: dict[str, Any] = {
        "api": _api(site, api_host),
        "database": _database(site.database, migrate_host),
        "broker": _broker(site.broker),
        "tls": _tls(site, api_host),
    }
    if site.kerberos:
        update["kerberos"] = _kerberos(site.kerberos, site.paths)
    extras = _extras(site)
    if extras != site.airflow.extras:
        update["airflow"] = site.airflow.model_copy(update={"extras": extras})
    return site.model_copy(update=update)


def _extras(site: Site) -> tuple[str, ...]:
    extras = site.airflow.extras
    if site.metrics.statsd_host and METRICS_EXTRA not in extras:
        # Airflow sends StatsD with the `statsd` package, which only this extra installs.
        extras = (*extras, METRICS_EXTRA)
    if site.api.server_type == "gunicorn" and GUNICORN_EXTRA not in extras:
        # Without it the api-server refuses to start ("Gunicorn is not installed").
        extras = (*extras, GUNICORN_EXTRA)
    return extras


def _api(site: Site, api_host: str) -> Api:
    gunicorn = site.api.server_type == "gunicorn"
    workers = site.api.workers or (GUNICORN_WORKERS if gunicorn else 1)
    refresh = site.api.worker_refresh_interval
    if refresh is None and gunicorn:
        refresh = GUNICORN_REFRESH
    return site.api.model_copy(update={"host": api_host, "jwt_audience": _jwt_audience(site), "workers": workers,
                                       "worker_refresh_interval": refresh})


def _jwt_audience(site: Site) -> str | None:
    # Per site where Airflow honours it; check_as_written refused it on earlier releases.
    if site.api.jwt_audience or not release(site.airflow.version).jwt_audience:
        return site.api.jwt_audience
    return f"airflow-prod/{site.site.name}"


def _database(db: Database, migrate_host: str) -> Database:
    # Across a network the password and every query must reach the real server: verified TLS.
    sslmode = db.sslmode or ("prefer" if is_local(db.host) else "verify-full")
    return db.model_copy(update={"migrate_host": migrate_host, "sslmode": sslmode,
                                 "ca_file": db.ca_file or SYSTEM_CA})


def _broker(broker: Broker) -> Broker:
    # Across a network the queue (every task's token) and the password travel: verified TLS.
    tls = (not is_local(broker.host)) if broker.tls is None else broker.tls
    return broker.model_copy(update={"tls": tls, "ca_file": broker.ca_file or SYSTEM_CA})


def _tls(site: Site, api_host: str) -> Tls:
    tls, sec = site.tls, site.paths.security
    # The public name, then every api-server host (each serves the same certificate);
    # an IP address is an iPAddress SAN, never a DNS one.
    names = (api_host, *(h.name for h in site.hosts_with("api-server")))
    return tls.model_copy(update={
        "common_name": tls.common_name or api_host,
        "dns_names": tls.dns_names or tuple(dict.fromkeys(n for n in names if not is_ip(n))),
        "ip_addresses": tls.ip_addresses or ((api_host,) if is_ip(api_host) and not tls.dns_names else ()),
        "cert": tls.cert or f"{sec}/airflow_cert.pem",
        "key": tls.key or f"{sec}/airflow_key.pem",
        "ca": tls.ca or f"{sec}/ca-chain.pem",
    })


def _kerberos(krb: Kerberos, paths: Paths) -> Kerberos:
    return krb.model_copy(update={
        "keytab": krb.keytab or f"{paths.security}/airflow.keytab",
        "ccache": krb.ccache or f"{paths.run}/krb5cc_airflow",
    })
