"""The error hierarchy. Every error a user can cause carries its own message.

The CLI maps `BundleError` to an exit code and prints `str(err)`; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class BundleError(Exception):
    """Base of every user-facing error: the message is complete as it stands."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class SiteError(BundleError):
    """site.toml cannot be read or does not validate. Exit code 2 (usage)."""

    exit_code = 2

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        count = len(problems)
        head = f"{path}: {count} problem{'s' if count != 1 else ''}"
        super().__init__(head + "\n" + "\n".join(f"  - {p}" for p in problems))


class UsageError(BundleError):
    """A command was given arguments it cannot work with."""

    exit_code = 2


class ToolError(BundleError):
    """An external tool failed. Carries the pasteable command and its output tail."""

    def __init__(self, command: str, returncode: int, output_tail: str, what: str = "",
                 hint: str | None = None, how: str | None = None) -> None:
        self.command = command
        self.returncode = returncode
        self.output_tail = output_tail
        lead = f"{what}: " if what else ""
        if how is None and returncode < 0:  # subprocess's convention: killed by signal -returncode
            how = f"was killed by signal {_signal_name(-returncode)}"
            hint = hint or "something outside the build stopped it (out of memory, a kill); run it again"
        how = how or f"failed with exit code {returncode}"
        msg = f"{lead}command {how}:\n  {command}"
        if output_tail.strip():
            msg += "\n--- last lines of its output ---\n" + output_tail.rstrip()
        super().__init__(msg, hint=hint)


class ToolTimeout(ToolError):
    """An external tool ran longer than it may, and was stopped."""

    def __init__(self, command: str, seconds: float, output_tail: str, what: str = "") -> None:
        self.seconds = seconds
        super().__init__(command, -9, output_tail, what, how=f"was stopped after {seconds:g} s (timeout)", hint=(
            "paste the command to see where it hangs; a slow machine may need more time: "
            "AIRFLOW_PROD_TOOL_TIMEOUT=<seconds>"))


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class ToolMissing(BundleError):
    """An external tool is not installed."""

    def __init__(self, tool: str, package_hint: str) -> None:
        super().__init__(f"{tool} is not installed", hint=package_hint)


class ValidationFailed(BundleError):
    """Rendered output does not pass a check (Airflow schema, systemd verify, ...)."""
