"""The Jinja2 environment: strict about undefined names, stable whitespace."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jinja2

from builder.resources import templates_dir


def _py(value: object) -> str:
    """A Python literal for webserver_config.py."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_py(v) for v in value) + "]"
    if isinstance(value, str):
        # JSON string syntax is valid Python and always double-quoted.
        return json.dumps(value)
    return repr(value)


def _envquote(value: str) -> str:
    """A value systemd's EnvironmentFile= and POSIX sh both read literally."""
    if value and all(c.isalnum() or c in "-_./:,=+@%" for c in value):
        return value
    if "'" in value or "\n" in value:
        raise ValueError(f"cannot quote {value!r} for an environment file (contains ' or a newline)")
    return f"'{value}'"


def _rpmesc(value: str) -> str:
    """rpm expands macros everywhere in a spec: a literal % is %%."""
    return str(value).replace("%", "%%")


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
    env.filters["py"] = _py
    env.filters["envquote"] = _envquote
    env.filters["rpmesc"] = _rpmesc
    return env


def render_template(name: str, **context: object) -> str:
    return environment().get_template(name).render(**context)
