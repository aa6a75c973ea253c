"""The `bundle` command run as a user runs it: `python -m builder ARGS` in a child process.

(The e2e's build host runs it through tests/e2e/proc.py instead, failing on a non-zero
exit: `bundle` in tests/e2e/test_e2e.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from support.sites import REPO


def bundle(*args: str, cwd: Path | None = None, extra_env: Mapping[str, str] | None = None,
           drop_env: tuple[str, ...] = (), timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Its exit code and output, for the test to check (a non-zero exit raises nothing).

    `cwd`: the repository root unless given. The environment is this process's without the
    variables whose names start with one of `drop_env` (e.g. ("PIP_", "UV_"): none of the
    machine's pip/uv configuration), plus `extra_env`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_env)} | dict(extra_env or {})
    return subprocess.run([sys.executable, "-m", "builder", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=timeout)
