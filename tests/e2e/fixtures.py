"""pytest fixtures (session scope) for the real servers and the private CA.

Import them into a test module (`from e2e.fixtures import postgres, ...`) or
a conftest. Each server lives under one session directory on free loopback
ports and is stopped by PID when the session ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .ca import PrivateCA
from .servers import Kdc, Ldap, Postgres, Redis, kdc_server, ldap_server, postgres_server, redis_server

# The host name the test site gives its one Airflow host (and the api-server
# certificate's SAN); the Kerberos principal is airflow/<this>@REALM.
TARGET_HOST = "airflow.e2e.test"


def _need(*tools: str) -> None:
    missing = [t for t in tools if not shutil.which(t) and not Path("/usr/sbin", t).exists()]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (see scripts/deps-debian.txt)")


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    """One world-traversable directory for every server of the session.

    Not pytest's tmp_path: that is 0700 root, and PostgreSQL runs as its own user.
    """
    path = Path(tempfile.mkdtemp(prefix="airflow-prod-servers-"))
    path.chmod(0o755)
    yield path
    if not os.environ.get("AIRFLOW_PROD_KEEP_SERVERS"):
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
def ldap(servers_dir: Path, ca: PrivateCA) -> Iterator[Ldap]:
    _need("slapd", "slaptest", "slappasswd", "ldapadd", "ldapsearch", "ldapwhoami")
    with ldap_server(servers_dir / "ldap", ca) as server:
        yield server


@pytest.fixture(scope="session")
def kdc(servers_dir: Path) -> Iterator[Kdc]:
    _need("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "klist")
    with kdc_server(servers_dir / "kdc", f"airflow/{TARGET_HOST}") as server:
        yield server
