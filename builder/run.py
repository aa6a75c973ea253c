"""The one place that runs external tools.

Every command runs with a fixed, minimal environment (no PIP_*/UV_* leakage
from the build host) and a time limit; its command line and output are reported
as they come (builder.report); a failure raises a `ToolError` carrying a command
line the user can paste and the tail of its output, and says whether the tool
failed, was killed by a signal, ran out of time or is not installed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from builder import report
from builder.errors import BundleError, ToolError, ToolMissing, ToolTimeout, UsageError
from builder.report import Notify

DEFAULT_TIMEOUT = 3600.0

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


def default_timeout() -> float:
    """How long one tool may run: $AIRFLOW_PROD_TOOL_TIMEOUT seconds, else an hour (a cold
    wheelhouse RPM or an offline install of Airflow takes minutes; nothing takes an hour)."""
    env = os.environ.get("AIRFLOW_PROD_TOOL_TIMEOUT", "")
    try:
        return float(env) if env else DEFAULT_TIMEOUT
    except ValueError:
        raise UsageError(f"AIRFLOW_PROD_TOOL_TIMEOUT={env!r} is not a number of seconds") from None


def _pump(stream: IO[str], into: list[str], tail: deque[str], notify: Notify) -> None:
    """Read one of the tool's pipes as it writes, line by line, into `into`, the shared tail
    and the report (a status line on a terminal, so a long rpmbuild or uv shows its progress)."""
    for line in stream:
        into.append(line)
        tail.append(line)
        notify("progress", line.rstrip("\n"))
    stream.close()


def _feed(stream: IO[str], text: str) -> None:
    try:
        stream.write(text)
        stream.close()
    except BrokenPipeError:  # the tool exited without reading it all: its exit code says why
        pass


def _stop(proc: subprocess.Popen[str]) -> None:
    """End the tool and every process it started (its own process group): TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _start(args: list[str], cwd: str | Path | None, env: dict[str, str], stdin: bool,
           what: str) -> subprocess.Popen[str]:
    """Popen with pipes in its own process group; a missing program or directory is a
    BundleError that says which."""
    try:
        return subprocess.Popen(
            args, cwd=cwd, env=env, text=True, errors="replace",
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            process_group=0,  # so a timeout or Ctrl-C stops its children too
        )
    except FileNotFoundError:
        if cwd is not None and not Path(cwd).is_dir():
            raise BundleError(f"{what or args[0]}: working directory {cwd} does not exist") from None
        raise ToolMissing(args[0], PACKAGE_OF.get(Path(args[0]).name, f"install {args[0]}")) from None
    except PermissionError as exc:
        raise BundleError(f"{args[0]} cannot be run: {exc.strerror}",
                          hint="is it an executable file for this machine?") from None


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    what: str = "",
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input: str | None = None,
    tail_lines: int = 40,
    timeout: float | None = None,
    notify: Notify = report.emit,
) -> subprocess.CompletedProcess[str]:
    """Run a command with a clean environment; its output is captured and streamed.

    The command line is reported ("debug"), each output line as it comes ("progress").
    Raises ToolMissing when the program does not exist, ToolTimeout after `timeout`
    seconds (default: `default_timeout()`; the tool and its children are stopped), and,
    when `check`, ToolError for a non-zero exit or a death by signal, with the pasteable
    command and the last `tail_lines` lines of output (in the order they were written).
    """
    args = [str(a) for a in argv]
    if os.sep not in args[0]:
        which(args[0])
    full_env = clean_env(env)
    cmd = pasteable(args, env)
    limit = default_timeout() if timeout is None else timeout
    notify("debug", f"run: {cmd}")
    proc = _start(args, cwd, full_env, input is not None, what)
    assert proc.stdout is not None and proc.stderr is not None
    out: list[str] = []
    err: list[str] = []
    tail: deque[str] = deque(maxlen=tail_lines)
    threads = [threading.Thread(target=_pump, args=(proc.stdout, out, tail, notify), daemon=True),
               threading.Thread(target=_pump, args=(proc.stderr, err, tail, notify), daemon=True)]
    if input is not None:
        assert proc.stdin is not None
        threads.append(threading.Thread(target=_feed, args=(proc.stdin, input), daemon=True))
    for t in threads:
        t.start()
    try:
        returncode = proc.wait(limit)
    except subprocess.TimeoutExpired:
        _stop(proc)
        for t in threads:
            t.join(5)
        raise ToolTimeout(cmd, limit, "".join(tail), what=what) from None
    except BaseException:  # Ctrl-C (the tool is in its own process group and did not get it)
        _stop(proc)
        raise
    for t in threads:
        t.join()
    result = subprocess.CompletedProcess(args, returncode, "".join(out), "".join(err))
    if check and returncode != 0:
        raise ToolError(cmd, returncode, "".join(tail), what=what)
    return result
