"""bundle lock: real PyPI, real uv and pip-compile; bad input named precisely."""

from __future__ import annotations

import copy
import socket
import subprocess
import sys

import pytest

from builder.lock import (
    Lock,
    LockError,
    ensure_lock,
    input_hash,
    parse_requirements,
    pinned_versions,
    render_pins,
    target_platform,
)
from builder.registry import PYPI, RegistryUnreachable
from builder.site.load import site_from_data
from conftest import EXAMPLE, REPO, minimal_data

COMMITTED = REPO / "locks" / "bigdata-prod.txt"


def small_site(**airflow):
    """A small site (one extra, no extra provider): ~130 packages, locks in seconds."""
    data = copy.deepcopy(minimal_data())
    data["airflow"] = {"version": "3.1.4", "extras": ["ssh"], "providers": [], **airflow}
    data["target"] = {"python": "3.11.7"}
    return site_from_data(data)


def quiet(level, message):
    quiet.seen.append((level, message))


quiet.seen = []


# --- offline: the file format and the committed lock ---------------------------------------------


def test_parse_render_roundtrip():
    text = (
        "# comment\nFoo_Bar[extra]==1.0 \\\n    --hash=sha256:" + "b" * 64 + " \\\n    --hash=sha256:" + "a" * 64
        + "\n    # via x\nbaz==2.0 ; python_version >= '3'\n"
    )
    pins = parse_requirements(text)
    assert pins["foo-bar"].version == "1.0"
    assert pins["foo-bar"].hashes == ("sha256:" + "a" * 64, "sha256:" + "b" * 64)
    assert pins["baz"].version == "2.0"
    assert parse_requirements(render_pins(pins)) == pins


def test_not_a_pin_is_an_error():
    with pytest.raises(LockError, match=r"x.txt: not an exact pin: 'foo>=1'"):
        parse_requirements("foo>=1\n", source="x.txt")


def test_committed_example_lock_is_current(example_site):
    lock = Lock.read(COMMITTED)
    assert lock.input_hash == input_hash(example_site, "uv", PYPI), "re-run: bundle lock --site examples/site.toml"
    versions = pinned_versions(COMMITTED)
    assert versions["apache-airflow"] == versions["apache-airflow-core"] == "3.1.4"
    assert versions["apache-airflow-providers-fab"] and versions["uv"]
    assert "python-ldap" in versions and "async-timeout" not in versions  # 3.11.7, not 3.11.0
    assert all(p.hashes for p in lock.pins.values())
    assert lock.header["target"] == "python 3.11.7, x86_64, el9 (manylinux_2_34_x86_64)"
    assert lock.method.startswith(("date-cutoff 2025-12-10T07:35:00Z", "constraints "))


def test_reuse_without_network(example_site, tmp_path):
    (tmp_path / "bigdata-prod.txt").write_text(COMMITTED.read_text())
    # An index that does not exist: a reused lock must not touch it.
    lock = ensure_lock(example_site, locks_dir=tmp_path, notify=quiet)
    assert lock.reused and len(lock.pins) == len(Lock.read(COMMITTED).pins)


def test_target_platform(example_site):
    assert target_platform(example_site) == ("x86_64-manylinux_2_34", "manylinux_2_34_x86_64")


def test_unknown_backend(example_site, tmp_path):
    with pytest.raises(Exception, match="unknown lock backend 'poetry': use one of uv, pip-compile"):
        ensure_lock(example_site, locks_dir=tmp_path, backend="poetry")


# --- network: real resolves -------------------------------------------------------------------------


@pytest.mark.network
def test_lock_small_site_uv(tmp_path):
    quiet.seen.clear()
    site = small_site()
    lock = ensure_lock(site, locks_dir=tmp_path, notify=quiet)
    text = (tmp_path / "mini.txt").read_text()
    assert "# airflow: 3.1.4" in text and "# method: date-cutoff 2025-12-10T07:35:00Z" in text
    assert "# target: python 3.11.7, x86_64, el9 (manylinux_2_34_x86_64)" in text
    warnings = [m for level, m in quiet.seen if level == "warn"]
    assert any("apache-airflow 3.1.4 is yanked" in m and "The wrong RC" in m and "newest release of that series is 3.1." in m
               for m in warnings)
    assert any("apache-airflow-core 3.1.4 is yanked" in m for m in warnings)
    assert any(m.startswith("resolving with a date-cutoff") for m in warnings), "the fallback is announced"
    versions = pinned_versions(lock)
    assert versions["apache-airflow-core"] == "3.1.4" and versions["apache-airflow-task-sdk"] == "1.1.4"
    assert "uv" in versions and "paramiko" in versions
    assert all(p.hashes for p in lock.pins.values())
    # unchanged inputs: reused; forced: same pins, file untouched
    again = ensure_lock(site, locks_dir=tmp_path, notify=quiet)
    assert again.reused
    forced = ensure_lock(site, locks_dir=tmp_path, notify=quiet, refresh=True)
    assert forced.body_hash == lock.body_hash
    assert (tmp_path / "mini.txt").read_text() == text


@pytest.mark.network
def test_lock_small_site_pip_compile_same_pins(tmp_path):
    site = small_site()
    uv_lock = ensure_lock(site, locks_dir=tmp_path / "uv", notify=quiet)
    pc_lock = ensure_lock(site, locks_dir=tmp_path / "pc", backend="pip-compile", notify=quiet)
    assert pinned_versions(pc_lock) == pinned_versions(uv_lock)
    assert pc_lock.header["backend"].startswith("pip-compile ")
    assert all(p.hashes for p in pc_lock.pins.values())
    # same format: every uv hash is also in the pip-compile lock (which takes all files up to the cutoff)
    for name, pin in uv_lock.pins.items():
        assert set(pin.hashes) <= set(pc_lock.pins[name].hashes), name


@pytest.mark.network
def test_lock_with_site_constraints_file(tmp_path):
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("paramiko==3.4.0\nrich==13.9.4\n")
    site = small_site(constraints=str(constraints))
    lock = ensure_lock(site, locks_dir=tmp_path, notify=quiet)
    assert lock.method.startswith(f"constraints {constraints} (sha256 ")
    assert pinned_versions(lock)["paramiko"] == "3.4.0"
    assert pinned_versions(lock)["rich"] == "13.9.4"


@pytest.mark.network
@pytest.mark.parametrize(
    ("airflow", "target", "message"),
    [
        ({"extras": ["ssh", "ldpa"]}, {}, r"airflow\.extras: apache-airflow 3\.1\.4 has no extra 'ldpa' \(did you mean ldap"),
        ({"version": "3.1.99"}, {}, r"airflow\.version: apache-airflow 3\.1\.99 does not exist on https://pypi\.org/simple"),
        ({}, {"python": "3.9.18"}, r"target\.python: apache-airflow 3\.1\.4 requires Python <3\.14,>=3\.10; the site's target is 3\.9\.18"),
        ({"providers": ["apache-airflow-providers-nope-nope"]}, {},
         r"airflow\.providers: no project named 'apache-airflow-providers-nope-nope'"),
    ],
    ids=["unknown-extra", "no-such-version", "python-unsupported", "no-such-provider"],
)
def test_bad_input(tmp_path, airflow, target, message):
    data = copy.deepcopy(minimal_data())
    data["airflow"] = {"version": "3.1.4", "extras": ["ssh"], "providers": [], **airflow}
    data["target"] = {"python": "3.11.7", **target}
    with pytest.raises(LockError, match=message):
        ensure_lock(site_from_data(data), locks_dir=tmp_path, notify=quiet)
    assert not list(tmp_path.iterdir()), "no lock file written"


def test_unreachable_registry(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RegistryUnreachable, match=rf"cannot reach http://127\.0\.0\.1:{port}/simple/apache-airflow/"):
        ensure_lock(small_site(), locks_dir=tmp_path, index_url=f"http://127.0.0.1:{port}/simple", notify=quiet)


@pytest.mark.network
def test_cli_bad_extra_exits_1_without_traceback(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text(EXAMPLE.read_text().replace('"oracle"', '"oracel"'))
    proc = subprocess.run([sys.executable, "-m", "builder", "lock", "--site", str(site), "--locks-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "error: airflow.extras: apache-airflow 3.1.4 has no extra 'oracel' (did you mean oracle" in proc.stderr


@pytest.mark.network
def test_host_pip_and_uv_config_never_leak(tmp_path, monkeypatch):
    """This host's pip.conf adds find-links and file:// indexes; env vars can do worse."""
    conf = tmp_path / "uv.toml"
    conf.write_text('index-url = "http://127.0.0.1:1/simple"\n')
    for var, value in {
        "UV_INDEX_URL": "http://127.0.0.1:1/simple", "UV_DEFAULT_INDEX": "http://127.0.0.1:1/simple",
        "UV_CONFIG_FILE": str(conf), "UV_EXCLUDE_NEWER": "2001-01-01T00:00:00Z",
        "PIP_INDEX_URL": "http://127.0.0.1:1/simple", "PIP_FIND_LINKS": "/nonexistent",
        "PIP_CONSTRAINT": "/nonexistent.txt", "PIP_NO_INDEX": "1",
    }.items():
        monkeypatch.setenv(var, value)
    lock = ensure_lock(small_site(), locks_dir=tmp_path / "locks", notify=quiet, refresh=True)
    assert lock.header["index"] == "https://pypi.org/simple"
    assert pinned_versions(lock)["apache-airflow-core"] == "3.1.4"
