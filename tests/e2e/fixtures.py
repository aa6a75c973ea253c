"""pytest fixtures (session scope) for the real servers and the private CA.

Import them into a test module (`from e2e.fixtures import postgres, ...`) or
a conftest. Each server lives under one session directory on free loopback
ports and is stopped by PID when the session ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .ca import PrivateCA
from .servers import Kdc, Ldap, Postgres, Redis, kdc_server, ldap_server, postgres_server, redis_server

# The host name the test site gives its one Airflow host (and the api-server
# certificate's SAN); the Kerberos principal is airflow/<this>@REALM.
TARGET_HOST = "airflow.e2e.test"


def keep_temp() -> bool:
    """AIRFLOW_PROD_E2E_KEEP=1 keeps server dirs and target roots for a post-mortem."""
    return bool(os.environ.get("AIRFLOW_PROD_E2E_KEEP"))


def scratch_dir(prefix: str) -> Path:
    """A world-traversable temp dir (services inside run as other users)."""
    path = Path(tempfile.mkdtemp(prefix=f"airflow-prod-{prefix}-"))
    path.chmod(0o755)
    return path


def _need(*tools: str) -> None:
    missing = [t for t in tools if not shutil.which(t) and not Path("/usr/sbin", t).exists()]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (see scripts/deps-debian.txt)")


def _terminate_like_ctrl_c(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt(f"signal {signum}")


def stop_cleanly_on_sigterm() -> None:
    """SIGTERM (timeout, CI cancelling) would kill pytest before any teardown, leaving daemons
    and a booted container behind: turn it into KeyboardInterrupt, which runs finalizers."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _terminate_like_ctrl_c)


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    """One world-traversable directory for every server of the session.

    Not pytest's tmp_path: that is 0700 root, and PostgreSQL runs as its own user.
    """
    stop_cleanly_on_sigterm()
    path = scratch_dir("servers")
    yield path
    if not keep_temp():
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def ca(servers_dir: Path) -> PrivateCA:
    return PrivateCA(servers_dir / "ca")


@pytest.fixture(scope="session")
def postgres(servers_dir: Path) -> Iterator[Postgres]:
    _need("initdb", "psql", "pg_isready")
    with postgres_server(servers_dir / "postgres") as server:
        yield server


@pytest.fixture(scope="session")
def redis(servers_dir: Path) -> Iterator[Redis]:
    _need("redis-server", "redis-cli")
    with redis_server(servers_dir / "redis") as server:
        yield server


@pytest.fixture(scope="session")
def statsd(servers_dir: Path):
    from .statsd import statsd_server
    with statsd_server(servers_dir / "statsd") as server:
        yield server


@pytest.fixture(scope="session")
def ldap(servers_dir: Path, ca: PrivateCA) -> Iterator[Ldap]:
    _need("slapd", "slaptest", "slappasswd", "ldapadd", "ldapsearch", "ldapwhoami")
    with ldap_server(servers_dir / "ldap", ca) as server:
        yield server


@pytest.fixture(scope="session")
def kdc(servers_dir: Path) -> Iterator[Kdc]:
    _need("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "klist")
    with kdc_server(servers_dir / "kdc", f"airflow/{TARGET_HOST}") as server:
        yield server


# --- the target host stand-in ------------------------------------------------------

@pytest.fixture(scope="session")
def target_image():
    """The cached Debian 12 root without compilers (debootstrapped on first use, ~1 min)."""
    return _root_image(compilers=False)


@pytest.fixture(scope="session")
def e2e_target_image():
    """The root the e2e sites install on: with compilers and headers (what RHEL's gcc and
    -devel packages are), since they compile their native sdists on the target."""
    return _root_image(compilers=True)


def _root_image(*, compilers: bool):
    from .target import COMPILE_PACKAGES, ROOT_PACKAGES, RootImage, missing_host_tools

    if os.geteuid() != 0:
        pytest.skip("the target host stand-in needs root (debootstrap, systemd-nspawn, nsenter)")
    missing = missing_host_tools()
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (see scripts/deps-debian.txt)")
    stop_cleanly_on_sigterm()
    image = RootImage(packages=ROOT_PACKAGES + COMPILE_PACKAGES) if compilers else RootImage()
    image.ensure()
    return image


@pytest.fixture(scope="session")
def signing_key(servers_dir: Path):
    """A throwaway gpg key for test repositories (generated per session, never committed)."""
    from .repo import SigningKey

    _need("gpg", "gpgconf", "rpmsign", "rpmbuild", "createrepo_c")
    key = SigningKey.create(servers_dir / "gnupg")
    yield key
    key.close()
