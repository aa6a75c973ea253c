"""`bundle build`: the whole pipeline as a straight list of named steps.

    lock -> wheelhouse -> render -> package -> publish -> audit -> sbom

The steps (steps.py) are small; each is logged with its duration and skipped when the
hash of its inputs matches the one recorded in <out>/state.json (state.py) and its
outputs are still there. The wheelhouse RPM is keyed by its own content and kept in a
cache shared by every site (serials.py), so a config-only change rebuilds the small
site packages only. The engine never imports the CLI; it reports through `notify`
(builder.report).

    context.py    BuildOptions, the build Context, what a build returns
    state.py      <out>/state.json
    stamps.py     the two time-stamp policies (site packages, wheelhouse)
    serials.py    the wheelhouse RPM's build serials in the shared cache
    venv_size.py  the free space a new venv needs
    manifest.py   what `bundle wheelhouse` left in a directory
    sbom.py       the CycloneDX SBOMs of the wheelhouse and of the bundle (docs/sbom.md)
    smoke.py      what a new venv must import before it serves
    signing.py    the signing key, signed copies, repository metadata, `bundle export`
    audit.py      the lock against the imported advisory feed, recorded in repo/ and the manifest
"""

from __future__ import annotations

import time
from pathlib import Path

from builder.pipeline.context import (
    BuildError, BuildOptions, BuildSummary, BuiltPackage, Context, StepResult, default_out_dir,
)
from builder.pipeline.signing import check_signing_key, export, signing_key
from builder.pipeline.smoke import SMOKE_IMPORTS, SMOKE_OPTIONAL, smoke_imports, smoke_optional
from builder.pipeline.stamps import lock_epoch, source_date_epoch
from builder.pipeline.state import BuildState
from builder.pipeline.steps import STEPS
from builder.pipeline.venv_size import venv_kb
from builder.report import Notify, emit
from builder.site import Site
from builder.site.advice import risky_choices

__all__ = [
    "SMOKE_IMPORTS", "SMOKE_OPTIONAL", "STEPS", "BuildError", "BuildOptions", "BuildSummary", "BuiltPackage",
    "StepResult", "build", "default_out_dir", "export", "lock_epoch", "smoke_imports", "smoke_optional",
    "source_date_epoch", "venv_kb",
]


_DEFAULTS = BuildOptions()


def build(site: Site, site_path: str | Path, options: BuildOptions = _DEFAULTS,
          notify: Notify = emit) -> BuildSummary:
    out_dir = (options.out_dir or default_out_dir(site)).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    state = BuildState.load(out_dir / "state.json")
    ctx = Context(site, Path(site_path).resolve(), options, out_dir, notify, state)
    for risk in risky_choices(site):
        notify("warn", str(risk))
    ctx.signing = signing_key(site, options.sign)  # a missing key fails now, not after packaging
    if ctx.signing.fingerprint:
        check_signing_key(ctx.signing, notify)
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
        state.save()
    return BuildSummary(site.site.name, tuple(results), tuple(ctx.packages), ctx.repo, out_dir, ctx.signed_by)
