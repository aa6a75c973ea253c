from __future__ import annotations

import copy
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from support import sites

# --- under CI a skip is a failure ------------------------------------------------------------
#
# `.ci/run` sets AIRFLOW_PROD_CI=1; CI=true (what hosted CI services set) counts too. A
# skipped test proves nothing, so a green CI run must not contain one, except the few
# below that cannot run on any machine that can run the rest. Each entry: a regex
# matched against the skip reason, and why that skip is legitimate. Keep it short;
# docs/testing.md lists the same entries.
SKIP_ALLOWED: dict[str, str] = {
    r"^this host could build el9 wheels itself":
        "the refusal to ship Debian-built native wheels for el9 only exists on a host with "
        "no Docker engine and no el9 OS; where either exists the docker/host builder runs instead",
}


def ci_strict() -> bool:
    return os.environ.get("AIRFLOW_PROD_CI") == "1" or os.environ.get("CI", "").lower() in ("true", "1")


def skip_allowed(reason: str) -> str | None:
    """Why this skip is allowed under CI, or None."""
    reason = reason.removeprefix("Skipped: ")
    for pattern, why in SKIP_ALLOWED.items():
        if re.search(pattern, reason):
            return why
    return None


def _skip_reason(report) -> str:
    if hasattr(report, "wasxfail"):
        return f"xfail: {report.wasxfail}"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_the_skip(report, what: str) -> None:
    reason = _skip_reason(report).removeprefix("Skipped: ")
    if skip_allowed(reason) is not None:
        return
    report.outcome = "failed"
    report.longrepr = (
        f"{what} skipped under CI (AIRFLOW_PROD_CI=1 or CI=true): {reason}\n"
        "Under CI a skip is a failure: install what is missing (scripts/setup), run as root, "
        "or add the reason to SKIP_ALLOWED in tests/conftest.py with why it is legitimate."
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and ci_strict():
        _fail_the_skip(report, "test")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.outcome == "skipped" and ci_strict():
        _fail_the_skip(report, "module")


def pytest_collection_modifyitems(session, config, items):
    # An empty run must never pass silently (pytest exits 5, the scripts
    # treat that as failure, and this makes the count visible).
    if not items:
        raise pytest.UsageError("no tests collected")


def pytest_report_header(config):
    mode = "on: a skip outside SKIP_ALLOWED fails" if ci_strict() else "off (set AIRFLOW_PROD_CI=1)"
    return [f"airflow-prod: CI skip policy {mode}",
            f"airflow-prod: session cache {os.environ.get('AIRFLOW_PROD_CACHE')}, "
            f"shared downloads {os.environ.get('AIRFLOW_PROD_BLOBS')}"]


# --- each session gets its own derived caches --------------------------------------------------
#
# Wheel selections, build requirements, built wheels, Airflow's schema memo, tool venvs and
# uv's cache go to a fresh directory per session, so a warm machine exercises the code that
# makes them exactly like a fresh one. Only the content-addressed downloads are shared across
# runs: every blob is checked against its sha256 before use, so it cannot be wrong unnoticed.

_SESSION_CACHE: Path | None = None


def pytest_configure(config):
    global _SESSION_CACHE
    if os.environ.get("UPDATE_GOLDEN") and ci_strict():
        raise pytest.UsageError(
            "UPDATE_GOLDEN is set under CI (AIRFLOW_PROD_CI=1 or CI=true): CI compares with the goldens, "
            "it never rewrites them. Regenerate locally, review the diff, and commit it with an intent assertion."
        )
    if "AIRFLOW_PROD_BLOBS" not in os.environ:
        from builder.resources import blob_dir

        os.environ["AIRFLOW_PROD_BLOBS"] = str(blob_dir())  # the user's cache, before the switch
    _SESSION_CACHE = Path(tempfile.mkdtemp(prefix="airflow-prod-test-cache-"))
    os.environ["AIRFLOW_PROD_CACHE"] = str(_SESSION_CACHE)


def pytest_unconfigure(config):
    if _SESSION_CACHE is not None and not os.environ.get("AIRFLOW_PROD_E2E_KEEP"):
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path_factory, monkeypatch):
    """XDG config (the default secrets file) goes to a temp dir."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))


@pytest.fixture(scope="session", name="example_data")
def _example_data() -> dict:
    return sites.example_data()


@pytest.fixture
def data(example_data) -> dict:
    """A fresh, mutable copy of the example site's data."""
    return copy.deepcopy(example_data)


@pytest.fixture(scope="session")
def example_site():
    from builder.site import load_site

    return load_site(sites.EXAMPLE)


# --- a local package index (tests/support/pkgindex.py) --------------------------------------------


@pytest.fixture
def pkgindex():
    """An empty PEP 691/700 index on loopback; add files with .add_wheel()/.add()."""
    from support.pkgindex import PackageIndex, Server

    with Server(PackageIndex()) as index:
        yield index


@pytest.fixture
def airflow_index(pkgindex):
    """The index holding a tiny Airflow 3.1.4 world (pkgindex.airflow_world)."""
    from support.pkgindex import airflow_world

    return airflow_world(pkgindex)


class NetworkUsed(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    """Any outgoing connection, name lookup or external command fails the test.

    Sockets are refused at connect (loopback included: a reused lock needs no index),
    and builder.run.run (uv, pip-compile, ...) is refused too, since a child process
    could reach the network where this process cannot see it.
    """
    import socket

    from builder import run

    def refuse(*args, **kwargs):
        raise NetworkUsed(f"network used: {args[1:] or args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)

    def no_command(argv, *args, **kwargs):
        raise NetworkUsed(f"external command run: {argv[:3]}")

    monkeypatch.setattr(run, "run", no_command)

