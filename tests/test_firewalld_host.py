"""firewalld itself, running, loads the service files we ship: `firewall-cmd --permanent
--add-service=...` succeeds for each and the permanent zone opens their ports.

The host boots in a network namespace this test makes (loopback only, no route out), so
the firewall firewalld programs is that namespace's, never this machine's.
"""

from __future__ import annotations

import os
import shutil

import pytest

from builder.render import render_site
from e2e.cluster import booted_cluster_host
from e2e.fixtures import keep_temp, scratch_dir, target_image  # noqa: F401
from e2e.proc import run

pytestmark = pytest.mark.e2e

HOSTNAME = "fw.e2e.test"


@pytest.fixture
def netns():
    name = f"airflow-prod-fw-{os.getpid()}"
    run(["ip", "netns", "add", name])
    try:
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        yield f"/run/netns/{name}"
    finally:
        run(["ip", "netns", "del", name], check=False)


def test_running_firewalld_adds_every_service_we_ship(target_image, netns, example_site):
    services = {f.dest: f.text for f in render_site(example_site).files if f.dest.startswith("/usr/lib/firewalld/services/")}
    ports = {"airflow-api-server": "8080/tcp", "airflow-worker-logs": "8793/tcp", "airflow-triggerer-logs": "8794/tcp"}
    assert {d.rsplit("/", 1)[1].removesuffix(".xml") for d in services} == ports.keys()
    work = scratch_dir("firewalld")
    try:
        with booted_cluster_host(target_image, work, HOSTNAME, netns, f"127.0.0.1\t{HOSTNAME} localhost\n",
                                 {}, {}, keep=keep_temp(), extra_args=("--capability=CAP_NET_ADMIN",)) as host:
            for dest, text in services.items():
                host.put(dest, text)
            host.systemctl("unmask", "firewalld.service")
            host.systemctl("start", "firewalld.service")
            state = host.run(["firewall-cmd", "--state"], check=False)
            assert state.stdout.strip() == "running", state.stderr + host.journal("firewalld")
            for name, port in ports.items():
                assert host.run(["firewall-cmd", "--permanent", "--add-service", name]).stdout.strip() == "success"
                assert host.run(["firewall-cmd", "--permanent", "--info-service", name]).stdout.count(port) == 1
            host.run(["firewall-cmd", "--reload"])
            active = host.run(["firewall-cmd", "--list-services"]).stdout.split()
            assert set(ports) <= set(active), active
            # firewalld read nothing it complained about.
            journal = host.journal("firewalld")
            assert "ERROR" not in journal and "INVALID" not in journal, journal
    finally:
        if not keep_temp():
            shutil.rmtree(work, ignore_errors=True)
