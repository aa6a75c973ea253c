"""The steps of `bundle build`, each `verb_noun(context) -> (reused, detail)`.

Each decides for itself whether its inputs changed: it hashes them, and when the hash
matches the one recorded in <out>/state.json and its outputs are still there, it reuses
them. The runner (builder.pipeline.build) logs each with its duration.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from builder import run
from builder.pipeline.audit import audit_advisories
from builder.pipeline.context import BuildError, BuiltPackage, Context, digest_of
from builder.pipeline.manifest import find_uv, wheelhouse_input, wheelhouse_outputs
from builder.pipeline.sbom import wheelhouse_sbom, write_sboms
from builder.pipeline.serials import cache_serial
from builder.pipeline.signing import place_signed, write_metadata
from builder.pipeline.smoke import smoke_imports, smoke_optional
from builder.pipeline.stamps import lock_epoch, source_date_epoch
from builder.pipeline.venv_size import venv_kb
from builder.fsutil import link_or_copy, sha256_file
from builder.pydeps.lockfile import Lock
from builder.render import render_site, write_tree
from builder.report import nested
from builder.resources import cache_dir
from builder.rpm import plan as P
from builder.rpm import rpmbuild
from builder.rpm.spec import render_build_venv, render_spec


def lock_dependencies(ctx: Context) -> tuple[bool, str]:
    """The offline hash lock: given, or `bundle lock`'s (resolved only when its inputs changed)."""
    if ctx.options.lock_file:
        ctx.lock_path = ctx.options.lock_file.resolve()
        if not ctx.lock_path.is_file():
            raise BuildError(f"--lock {ctx.lock_path}: no such file")
        ctx.lock = Lock.read(ctx.lock_path)
        return True, f"given: {ctx.lock_path}"
    from builder.pydeps.resolve import ensure_lock

    # As `bundle lock` made it (backend, index): reused, or refused if made otherwise.
    lock = ensure_lock(ctx.site, locks_dir=ctx.options.locks_dir, may_relock=False,
                       notify=nested(ctx.notify))
    ctx.lock_path = Path(lock.path).resolve()
    ctx.lock = lock
    return lock.reused, f"{ctx.lock_path} ({len(lock.pins)} pins, {lock.backend} against {lock.index})"


def collect_wheelhouse(ctx: Context) -> tuple[bool, str]:
    """Wheels for the target, verified against the lock (`bundle wheelhouse`), incl. uv."""
    assert ctx.lock_path and ctx.lock
    if ctx.options.wheelhouse_dir:
        wdir = ctx.options.wheelhouse_dir.resolve()
        if not wdir.is_dir():
            raise BuildError(f"--wheelhouse {wdir}: no such directory")
        uv = (ctx.options.uv_wheel or find_uv(wdir)).resolve()
        ctx.wheelhouse = P.WheelhouseInput(wdir, ctx.lock_path, uv)
        return True, f"given: {wdir} ({len(ctx.wheelhouse.wheels())} files)"
    from builder.pydeps.wheelhouse import build_wheelhouse

    lock = ctx.lock
    wdir = ctx.out_dir / "wheelhouse"
    input_hash = digest_of(lock.body_hash, ctx.site.target.model_dump_json(), ctx.site.airflow.version)
    if ctx.unchanged("wheelhouse", input_hash, wheelhouse_outputs(wdir)):
        ctx.wheelhouse = wheelhouse_input(wdir)
        return True, f"{wdir} unchanged ({len(ctx.wheelhouse.wheels())} files)"
    wh = build_wheelhouse(ctx.site, lock, wdir, notify=nested(ctx.notify))
    ctx.wheelhouse = wheelhouse_input(wdir)
    ctx.state.record("wheelhouse", input_hash)
    return False, (f"{wdir}: {len(wh.files)} files, {wh.size / 1e6:.0f} MB "
                   f"({len(wh.downloaded)} downloaded, {len(wh.built)} built)")


def render_files(ctx: Context) -> tuple[bool, str]:
    """Every config file and unit of the site (pure), written to <out>/rendered for review."""
    ctx.rendered = rendered = render_site(ctx.site, _fingerprints(ctx))
    files = rendered.files
    digest = digest_of(*[(f.dest, f.mode, f.package, f.config, f.text) for f in files])
    out = ctx.out_dir / "rendered"
    if ctx.unchanged("render", digest, [out]):
        return True, f"{len(files)} files unchanged"
    from builder.check.rendered import validate

    checks = validate(ctx.site, files, ctx.lock,
                      ctx.wheelhouse.wheel_dir if ctx.wheelhouse else None).summary()
    write_tree(files, out)
    ctx.state.record("render", digest)
    return False, f"{len(files)} files -> {out} ({checks})"


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


def build_packages(ctx: Context) -> tuple[bool, str]:
    """The wheelhouse RPM (content-keyed cache, shared by all sites) and the site RPMs."""
    assert ctx.wheelhouse and ctx.lock_path
    rpm_version = run.run(["rpmbuild", "--version"], what="rpmbuild --version").stdout.strip()
    rpms_dir = ctx.out_dir / "rpms"
    rpms_dir.mkdir(parents=True, exist_ok=True)
    wh_plan, wh_rpm, wh_reused, wh_stamp = _wheelhouse_rpm(ctx, rpm_version)
    plan, site_rpms, site_reused, stamp = _site_rpms(ctx, rpm_version, rpms_dir, wh_plan, wh_rpm.name)
    ctx.plans = (wh_plan, plan)

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
    ctx.state.built(plan.version, plan.release, max(stamp, wh_stamp))
    what = "wheelhouse RPM " + ("reused" if wh_reused else "built") + ", site RPMs " + (
        "reused" if site_reused else "built")
    return wh_reused and site_reused, f"{what} -> {rpms_dir}"


def _wheelhouse_rpm(ctx: Context, rpm_version: str) -> tuple[P.SpecPlan, Path, bool, int]:
    """The site-independent wheelhouse RPM: built once per content, reused by every site."""
    assert ctx.wheelhouse and ctx.lock
    site, opts = ctx.site, ctx.options
    cache_root = opts.rpm_cache or cache_dir() / "rpms"
    wheelhouse = ctx.wheelhouse

    def plan_at(stamp: int) -> P.SpecPlan:
        return P.wheelhouse_plan(wheelhouse, site.airflow.version, stamp, ctx.memo,
                                 serial=lambda d: cache_serial(cache_root, d), dist=site.target.os)

    lock_stamp = lock_epoch(ctx.lock)[0]
    wh_plan = plan_at(lock_stamp)
    # The packages' content does not depend on the stamp; only a lock older than the last
    # published wheelhouse needs the plan again, at a later stamp.
    wh_stamp = ctx.state.wheelhouse_stamp(P.plan_digest(wh_plan.packages, site.target.os), lock_stamp)
    if wh_stamp != lock_stamp:
        wh_plan = plan_at(wh_stamp)
    wh_spec = render_spec(wh_plan)
    wh_key = digest_of(wh_spec, P.plan_digest(wh_plan.packages), opts.payload, rpm_version)[:20]
    cache = cache_root / wh_key
    wh_rpm = cache / wh_plan.rpm_filename(wh_plan.main)
    wh_reused = wh_rpm.is_file() and not opts.force
    if not wh_reused:
        built = rpmbuild.build(wh_plan, wh_spec, cache, opts.payload)
        ctx.notify("info", f"  built {wh_rpm.name} in {built.seconds:.1f}s")
    return wh_plan, wh_rpm, wh_reused, wh_stamp


def _site_rpms(ctx: Context, rpm_version: str, rpms_dir: Path, wh_plan: P.SpecPlan,
               wh_rpm_name: str) -> tuple[P.SpecPlan, list[Path], bool, int]:
    """The site packages: one spec, one rpmbuild, when its inputs changed."""
    assert ctx.wheelhouse and ctx.rendered
    site, opts = ctx.site, ctx.options
    stamp, stamp_src = source_date_epoch(ctx.site_path)
    offline_lock = Lock.read(ctx.wheelhouse.lock)
    inputs = P.SiteInputs(
        wheelhouse_evr=f"{wh_plan.version}-{wh_plan.release}",
        venv_kb=venv_kb(ctx.wheelhouse.wheels(), ctx.memo),
        smoke_imports=smoke_imports(offline_lock),
        build_requires=ctx.wheelhouse.build_packages,
        wheelhouse_sbom=wheelhouse_sbom(ctx, wh_plan),
    )
    build_venv = render_build_venv(site, inputs.smoke_imports, smoke_optional(offline_lock))
    plan = P.site_plan(site, ctx.rendered, inputs, stamp, build_venv, serial=ctx.state.site_serial)
    spec = render_spec(plan)
    digest = digest_of(spec, P.plan_digest(plan.packages), opts.payload, rpm_version, wh_rpm_name)
    site_rpms = [rpms_dir / n for n in plan.filenames()]
    site_reused = ctx.unchanged("package", digest, site_rpms)
    if not site_reused:
        built = rpmbuild.build(plan, spec, rpms_dir, opts.payload)
        ctx.notify("info", f"  built {len(built.paths)} site packages in {built.seconds:.1f}s "
                f"(release {plan.release}, time stamp from {stamp_src})")
        ctx.state.record("package", digest, release=plan.release)
    return plan, site_rpms, site_reused, stamp


def publish_repository(ctx: Context) -> tuple[bool, str]:
    """Signed RPMs, xz metadata, signed repomd.xml and the public key in <out>/repo."""
    from builder.rpm import publish

    fpr = ctx.signing.fingerprint
    sign = bool(fpr)
    repo = ctx.out_dir / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    digests = {p.path.name: sha256_file(p.path, ctx.memo) for p in ctx.packages}
    repo_files = publish.repo_files(ctx.site.site.name, sign)
    input_hash = digest_of(sorted(digests.items()), fpr, sign, ctx.state.stamp, sorted(repo_files.items()))
    outputs = [repo / n for n in digests] + [repo / "repodata" / "repomd.xml"] + [repo / n for n in repo_files]
    if sign:
        outputs += [repo / "repodata" / "repomd.xml.asc", repo / publish.KEY_FILE]
    ctx.repo, ctx.signed_by = repo, (fpr or None)
    if ctx.unchanged("publish", input_hash, outputs):
        return True, f"repository unchanged: {repo}"

    placed, signed = place_signed(ctx.packages, repo, digests, ctx.signing,
                                  ctx.state.recorded("publish").get("signed", {}), ctx.options.force)
    write_metadata(repo, ctx.state.stamp or 0, ctx.signing, repo_files)
    ctx.state.record("publish", input_hash, signed=signed)
    how = f"signed {placed} (key {fpr[-16:]})" if sign else "UNSIGNED"
    return False, f"{how}, kept {len(digests) - placed} -> {repo}"


# The build, in order: (the name it is logged and recorded under, the step).
STEPS: tuple[tuple[str, Callable[[Context], tuple[bool, str]]], ...] = (
    ("lock", lock_dependencies),
    ("wheelhouse", collect_wheelhouse),
    ("render", render_files),
    ("package", build_packages),
    ("publish", publish_repository),
    ("audit", audit_advisories),
    ("sbom", write_sboms),
)
