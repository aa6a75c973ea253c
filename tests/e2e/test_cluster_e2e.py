"""Issue 13, proven: one site file, four booted hosts, Celery workers across them, HA
schedulers and api-servers behind HAProxy, a rolling upgrade, a node with other secrets.

    A  a.cluster.e2e.test  api-server, scheduler, dag-processor, triggerer (+ kerberos), migrations
    B  b.cluster.e2e.test  api-server, scheduler
    C  c.cluster.e2e.test  worker set etl (queue default)
    D  d.cluster.e2e.test  worker set ml (queues ml, default)

Each host is a booted stand-in (tests/e2e/target.py) in its own network namespace; the
servers and the load balancer listen in a hub namespace the test creates (tests/e2e/cluster.py).
Every host installs exactly `airflow-prod-host-<its name>`; nothing migrates by hand. Through
the REST API only (through the load balancer unless a test names the api-server).
Timings: the "Cluster" section of docs/e2e-timings.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import servers as srv
from .api import ApiClient, Response
from .ca import PrivateCA
from .cluster import (
    HUB_ADDRESS,
    ClusterNet,
    MemorySampler,
    booted_cluster_host,
    haproxy_config,
    hub_redis,
    open_postgres_to_subnet,
)
from .doctor import fernet_finding
from .fixtures import keep_temp, scratch_dir
from .phases import CLUSTER_MARK, Phases
from .proc import Daemon, free_port, run, wait_until
from .repo import STANDIN_NAME, build_rpm, make_repo, repo_file, standin_spec
from .site import SITE_COMMENT, e2e_site_data
from .test_e2e import (
    KEY_INSIDE,
    REPO_INSIDE,
    SECURITY,
    STANDIN_INSIDE,
    _connection_password,
    bundle,
)
from support import booted
from support.booted import api_answers, dnf, unit_state, wait_dag
from support.sites import to_toml

pytestmark = [pytest.mark.e2e, pytest.mark.network, pytest.mark.timeout(5400)]

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMINGS = REPO_ROOT / "docs" / "e2e-timings.md"
DOMAIN = "cluster.e2e.test"
SHORTS = ("a", "b", "c", "d")
NAMES = {s: f"{s}.{DOMAIN}" for s in SHORTS}
API_NAME = f"api.{DOMAIN}"
PRINCIPAL = f"airflow/{API_NAME}"
HEALTH = ("metadatabase", "scheduler", "triggerer", "dag_processor")
HOST_UNITS = {
    "a": ("airflow-db-migrate.service", "airflow-kerberos.service", "airflow-api-server.service",
          "airflow-scheduler.service", "airflow-dag-processor.service", "airflow-triggerer.service"),
    "b": ("airflow-api-server.service", "airflow-scheduler.service"),
    "c": ("airflow-kerberos.service", "airflow-celery-worker-etl.service"),
    "d": ("airflow-kerberos.service", "airflow-celery-worker-ml.service"),
}
WORKER = {"c": "airflow-celery-worker-etl.service", "d": "airflow-celery-worker-ml.service"}
# Retention (docs/operations.md): the database's once per site, with the migration; the logs' everywhere.
HOST_TIMERS = {s: (("airflow-db-clean.timer",) if s == "a" else ()) + ("airflow-log-groom.timer",)
               for s in HOST_UNITS}

QUEUES_DAG = """\
from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.bash import BashOperator

with DAG("cluster_queues", start_date=datetime(2025, 1, 1), schedule=None, catchup=False):
    BashOperator(task_id="on_default", bash_command="echo default-on-$(hostname -f)")
    BashOperator(task_id="on_ml", bash_command="echo ml-on-$(hostname -f)", queue="ml")
"""
CHAIN_DAG = """\
from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.bash import BashOperator

with DAG("cluster_chain", start_date=datetime(2025, 1, 1), schedule=None, catchup=False,
         max_active_runs=8):
    t = [BashOperator(task_id=f"step{i}", bash_command="sleep 4") for i in range(4)]
    t[0] >> t[1] >> t[2] >> t[3]
"""
LONG_DAG = """\
from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.bash import BashOperator

with DAG("cluster_long", start_date=datetime(2025, 1, 1), schedule=None, catchup=False):
    BashOperator(task_id="long", bash_command="sleep 30 && echo finished")
"""


@dataclass
class Cluster:
    net: ClusterNet
    hosts: dict
    api: ApiClient
    api_on: dict
    phases: Phases
    ldap: object
    site_data: dict
    site_path: Path
    out: Path
    secrets: Path
    facts: dict = field(default_factory=dict)

    def token(self) -> str:
        return self.api.login(self.ldap.admin.account, self.ldap.admin.password)  # type: ignore[attr-defined]


def hosts_file() -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"{HUB_ADDRESS}\t{API_NAME} db.{DOMAIN}"]
    lines += [f"{srv_addr}\t{NAMES[s]} {s}" for s, srv_addr in
              zip(SHORTS, (f"10.213.0.{11 + i}" for i in range(len(SHORTS))), strict=True)]
    return "\n".join(lines) + "\n"


# The cluster's ceiling for one dnf run (four booted hosts share this machine).
DNF_TIMEOUT = 1800
# Its waits tell a skipped migration (Result=exec-condition) from a failed unit.
UNIT_PROPERTIES = (*booted.UNIT_PROPERTIES, "Result")


MIGRATE = "airflow-db-migrate.service"


def wait_units(host, units, timeout: float = 900) -> None:
    """Every unit active; the migration unit may also have been skipped (already migrated)."""
    def done(u: str, s: dict[str, str]) -> bool:
        if u == MIGRATE and s.get("Result") == "exec-condition":
            return s.get("ActiveState") == "inactive"
        return s.get("ActiveState") == "active"

    def ok() -> bool:
        states = {u: unit_state(host, u, UNIT_PROPERTIES) for u in units}
        bad = [u for u, s in states.items() if s.get("Result") not in ("success", "", "exec-condition")
               or s.get("ActiveState") == "failed"]
        if bad:
            raise AssertionError(f"{host.hostname}: failed {bad}\n{host.diagnose(bad)}")
        return all(done(u, s) for u, s in states.items())
    wait_until(ok, timeout, f"{host.hostname}: {', '.join(units)} active", interval=2)


def migrations_started(host) -> int:
    """How many times airflow-db-migrate really ran `airflow db migrate` (its ExecStartPost says so;
    restarts skipped by ExecCondition do not count)."""
    out = host.run(["journalctl", "--no-pager", "-o", "cat", "-u", MIGRATE]).stdout
    return len(re.findall(r"check-node: schema migrated for ", out))


def trigger(api, token: str, dag_id: str) -> str:
    resp = api.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False}, token=token)
    assert resp.status == 200, resp.text
    resp = api.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None}, token=token)
    assert resp.status in (200, 201), resp.text
    return resp.json()["dag_run_id"]


def wait_run(api, token: str, dag_id: str, run_id: str, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        resp = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", token=token)
        if resp.status == 200:
            state = resp.json()["state"]
            if state in ("success", "failed"):
                return state
        time.sleep(2)
    raise AssertionError(f"{dag_id} {run_id} still {state} after {timeout:.0f} s")


def tis(api, token: str, dag_id: str, run_id: str) -> dict[str, dict]:
    resp = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", token=token)
    assert resp.status == 200, resp.text
    return {t["task_id"]: t for t in resp.json()["task_instances"]}


def _fill_secrets(path: Path, postgres, ldap, redis) -> None:
    text = path.read_text()
    for var, value in (("PGPASSWORD", postgres.password), ("AIRFLOW_LDAP_BIND_PASSWORD", ldap.bind.password),
                       ("AIRFLOW_BROKER_PASSWORD", redis.password)):
        text, n = re.subn(rf"^{var}=.*$", f"{var}='{value}'", text, flags=re.M)
        assert n == 1, var
    path.write_text(text)


def cluster_site(postgres, redis, ldap, kdc, api_port: int) -> dict:
    data = e2e_site_data(api_port=api_port, postgres=postgres, redis=redis, ldap=ldap, kdc=kdc,
                         ca_on_target=f"{SECURITY}/ca-chain.pem")
    data["site"] = {"name": "e2e"}  # the single-host e2e's lock and wheelhouse are reused
    data["hosts"] = [
        {"name": NAMES["a"], "roles": ["api-server", "scheduler", "dag-processor", "triggerer"]},
        {"name": NAMES["b"], "roles": ["api-server", "scheduler"]},
        {"name": NAMES["c"], "roles": ["celery-worker"]},
        {"name": NAMES["d"], "roles": ["celery-worker"]},
    ]
    data["worker_sets"] = [
        {"name": "etl", "queues": ["default"], "concurrency": 2, "hosts": [NAMES["c"]]},
        {"name": "ml", "queues": ["ml", "default"], "concurrency": 2, "hosts": [NAMES["d"]]},
    ]
    data["api"] = {"host": API_NAME, "port": api_port, "bind": "0.0.0.0", "instance_name": "cluster e2e"}
    # SANs derive: the API name and every api-server host.
    data["tls"] = {"organization": "airflow-prod e2e", "country": "EG", "key_size": 2048}
    data["database"]["migrate_host"] = NAMES["a"]
    data["database"]["migration_wait"] = 600
    data["dags"] = {"shared": True}
    data["core"]["parallelism"] = 16
    data["core"]["max_active_runs_per_dag"] = 8
    return data


@pytest.fixture(scope="module")
def cluster(e2e_target_image, signing_key):
    if not shutil.which("haproxy"):
        pytest.skip("not installed: haproxy (scripts/deps-debian.txt)")
    phases = Phases()
    root = scratch_dir("cluster")
    net = ClusterNet(f"af13{os.getpid() % 100000}")
    stack = ExitStack()
    memory = None
    try:
        with phases("cluster: namespaces (hub bridge + one per host, no default route)"):
            net.create(SHORTS)
            stack.callback(net.destroy)
        net.enter()
        saved_loopback = srv.LOOPBACK
        srv.LOOPBACK = HUB_ADDRESS  # the servers listen on the hub's bridge address
        try:
            with phases("cluster: PostgreSQL, Redis, slapd, KDC in the hub namespace"):
                ca = PrivateCA(root / "ca")
                postgres = stack.enter_context(srv.postgres_server(root / "postgres"))
                open_postgres_to_subnet(postgres)
                redis = stack.enter_context(hub_redis(root / "redis", ca))
                ldap = stack.enter_context(srv.ldap_server(root / "ldap", ca))
                kdc = stack.enter_context(srv.kdc_server(root / "kdc", PRINCIPAL))
        finally:
            srv.LOOPBACK = saved_loopback
        memory = MemorySampler()
        api_port = free_port(HUB_ADDRESS)
        data = cluster_site(postgres, redis, ldap, kdc, api_port)
        data["publish"] = {"gpg_key": signing_key.fingerprint, "gpg_home": str(signing_key.home), "sign": True}
        site_path, out, secrets, tls = root / "site.toml", root / "out", root / "secrets.env", root / "tls"
        site_path.write_text(to_toml(data, comment=SITE_COMMENT))
        locks = Path(os.environ.get("AIRFLOW_PROD_E2E_LOCKS", Path.home() / ".cache/airflow-prod/e2e-locks"))
        with net.outside():
            with phases("cluster build: check, secrets init, TLS CSR -> CA, bundle build --secrets"):
                bundle("check", "--site", str(site_path))
                bundle("secrets", "init", "--site", str(site_path), "--out", str(secrets), "--force")
                _fill_secrets(secrets, postgres, ldap, redis)
                bundle("tls", "csr", "--site", str(site_path), "--out", str(tls))
                cert = ca.sign_csr((tls / "airflow.csr").read_bytes())
                _, chain = ca.write_chain(cert, tls, "signed")
                chain.replace(tls / "airflow_cert.pem")
                (tls / "ca-chain.pem").write_bytes(ca.pem)
                bundle("tls", "check", "--site", str(site_path), "--dir", str(tls))
                bundle("build", "--site", str(site_path), "--out", str(out), "--locks-dir", str(locks / "initial"),
                       "--secrets", str(secrets))
        repo = out / "repo"
        assert (repo / "repodata" / "repomd.xml.asc").exists()
        with phases("cluster: HAProxy for the API name (TCP, TLS passed through)"):
            cfg = root / "haproxy.cfg"
            cfg.write_text(haproxy_config(api_port, {s: net.hosts[s] for s in ("a", "b")}, root / "haproxy.log"))
            run(["haproxy", "-c", "-f", str(cfg)])
            lb = Daemon("haproxy", ["haproxy", "-db", "-f", str(cfg)], log=root / "haproxy.log").start()
            stack.callback(lambda: _stop(lb))
        dags = root / "dags"   # one directory for every host, as an NFS export would be
        dags.mkdir()
        for name, text in (("cluster_queues.py", QUEUES_DAG), ("cluster_chain.py", CHAIN_DAG),
                           ("cluster_long.py", LONG_DAG)):
            (dags / name).write_text(text)
        standin_repo = root / "standin-repo"
        standin_repo.mkdir()
        hosts: dict = {}
        with phases("cluster: unpack + boot four hosts (shared cached root)"):
            for s in SHORTS:
                hosts[s] = stack.enter_context(booted_cluster_host(
                    e2e_target_image, scratch_dir(f"cluster-{s}"), NAMES[s], net.ns_path(s), hosts_file(),
                    binds_ro={str(repo.parent): "/srv/cluster", str(standin_repo): STANDIN_INSIDE},
                    binds_rw={str(dags): "/opt/airflow/dags"}, keep=keep_temp()))
        phases.facts["boot per host (s)"] = ", ".join(f"{s}={hosts[s].boot_seconds:.1f}" for s in SHORTS)
        spec, _ = standin_spec(hosts["a"].root)
        standin = build_rpm(spec, root, STANDIN_NAME)
        make_repo(standin_repo, [standin], signing_key)
        installs = {}
        for s in SHORTS:
            h = hosts[s]
            with phases(f"cluster: {s}: repository, dnf install airflow-prod-host-{NAMES[s]}", h,
                        logs=("/var/log/airflow-prod/build-venv.log",)):
                t0 = time.monotonic()
                _add_repos(h)
                dnf(h, "install", STANDIN_NAME, timeout=DNF_TIMEOUT)
                dnf(h, "install", f"airflow-prod-host-{NAMES[s]}", timeout=DNF_TIMEOUT)
                assert h.exists("/opt/airflow/venv/.airflow-prod-complete"), h.read("/var/log/airflow-prod/build-venv.log")[-3000:]
                installs[s] = time.monotonic() - t0
                h.copy_in(secrets, "/etc/airflow/secrets.env", 0o600, "root", "root")
                h.copy_in(tls / "airflow_key.pem", f"{SECURITY}/airflow_key.pem", 0o600, "root", "root")
                h.copy_in(tls / "airflow_cert.pem", f"{SECURITY}/airflow_cert.pem", 0o644, "root", "root")
                h.copy_in(tls / "ca-chain.pem", f"{SECURITY}/ca-chain.pem", 0o644, "root", "root")
                h.copy_in(kdc.keytab, f"{SECURITY}/airflow.keytab", 0o600, "root", "root")
                h.put("/etc/krb5.conf", kdc.krb5_conf_text())
                enabled = h.run(["sh", "-c", "systemctl list-unit-files 'airflow*' --state=enabled --no-legend "
                                 "| awk '{print $1}'"]).stdout.split()
                expected = sorted(HOST_UNITS[s] + HOST_TIMERS[s])
                assert sorted(u for u in enabled if u != "airflow.target") == expected, enabled
        phases.facts["install per host (s)"] = ", ".join(f"{s}={installs[s]:.0f}" for s in SHORTS)
        # The workers first, then B, then A: nothing may crash-loop while the schema is missing.
        with phases("cluster: systemctl start airflow.target on d, c, b, then a; every unit active"):
            t0 = time.monotonic()
            for s in ("d", "c", "b", "a"):
                hosts[s].systemctl("start", "--no-block", "airflow.target")
            for s in ("a", "b", "c", "d"):
                wait_units(hosts[s], HOST_UNITS[s] + HOST_TIMERS[s])
            phases.facts["start to all units active (s)"] = f"{time.monotonic() - t0:.0f}"
            for s in SHORTS:
                for u in HOST_UNITS[s]:
                    state = unit_state(hosts[s], u, UNIT_PROPERTIES)
                    assert state["NRestarts"] == "0", (s, u, state)
            assert migrations_started(hosts["a"]) == 1
            for s in ("b", "c", "d"):
                assert hosts[s].systemctl("cat", "airflow-db-migrate.service", check=False).returncode != 0
        api = ApiClient(API_NAME, api_port, ca.cert_path, address=HUB_ADDRESS, timeout=60)
        api_on = {s: ApiClient(NAMES[s], api_port, ca.cert_path, address=net.hosts[s], timeout=60) for s in ("a", "b")}
        with phases("cluster: health through HAProxy and on each api-server host"):
            api.wait_healthy(HEALTH, timeout=600)
            for client in api_on.values():
                client.wait_healthy(HEALTH, timeout=300)
        c = Cluster(net, hosts, api, api_on, phases, ldap, data, site_path, out, secrets)
        c.facts["locks"] = str(locks)
        yield c
    finally:
        try:
            if memory is not None:
                base, peak = memory.stop()
                phases.facts["machine memory used: before servers / peak (GiB)"] = f"{base / 2**30:.1f} / {peak / 2**30:.1f}"
            if phases.rows:
                write_cluster_timings(phases)
        finally:
            stack.close()
            net.destroy()
            if not keep_temp():
                shutil.rmtree(root, ignore_errors=True)


def _stop(daemon: Daemon) -> None:
    from .proc import stop_pid

    if daemon.proc is not None and daemon.proc.poll() is None:
        stop_pid(daemon.pid)


def _add_repos(h) -> None:
    h.run(["install", "-D", "-m", "0644", "/srv/cluster/repo/RPM-GPG-KEY-airflow-prod", KEY_INSIDE])
    h.put("/etc/yum.repos.d/airflow-prod.repo",
          repo_file("airflow-prod-cluster", "file:///srv/cluster/repo", f"file://{KEY_INSIDE}"))
    h.put("/etc/yum.repos.d/e2e-standin.repo",
          repo_file("e2e-standin", f"file://{STANDIN_INSIDE}", f"file://{KEY_INSIDE}"))
    assert REPO_INSIDE  # the single-host path is not used here: the cluster's repo is /srv/cluster/repo


MARK = CLUSTER_MARK


def write_cluster_timings(phases: Phases) -> None:
    """The cluster run's section of docs/e2e-timings.md (after the single-host table)."""
    text = TIMINGS.read_text() if TIMINGS.exists() else ""
    head = text.split(MARK)[0].rstrip("\n")
    body = phases.markdown().replace("# End-to-end test timings", "## Cluster (four booted hosts)", 1)
    body = body.replace("Written by `tests/e2e/test_e2e.py`", "Written by `tests/e2e/test_cluster_e2e.py`", 1)
    TIMINGS.write_text(f"{head}\n\n{MARK}\n{body}")


# --- through the REST API only --------------------------------------------------------------


def test_ldap_login_and_kerberos_on_every_host_that_needs_them(cluster):
    c = cluster
    with c.phases("cluster api: LDAP admin via HAProxy; tickets on a, c, d"):
        assert c.api.token(c.ldap.admin.account, c.ldap.admin.password).status in (200, 201)
        assert c.api.token(c.ldap.nogroup.account, c.ldap.nogroup.password).status == 401
        for s in ("a", "c", "d"):
            listing = c.hosts[s].run(["klist", "-c", "FILE:/run/airflow/krb5cc_airflow"], user="airflow",
                                     env={"KRB5_CONFIG": "/etc/krb5.conf"}).stdout
            assert "krbtgt/" in listing, (s, listing)
        assert not c.hosts["b"].exists("/usr/lib/systemd/system/airflow-kerberos.service")


def test_a_peer_without_credentials_is_refused_by_the_broker_and_the_database(cluster):
    """Issue 20 item 2, as a network peer: host c without the site's secrets (as nobody, with
    only the public CA) reaches the remote broker over TLS and the database: both refuse."""
    from . import tenant

    c = cluster
    with c.phases("cluster: a peer without the site's secrets is refused by the broker (rediss) and the database"):
        h = c.hosts["c"]
        h.run(["install", "-D", "-m", "0644", f"{SECURITY}/ca-chain.pem", "/srv/peer/ca.pem"])
        probes = tenant.no_credentials_probes(c.site_data, "/srv/peer/ca.pem")
        for what, argv in probes.items():
            proc = h.run(argv, user="nobody", check=False)
            assert proc.returncode == 0, f"peer, {what}: not refused for want of credentials: {proc}"
        # The broker speaks TLS only: a plain connection gets no Redis reply at all.
        b = c.site_data["broker"]
        plain = h.run(["redis-cli", "-h", b["host"], "-p", str(b["port"]), "PING"], user="nobody", check=False)
        assert "PONG" not in plain.stdout and "NOAUTH" not in plain.stdout, plain
        c.phases.facts["peer without credentials: refused"] = ", ".join(probes)


def _queues_run(c: Cluster, token: str) -> str:
    """A run of cluster_queues (a task on each worker set) through to success; its run id."""
    run_id = trigger(c.api, token, "cluster_queues")
    assert wait_run(c.api, token, "cluster_queues", run_id) == "success", tis(c.api, token, "cluster_queues", run_id)
    return run_id


def _task_log_via_a(c: Cluster, run_id: str, task: str) -> Response:
    """A task's log as api-server a serves it: read from the worker's log server over 8793."""
    a = c.api_on["a"]
    return a.get(f"/api/v2/dags/cluster_queues/dagRuns/{run_id}/taskInstances/{task}/logs/1",
                 token=a.login(c.ldap.admin.account, c.ldap.admin.password))


def test_tasks_route_by_queue_and_logs_cross_hosts(cluster):
    c = cluster
    with c.phases("cluster api: DAG with tasks on both queues; each on a host of its set; log via a"):
        t0 = time.monotonic()
        token = c.token()
        wait_dag("cluster_queues", api_answers(c.api, token), timeout=300)
        run_id = _queues_run(c, token)
        c.phases.facts["first DAG success after trigger/parse wait (s)"] = f"{time.monotonic() - t0:.0f}"
        ti = tis(c.api, token, "cluster_queues", run_id)
        assert ti["on_ml"]["queue"] == "ml" and ti["on_ml"]["hostname"] == NAMES["d"], ti["on_ml"]
        assert ti["on_default"]["queue"] == "default"
        assert ti["on_default"]["hostname"] in (NAMES["c"], NAMES["d"]), ti["on_default"]
        # A task's log lives on its worker; the api-server on a reads it over 8793.
        for task, host in (("on_ml", NAMES["d"]), ("on_default", ti["on_default"]["hostname"])):
            log = _task_log_via_a(c, run_id, task)
            assert log.status == 200, log.text
            assert f"on-{host}" in log.text, log.text[:3000]


def _ti_times(api, token, dag_id, run_id) -> dict[str, dict]:
    return tis(api, token, dag_id, run_id)


def test_scheduler_failover(cluster):
    c = cluster
    a, b = c.hosts["a"], c.hosts["b"]
    with c.phases("cluster api: scheduler on a stopped mid-run; b's scheduler finishes it", a,
                  ("airflow-scheduler.service",)):
        token = c.token()
        wait_dag("cluster_chain", api_answers(c.api, token), timeout=300)
        run_id = trigger(c.api, token, "cluster_chain")
        wait_until(lambda: tis(c.api, token, "cluster_chain", run_id)["step0"]["state"] == "running", 180,
                   "step0 running", interval=1)
        a.systemctl("stop", "airflow-scheduler.service")
        stopped = time.time()
        try:
            assert wait_run(c.api, token, "cluster_chain", run_id) == "success"
            ti = tis(c.api, token, "cluster_chain", run_id)
            from datetime import datetime
            queued = [datetime.fromisoformat(ti[f"step{i}"]["queued_when"]).timestamp()
                      for i in range(1, 4) if ti[f"step{i}"].get("queued_when")]
            after = [q - stopped for q in queued if q > stopped]
            assert after, ti
            c.phases.facts["failover: scheduler stopped -> next task queued (s)"] = f"{min(after):.1f}"
            assert b.is_active("airflow-scheduler.service")
        finally:
            a.systemctl("start", "airflow-scheduler.service")
            wait_units(a, ("airflow-scheduler.service",))


def test_worker_drain_lets_the_task_finish_and_new_tasks_go_elsewhere(cluster):
    c = cluster
    with c.phases("cluster api: worker running a 30 s task stopped (warm shutdown); next tasks elsewhere"):
        token = c.token()
        wait_dag("cluster_long", api_answers(c.api, token), timeout=300)
        run_id = trigger(c.api, token, "cluster_long")
        wait_until(lambda: tis(c.api, token, "cluster_long", run_id)["long"]["state"] == "running", 180,
                   "long running", interval=1)
        host = tis(c.api, token, "cluster_long", run_id)["long"]["hostname"]
        s = next(k for k, v in NAMES.items() if v == host)
        other = "d" if s == "c" else "c"
        t0 = time.monotonic()
        c.hosts[s].systemctl("stop", WORKER[s])   # returns once Celery's warm shutdown ended
        c.phases.facts["drain: systemctl stop of a worker with a running 30 s task (s)"] = f"{time.monotonic() - t0:.0f}"
        try:
            ti = tis(c.api, token, "cluster_long", run_id)["long"]
            assert ti["state"] == "success", ti
            assert wait_run(c.api, token, "cluster_long", run_id) == "success"
            # The next default-queue task goes to the other worker host.
            run2 = trigger(c.api, token, "cluster_long")
            wait_until(lambda: bool(tis(c.api, token, "cluster_long", run2)["long"].get("hostname")), 180,
                       "the next task picked up", interval=1)
            assert tis(c.api, token, "cluster_long", run2)["long"]["hostname"] == NAMES[other]
        finally:
            c.hosts[s].systemctl("start", WORKER[s])
            wait_units(c.hosts[s], (WORKER[s],))


def test_rolling_upgrade_while_runs_continue(cluster):
    c = cluster
    with c.phases("cluster: rolling upgrade a, b, c, d to a new build while DAG runs continue"):
        before = migrations_started(c.hosts["a"])
        data = dict(c.site_data)
        data["core"] = dict(data["core"], parallelism=17)   # a config change: a new build, same venv
        c.site_path.write_text(to_toml(data, comment=SITE_COMMENT))
        with c.net.outside():
            bundle("build", "--site", str(c.site_path), "--out", str(c.out), "--locks-dir",
                   str(Path(c.facts["locks"]) / "initial"), "--secrets", str(c.secrets))
        token = c.token()
        runs: list[tuple[str, str]] = []
        stop = threading.Event()

        def keep_triggering() -> None:
            while not stop.is_set():
                try:
                    runs.append(("cluster_chain", trigger(c.api, c.token(), "cluster_chain")))
                except (AssertionError, OSError) as exc:  # an api-server restarting: the LB retries next time
                    print(f"[cluster] trigger during upgrade: {exc}", file=sys.stderr)
                stop.wait(8)

        t0 = time.monotonic()
        feeder = threading.Thread(target=keep_triggering, daemon=True)
        feeder.start()
        try:
            for s in ("a", "b", "c", "d"):
                h = c.hosts[s]
                dnf(h, "--refresh", "upgrade", "airflow-prod*", timeout=DNF_TIMEOUT)
                wait_units(h, HOST_UNITS[s])
                if s == "a":
                    c.api_on["a"].wait_healthy(("metadatabase",), timeout=300)
        finally:
            stop.set()
            feeder.join(30)
        c.phases.facts["rolling upgrade of four hosts (s)"] = f"{time.monotonic() - t0:.0f}"
        assert len(runs) >= 3, runs
        token = c.token()
        failed = []
        for dag_id, run_id in runs:
            state = wait_run(c.api, token, dag_id, run_id, timeout=900)
            failed += [t for t, ti in tis(c.api, token, dag_id, run_id).items() if ti["state"] != "success"]
            assert state == "success", (run_id, tis(c.api, token, dag_id, run_id))
        assert failed == []
        c.phases.facts["runs during the upgrade / failed task instances"] = f"{len(runs)} / {len(failed)}"
        assert migrations_started(c.hosts["a"]) == before + 1
        for s in SHORTS:
            assert "parallelism = 17" in c.hosts[s].read("/etc/airflow/airflow.cfg"), s


FINGERPRINT = "/etc/airflow/secrets.fingerprint"


def _fingerprints(c: Cluster) -> dict[str, str]:
    return {s: c.hosts[s].read(FINGERPRINT) for s in SHORTS}


ROTATED_VAR = {"fernet-key": "AIRFLOW__CORE__FERNET_KEY", "secret-key": "AIRFLOW__API__SECRET_KEY",
               "jwt-secret": "AIRFLOW__API_AUTH__JWT_SECRET"}


def _rotation_step(c: Cluster, name: str, *extra: str,
                   units: Callable[[str], tuple[str, ...]] = HOST_UNITS.__getitem__) -> float:
    """One step as docs/operations.md tells it for a fleet: `bundle secrets rotate`, build (the
    fingerprints go into the config package), then each host gets the file and `dnf upgrade`
    (its units restart and check-node holds each against the new fingerprints). After it the
    four hosts hold one fingerprint file, a new one for this key. Seconds for the four hosts."""
    before = _fingerprints(c)
    with c.net.outside():
        said = bundle("secrets", "rotate", name, *extra, "--site", str(c.site_path), "--secrets", str(c.secrets))
        assert "dnf upgrade" in said, said
        bundle("build", "--site", str(c.site_path), "--out", str(c.out), "--locks-dir",
               str(Path(c.facts["locks"]) / "initial"), "--secrets", str(c.secrets))
    t0 = time.monotonic()
    for s in SHORTS:
        h = c.hosts[s]
        h.copy_in(c.secrets, "/etc/airflow/secrets.env", 0o600, "root", "root")
        dnf(h, "--refresh", "upgrade", "airflow-prod*", timeout=DNF_TIMEOUT)
        wait_units(h, units(s))
    c.api.wait_healthy(HEALTH, timeout=300)
    seconds = round(time.monotonic() - t0)
    now = _fingerprints(c)
    assert len(set(now.values())) == 1, f"the hosts' fingerprints differ: {now}"
    changed = [line for line in now["a"].splitlines() if line.startswith(f"{ROTATED_VAR[name]}=")]
    assert changed and changed[0] not in before["a"], f"{ROTATED_VAR[name]} kept its fingerprint: {now['a']}"
    return seconds


def test_fernet_key_rotation_moves_every_host_in_lockstep(cluster):
    """Issue 22 item 3 across the cluster: `rotate fernet-key` ("new,old") on every host,
    `airflow rotate-fernet-key` once, `--finish` ("new") on every host. doctor on another
    host follows the stored values; one left on the old file is named."""
    c = cluster
    token = c.token()
    conn = {"connection_id": "cluster_rotation", "conn_type": "postgres", "host": "db.example", "login": "u",
            "password": "stored-before-the-rotation"}
    resp = c.api.request("POST", "/api/v2/connections", conn, token=token)
    assert resp.status in (200, 201), resp.text
    before_rotation = c.secrets.read_bytes()
    steps: dict[str, float] = {}
    with c.phases("cluster rotation: fernet key new,old: rotate, build, every host secrets + dnf upgrade"):
        steps["new,old"] = _rotation_step(c, "fernet-key")
        # every host decrypts with both keys: re-encrypt everything once, on one host; doctor on
        # another host sees the values under the retired key, then under the new one.
        assert (found := fernet_finding(c.hosts["d"]))["status"] == "warn", found
        c.hosts["a"].run(["airflow", "rotate-fernet-key"], timeout=600)
        assert (found := fernet_finding(c.hosts["d"]))["status"] == "ok", found
    with c.phases("cluster rotation: fernet key new alone: rotate, build, every host secrets + dnf upgrade"):
        steps["new alone"] = _rotation_step(c, "fernet-key", "--finish")
    c.phases.facts["fernet rotation, four hosts' dnf upgrade per step (s)"] = json.dumps(steps)
    with c.phases("cluster rotation: the connection decrypts with the new key alone; a run succeeds"):
        assert _connection_password(c.hosts["b"], "cluster_rotation") == "stored-before-the-rotation"
        token = c.token()
        _queues_run(c, token)
    with c.phases("cluster rotation: a host left on the file from before the rotation: doctor names it"):
        d = c.hosts["d"]
        d.put("/etc/airflow/secrets.env", before_rotation, 0o600, "root", "root")
        try:
            found = fernet_finding(d)
        finally:
            d.copy_in(c.secrets, "/etc/airflow/secrets.env", 0o600, "root", "root")
        assert found["status"] == "fail" and "'cluster_rotation'" in found["what"], found
        assert fernet_finding(d)["status"] == "ok"


def test_secret_key_and_jwt_secret_rotation_across_the_fleet(cluster):
    """[api] secret_key (log-fetch tokens between an api-server and a worker's log server) and
    jwt_secret (every UI/API and task token), each one lockstep step; the jwt_secret with the
    workers drained first (docs/operations.md). Afterwards a task log crosses hosts, the old
    token is refused, a new login and a run over both worker hosts work."""
    c = cluster
    old_token = c.token()
    steps: dict[str, float] = {}
    with c.phases("cluster rotation: [api] secret_key on every host; a worker's task log read through a"):
        steps["secret_key"] = _rotation_step(c, "secret-key")
        token = c.token()
        log = _task_log_via_a(c, _queues_run(c, token), "on_ml")
        assert log.status == 200 and f"on-{NAMES['d']}" in log.text, log.text[:3000]
    with c.phases("cluster rotation: jwt_secret with the workers drained; old token refused, new login, a run"):
        for s, unit in WORKER.items():
            c.hosts[s].systemctl("stop", unit)  # running tasks finish first (celery.stop_timeout)
        # The config package's upgrade restarts airflow.target, which may start them again
        # (with the new file): the step waits for the other units, then each worker runs.
        steps["jwt_secret"] = _rotation_step(c, "jwt-secret", units=lambda s: tuple(
            u for u in HOST_UNITS[s] if u != WORKER.get(s)))
        for s, unit in WORKER.items():
            c.hosts[s].systemctl("start", unit)
            wait_units(c.hosts[s], (unit,))
        assert c.api.get("/api/v2/dags", token=old_token).status in (401, 403), "a token of the old jwt_secret works"
        token = c.token()
        run_id = _queues_run(c, token)
        ti = tis(c.api, token, "cluster_queues", run_id)
        assert ti["on_ml"]["hostname"] == NAMES["d"], ti
    c.phases.facts["secret_key / jwt_secret rotation, four hosts' dnf upgrade (s)"] = json.dumps(steps)


def test_a_node_with_another_api_secret_key_refuses_to_start(cluster):
    """The worker holds [api] secret_key (its log server checks log-fetch tokens with it) and
    no jwt_secret (docs/security.md): a different one on d stops its worker, named."""
    c = cluster
    d = c.hosts["d"]
    with c.phases("cluster: d given another [api] secret_key: its worker refuses to start, naming it"):
        good = d.read("/etc/airflow/secrets.env")
        other = re.sub(r"^AIRFLOW__API__SECRET_KEY=.*$", "AIRFLOW__API__SECRET_KEY=" + "ab" * 32,
                       good, flags=re.M)
        assert other != good
        d.put("/etc/airflow/secrets.env", other, 0o600, "root", "root")
        try:
            proc = d.systemctl("restart", WORKER["d"], check=False)
            assert proc.returncode != 0
            journal = d.journal(WORKER["d"], 60)
            assert ("check-node: /etc/airflow/secrets.env: AIRFLOW__API__SECRET_KEY differs from this "
                    "site's (its fingerprint does not match /etc/airflow/secrets.fingerprint)") in journal, journal
            assert "refusing to start" in journal
            assert unit_state(d, WORKER["d"], UNIT_PROPERTIES)["ActiveState"] in ("failed", "activating", "inactive")
        finally:
            d.put("/etc/airflow/secrets.env", good, 0o600, "root", "root")
            d.systemctl("reset-failed", WORKER["d"], check=False)
            d.systemctl("restart", WORKER["d"])
            wait_units(d, (WORKER["d"],))
