"""What a new venv must import, as the airflow user, before it serves.

Airflow, and the module that loads each locked distribution's compiled code: a wheel
built for another OS, a library missing on the target or a file fapolicyd denies fails
here, in %post. Only what the lock pins is imported.
"""

from __future__ import annotations

from builder.pydeps.lockfile import Lock

# Python distributions whose import proves a venv usable -> the module to import.
SMOKE_IMPORTS = {
    "apache-airflow-core": "airflow", "apache-airflow": "airflow",
    "python-ldap": "ldap", "gssapi": "gssapi.raw", "krb5": "krb5", "pykerberos": "kerberos",
    "psycopg2": "psycopg2", "psycopg2-binary": "psycopg2",
    "cryptography": "cryptography.hazmat.bindings._rust", "cffi": "_cffi_backend",
    "bcrypt": "bcrypt", "pynacl": "nacl.bindings", "pydantic-core": "pydantic_core",
    "greenlet": "greenlet", "grpcio": "grpc", "psutil": "psutil", "setproctitle": "setproctitle",
    "uvloop": "uvloop", "httptools": "httptools", "msgspec": "msgspec", "numpy": "numpy",
    "pandas": "pandas", "asyncpg": "asyncpg", "oracledb": "oracledb", "pymssql": "pymssql",
    "jpype1": "_jpype", "rpds-py": "rpds", "watchfiles": "watchfiles",
}
# Compiled extensions a distribution silently goes without (pure-Python fallback): a
# missing one is a warning of build-venv, not a failure. thrift's sdist builds it only
# when a C++ compiler is there.
SMOKE_OPTIONAL = {
    "thrift": "thrift.protocol.fastbinary", "msgpack": "msgpack._cmsgpack", "pyyaml": "yaml._yaml",
    "markupsafe": "markupsafe._speedups", "wrapt": "wrapt._wrappers",
    "sqlalchemy": "sqlalchemy.cresultproxy",
}


def smoke_imports(lock: Lock) -> tuple[str, ...]:
    return tuple(sorted({SMOKE_IMPORTS[n] for n in lock.pins if n in SMOKE_IMPORTS}))


def smoke_optional(lock: Lock) -> tuple[str, ...]:
    """"dist=module" pairs of the optional compiled extensions the lock brings."""
    return tuple(sorted(f"{n}={SMOKE_OPTIONAL[n]}" for n in lock.pins if n in SMOKE_OPTIONAL))
