from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "site.toml"


def pytest_collection_modifyitems(session, config, items):
    # An empty run must never pass silently (pytest exits 5, the scripts
    # treat that as failure, and this makes the count visible).
    if not items:
        raise pytest.UsageError("no tests collected")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Cache stays shared (slow downloads), but XDG config goes to a temp dir."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))


@pytest.fixture(scope="session")
def example_data() -> dict:
    return tomllib.loads(EXAMPLE.read_text())


@pytest.fixture
def data(example_data) -> dict:
    """A fresh, mutable copy of the example site's data."""
    return copy.deepcopy(example_data)


@pytest.fixture(scope="session")
def example_site():
    from builder.site import load_site

    return load_site(EXAMPLE)


def minimal_data() -> dict:
    """The smallest valid site: one host, no LDAP, no Kerberos."""
    return {
        "site": {"name": "mini"},
        "hosts": [{"name": "af1.example.com",
                   "roles": ["api-server", "scheduler", "dag-processor", "triggerer", "celery-worker"]}],
        "database": {"host": "db.example.com"},
    }
