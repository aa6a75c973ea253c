"""Signed yum repositories for the tests, and the stand-in rpmdb provider.

The Debian root's rpmdb knows nothing of the Debian packages installed in it,
so RHEL dependency names our RPMs require (python3.11, systemd, shadow-utils,
/bin/sh, ...) cannot resolve. `standin_spec` writes a TEST-ONLY package that
declares one Provides per RHEL name, and only after checking that the root
really has the file or command behind it. It exists only in test runs and is
labelled as a stand-in everywhere it shows (name, summary, description).

It also OWNS RHEL 9's shared directories with RHEL's modes and owners (`RHEL_DIRS`),
as filesystem, systemd, firewalld-filesystem, firewalld and redhat-release do on a
real host: rpm treats a directory two packages own with different modes as a file
conflict, so a package of ours that re-owns one fails the install tests and the
e2e exactly as it would fail on RHEL.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .proc import run

STANDIN_NAME = "e2e-test-standin-rhel-provides"


@dataclass(frozen=True)
class Provide:
    name: str                 # the RHEL package name (or path) our RPMs may require
    evidence: tuple[str, ...]  # paths in the root that must ALL exist (globs allowed)
    deb: str | None = None    # Debian package whose version the Provides carries


# RHEL 9 name -> what in the Debian root stands for it.
RHEL_PROVIDES: tuple[Provide, ...] = (
    Provide("python3.11", ("usr/bin/python3.11",), "python3.11"),
    Provide("python3.11-libs", ("usr/lib/python3.11/os.py", "usr/lib/python3.11/venv/__init__.py"), "python3.11"),
    # venv --with-pip bootstraps from the bundled wheel, as python3.11-pip enables on RHEL.
    Provide("python3.11-pip", ("usr/share/python-wheels/pip-*.whl",), "python3-pip-whl"),
    Provide("python(abi)", ("usr/bin/python3.11",)),  # versioned 3.11 below
    Provide("/usr/bin/python3.11", ("usr/bin/python3.11",)),
    Provide("systemd", ("usr/bin/systemctl", "usr/lib/systemd/systemd"), "systemd"),
    Provide("systemd-libs", ("usr/lib/x86_64-linux-gnu/libsystemd.so.0",), "libsystemd0"),
    Provide("/usr/bin/systemctl", ("usr/bin/systemctl",)),
    Provide("/usr/bin/systemd-sysusers", ("usr/bin/systemd-sysusers",)),
    Provide("/usr/bin/systemd-tmpfiles", ("usr/bin/systemd-tmpfiles",)),
    Provide("shadow-utils", ("usr/sbin/useradd", "usr/sbin/groupadd", "usr/sbin/usermod"), "passwd"),
    Provide("/usr/sbin/useradd", ("usr/sbin/useradd",)),
    Provide("/usr/sbin/groupadd", ("usr/sbin/groupadd",)),
    Provide("util-linux", ("usr/sbin/runuser", "usr/bin/su"), "util-linux"),
    Provide("/usr/sbin/runuser", ("usr/sbin/runuser",)),
    Provide("coreutils", ("usr/bin/install", "usr/bin/ln"), "coreutils"),
    Provide("bash", ("usr/bin/bash",), "bash"),
    Provide("/bin/bash", ("bin/bash",)),
    Provide("/bin/sh", ("bin/sh",)),
    Provide("/usr/bin/sh", ("usr/bin/sh",)),
    Provide("glibc", ("usr/lib/x86_64-linux-gnu/libc.so.6",), "libc6"),
    Provide("glibc-common", ("usr/bin/getent", "usr/bin/locale"), "libc-bin"),
    Provide("/usr/bin/getent", ("usr/bin/getent",)),
    Provide("procps-ng", ("usr/bin/ps", "usr/bin/pgrep"), "procps"),
    Provide("krb5-workstation", ("usr/bin/kinit", "usr/bin/klist", "usr/bin/kdestroy"), "krb5-user"),
    Provide("krb5-libs", ("usr/lib/x86_64-linux-gnu/libkrb5.so.3", "usr/lib/x86_64-linux-gnu/libgssapi_krb5.so.2"),
            "libkrb5-3"),
    Provide("openldap", ("usr/lib/x86_64-linux-gnu/libldap-2.5.so.0",), "libldap-2.5-0"),
    Provide("cyrus-sasl-lib", ("usr/lib/x86_64-linux-gnu/libsasl2.so.2",), "libsasl2-2"),
    Provide("ca-certificates", ("etc/ssl/certs/ca-certificates.crt",), "ca-certificates"),
    Provide("gnupg2", ("usr/bin/gpg",), "gpg"),
    Provide("sed", ("usr/bin/sed",), "sed"),
    Provide("grep", ("usr/bin/grep",), "grep"),
    Provide("findutils", ("usr/bin/find",), "findutils"),
    Provide("tar", ("usr/bin/tar",), "tar"),
    # Compile-on-target (only in a root with COMPILE_PACKAGES; elsewhere skipped for lack of evidence).
    Provide("gcc", ("usr/bin/gcc",), "gcc"),
    Provide("gcc-c++", ("usr/bin/g++",), "g++"),
    Provide("python3.11-devel", ("usr/include/python3.11/Python.h",), "libpython3.11-dev"),
    Provide("krb5-devel", ("usr/bin/krb5-config", "usr/include/krb5.h"), "libkrb5-dev"),
    Provide("openldap-devel", ("usr/include/ldap.h",), "libldap-dev"),
    Provide("cyrus-sasl-devel", ("usr/include/sasl/sasl.h",), "libsasl2-dev"),
    Provide("filesystem", ("etc", "opt", "usr/bin", "usr/libexec", "var/log")),
    # Debian's firewalld ships the same /usr/lib/firewalld tree as RHEL's firewalld-filesystem.
    Provide("firewalld-filesystem", ("usr/lib/firewalld/services", "usr/lib/firewalld/zones"), "firewalld"),
    Provide("firewalld", ("usr/sbin/firewalld", "usr/bin/firewall-offline-cmd"), "firewalld"),
    Provide("redis", ("usr/bin/redis-server",), "redis-server"),
    Provide("postgresql", ("usr/bin/pg_dump", "usr/bin/pg_restore", "usr/bin/psql"), "postgresql-client"),
)


@dataclass(frozen=True)
class OwnedDir:
    path: str
    mode: int
    rhel_owner: str      # the RHEL 9 package that owns it there
    user: str = "root"
    group: str = "root"


# RHEL 9.4's owners and modes (rpm -qf / rpm -q --dump on a RHEL 9 host). Kept here, apart
# from the engine's own list (builder/rpm/dirs.py), so the install tests check the engine
# instead of repeating it; tests/test_rpm_build.py checks the two agree.
RHEL_DIRS: tuple[OwnedDir, ...] = (
    OwnedDir("/etc", 0o755, "filesystem"),
    OwnedDir("/etc/sysconfig", 0o755, "filesystem"),
    OwnedDir("/etc/pki", 0o755, "filesystem"),
    OwnedDir("/etc/pki/rpm-gpg", 0o755, "redhat-release"),
    OwnedDir("/etc/yum.repos.d", 0o755, "redhat-release"),
    OwnedDir("/etc/firewalld", 0o750, "firewalld"),
    OwnedDir("/opt", 0o755, "filesystem"),
    OwnedDir("/usr/bin", 0o555, "filesystem"),
    OwnedDir("/usr/sbin", 0o555, "filesystem"),
    OwnedDir("/usr/lib", 0o555, "filesystem"),
    OwnedDir("/usr/libexec", 0o755, "filesystem"),
    OwnedDir("/usr/share/doc", 0o755, "filesystem"),
    OwnedDir("/usr/lib/systemd", 0o755, "systemd"),
    OwnedDir("/usr/lib/systemd/system", 0o755, "systemd"),
    OwnedDir("/usr/lib/systemd/system-preset", 0o755, "systemd"),
    OwnedDir("/usr/lib/sysusers.d", 0o755, "systemd"),
    OwnedDir("/usr/lib/tmpfiles.d", 0o755, "systemd"),
    OwnedDir("/usr/lib/firewalld", 0o755, "firewalld-filesystem"),
    OwnedDir("/usr/lib/firewalld/services", 0o755, "firewalld-filesystem"),
    OwnedDir("/usr/lib/firewalld/zones", 0o755, "firewalld-filesystem"),
    OwnedDir("/var/log", 0o755, "filesystem"),
)


def _exists(root: Path, pattern: str) -> bool:
    if any(c in pattern for c in "*?["):
        return any(root.glob(pattern))
    path = root / pattern
    return path.exists() or path.is_symlink() and (root / path.readlink().as_posix().lstrip("/")).exists()


def _deb_versions(root: Path) -> dict[str, str]:
    """Upstream versions of the Debian packages installed in the root (epoch and revision dropped)."""
    versions: dict[str, str] = {}
    status = (root / "var/lib/dpkg/status").read_text(errors="replace")
    for block in status.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", block, re.M))
        if "Package" in fields and "Version" in fields and "installed" in fields.get("Status", ""):
            upstream = fields["Version"].split(":", 1)[-1].rsplit("-", 1)[0]
            versions[fields["Package"]] = re.sub(r"[~+].*$", "", upstream)
    return versions


def checked_provides(root: Path, extra: Sequence[Provide] = ()) -> tuple[list[str], list[str]]:
    """(Provides lines the root backs, names skipped with the reason)."""
    versions = _deb_versions(root)
    lines, skipped = [], []
    for p in (*RHEL_PROVIDES, *extra):
        missing = [e for e in p.evidence if not _exists(root, e)]
        if missing:
            skipped.append(f"{p.name}: root lacks {', '.join(missing)}")
            continue
        if p.name == "python(abi)":
            lines.append("python(abi) = 3.11")
        elif p.deb and versions.get(p.deb):
            lines.append(f"{p.name} = {versions[p.deb]}")
        else:
            lines.append(p.name)
    return lines, skipped


# RHEL 9's systemd package runs these file triggers for every package that ships units,
# sysusers.d or tmpfiles.d files (that is why %systemd_post presets with --no-reload). Debian's
# systemd is no RPM, so without them a unit enabled in %post stays unknown to the running
# manager until something else reloads it. Same bodies as systemd 252's spec.
SYSTEMD_FILE_TRIGGERS = """\
%transfiletriggerin -P 900900 -- /usr/lib/systemd/system /etc/systemd/system
if test -d /run/systemd/system; then
    /usr/bin/systemctl daemon-reload || :
    /usr/bin/systemctl reload-or-restart --marked || :
fi

%transfiletriggerpostun -P 1000100 -- /usr/lib/systemd/system /etc/systemd/system
if test -d /run/systemd/system; then
    /usr/bin/systemctl daemon-reload || :
fi

%transfiletriggerin -P 100700 -- /usr/lib/sysusers.d
/usr/bin/systemd-sysusers || :

%transfiletriggerin -P 100500 -- /usr/lib/tmpfiles.d
/usr/bin/systemd-tmpfiles --create || :
"""


def standin_spec(root: Path, extra: Sequence[Provide] = ()) -> tuple[str, list[str]]:
    """The stand-in's spec file text, and what was left out (and why)."""
    provides, skipped = checked_provides(root, extra)
    checked = "\n".join(f"  {line}" for line in provides)
    body = "\n".join(f"Provides: {line}" for line in provides)
    has_systemd = any(line.startswith("systemd =") for line in provides)
    triggers = SYSTEMD_FILE_TRIGGERS if has_systemd else ""
    if not has_systemd:
        skipped.append("systemd file triggers: the root has no systemd")
    mkdirs = "\n".join(f"mkdir -p %{{buildroot}}{d.path}" for d in RHEL_DIRS)
    owned = "\n".join(f"%dir %attr({d.mode:04o},{d.user},{d.group}) {d.path}" for d in RHEL_DIRS)
    owners = textwrap.fill(", ".join(f"{d.path} ({d.rhel_owner})" for d in RHEL_DIRS) + ".", 76)
    spec = f"""\
# TEST-ONLY STAND-IN. Generated by tests/e2e/repo.py for a Debian 12 test root.
Name: {STANDIN_NAME}
Version: 1
Release: 1
Summary: TEST-ONLY stand-in: RHEL package names this Debian 12 test root really has
License: Apache-2.0
BuildArch: noarch
{body}

%description
TEST-ONLY STAND-IN, never for a real host. The rpmdb of the Debian 12 root used
by airflow-prod's end-to-end test knows nothing of its Debian packages; this
package declares the RHEL 9 names that the root really provides, each emitted
only after checking the file or command behind it exists:
{checked}
{"It also runs the file triggers of RHEL 9's systemd package (daemon-reload, sysusers," if triggers else ""}
{"tmpfiles after a transaction that ships such files)." if triggers else ""}
It owns, with RHEL 9's modes and owners, the directories RHEL 9's own packages
own there:
{owners}

%install
{mkdirs}

{triggers}
%files
{owned}
"""
    return spec, skipped


def build_rpm(spec_text: str, out_dir: Path, name: str) -> Path:
    """rpmbuild -bb a small spec in its own _topdir; returns the RPM."""
    top = Path(tempfile.mkdtemp(prefix="rpmbuild-", dir=out_dir))
    spec = top / f"{name}.spec"
    spec.write_text(spec_text)
    run(["rpmbuild", "-bb", "--define", f"_topdir {top}", "--define", "_buildhost e2e.invalid", spec])
    rpms = sorted((top / "RPMS").rglob("*.rpm"))
    assert len(rpms) == 1, rpms
    dest = out_dir / rpms[0].name
    rpms[0].replace(dest)
    return dest


@dataclass(frozen=True)
class SigningKey:
    """A throwaway gpg key made for one test session."""

    home: Path
    name: str
    fingerprint: str
    public: Path

    @classmethod
    def create(cls, home: Path, name: str = "airflow-prod e2e throwaway key <e2e@bigdata.test>") -> SigningKey:
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        env = {"GNUPGHOME": str(home)}
        run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
             "--quick-gen-key", name, "rsa2048", "sign", "1d"], env=env)
        colons = run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=env).stdout
        fpr = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
        public = home / "RPM-GPG-KEY-e2e"
        public.write_text(run(["gpg", "--batch", "--armor", "--export", fpr], env=env).stdout)
        return cls(home, name, fpr, public)

    @property
    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.home)}

    def close(self) -> None:
        """Stop the gpg-agent this key's home started (gpg starts one on demand)."""
        run(["gpgconf", "--homedir", self.home, "--kill", "gpg-agent"], env=self.env, check=False)

    def sign_rpms(self, rpms: Sequence[Path]) -> None:
        # Debian's rpm points %__gpg at /usr/bin/gpg2, which Debian 12 does not ship.
        run(["rpmsign", "--addsign", "--define", f"__gpg {shutil.which('gpg') or '/usr/bin/gpg'}",
             "--define", f"_gpg_name {self.fingerprint}", "--define", f"_gpg_path {self.home}",
             *map(str, rpms)], env=self.env)

    def sign_file(self, path: Path) -> Path:
        asc = path.with_name(path.name + ".asc")
        run(["gpg", "--batch", "--yes", "--armor", "--detach-sign", "-u", self.fingerprint,
             "-o", asc, path], env=self.env)
        return asc


def make_repo(repo_dir: Path, rpms: Sequence[Path], key: SigningKey | None) -> Path:
    """A yum repository (xz metadata: RHEL 9's dnf reads it); signed RPMs and repomd.xml with `key`."""
    repo_dir.mkdir(parents=True, exist_ok=True)
    placed = []
    for rpm in rpms:
        dest = repo_dir / rpm.name
        dest.write_bytes(rpm.read_bytes())
        placed.append(dest)
    if key:
        key.sign_rpms(placed)
        (repo_dir / key.public.name).write_text(key.public.read_text())
    run(["createrepo_c", "--general-compress-type=xz", "--checksum=sha256", repo_dir])
    if key:
        key.sign_file(repo_dir / "repodata" / "repomd.xml")
    return repo_dir


def repo_file(repo_id: str, baseurl: str, gpgkey: str, repo_gpgcheck: bool = True) -> str:
    """A .repo file as an admin writes it for a Satellite-mirrored repository (gpgcheck always on)."""
    return "\n".join([
        f"[{repo_id}]", f"name={repo_id} (airflow-prod e2e)", f"baseurl={baseurl}", "enabled=1",
        "gpgcheck=1", f"repo_gpgcheck={int(repo_gpgcheck)}", f"gpgkey={gpgkey}",
    ]) + "\n"
