"""Escaping for every sink a site value reaches: one function per reader.

The site model already refuses values that could change a file's structure
(builder/site/values.py); these functions escape again, as defence in depth,
so a value that slipped through is written literally or refused here with a
clear error, never interpreted by the reader.
"""

from __future__ import annotations

import json
import re
import shlex
from xml.sax.saxutils import escape as _xml_escape

from builder.errors import ValidationFailed

# Written bare by every sink: no quoting, specifier, macro or expansion meaning.
_PLAIN = re.compile(r"[A-Za-z0-9_./:,=+@-]+")


class RenderError(ValidationFailed):
    """A value cannot be written into a file without changing that file's structure."""


def _one_line(value: str, sink: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 or c in "\u0085\u2028\u2029" for c in value):
        raise RenderError(f"cannot write {value!r} into {sink}: it contains a line break or control character")
    return value


def py(value: object) -> str:
    """A Python literal (webserver_config.py, the airflow wrapper)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(py(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py(k)}: {py(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        # JSON string syntax is valid Python, always double-quoted, every control escaped;
        # ensure_ascii would write astral characters as surrogate pairs, which Python
        # reads as two broken code points.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (bool, int, float)) or value is None:
        return repr(value)
    raise RenderError(f"cannot write a {type(value).__name__} as a Python literal")


def env(value: object) -> str:
    """A value systemd's EnvironmentFile= parser and POSIX sh both read literally.

    Inside double quotes both unescape exactly \\" \\\\ \\` \\$ and keep any other
    backslash; `$` would expand in sh, so it is escaped too.
    """
    text = _one_line(str(value), "an environment file")
    if _PLAIN.fullmatch(text):
        return text
    return '"' + re.sub(r'(["\\`$])', r"\\\1", text) + '"'


def sh(value: object) -> str:
    """One word for POSIX sh (scriptlets, build-venv)."""
    return shlex.quote(_one_line(str(value), "a shell script"))


def cfg(value: object) -> str:
    """An airflow.cfg value: configparser's interpolation reads %% as a literal %."""
    return _one_line(str(value), "airflow.cfg").replace("%", "%%")


def unit(value: object) -> str:
    """A systemd unit setting that takes a path or name: % is a specifier (%%)."""
    text = _one_line(str(value), "a systemd unit")
    if any(c.isspace() for c in text):
        raise RenderError(f"cannot write {text!r} into a systemd unit setting: it contains spaces")
    return text.replace("%", "%%")


def unit_arg(value: object) -> str:
    """One ExecStart= argument: specifiers (%%), variables ($$), quoted if needed."""
    text = _one_line(str(value), "a systemd unit").replace("%", "%%").replace("$", "$$")
    if _PLAIN.fullmatch(text.replace("%", "").replace("$", "")):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def field(value: object) -> str:
    """A tmpfiles.d / sysusers.d field: specifiers (%%); quoted if it holds blanks or quotes."""
    text = _one_line(str(value), "a tmpfiles/sysusers line").replace("%", "%%")
    if text and not any(c.isspace() or c in "\"'\\" for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rpm(value: object) -> str:
    """Text in a spec file: rpm expands macros everywhere, a literal % is %%."""
    return str(value).replace("%", "%%")


def rpm_path(value: object) -> str:
    """A %files path: macros escaped; quoted if it holds blanks; globs escaped."""
    text = rpm(_one_line(str(value), "a spec %files line"))
    text = re.sub(r"([*?\[\]{}\\])", r"\\\1", text)
    return f'"{text}"' if any(c.isspace() for c in text) else text


def xml(value: object) -> str:
    """XML character data or attribute value."""
    return _xml_escape(str(value), {'"': "&quot;"})


def xml_comment(value: object) -> str:
    """Text inside <!-- -->: XML forbids '--' there and a trailing '-'."""
    text = str(value)
    while "--" in text:
        text = text.replace("--", "- -")
    return text + " " if text.endswith("-") else text


def comment(value: object) -> str:
    """Text after '#' in a unit, env or tmpfiles file: one line, no continuation backslash."""
    text = _one_line(str(value), "a comment")
    return text + " " if text.endswith("\\") else text


FILTERS = {
    "py": py, "envquote": env, "sh": sh, "cfg": cfg, "unit": unit, "unitarg": unit_arg,
    "field": field, "rpmesc": rpm, "rpmpath": rpm_path, "xml": xml, "xmlcomment": xml_comment,
    "comment": comment,
}
