"""The package index as the lock and wheelhouse see it: a local PEP 691/700 index
(tests/support/pkgindex.py, offline), real PyPI (marked network), and a dead port."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest

from builder.pydeps.index import Registry, RegistryError, RegistryUnreachable, UnknownProject, network_env
from support.pkgindex import RELEASE_UPLOAD, YANK_REASON, File, wheel


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


# --- offline: the local index ----------------------------------------------------------------------


def test_yanked_release_upload_times_and_metadata_offline(airflow_index):
    reg = Registry(airflow_index.simple)
    project = reg.project("Apache_Airflow")  # any spelling: canonical name
    assert project.name == "apache-airflow"
    assert project.yank_reason("3.1.4") == YANK_REASON
    assert project.yank_reason("3.1.5") is None
    assert [str(v) for v in project.versions(include_yanked=False)] == ["3.1.5"]
    [f] = project.release("3.1.4")
    assert f.filename == "apache_airflow-3.1.4-py3-none-any.whl"
    assert f.upload_time == datetime(2025, 12, 10, 7, 30, 12, tzinfo=UTC) and RELEASE_UPLOAD.startswith("2025-12-10T07:30:12")
    assert not f.supports_python("3.9.18") and f.supports_python("3.11.7")
    airflow_index.requests.clear()
    meta = reg.metadata(f)
    assert airflow_index.requests == ["/files/apache_airflow-3.1.4-py3-none-any.whl.metadata"], "PEP 658 file only"
    assert meta.get_all("Provides-Extra") == ["ssh", "ldap"]
    assert "apache-airflow-core==3.1.4" in meta.get_all("Requires-Dist")


def test_metadata_without_pep658_is_read_from_the_wheel(pkgindex):
    filename, data = wheel("plain", "1.0", requires=["six"])
    pkgindex.add(File(filename, data, serve_metadata=False))
    reg = Registry(pkgindex.simple)
    meta = reg.metadata(reg.project("plain").files[0])
    assert meta["Name"] == "plain" and meta.get_all("Requires-Dist") == ["six"]
    assert pkgindex.requests[-2:] == [f"/files/{filename}.metadata", f"/files/{filename}"]


def test_missing_metadata_is_a_clear_error(pkgindex):
    filename, data = wheel("broken", "1.0", with_metadata=False)
    pkgindex.add(File(filename, data, serve_metadata=False))
    reg = Registry(pkgindex.simple)
    with pytest.raises(RegistryError) as err:
        reg.metadata(reg.project("broken").files[0])
    assert err.value.message == (f"{filename}: the index has no metadata file for it (PEP 658) and the wheel "
                                 "holds no .dist-info/METADATA")
    pkgindex.add(File("notzip-1.0-py3-none-any.whl", b"not a zip", serve_metadata=False))
    with pytest.raises(RegistryError, match=r"/files/notzip-1\.0-py3-none-any\.whl: not a valid wheel \(a zip file\)"):
        reg.metadata(reg.project("notzip").files[0])


def test_unknown_project_offline(pkgindex):
    with pytest.raises(UnknownProject, match=rf"no project named 'nope-nope' on {pkgindex.simple}$"):
        Registry(pkgindex.simple).project("nope-nope")


def test_index_without_json_api_is_a_clear_error(pkgindex):
    pkgindex.static["/simple/legacy/"] = b"<html><body><a href='x'>legacy-1.0.tar.gz</a></body></html>"
    with pytest.raises(RegistryError) as err:
        Registry(pkgindex.simple).project("legacy")
    assert err.value.message == f"{pkgindex.simple}/legacy/ did not answer in the Simple API's JSON form (PEP 691)"
    assert "application/vnd.pypi.simple.v1+json" in (err.value.hint or "")
