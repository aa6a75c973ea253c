"""Which directories are ours, and which belong to RHEL 9's own packages.

rpm treats a directory that two packages own with a different mode or owner as
a file conflict: RHEL's firewalld-filesystem owns /usr/lib/firewalld 0755, so a
package owning it 0750 cannot be installed next to it ("Transaction test
error: file /usr/lib/firewalld ... conflicts with file from package
firewalld-filesystem"). The rule (Fedora/RHEL packaging guidelines): own only
your own directories, and `Requires:` the package that owns a shared one.

`RHEL9_SHARED` is the list of RHEL 9 directories our files go into (or could),
with the package that owns each and its mode. `check_packages` is run on every
plan before rpmbuild sees it, and fails with the reason when a package
- owns a shared directory,
- ships something under a shared directory without requiring its owner,
- ships something in a directory nobody owns (neither RHEL nor us) under /usr, /etc,
  /var or one of our own directories (a site's home elsewhere, /data/airflow, may
  well sit in an unowned /data), or
- ships a file under /etc that is not %config.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from builder.errors import BundleError


class PackagingError(BundleError):
    """A package plan breaks RHEL 9's ownership of shared directories."""


@dataclass(frozen=True)
class SharedDir:
    path: str
    owner: str            # the RHEL 9 package that owns it (what our packages require)
    mode: int             # its mode there
    user: str = "root"
    group: str = "root"


# RHEL 9.4. filesystem owns the FHS skeleton (/usr/bin and /usr/lib are 0555 there);
# systemd owns its unit, preset, sysusers.d and tmpfiles.d directories; firewalld-filesystem
# (BaseOS, no daemon) owns /usr/lib/firewalld and its subdirectories, firewalld owns
# /etc/firewalld 0750; redhat-release owns the repository and key directories.
RHEL9_SHARED: dict[str, SharedDir] = {d.path: d for d in (
    SharedDir("/", "filesystem", 0o555),
    SharedDir("/etc", "filesystem", 0o755),
    SharedDir("/etc/sysconfig", "filesystem", 0o755),
    SharedDir("/etc/pki", "filesystem", 0o755),
    SharedDir("/etc/pki/rpm-gpg", "redhat-release", 0o755),
    SharedDir("/etc/yum.repos.d", "redhat-release", 0o755),
    SharedDir("/etc/firewalld", "firewalld", 0o750),
    SharedDir("/opt", "filesystem", 0o755),
    SharedDir("/usr", "filesystem", 0o755),
    SharedDir("/usr/bin", "filesystem", 0o555),
    SharedDir("/usr/sbin", "filesystem", 0o555),
    SharedDir("/usr/lib", "filesystem", 0o555),
    SharedDir("/usr/libexec", "filesystem", 0o755),
    SharedDir("/usr/share", "filesystem", 0o755),
    SharedDir("/usr/share/doc", "filesystem", 0o755),
    SharedDir("/usr/lib/systemd", "systemd", 0o755),
    SharedDir("/usr/lib/systemd/system", "systemd", 0o755),
    SharedDir("/usr/lib/systemd/system-preset", "systemd", 0o755),
    SharedDir("/usr/lib/sysusers.d", "systemd", 0o755),
    SharedDir("/usr/lib/tmpfiles.d", "systemd", 0o755),
    SharedDir("/usr/lib/firewalld", "firewalld-filesystem", 0o755),
    SharedDir("/usr/lib/firewalld/services", "firewalld-filesystem", 0o755),
    SharedDir("/usr/lib/firewalld/zones", "firewalld-filesystem", 0o755),
    SharedDir("/var", "filesystem", 0o755),
    SharedDir("/var/lib", "filesystem", 0o755),
    SharedDir("/var/log", "filesystem", 0o755),
    SharedDir("/run", "filesystem", 0o755),
)}

# Owners every RHEL 9 host has (filesystem is in every minimal install): requiring them is
# harmless, but we do not make every package say so.
IMPLICIT_OWNERS = frozenset({"filesystem"})


def parents(path: str) -> list[str]:
    """Every ancestor directory of an absolute path, nearest first (without '/')."""
    out = []
    head = path.rstrip("/")
    while "/" in head.lstrip("/"):
        head = head.rsplit("/", 1)[0]
        out.append(head)
    return out


def owners_needed(paths: Iterable[str]) -> dict[str, str]:
    """RHEL owner package -> one shared directory that needs it, for the given payload paths."""
    needed: dict[str, str] = {}
    for path in paths:
        for parent in parents(path):
            shared = RHEL9_SHARED.get(parent)   # owning it ourselves is no excuse
            if shared and shared.owner not in IMPLICIT_OWNERS:
                needed.setdefault(shared.owner, parent)
    return needed


def _dep_names(deps: Iterable[str]) -> set[str]:
    return {d.split()[0] for d in deps}


def check_packages(packages: Iterable, also_owned: Iterable[str] = ()) -> None:
    """Raise PackagingError listing every ownership problem of these RpmPackages.

    `also_owned`: directories another of our specs owns (the wheelhouse's, for the site spec).
    """
    packages = list(packages)
    own_dirs = {e.dest for p in packages for e in p.entries if e.kind == "dir"} | set(also_owned)
    problems = []
    for pkg in packages:
        deps = _dep_names((*pkg.requires, *pkg.requires_pre, *pkg.requires_post))
        for e in pkg.entries:
            shared = RHEL9_SHARED.get(e.dest)
            if e.kind == "dir" and shared:
                problems.append(
                    f"{pkg.name} owns {e.dest} ({e.mode:04o} {e.owner}:{e.group}), which RHEL 9's "
                    f"{shared.owner} owns ({shared.mode:04o} {shared.user}:{shared.group}): "
                    f"drop it and require {shared.owner}")
            if e.kind != "dir" and e.dest.startswith("/etc/") and not e.config:
                problems.append(f"{pkg.name} ships {e.dest} under /etc but not as %config: "
                                "move it (e.g. to /usr/share/doc) or make it configuration")
            parent = parents(e.dest)[0] if parents(e.dest) else "/"
            ours = any(a in own_dirs for a in parents(parent))
            if parent not in own_dirs and parent not in RHEL9_SHARED and (
                    ours or parent.startswith(("/usr/", "/etc/", "/var/"))):
                problems.append(f"{pkg.name} ships {e.dest} but nobody owns {parent}: "
                                "add it to the package's directories (with its mode)")
        for owner, where in sorted(owners_needed(e.dest for e in pkg.entries).items()):
            if owner not in deps:
                problems.append(f"{pkg.name} ships files under {where} (owned by {owner} on RHEL 9) "
                                f"but does not require {owner}")
    if problems:
        raise PackagingError(
            "the packages would conflict with RHEL 9's own packages:\n" + "\n".join(f"  - {p}" for p in problems),
            hint="builder/rpm/dirs.py lists RHEL 9's shared directories and their owners",
        )
