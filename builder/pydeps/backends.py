"""The two resolvers behind `bundle lock --backend`, each isolated from the host's config.

    uv           uv pip compile for the target's interpreter and platform, from anywhere
    pip-compile  pip-tools in its own venv of the target's exact Python (which must be
                 installed here), wheels capped at the target's glibc; hashes from the index

Both write pip-tools-style pins with sha256 hashes to `out` and return the tool's name and
version for the lock header.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from builder import run, target
from builder.pydeps import uv
from builder.pydeps.index import PYPI, Registry, network_env
from builder.pydeps.lockfile import LockedFile, Pin, iso, parse_requirements, render_pins
from builder.pydeps.method import Method
from builder.resources import cache_dir
from builder.site.model import Site


BACKENDS = ("uv", "pip-compile")
# pip-compile runs from its own venv with these pins (pip >= 26 for --uploaded-prior-to).
PIP_TOOLS_PINS = ("pip==26.3", "pip-tools==7.6.2")


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
               index_url: str, package_cutoffs: dict[str, str] | None = None) -> str:
    argv = uv.compile_argv(reqs_in, out, site.target, cache=uv.shared_cache(), index_url=index_url,
                           exclude_newer=iso(method.cutoff) if method.cutoff else None, constraint=constraints,
                           package_cutoffs=package_cutoffs)
    run.run(argv, what="resolving with uv", env=network_env())
    return f"uv {uv.uv_version()}"


def resolve_pip_compile(reqs_in: Path, out: Path, site: Site, method: Method, constraints: Path | None,
                        index_url: str, registry: Registry) -> tuple[str, dict[str, LockedFile]]:
    """Resolve with pip-compile; hashes (and each file's URL and size) from the index."""
    venv = _pip_compile_venv(site.target.python)
    cap = _manylinux_cap(out.parent, target.glibc(site.target.os))
    pip_args: list[str] = []
    if method.cutoff:
        pip_args += ["--uploaded-prior-to", iso(method.cutoff)]
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
