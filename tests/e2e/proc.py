"""The one place the test harness runs external tools and daemons.

Commands run with a fixed environment and fail with the exact command line
to paste and the tail of its output. Daemons are started with their output
in a log file and are stopped by their PID, never by name.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class CommandFailed(AssertionError):
    """A harness command failed; the message is complete (command, exit code, output tail)."""


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/root")}
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    if extra:
        env.update(extra)
    return env


def pasteable(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted((env or {}).items()))
    return (f"env {prefix} " if prefix else "") + shlex.join(argv)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    user: str | None = None,
    input: str | bytes | None = None,
    check: bool = True,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; output is captured and decoded (input may be bytes)."""
    args = [str(a) for a in argv]
    data = input.encode() if isinstance(input, str) else input
    try:
        raw = subprocess.run(
            args, env=base_env(env), cwd=cwd, user=user, input=data, capture_output=True,
            timeout=timeout, stdin=None if data is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace")
        raise CommandFailed(f"timed out after {timeout:.0f} s:\n  {pasteable(args, env)}\n{tail(out)}") from None
    proc = subprocess.CompletedProcess(args, raw.returncode, raw.stdout.decode(errors="replace"),
                                       raw.stderr.decode(errors="replace"))
    if check and proc.returncode != 0:
        raise CommandFailed(
            f"exit code {proc.returncode}:\n  {pasteable(args, env)}"
            + (f"  (as {user})" if user else "")
            + "\n--- output tail ---\n" + tail(proc.stdout + proc.stderr)
        )
    return proc


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05,
               alive: Callable[[], str | None] | None = None) -> float:
    """Poll `check` until true; return the seconds it took. `alive` returns a reason to stop early."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if alive is not None and (reason := alive()):
            raise CommandFailed(f"{what}: {reason}")
        if time.monotonic() - start > timeout:
            raise CommandFailed(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Daemon:
    """A long-running process this harness started; stopped by its PID only."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    user: str | None = None
    cwd: Path | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Daemon:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(
                self.argv, env=base_env(self.env), user=self.user, cwd=self.cwd,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # keep terminal signals (Ctrl-C) for pytest
            )
        finally:
            out.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def exited(self) -> str | None:
        """Why the daemon is gone (with its log tail), or None while it runs."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return f"{self.name} exited with {self.proc.returncode}: {pasteable(self.argv)}\n{self.log_tail()}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return tail(self.log.read_text(errors="replace"), lines)
        except FileNotFoundError:
            return ""

    def wait_port(self, host: str, port: int, timeout: float = 30) -> float:
        return wait_until(lambda: port_open(host, port), timeout, f"{self.name} on {host}:{port}",
                          alive=self.exited)

    def stop(self, timeout: float = 15) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        stop_pid(self.proc.pid, timeout)
        self.proc.wait(timeout=5)


def stop_pid(pid: int, timeout: float = 15, sig: int = signal.SIGTERM) -> None:
    """Signal one process by PID, wait for it to go, then SIGKILL it."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our child; otherwise just probe it.
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie that is not ours counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False
