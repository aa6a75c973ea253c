"""What differs between the Airflow 3 releases a site may name, as one versioned table.

Each row holds from its `since` release until the next row's; every fact is read from that
release's own files (the wheels' sources and config.yml: docs/upgrades.md). Options the
bundle renders are also checked against each release's own schema at build time
(builder/check/airflow_schema.py); this table is for what a schema cannot say: which
option Airflow's code really honours, and what the units and the site may use.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version


@dataclass(frozen=True)
class Release:
    since: str
    # [api_auth] jwt_audience is read by both the token signer and the validator. Before 3.3.0
    # the signer read [api] jwt_audience (undocumented, fallback "apache-airflow") and the
    # validator [api_auth] jwt_audience (base_auth_manager.py `_get_token_signer` /
    # `_get_token_validator`; fixed by apache/airflow#67494): setting the documented option
    # alone made every API token invalid.
    jwt_audience: bool
    # [api] server_type = gunicorn: several api-server workers under one master, with rolling
    # worker refresh (worker_refresh_interval / _batch_size; cli/commands/api_server_command.py,
    # api_fastapi/gunicorn_app.py). Before, only uvicorn, which loses extra workers.
    gunicorn: bool
    # The task supervisor makes itself and so each task process non-dumpable (task-sdk 1.2.0,
    # supervisor.py `_make_process_nondumpable`): under ProtectProc=invisible the supervisor can
    # then no longer see its own task in /proc (psutil.NoSuchProcess, every task fails).
    nondumpable_tasks: bool = False


RELEASES: tuple[Release, ...] = (
    Release("3.1.0", jwt_audience=False, gunicorn=False),
    Release("3.2.0", jwt_audience=False, gunicorn=True, nondumpable_tasks=True),
    Release("3.3.0", jwt_audience=True, gunicorn=True, nondumpable_tasks=True),
)


def release(version: str) -> Release:
    """The row that holds for `version` (the site model has checked it is a 3.x release)."""
    try:
        wanted = Version(version)
    except InvalidVersion:
        return RELEASES[0]
    rows = [r for r in RELEASES if Version(r.since) <= wanted]
    return rows[-1] if rows else RELEASES[0]


def first_with(fact: str) -> str:
    """The first release of the table where `fact` (a field of Release) is true."""
    return next(r.since for r in RELEASES if getattr(r, fact))
