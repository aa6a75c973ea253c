"""The docker native-wheel builder, run end to end through the docker SDK (issue 10, item 7).

A private dockerd (tests/support/dockerengine.py: no iptables, no bridge, its own socket and data
root, stopped by PID, data root removed) builds the native sdists of a small lock
(python-ldap, pykerberos, gssapi, krb5, thrift) through `build_wheelhouse` with
`native_builder = "docker"` and `builder_image` naming a prepared image, exactly as a site
with a Dockerfile.rhel9 image would. Then the wheelhouse is installed, offline with hashes
required, into a venv in a container of the target root (Python 3.11, no compiler) and on
the booted, hardened stand-in host, and every native module is imported.

THE BUILDER IMAGE IS A DEBIAN 12 STAND-IN (no RHEL image and no registry are reachable
here): it proves the SDK path, the image pinning, the hash recording and the reproducibility
of the build script; its wheels are Debian wheels, not el9 wheels. docs/docker-builder.md
says what a real build host does.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from builder.pydeps import native
from builder.pydeps.blobs import BlobStore, Wanted
from builder.pydeps.index import Registry
from builder.pydeps.lockfile import Lock
from builder.pydeps.wheelhouse import MANIFEST, OFFLINE_LOCK, SHA256SUMS, build_wheelhouse
from builder.site.load import site_from_data
from support.sites import minimal_data

pytestmark = [pytest.mark.integration, pytest.mark.network]

NATIVE = ("python-ldap", "pykerberos", "gssapi", "krb5", "thrift")
# What each native distribution is imported as, C extension included.
IMPORTS = ("ldap", "_ldap", "kerberos", "gssapi", "gssapi.raw", "krb5", "thrift.protocol.fastbinary")
# Pins and hashes copied from the e2e's Airflow 3.1.4 lock: the native sdists and what they
# import at run time (python-ldap: pyasn1, pyasn1-modules; gssapi: decorator; thrift: six).
LOCK_BODY = Path(__file__).with_name("docker_builder_lock.txt").read_text()
TIMINGS: dict[str, float] = {}
# Imports every native module from /opt/venv and prints the interpreter's version and the modules.
PROBE = ("import importlib, sys; "
         f"mods = [importlib.import_module(m) for m in {IMPORTS!r}]; "
         "assert all(m.__file__.startswith('/opt/venv/') for m in mods), [m.__file__ for m in mods]; "
         "print(sys.version.split()[0], ' '.join(m.__name__ for m in mods))")


def _lock(tmp: Path) -> Lock:
    path = tmp / "docker-standin.lock"
    path.write_text(
        "# Lock for site 'dockerstandin' (tests/test_docker_builder.py): native sdists and their imports.\n"
        "#\n"
        "# requirements: python-ldap; pykerberos; gssapi; krb5; thrift\n"
        "# target: python 3.11.2, x86_64, el9\n"
        "# method: by hand (pins and hashes from the e2e's lock of apache-airflow 3.1.4)\n"
        "# backend: uv\n"
        "# index: https://pypi.org/simple\n\n" + LOCK_BODY)
    return Lock.read(path)


def _site(image: str):
    data = minimal_data()
    data["site"] = {"name": "dockerstandin"}
    # The stand-in plays RHEL 9 (os = el9, as in the e2e) with Debian 12's Python 3.11.2; the
    # builder image is the labelled Debian stand-in for what Dockerfile.rhel9 makes.
    data["target"] = {"os": "el9", "python": "3.11.2", "native_builder": "docker", "builder_image": image}
    return site_from_data(data)


def _tools(dest: Path) -> Path:
    """Dockerfile.rhel9's pinned build tools, as wheels checked against their sha256."""
    from support.dockerengine import BUILD_TOOLS

    store = BlobStore()
    reg = Registry()
    wanted = []
    for filename, sha in BUILD_TOOLS.items():
        name, version = filename.split("-")[:2]
        f = next(f for f in reg.project(name).release(version) if f.sha256 == sha)
        wanted.append(Wanted(f"{name}=={version}", f.filename, f.url, sha, f.size))
    store.fetch_all(wanted, reg, None, lambda level, msg: None, 4)
    dest.mkdir(parents=True, exist_ok=True)
    for w in wanted:
        shutil.copy(store.path(w.sha256), dest / w.filename)
    return dest


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from support.dockerengine import Engine, firewall_rules, missing_tools

    if os.geteuid() != 0:
        pytest.skip("dockerd needs root (run as root; CI does)")
    missing = missing_tools()
    if missing:
        pytest.skip(f"missing {', '.join(missing)}: run scripts/setup (docker.io, zstd)")
    pytest.importorskip("docker", reason="the docker SDK is not installed in .venv (scripts/setup)")
    rules = firewall_rules()
    with Engine() as eng:
        TIMINGS["dockerd start"] = eng.started_seconds
        yield eng
        assert not eng.new_links(), f"the engine created network links: {eng.new_links()}"
        assert firewall_rules() == rules, "the engine changed the machine's iptables rules"
    assert not eng.top.exists(), "the engine's data root is removed"
    assert eng.daemon is not None and eng.daemon.proc is not None and eng.daemon.proc.poll() is not None


@pytest.fixture(scope="module")
def images(engine, tmp_path_factory):
    """(stand-in builder tag, its image ID, target image tag): imported and built here."""
    from support.dockerengine import builder_root, root_tag, target_root

    base = root_tag("airflow-prod-standin-debian12-build", builder_root())
    _, TIMINGS["import builder root"] = engine.import_root(builder_root(), base)
    target = root_tag("airflow-prod-standin-debian12-target", target_root())
    _, TIMINGS["import target root"] = engine.import_root(target_root(), target)
    tag = "localhost/airflow-prod-standin-builder:debian12"
    image_id, TIMINGS["build stand-in builder image"] = engine.build_standin_builder(
        base, _tools(tmp_path_factory.mktemp("build-tools")), tag)
    return tag, image_id, target


@pytest.fixture(scope="module")
def built(engine, images, tmp_path_factory):
    tag, image_id, _ = images
    tmp = tmp_path_factory.mktemp("wheelhouse")
    mp = pytest.MonkeyPatch()
    mp.setenv("DOCKER_HOST", engine.host)
    try:
        t0 = time.monotonic()
        wh = build_wheelhouse(_site(tag), _lock(tmp), tmp / "wh", notify=lambda level, msg: None)
        TIMINGS["build_wheelhouse (5 native sdists in docker, cold)"] = time.monotonic() - t0
        t0 = time.monotonic()
        warm = build_wheelhouse(_site(tag), _lock(tmp), tmp / "wh", notify=lambda level, msg: None)
        TIMINGS["build_wheelhouse again (warm: built-wheel cache)"] = time.monotonic() - t0
    finally:
        mp.undo()
    return wh, warm


def test_engine_is_private_and_networkless(engine):
    client = engine.client()
    assert {n.name for n in client.networks.list()} == {"host", "none"}, "no bridge network, no docker0"
    assert "docker0" not in os.listdir("/sys/class/net")
    info = client.info()
    assert info["DockerRootDir"] == str(engine.top / "data")
    assert engine.daemon is not None and Path(engine.top / "dockerd.pid").read_text().strip() == str(engine.daemon.pid)


def test_docker_status_and_auto_choice_see_the_engine(engine, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    assert native.docker_status() == (True, "a docker engine is reachable")
    assert native.choose_builder("auto", "el9").name == "docker"


def test_sdists_in_wheels_out_hashes_recorded(built, images):
    wh, warm = built
    tag, image_id, _ = images
    origin = {f.name: f.origin for f in wh.files}
    assert {n: origin[n] for n in NATIVE} == {n: "built-docker" for n in NATIVE}
    assert {origin[n] for n in ("pyasn1", "pyasn1-modules", "decorator", "six")} <= {"downloaded", "reused"}
    out = wh.out_dir
    offline = (out / OFFLINE_LOCK).read_text()
    sums = dict(reversed(line.split("  ")) for line in (out / SHA256SUMS).read_text().splitlines())
    manifest = json.loads((out / MANIFEST).read_text())
    for f in wh.files:
        if f.name in NATIVE:
            real = native.sha256_file(out / f.filename)
            assert f.sha256 == real == sums[f.filename], f.filename
            assert f"{f.name}=={f.version} \\\n    --hash=sha256:{real}" in offline, "the built wheel's own hash"
            assert f.filename.endswith("-linux_x86_64.whl"), f"a local build, not a manylinux wheel: {f.filename}"
            with zipfile.ZipFile(out / f.filename) as zf:
                assert any(n.endswith(".so") for n in zf.namelist()), f"{f.filename} has no C extension"
    # The build record pins the image the wheels came from, by image ID.
    assert manifest["native_builder"]["name"] == "docker"
    assert manifest["native_builder"]["image"] == tag
    assert manifest["native_builder"]["image_id"] == image_id and image_id.startswith("sha256:")
    # Warm: nothing rebuilt, same files, same hashes.
    assert {(f.filename, f.sha256) for f in warm.files} == {(f.filename, f.sha256) for f in wh.files}


def test_wheels_install_offline_and_import_on_the_target(engine, built, images):
    """Into a venv of the target root's Python 3.11 (no compiler there), as the target installs."""
    from builder.pydeps.uv import uv_bin

    wh, _ = built
    _, _, target = images
    argv = wh.install_argv("/opt/venv/bin/python", "/wh")
    argv[0] = "/usr/local/bin/uv"
    script = " && ".join([
        "! command -v gcc",  # nothing can be compiled on this host: the wheels are what runs
        "uv venv --no-config -q --python /usr/bin/python3.11 /opt/venv",
        " ".join(argv) + " --cache-dir /tmp/uv-cache -q",
        f'/opt/venv/bin/python -c "{PROBE}"',
    ])
    t0 = time.monotonic()
    out = engine.client().containers.run(
        target, ["/bin/sh", "-ec", script], remove=True, network_mode="none", network_disabled=True,
        volumes={str(wh.out_dir): {"bind": "/wh", "mode": "ro"}, uv_bin(): {"bind": "/usr/local/bin/uv", "mode": "ro"}},
    ).decode()
    TIMINGS["offline install + imports in the target container"] = time.monotonic() - t0
    assert out.strip().splitlines()[-1] == "3.11.2 " + " ".join(IMPORTS)


def test_wheels_install_on_the_booted_hardened_target_and_import_as_a_service_user(built, tmp_path_factory):
    """On the booted stand-in (systemd, /tmp and /var/tmp noexec, no compiler): the offline,
    hash-checked install build-venv runs, under the umask it sets, its cache beside the venv
    (never in the noexec temp directories); every native module imports as an unprivileged user."""
    from builder.pydeps.uv import uv_bin
    from support.dockerengine import target_root
    from e2e.fixtures import keep_temp, scratch_dir
    from e2e.target import booted_host

    wh, _ = built
    argv = wh.install_argv("/opt/venv/bin/python", "/srv/wh")
    argv[0] = "/srv/uv/uv"
    uv_dir = tmp_path_factory.mktemp("uv")
    shutil.copy2(uv_bin(), uv_dir / "uv")
    t0 = time.monotonic()
    with booted_host(target_root(), scratch_dir("docker-wheels-target"), "wheels.e2e.test",
                     binds_ro={str(wh.out_dir): "/srv/wh", str(uv_dir): "/srv/uv"}, keep=keep_temp()) as host:
        assert "noexec" in host.run(["findmnt", "-no", "OPTIONS", "/tmp"]).stdout
        host.sh("! command -v gcc && ! command -v cc")  # the wheels are what runs: nothing compiles here
        host.sh("umask 022; mkdir -p /opt/uv-cache; /srv/uv/uv venv --no-config -q --python /usr/bin/python3.11 /opt/venv; "
                f"UV_CACHE_DIR=/opt/uv-cache {' '.join(argv)} -q; rm -rf /opt/uv-cache", umask="077")
        out = host.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
                        "/opt/venv/bin/python", "-c", PROBE], env={"HOME": "/", "TMPDIR": "/tmp"}).stdout
    TIMINGS["boot the target, offline install, imports as nobody"] = time.monotonic() - t0
    assert out.strip().splitlines()[-1] == "3.11.2 " + " ".join(IMPORTS)


def test_same_sdists_same_image_same_wheel_hashes(engine, built, images, monkeypatch):
    """Rebuilt from scratch (built-wheel cache emptied) by the same image: byte-identical wheels.

    The C-only sdists are rebuilt (the Cython ones take most of the build's minutes); the
    build script is the same for all, and what made pip's builds differ (its random build
    directory, written into the binaries' debug info) is gone for every one."""
    wh, _ = built
    tag, image_id, _ = images
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    store = BlobStore()
    sdists = {"python-ldap": "python_ldap-3.4.5.tar.gz", "pykerberos": "pykerberos-1.2.4.tar.gz",
              "thrift": "thrift-0.22.0.tar.gz"}
    lock = _lock(wh.out_dir.parent)
    todo = []
    for name, filename in sdists.items():
        sha = next(h.removeprefix("sha256:") for h in lock.pins[name].hashes)
        shutil.rmtree(native._built_cache(sha, native.docker_cache_key(image_id)))
        todo.append((store.path(sha), filename, sha))
    t0 = time.monotonic()
    again = native.build_in_docker(todo, "3.11", image=tag)
    TIMINGS["rebuild python-ldap, pykerberos, thrift from scratch"] = time.monotonic() - t0
    assert again.image_id == image_id
    first = {f.filename: f.sha256 for f in wh.files}
    for _, _, sha in todo:
        wheel = again.wheels[sha]
        assert native.sha256_file(wheel) == first[wheel.name], f"{wheel.name} differs when rebuilt"


def test_a_named_image_that_is_not_there_is_an_error_not_a_pull(engine, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    with pytest.raises(native.NativeBuildError, match=r"builder image 'localhost/no-such-builder:1' is not in the docker engine"):
        native.build_in_docker([(tmp_path / "x.tar.gz", "x-1.0.tar.gz", "0" * 64)], "3.11",
                               image="localhost/no-such-builder:1")


def test_without_builder_image_dockerfile_rhel9_is_built_from_the_dockerfile_alone(engine, images, monkeypatch):
    """The default path: Dockerfile.rhel9 built through the SDK, the Dockerfile as the whole
    context. On the Debian base (the only image here) its first `dnf install` fails without
    RHEL repositories or network, and that failure is a NativeBuildError, not a traceback."""
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    from support.dockerengine import builder_root, root_tag

    base = root_tag("airflow-prod-standin-debian12-build", builder_root())
    with pytest.raises(native.NativeBuildError, match=r"building the RHEL 9 builder image from .*Dockerfile\.rhel9 failed"):
        native.build_in_docker([(Path("/nonexistent"), "x-1.0.tar.gz", "1" * 64)], "3.11", base_image=base)


def test_dockerfile_path_is_the_checkouts_dockerfile():
    from support.dockerengine import DOCKERFILE_RHEL9

    assert native.dockerfile_path() == DOCKERFILE_RHEL9


def test_zz_report_timings():
    """Not an assertion of durations (docs/testing.md): the numbers docs/docker-builder.md quotes."""
    for what, seconds in TIMINGS.items():
        print(f"docker builder timing: {what}: {seconds:.1f} s")
