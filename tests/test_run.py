"""builder.run: the one place that runs tools — time limit, streamed output, and errors that
say whether a tool failed, was killed, hung or is missing (real processes, no mocks)."""

from __future__ import annotations

import time

import pytest

from builder import report, run
from builder.errors import ToolError, ToolMissing, ToolTimeout, UsageError


def test_output_is_captured_and_streamed_as_it_comes():
    seen: list[tuple[str, str]] = []
    proc = run.run(["sh", "-c", "echo one; echo two >&2; echo three"], notify=lambda lv, m: seen.append((lv, m)))
    assert proc.stdout == "one\nthree\n" and proc.stderr == "two\n"
    assert seen[0] == ("debug", "run: sh -c 'echo one; echo two >&2; echo three'")
    assert sorted(m for lv, m in seen if lv == "progress") == ["one", "three", "two"]


def test_progress_arrives_while_the_tool_still_runs():
    seen: list[float] = []
    start = time.monotonic()
    run.run(["sh", "-c", "echo early; sleep 1; echo late"],
            notify=lambda lv, m: seen.append(time.monotonic() - start) if m == "early" else None)
    assert seen and seen[0] < 0.8  # not held back until the tool exits


def test_the_installed_report_gets_it_by_default():
    seen: list[str] = []
    with report.use(lambda lv, m: seen.append(lv)):
        run.run(["true"])
    assert seen == ["debug"]


def test_input_reaches_the_tool():
    assert run.run(["cat"], input="abc\n").stdout == "abc\n"


def test_a_hanging_tool_is_stopped_with_its_children():
    start = time.monotonic()
    with pytest.raises(ToolTimeout, match=r"(?s)stopped after 1 s \(timeout\):\n  sh -c .*started") as err:
        run.run(["sh", "-c", "echo started; sleep 300 & sleep 300"], timeout=1, what="hang")
    assert time.monotonic() - start < 10
    assert "AIRFLOW_PROD_TOOL_TIMEOUT" in str(err.value.hint)


def test_timeout_setting(monkeypatch):
    monkeypatch.setenv("AIRFLOW_PROD_TOOL_TIMEOUT", "0.5")
    with pytest.raises(ToolTimeout):
        run.run(["sleep", "30"])
    monkeypatch.setenv("AIRFLOW_PROD_TOOL_TIMEOUT", "soon")
    with pytest.raises(UsageError, match="AIRFLOW_PROD_TOOL_TIMEOUT='soon' is not a number"):
        run.run(["true"])


def test_exit_code_signal_and_missing_command_are_told_apart():
    with pytest.raises(ToolError, match=r"(?s)^x: command failed with exit code 3:\n  sh -c .*\nboom") as failed:
        run.run(["sh", "-c", "echo boom; exit 3"], what="x")
    assert failed.value.returncode == 3 and failed.value.hint is None
    with pytest.raises(ToolError, match="command was killed by signal SIGKILL") as killed:
        run.run(["sh", "-c", "kill -KILL $$"])
    assert killed.value.hint
    with pytest.raises(ToolMissing, match="no-such-tool-here is not installed"):
        run.run(["no-such-tool-here"])
    with pytest.raises(ToolMissing, match="/nonexistent/rpmbuild is not installed") as missing:
        run.run(["/nonexistent/rpmbuild"])
    assert "rpm" in str(missing.value.hint)
    assert run.run(["sh", "-c", "exit 3"], check=False).returncode == 3


def test_a_terminal_shows_the_latest_tool_line_as_a_status_line(monkeypatch):
    import io
    import sys

    from builder.cli.terminal import TerminalReport

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Tty()
    monkeypatch.setattr(sys, "stderr", err)
    shown = TerminalReport()
    run.run(["sh", "-c", "echo compiling a; echo compiling b"], notify=shown)
    assert err.getvalue().endswith("\r\x1b[Kcompiling b") and "run: " not in err.getvalue()
    shown("warn", "careful")  # the status line is cleared before a real line
    assert err.getvalue().endswith("compiling b\r\x1b[K\x1b[33mwarning: careful\x1b[0m\n")
