"""Lock: resolve the site's Airflow for the target interpreter into a hashed pin list.

    site ──check_release──> Release (exists? python ok? extras ok? yanked? cutoff)      release.py
         ──choose method──> official constraints, else a date cutoff at the release     method.py
         ──backend────────> uv pip compile | pip-compile (isolated from host config)    backends.py
         ──write──────────> locks/<site>.txt (pip-tools format, sorted, sha256 hashes)  here

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
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from packaging.utils import canonicalize_name

from builder import target
from builder.errors import ToolError, UsageError
from builder.fsutil import write_atomic
from builder.report import Notify, emit
# The file format lives in builder.pydeps.lockfile; these names stay importable from here.
from builder.pydeps.lockfile import (  # noqa: F401
    Lock, LockedFile, LockError, Pin, iso, parse_requirements, pinned_versions, render_overrides, render_pins,
)
from builder.pydeps import overrides
from builder.pydeps.backends import BACKENDS, resolve_pip_compile, resolve_uv
from builder.pydeps.index import PYPI, Registry
from builder.pydeps.method import Method, choose_method
from builder.pydeps.release import AIRFLOW, Release, check_release, requirements
from builder.site.model import Site


LOCK_FORMAT = "1"
_DEFAULT_WAY = ("uv", PYPI.rstrip("/"))  # how a new lock is made unless asked otherwise


def input_hash(site: Site, backend: str, index_url: str) -> str:
    """Everything the resolve depends on that the user controls."""
    spec: dict[str, object] = {
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
    if site.airflow.overrides:  # only then: the hash of a site without overrides stays what it was
        spec["overrides"] = sorted((canonicalize_name(name), o.version, sorted(o.reason))
                                   for name, o in site.airflow.overrides.items())
    return "sha256:" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


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
    existing, made = _existing(path, may_relock)
    want = (backend or made[0], index_url or made[1])
    wanted = input_hash(site, *want)
    if existing is not None and not refresh and existing.input_hash == wanted:
        existing = replace(existing, reused=True)
        notify("info", f"{path}: inputs unchanged ({len(existing.pins)} pins), reusing it "
                       f"(made with {made[0]} against {made[1]})")
        return existing
    if existing is not None and not may_relock:
        _check_relock(path, made, want, notify)
    registry = registry or Registry(want[1])
    if registry.index_url != want[1]:
        raise UsageError(f"internal: registry {registry.index_url} is not the lock's index {want[1]}")
    return resolve(site, path, backend=want[0], registry=registry, input_hash=wanted, notify=notify)


def _existing(path: Path, may_relock: bool) -> tuple[Lock | None, tuple[str, str]]:
    """The lock at `path` and how it was made (backend, index); else None and the default way."""
    if path.exists():
        try:
            existing = Lock.read(path)
            return existing, (existing.backend, existing.index)
        except LockError as exc:
            if not may_relock:
                raise LockError(f"{exc.message}; `bundle build`/`bundle wheelhouse` do not overwrite it",
                                hint="re-make it: bundle lock --site <file> --refresh") from None
    return None, _DEFAULT_WAY


def _check_relock(path: Path, made: tuple[str, str], want: tuple[str, str], notify: Notify) -> None:
    """A consumer of the lock re-resolves it only if it was made the default way and is asked nothing else."""
    default = (made == _DEFAULT_WAY and want == made)
    if not default:
        what = (f"it was made with {_how(*made)}, this build asks for {_how(*want)}" if want != made
                else f"the site's inputs changed since it was made with {_how(*made)}")
        raise LockError(
            f"{path}: {what}; not re-resolving it behind your back",
            hint=f"re-lock it explicitly: bundle lock --site <file> --locks-dir {path.parent} {_how(*want)}",
        )
    notify("warn", f"{path}: the site's inputs changed since it was locked; re-resolving "
                   f"with {_how(*made)}, as it was made")


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
    planned: tuple[overrides.Planned, ...] = ()
    if site.airflow.overrides:
        method, planned = _with_overrides(site, release, method, registry, backend, reqs, say)
        reqs = overrides.requirements(reqs, planned)
    pins, tool, known = _run_backend(backend, reqs, site, method, registry, planned)
    missing = [p.name for p in pins.values() if not p.hashes]
    if missing:
        raise LockError(f"the resolver gave no hashes for {', '.join(missing)}")
    for p in planned:
        got = pins.get(p.name)
        if got is None or got.version != p.version:
            raise LockError(f"airflow.overrides: the resolver pinned {p.name} "
                            f"{got.version if got else '(nothing)'}, not the override's {p.version}")
    header = {
        "airflow": site.airflow.version,
        "requirements": "; ".join(reqs),
        "target": f"python {site.target.python}, {site.target.arch}, {site.target.os} ({target.manylinux(site.target)})",
        "method": method.description,
        **({"cutoff": iso(method.cutoff)} if method.cutoff else {}),
        **({"overrides": render_overrides(tuple(p.recorded for p in planned))} if planned else {}),
        "backend": tool,
        "index": registry.index_url,
        "date": iso(datetime.now(timezone.utc)),
        "packages": str(len(pins)),
        "input-hash": input_hash,
        "format": LOCK_FORMAT,
    }
    lock = Lock(path, pins, header, files=known, notices=tuple(notices))
    old = _same_as_before(lock)
    if old:
        notify("info", f"{path}: same pins as before, left unchanged")
        return replace(old, files=known, notices=tuple(notices))
    write_atomic(path, render_lock(site, lock))
    notify("info", f"{path}: {len(pins)} packages locked in {time.monotonic() - started:.1f} s ({tool})")
    return lock


def _with_overrides(site: Site, release: Release, method: Method, registry: Registry, backend: str,
                    reqs: list[str], say: Notify) -> tuple[Method, tuple[overrides.Planned, ...]]:
    """The method with the site's overrides: every other package held where the release puts it.

    Official constraints already pin every package. A date-cutoff lock pins them first, by
    resolving the release without the overrides: taking a newer FAB must not move SQLAlchemy
    to 2.x because the old FAB's upper bound is gone. The override and the requirements of it
    that those pins cannot meet are then dropped from the pins (builder.pydeps.overrides)."""
    if method.cutoff is not None and backend != "uv":
        raise LockError("airflow.overrides on a date-cutoff lock needs --backend uv: pip has no per-package "
                        "upload cutoff for the overridden packages",
                        hint="lock with the default --backend uv, or name an official constraints file "
                             "(airflow.constraints)")
    if method.constraints_text is None:
        base, _, _ = _run_backend(backend, reqs, site, method, registry)
        held = "".join(f"{p.name}=={p.version}\n" for p in sorted(base.values(), key=lambda p: p.name))
        say("info", f"airflow.overrides: {len(base)} packages held at the release's own resolution")
        method = replace(method, constraints_text=held)
    planned = overrides.plan(site, release, method, registry, notify=say)
    return replace(method, constraints_text=overrides.constraints(method.constraints_text, planned)), planned


def _run_backend(backend: str, reqs: list[str], site: Site, method: Method, registry: Registry,
                 planned: tuple[overrides.Planned, ...] = ()) -> tuple[dict[str, Pin], str, dict[str, LockedFile]]:
    """The backend's pins for `reqs`, its name and version, and the locked files it already knows."""
    cutoffs = overrides.package_cutoffs(method, planned)
    try:
        return _resolve_with(backend, reqs, site, method, registry, cutoffs)
    except ToolError as exc:
        if not planned:
            raise
        names = ", ".join(f"{p.name} {p.version}" for p in planned)
        raise LockError(
            f"airflow.overrides: the release does not resolve with {names}; the resolver says:\n"
            + exc.output_tail.rstrip(),
            hint="each requirement it names must fit the site's Airflow: pick another override version, "
                 "or give that package an override of its own",
        ) from None


def _resolve_with(backend: str, reqs: list[str], site: Site, method: Method, registry: Registry,
                  cutoffs: dict[str, str]) -> tuple[dict[str, Pin], str, dict[str, LockedFile]]:
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
            tool = resolve_uv(reqs_in, out, site, method, constraints, registry.index_url, cutoffs)
        else:
            tool, known = resolve_pip_compile(reqs_in, out, site, method, constraints, registry.index_url, registry)
        return parse_requirements(out.read_text(), source=f"{backend} output"), tool, known


def _same_as_before(lock: Lock) -> Lock | None:
    """The lock already at its path, if it has the same pins and header but for the date."""
    if not lock.path.exists():
        return None
    try:
        old = Lock.read(lock.path)
    except LockError:
        return None

    def undated(header: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in header.items() if k != "date"}

    return old if old.body_hash == lock.body_hash and undated(old.header) == undated(lock.header) else None


def render_lock(site: Site, lock: Lock) -> str:
    head = [
        f"# Lock for site {site.site.name!r}: {AIRFLOW} {site.airflow.version} for the target interpreter.",
        "# Written by `bundle lock`; do not edit. Re-resolve: bundle lock --site <file> --refresh",
        "# Install: uv pip install --require-hashes -r <this file>  (or pip install --require-hashes)",
        "#",
    ]
    head += [f"# {key}: {value}" for key, value in lock.header.items()]
    return "\n".join(head) + "\n\n" + render_pins(lock.pins)
