"""Overrides: a package the site takes above the release's constraints (or date cutoff) for a fix.

`[airflow.overrides.<package>]` names a version (or a PEP 440 specifier) and the advisories
it fixes. Before anything resolves, `plan` turns each into a release on the index:

    choose     the newest non-yanked release the specifier allows that supports the target's
               Python and whose own requirements on apache-airflow, -core and -task-sdk accept
               the site's release; none: an error naming the conflicting requirement
    raise      its requirements the release's constraints (a pin) or date cutoff cannot meet
               (FAB 3.7.2 needs flask-appbuilder==5.2.1, uploaded after 3.1.4's cutoff) are
               released with it, to what the index held when the override was uploaded

The resolver then gets `name==version` as a requirement (never uv's --override, which would
ignore what every other package declares about it: the lock stays consistent), the package
and the raised ones dropped from the constraints, and a per-package cutoff at the override's
upload for a date-cutoff lock. The lock header records each one (`overrides:`), so does the
wheelhouse manifest, and `bundle audit` reads the reasons back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from builder import target
from builder.pydeps.index import Project, Registry, RegistryError
from builder.pydeps.lockfile import LockError, LockOverride, iso
from builder.pydeps.method import Method
from builder.pydeps.release import AIRFLOW, Release
from builder.report import Notify, emit
from builder.site.model import Override, Site


@dataclass(frozen=True)
class Planned:
    """One override as the resolver gets it."""

    name: str                  # canonical
    asked: str                 # the site's version or specifier, as written
    version: str               # the release chosen
    reasons: tuple[str, ...]
    cutoff: datetime | None    # just after its upload: what the raised packages may be as new as
    raised: tuple[str, ...]    # its requirements the release's constraints or cutoff could not meet

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def recorded(self) -> LockOverride:
        return LockOverride(self.name, self.version, self.asked, self.reasons, self.raised)


def plan(site: Site, release: Release, method: Method, registry: Registry,
         notify: Notify = emit) -> tuple[Planned, ...]:
    """Each of the site's overrides, chosen on the index and checked against the site's release."""
    pinned = {canonicalize_name(AIRFLOW): site.airflow.version, **release.exact_pins}
    constrained = _constraint_pins(method.constraints_text)
    planned = []
    for written, override in sorted(site.airflow.overrides.items()):
        name = canonicalize_name(written)
        key = f"airflow.overrides.{written}"
        project = _project(registry, name, key)
        version, requires, uploaded = _choose(site, project, override, pinned, registry, key, notify)
        cutoff = _just_after(uploaded) if uploaded else None
        raised = tuple(sorted(r for r in _unmet(requires, site, method, constrained, registry)
                              if r not in pinned))
        planned.append(Planned(name, override.version, version, override.reason, cutoff, raised))
        more = f"; raises with it {', '.join(raised)} (its requirements the release cannot meet)" if raised else ""
        notify("info", f"{key}: taking {name} {version} for {', '.join(override.reason)}{more}")
    return tuple(planned)


def requirements(reqs: Sequence[str], planned: Sequence[Planned]) -> list[str]:
    """The resolver's requirements: an overridden package's own entries replaced by its pin."""
    names = {p.name for p in planned}
    kept = [r for r in reqs if _name(r) not in names]
    return kept + [p.requirement for p in planned]


def constraints(text: str | None, planned: Sequence[Planned]) -> str | None:
    """The constraints without the overridden and raised packages."""
    if text is None or not planned:
        return text
    dropped = {n for p in planned for n in (p.name, *p.raised)}
    return "\n".join(line for line in text.splitlines() if _name(line) not in dropped) + "\n"


def package_cutoffs(method: Method, planned: Sequence[Planned]) -> dict[str, str]:
    """uv's --exclude-newer-package for a date-cutoff lock: an override and what it raises may be
    as new as the override's upload (never older than the release's cutoff)."""
    if method.cutoff is None:
        return {}
    out: dict[str, str] = {}
    for p in planned:
        when = max(method.cutoff, p.cutoff or method.cutoff)
        for name in (p.name, *p.raised):
            out[name] = iso(max(when, _parse(out[name])) if name in out else when)
    return out


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _name(line: str) -> str | None:
    text = line.split("#", 1)[0].strip()
    if not text or text.startswith("-"):
        return None
    try:
        return canonicalize_name(Requirement(text.split(" \\")[0]).name)
    except InvalidRequirement:
        return None


def _constraint_pins(text: str | None) -> dict[str, Requirement]:
    found = {}
    for line in (text or "").splitlines():
        name = _name(line)
        if name:
            found[name] = Requirement(line.split("#", 1)[0].strip())
    return found


def _project(registry: Registry, name: str, key: str) -> Project:
    try:
        return registry.project(name)
    except RegistryError as exc:
        raise LockError(f"{key}: {exc.message}") from None


def _just_after(when: datetime) -> datetime:
    """The next whole minute after `when`, plus one (as the release's cutoff is taken)."""
    return (when + timedelta(minutes=1)).replace(second=0, microsecond=0) + timedelta(minutes=1)


def _choose(site: Site, project: Project, override: Override, pinned: dict[str, str], registry: Registry,
            key: str, notify: Notify) -> tuple[str, list[Requirement], datetime | None]:
    """The newest release the override allows that installs with the site's release."""
    spec = override.specifier
    py = site.target.python
    allowed = [v for v in spec.filter(project.versions(include_yanked=False))
               if any(f.supports_python(py) for f in project.release(str(v)))]
    if not allowed:
        yanked = [str(v) for v in spec.filter(project.versions()) if project.yank_reason(str(v))]
        newest = [str(v) for v in project.versions(include_yanked=False) if not v.is_prerelease][-5:]
        why = f" (yanked: {', '.join(yanked)})" if yanked else ""
        raise LockError(f"{key}: version = {override.version!r}: no release of {project.name} on the index "
                        f"matches it for Python {py}{why}", hint=f"newest releases: {', '.join(newest)}")
    first_conflict = None
    for version in sorted(allowed, reverse=True):
        requires, uploaded = _requires(project, version, site, registry, key)
        conflict = _conflict(requires, pinned)
        if conflict is None:
            if first_conflict is not None:
                notify("info", f"{key}: {first_conflict}; taking {version}, the newest that installs with it")
            return str(version), requires, uploaded
        first_conflict = first_conflict or f"{project.name} {version} {conflict}"
    raise LockError(
        f"{key}: version = {override.version!r}: {first_conflict}: it cannot install with this release",
        hint="pick a version whose requirements accept the site's Airflow, or move airflow.version",
    )


def _requires(project: Project, version: Version, site: Site, registry: Registry,
              key: str) -> tuple[list[Requirement], datetime | None]:
    """The release's unconditional requirements for the target (no extras), and its upload time."""
    files = project.release(str(version))
    uploads = [f.upload_time for f in files if f.upload_time]
    wheels = [f for f in files if f.is_wheel]
    if not wheels:
        raise LockError(f"{key}: {project.name} {version} has no wheel on the index: its requirements "
                        "cannot be checked against the site's release")
    try:
        meta = registry.metadata(wheels[0])
    except RegistryError as exc:
        raise LockError(f"{key}: {exc.message}") from None
    env = target.marker_environment(site.target)
    requires = []
    for line in meta.get_all("Requires-Dist") or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is None or req.marker.evaluate(env):
            requires.append(req)
    return requires, max(uploads) if uploads else None


def _conflict(requires: list[Requirement], pinned: dict[str, str]) -> str | None:
    """Which of its requirements the site's release does not meet, as its metadata writes it."""
    for req in requires:
        have = pinned.get(canonicalize_name(req.name))
        if have is not None and not req.specifier.contains(have, prereleases=True):
            return (f"requires {req.name}{req.specifier} (its Requires-Dist), and the site's release pins "
                    f"{canonicalize_name(req.name)} {have}")
    return None


def _unmet(requires: list[Requirement], site: Site, method: Method, constrained: dict[str, Requirement],
           registry: Registry) -> list[str]:
    """Its requirements no release the constraints or the date cutoff allow can meet."""
    unmet: list[str] = []
    for req in requires:
        name = str(canonicalize_name(req.name))
        spec = req.specifier
        if method.cutoff is not None and not _any_before(registry, name, spec, method.cutoff, site.target.python):
            unmet.append(name)
        elif name in constrained and not _meets(constrained[name].specifier, spec):
            unmet.append(name)
    return unmet


def _meets(constraint: SpecifierSet, spec: SpecifierSet) -> bool:
    """A constraint that pins a version (==X) meets `spec` if X does; anything else is left to the resolver."""
    exact = [s.version for s in constraint if s.operator == "=="]
    return not exact or all(spec.contains(v, prereleases=True) for v in exact)


def _any_before(registry: Registry, name: str, spec: SpecifierSet, cutoff: datetime, py: str) -> bool:
    try:
        project = registry.project(name)
    except RegistryError:
        return True  # the resolver names a missing project itself
    usable = {f.version for f in project.files
              if f.version is not None and f.yanked is None and f.upload_time is not None
              and f.upload_time <= cutoff and f.supports_python(py)}
    return any(True for _ in spec.filter(sorted(v for v in usable if v is not None)))
