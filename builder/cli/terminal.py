"""Where the engine's report (builder.report) goes on the command line.

Info lines go to stdout or stderr (as each command has always printed them), warnings
to stderr in yellow, a running tool's latest output line to a status line on a terminal
(never into a pipe or a log), and with -v every command run and every line of its output.
"""

from __future__ import annotations

import shutil
import sys
import threading

import click


class TerminalReport:
    """A builder.report.Notify for the terminal; safe to call from several threads."""

    def __init__(self, verbose: bool = False, info_to_stdout: bool = False) -> None:
        self.verbose = verbose
        self.info_to_stdout = info_to_stdout
        self._lock = threading.Lock()
        self._status = False  # a status line is showing on stderr

    def __call__(self, level: str, message: str) -> None:
        with self._lock:
            if level == "progress":
                if self.verbose:
                    self._line(f"  | {message}", err=True)
                elif sys.stderr.isatty():
                    width = max(shutil.get_terminal_size().columns - 1, 10)
                    sys.stderr.write("\r\x1b[K" + message.expandtabs()[:width])
                    sys.stderr.flush()
                    self._status = True
            elif level == "debug":
                if self.verbose:
                    self._line(message, err=True)
            elif level == "warn":
                self._clear()
                click.secho(f"warning: {message}", err=True, fg="yellow")
            else:
                self._line(message, err=not self.info_to_stdout)

    def _line(self, message: str, err: bool) -> None:
        self._clear()
        click.echo(message, err=err)

    def _clear(self) -> None:
        if self._status:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._status = False

    def close(self) -> None:
        with self._lock:
            self._clear()


def terminal_report(info_to_stdout: bool = False) -> TerminalReport:
    """The report `bundle` installed (its -v), with info lines on stdout or stderr."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root().obj if ctx else None
    verbose = root.verbose if isinstance(root, TerminalReport) else False
    return TerminalReport(verbose, info_to_stdout)
