"""The one way the engine tells the user what it does.

A report is a function `(level, message)`; levels are "info" (a line for the user),
"warn" (something the user should act on), "progress" (the latest output line of a tool
still running: a status line on a terminal, never part of the output proper) and "debug"
(each command run, shown with `bundle -v`, which also prints every progress line). The engine never prints: a function that reports takes
`notify: Notify` (default: `emit`, which forwards to the report the CLI installed with
`use`), so the CLI alone decides where lines go (stdout or stderr, colour, verbosity),
and rich progress bars stay in the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

Level = Literal["info", "warn", "progress", "debug"]
Notify = Callable[[str, str], None]  # (level, message)


def silent(level: str, message: str) -> None:
    """Reports nothing (the default until the CLI installs a report; tests)."""


_current: ContextVar[Notify] = ContextVar("builder_report", default=silent)


def emit(level: str, message: str) -> None:
    """Report through whatever `use` installed (silently when nothing did)."""
    _current.get()(level, message)


def current() -> Notify:
    return _current.get()


def install(notify: Notify) -> None:
    """Make `notify` the report for the rest of this process (the CLI, once per command)."""
    _current.set(notify)


@contextmanager
def use(notify: Notify) -> Iterator[Notify]:
    """Make `notify` the report inside the block."""
    token = _current.set(notify)
    try:
        yield notify
    finally:
        _current.reset(token)


def info(message: str) -> None:
    emit("info", message)


def warn(message: str) -> None:
    emit("warn", message)


def debug(message: str) -> None:
    emit("debug", message)


def nested(notify: Notify, prefix: str = "  ") -> Notify:
    """`notify` with info lines indented (what a step reports under its heading); warnings
    and tool output stay as they are."""
    return lambda level, message: notify(level, prefix + message if level == "info" else message)
