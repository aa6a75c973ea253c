"""The build's SBOMs (docs/sbom.md): the wheelhouse's files read once in the package step,
both CycloneDX documents written into <out>/repo/sbom after publishing, so the export
carries them and each RPM's sha256 is that of the signed file a host installs."""

from __future__ import annotations

from builder.fsutil import sha256_file, write_atomic
from builder.pipeline.context import Context, digest_of
from builder.pydeps import manifest, sbom
from builder.rpm import sbom as rpm_sbom
from builder.rpm.plan import SpecPlan

SBOM_DIR = "sbom"
BUNDLE_SBOM = "bundle.cdx.json"
WHEELHOUSE_SBOM = "wheelhouse.cdx.json"


def wheelhouse_items(ctx: Context) -> list[sbom.WheelhouseItem]:
    """Every file the wheelhouse RPM ships (wheels, sdists, uv), with its own metadata."""
    assert ctx.wheelhouse
    wh = ctx.wheelhouse
    files = wh.wheels() + ([] if wh.uv_in_wheels else [wh.uv_wheel])
    return sbom.read_items(files, ctx.memo, manifest.origins(wh.wheel_dir))


def wheelhouse_sbom(ctx: Context, wh_plan: SpecPlan) -> str:
    """The wheelhouse RPM's SBOM: what the base package ships in its docs directory."""
    if not ctx.sbom_items:
        ctx.sbom_items = wheelhouse_items(ctx)
    return rpm_sbom.wheelhouse_bom(wh_plan, ctx.sbom_items, ctx.site.target.os)


def write_sboms(ctx: Context) -> tuple[bool, str]:
    """CycloneDX JSON of the bundle (every RPM as published, and the wheels) and of the wheelhouse."""
    assert ctx.repo and len(ctx.plans) == 2
    wh_plan, plan = ctx.plans
    published = {p.path.name: sha256_file(ctx.repo / p.path.name, ctx.memo) for p in ctx.packages}
    epoch = ctx.state.stamp or plan.source_date_epoch
    texts = {
        BUNDLE_SBOM: rpm_sbom.bundle_bom(ctx.site.site.name, plan, wh_plan, ctx.sbom_items, published,
                                         ctx.site.target.os, epoch),
        WHEELHOUSE_SBOM: wheelhouse_sbom(ctx, wh_plan),
    }
    out = ctx.repo / SBOM_DIR
    if ctx.unchanged("sbom", digest_of(*sorted(texts.items())), [out / n for n in texts]):
        return True, f"unchanged: {out}"
    for name, text in texts.items():
        write_atomic(out / name, text)
    ctx.state.record("sbom", digest_of(*sorted(texts.items())))
    return False, f"{len(published)} RPMs, {len(ctx.sbom_items)} wheelhouse files -> {out}"
