"""The site's Airflow release as the index describes it, checked before anything resolves.

`check_release` fails early, with a clear message, when the site asks for something that
cannot resolve (no such release, a Python it does not support, unknown extras or
providers); it reports yanked pins and finds the date cutoff just after the release.
`requirements` is the top-level list the resolver gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from difflib import get_close_matches
from email.message import Message

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from builder.pydeps.index import DistFile, Project, Registry, RegistryError
from builder.pydeps.lockfile import LockError
from builder.site.model import Site


AIRFLOW = "apache-airflow"
INSTALLER = "uv"  # the target builds its venv with uv: lock it like everything else


@dataclass
class Release:
    """What the registry says about the site's Airflow release."""

    version: str
    requires_python: str | None
    exact_pins: dict[str, str]  # the release's own == dependencies (core, task-sdk)
    cutoff: datetime  # just after the last of those uploads
    notices: list[tuple[str, str]]


@dataclass(frozen=True)
class Support:
    """Where the site's Airflow release stands on the index: yanked or not, the newest patch of
    its line, and the newest release (only the newest minor line gets fixes, security included)."""

    version: str
    yanked: str | None           # the reason, or None
    newest_patch: str | None     # the newest release of the same major.minor, yanks left out
    newest: str | None           # the newest release, prereleases and yanks left out

    @property
    def line_supported(self) -> bool:
        return self.newest is None or Version(self.newest).release[:2] <= Version(self.version).release[:2]

    @property
    def sound(self) -> bool:
        """Neither yanked nor on a line that no longer gets fixes."""
        return self.yanked is None and self.line_supported

    def notices(self, yank: bool = True) -> list[str]:
        """One line per problem, each saying what to move to (`yank`: the yank's line too)."""
        v, line = Version(self.version), ".".join(self.version.split(".")[:2])
        found = []
        if self.yanked is not None and yank:
            to = f": use {self.newest_patch}, the newest release of {line}" if self.newest_patch else ""
            found.append(f"{AIRFLOW} {self.version} is yanked on the index ({self.yanked!r}){to}")
        if not self.line_supported:
            newest_line = ".".join(str(x) for x in Version(str(self.newest)).release[:2])
            found.append(f"Airflow {line}.x gets no more fixes, security fixes included: only the newest line, "
                         f"{newest_line}.x, does; its newest release is {self.newest}")
        elif self.yanked is None and self.newest_patch and Version(self.newest_patch) > v:
            found.append(f"Airflow {self.version} is not the newest release of {line}: {self.newest_patch} is")
        return found


def release_support(project: Project, version: str) -> Support:
    usable = [v for v in project.versions(include_yanked=False) if not v.is_prerelease]
    patch = _newest_of_series(usable, version)
    return Support(version, project.yank_reason(version), str(patch) if patch else None,
                   str(max(usable)) if usable else None)


def refuse(site: Site, support: Support) -> None:
    """With airflow.refuse_unsupported, a yanked release or one on a line without fixes is an error."""
    if site.airflow.refuse_unsupported and not support.sound:
        to = support.newest if not support.line_supported else support.newest_patch
        raise LockError(
            f"airflow.version = {site.airflow.version!r}: " + "; ".join(support.notices())
            + " (refused: airflow.refuse_unsupported = true)",
            hint=f"set airflow.version = {to!r} in the site file" if to else None,
        )


def _newest_of_series(versions: list[Version], version: str) -> Version | None:
    v = Version(version)
    series = [x for x in versions if x.release[:2] == v.release[:2] and not x.is_prerelease]
    return max(series) if series else None


def check_release(site: Site, registry: Registry) -> Release:
    """Fail early with a clear message when the site asks for something that cannot resolve."""
    version = site.airflow.version
    project = registry.project(AIRFLOW)
    files = _release_files(project, version, registry)
    _check_python(files, version, site.target.python)
    wheels = [f for f in files if f.is_wheel]
    if not wheels:
        raise LockError(f"{AIRFLOW} {version} has no wheel on {registry.index_url}: cannot read its metadata")
    meta = registry.metadata(wheels[0])
    _check_extras(meta, version, site.airflow.extras)
    exact = _exact_pins(meta)
    notices: list[tuple[str, str]] = []
    uploads = [f.upload_time for f in files if f.upload_time]
    for name, ver in sorted({AIRFLOW: version, **exact}.items()):
        proj = project if name == AIRFLOW else registry.project(name)
        uploads += [f.upload_time for f in proj.release(ver) if f.upload_time]
        notices += _yank_notice(proj, name, ver, version)
    support = release_support(project, version)
    refuse(site, support)
    notices += [("warn", n) for n in support.notices(yank=False)]  # the yank is said above
    _check_providers(site.airflow.providers, registry)
    if not uploads:
        raise LockError(f"{registry.index_url} gives no upload times (PEP 700) for {AIRFLOW} {version}")
    last = max(uploads)
    # Just after the last upload of the release and its exact pins (the task
    # SDK went up minutes after apache-airflow), to the next whole minute.
    cutoff = (last + timedelta(minutes=1)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return Release(version, files[0].requires_python, exact, cutoff, notices)


def _release_files(project: Project, version: str, registry: Registry) -> list[DistFile]:
    files = project.release(version)
    if not files:
        known = [str(v) for v in project.versions() if not v.is_prerelease]
        close = get_close_matches(version, known, n=3, cutoff=0.6)
        raise LockError(
            f"airflow.version: {AIRFLOW} {version} does not exist on {registry.index_url}",
            hint=(f"did you mean {', '.join(close)}? " if close else "")
            + f"newest releases: {', '.join(known[-5:])}",
        )
    return files


def _check_python(files: list[DistFile], version: str, py: str) -> None:
    unsupported = [f for f in files if not f.supports_python(py)]
    if len(unsupported) == len(files):
        spec = unsupported[0].requires_python
        raise LockError(
            f"target.python: {AIRFLOW} {version} requires Python {spec}; the site's target is {py}",
            hint="set target.python to the interpreter your RHEL 9 hosts run (RHEL 9.4: 3.11.7), "
            "or pick an Airflow release that supports it",
        )


def _check_extras(meta: Message, version: str, extras: Sequence[str]) -> None:
    provided = {canonicalize_name(e) for e in meta.get_all("Provides-Extra") or []}
    unknown = [e for e in extras if canonicalize_name(e) not in provided]
    if unknown:
        hints = []
        for e in unknown:
            close = get_close_matches(canonicalize_name(e), sorted(provided), n=3)
            hints.append(f"{e!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise LockError(
            f"airflow.extras: {AIRFLOW} {version} has no extra {', '.join(hints)}",
            hint=f"its {len(provided)} extras include: {', '.join(sorted(provided)[:12])}, ...",
        )


def _exact_pins(meta: Message) -> dict[str, str]:
    """The release's unconditional `==` dependencies (apache-airflow-core, the task SDK)."""
    exact: dict[str, str] = {}
    for line in meta.get_all("Requires-Dist") or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        specs = list(req.specifier)
        if req.marker is None and len(specs) == 1 and specs[0].operator == "==":
            exact[canonicalize_name(req.name)] = specs[0].version
    return exact


def _yank_notice(proj: Project, name: str, ver: str, version: str) -> list[tuple[str, str]]:
    reason = proj.yank_reason(ver)
    if reason is None:
        return []
    newest = _newest_of_series(proj.versions(include_yanked=False), ver)
    better = f"; the newest release of that series is {newest}" if newest else ""
    return [(
        "warn",
        f"{name} {ver} is yanked on the index ({reason!r}){better}. "
        f"Proceeding because the site pins {AIRFLOW} {version}"
        + (f" (which pins {name} {ver} exactly)" if name != AIRFLOW else ""),
    )]


def _check_providers(providers: Sequence[str], registry: Registry) -> None:
    for provider in providers:
        try:
            registry.project(Requirement(provider).name)
        except InvalidRequirement:
            raise LockError(f"airflow.providers: {provider!r} is not a requirement (name[extras][specifier])") from None
        except RegistryError as exc:
            raise LockError(f"airflow.providers: {exc.message}") from None


def requirements(site: Site, release: Release) -> list[str]:
    extras = ",".join(sorted(canonicalize_name(e) for e in site.airflow.extras))
    top = f"{AIRFLOW}[{extras}]" if extras else AIRFLOW
    reqs = [f"{top}=={site.airflow.version}"]
    # uv refuses a yanked release pulled in as a dependency (3.1.4's core): pin
    # the release's exact dependencies explicitly, which PEP 592 allows.
    reqs += [f"{name}=={ver}" for name, ver in sorted(release.exact_pins.items())]
    reqs += list(site.airflow.providers)
    if canonicalize_name(INSTALLER) not in {canonicalize_name(Requirement(r).name) for r in reqs}:
        reqs.append(INSTALLER)
    return reqs
