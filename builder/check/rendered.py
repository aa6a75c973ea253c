"""One validation of rendered output, the same for `bundle render` and `bundle build`.

airflow.cfg is checked against the schema of the Airflow the lock installs
(check/airflow_schema.py), the units with `systemd-analyze verify`
(check/units.py). What cannot be checked is said, never silently passed: a
lock that installs no apache-airflow-core has no schema to judge by, and a build
host without systemd-analyze cannot verify units.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.pydeps.lockfile import Lock
from builder.render import RenderedFile
from builder.render.airflow_cfg import airflow_cfg_options
from builder.check.airflow_schema import CORE, Checked, validate_against_lock
from builder.check.units import verify_units
from builder.site import Site


@dataclass(frozen=True)
class Validation:
    options: Checked | None          # None: airflow.cfg not checked, for the reason in options_skipped
    units: tuple[str, ...] | None    # None: units not verified, for the reason in units_skipped
    options_skipped: str = ""
    units_skipped: str = ""

    @property
    def skipped(self) -> list[str]:
        return [why for why in (self.options_skipped, self.units_skipped) if why]

    def summary(self) -> str:
        """One line, as the build's render step reports it."""
        cfg = f"{self.options.count} airflow.cfg options valid" if self.options else self.options_skipped
        units = f"{len(self.units)} units verified" if self.units is not None else self.units_skipped
        return f"{cfg}, {units}"

    def lines(self) -> list[str]:
        """A line per check done, as `bundle render` reports them (`skipped` are warnings)."""
        out = []
        if self.options is not None:
            out.append(f"airflow.cfg: {self.options.count} options valid for {self.options.source}")
        if self.units is not None:
            out.append(f"systemd-analyze verify: {len(self.units)} units clean")
        return out


def validate(site: Site, files: Sequence[RenderedFile], lock: Lock | None,
             wheel_dir: Path | None = None) -> Validation:
    """Check the rendered files; raise ValidationFailed when a check rejects them.

    `wheel_dir`: a wheelhouse holding the locked Airflow wheels (else they come from the
    lock's index, verified by the lock's hashes, and are cached)."""
    options, options_skipped = None, ""
    if lock is not None and CORE in lock.pins:
        options = validate_against_lock(site, airflow_cfg_options(site), lock, wheel_dir)
    else:
        options_skipped = f"airflow.cfg not checked: the lock pins no {CORE}"
    units, units_skipped = None, ""
    if shutil.which("systemd-analyze"):
        units = tuple(verify_units(site, files))
    else:
        units_skipped = "units not verified: no systemd-analyze on this host"
    return Validation(options, units, options_skipped, units_skipped)
