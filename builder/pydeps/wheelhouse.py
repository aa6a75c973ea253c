"""Wheelhouse: exactly the locked files for the target, verified, plus an offline lock.

    Lock ──select──> one file per pin for the target's tags (cached per lock)
         ──fetch───> content-addressed cache (blobs.BlobStore), parallel, resumable
         ──sdists──> pure ones built here; native ones by docker | host | target (native.py)
         ──place───> out_dir: hard links to the cache, stale files removed
         ──write───> requirements.lock, SHA256SUMS, manifest.json (manifest.py) (+ build-requirements.txt)

The offline lock holds the hash of every file actually in the wheelhouse (the
built wheels' own hashes, the sdists' for compile-on-target, or their derived
sdists' when Cython already ran here), so the target installs with hashes
required and no index. builder.check.wheelhouse proves that it installs.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename

from builder import run, target
from builder.pydeps import cythonized, manifest, native, uv
from builder.pydeps.manifest import MANIFEST, OFFLINE_LOCK, Wheelhouse, WheelhouseFile
from builder.pydeps.blobs import BlobStore, Progress, Wanted
from builder.errors import BundleError
from builder.fsutil import link_or_copy, sha256_file, write_atomic
from builder.report import Notify, emit
from builder.pydeps.index import DistFile, Registry, network_env
from builder.pydeps.lockfile import Lock, LockedFile, Pin, parse_requirements, render_pins
from builder.resources import cache_dir
from builder.site.model import Site


BUILD_REQUIREMENTS = "build-requirements.txt"
SHA256SUMS = "SHA256SUMS"
MANAGED_SUFFIXES = (".whl", ".tar.gz", ".zip")
SELECTION_FORMAT = "1"


class WheelhouseError(BundleError):
    pass


@dataclass(frozen=True)
class Artifact:
    name: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int | None

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    def wanted(self) -> Wanted:
        return Wanted(f"{self.name}=={self.version}", self.filename, self.url, self.sha256, self.size)


# --- which file of each pin -----------------------------------------------------------------


def _select_one(pin: Pin, files, rank: dict[Tag, int], site: Site) -> Artifact:
    locked = {h.removeprefix("sha256:") for h in pin.hashes}
    candidates = [f for f in files if f.sha256 in locked]
    best, best_rank = None, None
    for f in candidates:
        if f.is_wheel:
            r = min((rank[t] for t in f.tags if t in rank), default=None)
            if r is not None and (best_rank is None or r < best_rank):
                best, best_rank = f, r
    if best is None:
        sdists = sorted((f for f in candidates if f.is_sdist), key=lambda f: not f.filename.endswith(".tar.gz"))
        best = sdists[0] if sdists else None
    if best is None:
        raise WheelhouseError(
            f"{pin.name}=={pin.version}: none of its {len(candidates)} locked files fits the target "
            f"(python {site.target.python}, {site.target.arch}, manylinux up to glibc "
            f"{'.'.join(map(str, target.glibc(site.target.os)))}) and it has no sdist",
            hint="pin another version of it in the site's providers, or re-lock",
        )
    return Artifact(pin.name, pin.version, best.filename, best.url, best.sha256, best.size)


def _locked_files(pin: Pin, known: Mapping[str, LockedFile]) -> list[DistFile] | None:
    """The pin's locked files as the lock already describes them, or None if any is unknown."""
    found = [known.get(h.removeprefix("sha256:")) for h in pin.hashes]
    if not found or None in found:
        return None
    return [DistFile(pin.name, f.filename, f.url, f.sha256, f.size, None, None, None) for f in found if f]


def select_artifacts(pins: dict[str, Pin], site: Site, registry: Registry,
                     known: Mapping[str, LockedFile] | None = None) -> list[Artifact]:
    """One file per pin (cached by the pins' hash and the target's tags). The index is asked
    only about pins whose files (URL, size) the lock does not already carry in `known`."""
    tags = target.wheel_tags(site.target)
    key = hashlib.sha256(
        (SELECTION_FORMAT + render_pins(pins) + registry.index_url + "|".join(map(str, tags))).encode()
    ).hexdigest()
    cache = cache_dir() / "selections" / f"{key}.json"
    if cache.exists():
        try:
            return [Artifact(**a) for a in json.loads(cache.read_text())]
        except (ValueError, TypeError):
            cache.unlink(missing_ok=True)
    rank = {t: i for i, t in enumerate(tags)}
    locked = {name: _locked_files(pin, known or {}) for name, pin in pins.items()}
    asked = {name: pin for name, pin in pins.items() if locked[name] is None}
    projects = registry.projects(asked, workers=16) if asked else {}
    arts = [_select_one(pin, locked[name] or projects[name].release(pin.version), rank, site)
            for name, pin in sorted(pins.items())]
    write_atomic(cache, json.dumps([asdict(a) for a in arts], indent=1))
    return arts


# --- sdists ------------------------------------------------------------------------------------------


def _resolve_build_requirements(requires: list[str], site: Site, lock: Lock, index_url: str) -> dict[str, Pin]:
    """Pin and hash one sdist's build requirements for the target (same cutoff as the lock).

    Each sdist is resolved on its own: their pins conflict (gssapi 1.10 wants
    Cython==3.1.3, krb5 0.9 cython==3.2.1), and on the target each build gets
    its own isolated environment from the wheelhouse anyway.
    """
    key = hashlib.sha256(json.dumps([sorted(requires), site.target.python, lock.method, index_url]).encode())
    cache = cache_dir() / "selections" / f"build-{key.hexdigest()}.txt"
    if cache.exists():
        return parse_requirements(cache.read_text(), source=str(cache))
    with tempfile.TemporaryDirectory(prefix="bundle-buildreqs-") as tmp:
        reqs_in, out = Path(tmp, "build.in"), Path(tmp, "build.txt")
        reqs_in.write_text("\n".join(sorted(set(requires))) + "\n")
        argv = uv.compile_argv(reqs_in, out, site.target, cache=uv.shared_cache(), index_url=index_url,
                               exclude_newer=lock.cutoff)
        run.run(argv, what="resolving build requirements of the compile-on-target sdists", env=network_env())
        text = out.read_text()
    write_atomic(cache, text)
    return parse_requirements(text, source="build requirements")


# --- the engine entry point ----------------------------------------------------------------------


@dataclass
class _Gathered:
    """What goes into the wheelhouse, as the build collects it."""

    files: dict[str, tuple[Artifact | None, Path, str]] = field(default_factory=dict)  # name -> (artifact, path, origin)
    built: list[str] = field(default_factory=list)           # wheel names built here
    choice: native.BuilderChoice | None = None
    target_sdists: list[str] = field(default_factory=list)   # sdists shipped to compile on the target
    build_pkgs: list[str] = field(default_factory=list)      # RHEL packages compiling them needs
    cythonized: dict[str, dict[str, object]] = field(default_factory=dict)  # sdist filename -> its derivation

    def add_built(self, name: str, wheel: Path, origin: str) -> None:
        self.files[name] = (None, wheel, origin)
        self.built.append(wheel.name)


def build_wheelhouse(
    site: Site,
    lock: Lock,
    out_dir: str | Path = "wheelhouse",
    *,
    registry: Registry | None = None,
    progress: Progress | None = None,
    notify: Notify = emit,
    workers: int = 6,
) -> Wheelhouse:
    started = time.monotonic()
    out = Path(out_dir)
    registry = registry or Registry(lock.header.get("index") or "https://pypi.org/simple")
    store = BlobStore()
    arts = select_artifacts(lock.pins, site, registry, lock.files)
    status = store.fetch_all([a.wanted() for a in arts], registry, progress, notify, workers)

    got = _Gathered()
    native_sdists: list[Artifact] = []
    for a in arts:
        blob = store.path(a.sha256)
        if a.is_wheel:
            got.files[a.name] = (a, blob, "reused" if status[a.sha256] == "reused" else "downloaded")
        elif a.name in native.NATIVE_BUILD_PACKAGES:
            native_sdists.append(a)
        else:
            # Unknown sdist: build it here; a pure wheel ships, anything else is native.
            wheel = native.build_on_host(blob, a.filename, a.sha256, registry.index_url)
            if native.is_pure(wheel):
                got.add_built(a.name, wheel, "built-host")
            else:
                native_sdists.append(a)
    if native_sdists:
        choice = got.choice = native.choose_builder(site.target.native_builder, site.target.os)
        notify("info", f"native sdists ({', '.join(a.name for a in native_sdists)}): {choice.name} — {choice.reason}")
        if choice.name == "docker":
            _build_in_docker(native_sdists, site, store, got, choice)
        elif choice.name == "host":
            for a in native_sdists:
                wheel = native.build_on_host(store.path(a.sha256), a.filename, a.sha256, registry.index_url)
                got.add_built(a.name, wheel, "built-host")
        else:
            status.update(_ship_for_target(native_sdists, site, lock, registry, store, got,
                                           progress=progress, notify=notify, workers=workers))

    wh = _place(out, site, lock, got)
    wh.downloaded = sorted(a.filename for a in arts if status.get(a.sha256) in ("downloaded", "resumed"))
    wh.reused = sorted(a.filename for a in arts if status.get(a.sha256) == "reused")
    wh.built = sorted(got.built)
    wh.seconds = time.monotonic() - started
    return wh


def _build_in_docker(sdists: list[Artifact], site: Site, store: BlobStore, got: _Gathered,
                     choice: native.BuilderChoice) -> None:
    build = native.build_in_docker([(store.path(a.sha256), a.filename, a.sha256) for a in sdists],
                                   site.target.python_minor, image=site.target.builder_image)
    # The build record (manifest.json) pins the image the wheels came from, by image ID.
    got.choice = replace(choice, image=build.image, image_id=build.image_id)
    for a in sdists:
        got.add_built(a.name, build.wheels[a.sha256], "built-docker")


def _ship_for_target(sdists: list[Artifact], site: Site, lock: Lock, registry: Registry, store: BlobStore,
                     got: _Gathered, *, progress: Progress | None, notify: Notify, workers: int) -> dict[str, str]:
    """The sdists ship with their build requirements pinned, hashed and fetched, Cython's
    part already done where a recipe knows how (cythonized.py); returns the fetch status of
    those build requirements."""
    build_pins: dict[str, Pin] = {}
    for a in sdists:
        blob = store.path(a.sha256)
        pins = _resolve_build_requirements(native.build_requires(blob, a.filename), site, lock, registry.index_url)
        for pin in pins.values():
            build_pins[f"{pin.name}=={pin.version}"] = pin
        derived = cythonized.derive(blob, a.name, a.filename, a.sha256, pins, registry.index_url, notify)
        if derived:
            a = replace(a, sha256=derived.sha256, size=derived.path.stat().st_size, url="")
            blob = derived.path
            got.cythonized[a.filename] = derived.record()
        got.files[a.name] = (a, blob, "sdist-for-target")
        got.target_sdists.append(a.filename)
    got.build_pkgs = native.target_build_packages([a.name for a in sdists], site.target.python_minor)
    build_arts = [select_artifacts({p.name: p}, site, registry)[0] for _, p in sorted(build_pins.items())]
    status = store.fetch_all([b.wanted() for b in build_arts], registry, progress, notify, workers)
    for b in build_arts:
        got.files.setdefault(f"build:{b.name}=={b.version}", (b, store.path(b.sha256), "build-requirement"))
    return status


def _place(out: Path, site: Site, lock: Lock, got: _Gathered) -> Wheelhouse:
    out.mkdir(parents=True, exist_ok=True)
    entries: list[WheelhouseFile] = []
    offline: dict[str, Pin] = {}
    build: list[str] = []
    placed: set[str] = set()
    for key, (art, path, origin) in sorted(got.files.items()):
        filename = art.filename if art else path.name
        sha = art.sha256 if art else sha256_file(path)
        if art:
            name, version = art.name, art.version
        else:
            dist, ver, _, _ = parse_wheel_filename(path.name)
            name, version = canonicalize_name(dist), str(ver)
        pin = Pin(name, version, (f"sha256:{sha}",))
        if filename not in placed:  # a build requirement may also be a runtime pin
            placed.add(filename)
            link_or_copy(path, out / filename)
            entries.append(WheelhouseFile(name, version, filename, sha, path.stat().st_size, origin))
        if key.startswith("build:"):
            build.append(f"{name}=={version} --hash=sha256:{sha}")
        else:
            offline[name] = pin
    keep = {e.filename for e in entries}
    for stale in out.iterdir():
        if stale.is_file() and stale.name.endswith(MANAGED_SUFFIXES) and stale.name not in keep:
            stale.unlink()
    missing = sorted(set(lock.pins) - set(offline))
    if missing:
        raise WheelhouseError(f"internal: no wheelhouse file for {', '.join(missing)}")
    head = (
        f"# Offline lock of the wheelhouse for site {site.site.name!r} "
        f"(apache-airflow {site.airflow.version}, python {site.target.python}, {site.target.arch}).\n"
        f"# From {lock.path} ({lock.method}).\n"
        "# Every hash is of a file in this directory; install with --require-hashes and no index.\n\n"
    )
    offline_lock = write_atomic(out / OFFLINE_LOCK, head + render_pins(offline))
    build_reqs = None
    if build:
        # A record, not an install input: versions may repeat (each sdist's
        # build is isolated), so it is not one installable requirements set.
        build_reqs = write_atomic(
            out / BUILD_REQUIREMENTS,
            "# Build requirements of the sdists compiled on the target (each build picks its own\n"
            "# from this directory, offline). Verified with SHA256SUMS.\n\n" + "\n".join(sorted(build)) + "\n",
        )
    else:
        (out / BUILD_REQUIREMENTS).unlink(missing_ok=True)
    # Every shipped file, build requirements included: `sha256sum -c SHA256SUMS`.
    sums = "".join(f"{e.sha256}  {e.filename}\n" for e in sorted(entries, key=lambda e: e.filename))
    write_atomic(out / SHA256SUMS, sums)
    wh = Wheelhouse(out, entries, offline_lock, build_reqs, out / MANIFEST, got.choice,
                    target_sdists=sorted(got.target_sdists), target_build_packages=got.build_pkgs,
                    cythonized=sorted(got.cythonized))
    manifest.write(wh, site, lock, got.cythonized)
    return wh
