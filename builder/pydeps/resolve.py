"""Lock: resolve the site's Airflow for the target interpreter into a hashed pin list.

    site ──check_release──> Release (exists? python ok? extras ok? yanked? cutoff)
         ──choose method──> official constraints, else a date cutoff at the release
         ──backend──────────> uv pip compile | pip-compile (isolated from host config)
         ──write───────────> locks/<site>.txt  (pip-tools format, sorted, sha256 hashes)

`ensure_lock()` reuses the lock file when the inputs recorded in its header
(`input-hash`) are unchanged, so a build never re-resolves behind your back. The header
also records the backend and index (builder.pydeps.lockfile): a lock made with pip-compile or a
mirror is reused the same way by `bundle build`/`bundle wheelhouse`, or refused.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import urllib.error
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from difflib import get_close_matches
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from builder import run, target
from builder.errors import BundleError, UsageError
from builder.fsutil import write_atomic
from builder.report import Notify, emit
# The file format lives in builder.pydeps.lockfile; these names stay importable from here.
from builder.pydeps.lockfile import (  # noqa: F401
    Lock, LockedFile, LockError, Pin, parse_requirements, pinned_versions, render_pins,
)
from builder.pydeps import uv
from builder.pydeps.index import PYPI, Registry, RegistryError, RegistryUnreachable, network_env
from builder.resources import cache_dir
from builder.site.model import Site


LOCK_FORMAT = "1"
AIRFLOW = "apache-airflow"
INSTALLER = "uv"  # the target builds its venv with uv: lock it like everything else
CONSTRAINTS_URL = (
    "https://raw.githubusercontent.com/apache/airflow/"
    "constraints-{version}/constraints-{python_minor}.txt"
)
BACKENDS = ("uv", "pip-compile")
# pip-compile runs from its own venv with these pins (pip >= 26 for --uploaded-prior-to).
PIP_TOOLS_PINS = ("pip==26.3", "pip-tools==7.6.2")



# --- what to resolve ---------------------------------------------------------------


def input_hash(site: Site, backend: str, index_url: str) -> str:
    """Everything the resolve depends on that the user controls."""
    spec = {
        "format": LOCK_FORMAT,
        "version": site.airflow.version,
        "extras": sorted(site.airflow.extras),
        "providers": sorted(site.airflow.providers),
        "constraints": site.airflow.constraints,
        "python": site.target.python,
        "arch": site.target.arch,
        "os": site.target.os,
        "backend": backend,
        "index": index_url.rstrip("/"),
    }
    return "sha256:" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


@dataclass
class Release:
    """What the registry says about the site's Airflow release."""

    version: str
    requires_python: str | None
    exact_pins: dict[str, str]  # the release's own == dependencies (core, task-sdk)
    cutoff: datetime  # just after the last of those uploads
    notices: list[tuple[str, str]]


def _newest_of_series(versions: list[Version], version: str) -> Version | None:
    v = Version(version)
    series = [x for x in versions if x.release[:2] == v.release[:2] and not x.is_prerelease]
    return max(series) if series else None


def check_release(site: Site, registry: Registry) -> Release:
    """Fail early with a clear message when the site asks for something that cannot resolve."""
    version = site.airflow.version
    project = registry.project(AIRFLOW)
    files = project.release(version)
    if not files:
        known = [str(v) for v in project.versions() if not v.is_prerelease]
        close = get_close_matches(version, known, n=3, cutoff=0.6)
        raise LockError(
            f"airflow.version: {AIRFLOW} {version} does not exist on {registry.index_url}",
            hint=(f"did you mean {', '.join(close)}? " if close else "")
            + f"newest releases: {', '.join(known[-5:])}",
        )
    py = site.target.python
    unsupported = [f for f in files if not f.supports_python(py)]
    if len(unsupported) == len(files):
        spec = unsupported[0].requires_python
        raise LockError(
            f"target.python: {AIRFLOW} {version} requires Python {spec}; the site's target is {py}",
            hint="set target.python to the interpreter your RHEL 9 hosts run (RHEL 9.4: 3.11.7), "
            "or pick an Airflow release that supports it",
        )
    wheels = [f for f in files if f.is_wheel]
    if not wheels:
        raise LockError(f"{AIRFLOW} {version} has no wheel on {registry.index_url}: cannot read its metadata")
    meta = registry.metadata(wheels[0])
    provided = {canonicalize_name(e) for e in meta.get_all("Provides-Extra") or []}
    unknown = [e for e in site.airflow.extras if canonicalize_name(e) not in provided]
    if unknown:
        hints = []
        for e in unknown:
            close = get_close_matches(canonicalize_name(e), sorted(provided), n=3)
            hints.append(f"{e!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise LockError(
            f"airflow.extras: {AIRFLOW} {version} has no extra {', '.join(hints)}",
            hint=f"its {len(provided)} extras include: {', '.join(sorted(provided)[:12])}, ...",
        )
    exact: dict[str, str] = {}
    for line in meta.get_all("Requires-Dist") or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        specs = list(req.specifier)
        if req.marker is None and len(specs) == 1 and specs[0].operator == "==":
            exact[canonicalize_name(req.name)] = specs[0].version
    notices: list[tuple[str, str]] = []
    uploads = [f.upload_time for f in files if f.upload_time]
    for name, ver in sorted({AIRFLOW: version, **exact}.items()):
        proj = project if name == AIRFLOW else registry.project(name)
        uploads += [f.upload_time for f in proj.release(ver) if f.upload_time]
        reason = proj.yank_reason(ver)
        if reason is not None:
            newest = _newest_of_series(proj.versions(include_yanked=False), ver)
            better = f"; the newest release of that series is {newest}" if newest else ""
            notices.append((
                "warn",
                f"{name} {ver} is yanked on the index ({reason!r}){better}. "
                f"Proceeding because the site pins {AIRFLOW} {version}"
                + (f" (which pins {name} {ver} exactly)" if name != AIRFLOW else ""),
            ))
    for provider in site.airflow.providers:
        try:
            registry.project(Requirement(provider).name)
        except InvalidRequirement:
            raise LockError(f"airflow.providers: {provider!r} is not a requirement (name[extras][specifier])") from None
        except RegistryError as exc:
            raise LockError(f"airflow.providers: {exc.message}") from None
    if not uploads:
        raise LockError(f"{registry.index_url} gives no upload times (PEP 700) for {AIRFLOW} {version}")
    last = max(uploads)
    # Just after the last upload of the release and its exact pins (the task
    # SDK went up minutes after apache-airflow), to the next whole minute.
    cutoff = (last + timedelta(minutes=1)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return Release(version, files[0].requires_python, exact, cutoff, notices)


def requirements(site: Site, release: Release) -> list[str]:
    extras = ",".join(sorted(canonicalize_name(e) for e in site.airflow.extras))
    top = f"{AIRFLOW}[{extras}]" if extras else AIRFLOW
    reqs = [f"{top}=={site.airflow.version}"]
    # uv refuses a yanked release pulled in as a dependency (3.1.4's core): pin
    # the release's exact dependencies explicitly, which PEP 592 allows.
    reqs += [f"{name}=={ver}" for name, ver in sorted(release.exact_pins.items())]
    reqs += list(site.airflow.providers)
    if canonicalize_name(INSTALLER) not in {canonicalize_name(Requirement(r).name) for r in reqs}:
        reqs.append(INSTALLER)
    return reqs


# --- method: constraints or cutoff -----------------------------------------------------


@dataclass
class Method:
    kind: str  # "constraints" | "date-cutoff"
    description: str
    constraints_text: str | None = None
    cutoff: datetime | None = None


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def choose_method(site: Site, release: Release, registry: Registry) -> Method:
    source = site.airflow.constraints or CONSTRAINTS_URL.format(
        version=site.airflow.version, python_minor=site.target.python_minor
    )
    if "://" not in source:
        path = Path(source)
        if not path.is_file():
            raise LockError(f"airflow.constraints: {source}: no such file")
        text = path.read_text()
    else:
        try:
            text = Registry(timeout=10, retries=2).get_bytes(source).decode()
        except (RegistryUnreachable, urllib.error.URLError, OSError) as exc:
            reason = exc.message if isinstance(exc, BundleError) else f"{source}: {exc}"
            return Method(
                "date-cutoff",
                f"date-cutoff {_iso(release.cutoff)} (official constraints unreachable: {reason.splitlines()[0]})",
                cutoff=release.cutoff,
            )
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Method("constraints", f"constraints {source} (sha256 {digest}...)", constraints_text=text)


# --- backends ---------------------------------------------------------------------------


def _pip_compile_venv(python_version: str) -> Path:
    interpreter = uv.find_interpreter(python_version)
    key = hashlib.sha256(f"{interpreter}|{python_version}|{PIP_TOOLS_PINS}".encode()).hexdigest()[:12]
    venv = cache_dir() / "tools" / f"pip-tools-{python_version}-{key}"
    if not (venv / ".complete").exists():
        net = network_env()
        run.run(uv.venv_argv(interpreter, venv, clear=True), what="creating the pip-compile venv", env=net)
        run.run(uv.install_argv(str(venv / "bin" / "python"), *PIP_TOOLS_PINS, index_url=PYPI),
                what="installing pip-tools", env=net)
        (venv / ".complete").write_text("ok\n")
    return venv


def _manylinux_cap(tmp: Path, glibc: tuple[int, int]) -> Path:
    """A PEP 600 `_manylinux` module: pip then treats wheels above the target's glibc as unusable."""
    module = tmp / "cap" / "_manylinux.py"
    module.parent.mkdir()
    module.write_text(
        "def manylinux_compatible(tag_major, tag_minor, tag_arch):\n"
        f"    return (tag_major, tag_minor) <= {glibc!r}\n"
    )
    return module.parent


def resolve_uv(reqs_in: Path, out: Path, site: Site, method: Method, constraints: Path | None,
               index_url: str) -> str:
    argv = uv.compile_argv(reqs_in, out, site.target, cache=uv.shared_cache(), index_url=index_url,
                           exclude_newer=_iso(method.cutoff) if method.cutoff else None, constraint=constraints)
    run.run(argv, what="resolving with uv", env=network_env())
    return f"uv {uv.uv_version()}"


def resolve_pip_compile(reqs_in: Path, out: Path, site: Site, method: Method, constraints: Path | None,
                        index_url: str, registry: Registry) -> tuple[str, dict[str, LockedFile]]:
    """Resolve with pip-compile; hashes (and each file's URL and size) from the index."""
    venv = _pip_compile_venv(site.target.python)
    cap = _manylinux_cap(out.parent, target.glibc(site.target.os))
    pip_args: list[str] = []
    if method.cutoff:
        pip_args += ["--uploaded-prior-to", _iso(method.cutoff)]
    argv = [
        str(venv / "bin" / "pip-compile"), str(reqs_in), "--output-file", str(out),
        "--no-header", "--no-annotate", "--strip-extras", "--no-emit-index-url", "--quiet",
        "--index-url", index_url, "--cache-dir", str(cache_dir() / "pip-tools"), "--rebuild",
    ]
    if pip_args:
        argv += ["--pip-args", " ".join(pip_args)]
    if constraints:
        argv += ["--constraint", str(constraints)]
    # Hashes come from the index's Simple API rather than from pip-compile,
    # which downloads every file to hash it when the per-release JSON API is
    # missing (541 s for this set on a caching proxy).
    run.run(argv, what="resolving with pip-compile",
            env={**network_env(), "PYTHONPATH": str(cap)})
    pins = parse_requirements(out.read_text(), source="pip-compile output")
    projects = registry.projects(pins, workers=16)
    hashed: dict[str, Pin] = {}
    known: dict[str, LockedFile] = {}
    for name, pin in pins.items():
        files = [f for f in projects[name].release(pin.version)
                 if f.sha256 and (method.cutoff is None or f.upload_time is None or f.upload_time <= method.cutoff)]
        hashed[name] = Pin(name, pin.version, tuple(sorted(f"sha256:{f.sha256}" for f in files)))
        known.update((f.sha256, LockedFile(f.filename, f.url, f.sha256, f.size)) for f in files)
    out.write_text(render_pins(hashed))
    version = run.run([str(venv / "bin" / "pip-compile"), "--version"]).stdout.strip().split()[-1]
    return f"pip-compile {version}", known


# --- the engine entry point ------------------------------------------------------------


def lock_path(site: Site, locks_dir: str | Path = "locks") -> Path:
    return Path(locks_dir) / f"{site.site.name}.txt"


def _how(backend: str, index_url: str) -> str:
    return f"--backend {backend} --index-url {index_url}"


def ensure_lock(
    site: Site,
    *,
    locks_dir: str | Path = "locks",
    backend: str | None = None,
    index_url: str | None = None,
    refresh: bool = False,
    may_relock: bool = True,
    registry: Registry | None = None,
    notify: Notify = emit,
) -> Lock:
    """The site's lock: reused when its recorded inputs are unchanged, else resolved and written.

    `backend` and `index_url` left None mean "the way the existing lock was made" (its
    header records both), or uv and PyPI for a new lock. Given, they are what the caller
    asks for: a lock made otherwise is re-resolved (only with `may_relock`).

    `may_relock=False` is for callers that consume a lock (`bundle build`, `bundle
    wheelhouse`): a lock whose inputs changed is re-resolved only if it was made the
    default way (uv against PyPI) and nothing else was asked; a lock made with
    pip-compile or another index is refused with the `bundle lock` command that
    re-makes it, never silently re-resolved with different tools.
    """
    if backend is not None and backend not in BACKENDS:
        raise UsageError(f"unknown lock backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if index_url is not None:
        index_url = index_url.rstrip("/")
    path = lock_path(site, locks_dir)
    existing: Lock | None = None
    made = ("uv", PYPI.rstrip("/"))  # how a new lock is made unless asked otherwise
    if path.exists():
        try:
            existing = Lock.read(path)
            made = (existing.backend, existing.index)
        except LockError as exc:
            if not may_relock:
                raise LockError(f"{exc.message}; `bundle build`/`bundle wheelhouse` do not overwrite it",
                                hint="re-make it: bundle lock --site <file> --refresh") from None
            existing = None
    want = (backend or made[0], index_url or made[1])
    wanted = input_hash(site, *want)
    if existing is not None and not refresh and existing.input_hash == wanted:
        existing = replace(existing, reused=True)
        notify("info", f"{path}: inputs unchanged ({len(existing.pins)} pins), reusing it "
                       f"(made with {made[0]} against {made[1]})")
        return existing
    if existing is not None and not may_relock:
        default = (made == ("uv", PYPI.rstrip("/")) and want == made)
        if not default:
            what = (f"it was made with {_how(*made)}, this build asks for {_how(*want)}" if want != made
                    else f"the site's inputs changed since it was made with {_how(*made)}")
            raise LockError(
                f"{path}: {what}; not re-resolving it behind your back",
                hint=f"re-lock it explicitly: bundle lock --site <file> --locks-dir {path.parent} {_how(*want)}",
            )
        notify("warn", f"{path}: the site's inputs changed since it was locked; re-resolving "
                       f"with {_how(*made)}, as it was made")
    registry = registry or Registry(want[1])
    if registry.index_url != want[1]:
        raise UsageError(f"internal: registry {registry.index_url} is not the lock's index {want[1]}")
    return resolve(site, path, backend=want[0], registry=registry, input_hash=wanted, notify=notify)


def resolve(site: Site, path: Path, *, backend: str, registry: Registry, input_hash: str,
            notify: Notify = emit) -> Lock:
    notices: list[tuple[str, str]] = []

    def say(level: str, message: str) -> None:
        notices.append((level, message))
        notify(level, message)

    started = time.monotonic()
    release = check_release(site, registry)
    for level, message in release.notices:
        say(level, message)
    method = choose_method(site, release, registry)
    if method.kind == "date-cutoff":
        say("warn", f"resolving with a {method.description}")
    else:
        say("info", f"resolving against {method.description}")
    reqs = requirements(site, release)
    with tempfile.TemporaryDirectory(prefix="bundle-lock-") as tmp:
        tmpdir = Path(tmp)
        reqs_in = tmpdir / "requirements.in"
        reqs_in.write_text("\n".join(reqs) + "\n")
        constraints = None
        if method.constraints_text is not None:
            constraints = tmpdir / "constraints.txt"
            constraints.write_text(method.constraints_text)
        out = tmpdir / "requirements.txt"
        known: dict[str, LockedFile] = {}  # uv's output names no URLs: the wheelhouse asks the index
        if backend == "uv":
            tool = resolve_uv(reqs_in, out, site, method, constraints, registry.index_url)
        else:
            tool, known = resolve_pip_compile(reqs_in, out, site, method, constraints, registry.index_url, registry)
        pins = parse_requirements(out.read_text(), source=f"{backend} output")
    missing = [p.name for p in pins.values() if not p.hashes]
    if missing:
        raise LockError(f"the resolver gave no hashes for {', '.join(missing)}")
    header = {
        "airflow": site.airflow.version,
        "requirements": "; ".join(reqs),
        "target": f"python {site.target.python}, {site.target.arch}, {site.target.os} ({target.manylinux(site.target)})",
        "method": method.description,
        **({"cutoff": _iso(method.cutoff)} if method.cutoff else {}),
        "backend": tool,
        "index": registry.index_url,
        "date": _iso(datetime.now(timezone.utc)),
        "packages": str(len(pins)),
        "input-hash": input_hash,
        "format": LOCK_FORMAT,
    }
    lock = Lock(path, pins, header, files=known, notices=tuple(notices))
    if path.exists():
        try:
            old = Lock.read(path)
        except LockError:
            old = None
        if old and old.body_hash == lock.body_hash and {k: v for k, v in old.header.items() if k != "date"} \
                == {k: v for k, v in header.items() if k != "date"}:
            notify("info", f"{path}: same pins as before, left unchanged")
            return replace(old, files=known, notices=tuple(notices))
    write_atomic(path, render_lock(site, lock))
    notify("info", f"{path}: {len(pins)} packages locked in {time.monotonic() - started:.1f} s ({tool})")
    return lock


def render_lock(site: Site, lock: Lock) -> str:
    head = [
        f"# Lock for site {site.site.name!r}: {AIRFLOW} {site.airflow.version} for the target interpreter.",
        "# Written by `bundle lock`; do not edit. Re-resolve: bundle lock --site <file> --refresh",
        "# Install: uv pip install --require-hashes -r <this file>  (or pip install --require-hashes)",
        "#",
    ]
    head += [f"# {key}: {value}" for key, value in lock.header.items()]
    return "\n".join(head) + "\n\n" + render_pins(lock.pins)
