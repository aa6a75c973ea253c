"""bundle lock: real uv against a local index (offline) and real PyPI (marked network);
bad input named precisely; a lock is reused as it was made, or refused."""

from __future__ import annotations

import copy
import re
import socket
import subprocess
import sys

import pytest

from builder.pydeps.resolve import (
    Lock,
    LockError,
    ensure_lock,
    input_hash,
    parse_requirements,
    pinned_versions,
    render_pins,
)
from builder import target
from builder.errors import UsageError
from builder.pydeps.index import PYPI, RegistryUnreachable
from builder.site.load import site_from_data
from support.cli import bundle
from support.sites import EXAMPLE, REPO, minimal_data, small_site, write_toml
from support.pkgindex import CUTOFF, YANK_REASON, site_data

COMMITTED = REPO / "locks" / "bigdata-prod.txt"


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


def test_reuse_without_network(example_site, tmp_path, no_network):
    (tmp_path / "bigdata-prod.txt").write_text(COMMITTED.read_text())
    # Sockets and external commands are refused (no_network): reuse reads the file only.
    lock = ensure_lock(example_site, locks_dir=tmp_path, notify=quiet)
    assert lock.reused and len(lock.pins) == len(Lock.read(COMMITTED).pins)
    assert (lock.backend, lock.index) == ("uv", PYPI)
    # the guard is real: a resolve would have needed the network
    with pytest.raises(AssertionError, match="network used"):
        ensure_lock(example_site, locks_dir=tmp_path, refresh=True, notify=quiet)


def test_target_platform(example_site):
    assert target.uv_platform(example_site.target) == "x86_64-manylinux_2_34"
    assert target.manylinux(example_site.target) == "manylinux_2_34_x86_64"


def test_unknown_backend(example_site, tmp_path):
    with pytest.raises(UsageError, match="unknown lock backend 'poetry': use one of uv, pip-compile"):
        ensure_lock(example_site, locks_dir=tmp_path, backend="poetry")


# --- offline: real uv against a local index (tests/support/pkgindex.py) ------------------------------------


def index_site(index, **airflow):
    return site_from_data(site_data(index, **airflow))


def test_lock_against_local_index(airflow_index, tmp_path):
    seen: list[tuple[str, str]] = []
    site = index_site(airflow_index)
    lock = ensure_lock(site, locks_dir=tmp_path, index_url=airflow_index.simple,
                       notify=lambda level, msg: seen.append((level, msg)))
    # paramiko 3.9.0 and six are newer than... only paramiko 3.9.0 was uploaded after the cutoff
    assert pinned_versions(lock) == {
        "apache-airflow": "3.1.4", "apache-airflow-core": "3.1.4", "apache-airflow-task-sdk": "1.1.4",
        "paramiko": "3.4.0", "six": "1.17.0", "uv": "0.9.5",
    }
    for name, pin in lock.pins.items():
        [served] = [f for f in airflow_index.files[name] if pin.version in f.filename]
        assert pin.hashes == (f"sha256:{served.sha256}",), name
    assert lock.method.startswith(f"date-cutoff {CUTOFF} (official constraints unreachable: ")
    assert "HTTP Error 404" in lock.method
    # the cutoff is a header line of its own: read back as data, not from the description
    assert lock.header["cutoff"] == CUTOFF and Lock.read(lock.path).cutoff == CUTOFF
    assert (lock.backend, lock.index) == ("uv", airflow_index.simple)
    warnings = [m for level, m in seen if level == "warn"]
    assert (f"apache-airflow 3.1.4 is yanked on the index ({YANK_REASON!r}); the newest release of that "
            "series is 3.1.5. Proceeding because the site pins apache-airflow 3.1.4") in warnings
    assert any(m.startswith("apache-airflow-core 3.1.4 is yanked") and "pins apache-airflow-core 3.1.4 exactly" in m
               for m in warnings)
    assert any(m.startswith(f"resolving with a date-cutoff {CUTOFF}") for m in warnings), "the fallback is announced"
    # unchanged inputs: reused without asking the index anything
    text = lock.path.read_text()
    airflow_index.requests.clear()
    again = ensure_lock(site, locks_dir=tmp_path, notify=quiet)
    assert again.reused and airflow_index.requests == []
    # refreshed: resolved again (against the recorded index), same pins, file untouched
    forced = ensure_lock(site, locks_dir=tmp_path, refresh=True, notify=quiet)
    assert not forced.reused and "/simple/apache-airflow/" in airflow_index.requests
    assert forced.body_hash == lock.body_hash and lock.path.read_text() == text


@pytest.mark.parametrize(
    ("airflow", "target", "message"),
    [
        ({"extras": ["ssh", "ldpa"]}, {}, r"airflow\.extras: apache-airflow 3\.1\.4 has no extra 'ldpa' \(did you mean ldap"),
        ({"version": "3.1.99"}, {}, r"airflow\.version: apache-airflow 3\.1\.99 does not exist on http://127\.0\.0\.1:\d+/simple"
         r"\nhint: did you mean 3\.1\.5, 3\.1\.4\? newest releases: 3\.1\.4, 3\.1\.5"),
        ({}, {"python": "3.9.18"}, r"target\.python: apache-airflow 3\.1\.4 requires Python >=3\.10,<3\.14; the site's target is 3\.9\.18"),
        ({"providers": ["apache-airflow-providers-nope-nope"]}, {},
         r"airflow\.providers: no project named 'apache-airflow-providers-nope-nope' on http://127\.0\.0\.1:\d+/simple"),
    ],
    ids=["unknown-extra", "no-such-version", "python-unsupported", "no-such-provider"],
)
def test_bad_input_offline(airflow_index, tmp_path, airflow, target, message):
    data = site_data(airflow_index, **airflow)
    data["target"].update(target)
    with pytest.raises(LockError) as err:
        ensure_lock(site_from_data(data), locks_dir=tmp_path, index_url=airflow_index.simple, notify=quiet)
    shown = err.value.message + (f"\nhint: {err.value.hint}" if err.value.hint else "")
    assert re.search(message, shown), shown
    assert not list(tmp_path.iterdir()), "no lock file written"


def test_index_without_upload_times_is_refused(pkgindex, tmp_path):
    from support.pkgindex import airflow_world

    airflow_world(pkgindex)
    for files in pkgindex.files.values():
        for f in files:
            f.upload_time = None
    with pytest.raises(LockError, match=r"http://127\.0\.0\.1:\d+/simple gives no upload times \(PEP 700\) "
                                        r"for apache-airflow 3\.1\.4"):
        ensure_lock(index_site(pkgindex), locks_dir=tmp_path, index_url=pkgindex.simple, notify=quiet)


# --- a lock is used as it was made (the lock-input bug) ----------------------------------------------


def test_mirror_lock_is_reused_by_build_never_relocked_elsewhere(airflow_index, tmp_path):
    site = index_site(airflow_index)
    mirror = airflow_index.simple
    made = ensure_lock(site, locks_dir=tmp_path, index_url=mirror, notify=quiet)
    text = made.path.read_text()
    # What `bundle build` and `bundle wheelhouse` do: no backend, no index given.
    airflow_index.requests.clear()
    used = ensure_lock(site, locks_dir=tmp_path, may_relock=False, notify=quiet)
    assert used.reused and used.index == mirror and airflow_index.requests == []
    # The site changed: refused with the command that re-makes it (it used to be
    # re-resolved with uv against PyPI and overwritten).
    changed = index_site(airflow_index, extras=["ssh", "ldap"])
    with pytest.raises(LockError) as err:
        ensure_lock(changed, locks_dir=tmp_path, may_relock=False, notify=quiet)
    assert err.value.message == (f"{made.path}: the site's inputs changed since it was made with --backend uv "
                                 f"--index-url {mirror}; not re-resolving it behind your back")
    assert err.value.hint == (f"re-lock it explicitly: bundle lock --site <file> --locks-dir {tmp_path} "
                              f"--backend uv --index-url {mirror}")
    # Another index asked for explicitly: refused too.
    with pytest.raises(LockError, match=rf"it was made with --backend uv --index-url {re.escape(mirror)}, this "
                                        r"build asks for --backend uv --index-url https://pypi\.org/simple;"):
        ensure_lock(site, locks_dir=tmp_path, index_url=PYPI, may_relock=False, notify=quiet)
    assert made.path.read_text() == text and airflow_index.requests == []
    # `bundle lock` re-resolves the way the lock was made: against the mirror.
    relocked = ensure_lock(changed, locks_dir=tmp_path, notify=quiet)
    assert not relocked.reused and relocked.index == mirror
    assert "/simple/apache-airflow/" in airflow_index.requests


def _as_pip_compile(lock: Lock, site) -> str:
    """The same lock as `bundle lock --backend pip-compile` records it."""
    text = lock.path.read_text()
    text = text.replace(f"# backend: {lock.header['backend']}", "# backend: pip-compile 7.6.2")
    return text.replace(lock.input_hash, input_hash(site, "pip-compile", lock.index))


def test_pip_compile_lock_is_reused_as_made_or_refused(airflow_index, tmp_path, request):
    site = index_site(airflow_index)
    lock = ensure_lock(site, locks_dir=tmp_path, index_url=airflow_index.simple, notify=quiet)
    lock.path.write_text(_as_pip_compile(lock, site))
    text = lock.path.read_text()
    request.getfixturevalue("no_network")  # from here on: no resolve, no index
    used = ensure_lock(site, locks_dir=tmp_path, may_relock=False, notify=quiet)
    assert used.reused and used.backend == "pip-compile" and used.index == airflow_index.simple
    with pytest.raises(LockError, match=r"inputs changed since it was made with --backend pip-compile --index-url "
                                        r"http://127\.0\.0\.1:\d+/simple; not re-resolving"):
        ensure_lock(index_site(airflow_index, extras=["ldap"]), locks_dir=tmp_path, may_relock=False, notify=quiet)
    assert lock.path.read_text() == text


def test_lock_without_backend_header_is_refused_by_build(airflow_index, tmp_path):
    site = index_site(airflow_index)
    lock = ensure_lock(site, locks_dir=tmp_path, index_url=airflow_index.simple, notify=quiet)
    lock.path.write_text(lock.path.read_text().replace(f"# backend: {lock.header['backend']}\n", ""))
    with pytest.raises(LockError, match=r"the header does not say which resolver made it .*; `bundle build`/"
                                        r"`bundle wheelhouse` do not overwrite it"):
        ensure_lock(site, locks_dir=tmp_path, may_relock=False, notify=quiet)


# The CLI without this machine's pip/uv configuration: the lock's own index is the one asked.
NO_PIP_UV = ("PIP_", "UV_")


def test_cli_build_refuses_a_changed_mirror_lock(airflow_index, tmp_path):
    site_file = write_toml(tmp_path / "site.toml", {**site_data(airflow_index), "publish": {"sign": False}})
    locks = tmp_path / "locks"
    made = bundle("lock", "--site", str(site_file), "--locks-dir", str(locks), "--index-url", airflow_index.simple,
                  cwd=tmp_path, drop_env=NO_PIP_UV)
    assert made.returncode == 0, made.stderr
    lock_file = locks / "mini.txt"
    text = lock_file.read_text()
    assert f"# index: {airflow_index.simple}\n" in text
    write_toml(site_file, {**site_data(airflow_index, extras=["ssh", "ldap"]), "publish": {"sign": False}})
    proc = bundle("build", "--site", str(site_file), "--locks-dir", str(locks), "--out", str(tmp_path / "out"),
                  cwd=tmp_path, drop_env=NO_PIP_UV)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (f"error: {lock_file}: the site's inputs changed since it was made with --backend uv --index-url "
            f"{airflow_index.simple}; not re-resolving it behind your back") in proc.stderr
    assert f"hint: re-lock it explicitly: bundle lock --site <file> --locks-dir {locks} --backend uv" in proc.stderr
    assert lock_file.read_text() == text


def test_cli_wheelhouse_downloads_from_the_lock_index(airflow_index, tmp_path):
    site_file = write_toml(tmp_path / "site.toml", site_data(airflow_index))
    locks = tmp_path / "locks"
    assert bundle("lock", "--site", str(site_file), "--locks-dir", str(locks), "--index-url", airflow_index.simple,
                  cwd=tmp_path, drop_env=NO_PIP_UV).returncode == 0
    airflow_index.requests.clear()
    # A private blob store: every file must come from the mirror now (the tiny wheels are
    # byte-stable, so the shared store may already hold them).
    proc = bundle("wheelhouse", "--site", str(site_file), "--locks-dir", str(locks), "--out", str(tmp_path / "wh"),
                  cwd=tmp_path, drop_env=NO_PIP_UV, extra_env={"AIRFLOW_PROD_BLOBS": str(tmp_path / "blobs")})
    assert proc.returncode == 0, proc.stderr
    assert f"{locks / 'mini.txt'}: inputs unchanged (6 pins), reusing it (made with uv against " \
           f"{airflow_index.simple})" in proc.stderr
    assert "/files/paramiko-3.4.0-py3-none-any.whl" in airflow_index.requests
    assert sorted(p.name for p in (tmp_path / "wh").glob("*.whl")) == sorted(
        f.filename for fs in airflow_index.files.values() for f in fs
        if any(f.filename.startswith(f"{n}-{v}-") for n, v in
               [("apache_airflow", "3.1.4"), ("apache_airflow_core", "3.1.4"), ("apache_airflow_task_sdk", "1.1.4"),
                ("paramiko", "3.4.0"), ("six", "1.17.0"), ("uv", "0.9.5")]))


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


def test_the_lock_model_carries_what_later_steps_read():
    """Cutoff, requirements, date, backend and index are fields of the one parsed model."""
    lock = Lock.read(COMMITTED)
    want = "2025-12-10T07:35:00Z" if lock.method.startswith("date-cutoff") else None
    assert lock.cutoff == want
    assert lock.requirements[0].startswith("apache-airflow[") and lock.requirements[3] == "uv"
    # The example raises the FAB provider past CVE-2026-46745 (airflow.overrides).
    assert lock.requirements[4:] == ("apache-airflow-providers-fab==3.7.2",)
    assert lock.date is not None and lock.date.tzinfo is not None
    assert (lock.backend, lock.index) == ("uv", PYPI)
    assert lock.files == {} and not lock.reused  # a lock read from disk names no file URLs
    assert Lock.parse(lock.requirements_text()).pins == lock.pins  # the hashed export round-trips
    with pytest.raises(AttributeError):
        lock.reused = True  # frozen: reuse is a new value (dataclasses.replace), not a mutation
