"""Render every file of a site: templates x Site -> Rendered (pure).

`render_site` computes; `write_tree` writes. Rendering the same site twice
gives the same bytes. The result also carries what rendering decided (the
units, which package ships each, which host runs which), so packaging reads
it instead of working it out from the Site again.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
import tempfile
from dataclasses import dataclass
from pathlib import Path

from builder.fsutil import write_atomic
from builder.layout import (
    ADMIN_TOOL, BACKUP_DIR, CHECK_NODE, DB_BACKUP, DB_CLEAN, DB_RESTORE, FAPOLICYD_TRUST, FIREWALLD_DIR, LOG_GROOM,
    PRESET_DIR, REDIS_ACL, REDIS_CONF, REDIS_DROPIN, REDIS_SERVER, REDIS_UNIT, ROLE_ENV, ROLE_ENV_DIR, SECRETS_EXAMPLE,
    SERVICE_GROUP, SERVICE_USER, SYSCONFIG, SYSUSERS, TMPFILES, UNIT_DIR, WORKER_USER, WRAPPER, config_file, fingerprint_path,
    runtime_dir, secrets_path, site_dirs, worker_ccache, worker_ccache_dir,
)
from builder.render.airflow_cfg import airflow_cfg_options
from builder.render.jinja import render_template
from builder.render.units import CCACHE_UNIT, UnitSpec, host_units, packages as unit_packages, unit_specs
from builder.site import Site
from builder.site.secrets import (
    BROKER_PASSWORD, JWT_SECRET, LDAP_BIND_PASSWORD, PLACEHOLDER, ROLE_SECRETS, SecretVar, role_secrets, secret_vars,
)

# Which package ships a file: the base package, the site configuration, or a role.
BASE = "base"
CONFIG = "config"


@dataclass(frozen=True)
class RenderedFile:
    dest: str        # absolute path on the target host
    text: str
    mode: int = 0o644
    package: str = BASE  # BASE, CONFIG or a role name
    config: bool = False  # %config(noreplace): admins' edits survive upgrades

    @property
    def relpath(self) -> str:
        return self.dest.lstrip("/")


@dataclass(frozen=True)
class Rendered:
    """Everything one render of a site gives: its files and the decisions behind them."""

    files: tuple[RenderedFile, ...]              # sorted by destination
    units: tuple[UnitSpec, ...]                  # every unit the site runs anywhere, in unit order
    packages: tuple[str, ...]                    # keys of the unit packages (airflow-prod-<key>)
    hosts: tuple[tuple[str, tuple[UnitSpec, ...]], ...]  # each host of the site file and its units

    def role_of(self, package: str) -> str:
        """The role a unit package serves (the worker sets' shared package: celery-worker)."""
        return next((u.role for u in self.units if u.package == package), package)

    def units_of(self, host: str) -> tuple[UnitSpec, ...]:
        return dict(self.hosts)[host]


def render_site(site: Site, fingerprints: dict[str, str] | None = None) -> Rendered:
    """Every file the site needs on its hosts, sorted by destination, with its units.

    `fingerprints` (builder.fingerprint.site_fingerprints of the site's secrets file) adds
    <config>/secrets.fingerprint to the configuration package; without it check-node only
    refuses missing or placeholder secrets."""
    common = {
        "site": site,
        "secrets_path": secrets_path(site),
        "sysconfig_path": SYSCONFIG,
        "fingerprint_path": fingerprint_path(site),
        "check_node": CHECK_NODE,
        "airflow_cfg_path": config_file(site, "airflow.cfg"),
        "service_user": SERVICE_USER,
        "service_group": SERVICE_GROUP,
        "worker_user": WORKER_USER,
        # The broker password reaches Airflow only inside these URLs (role-env, the wrapper).
        "broker_password": BROKER_PASSWORD.name,
        "broker_urls": {"AIRFLOW__CELERY__BROKER_URL": site.broker_url,
                        "AIRFLOW__CELERY__RESULT_BACKEND": site.result_backend},
    }
    units = unit_specs(site)
    files = (_config_files(site, common, fingerprints) + _base_files(site, common, units) + _unit_files(units, common)
             + _broker_files(site, common))
    return Rendered(
        files=tuple(sorted(files, key=lambda f: f.dest)),
        units=tuple(units),
        packages=tuple(unit_packages(units)),
        hosts=tuple((h.name, tuple(host_units(site, h, units))) for h in site.hosts),
    )


def _config_files(site: Site, common: dict, fingerprints: dict[str, str] | None) -> list[RenderedFile]:
    """The site configuration package: airflow.cfg, webserver_config.py, sysconfig, fingerprints."""
    webserver_config = config_file(site, "webserver_config.py")
    files = [
        RenderedFile(
            common["airflow_cfg_path"],
            render_template("airflow.cfg.j2", options=airflow_cfg_options(site), **common),
            0o644, CONFIG, config=True,
        ),
        RenderedFile(
            webserver_config,
            render_template(
                "webserver_config.py.j2",
                ldap=site.ldap,
                config_file=webserver_config,
                bind_password_var=LDAP_BIND_PASSWORD.name,
                jwt_secret_var=JWT_SECRET.name,
                **common,
            ),
            0o644, CONFIG, config=True,
        ),
        RenderedFile(SYSCONFIG, render_template("sysconfig.j2", **common), 0o644, CONFIG, config=True),
    ]
    if fingerprints:
        files.append(RenderedFile(
            fingerprint_path(site),
            render_template("secrets.fingerprint.j2", fingerprints=fingerprints, **common),
            0o640, CONFIG, config=True,
        ))
    return files


def _base_files(site: Site, common: dict, units: list[UnitSpec]) -> list[RenderedFile]:
    """The base package's files: airflow.target, users, directories, the wrapper, check-node."""
    needs = _needs(site)
    return [
        # Documentation, not configuration: placeholders only, so nothing under /etc that
        # rpm does not treat as %config (the real file is secrets.env, never packaged).
        RenderedFile(
            SECRETS_EXAMPLE,
            render_secrets(site, {v.name: PLACEHOLDER for v in secret_vars(site)}),
            0o644, BASE,
        ),
        RenderedFile(f"{UNIT_DIR}/airflow.target", render_template("units/airflow.target.j2", **common)),
        RenderedFile(
            f"{PRESET_DIR}/80-airflow-prod.preset",
            render_template("units/preset.j2", unit_name="airflow.target", **common),
        ),
        RenderedFile(SYSUSERS, render_template("sysusers.conf.j2", **common)),
        RenderedFile(TMPFILES, render_template(
            "tmpfiles.conf.j2", site_dirs=site_dirs(site), runtime_dir=runtime_dir(site),
            worker_ccache_dir=worker_ccache_dir() if site.kerberos else None, **common)),
        RenderedFile(WRAPPER, render_template("airflow-wrapper.py.j2", **common), 0o755),
        RenderedFile(
            CHECK_NODE,
            render_template(
                "check-node.py.j2", generated={role: [v.name for v in vs if v.generated]
                                               for role, vs in needs.items()},
                placeholder=PLACEHOLDER, **common,
            ),
            0o755, BASE,
        ),
        *(RenderedFile(dest, render_template(template, backup_dir=BACKUP_DIR, db_restore=DB_RESTORE, **common),
                       0o755, BASE)
          for dest, template in ((DB_BACKUP, "db-backup.py.j2"), (DB_RESTORE, "db-restore.py.j2"),
                                 (DB_CLEAN, "db-clean.py.j2"), (LOG_GROOM, "log-groom.py.j2"))),
        RenderedFile(ADMIN_TOOL, _admin_tool(site, needs, common, units), 0o755, BASE),
        RenderedFile(
            ROLE_ENV,
            render_template("role-env.py.j2", role_env_dir=ROLE_ENV_DIR,
                            needs={role: [v.name for v in vs] for role, vs in needs.items()},
                            redis_acl=REDIS_ACL, **common),
            0o755, BASE,
        ),
    ]


def _broker_files(site: Site, common: dict) -> list[RenderedFile]:
    """A local broker is RHEL's redis.service, configured by our drop-in; the scheduler's
    package ships it (rules: every role that uses a local broker runs on that one host)."""
    if not site.broker_is_local:
        return []
    return [RenderedFile(
        REDIS_DROPIN,
        render_template("units/redis-dropin.j2", redis_unit=REDIS_UNIT, role_env=ROLE_ENV, redis_acl=REDIS_ACL,
                        redis_server=REDIS_SERVER, redis_conf=REDIS_CONF, **common),
        package="scheduler",
    )]


def _admin_tool(site: Site, needs: dict[str, list[SecretVar]], common: dict, specs: list[UnitSpec]) -> str:
    """airflow-prod (doctor): what it checks, as plain values for the rendered script."""
    db, tls = site.database, site.tls
    # The api host must be named (base_url, the execution API); the site's other SANs should be.
    names = list(dict.fromkeys([site.api.host, *tls.dns_names, *tls.ip_addresses]))
    ldap = site.ldap and {
        "url": site.ldap.url, "starttls": site.ldap.starttls, "ca_file": site.ldap.ca_file,
        "bind_dn": site.ldap.bind_dn, "search_base": site.ldap.search_base,
        "search_filter": site.ldap.search_filter, "uid_field": site.ldap.uid_field,
    }
    kerberos = site.kerberos and {
        "principal": site.kerberos.principal, "keytab": site.kerberos.keytab,
        "ccache": site.kerberos.ccache, "krb5_conf": site.kerberos.krb5_conf,
    }
    units = [{"name": u.name, "role": u.role} for u in specs]
    units += [{"name": u.enabled, "role": u.role} for u in specs if u.timer]
    if site.kerberos and any(u.role == "celery-worker" for u in specs):
        units.append({"name": f"{CCACHE_UNIT}.path", "role": "celery-worker"})
    return render_template(
        "airflow-prod.py.j2",
        db={"host": db.host, "port": db.port, "name": db.name, "user": db.user, "migrate_host": db.migrate_host},
        ldap=ldap or None, kerberos=kerberos or None,
        tls={"cert": tls.cert, "key": tls.key, "ca": tls.ca, "names": names},
        units=units, fapolicyd_trust=FAPOLICYD_TRUST,
        generated=sorted({v.name for vs in needs.values() for v in vs if v.generated}),
        placeholder=PLACEHOLDER, **common,
    )


def _needs(site: Site) -> dict[str, list[SecretVar]]:
    """Each role's share of the site's secrets."""
    return {role: role_secrets(site, role) for role in ROLE_SECRETS}


def _unit_files(units: list[UnitSpec], common: dict) -> list[RenderedFile]:
    """Each unit with its preset, and each firewalld service once (shared by every worker set)."""
    files: list[RenderedFile] = []
    firewalls: set[str] = set()
    site = common["site"]
    worker = next((u for u in units if u.role == "celery-worker"), None)
    if worker and site.kerberos:
        files += _ccache_files(worker.firewall_package, site.kerberos.ccache, common)
    for unit in units:
        files.append(RenderedFile(
            f"{UNIT_DIR}/{unit.name}", render_template("units/service.j2", unit=unit, **common),
            package=unit.package,
        ))
        if unit.timer:
            files.append(RenderedFile(
                f"{UNIT_DIR}/{unit.enabled}", render_template("units/timer.j2", unit=unit, **common),
                package=unit.package,
            ))
        files.append(RenderedFile(
            f"{PRESET_DIR}/80-airflow-prod-{unit.package}.preset",
            render_template("units/preset.j2", unit_name=unit.enabled, **common),
            package=unit.package,
        ))
        for fw in unit.firewall:
            if fw.service in firewalls:
                continue
            firewalls.add(fw.service)
            files.append(RenderedFile(
                f"{FIREWALLD_DIR}/{fw.service}.xml",
                render_template("firewalld/service.xml.j2", fw=fw, **common),
                package=unit.firewall_package,
            ))
    return files


def _ccache_files(package: str, ccache: str, common: dict) -> list[RenderedFile]:
    """The pair that refreshes the worker's copy of the renewer's ccache after each renewal."""
    names = {"source": ccache, "copy": worker_ccache(ccache), "unit": CCACHE_UNIT}
    return [
        RenderedFile(f"{UNIT_DIR}/{CCACHE_UNIT}.{kind}",
                     render_template(f"units/worker-ccache.{kind}.j2", **names, **common), package=package)
        for kind in ("path", "service")
    ]


def render_secrets(site: Site, values: dict[str, str]) -> str:
    return render_template(
        "secrets.env.j2", vars=secret_vars(site), values=values, site=site, secrets_path=secrets_path(site)
    )


def write_tree(files: Sequence[RenderedFile], out_dir: str | Path) -> Path:
    """Write files under out_dir/<dest>, replacing out_dir as a whole.

    A new tree is written beside the old one and swapped in, so a failure
    leaves the previous output intact.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        for f in files:
            write_atomic(staging / f.relpath, f.text, f.mode)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
