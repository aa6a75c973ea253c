"""Check rendered systemd units with systemd itself.

`systemd-analyze verify` runs against a throwaway root holding the rendered
files, the build host's own unit library (for network-online.target & co.) and
a stand-in executable at the venv path, so ExecStart= is checked too.
`systemd-analyze security --offline=yes` scores each service's exposure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from builder import run
from builder.errors import ValidationFailed
from builder.fsutil import write_atomic
from builder.layout import REDIS_CONF, REDIS_SERVER, REDIS_UNIT, UNIT_DIR
from builder.render import RenderedFile
from builder.site import Site

# The build host's own unit library: RHEL's place, and Debian's.
_HOST_UNIT_DIRS = (UNIT_DIR, "/lib/systemd/system")
_SCORE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+) (\S+)")


@dataclass(frozen=True)
class SecurityScore:
    unit: str
    exposure: float
    verdict: str


# What the units run from RHEL itself (coreutils: the worker's ccache copy), present on
# every target host; verify checks each command exists in the staged root.
HOST_TOOLS = ("/usr/bin/install", "/usr/bin/mv")
# RHEL 9's redis.service (redis 6.2), standing in where the build host has none: our
# drop-in is verified on top of what it changes.
_RHEL_REDIS_UNIT = f"""[Unit]
Description=Redis persistent key-value database
After=network.target

[Service]
ExecStart={REDIS_SERVER} {REDIS_CONF} --daemonize no --supervised systemd
Type=notify
User=redis
Group=redis
RuntimeDirectory=redis
RuntimeDirectoryMode=0755

[Install]
WantedBy=multi-user.target
"""


def _unit_files(files: Sequence[RenderedFile]) -> list[RenderedFile]:
    return [f for f in files if f.dest.startswith(UNIT_DIR + "/")]


def _verified_units(files: Sequence[RenderedFile]) -> list[str]:
    """Our units, and each unit one of our drop-ins (<unit>.d/*.conf) changes."""
    names = [f.dest.removeprefix(UNIT_DIR + "/").split("/")[0] for f in _unit_files(files)]
    return list(dict.fromkeys(n.removesuffix(".d") for n in names))


def _stage_root(site: Site, files: Sequence[RenderedFile], root: Path) -> None:
    for f in files:
        write_atomic(root / f.relpath, f.text, f.mode)
    assert site.paths.venv is not None  # derived by the site model
    for tool in (f"{site.paths.venv}/bin/airflow", *HOST_TOOLS):
        write_atomic(root / tool.lstrip("/"), "#!/bin/sh\n# stand-in during systemd-analyze verify\n", 0o755)
    target_units = root / UNIT_DIR.lstrip("/")
    for host_dir in _HOST_UNIT_DIRS:
        if Path(host_dir).is_dir():
            for unit in Path(host_dir).iterdir():
                dest = target_units / unit.name
                if unit.is_file() and not dest.exists():
                    shutil.copyfile(unit, dest)
            break
    if any(f.dest.startswith(f"{UNIT_DIR}/{REDIS_UNIT}.d/") for f in files):
        if not (target_units / REDIS_UNIT).exists():
            write_atomic(target_units / REDIS_UNIT, _RHEL_REDIS_UNIT)
        write_atomic(root / REDIS_SERVER.lstrip("/"), "#!/bin/sh\n# stand-in for redis-server\n", 0o755)


def verify_units(site: Site, files: Sequence[RenderedFile]) -> list[str]:
    """Run systemd-analyze verify on every rendered unit; return the unit names.

    systemd only warns (exit 0) about many bad lines, so any output counts as
    a failure.
    """
    units = _verified_units(files)
    with tempfile.TemporaryDirectory(prefix="airflow-prod-verify-") as tmp:
        root = Path(tmp)
        _stage_root(site, files, root)
        proc = run.run(
            ["systemd-analyze", "verify", f"--root={root}", *units],
            what="systemd-analyze verify", check=False,
        )
    output = (proc.stdout + proc.stderr).strip().replace(str(root), "")
    if proc.returncode != 0 or output:
        raise ValidationFailed(f"systemd-analyze verify rejects the rendered units:\n{output}")
    return units


def security_scores(files: Sequence[RenderedFile]) -> list[SecurityScore]:
    """Exposure level of each rendered .service (0 = locked down, 10 = unsafe)."""
    scores = []
    with tempfile.TemporaryDirectory(prefix="airflow-prod-security-") as tmp:
        for f in _unit_files(files):
            if not f.dest.endswith(".service") or "/" in f.dest.removeprefix(UNIT_DIR + "/"):
                continue
            path = write_atomic(Path(tmp) / Path(f.dest).name, f.text)
            proc = run.run(
                ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(path)],
                what=f"systemd-analyze security {path.name}", check=False,
            )
            match = _SCORE.search(proc.stdout + proc.stderr)
            if not match:
                raise ValidationFailed(
                    f"systemd-analyze security printed no score for {path.name}:\n{proc.stdout}{proc.stderr}"
                )
            scores.append(SecurityScore(path.name, float(match.group(1)), match.group(2)))
    return scores
