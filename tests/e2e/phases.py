"""Timed phases of the end-to-end run, diagnostics on failure, and docs/e2e-timings.md."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .target import TargetHost

CLUSTER_MARK = "<!-- cluster e2e: tests/e2e/test_cluster_e2e.py -->"


def alternating(a: str, b: str, rounds: int) -> list[str]:
    """A B B A A B ...: two sides measured in turns, each first as often as second, so that a
    shared machine's drift over a pair of rounds falls on both alike (issue 22: run one after
    the other, the units comparison read 1.26x; in alternating rounds 1.12x)."""
    return [side for i in range(rounds) for side in ((a, b) if i % 2 == 0 else (b, a))]


@dataclass
class Phase:
    name: str
    seconds: float
    status: str  # ok | FAILED
    note: str = ""


@dataclass
class Phases:
    rows: list[Phase] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @contextmanager
    def __call__(self, name: str, host: TargetHost | None = None, units: Sequence[str] = (),
                 logs: Sequence[str] = (), note: str = "") -> Iterator[None]:
        """Time a phase; if it fails, print what an engineer needs (journals, logs) and re-raise."""
        t0 = time.monotonic()
        print(f"\n[e2e] {name} ...", file=sys.stderr, flush=True)
        try:
            yield
        except BaseException:
            self.rows.append(Phase(name, time.monotonic() - t0, "FAILED", note))
            if host is not None:
                print(f"\n[e2e] phase {name!r} failed; diagnostics follow\n{host.diagnose(units, logs)}",
                      file=sys.stderr, flush=True)
            raise
        seconds = time.monotonic() - t0
        self.rows.append(Phase(name, seconds, "ok", note))
        print(f"[e2e] {name}: {seconds:.1f}s", file=sys.stderr, flush=True)

    def markdown(self) -> str:
        total = time.monotonic() - self.started
        lines = [
            "# End-to-end test timings",
            "",
            "Written by `tests/e2e/test_e2e.py` at the end of each run (`pytest -m e2e tests/e2e`).",
            "Each phase is timed on the machine that ran it; a warm cache means the root tarball,",
            "the lock and the wheelhouse were already there.",
            "",
            f"- run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"- machine: {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}",
            f"- source: {_source()}",
        ]
        lines += [f"- {k}: {v}" for k, v in sorted(self.facts.items())]
        lines += ["", "| phase | seconds | result |", "| --- | ---: | --- |"]
        for row in self.rows:
            note = f" ({row.note})" if row.note else ""
            lines.append(f"| {row.name}{note} | {row.seconds:.1f} | {row.status} |")
        lines += [f"| **total** | {total:.1f} | |", ""]
        return "\n".join(lines)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        # The cluster run (tests/e2e/test_cluster_e2e.py) keeps its own section at the end.
        kept = ""
        if path.exists() and CLUSTER_MARK in path.read_text():
            kept = "\n" + CLUSTER_MARK + path.read_text().split(CLUSTER_MARK, 1)[1]
        tmp.write_text(self.markdown() + kept)
        os.replace(tmp, path)


def _source() -> str:
    """Which tree ran: commit, and whether it had local changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"{head}{' with local changes' if dirty else ''}"
