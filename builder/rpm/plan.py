"""What goes into which RPM: packages as plain data (pure, no I/O but hashing inputs).

A `SpecPlan` is everything one rpmbuild run needs: package headers, payload
entries (destination, mode, owner, %config), dependencies and scriptlets.
`site_plan` covers the site packages (base, configuration, one per role) in
one spec with subpackages, so a config-only change is a single small
rpmbuild; `wheelhouse_plan` covers the site-independent wheelhouse.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from builder import layout, target
from builder.errors import BundleError
from builder.fsutil import sha256_file
from builder.pydeps.lockfile import Lock
from builder.layout import BUILD_VENV, DOC_DIR, LIBDIR, LOCK_PATH, UV_DIR, WHEEL_DIR, WHEELHOUSE_SBOM
from builder.render import BASE, CONFIG, Rendered, RenderedFile
from builder.render.units import DB_CLEAN_ROLE, LOG_GROOM_ROLE, MIGRATE_ROLE, UnitSpec
from builder.rpm import dirs, scriptlets
from builder.site import Site

LICENSE = "Apache-2.0"
URL = "https://airflow.apache.org/"
VENDOR = "airflow-prod bundle builder"
PACKAGER = "airflow-prod bundle builder"

# RHEL 9 package names. Each is what provides the thing on RHEL 9.
RHEL_PROVIDER = {
    "python": "python3.11",          # /usr/bin/python3.11 (the default target; site_plan uses the site's)
    "systemd": "systemd",            # systemctl, systemd-tmpfiles
    "shadow": "shadow-utils",        # useradd, groupadd
    "getent": "glibc-common",        # getent
    "coreutils": "coreutils",        # ln, mv, rm, sha256sum, mktemp
    "util-linux": "util-linux",      # setpriv, setsid (build-venv's smoke test as airflow), runuser (wrapper)
    "krb5": "krb5-workstation",      # kinit for `airflow kerberos`
    "redis": "redis",                # local Celery broker
    "postgresql": "postgresql",      # pg_dump, pg_restore, psql: the backup before a migration
    "firewalld": "firewalld-filesystem",  # owns /usr/lib/firewalld/services (no daemon)
}


@dataclass(frozen=True)
class Entry:
    """One payload item: a file (from text or a source file), a directory, or a symlink."""

    dest: str
    kind: str = "file"            # file | dir
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    config: bool = False          # %config(noreplace)
    text: str | None = None       # generated content
    source: str | None = None     # a file to hard-link/copy (wheels)
    digest: str = ""              # sha256 of the content (plan hash input)

    @property
    def relpath(self) -> str:
        return self.dest.lstrip("/")


@dataclass(frozen=True)
class RpmPackage:
    name: str
    summary: str
    description: str
    arch: str = "noarch"
    entries: tuple[Entry, ...] = ()
    requires: tuple[str, ...] = ()
    requires_pre: tuple[str, ...] = ()
    requires_post: tuple[str, ...] = ()
    requires_preun: tuple[str, ...] = ()
    requires_postun: tuple[str, ...] = ()
    recommends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    scripts: tuple[tuple[str, str], ...] = ()   # (section, body), e.g. ("pre", "...")


@dataclass(frozen=True)
class SpecPlan:
    """One rpmbuild run: a main package and its subpackages, one version-release."""

    spec_name: str
    version: str
    release: str
    source_date_epoch: int
    packages: tuple[RpmPackage, ...]
    changelog: str
    autoreqprov: bool = False
    build_arch: str = "noarch"
    digest: str = ""          # content hash of the packages (release excluded)

    @property
    def main(self) -> RpmPackage:
        return self.packages[0]

    def rpm_filename(self, pkg: RpmPackage) -> str:
        return f"{pkg.name}-{self.version}-{self.release}.{pkg.arch}.rpm"

    def filenames(self) -> list[str]:
        return [self.rpm_filename(p) for p in self.packages]


@dataclass(frozen=True)
class WheelhouseInput:
    """The site-independent payload: wheels, the offline hash lock, and uv's wheel for the target."""

    wheel_dir: Path
    lock: Path
    uv_wheel: Path
    build_packages: tuple[str, ...] = ()       # RHEL -devel packages compiling on the target needs

    def wheels(self) -> list[Path]:
        """Wheels (and sdists built on the target) that go into --find-links, sorted."""
        found = [
            p for p in self.wheel_dir.iterdir()
            if p.is_file() and p.name.endswith((".whl", ".tar.gz", ".zip"))
        ]
        return sorted(found, key=lambda p: p.name)

    @property
    def uv_in_wheels(self) -> bool:
        """uv pinned in the lock lives among the wheels; otherwise it ships beside them."""
        return self.uv_wheel.resolve().parent == self.wheel_dir.resolve()


def offline_lock_text(lock: Lock) -> str:
    """The lock as shipped: pins and hashes only, under a generic header.

    The source lock's comments name the site and the build date; dropping them
    keeps the wheelhouse RPM identical for every site that locks the same pins.
    """
    head = ("# Offline hash lock of airflow-prod-wheelhouse: every hash is of a file in\n"
            f"# {WHEEL_DIR}. Install with --require-hashes and no index (build-venv does).\n\n")
    return lock.requirements_text(head)


def _generated(dest: str, text: str, mode: int = 0o644) -> Entry:
    return Entry(dest, mode=mode, text=text, digest=hashlib.sha256(text.encode()).hexdigest())


def _describe(*paragraphs: str) -> str:
    """%description text: paragraphs filled to 79 columns (rpmlint's limit)."""
    return "\n\n".join(textwrap.fill(" ".join(p.split()), 79) for p in paragraphs if p.strip())


def _text_entry(f: RenderedFile, owner: str = "root", group: str = "root") -> Entry:
    return Entry(
        dest=f.dest, mode=f.mode, owner=owner, group=group, config=f.config, text=f.text,
        digest=hashlib.sha256(f.text.encode()).hexdigest(),
    )


def plan_digest(packages: tuple[RpmPackage, ...], *extra: object) -> str:
    """A content hash of everything that goes into the spec (text bodies by digest)."""
    def strip(pkg: RpmPackage) -> dict:
        d = asdict(pkg)
        d["entries"] = [{k: v for k, v in e.items() if k not in ("text", "source")} for e in d["entries"]]
        return d
    blob = json.dumps([[strip(p) for p in packages], [str(x) for x in extra]], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def release_of(stamp: int, serial: int, digest: str, dist: str = "el9") -> str:
    """`<UTC stamp>.<serial>.<content hash>.el9`.

    Newer inputs (a later commit or SOURCE_DATE_EPOCH) sort higher by the stamp;
    rebuilds with changed content at the same stamp sort higher by the serial
    (counted per output directory, or per RPM cache for the wheelhouse); the hash
    keeps two different builds, or two sites, from ever sharing one
    name-version-release."""
    when = datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"{when}.{serial}.{digest[:8]}.{target.dist_tag(dist)}"


def changelog(stamp: int, version: str, release: str, text: str) -> str:
    day = datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%a %b %d %Y")
    return f"* {day} {PACKAGER} - {version}-{release}\n- {text}\n"


# --- the wheelhouse ------------------------------------------------------------


def wheelhouse_plan(
    wh: WheelhouseInput, version: str, stamp: int, memo: dict[str, str] | None = None,
    serial: Callable[[str], int] = lambda digest: 1, dist: str = "el9",
) -> SpecPlan:
    """airflow-prod-wheelhouse: site-independent; built once and reused by every site."""
    entries: list[Entry] = [
        Entry(LIBDIR, "dir", 0o755),
        Entry(WHEEL_DIR, "dir", 0o755),
        _generated(LOCK_PATH, offline_lock_text(Lock.read(wh.lock))),
    ]
    if not wh.uv_in_wheels:
        entries += [
            Entry(UV_DIR, "dir", 0o755),
            Entry(f"{UV_DIR}/{wh.uv_wheel.name}", source=str(wh.uv_wheel), digest=sha256_file(wh.uv_wheel, memo)),
        ]
    for wheel in wh.wheels():
        entries.append(Entry(f"{WHEEL_DIR}/{wheel.name}", source=str(wheel), digest=sha256_file(wheel, memo)))
    dirs.check_packages([RpmPackage("airflow-prod-wheelhouse", "", "", entries=tuple(entries))])
    pkg = RpmPackage(
        name="airflow-prod-wheelhouse",
        summary=f"Hash-locked wheels of Apache Airflow {version} for offline installation",
        description=_describe(
            f"Every wheel Apache Airflow {version} and its providers need on RHEL 9 (Python 3.11), "
            "the offline requirements lock with sha256 hashes, and uv for fast offline installs. "
            "airflow-prod builds its virtualenv from this; nothing here is imported directly."
        ),
        arch="x86_64",
        entries=tuple(sorted(entries, key=lambda e: e.dest)),
    )
    digest = plan_digest((pkg,), version, stamp, dist)
    release = release_of(stamp, serial(digest), digest, dist)
    return SpecPlan(
        spec_name="airflow-prod-wheelhouse", version=version, release=release,
        source_date_epoch=stamp, packages=(pkg,), build_arch="x86_64", digest=digest,
        changelog=changelog(stamp, version, release, f"Wheelhouse for Apache Airflow {version}"),
    )


# --- the site packages ---------------------------------------------------------


@dataclass(frozen=True)
class SiteInputs:
    """What the site spec needs to know about the wheelhouse it installs from."""

    wheelhouse_evr: str        # exact version-release of airflow-prod-wheelhouse
    venv_kb: int               # installed size estimate of the venv (free-space precondition)
    smoke_imports: tuple[str, ...] = ()   # modules the new venv must import before it serves
    build_requires: tuple[str, ...] = ()  # compilers/-devel packages for sdists compiled on the target
    wheelhouse_sbom: str = ""             # its CycloneDX SBOM (builder.rpm.sbom), shipped in the docs dir
    extra: dict = field(default_factory=dict)


def config_package_name(site: Site) -> str:
    return f"airflow-prod-config-{site.site.name}"


# %post of a package that ships only a firewalld service definition: no port is opened.
_FIREWALLD_RELOAD = (
    "if [ -x /usr/bin/firewall-cmd ]; then /usr/bin/firewall-cmd --reload --quiet >/dev/null 2>&1 || :; fi\n"
)


def host_package_name(host: str) -> str:
    # Host names are RFC 1123 labels or IP addresses; ':' (IPv6) is not allowed in RPM names.
    return f"airflow-prod-host-{host.replace(':', '_')}"


def _host_package(site: Site, name: str, units: tuple[UnitSpec, ...], evr: str) -> RpmPackage:
    """airflow-prod-host-<name>: exactly that host's unit packages, nothing else. Installing
    it installs (and, through each package's preset, enables) that host's units."""
    keys: list[str] = []
    for u in units:
        for key in ((u.firewall_package,) if u.firewall else ()) + (u.package,):
            if key not in keys:
                keys.append(key)
    return RpmPackage(
        name=host_package_name(name),
        summary=f"Everything host {name} of Airflow site {site.site.name} runs",
        description=_describe(
            f"Installs the packages of the units host {name} runs: {', '.join(u.name for u in units)}. "
            "Each is enabled by its preset on first install; `systemctl start airflow.target` starts them.",
            "One host package per host of the site file; install exactly one on each host.",
        ),
        requires=tuple(f"airflow-prod-{k} = {evr}" for k in keys),
    )


# The site packages' own version-release, as the spec expands it.
_EVR = "%{version}-%{release}"


def _files_by_package(site: Site, rendered: Rendered) -> dict[str, list[RenderedFile]]:
    """The rendered files per package key; a key the site does not build is an error."""
    by_pkg: dict[str, list[RenderedFile]] = {}
    for f in rendered.files:
        by_pkg.setdefault(f.package, []).append(f)
    unknown = set(by_pkg) - {BASE, CONFIG, *rendered.packages}
    if unknown:
        raise BundleError(
            f"rendered files for packages site {site.site.name!r} does not build: {sorted(unknown)}",
            hint="plan the packages from the files rendered from the same site file")
    return by_pkg


def _base_package(site: Site, files: list[RenderedFile], inputs: SiteInputs, build_venv_text: str) -> RpmPackage:
    """airflow-prod: user, directories, the venv builder, wrapper, target, sysusers/tmpfiles."""
    p = site.paths
    py = f"python{site.target.python_minor}"  # python3.11, or python3.12 (RHEL 9.4+) for a 3.12 target
    sysd = RHEL_PROVIDER["systemd"]
    entries = [_text_entry(f) for f in files]
    entries += [Entry(d.path, "dir", d.mode, d.owner, d.group) for d in layout.owned_dirs(site)]
    entries += [
        Entry(BUILD_VENV, mode=0o755, text=build_venv_text,
              digest=hashlib.sha256(build_venv_text.encode()).hexdigest()),
    ]
    if inputs.wheelhouse_sbom:
        entries.append(_generated(WHEELHOUSE_SBOM, inputs.wheelhouse_sbom))
    return RpmPackage(
        name="airflow-prod",
        summary=f"Apache Airflow {site.airflow.version} for site {site.site.name}: user, directories, virtualenv",
        description=_describe(
            f"The airflow user and group, {p.home} and its directories, and the virtualenv "
            f"{p.venv} built offline from airflow-prod-wheelhouse when this package is installed "
            f"(versioned under {p.venvs}, switched atomically; a failed build keeps the old one).",
            f"Site: {site.site.name}. {site.site.description}",
        ),
        entries=tuple(sorted(entries, key=lambda e: e.dest)),
        requires=(py, sysd, RHEL_PROVIDER["util-linux"], f"airflow-prod-wheelhouse = {inputs.wheelhouse_evr}"),
        requires_pre=(py, RHEL_PROVIDER["shadow"], RHEL_PROVIDER["getent"]),
        requires_post=(py, sysd, RHEL_PROVIDER["coreutils"], RHEL_PROVIDER["util-linux"],
                       RHEL_PROVIDER["getent"], f"airflow-prod-wheelhouse = {inputs.wheelhouse_evr}",
                       *inputs.build_requires),
        requires_preun=(sysd,),
        requires_postun=(sysd, RHEL_PROVIDER["coreutils"]),
        scripts=(
            ("pre", scriptlets.base_pre(site, inputs.venv_kb)),
            ("post", scriptlets.base_post(site)),
            ("preun", scriptlets.units_preun(["airflow.target"])),
            ("postun", scriptlets.base_postun(site)),
        ),
    )


def _config_package(site: Site, files: list[RenderedFile]) -> RpmPackage:
    """airflow-prod-config-<site>: the rendered configuration, noreplace."""
    p = site.paths
    entries = [_text_entry(f, "root", layout.file_group(site, f.dest)) for f in files]
    return RpmPackage(
        name=config_package_name(site),
        summary=f"Configuration of Airflow site {site.site.name}",
        description=_describe(
            f"The rendered configuration of site {site.site.name}: airflow.cfg, "
            "webserver_config.py, /etc/sysconfig/airflow. Marked noreplace: local edits survive "
            "upgrades (the new version lands as .rpmnew).",
            f"Secrets are not here: install {p.config}/secrets.env (root:root 0600) on every "
            f"node; {DOC_DIR}/secrets.env.example (in airflow-prod) lists the variables.",
        ),
        entries=tuple(sorted(entries, key=lambda e: e.dest)),
        requires=(f"airflow-prod = {_EVR}",),
        requires_pre=(f"airflow-prod = {_EVR}",),  # the airflow group owns these files
        requires_postun=(RHEL_PROVIDER["systemd"],),
        provides=(f"airflow-prod-config = {_EVR}",),
        scripts=(("postun", scriptlets.restart_on_upgrade(["airflow.target"])),),
    )


def _role_requires(site: Site, key: str, role: str, firewalld: bool) -> tuple[str, ...]:
    requires = [f"airflow-prod = {_EVR}", f"airflow-prod-config = {_EVR}", RHEL_PROVIDER["systemd"]]
    if firewalld:
        # firewalld-filesystem owns /usr/lib/firewalld/services (0755); it is a few empty
        # directories, no daemon, so hosts with another firewall lose nothing.
        requires.append(RHEL_PROVIDER["firewalld"])
    if role == "kerberos":
        requires.append(RHEL_PROVIDER["krb5"])
    if role == MIGRATE_ROLE and site.database.backups_keep:
        requires.append(RHEL_PROVIDER["postgresql"])
    if role in ("scheduler", "celery-worker") and site.broker_is_local:
        # Not Recommends: install_weak_deps=False and most content views drop weak deps.
        requires.append(RHEL_PROVIDER["redis"])
    if key != role and role == "celery-worker":
        requires.append(f"airflow-prod-celery-worker = {_EVR}")  # the log server's firewalld service
    return tuple(requires)


def _role_package(site: Site, key: str, role: str, files: list[RenderedFile]) -> RpmPackage:
    """airflow-prod-<key>: one role's (or worker set's) unit, preset and firewalld service."""
    sysd = RHEL_PROVIDER["systemd"]
    units = [f.dest.rsplit("/", 1)[1] for f in files if f.dest.endswith((".service", ".timer"))]
    # A unit its timer starts has no [Install]: the preset enables the timer.
    installable = [u for u in units if not (u.endswith(".service") and u[:-len(".service")] + ".timer" in units)]
    fw = [f.dest for f in files if "/firewalld/" in f.dest]
    entries = [_text_entry(f) for f in files]
    # RHEL's redis owns no drop-in directory under /usr/lib (its limit.conf is under /etc).
    dropin_dirs = sorted({f.dest.rsplit("/", 1)[0] for f in files if f.dest.endswith(".conf")
                          and f.dest.rsplit("/", 1)[0].endswith(".service.d")})
    entries += [Entry(d, "dir", 0o755, "root", "root") for d in dropin_dirs]
    what = (f"The systemd unit {', '.join(units)}, its preset (enabled on first install)"
            + (" and firewalld service definition" if fw else "")
            if units else "The firewalld service definition of the Celery workers' log server")
    if role in (MIGRATE_ROLE, DB_CLEAN_ROLE):
        summary = (f"Airflow database {'migration' if role == MIGRATE_ROLE else 'retention'} unit "
                   f"for site {site.site.name} (one host only)")
        what += "; install it on exactly one host (its host package does)"
    elif role == LOG_GROOM_ROLE:
        summary = f"Airflow log retention for site {site.site.name} (every host)"
    elif key != role:
        summary = f"Airflow Celery worker set {key.removeprefix('celery-worker-')} for site {site.site.name}"
    else:
        summary = f"Airflow {role} service for site {site.site.name}"
    scripts: tuple[tuple[str, str], ...] = (
        ("post", scriptlets.units_post(installable, firewalld=bool(fw))),
        ("preun", scriptlets.units_preun(units)),
        ("postun", scriptlets.units_postun(units)),
    ) if units else (("post", _FIREWALLD_RELOAD),)
    return RpmPackage(
        name=f"airflow-prod-{key}",
        summary=summary,
        description=_describe(f"{what}, part of airflow.target. Site: {site.site.name}."),
        entries=tuple(sorted(entries, key=lambda e: e.dest)),
        requires=_role_requires(site, key, role, bool(fw)),
        requires_post=(sysd,), requires_preun=(sysd,) if units else (),
        requires_postun=(sysd,) if units else (),
        scripts=scripts,
    )


def site_plan(
    site: Site, rendered: Rendered, inputs: SiteInputs, stamp: int, build_venv_text: str,
    serial: Callable[[str], int] = lambda digest: 1,
) -> SpecPlan:
    """airflow-prod (base), airflow-prod-config-<site>, airflow-prod-<role> for each role,
    from the files and units rendered from the same site."""
    version = site.airflow.version
    by_pkg = _files_by_package(site, rendered)
    base = _base_package(site, by_pkg[BASE], inputs, build_venv_text)
    config = _config_package(site, by_pkg.get(CONFIG, []))
    # The celery-worker package of worker sets ships only firewalld: no unit, no role of its own.
    roles = [_role_package(site, key, rendered.role_of(key), by_pkg.get(key, [])) for key in rendered.packages]
    hosts = [_host_package(site, name, units, _EVR) for name, units in rendered.hosts]
    packages = (base, config, *roles, *hosts)
    dirs.check_packages(packages)
    digest = plan_digest(packages, version, stamp, inputs.smoke_imports)
    release = release_of(stamp, serial(digest), digest, site.target.os)
    return SpecPlan(
        spec_name="airflow-prod", version=version, release=release, source_date_epoch=stamp,
        packages=packages, digest=digest,
        changelog=changelog(stamp, version, release, f"Site {site.site.name}, built by airflow-prod"),
    )
