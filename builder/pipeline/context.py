"""What a build is given (BuildOptions), what it keeps while it runs (Context) and what it returns."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from builder.pipeline.state import BuildState
from builder.errors import BundleError
from builder.pydeps.lockfile import Lock
from builder.pydeps.sbom import WheelhouseItem
from builder.render import Rendered
from builder.report import Notify
from builder.rpm import plan as P
from builder.rpm import rpmbuild
from builder.site import Site

if TYPE_CHECKING:
    from builder.rpm.publish import SigningKey


class BuildError(BundleError):
    """A build step cannot proceed with what it was given."""


@dataclass(frozen=True)
class BuildOptions:
    out_dir: Path | None = None          # default: build/<site name>
    locks_dir: Path = Path("locks")
    wheelhouse_dir: Path | None = None   # a ready wheelhouse: lock and wheelhouse steps use it as is
    lock_file: Path | None = None
    uv_wheel: Path | None = None
    sign: bool | None = None             # None: the site's [publish] sign
    rpm_cache: Path | None = None        # default: <cache>/rpms (shared by all sites)
    payload: str = rpmbuild.PAYLOAD
    force: bool = False                  # ignore recorded input hashes
    # The site's secrets file (bundle secrets init): only fingerprints of it go into the
    # config package. Default: ~/.config/airflow-prod/<site>.secrets.env when it exists.
    secrets_file: Path | None = None


@dataclass(frozen=True)
class StepResult:
    name: str
    seconds: float
    reused: bool
    detail: str


@dataclass(frozen=True)
class BuiltPackage:
    name: str
    path: Path
    size: int
    reused: bool


@dataclass(frozen=True)
class BuildSummary:
    site: str
    steps: tuple[StepResult, ...]
    packages: tuple[BuiltPackage, ...]
    repo: Path | None
    out_dir: Path
    signed_by: str | None

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)


@dataclass(frozen=True)
class Signing:
    """Who signs this build: a key and its fingerprint, or nobody (an unsigned build)."""

    key: SigningKey | None = None
    fingerprint: str = ""


@dataclass
class Context:
    """What changes during one build; the Site itself stays frozen."""

    site: Site
    site_path: Path
    options: BuildOptions
    out_dir: Path
    notify: Notify
    state: BuildState
    lock_path: Path | None = None
    lock: Lock | None = None  # the lock at lock_path, read once by the lock step
    wheelhouse: P.WheelhouseInput | None = None
    rendered: Rendered | None = None
    packages: list[BuiltPackage] = field(default_factory=list)
    plans: tuple[P.SpecPlan, ...] = ()   # the wheelhouse's and the site's, as packaged (for the SBOM)
    sbom_items: list[WheelhouseItem] = field(default_factory=list)  # the wheelhouse's files, read once
    repo: Path | None = None
    signed_by: str | None = None
    signing: Signing = field(default_factory=Signing)

    @property
    def memo(self) -> dict[str, str]:
        return self.state.memo

    def unchanged(self, step: str, input_hash: str, outputs: list[Path]) -> bool:
        """Whether `step` may reuse its outputs (never with --force)."""
        return not self.options.force and self.state.unchanged(step, input_hash, outputs)


def digest_of(*parts: object) -> str:
    """A step's input hash: sha256 over the parts' text."""
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()


def default_out_dir(site: Site) -> Path:
    return Path("build") / site.site.name
