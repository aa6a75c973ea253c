"""One compile policy for native sdists: builder/pydeps/native.py's COMPILE_ENV and setuptools
file (parallel_config, named by DIST_EXTRA_CONFIG). build-venv is rendered from them;
Dockerfile.rhel9's build-wheels script cannot import Python, so both scripts are parsed here
and must set exactly that policy."""

from __future__ import annotations

import re
import shlex
import subprocess
from itertools import pairwise, takewhile

import pytest

from builder.pydeps import native
from builder.rpm.spec import render_build_venv
from support.dockerengine import build_wheels_block

NAME_VALUE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def build_wheels_script() -> str:
    """The script Dockerfile.rhel9's RUN writes to /usr/local/bin/build-wheels: its printf run by sh."""
    block = build_wheels_block()
    run = block[block.index("\nRUN ") + len("\nRUN "):].replace("\\\n", " ").split("\n")[0]
    cmd = shlex.split(run)
    assert cmd[:2] == ["printf", "%s\\n"] and ">" in cmd, cmd[:3]
    printf = run.partition(f" > {cmd[cmd.index('>') + 1]}")[0]
    return subprocess.run(["sh", "-c", printf], env={"PATH": "/usr/bin:/bin", "PYTHON": "python3"},
                          capture_output=True, text=True, check=True, timeout=10).stdout


def build_venv_script(site) -> str:
    return render_build_venv(site, ("airflow",))


def words(line: str) -> list[str]:
    """A line's sh words; none for a line that is no whole command (a heredoc's Python)."""
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return []


def policy(script: str) -> tuple[dict[str, str], str, list[str]]:
    """(the variables set with DIST_EXTRA_CONFIG, the command they are set for, the words
    of the printf that writes the file DIST_EXTRA_CONFIG names)."""
    lines = script.replace("\\\n", " ").splitlines()
    names = "|".join(map(re.escape, [*native.COMPILE_ENV, "DIST_EXTRA_CONFIG"]))
    setting = [line for line in lines if not line.lstrip().startswith("#")
               and re.search(rf"(?<![\w$])({names})=", line)]
    assert len(setting) == 1, f"the compile variables are set on {len(setting)} lines, not one: {setting}"
    cmd = words(setting[0])
    at = next(i for i, t in enumerate(cmd) if t.startswith("DIST_EXTRA_CONFIG="))
    start, end = at, at + 1
    while start > 0 and NAME_VALUE.match(cmd[start - 1]):
        start -= 1
    while end < len(cmd) and NAME_VALUE.match(cmd[end]):
        end += 1
    env = dict(t.split("=", 1) for t in cmd[start:end])
    config = env.pop("DIST_EXTRA_CONFIG")
    writers = [w for w in map(words, lines)
               if f">{config}" in w or (">", config) in pairwise(w)]
    assert len(writers) == 1, f"{config} is written by {len(writers)} lines, not one: {writers}"
    printf = writers[0][writers[0].index("printf"):]
    return env, " ".join(cmd[:start] + cmd[end:]), printf


def printed(printf: list[str], cpus: int) -> str:
    """What that printf writes on a host with `cpus` CPUs (sh's own printf, nproc's value)."""
    fmt, args = printf[1], list(takewhile(lambda a: not a.startswith(">"), printf[2:]))
    assert len(args) == 1 and args[0].startswith("$(nproc"), f"the CPU count is not nproc's: {printf}"
    out = subprocess.run(["sh", "-c", 'printf "$1" "$2"', "sh", fmt, str(cpus)],
                         capture_output=True, text=True, check=True, timeout=10)
    return out.stdout


@pytest.mark.parametrize("which", ["build-venv", "build-wheels"])
def test_native_builds_use_the_one_compile_policy(which, example_site):
    script = build_venv_script(example_site) if which == "build-venv" else build_wheels_script()
    env, command, printf = policy(script)
    assert env == native.COMPILE_ENV, f"{which} compiles with {env}, native.COMPILE_ENV is {native.COMPILE_ENV}"
    assert printed(printf, 7) == native.parallel_config(7), f"{which}'s setuptools file: {printf}"
    if which == "build-venv":
        assert "pip install" in command and "-r $LOCK" in command, command
    else:  # exported for the rest of the script, before the build
        assert command.startswith("export"), command
        assert script.index("DIST_EXTRA_CONFIG=") < script.index(" -m pip wheel ")


def test_build_venv_is_valid_sh(example_site):
    subprocess.run(["sh", "-n"], input=build_venv_script(example_site), text=True, check=True, timeout=10)
