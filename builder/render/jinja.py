"""The Jinja2 environment: strict about undefined names, stable whitespace."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from builder.render.escape import FILTERS, RenderError
from builder.resources import templates_dir


@cache
def environment(directory: Path | None = None) -> jinja2.Environment:
    """One configuration for every template tree (templates/ by default, or spec/)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory or templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # One filter per sink; templates pass every site value through its sink's filter.
    env.filters.update(FILTERS)
    return env


def render_template(name: str, **context: object) -> str:
    try:
        return environment().get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template {exc.name} not found in {templates_dir()}",
                          hint="reinstall airflow-prod-bundle: its templates are incomplete") from None
    except jinja2.TemplateError as exc:  # a syntax error or an undefined name
        line = getattr(exc, "lineno", None)  # a TemplateSyntaxError says where
        where = f"{getattr(exc, 'filename', None) or name}:{line}" if line else name
        raise RenderError(f"template {where} cannot be rendered: {exc.message or exc}",
                          hint="the template and the site model disagree; a changed or foreign "
                          "template is the likely cause (reinstall to restore it)") from None
