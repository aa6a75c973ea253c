"""The options of airflow.cfg, computed from the site (pure, ordered, stable).

Secrets are absent on purpose: fernet_key, [api] secret_key and
[api_auth] jwt_secret reach every component as AIRFLOW__*__* variables from
the secrets file, so one file on every node holds them and airflow.cfg can be
world-readable inside an RPM.
"""

from __future__ import annotations

import json

from builder.layout import config_file
from builder.site import Site

FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
WORKER_LOG_PORT = 8793
TRIGGERER_LOG_PORT = 8794

Options = dict[str, dict[str, str]]


# One publish attempt retries past [celery] operation_timeout (1 s); the scheduler counts each
# timed-out attempt and fails the task after PUBLISH_MAX_RETRIES of them (one per scheduler
# loop and queued task: minutes of broker outage, not seconds).
PUBLISH_RETRY_POLICY = {"max_retries": 10, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
PUBLISH_MAX_RETRIES = 300
# The task SDK's Execution-API calls retry with random exponential waits (1 s, then up to 2, 4,
# … 90 s): Airflow's 5 tries give up after ~10 s on average, 12 ride out ~4 minutes of a
# metadata database that is away (the api-server answers 500 meanwhile).
EXECUTION_API_RETRIES = 12


def cfg_value(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _core(site: Site) -> dict[str, object]:
    core: dict[str, object] = {
        "dags_folder": site.paths.dags,
        "plugins_folder": site.paths.plugins,
        "default_timezone": site.core.default_timezone,
        "executor": "CeleryExecutor",
        "auth_manager": FAB_AUTH_MANAGER,
        "parallelism": site.core.parallelism,
        "max_active_tasks_per_dag": site.core.max_active_tasks_per_dag,
        "max_active_runs_per_dag": site.core.max_active_runs_per_dag,
        "load_examples": site.core.load_examples,
        "test_connection": site.core.test_connection,
        # Workers reach the Execution API here: https, the public api host.
        "execution_api_server_url": site.execution_api_server_url,
    }
    if site.kerberos:
        core["security"] = "kerberos"
    return core


def _api(site: Site) -> dict[str, object]:
    return {
        "instance_name": site.api.instance_name,
        "expose_config": site.api.expose_config,
        "base_url": site.base_url,
        "host": site.api.bind,
        "port": site.api.port,
        "workers": site.api.workers,
        # The full chain: task workers trust certifi plus this file only.
        "ssl_cert": site.tls.cert,
        "ssl_key": site.tls.key,
        **_gunicorn(site),
    }


def _gunicorn(site: Site) -> dict[str, object]:
    # Only where the site asks for it: releases before 3.2.0 have none of these options.
    if site.api.server_type != "gunicorn":
        return {}
    return {"server_type": "gunicorn", "worker_refresh_interval": site.api.worker_refresh_interval,
            "worker_refresh_batch_size": site.api.worker_refresh_batch_size}


def _celery(site: Site) -> dict[str, object]:
    return {
        "broker_url": site.broker_url,
        "result_backend": site.result_backend,
        "worker_concurrency": site.celery.concurrency,
        # Ride out a broker outage (docs/operations.md): Celery's publish policy gives up
        # after ~0.6 s and the scheduler then fails the task outright, so a task that became
        # ready while Redis was away burned all its tries in seconds. Publishing now keeps
        # retrying until operation_timeout (1 s), which the scheduler retries on each loop.
        "extra_celery_config": json.dumps({"task_publish_retry_policy": PUBLISH_RETRY_POLICY},
                                          sort_keys=True),
        "task_publish_max_retries": PUBLISH_MAX_RETRIES,
        # A STARTED state is written to the result backend (the metadata database) before
        # the task body runs: with the database away that write fails, and the worker drops
        # the message as failed while the task stays `queued` until task_queued_timeout
        # (600 s). Without it the task waits in the SDK's retries instead (docs/operations.md).
        "task_track_started": False,
    }


def _kerberos(site: Site) -> dict[str, object]:
    assert site.kerberos
    return {
        "ccache": site.kerberos.ccache,
        "principal": site.kerberos.principal,
        "keytab": site.kerberos.keytab,
        "reinit_frequency": site.kerberos.reinit_frequency,
        # Airflow's default (True) runs `kinit -a`, which must enumerate interfaces.
        "include_ip": site.kerberos.include_ip,
    }


def airflow_cfg_options(site: Site) -> Options:
    """Section -> option -> value, in the order they are written."""
    options: dict[str, dict[str, object]] = {
        "core": _core(site),
        "database": {"sql_alchemy_conn": site.sql_alchemy_conn},
        "logging": {
            "base_log_folder": site.paths.logs,
            "dag_processor_child_process_log_directory": f"{site.paths.logs}/dag_processor",
            "worker_log_server_port": WORKER_LOG_PORT,
            "trigger_log_server_port": TRIGGERER_LOG_PORT,
        },
        "api": _api(site),
        "api_auth": {
            # Without an issuer /auth/token fails under pyjwt >= 2.11.
            "jwt_issuer": site.base_url,
            # This site's tokens only (Airflow >= 3.3.0: builder/site/releases.py).
            **({"jwt_audience": site.api.jwt_audience} if site.api.jwt_audience else {}),
        },
        "operators": {"default_queue": site.celery.queues[0]},
        "celery": _celery(site),
        "workers": {"execution_api_retries": EXECUTION_API_RETRIES},
        "fab": {
            # FAB reads this with silent=True: a wrong path silently means password login.
            "config_file": config_file(site, "webserver_config.py"),
        },
    }
    if site.kerberos:
        options["kerberos"] = _kerberos(site)
    if site.metrics.statsd_host:
        options["metrics"] = {"statsd_on": True, "statsd_host": site.metrics.statsd_host,
                              "statsd_port": site.metrics.statsd_port, "statsd_prefix": site.metrics.prefix}
    for section, overrides in site.airflow_cfg.items():
        options.setdefault(section, {}).update(overrides)
    return {
        section: {option: cfg_value(value) for option, value in values.items()}
        for section, values in options.items()
    }
