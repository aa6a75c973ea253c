"""Where the project's data lives: templates/ and spec/.

In a wheel they are packaged under builder/_data; in a checkout (editable
install, tests) they are the repository's top-level directories.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    packaged = _PACKAGE / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / name


def templates_dir() -> Path:
    return data_dir("templates")


def spec_dir() -> Path:
    return data_dir("spec")


def cache_dir() -> Path:
    """The build host's cache (downloads, fetched wheels, debootstrap roots)."""
    base = os.environ.get("AIRFLOW_PROD_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "airflow-prod"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path
