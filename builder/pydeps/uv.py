"""uv's command lines, built in one place (builder.run runs them).

Every command starts with `--no-config`, so nothing from the host's uv configuration
changes what it does. A command that installs or resolves takes its packages either from
an index (`index_url`) or, offline, from a directory of files (`find_links`), never both.
"""

from __future__ import annotations

from pathlib import Path

from builder import run, target
from builder.pydeps.lockfile import LockError
from builder.resources import cache_dir
from builder.site.model import Target


def uv_bin() -> str:
    """The uv that came with this package (pyproject depends on it), else the one on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return run.which("uv")


def uv_version() -> str:
    """This uv's version ("0.13.9")."""
    return run.run([uv_bin(), "--version"]).stdout.split()[1]


def find_interpreter(version: str) -> str:
    """An installed interpreter of exactly `version` (pip-compile resolves for its own)."""
    proc = run.run(
        [uv_bin(), "python", "find", "--system", "--no-config", "--no-python-downloads", version],
        check=False,
    )
    found = proc.stdout.strip()
    if proc.returncode != 0 or not found:
        raise LockError(
            f"pip-compile resolves for the interpreter it runs on, and no Python {version} "
            "(target.python) is installed on this build host",
            hint="use the default --backend uv, which resolves for any target version",
        )
    return found


def shared_cache() -> Path:
    """uv's cache inside ours, shared by every command that may reuse downloads."""
    return cache_dir() / "uv"


def _source(index_url: str | None, find_links: str | Path | None) -> list[str]:
    if find_links is not None:
        return ["--offline", "--no-index", "--find-links", str(find_links)]
    assert index_url is not None, "an index or a directory to find packages in"
    return ["--index-url", index_url]


def compile_argv(reqs_in: Path, out: Path, tgt: Target, *, cache: Path, index_url: str | None = None,
                 find_links: Path | None = None, hashes: bool = True, exclude_newer: str | None = None,
                 constraint: Path | None = None, package_cutoffs: dict[str, str] | None = None) -> list[str]:
    """`uv pip compile` of `reqs_in` into `out` for the target's interpreter and platform."""
    argv = [uv_bin(), "pip", "compile", str(reqs_in), "--output-file", str(out), "--no-config", "--quiet",
            *(["--generate-hashes"] if hashes else []), "--no-header", "--no-annotate",
            "--python-version", tgt.python, "--python-platform", target.uv_platform(tgt),
            *_source(index_url, find_links), "--cache-dir", str(cache)]
    if exclude_newer:
        argv += ["--exclude-newer", exclude_newer]
    for name, when in sorted((package_cutoffs or {}).items()):
        argv += ["--exclude-newer-package", f"{name}={when}"]
    if constraint:
        argv += ["--constraint", str(constraint)]
    return argv


def venv_argv(python: str, venv: Path, *, clear: bool = False) -> list[str]:
    """`uv venv` of `python` at `venv` (`clear`: over whatever is there)."""
    return [uv_bin(), "venv", "--no-config", "-q", *(["--clear"] if clear else []), "--python", python, str(venv)]


def install_argv(python: str, *requirements: str, index_url: str | None = None, find_links: str | Path | None = None,
                 require_hashes: bool = False, cache: Path | None = None, quiet: bool = True,
                 command: str | None = None) -> list[str]:
    """`uv pip install` into the environment of `python` (`requirements`: names, or "-r", file).

    `command` is uv as the host that runs it calls it: this one unless given (the target's is "uv")."""
    argv = [command or uv_bin(), "pip", "install", "--no-config", *(["-q"] if quiet else []),
            *_source(index_url, find_links), *(["--require-hashes"] if require_hashes else []),
            "--python", python]
    if cache is not None:
        argv += ["--cache-dir", str(cache)]
    return argv + list(requirements)


def build_argv(sdist: Path, out_dir: Path, *, index_url: str) -> list[str]:
    """`uv build` of a wheel from `sdist` into `out_dir`, its build requirements from `index_url`."""
    return [uv_bin(), "build", "--no-config", "--wheel", "--out-dir", str(out_dir), "--index-url", index_url,
            "--cache-dir", str(shared_cache()), str(sdist)]
