"""`bundle build`: the whole pipeline as a straight list of named steps.

    lock -> wheelhouse -> render -> package -> publish

Each step is small, logged with its duration, and skipped when the hash of its
inputs matches the one recorded in <out>/state.json (and its outputs are still
there). The wheelhouse RPM is keyed by its own content and kept in a cache
shared by every site, so a config-only change rebuilds the small site
packages only. The engine never imports the CLI; it reports through `notify`
(builder.report).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from builder import run
from builder.errors import BundleError, UsageError
from builder.fsutil import link_or_copy, sha256_file, write_atomic
from builder.render import RenderedFile, render_site, write_tree
from builder.report import Notify, emit, nested
from builder.resources import cache_dir
from builder.rpm import plan as P
from builder.rpm import rpmbuild
from builder.rpm.spec import render_build_venv, render_spec
from builder.site import Site

STATE_FORMAT = 1
# Python distributions whose import proves a venv usable -> the module to import.
# What a new venv must import, as the airflow user, before it serves: Airflow, and the
# module that loads each locked distribution's compiled code (a wheel built for another
# OS, a library missing on the target or a file fapolicyd denies fails here, in %post).
SMOKE_IMPORTS = {
    "apache-airflow-core": "airflow", "apache-airflow": "airflow",
    "python-ldap": "ldap", "gssapi": "gssapi.raw", "krb5": "krb5", "pykerberos": "kerberos",
    "psycopg2": "psycopg2", "psycopg2-binary": "psycopg2",
    "cryptography": "cryptography.hazmat.bindings._rust", "cffi": "_cffi_backend",
    "bcrypt": "bcrypt", "pynacl": "nacl.bindings", "pydantic-core": "pydantic_core",
    "greenlet": "greenlet", "grpcio": "grpc", "psutil": "psutil", "setproctitle": "setproctitle",
    "uvloop": "uvloop", "httptools": "httptools", "msgspec": "msgspec", "numpy": "numpy",
    "pandas": "pandas", "asyncpg": "asyncpg", "oracledb": "oracledb", "pymssql": "pymssql",
    "jpype1": "_jpype", "rpds-py": "rpds", "watchfiles": "watchfiles",
}
# Compiled extensions a distribution silently goes without (pure-Python fallback): a
# missing one is a warning of build-venv, not a failure. thrift's sdist builds it only
# when a C++ compiler is there.
SMOKE_OPTIONAL = {
    "thrift": "thrift.protocol.fastbinary", "msgpack": "msgpack._cmsgpack", "pyyaml": "yaml._yaml",
    "markupsafe": "markupsafe._speedups", "wrapt": "wrapt._wrappers",
    "sqlalchemy": "sqlalchemy.cresultproxy",
}

class BuildError(BundleError):
    """A build step cannot proceed with what it was given."""


@dataclass(frozen=True)
class BuildOptions:
    out_dir: Path | None = None          # default: build/<site name>
    locks_dir: Path = Path("locks")
    wheelhouse_dir: Path | None = None   # a ready wheelhouse: lock and wheelhouse steps use it as is
    lock_file: Path | None = None
    uv_wheel: Path | None = None
    sign: bool | None = None             # None: the site's [publish] sign
    rpm_cache: Path | None = None        # default: <cache>/rpms (shared by all sites)
    payload: str = rpmbuild.PAYLOAD
    force: bool = False                  # ignore recorded input hashes
    # The site's secrets file (bundle secrets init): only fingerprints of it go into the
    # config package. Default: ~/.config/airflow-prod/<site>.secrets.env when it exists.
    secrets_file: Path | None = None


@dataclass(frozen=True)
class StepResult:
    name: str
    seconds: float
    reused: bool
    detail: str


@dataclass(frozen=True)
class BuiltPackage:
    name: str
    path: Path
    size: int
    reused: bool


@dataclass(frozen=True)
class BuildSummary:
    site: str
    steps: tuple[StepResult, ...]
    packages: tuple[BuiltPackage, ...]
    repo: Path | None
    out_dir: Path
    signed_by: str | None

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)


@dataclass
class Context:
    """What changes during one build; the Site itself stays frozen."""

    site: Site
    site_path: Path
    options: BuildOptions
    out_dir: Path
    notify: Notify
    state: dict
    lock_path: Path | None = None
    wheelhouse: P.WheelhouseInput | None = None
    rendered: list[RenderedFile] = field(default_factory=list)
    packages: list[BuiltPackage] = field(default_factory=list)
    repo: Path | None = None
    signed_by: str | None = None
    signing: tuple = (None, "")   # (publish.SigningKey, fingerprint); "" when not signing

    @property
    def memo(self) -> dict[str, str]:
        return self.state.setdefault("digests", {})

    def serial(self, digest: str) -> int:
        """The site packages' build serial: the last one again for the same content, else +1."""
        rec = self.state.get("serial", {})
        if rec.get("digest") == digest:
            return rec["serial"]
        n = rec.get("serial", 0) + 1
        self.state["serial"] = {"digest": digest, "serial": n}
        return n

    def unchanged(self, step: str, input_hash: str, outputs: list[Path]) -> bool:
        if self.options.force:
            return False
        rec = self.state.get("steps", {}).get(step, {})
        return rec.get("hash") == input_hash and all(p.exists() for p in outputs)

    def record(self, step: str, input_hash: str, **extra: object) -> None:
        self.state.setdefault("steps", {})[step] = {"hash": input_hash, **extra}

    def recorded(self, step: str) -> dict:
        return self.state.get("steps", {}).get(step, {})


def _sha(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()


def _cache_serial(cache_root: Path, digest: str) -> int:
    """The wheelhouse's build serial, kept with the RPM cache every site shares."""
    path = cache_root / "serials.json"
    try:
        serials = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        serials = {}
    if digest not in serials:
        serials[digest] = max(serials.values(), default=0) + 1
        write_atomic(path, json.dumps(serials, indent=1, sort_keys=True) + "\n")
    return serials[digest]


def source_date_epoch(path: Path) -> tuple[int, str]:
    """The build time recorded in RPMs, from the inputs, never from the clock.

    SOURCE_DATE_EPOCH if set; else the last commit of `path` if git tracks it
    unmodified; else its mtime. Commits and edits only move it forward, so
    releases built from newer inputs sort higher.
    """
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        if not env.isdigit():
            raise UsageError(f"SOURCE_DATE_EPOCH={env!r} is not a Unix time stamp")
        return int(env), "SOURCE_DATE_EPOCH"
    path = path.resolve()
    try:
        status = run.run(["git", "-C", str(path.parent), "status", "--porcelain", "--", path.name], check=False)
        if status.returncode == 0 and not status.stdout.strip():
            proc = run.run(["git", "-C", str(path.parent), "log", "-1", "--format=%ct", "--", path.name], check=False)
            if proc.returncode == 0 and proc.stdout.strip().isdigit():
                return int(proc.stdout.strip()), f"git commit of {path.name}"
    except BundleError:  # no git
        pass
    return int(path.stat().st_mtime), f"mtime of {path.name}"


# --- the steps --------------------------------------------------------------------


def step_lock(ctx: Context) -> tuple[bool, str]:
    """The offline hash lock: given, or `bundle lock`'s (resolved only when its inputs changed)."""
    if ctx.options.lock_file:
        ctx.lock_path = ctx.options.lock_file.resolve()
        if not ctx.lock_path.is_file():
            raise BuildError(f"--lock {ctx.lock_path}: no such file")
        return True, f"given: {ctx.lock_path}"
    from builder.pydeps.resolve import ensure_lock

    # As `bundle lock` made it (backend, index): reused, or refused if made otherwise.
    lock = ensure_lock(ctx.site, locks_dir=ctx.options.locks_dir, may_relock=False,
                       notify=nested(ctx.notify))
    ctx.lock_path = Path(lock.path).resolve()
    return lock.reused, f"{ctx.lock_path} ({len(lock.pins)} pins, {lock.backend} against {lock.index})"


def _find_uv(wheel_dir: Path) -> Path:
    found = sorted(wheel_dir.glob("uv-*.whl"))
    if not found:
        raise BuildError(f"no uv wheel in {wheel_dir}", hint="pass --uv-wheel or add uv to the wheelhouse")
    return found[-1]


def step_wheelhouse(ctx: Context) -> tuple[bool, str]:
    """Wheels for the target, verified against the lock (`bundle wheelhouse`), incl. uv."""
    assert ctx.lock_path
    if ctx.options.wheelhouse_dir:
        wdir = ctx.options.wheelhouse_dir.resolve()
        if not wdir.is_dir():
            raise BuildError(f"--wheelhouse {wdir}: no such directory")
        uv = (ctx.options.uv_wheel or _find_uv(wdir)).resolve()
        ctx.wheelhouse = P.WheelhouseInput(wdir, ctx.lock_path, uv)
        return True, f"given: {wdir} ({len(ctx.wheelhouse.wheels())} files)"
    from builder.pydeps.lockfile import Lock
    from builder.pydeps.wheelhouse import MANIFEST, OFFLINE_LOCK, build_wheelhouse

    lock = Lock.read(ctx.lock_path)
    wdir = ctx.out_dir / "wheelhouse"
    input_hash = _sha(lock.body_hash, ctx.site.target.model_dump_json(), ctx.site.airflow.version)
    outputs = [wdir / OFFLINE_LOCK, wdir / MANIFEST]
    try:  # every file the manifest lists must still be there to skip the step
        outputs += [wdir / f["filename"] for f in json.loads((wdir / MANIFEST).read_text())["files"]]
    except (OSError, ValueError, KeyError):
        pass
    if ctx.unchanged("wheelhouse", input_hash, outputs):
        ctx.wheelhouse = _wheelhouse_input(wdir)
        return True, f"{wdir} unchanged ({len(ctx.wheelhouse.wheels())} files)"
    wh = build_wheelhouse(ctx.site, lock, wdir, notify=nested(ctx.notify))
    ctx.wheelhouse = _wheelhouse_input(wdir)
    ctx.record("wheelhouse", input_hash)
    return False, (f"{wdir}: {len(wh.files)} files, {wh.size / 1e6:.0f} MB "
                   f"({len(wh.downloaded)} downloaded, {len(wh.built)} built)")


def _wheelhouse_input(wdir: Path) -> P.WheelhouseInput:
    """What `bundle wheelhouse` left in wdir: wheels, offline lock, manifest."""
    from builder.pydeps.wheelhouse import MANIFEST, OFFLINE_LOCK

    manifest = json.loads((wdir / MANIFEST).read_text())
    build_packages = manifest.get("compile_on_target", {}).get("build_packages") or []
    return P.WheelhouseInput(
        wdir, wdir / OFFLINE_LOCK, _find_uv(wdir),
        build_packages=tuple(build_packages),
    )


def lock_epoch(lock: Path) -> tuple[int, str]:
    """The wheelhouse's time stamp: the lock's resolution date (stable while the lock is
    reused, whichever site or directory builds it), else as for any other input."""
    from builder.pydeps.lockfile import Lock

    if not os.environ.get("SOURCE_DATE_EPOCH"):
        when = Lock.read(lock).date
        if when is not None:
            return int(when.timestamp()), f"date in {lock.name}"
    return source_date_epoch(lock)


def step_render(ctx: Context) -> tuple[bool, str]:
    """Every config file and unit of the site (pure), written to <out>/rendered for review."""
    ctx.rendered = render_site(ctx.site, _fingerprints(ctx))
    digest = _sha(*[(f.dest, f.mode, f.package, f.config, f.text) for f in ctx.rendered])
    out = ctx.out_dir / "rendered"
    if ctx.unchanged("render", digest, [out]):
        return True, f"{len(ctx.rendered)} files unchanged"
    from builder.pydeps.lockfile import Lock
    from builder.render.validate import validate

    checks = validate(ctx.site, ctx.rendered, Lock.read(ctx.lock_path) if ctx.lock_path else None,
                      ctx.wheelhouse.wheel_dir if ctx.wheelhouse else None).summary()
    write_tree(ctx.rendered, out)
    ctx.record("render", digest)
    return False, f"{len(ctx.rendered)} files -> {out} ({checks})"


def _fingerprints(ctx: Context) -> dict[str, str] | None:
    """Fingerprints of the site's secrets for every node's start check, or None (then
    check-node only refuses missing secrets) when there is no secrets file."""
    from builder.fingerprint import site_fingerprints
    from builder.material.secrets import default_secrets_path

    path = ctx.options.secrets_file
    if path is None:
        default = default_secrets_path(ctx.site)
        if not default.is_file():
            ctx.notify("info", f"  no secrets file ({default}; --secrets): nodes cannot check that they share "
                    "the site's secrets")
            return None
        path = default
    if not path.is_file():
        raise BuildError(f"--secrets {path}: no such file", hint="`bundle secrets init` writes it")
    return site_fingerprints(ctx.site, path)


def venv_kb(wheels: list[Path], memo: dict[str, str]) -> int:
    """Free space a new venv needs: unpacked wheel sizes (zip directories only) plus bytecode and slack."""
    total = 0
    for w in wheels:
        if w.suffix != ".whl":
            continue
        key = f"unzipped:{sha256_file(w, memo)}"
        if key not in memo:
            try:
                with zipfile.ZipFile(w) as z:
                    memo[key] = str(sum(i.file_size for i in z.infolist()))
            except zipfile.BadZipFile:
                raise BuildError(
                    f"{w}: not a valid wheel (truncated or corrupted zip)",
                    hint="re-run `bundle wheelhouse`: it re-downloads and verifies every file by hash",
                ) from None
        total += int(memo[key])
    return int(total * 1.5 / 1024) + 64 * 1024


def _locked_names(lock: Path) -> set[str]:
    from builder.pydeps.lockfile import Lock

    return set(Lock.read(lock).pins)


def smoke_imports(lock: Path) -> tuple[str, ...]:
    return tuple(sorted({SMOKE_IMPORTS[n] for n in _locked_names(lock) if n in SMOKE_IMPORTS}))


def smoke_optional(lock: Path) -> tuple[str, ...]:
    """"dist=module" pairs of the optional compiled extensions the lock brings."""
    return tuple(sorted(f"{n}={SMOKE_OPTIONAL[n]}" for n in _locked_names(lock) if n in SMOKE_OPTIONAL))


def _rpm_version() -> str:
    return run.run(["rpmbuild", "--version"], what="rpmbuild --version").stdout.strip()


def step_package(ctx: Context) -> tuple[bool, str]:
    """The wheelhouse RPM (content-keyed cache, shared by all sites) and the site RPMs."""
    assert ctx.wheelhouse and ctx.lock_path
    site, opts = ctx.site, ctx.options
    rpm_version = _rpm_version()
    rpms_dir = ctx.out_dir / "rpms"
    rpms_dir.mkdir(parents=True, exist_ok=True)

    # The site-independent wheelhouse: built once per content, reused by every site.
    wh_stamp, _ = lock_epoch(ctx.lock_path)
    cache_root = opts.rpm_cache or cache_dir() / "rpms"
    wh_plan = P.wheelhouse_plan(ctx.wheelhouse, site.airflow.version, wh_stamp, ctx.memo,
                                serial=lambda d: _cache_serial(cache_root, d), dist=site.target.os)
    wh_spec = render_spec(wh_plan)
    wh_key = _sha(wh_spec, P.plan_digest(wh_plan.packages), opts.payload, rpm_version)[:20]
    cache = cache_root / wh_key
    wh_rpm = cache / wh_plan.rpm_filename(wh_plan.main)
    wh_reused = wh_rpm.is_file() and not opts.force
    if not wh_reused:
        built = rpmbuild.build(wh_plan, wh_spec, cache, opts.payload)
        ctx.notify("info", f"  built {wh_rpm.name} in {built.seconds:.1f}s")

    # The site packages: one spec, one rpmbuild.
    stamp, stamp_src = source_date_epoch(ctx.site_path)
    wheels = ctx.wheelhouse.wheels()
    inputs = P.SiteInputs(
        wheelhouse_evr=f"{wh_plan.version}-{wh_plan.release}",
        venv_kb=venv_kb(wheels, ctx.memo),
        smoke_imports=smoke_imports(ctx.wheelhouse.lock),
        build_requires=ctx.wheelhouse.build_packages,
    )
    build_venv = render_build_venv(site, inputs.smoke_imports, smoke_optional(ctx.wheelhouse.lock))
    plan = P.site_plan(site, ctx.rendered, inputs, stamp, build_venv,
                       serial=ctx.serial)
    spec = render_spec(plan)
    digest = _sha(spec, P.plan_digest(plan.packages), opts.payload, rpm_version, wh_rpm.name)
    site_rpms = [rpms_dir / n for n in plan.filenames()]
    site_reused = ctx.unchanged("package", digest, site_rpms)
    if not site_reused:
        built = rpmbuild.build(plan, spec, rpms_dir, opts.payload)
        ctx.notify("info", f"  built {len(built.paths)} site packages in {built.seconds:.1f}s "
                f"(release {plan.release}, time stamp from {stamp_src})")
        ctx.record("package", digest, release=plan.release)

    # <out>/rpms holds exactly this build's packages; the wheelhouse RPM is a hard link.
    wh_link = rpms_dir / wh_rpm.name
    link_or_copy(wh_rpm, wh_link)
    keep = {wh_link.name, *(p.name for p in site_rpms)}
    for stale in rpms_dir.glob("*.rpm"):
        if stale.name not in keep:
            stale.unlink()

    ctx.packages = [BuiltPackage("airflow-prod-wheelhouse", wh_link, wh_link.stat().st_size, wh_reused)]
    ctx.packages += [
        BuiltPackage(pkg.name, path, path.stat().st_size, site_reused)
        for pkg, path in zip(plan.packages, site_rpms, strict=True)
    ]
    ctx.state["release"] = plan.release
    ctx.state["version"] = plan.version
    ctx.state["stamp"] = max(stamp, wh_stamp)
    what = "wheelhouse RPM " + ("reused" if wh_reused else "built") + ", site RPMs " + (
        "reused" if site_reused else "built")
    return wh_reused and site_reused, f"{what} -> {rpms_dir}"


def step_publish(ctx: Context) -> tuple[bool, str]:
    """Signed RPMs, xz metadata, signed repomd.xml and the public key in <out>/repo."""
    from builder.rpm import publish

    site = ctx.site
    sign = bool(ctx.signing[1])
    repo = ctx.out_dir / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    key, fpr = ctx.signing
    digests = {p.path.name: sha256_file(p.path, ctx.memo) for p in ctx.packages}
    repo_files = publish.repo_files(site.site.name, sign)
    input_hash = _sha(sorted(digests.items()), fpr, sign, ctx.state.get("stamp"), sorted(repo_files.items()))
    outputs = [repo / n for n in digests] + [repo / "repodata" / "repomd.xml"] + [repo / n for n in repo_files]
    if sign:
        outputs += [repo / "repodata" / "repomd.xml.asc", repo / publish.KEY_FILE]
    ctx.repo, ctx.signed_by = repo, (fpr or None)
    if ctx.unchanged("publish", input_hash, outputs):
        return True, f"repository unchanged: {repo}"

    # Sign copies, never the cached originals; a package signed already with this key is kept.
    previous = ctx.recorded("publish").get("signed", {})
    to_sign, signed = [], {}
    for pkg in ctx.packages:
        dest = repo / pkg.path.name
        record = [digests[dest.name], fpr]
        if dest.exists() and previous.get(dest.name) == record and not ctx.options.force:
            signed[dest.name] = record
            continue
        tmp = repo / f".{dest.name}"
        shutil.copyfile(pkg.path, tmp)
        to_sign.append((tmp, dest))
        signed[dest.name] = record
    if sign:
        publish.sign_rpms([tmp for tmp, _ in to_sign], key, fpr)
    for tmp, dest in to_sign:
        os.replace(tmp, dest)
    for stale in repo.glob("*.rpm"):
        if stale.name not in digests:
            stale.unlink()
    publish.make_repo(repo, ctx.state.get("stamp", 0))
    if sign:
        publish.sign_repomd(repo, key, fpr)
        publish.export_key(repo, key, fpr)
    else:
        (repo / publish.KEY_FILE).unlink(missing_ok=True)
    for name, text in repo_files.items():
        write_atomic(repo / name, text)
    ctx.record("publish", input_hash, signed=signed)
    how = f"signed {len(to_sign)} (key {fpr[-16:]})" if sign else "UNSIGNED"
    return False, f"{how}, kept {len(digests) - len(to_sign)} -> {repo}"


STEPS: tuple[tuple[str, Callable[[Context], tuple[bool, str]]], ...] = (
    ("lock", step_lock),
    ("wheelhouse", step_wheelhouse),
    ("render", step_render),
    ("package", step_package),
    ("publish", step_publish),
)


# --- the entry points ---------------------------------------------------------------


def signing_key(site: Site, options: BuildOptions) -> tuple:
    """The key that will sign, resolved to its fingerprint before any work is done."""
    from builder.rpm import publish

    sign = site.publish.sign if options.sign is None else options.sign
    if not sign:
        return None, ""
    key = publish.SigningKey(site.publish.gpg_key, Path(site.publish.gpg_home) if site.publish.gpg_home else None)
    return key, key.fingerprint()


def default_out_dir(site: Site) -> Path:
    return Path("build") / site.site.name


def _load_state(path: Path) -> dict:
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {"format": STATE_FORMAT}
    return state if state.get("format") == STATE_FORMAT else {"format": STATE_FORMAT}


def build(site: Site, site_path: str | Path, options: BuildOptions = BuildOptions(),
          notify: Notify = emit) -> BuildSummary:
    out_dir = (options.out_dir or default_out_dir(site)).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / "state.json"
    ctx = Context(site, Path(site_path).resolve(), options, out_dir, notify, _load_state(state_path))
    ctx.signing = signing_key(site, options)  # a missing key fails now, not after packaging
    if ctx.signing[1]:
        from builder.rpm import publish

        # A key RHEL 9 would refuse (SHA-1 self-signature, RSA < 2048, DSA, expired) fails now too.
        report = publish.check_key(ctx.signing[0], ctx.signing[1])
        notify("info", f"[sign] key {report.fingerprint} ({report.description}): the fingerprint admins compare")
        for warning in report.warnings:
            notify("warn", f"[sign] {warning}")
    results = []
    try:
        for name, step in STEPS:
            notify("info", f"[{name}] ...")
            start = time.monotonic()
            reused, detail = step(ctx)
            result = StepResult(name, time.monotonic() - start, reused, detail)
            results.append(result)
            notify("info", f"[{name}] {'reused' if reused else 'done'} in {result.seconds:.2f}s: {detail}")
    finally:
        write_atomic(state_path, json.dumps(ctx.state, indent=1, sort_keys=True) + "\n")
    return BuildSummary(site.site.name, tuple(results), tuple(ctx.packages), ctx.repo, out_dir, ctx.signed_by)


def export(site: Site, out_dir: Path | None = None, dest: Path | None = None) -> tuple[Path, str]:
    """The built repository as one tarball (SHA256SUMS inside) for carrying across the air gap."""
    from builder.rpm import publish

    out = (out_dir or default_out_dir(site)).resolve()
    state = _load_state(out / "state.json")
    if "release" not in state:
        raise BuildError(f"nothing built in {out} yet", hint="run `bundle build --site ...` first")
    name = f"airflow-prod-{site.site.name}-{state['version']}-{state['release']}"
    tar = publish.export_tarball(out / "repo", dest or out / "export" / f"{name}.tar", name, state["stamp"])
    digest = sha256_file(tar)
    write_atomic(tar.with_name(tar.name + ".sha256"), f"{digest}  {tar.name}\n")
    return tar, digest
