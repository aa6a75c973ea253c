"""Render spec/ templates: plans -> spec text, and the venv builder script (pure)."""

from __future__ import annotations

import jinja2

from builder import layout
from builder.pydeps import native
from builder.render.jinja import environment as _environment
from builder.resources import spec_dir
from builder.rpm import plan as P, scriptlets
from builder.site import Site


def environment() -> jinja2.Environment:
    return _environment(spec_dir())


def template_texts() -> dict[str, str]:
    """The spec templates' sources, for input hashes (a template change rebuilds)."""
    return {p.name: p.read_text() for p in sorted(spec_dir().glob("*.j2"))}


def render_spec(plan: P.SpecPlan) -> str:
    template = environment().get_template(f"{plan.spec_name}.spec.j2")
    return template.render(
        plan=plan, license=P.LICENSE, url=P.URL, vendor=P.VENDOR, packager=P.PACKAGER,
    )


def render_build_venv(site: Site, smoke_imports: tuple[str, ...],
                      smoke_optional: tuple[str, ...] = ()) -> str:
    """build-venv; `smoke_optional` holds "dist=module" pairs of optional C extensions."""
    p = site.paths
    return environment().get_template("build-venv.sh.j2").render(
        site_name=site.site.name,
        python=site.target.interpreter,
        python_minor=site.target.python_minor,
        venv=p.venv,
        venvs=p.venvs,
        wheel_dir=layout.WHEEL_DIR,
        lock=layout.LOCK_PATH,
        uv_dir=layout.UV_DIR,
        log_dir=layout.LOG_DIR,
        fapolicyd_cli=scriptlets.FAPOLICYD_CLI,
        trust_name=layout.FAPOLICYD_TRUST_NAME,
        smoke_imports=smoke_imports,
        smoke_optional=smoke_optional,
        compile_env=native.COMPILE_ENV,
        parallel_config_printf=native.PARALLEL_CONFIG_PRINTF,
    )
