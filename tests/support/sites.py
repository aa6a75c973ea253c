"""Sites for tests: the example site, the smallest valid ones, and site.toml files.

The standard library reads TOML but does not write it, and no TOML writer is a dependency:
`to_toml` writes what a site file holds (tables, arrays of tables, scalars, arrays of
scalars), every string and key escaped so that any value a test draws, control characters
included, reads back exactly as it was written.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "site.toml"


def example_data() -> dict:
    """The example site's data, read afresh (the caller may change it)."""
    return tomllib.loads(EXAMPLE.read_text())


def minimal_data(name: str = "mini") -> dict:
    """The smallest valid site: one host, no LDAP, no Kerberos."""
    return {
        "site": {"name": name},
        "hosts": [{"name": "af1.example.com",
                   "roles": ["api-server", "scheduler", "dag-processor", "triggerer", "celery-worker"]}],
        "database": {"host": "db.example.com"},
    }


def small_data(name: str = "mini", python: str = "3.11.7", **airflow: Any) -> dict:
    """minimal_data locking Airflow 3.1.4 with one extra (ssh) and no extra provider.

    `python`: the target interpreter; `airflow`: more or other [airflow] keys."""
    data = minimal_data(name)
    data["airflow"] = {"version": "3.1.4", "extras": ["ssh"], "providers": [], **airflow}
    data["target"] = {"python": python}
    return data


def small_site(python: str = "3.11.7", **airflow: Any):
    """The small site (small_data) loaded: ~130 packages from PyPI, locks in seconds."""
    from builder.site.load import site_from_data

    return site_from_data(small_data(python=python, **airflow))


# --- writing site.toml ----------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in value:
        if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append({'"': '\\"', "\\": "\\\\"}.get(ch, f"\\u{ord(ch):04X}"))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML here")


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _table(prefix: str, data: dict[str, Any], out: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and not _is_table_list(v)}
    if prefix and (scalars or not data):
        out.append(f"\n[{prefix}]")
    for k, v in scalars.items():
        out.append(f"{_key(k)} = {_value(v)}")
    for k, v in data.items():
        path = f"{prefix}.{_key(k)}" if prefix else _key(k)
        if isinstance(v, dict):
            _table(path, v, out)
        elif _is_table_list(v):
            for item in v:
                out.append(f"\n[[{path}]]")
                for ik, iv in item.items():
                    out.append(f"{_key(ik)} = {_value(iv)}")


def to_toml(data: dict[str, Any], *, comment: str | None = None) -> str:
    """site.toml text for `data`; `comment`: a first line saying where the file comes from."""
    out: list[str] = [f"# {comment}"] if comment else []
    _table("", data, out)
    return "\n".join(out).lstrip("\n") + "\n"


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    """A site file for `data`, as it is (the test may mean it to be refused)."""
    path.write_text(to_toml(data), encoding="utf-8")
    return path


def write_site(path: Path, data: dict[str, Any]) -> Path:
    """A site file for `data`, which must load as a valid site."""
    from builder.site import load_site

    write_toml(path, data)
    load_site(path)
    return path
