"""Cross-field rules of site.toml: what no single field can check.

Each rule is one function that raises `rule(key, message)` on the first problem it
finds; the loader shows that message as is, so it names the key the user must change.
The model validators call them in a fixed order, and the first broken rule is the one
reported: keep that order when adding one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic_core import PydanticCustomError

from builder import layout
from builder.site.releases import first_with, release

if TYPE_CHECKING:
    from builder.site.model import Site
    from builder.site.sections import Paths, Target

# The provider LDAP login needs (also in the default providers).
FAB_PROVIDER = "apache-airflow-providers-fab"
# Roles a CeleryExecutor deployment cannot run without.
REQUIRED_ROLES = ("api-server", "scheduler", "dag-processor", "triggerer", "celery-worker")
# Roles that talk to the Celery broker.
BROKER_ROLES = ("scheduler", "celery-worker")

# airflow.cfg options the model derives or that hold secrets: overriding them
# in [airflow_cfg] would reintroduce the inconsistencies the model prevents.
SECRET_OPTIONS = {
    ("core", "fernet_key"), ("api", "secret_key"), ("api_auth", "jwt_secret"),
}
DERIVED_OPTIONS = {
    ("core", "execution_api_server_url"): "api.host / api.port",
    ("api", "base_url"): "api.host / api.port",
    ("database", "sql_alchemy_conn"): "[database]",
    ("celery", "result_backend"): "[broker]",
    ("celery", "broker_url"): "[broker]",
    ("kerberos", "ccache"): "kerberos.ccache",
    ("api", "ssl_cert"): "tls.cert",
    ("api", "ssl_key"): "tls.key",
    ("api_auth", "jwt_audience"): "api.jwt_audience",
    ("api", "jwt_audience"): "api.jwt_audience",
    ("api", "workers"): "api.workers",
    ("api", "server_type"): "api.server_type",
    ("api", "worker_refresh_interval"): "api.worker_refresh_interval",
    ("api", "worker_refresh_batch_size"): "api.worker_refresh_batch_size",
}


def rule(key: str, message: str) -> PydanticCustomError:
    """A cross-field error; `key` is the dotted path the user must change."""
    return PydanticCustomError("site_rule", "{key}: " + message, {"key": key})


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent + "/")


# --- [target] ----------------------------------------------------------------------


def check_target(target: Target) -> None:
    if target.builder_image is not None and target.native_builder in ("host", "target"):
        raise rule("target.builder_image", f"is set but native_builder is {target.native_builder!r}, "
                   "which never runs it: set native_builder to 'docker' (or 'auto'), or remove it")


# --- [paths], with its defaults filled in ------------------------------------------


def check_layout(paths: Paths) -> None:
    dirs = paths.directories()
    _one_job_each(dirs)
    rendered = _rendered_files(paths.config)
    # Per directory, both checks: the first directory with a problem is the one reported.
    for key, path in dirs.items():
        _clear_of_rendered_files(key, path, rendered)
        _outside_the_venvs(key, path, dirs)
    _roots_not_writable(paths, dirs)
    _venvs_not_writable(paths, dirs)


def _one_job_each(dirs: dict[str, str]) -> None:
    seen: dict[str, str] = {}
    for key, path in dirs.items():
        if path in seen:
            raise rule(key, f"{path!r} is also {seen[path]}: each directory has one job")
        seen[path] = key


def _rendered_files(config: str) -> dict[str, str]:
    """Files rendered at fixed places on every host: no site path may be or contain them."""
    rendered = {layout.SYSCONFIG: layout.SYSCONFIG, layout.WRAPPER: "the airflow wrapper"}
    return rendered | {f"{config}/{f}": f"{f} of paths.config" for f in layout.CONFIG_FILES}


def _clear_of_rendered_files(key: str, path: str, rendered: dict[str, str]) -> None:
    for file, what in rendered.items():
        if _within(path, file):
            raise rule(key, f"{path!r} collides with {what} ({file}), which airflow-prod writes")


def _outside_the_venvs(key: str, path: str, dirs: dict[str, str]) -> None:
    for venv_key in ("paths.venv", "paths.venv (its versioned venvs)"):
        venv = dirs[venv_key]
        if key != venv_key and path.startswith(venv + "/"):
            raise rule(key, f"{path!r} is inside {venv_key} ({venv}), which every upgrade replaces")


# Directories the airflow user can write (logs, run), or that sites and admins may hand to it
# or to a deploy user (dags, plugins, security).
_WRITABLE = ("dags", "plugins", "logs", "security", "run")


def _venvs_not_writable(paths: Paths, dirs: dict[str, str]) -> None:
    # Root runs code from the venv.
    writable = {k: dirs[f"paths.{k}"] for k in _WRITABLE}
    for venv in (paths.venv, paths.venvs):
        for name, path in writable.items():
            if _within(venv, path):
                raise rule(
                    "paths.venv", f"{venv!r} is inside paths.{name} ({path}), which the airflow user "
                    "can write, while root runs the venv's Python when it builds it: keep the venv "
                    "in a root-owned directory such as <home>/venv"
                )


def _roots_not_writable(paths: Paths, dirs: dict[str, str]) -> None:
    # Root reads the configuration (the airflow wrapper merges its env files) and owns home.
    writable = {k: dirs[f"paths.{k}"] for k in _WRITABLE}
    for key in ("config", "home"):
        path = getattr(paths, key)
        for name, other in writable.items():
            if _within(path, other):
                raise rule(
                    f"paths.{key}", f"{path!r} is inside paths.{name} ({other}), which the airflow user "
                    "(and so every task) can write, while root reads what is there: keep it in a "
                    "root-owned directory such as /etc/airflow"
                )


# --- the site as written: what its defaults are derived from ------------------------


def check_as_written(site: Site) -> None:
    _hosts_listed_once(site)
    _required_roles_run(site)
    _kerberos_configured(site)
    _worker_set_members(site)
    _worker_sets_cover(site)
    _migrate_host_runs_a_migrating_role(site)
    _api_host_named_for_several(site)
    _jwt_audience_honoured(site)
    _api_server_type_offered(site)


def _api_server_type_offered(site: Site) -> None:
    api = site.api
    if api.server_type == "gunicorn" and not release(site.airflow.version).gunicorn:
        raise rule(
            "api.server_type", f"'gunicorn': Airflow {site.airflow.version} has only the uvicorn api-server; "
            f"gunicorn comes with Airflow {first_with('gunicorn')}. Remove it, or move airflow.version forward",
        )
    if api.server_type != "gunicorn":
        for key, value, off in (("worker_refresh_interval", api.worker_refresh_interval, (None, 0)),
                                ("worker_refresh_batch_size", api.worker_refresh_batch_size, (1,))):
            if value not in off:
                raise rule(f"api.{key}", f"{value}: only the gunicorn api-server refreshes its workers "
                           '(uvicorn ignores it); set api.server_type = "gunicorn" or remove it')


def _jwt_audience_honoured(site: Site) -> None:
    if site.api.jwt_audience is not None and not release(site.airflow.version).jwt_audience:
        raise rule(
            "api.jwt_audience", f"{site.api.jwt_audience!r}: Airflow {site.airflow.version} signs its tokens "
            "with [api] jwt_audience and checks them with [api_auth] jwt_audience, so this would make every "
            f"API token invalid; it works from Airflow {first_with('jwt_audience')} on. Remove it, or move "
            "airflow.version forward",
        )


def _hosts_listed_once(site: Site) -> None:
    names = [h.name for h in site.hosts]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise rule("hosts", f"host {dupes[0]!r} is listed twice")


def _required_roles_run(site: Site) -> None:
    missing = [r for r in REQUIRED_ROLES if not site.hosts_with(r)]
    if missing:
        raise rule(
            "hosts", f"no host runs {', '.join(missing)}: a CeleryExecutor deployment needs "
            f"every one of {', '.join(REQUIRED_ROLES)} on some host"
        )


def _kerberos_configured(site: Site) -> None:
    if any("kerberos" in h.roles for h in site.hosts) and not site.kerberos:
        raise rule("kerberos", "a host runs the kerberos role: add [kerberos] with principal (and keytab)")


def _worker_set_members(site: Site) -> None:
    """Set names are unique; each host of a set is a celery-worker host in no other set."""
    known = {h.name: h for h in site.hosts}
    seen: dict[str, str] = {}
    names: set[str] = set()
    for i, ws in enumerate(site.worker_sets):
        if ws.name in names:
            raise rule(f"worker_sets[{i}].name", f"worker set {ws.name!r} is listed twice")
        names.add(ws.name)
        for j, name in enumerate(ws.hosts):
            key = f"worker_sets[{i}].hosts[{j}]"
            if name not in known:
                raise rule(key, f"{name!r} is not one of [[hosts]]")
            if "celery-worker" not in known[name].roles:
                raise rule(key, f"{name!r} does not have the celery-worker role: add it to its roles")
            if name in seen:
                raise rule(
                    key, f"{name!r} is also in worker set {seen[name]!r}: one set per host (each "
                    "worker serves its logs on the same port); give one set several queues instead"
                )
            seen[name] = ws.name


def _worker_sets_cover(site: Site) -> None:
    """Explicit worker sets leave no celery-worker host idle and no task unserved."""
    if not site.worker_sets:
        return
    in_a_set = {name for ws in site.worker_sets for name in ws.hosts}
    idle = [h.name for h in site.hosts if "celery-worker" in h.roles and h.name not in in_a_set]
    if idle:
        raise rule("worker_sets", f"host {idle[0]!r} has the celery-worker role but is in no worker set")
    default = site.celery.queues[0]
    if not any(default in ws.queues for ws in site.worker_sets):
        raise rule(
            "worker_sets", f"no worker set consumes {default!r}, the default queue of every task "
            "without queue= (celery.queues[0]): add it to a set's queues"
        )


def _migrate_host_runs_a_migrating_role(site: Site) -> None:
    if not site.database.migrate_host:
        return
    host = next((h for h in site.hosts if h.name == site.database.migrate_host), None)
    if host is None:
        raise rule("database.migrate_host", f"{site.database.migrate_host!r} is not one of [[hosts]]")
    if not {"scheduler", "api-server"} & set(host.roles):
        raise rule(
            "database.migrate_host", f"{host.name!r} runs neither scheduler nor api-server: "
            "migrations run on a host whose scheduler and api-server they must precede"
        )


def _api_host_named_for_several(site: Site) -> None:
    api_hosts = site.hosts_with("api-server")
    if not site.api.host and len(api_hosts) > 1:
        raise rule(
            "api.host", f"api-server runs on {len(api_hosts)} hosts: name the public host "
            "(the load balancer) that workers and users reach"
        )


# --- the site with its defaults filled in --------------------------------------------


def check_with_defaults(site: Site) -> None:
    _certificate_names_api_host(site)
    _certificate_names_api_servers(site)
    _api_workers(site)
    _ldap_tls(site)
    _broker_tls(site)
    _ldap_provider(site)
    _files_are_not_directories(site)
    _broker_shared(site)
    _airflow_cfg_overrides(site)


def _certificate_names_api_host(site: Site) -> None:
    api_host, tls = site.api.host, site.tls
    if api_host not in tls.dns_names and api_host not in tls.ip_addresses:
        raise rule(
            "tls.dns_names", f"base_url host {api_host!r} (api.host) is not in the certificate's "
            f"subjectAltNames {list(tls.dns_names) + list(tls.ip_addresses)}: "
            "clients would reject the certificate"
        )


def _certificate_names_api_servers(site: Site) -> None:
    sans = set(site.tls.dns_names) | set(site.tls.ip_addresses)
    for host in site.hosts_with("api-server"):
        if host.name not in sans:
            raise rule(
                "tls.dns_names", f"api-server host {host.name!r} is not in the certificate's "
                f"subjectAltNames {sorted(sans)}: every api-server host serves it (behind "
                "the load balancer and directly), so it must name each of them"
            )


def _api_workers(site: Site) -> None:
    api = site.api
    if api.server_type == "uvicorn" and api.workers != 1:
        gunicorn = (f'or set api.server_type = "gunicorn" (Airflow {first_with("gunicorn")} and newer), '
                    if release(site.airflow.version).gunicorn else "")
        raise rule(
            "api.workers", f"{api.workers}: the uvicorn api-server loses extra workers; keep 1 {gunicorn}"
            "or run api-server on more hosts to scale"
        )
    if api.worker_refresh_batch_size > api.workers:
        raise rule(
            "api.worker_refresh_batch_size", f"{api.worker_refresh_batch_size}: more than the "
            f"{api.workers} api.workers it refreshes; at most {api.workers}"
        )


def _ldap_tls(site: Site) -> None:
    ldap = site.ldap
    if ldap is None:
        return
    if ldap.starttls and ldap.ldaps:
        raise rule("ldap.starttls", "StartTLS cannot be used with an ldaps:// URL (it is already TLS)")
    if (ldap.starttls or ldap.ldaps) and not ldap.ca_file:
        raise rule("ldap.ca_file", "LDAPS and StartTLS need the CA file that verifies the LDAP server")
    if not (ldap.starttls or ldap.ldaps) and not ldap.plaintext_reason:
        raise rule(
            "ldap.starttls", f"{ldap.url} without StartTLS sends the bind password and every user's "
            "password in clear: set starttls = true (with ca_file), use ldaps://, or say why in "
            "ldap.plaintext_reason"
        )


def _broker_tls(site: Site) -> None:
    broker = site.broker
    if not broker.tls and not site.broker_is_local and not broker.plaintext_reason:
        raise rule(
            "broker.tls", f"false for {broker.host!r}, another host: the broker password and every "
            "task's token would cross the network in clear. Set tls = true (rediss://, with ca_file), "
            "or say why in broker.plaintext_reason"
        )


def _ldap_provider(site: Site) -> None:
    if site.ldap and FAB_PROVIDER not in site.airflow.providers:
        raise rule("airflow.providers", f"LDAP login needs {FAB_PROVIDER!r} in the list")


def _files_are_not_directories(site: Site) -> None:
    dirs = {path: key for key, path in site.paths.directories().items()}
    files = {"tls.cert": site.tls.cert, "tls.key": site.tls.key, "tls.ca": site.tls.ca}
    if site.kerberos:
        files |= {"kerberos.keytab": site.kerberos.keytab, "kerberos.ccache": site.kerberos.ccache}
    for key, path in files.items():
        if path in dirs:
            raise rule(key, f"{path!r} is the directory {dirs[path]}: name a file")


def _broker_shared(site: Site) -> None:
    if not site.broker_is_local:
        return
    broker_hosts = {h.name for r in BROKER_ROLES for h in site.hosts_with(r)}
    if len(broker_hosts) > 1:
        raise rule(
            "broker.host", f"{site.broker.host!r} differs on each of {sorted(broker_hosts)}, "
            "which all use the broker: name the Redis host they share"
        )


def _airflow_cfg_overrides(site: Site) -> None:
    for section, options in sorted(site.airflow_cfg.items()):
        for option in sorted(options):
            # Airflow reads <option>_cmd (runs it) and <option>_secret (a secrets
            # backend) for these too: the same option by another door.
            base = option.removesuffix("_cmd").removesuffix("_secret")
            if (section, base) in SECRET_OPTIONS:
                raise rule(
                    f"airflow_cfg.{section}.{option}",
                    "secrets never go into airflow.cfg; `bundle secrets init` puts it in the secrets file",
                )
            if (section, base) in DERIVED_OPTIONS:
                raise rule(
                    f"airflow_cfg.{section}.{option}",
                    f"derived from {DERIVED_OPTIONS[(section, base)]}; set that instead",
                )
