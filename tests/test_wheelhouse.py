"""bundle wheelhouse: exactly the locked files, verified; faults leave the cache clean."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import os
import threading

import pytest

from builder import target
from builder.pydeps import blobs, native
from builder.pydeps.blobs import BlobStore, DiskFull, DownloadError, HashMismatch, Interrupted, NullProgress, Wanted
from builder.pydeps.resolve import ensure_lock, pinned_versions
from builder.pydeps.uv import find_interpreter
from builder.pydeps.index import Registry
from builder.site.load import site_from_data
from builder.pydeps.wheelhouse import MANIFEST, SHA256SUMS, build_wheelhouse
from builder.check.wheelhouse import prove_complete
from support.sites import EXAMPLE, REPO, small_site
from support.pkgindex import File, site_data


def nothing(level, message):
    nothing.seen.append((level, message))


nothing.seen = []


def test_target_tags_cap_manylinux_at_el9_glibc(example_site):
    tags = {str(t) for t in target.wheel_tags(example_site.target)}
    assert "cp311-cp311-manylinux_2_34_x86_64" in tags
    assert "cp311-abi3-manylinux2014_x86_64" in tags
    assert "py3-none-any" in tags
    assert "cp311-cp311-manylinux_2_35_x86_64" not in tags
    assert not any("musllinux" in t or "cp312" in t for t in tags)


def test_builder_choice_never_ships_foreign_native_wheels():
    family = native.host_os_family()
    if native.docker_status()[0] or family == "el9":
        pytest.skip("this host could build el9 wheels itself")
    with pytest.raises(native.NativeBuildError, match=r"native_builder = 'docker' but no docker engine"):
        native.choose_builder("docker", "el9")
    with pytest.raises(native.NativeBuildError, match=rf"'host' but this build host is {family}, not the target's OS family el9"):
        native.choose_builder("host", "el9")
    choice = native.choose_builder("auto", "el9")
    assert choice.name == "target" and "compile on the target" in choice.reason
    assert native.target_build_packages(["python-ldap", "gssapi"], "3.11") == [
        "cyrus-sasl-devel", "gcc", "krb5-devel", "openldap-devel", "python3.11-devel"]


# --- the small site end to end (shared cache: warm runs are fast) ------------------------------------


@pytest.mark.network
def test_small_wheelhouse_exact_verified_warm_and_complete(tmp_path):
    site = small_site()
    lock = ensure_lock(site, locks_dir=tmp_path / "locks", notify=nothing)
    out = tmp_path / "wh"
    wh = build_wheelhouse(site, lock, out, notify=nothing)
    pins = pinned_versions(lock)
    assert {(f.name, f.version) for f in wh.files} == set(pins.items())
    for line in (out / SHA256SUMS).read_text().splitlines():
        sha, name = line.split("  ")
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == sha, name
    offline = (out / "requirements.lock").read_text()
    assert all(f"--hash=sha256:{f.sha256}" in offline for f in wh.files)
    assert not any(p.name.endswith("musllinux_1_1_x86_64.whl") for p in out.iterdir())
    (out / "stale-1.0-py3-none-any.whl").write_text("old")
    warm = build_wheelhouse(site, lock, out, notify=nothing)  # how long it takes: bench/, not here
    assert warm.downloaded == [] and len(warm.reused) == len(pins)
    assert not (out / "stale-1.0-py3-none-any.whl").exists(), "files not in the lock are removed"
    try:
        find_interpreter(site.target.python)
    except Exception:
        pytest.skip("no Python 3.11.7 here for the install proof")
    proof = prove_complete(site, lock, warm)
    assert proof.kind == "install" and "`airflow version` printed 3.1.4" in proof.detail


@pytest.mark.network
def test_offline_resolve_proof_without_target_interpreter(tmp_path):
    site = small_site(python="3.11.5")  # not installed here
    lock = ensure_lock(site, locks_dir=tmp_path / "locks", notify=nothing)
    wh = build_wheelhouse(site, lock, tmp_path / "wh", notify=nothing)
    proof = prove_complete(site, lock, wh)
    assert proof.kind == "offline-resolve"
    assert f"reproduced all {len(lock.pins)} pins" in proof.detail


# --- faults: a private cache and small real files --------------------------------------------------------


def _real_file(name: str, version: str) -> Wanted:
    reg = Registry()
    f = next(f for f in reg.project(name).release(version) if f.is_wheel)
    return Wanted(f"{name}=={version}", f.filename, f.url, f.sha256, f.size)


@pytest.fixture(scope="module")
def pyjwt():
    return _real_file("pyjwt", "2.10.1")


@pytest.fixture(scope="module")
def big():
    return _real_file("cryptography", "46.0.3")  # a few MB: room to interrupt


def _clean(store: BlobStore) -> None:
    """The cache holds only verified files under real names."""
    for path in (store.root / "sha256").rglob("*") if (store.root / "sha256").exists() else []:
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"corrupt cache file {path}"


@pytest.mark.network
def test_hash_mismatch_names_the_package(tmp_path, pyjwt):
    store = BlobStore(tmp_path / "blobs")
    wrong = Wanted(pyjwt.label, pyjwt.filename, pyjwt.url, "0" * 64, pyjwt.size)
    with pytest.raises(HashMismatch, match=r"pyjwt==2\.10\.1: PyJWT-2\.10\.1-py3-none-any\.whl does not match the lock's hash"):
        store.fetch_all([wrong], Registry())
    assert not store.path(wrong.sha256).exists() and not store.partial(wrong.sha256).exists()
    _clean(store)


@pytest.mark.network
def test_corrupted_cached_file_is_evicted_and_refetched(tmp_path, pyjwt):
    store = BlobStore(tmp_path / "blobs")
    assert store.fetch_all([pyjwt], Registry()) == {pyjwt.sha256: "downloaded"}
    blob = store.path(pyjwt.sha256)
    blob.chmod(0o644)
    blob.write_bytes(b"bit rot")
    seen = []
    assert store.fetch_all([pyjwt], Registry(), notify=lambda lv, m: seen.append(m)) == {pyjwt.sha256: "downloaded"}
    assert any("pyjwt==2.10.1: cached file" in m and "is corrupted" in m for m in seen)
    _clean(store)


class _StopAfter(NullProgress):
    def __init__(self, stop: threading.Event, nbytes: int) -> None:
        self.stop, self.nbytes, self.seen = stop, nbytes, 0

    def advance(self, key, n):
        self.seen += n
        if self.seen >= self.nbytes:
            self.stop.set()


@pytest.mark.network
def test_interrupted_download_resumes(tmp_path, big):
    store = BlobStore(tmp_path / "blobs")
    stop = threading.Event()
    with pytest.raises(Interrupted, match=r"cryptography==46\.0\.3: interrupted; the partial download resumes"):
        store._fetch(big, Registry(), _StopAfter(stop, 1 << 20), stop)
    part = store.partial(big.sha256)
    assert 0 < part.stat().st_size < big.size and not store.path(big.sha256).exists()
    assert store.fetch_all([big], Registry()) == {big.sha256: "resumed"}
    assert not part.exists()
    # a partial file that is not a prefix of the real one: detected, started over once
    store.path(big.sha256).unlink()
    part.write_bytes(b"x" * 1000)
    assert store.fetch_all([big], Registry())[big.sha256] in ("resumed", "downloaded")
    _clean(store)


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.network
def test_full_disk_before_and_during_download(tiny_disk, big, monkeypatch):
    store = BlobStore(tiny_disk / "blobs")
    with pytest.raises(DiskFull, match=r"disk full in .*/disk/blobs: \d+ MB still to download, 2 MB free"):
        store.fetch_all([big], Registry())
    # The space check passes (another writer filled the disk meanwhile): the write itself fails.
    monkeypatch.setattr(blobs.shutil, "disk_usage", lambda p: type("U", (), {"free": 1 << 40})())
    with pytest.raises(DiskFull, match=r"cryptography==46\.0\.3: disk full in .*/disk/blobs"):
        store.fetch_all([big], Registry())
    assert not store.path(big.sha256).exists(), "nothing half-written under a real name"
    _clean(store)


# --- the example, whole (one test; cold ~2-4 min, warm ~2.5 min with the install proof) -----------------


@pytest.mark.network
@pytest.mark.integration
def test_example_wheelhouse_complete(tmp_path):
    out = tmp_path / "wheelhouse"
    proc = subprocess.run(
        [sys.executable, "-m", "builder", "wheelhouse", "--site", str(EXAMPLE), "--out", str(out), "--prove"],
        capture_output=True, text=True, cwd=REPO, timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "inputs unchanged (205 pins), reusing it" in proc.stderr, "the committed lock is reused"
    assert "native builder: " in proc.stdout
    assert "complete: " in proc.stdout
    files = {p.name for p in out.iterdir()}
    assert "pyspark-4.0.1-py2.py3-none-any.whl" in files  # built from its sdist
    if "native builder: target" in proc.stdout:
        assert "python_ldap-3.4.5.tar.gz" in files and "build-requirements.txt" in files
        assert "openldap-devel" in proc.stdout


# --- offline: the local index (tests/support/pkgindex.py) and a private blob store -------------------------------


@pytest.fixture
def private_blobs(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_PROD_BLOBS", str(tmp_path / "blobs"))
    return BlobStore()


def _index_lock(index, tmp_path):
    site = site_from_data(site_data(index))
    return site, ensure_lock(site, locks_dir=tmp_path / "locks", index_url=index.simple, notify=nothing)


def test_wheelhouse_offline_exact_verified_and_warm(airflow_index, tmp_path, private_blobs):
    site, lock = _index_lock(airflow_index, tmp_path)
    out = tmp_path / "wh"
    wh = build_wheelhouse(site, lock, out, notify=nothing)  # from the lock's own index
    pins = pinned_versions(lock)
    assert {(f.name, f.version) for f in wh.files} == set(pins.items())
    assert wh.downloaded == sorted(f.filename for f in wh.files) and wh.reused == []
    # the yanked release the site pins exactly is still fetched (PEP 592)
    assert "apache_airflow-3.1.4-py3-none-any.whl" in wh.downloaded
    for line in (out / SHA256SUMS).read_text().splitlines():
        sha, name = line.split("  ")
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == sha == airflow_index.file(name).sha256
    offline = (out / "requirements.lock").read_text()
    assert all(f"{f.name}=={f.version} \\\n    --hash=sha256:{f.sha256}" in offline for f in wh.files)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["lock"]["pins-sha256"] == lock.body_hash
    (out / "stale-1.0-py3-none-any.whl").write_text("old")
    airflow_index.requests.clear()
    warm = build_wheelhouse(site, lock, out, notify=nothing)
    assert warm.downloaded == [] and len(warm.reused) == len(pins)
    assert not [r for r in airflow_index.requests if r.startswith("/files/")], "nothing downloaded again"
    assert not (out / "stale-1.0-py3-none-any.whl").exists(), "files not in the lock are removed"


def test_index_serving_other_bytes_is_a_hash_mismatch(airflow_index, tmp_path, private_blobs):
    site, lock = _index_lock(airflow_index, tmp_path)
    victim = airflow_index.file("paramiko-3.4.0-py3-none-any.whl")
    victim.serve = victim.data.replace(b"3.4.0", b"6.6.6")
    with pytest.raises(HashMismatch) as err:
        build_wheelhouse(site, lock, tmp_path / "wh", notify=nothing)
    assert err.value.message.startswith(
        "paramiko==3.4.0: paramiko-3.4.0-py3-none-any.whl does not match the lock's hash\n"
        f"  expected sha256:{victim.sha256}\n"
        f"  got      sha256:{hashlib.sha256(victim.serve).hexdigest()}\n")
    assert not private_blobs.path(victim.sha256).exists() and not private_blobs.partial(victim.sha256).exists()
    assert not (tmp_path / "wh" / victim.filename).exists()
    _clean(private_blobs)


def test_truncated_download_is_retried_then_named(airflow_index, tmp_path, private_blobs):
    site, lock = _index_lock(airflow_index, tmp_path)
    victim = airflow_index.file("paramiko-3.4.0-py3-none-any.whl")
    victim.truncate = 100  # every response stops after 100 bytes
    with pytest.raises(DownloadError, match=rf"^paramiko==3\.4\.0: downloading {airflow_index.url}/files/"
                                            rf"paramiko-3\.4\.0-py3-none-any\.whl failed: the connection closed "
                                            rf"after 100 of {len(victim.data)} bytes$"):
        build_wheelhouse(site, lock, tmp_path / "wh", notify=nothing)
    assert airflow_index.requests.count(f"/files/{victim.filename}") == 4, "retried"
    assert not private_blobs.path(victim.sha256).exists(), "a short file never gets a real name"
    assert private_blobs.partial(victim.sha256).stat().st_size == 100, "kept to resume"
    _clean(private_blobs)
    # A connection that drops once: the next attempt resumes with a Range request.
    victim.truncate_times = 1
    airflow_index.requests.clear()
    wh = build_wheelhouse(site, lock, tmp_path / "wh", notify=nothing)
    assert victim.filename in {f.filename for f in wh.files}
    assert hashlib.sha256(private_blobs.path(victim.sha256).read_bytes()).hexdigest() == victim.sha256


def test_corrupted_cached_file_is_evicted_and_refetched_offline(pkgindex, tmp_path, private_blobs):
    f = pkgindex.add(File("blob-1.0-py3-none-any.whl", os.urandom(20000)))
    want = Wanted("blob==1.0", f.filename, f"{pkgindex.url}/files/{f.filename}", f.sha256, len(f.data))
    reg = Registry(pkgindex.simple)
    assert private_blobs.fetch_all([want], reg) == {f.sha256: "downloaded"}
    blob = private_blobs.path(f.sha256)
    assert blob.stat().st_mode & 0o777 == 0o444, "verified files are read-only"
    blob.chmod(0o644)
    blob.write_bytes(b"bit rot")
    seen = []
    assert private_blobs.fetch_all([want], reg, notify=lambda lv, m: seen.append(m)) == {f.sha256: "downloaded"}
    assert any(m.startswith(f"blob==1.0: cached file {blob} is corrupted") for m in seen)
    assert private_blobs.fetch_all([want], reg) == {f.sha256: "reused"}
    _clean(private_blobs)


def test_interrupted_download_resumes_offline(pkgindex, private_blobs):
    f = pkgindex.add(File("big-1.0-py3-none-any.whl", os.urandom(3 << 20)))
    want = Wanted("big==1.0", f.filename, f"{pkgindex.url}/files/{f.filename}", f.sha256, len(f.data))
    reg = Registry(pkgindex.simple)
    stop = threading.Event()
    with pytest.raises(Interrupted, match=r"big==1\.0: interrupted; the partial download resumes"):
        private_blobs._fetch(want, reg, _StopAfter(stop, 1 << 20), stop)
    part = private_blobs.partial(f.sha256)
    assert 0 < part.stat().st_size < len(f.data) and not private_blobs.path(f.sha256).exists()
    assert private_blobs.fetch_all([want], reg) == {f.sha256: "resumed"}
    assert not part.exists()
    # a partial file that is not a prefix of the real one: detected, started over once
    private_blobs.path(f.sha256).unlink()
    part.write_bytes(b"x" * 1000)
    assert private_blobs.fetch_all([want], reg)[f.sha256] == "downloaded"
    _clean(private_blobs)


def test_full_disk_before_and_during_download_offline(pkgindex, tiny_disk, monkeypatch):
    f = pkgindex.add(File("big-1.0-py3-none-any.whl", os.urandom(3 << 20)))
    want = Wanted("big==1.0", f.filename, f"{pkgindex.url}/files/{f.filename}", f.sha256, len(f.data))
    store = BlobStore(tiny_disk / "blobs")
    with pytest.raises(DiskFull, match=r"disk full in .*/disk/blobs: 3 MB still to download, 2 MB free"):
        store.fetch_all([want], Registry(pkgindex.simple))
    monkeypatch.setattr(blobs.shutil, "disk_usage", lambda p: type("U", (), {"free": 1 << 40})())
    with pytest.raises(DiskFull, match=r"big==1\.0: disk full in .*/disk/blobs"):
        store.fetch_all([want], Registry(pkgindex.simple))
    assert not store.path(f.sha256).exists(), "nothing half-written under a real name"
    _clean(store)


def test_sdist_is_built_with_build_requirements_from_the_lock_index(airflow_index, tmp_path, private_blobs):
    """A mirror-only host: the sdist's build backend exists only on the lock's index."""
    from support.pkgindex import add_sdist_world

    add_sdist_world(airflow_index)
    site = site_from_data(site_data(airflow_index, providers=["purepkg"]))
    lock = ensure_lock(site, locks_dir=tmp_path / "locks", index_url=airflow_index.simple, notify=nothing)
    assert pinned_versions(lock)["purepkg"] == "1.0"
    airflow_index.requests.clear()
    wh = build_wheelhouse(site, lock, tmp_path / "wh", notify=nothing)
    built = {f.filename: f.origin for f in wh.files}
    assert built["purepkg-1.0-py3-none-any.whl"] == "built-host" and wh.built == ["purepkg-1.0-py3-none-any.whl"]
    assert "/simple/tinybackend/" in airflow_index.requests, "the build backend came from the lock's index"
    assert (tmp_path / "wh" / "purepkg-1.0-py3-none-any.whl").is_file()


def test_select_artifacts_asks_the_index_nothing_when_the_lock_carries_the_files(example_site, no_network):
    """A lock that already holds each file's URL and size (a pip-compile resolve in this process)
    is selected from without one request; a pin it does not describe is asked about."""
    from builder.pydeps.lockfile import LockedFile, Pin
    from builder.pydeps.wheelhouse import select_artifacts

    wheel, sdist = "a" * 64, "b" * 64
    files = {
        wheel: LockedFile("six-1.17.0-py2.py3-none-any.whl", "https://files.example/six.whl", wheel, 11107),
        sdist: LockedFile("six-1.17.0.tar.gz", "https://files.example/six.tar.gz", sdist, 34031),
    }
    pins = {"six": Pin("six", "1.17.0", (f"sha256:{wheel}", f"sha256:{sdist}"))}
    registry = Registry("https://index.invalid/simple")
    [art] = select_artifacts(pins, example_site, registry, files)
    assert (art.filename, art.url, art.sha256, art.size) == (
        "six-1.17.0-py2.py3-none-any.whl", "https://files.example/six.whl", wheel, 11107)
    with pytest.raises(AssertionError, match="network used"):  # a file the lock does not describe: asked
        select_artifacts({"idna": Pin("idna", "3.10", ("sha256:" + "c" * 64,))}, example_site, registry, files)
