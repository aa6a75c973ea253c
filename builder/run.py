"""The one place that runs external tools.

Every command runs with a fixed, minimal environment (no PIP_*/UV_* leakage
from the build host), is logged, and on failure raises `ToolError` carrying a
command line the user can paste and the tail of its output.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from builder.errors import ToolError, ToolMissing

log = logging.getLogger("builder.run")

# Where to find each tool on Debian and on RHEL, for the "not installed" hint.
PACKAGE_OF = {
    "rpmbuild": "Debian: apt install rpm / RHEL: dnf install rpm-build",
    "rpmsign": "Debian: apt install rpm / RHEL: dnf install rpm-sign",
    "createrepo_c": "Debian: apt install createrepo-c / RHEL: dnf install createrepo_c",
    "systemd-analyze": "Debian/RHEL: install systemd",
    "gpg": "Debian: apt install gnupg / RHEL: dnf install gnupg2",
    "uv": "pip install uv",
}

_KEEP_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TERM", "USER", "LOGNAME")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment isolated from the host's pip/uv configuration."""
    env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    # The build host's pip config (find-links, extra indexes, constraints) must
    # never reach a resolve or a download.
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    if extra:
        env.update(extra)
    return env


def which(tool: str) -> str:
    """Absolute path of `tool`, or ToolMissing with an install hint."""
    found = shutil.which(tool)
    if not found:
        raise ToolMissing(tool, PACKAGE_OF.get(tool, f"install {tool}"))
    return found


def pasteable(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    prefix = ""
    if env:
        shown = {k: v for k, v in env.items() if k.startswith(("PIP_", "UV_", "SOURCE_DATE"))}
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(shown.items()))
        prefix = f"env {prefix} " if prefix else ""
    return prefix + shlex.join(str(a) for a in argv)


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    what: str = "",
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input: str | None = None,
    tail_lines: int = 40,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output, raise ToolError on failure."""
    args = [str(a) for a in argv]
    which(args[0]) if os.sep not in args[0] else None
    full_env = clean_env(env)
    cmd = pasteable(args, env)
    log.debug("run: %s", cmd)
    proc = subprocess.run(
        args,
        cwd=cwd,
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        errors="replace",
    )
    if check and proc.returncode != 0:
        out = (proc.stdout or "") + (proc.stderr or "")
        tail = "\n".join(out.splitlines()[-tail_lines:])
        raise ToolError(cmd, proc.returncode, tail, what=what)
    return proc
