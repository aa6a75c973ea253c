"""Fixtures of the end-to-end tests: the real servers, the CA, the root image, the signing key."""

from .fixtures import (  # noqa: F401
    ca,
    e2e_target_image,
    kdc,
    ldap,
    postgres,
    redis,
    servers_dir,
    signing_key,
    statsd,
    target_image,
)


import fcntl  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def one_e2e_run_at_a_time():
    """Booted hosts share this machine's network: two e2e runs at once would fight over the
    log servers' fixed ports (8793, 8794) and the machine's two cores. Each run waits here."""
    # Machine-wide, not the session's cache (tests/conftest.py gives each session its own).
    path = Path.home() / ".cache" / "airflow-prod" / "e2e-run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock:
        started = time.monotonic()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[e2e] another e2e run holds {path}: waiting for it", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
            print(f"[e2e] waited {time.monotonic() - started:.0f} s for {path}", file=sys.stderr)
        yield
