"""Wheels for packages the index ships only as sdists.

Pure-Python sdists become `py3-none-any` wheels on any host. Native ones must
be compiled against the target's own libraries (a python-ldap wheel built on
Debian links libldap-2.5 and does not import on RHEL 9's OpenLDAP 2.6), so
they are built one of three ways, chosen by `site.target.native_builder`:

- docker: in Dockerfile.rhel9 (a RHEL 9-compatible image) through the docker SDK;
- host:   on this build host, only when it is the target's OS family;
- target: not built here; the sdists ship hash-locked with their build
          requirements and are compiled on the target while the venv is built.

`auto` picks docker, else host, else target, and says why.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from builder import report, run
from builder.fsutil import link_or_copy, sha256_file
from builder.errors import BundleError
from builder.pydeps import uv
from builder.pydeps.index import PYPI, network_env
from builder.resources import cache_dir


# Known native sdists and the RHEL 9 packages that compile them ({py} = python3.11).
NATIVE_BUILD_PACKAGES: dict[str, tuple[str, ...]] = {
    "python-ldap": ("gcc", "{py}-devel", "openldap-devel", "cyrus-sasl-devel"),
    "pykerberos": ("gcc", "{py}-devel", "krb5-devel"),
    "gssapi": ("gcc", "{py}-devel", "krb5-devel"),
    "krb5": ("gcc", "{py}-devel", "krb5-devel"),
    "thrift": ("gcc-c++", "{py}-devel"),
}
DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")
# Fixed timestamps inside built wheels: same sdist, same builder -> same bytes.
SOURCE_DATE_EPOCH = "315532800"
# One compile policy wherever a native sdist is built (here, Dockerfile.rhel9's build-wheels,
# build-venv on the target): Python's own CFLAGS (-O2, -fwrapv, the hardening flags) plus -g0,
# so no debug info (PyPI's wheels carry none; with it gcc took 3x as long on Cython's C), and
# setuptools compiling a package's extensions on every CPU (docs/hardened-hosts.md).
# build-venv is rendered from these; Dockerfile.rhel9 cannot import them, so
# tests/test_compile_policy.py checks that it says the same.
COMPILE_ENV = {"CFLAGS": "-g0", "CXXFLAGS": "-g0"}
HOST_CACHE_KEY = "host-g0"  # built wheels cached under the policy that made them
DOCKERFILE = "Dockerfile.rhel9"
DEFAULT_BASE_IMAGE = "docker.io/rockylinux/rockylinux:9"


class NativeBuildError(BundleError):
    pass


def parallel_config(cpus: int | str) -> str:
    """The setuptools file DIST_EXTRA_CONFIG names: build_ext on `cpus` CPUs."""
    return f"[build_ext]\nparallel = {cpus}\n"


# The same text as a printf(1) format of the CPU count, for build-venv's sh.
PARALLEL_CONFIG_PRINTF = parallel_config("%s").replace("\n", r"\n")


@dataclass(frozen=True)
class BuilderChoice:
    name: str  # "docker" | "host" | "target"
    reason: str
    image: str | None = None     # docker: the builder image (name or tag) ...
    image_id: str | None = None  # ... and its image ID, recorded in the wheelhouse manifest


def host_os_family() -> str | None:
    """'el9', 'debian12', ... from /etc/os-release, or None."""
    info: dict[str, str] = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            info[key] = value.strip().strip('"')
    except OSError:
        return None
    ids = {info.get("ID", "")} | set(info.get("ID_LIKE", "").split())
    major = info.get("VERSION_ID", "").split(".")[0]
    if ids & {"rhel", "centos", "fedora", "rocky", "almalinux", "ol"} and major:
        return f"el{major}"
    if info.get("ID") == "debian" and major:
        return f"debian{major}"
    return None


def docker_status() -> tuple[bool, str]:
    """(usable, why) for the docker engine behind the docker SDK."""
    try:
        import docker  # noqa: PLC0415 - optional at runtime
    except ImportError:
        return False, "the docker SDK is not installed (pip install 'airflow-prod-bundle[docker]')"
    host = os.environ.get("DOCKER_HOST")
    if not host and not Path("/var/run/docker.sock").exists():
        return False, "no docker engine (DOCKER_HOST is unset and there is no /var/run/docker.sock)"
    try:
        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return False, f"no docker engine reachable ({first[:120]})"
    return True, "a docker engine is reachable"


def choose_builder(wanted: str, target_os: str) -> BuilderChoice:
    family = host_os_family()
    if wanted == "docker":
        ok, why = docker_status()
        if not ok:
            raise NativeBuildError(
                f"target.native_builder = 'docker' but {why}",
                hint="start a docker engine, or set native_builder to 'auto' or 'target'",
            )
        return BuilderChoice("docker", f"the site asks for docker; {why}")
    if wanted == "host":
        if family != target_os:
            raise NativeBuildError(
                f"target.native_builder = 'host' but this build host is {family or 'unknown'}, "
                f"not the target's OS family {target_os}: its native wheels would not fit the target",
                hint="set native_builder to 'auto', 'docker' or 'target'",
            )
        return BuilderChoice("host", f"the site asks for host; this host is {family} like the target")
    if wanted == "target":
        return BuilderChoice("target", "the site asks to compile native sdists on the target")
    ok, why = docker_status()
    if ok:
        return BuilderChoice("docker", f"auto: {why}")
    if family == target_os:
        return BuilderChoice("host", f"auto: {why}; this host is {family}, the target's OS family")
    return BuilderChoice(
        "target",
        f"auto: {why}; this host is {family or 'an unknown OS'}, not {target_os}, so native sdists "
        "ship as sources and compile on the target",
    )


def target_build_packages(names: list[str], python_minor: str) -> list[str]:
    py = f"python{python_minor}"
    pkgs: set[str] = set()
    for name in names:
        for p in NATIVE_BUILD_PACKAGES.get(canonicalize_name(name), ("gcc", "{py}-devel")):
            pkgs.add(p.format(py=py))
    return sorted(pkgs)


def sdist_file(sdist: Path, filename: str, name: str) -> bytes | None:
    """The bytes of `name` (e.g. pyproject.toml) in the sdist's top directory, or None."""
    if filename.endswith(".zip"):
        with zipfile.ZipFile(sdist) as zf:
            names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/" + name)]
            return zf.read(names[0]) if names else None
    with tarfile.open(sdist) as tf:
        for member in tf:
            if member.name.count("/") == 1 and member.name.endswith("/" + name):
                fh = tf.extractfile(member)
                return fh.read() if fh else None
    return None


def build_requires(sdist: Path, filename: str) -> list[str]:
    """[build-system] requires of an sdist (PEP 518), else setuptools + wheel."""
    data = sdist_file(sdist, filename, "pyproject.toml")
    if data:
        reqs = tomllib.loads(data.decode()).get("build-system", {}).get("requires")
        if reqs is not None:
            # setuptools' legacy hook asks for wheel too; ship it either way.
            return sorted(set(reqs) | {"wheel"})
    return list(DEFAULT_BUILD_REQUIRES)


def is_pure(wheel: Path) -> bool:
    tags = parse_wheel_filename(wheel.name)[3]
    return all(t.abi == "none" and t.platform == "any" for t in tags)


def _built_cache(sdist_sha256: str, builder: str) -> Path:
    return cache_dir() / "built" / sdist_sha256[:2] / f"{sdist_sha256}-{builder}"


def cached_wheel(sdist_sha256: str, builder: str) -> Path | None:
    """The wheel built earlier from this sdist, if it still has the hash it was built with."""
    d = _built_cache(sdist_sha256, builder)
    stamp = d / ".complete"
    wheels = sorted(d.glob("*.whl")) if stamp.exists() else []
    if len(wheels) == 1 and sha256_file(wheels[0]) == stamp.read_text().strip():
        return wheels[0]
    if d.exists():
        report.warn(f"built wheel cache {d} is incomplete or corrupted: rebuilding")
        shutil.rmtree(d, ignore_errors=True)
    return None


def build_on_host(sdist: Path, filename: str, sdist_sha256: str, index_url: str = PYPI) -> Path:
    """Build `sdist` (a cache blob, real name `filename`) into a wheel here; cached per sdist hash.

    Its build requirements come from `index_url` (the lock's index: a mirror-only host has
    no other), through uv's cache inside ours."""
    hit = cached_wheel(sdist_sha256, HOST_CACHE_KEY)
    if hit:
        return hit
    dest = _built_cache(sdist_sha256, HOST_CACHE_KEY)
    with tempfile.TemporaryDirectory(prefix="bundle-build-", dir=cache_dir()) as tmp:
        parallel = Path(tmp, "setuptools.cfg")
        parallel.write_text(parallel_config(os.cpu_count() or 1))
        named = Path(tmp, "src", filename)
        named.parent.mkdir()
        link_or_copy(sdist, named)
        wheels_dir = Path(tmp, "out")
        run.run(
            uv.build_argv(named, wheels_dir, index_url=index_url),
            what=f"building a wheel from {filename}",
            env={**network_env(), **COMPILE_ENV, "DIST_EXTRA_CONFIG": str(parallel),
                 "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
            tail_lines=30,
        )
        wheels = sorted(wheels_dir.glob("*.whl"))
        if len(wheels) != 1:
            raise NativeBuildError(f"building {filename} gave {len(wheels)} wheels, expected one")
        _commit_built(wheels[0], dest)
    return next(dest.glob("*.whl"))


def _commit_built(wheel: Path, dest: Path) -> None:
    staging = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(wheel, staging / wheel.name)
    (staging / ".complete").write_text(sha256_file(staging / wheel.name) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(staging, dest)


def dockerfile_path() -> Path:
    """builder/_data/Dockerfile.rhel9 in a wheel, the repository's top-level one in a checkout."""
    package = Path(__file__).resolve().parent.parent  # builder/ (this module is builder/pydeps/native.py)
    for candidate in (package / "_data" / DOCKERFILE, package.parent / DOCKERFILE):
        if candidate.is_file():
            return candidate
    raise NativeBuildError(f"{DOCKERFILE} not found next to the builder package")


@dataclass(frozen=True)
class DockerBuild:
    """What build_in_docker made: sdist sha256 -> wheel, and the image that built them."""

    wheels: dict[str, Path]
    image: str      # the site's builder_image, or the tag of the image built from Dockerfile.rhel9
    image_id: str   # "sha256:...": the image's ID (digest of its config), pinned in the build record


def docker_cache_key(image_id: str) -> str:
    """Built-wheel cache name per builder image: a wheel is reused only from the same image."""
    return f"docker-{image_id.removeprefix('sha256:')[:16]}"


def _builder_image(client, python_minor: str, image: str | None, base_image: str | None) -> tuple[str, str]:
    """(name, image ID) of the builder: the site's prepared image as is (never pulled, never
    built), else the image of Dockerfile.rhel9, built once per (Dockerfile, base, python)."""
    import docker  # noqa: PLC0415

    if image:
        try:
            return image, client.images.get(image).id
        except docker.errors.ImageNotFound:
            raise NativeBuildError(
                f"target.builder_image: builder image {image!r} is not in the docker engine",
                hint="load it first (docker load -i <file>, or build it from Dockerfile.rhel9 on a host "
                     "that reaches RHEL or Rocky repositories); it is never pulled",
            ) from None
    dockerfile = dockerfile_path()
    base = base_image or os.environ.get("AIRFLOW_PROD_BASE_IMAGE", DEFAULT_BASE_IMAGE)
    key = hashlib.sha256(dockerfile.read_bytes() + base.encode() + python_minor.encode()).hexdigest()[:12]
    tag = f"airflow-prod-wheel-builder:{key}"
    try:
        return tag, client.images.get(tag).id
    except docker.errors.ImageNotFound:
        report.debug(f"building {tag} from {dockerfile} (base {base})")
    try:
        # The Dockerfile alone is the build context (it copies nothing in): never the directory
        # around it, which is the whole checkout when run from the source tree.
        with open(dockerfile, "rb") as fh:
            built, _ = client.images.build(
                fileobj=fh, tag=tag, rm=True, forcerm=True,
                buildargs={"BASE_IMAGE": base, "PYTHON": f"python{python_minor}"},
            )
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        raise NativeBuildError(f"building the RHEL 9 builder image from {dockerfile} failed: {exc}") from None
    return tag, built.id


def build_in_docker(sdists: list[tuple[Path, str, str]], python_minor: str,
                    base_image: str | None = None, image: str | None = None) -> DockerBuild:
    """Build native sdists (blob, filename, sha256) in the builder image, without network.

    `image` is a prepared builder image (site.target.builder_image); without it the image of
    Dockerfile.rhel9 is built. Wheels are cached per sdist hash and builder image ID."""
    import docker  # noqa: PLC0415

    client = docker.from_env()
    name, image_id = _builder_image(client, python_minor, image, base_image)
    cache_key = docker_cache_key(image_id)
    out: dict[str, Path] = {}
    todo = []
    for sdist, filename, sha in sdists:
        hit = cached_wheel(sha, cache_key)
        if hit:
            out[sha] = hit
        else:
            todo.append((sdist, filename, sha))
    if not todo:
        return DockerBuild(out, name, image_id)
    with tempfile.TemporaryDirectory(prefix="bundle-docker-", dir=cache_dir()) as tmp:
        indir, outdir = Path(tmp, "in"), Path(tmp, "out")
        indir.mkdir()
        outdir.mkdir()
        for sdist, filename, _ in todo:
            shutil.copy2(sdist, indir / filename)
        try:
            client.containers.run(
                image_id, ["build-wheels", "/in", "/out"], remove=True,
                network_mode="none", network_disabled=True,
                environment={"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
                volumes={str(indir): {"bind": "/in", "mode": "ro"}, str(outdir): {"bind": "/out", "mode": "rw"}},
            )
        except docker.errors.ContainerError as exc:
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
            raise NativeBuildError(f"building native wheels in {name} ({image_id}) failed:\n"
                                   f"{(stderr or str(exc))[-4000:]}") from None
        for _, filename, sha in todo:
            stem = canonicalize_name(filename.rsplit("-", 1)[0])
            wheels = [w for w in outdir.glob("*.whl")
                      if canonicalize_name(parse_wheel_filename(w.name)[0]) == stem]
            if len(wheels) != 1:
                raise NativeBuildError(f"the builder image {name} produced no wheel for {filename}")
            dest = _built_cache(sha, cache_key)
            _commit_built(wheels[0], dest)
            out[sha] = next(dest.glob("*.whl"))
    return DockerBuild(out, name, image_id)
