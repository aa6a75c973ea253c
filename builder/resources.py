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
    """The build host's cache: $AIRFLOW_PROD_CACHE, else ~/.cache/airflow-prod.

    Everything derived lives here (wheel selections, build requirements, built wheels,
    Airflow's config schema, tool venvs, the RPM cache); the downloads themselves are in
    `blob_dir()`, which is inside it unless $AIRFLOW_PROD_BLOBS moves it.
    """
    base = os.environ.get("AIRFLOW_PROD_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "airflow-prod"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def blob_dir() -> Path:
    """The content-addressed downloads ($AIRFLOW_PROD_BLOBS, else <cache_dir>/blobs).

    Every file in it is verified against its sha256 before use, so it may be shared by
    caches that must not share anything else (each test session has its own cache_dir).
    """
    env = os.environ.get("AIRFLOW_PROD_BLOBS")
    return Path(env) if env else cache_dir() / "blobs"
