"""What each role's systemd unit runs and how tightly it is confined.

Every component runs in the foreground with the venv's `airflow` as MainPID
(no `-D`: dag-processor crashes with it; no bash wrapper: bash would become
MainPID and hide exits).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from builder.site import Site
from builder.render.airflow_cfg import TRIGGERER_LOG_PORT, WORKER_LOG_PORT


@dataclass(frozen=True)
class Firewall:
    service: str
    description: str
    port: int


@dataclass(frozen=True)
class UnitSpec:
    role: str
    description: str
    args: tuple[str, ...]
    restart: str = "on-failure"
    restart_sec: int = 5
    # Components that run no user code get the strict profile; the worker runs
    # arbitrary task code and can only be confined as far as tasks allow.
    strict: bool = True
    stop_timeout: int = 90
    kill_mode: str = "control-group"
    # AF_NETLINK on top of the strict families: only for `kinit -a` (address-bound tickets).
    netlink: bool = False
    after: tuple[str, ...] = ()
    wants: tuple[str, ...] = ()
    firewall: tuple[Firewall, ...] = field(default=())

    @property
    def name(self) -> str:
        return f"airflow-{self.role}.service"


def unit_specs(site: Site) -> list[UnitSpec]:
    """One spec per role this site runs, in canonical role order."""
    broker_after = ("redis.service",) if site.broker_is_local else ()
    # Tickets first: components using Kerberos start after the renewer if it is
    # on the same host (ordering only; it pulls nothing in).
    krb_after = ("airflow-kerberos.service",) if site.kerberos else ()
    specs = {
        "api-server": UnitSpec(
            role="api-server",
            description="Airflow API server and UI",
            args=("api-server",),
            after=krb_after,
            firewall=(Firewall("airflow-api-server", "Airflow API server and UI (HTTPS)", site.api.port),),
        ),
        "scheduler": UnitSpec(
            role="scheduler",
            description="Airflow scheduler",
            args=("scheduler",),
            after=krb_after + broker_after,
            wants=broker_after,
        ),
        "dag-processor": UnitSpec(
            role="dag-processor",
            description="Airflow DAG processor",
            args=("dag-processor",),
            after=krb_after,
        ),
        "triggerer": UnitSpec(
            role="triggerer",
            description="Airflow triggerer",
            args=("triggerer",),
            after=krb_after,
            firewall=(Firewall("airflow-triggerer-logs", "Airflow triggerer log server", TRIGGERER_LOG_PORT),),
        ),
        "celery-worker": UnitSpec(
            role="celery-worker",
            description="Airflow Celery worker",
            args=("celery", "worker", "--queues", ",".join(site.celery.queues)),
            strict=False,
            # SIGTERM to the main process only: Celery's warm shutdown lets
            # running tasks finish; SIGKILL for all only after the timeout.
            kill_mode="mixed",
            stop_timeout=site.celery.stop_timeout,
            after=krb_after + broker_after,
            wants=broker_after,
            firewall=(Firewall("airflow-worker-logs", "Airflow Celery worker log server", WORKER_LOG_PORT),),
        ),
        "kerberos": UnitSpec(
            role="kerberos",
            description="Airflow Kerberos ticket renewer",
            args=("kerberos",),
            # `airflow kerberos` exits 1 on any kinit failure (KDC down, ...):
            # always come back, and never give up.
            restart="always",
            restart_sec=10,
            netlink=bool(site.kerberos and site.kerberos.include_ip),
        ),
    }
    return [specs[role] for role in site.roles]
