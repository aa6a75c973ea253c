"""The wheelhouse proof: the wheelhouse alone installs the locked Airflow, offline.

With an interpreter of exactly `target.python` on this host: a fresh venv, the target's
own install command (hashes required, no index, a fresh uv cache), then `airflow version`
must print the pinned version. Without one: an offline resolve for the target against
the wheelhouse must reproduce every pin of the lock.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from builder import run
from builder.pydeps import uv
from builder.pydeps.lockfile import Lock, LockError, parse_requirements
from builder.pydeps.wheelhouse import Wheelhouse, WheelhouseError
from builder.report import Notify, emit
from builder.site.model import Site


@dataclass
class Proof:
    kind: str  # "install" | "offline-resolve"
    detail: str
    seconds: float


def prove_complete(site: Site, lock: Lock, wh: Wheelhouse, notify: Notify = emit) -> Proof:
    """Install from the wheelhouse alone into a fresh venv of the target interpreter and run
    `airflow version`; without that interpreter here, resolve offline against the wheelhouse."""
    started = time.monotonic()
    try:
        interpreter = uv.find_interpreter(site.target.python)
    except LockError:
        interpreter = None
    with tempfile.TemporaryDirectory(prefix="bundle-proof-") as tmp:
        if interpreter:
            detail = _install(site, wh, interpreter, Path(tmp))
            return Proof("install", detail, time.monotonic() - started)
        detail = _resolve_offline(site, lock, wh, Path(tmp))
        return Proof("offline-resolve", detail, time.monotonic() - started)


def _install(site: Site, wh: Wheelhouse, interpreter: str, tmp: Path) -> str:
    venv = tmp / "venv"
    run.run(uv.venv_argv(interpreter, venv), what="creating the proof venv")
    argv = wh.install_argv(str(venv / "bin" / "python"), command=uv.uv_bin(), cache=tmp / "uv-cache")
    run.run(argv, what="installing from the wheelhouse alone (offline, hashes required)")
    proc = run.run([str(venv / "bin" / "airflow"), "version"], what="airflow version",
                   env={"AIRFLOW_HOME": str(tmp / "home")})
    printed = (proc.stdout.strip().splitlines() or [""])[-1].strip()
    if printed != site.airflow.version:
        raise WheelhouseError(
            f"the venv installed from the wheelhouse says airflow {printed!r}, "
            f"the site pins {site.airflow.version}"
        )
    return (f"offline install into a fresh Python {site.target.python} venv ({interpreter}); "
            f"`airflow version` printed {printed}")


def _resolve_offline(site: Site, lock: Lock, wh: Wheelhouse, tmp: Path) -> str:
    reqs = tmp / "requirements.in"
    reqs.write_text("\n".join(lock.requirements) + "\n")
    out = tmp / "resolved.txt"
    argv = uv.compile_argv(reqs, out, site.target, cache=tmp / "uv-cache", find_links=wh.out_dir, hashes=False)
    run.run(argv, what="resolving offline against the wheelhouse")
    got = {n: p.version for n, p in parse_requirements(out.read_text()).items()}
    want = {n: p.version for n, p in lock.pins.items()}
    if got != want:
        diff = sorted(set(got.items()) ^ set(want.items()))
        raise WheelhouseError(f"offline resolve against the wheelhouse differs from the lock: {diff[:10]}")
    return (f"no Python {site.target.python} on this host: offline resolve for the target "
            f"against the wheelhouse reproduced all {len(got)} pins")
