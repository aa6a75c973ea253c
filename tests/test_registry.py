"""The package index as the lock and wheelhouse see it: real PyPI, plus a dead port."""

from __future__ import annotations

import socket

import pytest

from builder.registry import Registry, RegistryUnreachable, UnknownProject, network_env


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_index_is_a_clear_error():
    reg = Registry(f"http://127.0.0.1:{_closed_port()}/simple", timeout=5, retries=1)
    with pytest.raises(RegistryUnreachable, match=r"cannot reach http://127\.0\.0\.1:\d+/simple/apache-airflow/: .*refused"):
        reg.project("apache-airflow")


def test_network_env_carries_tls_trust_not_pip_config(monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    env = network_env()
    assert env["SSL_CERT_FILE"] == env["PIP_CERT"] == "/etc/ssl/certs/ca-certificates.crt"
    assert not any(k.startswith("PIP_F") for k in env)


@pytest.mark.network
def test_yanked_release_upload_times_and_metadata():
    reg = Registry()
    project = reg.project("Apache_Airflow")  # any spelling: canonical name
    assert project.name == "apache-airflow"
    assert project.yank_reason("3.1.4") == "The wrong RC was mistakenly released!"
    assert project.yank_reason("3.1.5") is None
    files = project.release("3.1.4")
    assert {f.filename for f in files} == {"apache_airflow-3.1.4-py3-none-any.whl", "apache_airflow-3.1.4.tar.gz"}
    assert all(f.upload_time and f.upload_time.isoformat().startswith("2025-12-10T07:30") for f in files)
    assert not files[0].supports_python("3.9.18") and files[0].supports_python("3.11.7")
    meta = reg.metadata(next(f for f in files if f.is_wheel))
    assert "ldap" in meta.get_all("Provides-Extra")
    assert "apache-airflow-core==3.1.4" in meta.get_all("Requires-Dist")


@pytest.mark.network
def test_unknown_project():
    with pytest.raises(UnknownProject, match="no project named 'apache-airflow-providers-nope-nope' on https://pypi.org/simple"):
        Registry().project("apache-airflow-providers-nope-nope")
