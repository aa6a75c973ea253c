"""The booted target host stand-in: a debootstrapped Debian 12 root under systemd-nspawn.

Debian 12 has systemd 252, as RHEL 9 does. The root is built once with
debootstrap and cached as a tarball under ~/.cache/airflow-prod/ (keyed by
its package list and this recipe's version); each test run unpacks it into
a temp directory and boots it:

    systemd-nspawn -D ROOT --boot --register=no --keep-unit --console=pipe

The host's PID 1 is not systemd and there is no system bus, so machinectl and
`systemctl -M` do not work: every command inside goes through
`nsenter -t <container PID 1> -a`. The container shares the host's network,
so servers on 127.0.0.1 are reachable from inside (and the api-server's port
from outside).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .proc import CommandFailed, Daemon, run, stop_pid, wait_until

# What the stand-in needs beyond debootstrap's minbase, and why.
ROOT_PACKAGES = (
    "python3", "python3-venv",        # /usr/bin/python3.11 (3.11.2) and venv with ensurepip
    "passwd",                          # useradd/groupadd (RHEL: shadow-utils)
    "systemd", "systemd-sysv", "dbus", # a real init: systemd 252 like RHEL 9
    "procps",                          # ps, pgrep for diagnostics
    "rpm", "dnf",                      # Debian's rpm 4.18 / dnf 4: install our RPMs
    "gnupg",                           # dnf/librepo verify repomd.xml signatures with gpgme
    "krb5-user",                       # kinit, klist (RHEL: krb5-workstation)
    "libldap-2.5-0", "libsasl2-2",     # what the host-built python-ldap wheel links
    "ca-certificates",
    # firewalld's own loader reads our service files (firewall-offline-cmd); the daemon is
    # masked: this host shares the machine's network, whose firewall is not ours to touch.
    "firewalld",
    "netbase",                         # /etc/protocols (RHEL: setup); firewalld's loader needs it
    # RHEL's `redis` for sites with a local broker (Requires: redis); masked like firewalld,
    # the tests' Redis runs on the machine's loopback.
    "redis-server",
    # RHEL's `postgresql` (client tools) for airflow-db-migrate's backup before a migration
    # (pg_dump, pg_restore, psql: Requires: postgresql on the migrate host's package).
    "postgresql-client",
    # Hardened RHEL 9 (STIG): fapolicyd 1.1.7 for its real fapolicyd-cli (build-venv trusts the
    # venv in a trust file); the daemon is masked, started only by the test that proves it.
    "fapolicyd",
    # selinuxenabled and restorecon, as RHEL has them: this kernel has no SELinux, so they
    # prove the disabled path (docs/testing.md says what only a RHEL host can prove).
    "selinux-utils", "policycoreutils",
)
# Compile-on-target (native_builder = "target", the e2e sites' default): what RHEL's gcc
# gcc-c++ krb5-devel openldap-devel cyrus-sasl-devel python3.11-devel are here. A root of its
# own (another cache key): the other booted-host tests keep a root without compilers, as
# production hosts built with docker or on RHEL should be.
COMPILE_PACKAGES = ("gcc", "g++", "libkrb5-dev", "libldap2-dev", "libsasl2-dev", "python3.11-dev")
SUITE = "bookworm"
# Bump when the post-debootstrap preparation below changes: it is part of the cache key.
RECIPE_VERSION = 4
# Installed with apt in the finished root, not by debootstrap: debootstrap's one-pass
# configure fails on polkitd (which firewalld depends on); apt orders it right.
AFTER_DEBOOTSTRAP = ("firewalld", "redis-server")
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "airflow-prod" / "e2e-target"
MIRROR = os.environ.get("AIRFLOW_PROD_DEBIAN_MIRROR", "http://deb.debian.org/debian")
MASKED_UNITS = ("firewalld.service", "redis-server.service", "fapolicyd.service",
                # their aliases too (D-Bus activation of firewalld; RHEL's name for Redis)
                "dbus-org.fedoraproject.FirewallD1.service", "redis.service")
INNER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Every booted host is hardened like a DISA STIG / CIS RHEL 9 host unless a test asks
# otherwise: the temp directories hold data, never code, and dnf runs with root's umask 077.
HARDENED_TMP = ("/tmp", "/var/tmp")
HARDENED_TMP_OPTIONS = ("noexec", "nosuid", "nodev")
HARDENED_UMASK = "077"
# fapolicyd, enforcing, when a test asks for it (TargetHost.enforce_fapolicyd). nspawn's default
# seccomp filter refuses fanotify; these two are allowed at every boot (a filter only adds).
FANOTIFY_SYSCALLS = "fanotify_init fanotify_mark"
# RHEL 9's default rules.d: upstream's "known-libs" set, copied from the sample rules that
# Debian's fapolicyd 1.1.7 ships (the same upstream files RHEL's package installs).
FAPOLICYD_RULES = ("10-languages", "20-dracut", "21-updaters", "30-patterns", "40-bad-elf",
                   "41-shared-obj", "42-trusted-elf", "70-trusted-lang", "72-shell",
                   "90-deny-execute", "95-allow-open")
# Debian's fapolicyd has no rpm backend: RHEL's "the rpmdb is trusted" is emulated with two
# file trust lists, the OS (every file under /usr, as RHEL's packages own them) and the files
# rpm installed (`rpm -qal`, rewritten after each transaction as RHEL's rpm plugin tells the
# daemon). TEST-ONLY names, so nobody mistakes them for the product's airflow-prod list.
FAPOLICYD_OS_TRUST = "e2e-standin-os"
FAPOLICYD_RPM_TRUST = "e2e-standin-rpmdb"


def missing_host_tools() -> list[str]:
    """Tools this machine needs to build and boot the stand-in (empty when all present)."""
    tools = ("debootstrap", "systemd-nspawn", "nsenter", "tar", "zstd")
    return [t for t in tools if not shutil.which(t)]


# --- the cached root --------------------------------------------------------------

@dataclass(frozen=True)
class RootImage:
    """A debootstrapped root, cached as a zstd tarball keyed by what went into it."""

    packages: tuple[str, ...] = ROOT_PACKAGES
    suite: str = SUITE
    cache_dir: Path = CACHE_DIR

    @property
    def key(self) -> str:
        recipe = json.dumps({"suite": self.suite, "variant": "minbase", "packages": sorted(self.packages),
                             "recipe": RECIPE_VERSION}, sort_keys=True)
        return hashlib.sha256(recipe.encode()).hexdigest()[:16]

    @property
    def tarball(self) -> Path:
        return self.cache_dir / f"target-root-{self.suite}-{self.key}.tar.zst"

    @property
    def manifest(self) -> Path:
        return self.tarball.with_suffix("").with_suffix(".json")

    def info(self) -> dict:
        return json.loads(self.manifest.read_text()) if self.manifest.exists() else {}

    def ensure(self) -> Path:
        """The tarball, building it first if it is not cached (~80 s with a reachable mirror)."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_dir / f".{self.tarball.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs never debootstrap the same root at once
            if not self.tarball.exists():
                self._build()
        return self.tarball

    def _build(self) -> None:
        work = Path(tempfile.mkdtemp(prefix=f".build-{self.key}-", dir=self.cache_dir))
        root = work / "root"
        try:
            t0 = time.monotonic()
            first = [p for p in self.packages if p not in AFTER_DEBOOTSTRAP]
            run(["debootstrap", "--variant=minbase", f"--include={','.join(first)}",
                 self.suite, root, MIRROR], timeout=1800)
            _apt_install(root, [p for p in self.packages if p in AFTER_DEBOOTSTRAP])
            debootstrap_s = time.monotonic() - t0
            _prepare_root(root)
            facts = _root_facts(root)
            t1 = time.monotonic()
            partial = work / self.tarball.name
            run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd -T0 -3",
                 "-C", root, "-cf", partial, "."], timeout=900)
            tar_s = time.monotonic() - t1
            os.replace(partial, self.tarball)
            self.manifest.write_text(json.dumps({
                "suite": self.suite, "packages": sorted(self.packages), "recipe": RECIPE_VERSION,
                "mirror": MIRROR, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "debootstrap_seconds": round(debootstrap_s, 1), "tar_seconds": round(tar_s, 1),
                "tarball_bytes": self.tarball.stat().st_size, **facts,
            }, indent=2, sort_keys=True) + "\n")
        finally:
            try:
                _remove_tree(work)
            except CommandFailed as exc:  # never mask the build's own error with this one
                print(f"warning: {exc}", file=sys.stderr)


def _apt_install(root: Path, packages: Sequence[str]) -> None:
    """apt-get install in the root, no service started (policy-rc.d 101, as debootstrap does)."""
    if not packages:
        return
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    proc_dir = root / "proc"
    run(["mount", "-t", "proc", "proc", proc_dir])
    try:
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": INNER_PATH, "LANG": "C.UTF-8"}
        run(["chroot", root, "apt-get", "update", "-q"], env=env, timeout=600)
        run(["chroot", root, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
            env=env, timeout=1200)
        run(["chroot", root, "apt-get", "clean"], env=env)
    finally:
        run(["umount", proc_dir])
        policy.unlink()
    for lists in (root / "var/lib/apt/lists").glob("*_*"):
        lists.unlink()


def _prepare_root(root: Path) -> None:
    """Make the Debian root behave like the RHEL hosts our RPMs are written for."""
    # Debian's rpm keeps its database in ~/.rpmdb; RHEL's (and our scriptlets') is /var/lib/rpm.
    (root / "etc/rpm").mkdir(parents=True, exist_ok=True)
    (root / "etc/rpm/macros.dbpath").write_text("%_dbpath /var/lib/rpm\n")
    (root / "var/lib/rpm").mkdir(parents=True, exist_ok=True)
    run(["chroot", root, "rpm", "--initdb"])
    # No system-release package in the rpmdb: tell dnf the release like a RHEL 9 host has it.
    (root / "etc/dnf/vars").mkdir(parents=True, exist_ok=True)
    (root / "etc/dnf/vars/releasever").write_text("9\n")
    (root / "etc/yum.repos.d").mkdir(parents=True, exist_ok=True)
    # Installed for their files, never started at boot: a firewalld here would load rules
    # into the machine's own network namespace, a redis-server would take the tests' port.
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    # debootstrap copies the build host's name; each boot sets its own.
    (root / "etc/hostname").write_text("target.invalid\n")
    # Not needed inside, and 150 MB of the tarball.
    for junk in ("var/cache/apt/archives", "usr/share/doc", "usr/share/man", "usr/share/locale"):
        for child in (root / junk).glob("*"):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            elif child.name != "lock":
                child.unlink()


def _root_facts(root: Path) -> dict:
    python = run(["chroot", root, "python3.11", "-c", "import platform; print(platform.python_version())"])
    systemd = run(["chroot", root, "systemctl", "--version"]).stdout.split("\n")[0]
    return {"python": python.stdout.strip(), "systemd": systemd,
            "root_bytes": int(run(["du", "-sb", root]).stdout.split()[0])}


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    with open("/proc/self/mounts") as fh:
        points = [line.split()[1].replace("\\040", " ") for line in fh]
    return [p for p in points if p == prefix.rstrip("/") or p.startswith(prefix)]


def _remove_tree(path: Path) -> None:
    """rmtree, but never through a mount point (a leftover bind mount would take host files with it)."""
    if not path.exists():
        return
    mounts = _mounts_under(path)
    if mounts:
        raise CommandFailed(f"not removing {path}: still mounted there: {', '.join(mounts)}")
    shutil.rmtree(path)


# --- one booted host --------------------------------------------------------------

@dataclass
class TargetHost:
    """One booted container; `run` executes inside it through nsenter."""

    root: Path
    hostname: str
    log: Path
    binds_ro: dict[str, str] = field(default_factory=dict)  # host path -> path inside
    daemon: Daemon | None = field(default=None, repr=False)
    leader: int | None = None        # host PID of the container's systemd (its PID 1)
    unpack_seconds: float = 0.0
    boot_seconds: float = 0.0
    state: str = ""
    fapolicyd: bool = False          # enforce_fapolicyd() started it

    # lifecycle

    def boot(self, timeout: float = 120) -> str:
        """Start systemd in the root and wait until it is running (or degraded)."""
        self._set_identity()
        argv = ["systemd-nspawn", "-D", str(self.root), "--boot", "--register=no", "--keep-unit",
                "--console=pipe", f"--hostname={self.hostname}", "--link-journal=no",
                "--timezone=off", f"--system-call-filter={FANOTIFY_SYSCALLS}", *self._nspawn_args()]
        argv += [f"--bind-ro={src}:{dest}" for src, dest in sorted(self.binds_ro.items())]
        t0 = time.monotonic()
        self.daemon = Daemon(f"systemd-nspawn {self.hostname}", argv, log=self.log).start()
        wait_until(self._find_leader, 30, "the container's systemd (PID 1)", alive=self.daemon.exited)
        deadline = t0 + timeout
        while True:
            # Right after exec, systemd's private bus is not up yet: retry until it answers.
            proc = self.run(["systemctl", "is-system-running", "--wait"], check=False,
                            timeout=max(deadline - time.monotonic(), 1))
            self.state = proc.stdout.strip()
            # "offline": systemctl reached no manager yet (seen under load), like no answer: retry.
            if self.state not in ("", "offline") or time.monotonic() > deadline or self.daemon.exited():
                break
            time.sleep(0.1)
        self.boot_seconds = time.monotonic() - t0
        if self.state not in ("running", "degraded"):
            raise CommandFailed(f"target host {self.hostname} did not boot: state {self.state!r}\n{self.diagnose()}")
        return self.state

    def _nspawn_args(self) -> list[str]:
        """What differs between hosts: here, this machine's network and resolver."""
        return ["--resolv-conf=copy-host"]

    def _set_identity(self) -> None:
        (self.root / "etc/hostname").write_text(self.hostname + "\n")
        short = self.hostname.split(".")[0]
        # The host name is on 127.0.0.1 (not Debian's 127.0.1.1): the container shares this
        # machine's network, where loopback is the only address services can rely on.
        (self.root / "etc/hosts").write_text(
            f"127.0.0.1\t{self.hostname} {short} localhost\n"
            f"::1\tlocalhost ip6-localhost ip6-loopback\n"
        )

    def _find_leader(self) -> bool:
        """The container's PID 1 is the nspawn process's child running systemd."""
        assert self.daemon is not None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == self.daemon.pid and stat[stat.index("(") + 1:stat.rindex(")")] == "systemd":
                self.leader = int(entry.name)
                return True
        return False

    def shutdown(self, timeout: float = 60) -> float:
        """Power off cleanly; if that hangs, SIGTERM then SIGKILL the nspawn process (by PID)."""
        if self.daemon is None or self.daemon.exited():
            return 0.0
        t0 = time.monotonic()
        self.run(["systemctl", "poweroff", "--no-block"], check=False, timeout=30)
        try:
            wait_until(lambda: self.daemon.exited() is not None, timeout, "target host power off", interval=0.1)
        except CommandFailed:
            # nspawn turns SIGTERM into a poweroff request, and SIGKILL ends it for sure.
            stop_pid(self.daemon.pid, timeout=20)
        return time.monotonic() - t0

    # commands inside

    def run(self, argv: Sequence[str], *, check: bool = True, input: str | bytes | None = None,
            env: dict[str, str] | None = None, user: str | None = None, timeout: float = 300,
            umask: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command inside the host, in all its namespaces, with a clean environment."""
        if self.leader is None:
            raise CommandFailed("target host is not booted")
        inner_env = {"PATH": INNER_PATH, "LANG": "C.UTF-8", "HOME": "/root", **(env or {})}
        inner = ["env", "-i", *[f"{k}={v}" for k, v in sorted(inner_env.items())]]
        if umask:
            inner += ["sh", "-c", 'umask "$0" && exec "$@"', umask]
        if user:
            inner += ["runuser", "-u", user, "--"]
        return run(["nsenter", "-t", str(self.leader), "-a", "--", *inner, *argv],
                   check=check, input=input, timeout=timeout)

    def harden(self) -> dict[str, list[str]]:
        """/tmp and /var/tmp as STIG/CIS mount them (tmpfs, noexec,nosuid,nodev), checked."""
        opts = ",".join(HARDENED_TMP_OPTIONS)
        for tmp in HARDENED_TMP:
            mounted = self.run(["findmnt", "-n", "-o", "FSTYPE", tmp], check=False).stdout.strip()
            if mounted:
                self.run(["mount", "-o", f"remount,{opts}", tmp])
            else:
                self.run(["mount", "-t", "tmpfs", "-o", f"mode=1777,{opts}", "tmpfs", tmp])
        found = self.mount_options(*HARDENED_TMP)
        weak = {t: o for t, o in found.items() if not set(HARDENED_TMP_OPTIONS) <= set(o)}
        if weak:
            raise CommandFailed(f"hardening did not take: {weak}")
        return found

    # fapolicyd

    def enforce_fapolicyd(self, timeout: float = 120) -> dict[str, int]:
        """Start Debian's fapolicyd 1.1.7 enforcing with RHEL 9's default rules, trusting what
        RHEL's rpmdb would (see FAPOLICYD_OS_TRUST). Returns the trust lists' entry counts.

        Inside the container only: its fanotify marks are on the container's mounts. It runs
        as root (it cannot change uid in the container)."""
        conf = "/etc/fapolicyd/fapolicyd.conf"
        self.sh(f"""
            sed -i -e 's/^uid = .*/uid = root/' -e 's/^gid = .*/gid = root/' \
                -e 's/^trust = .*/trust = file/' -e 's/^permissive = .*/permissive = 0/' {conf}
            grep -qx 'uid = root' {conf} && grep -qx 'trust = file' {conf}
            mkdir -p /var/lib/fapolicyd /run/fapolicyd
            chown root:root /var/lib/fapolicyd /run/fapolicyd
            rm -f /etc/fapolicyd/rules.d/*.rules
            for r in {' '.join(FAPOLICYD_RULES)}; do
                cp /usr/share/fapolicyd/sample-rules/$r.rules /etc/fapolicyd/rules.d/
            done
            rm -f /etc/fapolicyd/trust.d/{FAPOLICYD_OS_TRUST}
            fapolicyd-cli --file add /usr/ --trust-file {FAPOLICYD_OS_TRUST} >/dev/null
            # tmpfiles makes /run/fapolicyd group fapolicyd at every boot; the daemon runs as root
            mkdir -p /etc/tmpfiles.d
            echo 'd /run/fapolicyd 0770 root root -' > /etc/tmpfiles.d/fapolicyd.conf
        """, timeout=timeout)
        counts = {FAPOLICYD_OS_TRUST: self._trust_lines(FAPOLICYD_OS_TRUST),
                  FAPOLICYD_RPM_TRUST: self.trust_rpmdb(update=False)}
        self.run(["rm", "-f", "/etc/systemd/system/fapolicyd.service"])
        self.systemctl("daemon-reload")
        listening = self._journal_count("fapolicyd.service", "Starting to listen for events")
        started = self.systemctl("start", "fapolicyd.service", check=False)
        if started.returncode != 0 or not self.is_active("fapolicyd.service"):
            raise CommandFailed(f"fapolicyd did not start\n{self.diagnose(['fapolicyd.service'])}")
        # Type=forking: the unit is active before the daemon has built its trust database and
        # marked the mounts (~0.4 s here); until then everything is allowed.
        wait_until(lambda: self._journal_count("fapolicyd.service", "Starting to listen for events") > listening,
                   timeout, "fapolicyd listening for events", interval=0.05)
        self.fapolicyd = True
        return counts

    def _trust_lines(self, name: str) -> int:
        out = self.run(["grep", "-c", "^/", f"/etc/fapolicyd/trust.d/{name}"], check=False).stdout.strip()
        return int(out or 0)

    def trust_rpmdb(self, update: bool = True) -> int:
        """The stand-in for RHEL's rpmdb trust: every regular file rpm installed, with size and
        sha256 (fapolicyd's trust-file format). Call after each rpm transaction."""
        self.run(["python3", "-c", _RPMDB_TRUST_SCRIPT, f"/etc/fapolicyd/trust.d/{FAPOLICYD_RPM_TRUST}"],
                 timeout=300)
        if update:
            self.fapolicyd_update()
        return self._trust_lines(FAPOLICYD_RPM_TRUST)

    def fapolicyd_update(self, timeout: float = 60) -> float:
        """`fapolicyd-cli --update`, then wait until the daemon has reloaded its trust database:
        the command only writes to the daemon's fifo and returns before the reload. Returns the
        seconds it took (the daemon logs "Updated" when its update thread is done)."""
        before = self._journal_count("fapolicyd.service", "Updated")
        t0 = time.monotonic()
        self.run(["fapolicyd-cli", "--update"])
        wait_until(lambda: self._journal_count("fapolicyd.service", "Updated") > before, timeout,
                   "fapolicyd's trust reload", interval=0.05)
        return time.monotonic() - t0

    def _journal_count(self, unit: str, message: str) -> int:
        """How many times `unit` logged exactly `message`."""
        out = self.run(["journalctl", "--no-pager", "-o", "cat", "-u", unit], check=False).stdout
        return sum(1 for line in out.splitlines() if line.strip() == message)

    def mount_options(self, *paths: str) -> dict[str, list[str]]:
        return {p: self.run(["findmnt", "-n", "-o", "OPTIONS", p]).stdout.strip().split(",") for p in paths}

    def sh(self, script: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return self.run(["sh", "-euc", script], **kwargs)

    def put(self, dest: str, data: str | bytes, mode: int = 0o644, owner: str = "root",
            group: str = "root") -> None:
        """Write a file inside (any path, also tmpfs ones like /run), creating parents."""
        self.run(["install", "-D", "-m", f"{mode:04o}", "-o", owner, "-g", group, "/dev/stdin", dest],
                 input=data)

    def copy_in(self, src: Path, dest: str, mode: int | None = None, owner: str = "root",
                group: str = "root") -> None:
        self.put(dest, src.read_bytes(), mode if mode is not None else src.stat().st_mode & 0o777,
                 owner, group)

    def read(self, path: str) -> str:
        return self.run(["cat", path]).stdout

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path], check=False).returncode == 0

    # systemd

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", *args], check=check)

    def is_active(self, unit: str) -> bool:
        return self.systemctl("is-active", "--quiet", unit, check=False).returncode == 0

    def journal(self, unit: str | None = None, lines: int = 200) -> str:
        argv = ["journalctl", "--no-pager", "-o", "short-precise", "-n", str(lines)]
        if unit:
            argv += ["-u", unit]
        return self.run(argv, check=False).stdout

    def failed_units(self) -> list[str]:
        out = self.systemctl("list-units", "--failed", "--plain", "--no-legend", check=False).stdout
        return [line.split()[0] for line in out.splitlines() if line.strip()]

    def diagnose(self, units: Sequence[str] = (), logs: Sequence[str] = (), lines: int = 150) -> str:
        """What an engineer wants to see when something failed inside: states, journals, log tails."""
        parts = [f"=== target host {self.hostname} (state {self.state or '?'}) ==="]
        if self.daemon is not None and self.daemon.exited():
            parts.append(f"nspawn exited:\n{self.daemon.log_tail(60)}")
            return "\n".join(parts)
        try:
            failed = self.failed_units()
            parts.append(f"failed units: {', '.join(failed) or 'none'}")
            for unit in list(dict.fromkeys([*units, *failed])):
                status = self.systemctl("status", "--no-pager", "-n", "0", unit, check=False).stdout
                parts.append(f"--- systemctl status {unit} ---\n{status.strip()}")
                parts.append(f"--- journalctl -u {unit} (last {lines}) ---\n{self.journal(unit, lines).strip()}")
            for path in logs:
                text = self.run(["sh", "-c", f"tail -n {lines} {shlex.quote(path)} 2>&1"], check=False).stdout
                parts.append(f"--- {path} ---\n{text.strip()}")
            if not units and not failed:
                parts.append(f"--- journal (last {lines}) ---\n{self.journal(lines=lines).strip()}")
        except CommandFailed as exc:
            parts.append(f"(could not collect diagnostics: {exc})")
        return "\n".join(parts)


H = TypeVar("H", bound=TargetHost)

# Run inside the host by trust_rpmdb: `rpm -qal`'s regular files as "path size sha256" lines.
_RPMDB_TRUST_SCRIPT = """\
import hashlib, os, stat, subprocess, sys
out = subprocess.run(["rpm", "-qal"], capture_output=True, text=True, check=True).stdout
lines = ["# AUTOGENERATED FILE VERSION 2", "# TEST-ONLY: stands in for RHEL's rpmdb trust (rpm -qal)"]
for path in sorted(set(out.split("\\n"))):
    try:
        st = os.lstat(path)
    except OSError:
        continue
    if not stat.S_ISREG(st.st_mode):
        continue
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    lines.append(f"{path} {st.st_size} {h.hexdigest()}")
tmp = sys.argv[1] + ".new"
with open(tmp, "w") as fh:
    fh.write("\\n".join(lines) + "\\n")
os.chmod(tmp, 0o644)
os.replace(tmp, sys.argv[1])
"""


def booted_host(image: RootImage, workdir: Path, hostname: str,
                binds_ro: dict[str, str] | None = None, keep: bool = False,
                hardened: bool = True) -> AbstractContextManager[TargetHost]:
    """Unpack the cached root into `workdir`, boot it, power it off and delete `workdir` afterwards.

    `hardened` (the default): /tmp and /var/tmp noexec,nosuid,nodev before anything runs
    (run dnf with umask=HARDENED_UMASK for the rest of the STIG/CIS picture)."""
    def host(root: Path, unpack_seconds: float) -> TargetHost:
        return TargetHost(root, hostname, workdir / "nspawn.log", dict(binds_ro or {}), unpack_seconds=unpack_seconds)

    return boot_unpacked(image, workdir, host, keep=keep, hardened=hardened)


@contextmanager
def boot_unpacked(image: RootImage, workdir: Path, make_host: Callable[[Path, float], H], *, keep: bool,
                  hardened: bool) -> Iterator[H]:
    """The boot block of booted_host and cluster.booted_cluster_host: unpack the cached root
    into workdir/root, make the host (`make_host(root, unpack seconds)`), boot it, harden it
    if asked; afterwards power it off and delete `workdir` unless `keep`."""
    tarball = image.ensure()
    root = workdir / "root"
    root.mkdir(parents=True)
    t0 = time.monotonic()
    run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd -T0",
         "-C", root, "-xf", tarball], timeout=600)
    host = make_host(root, time.monotonic() - t0)
    try:
        host.boot()
        if hardened:
            host.harden()
        yield host
    finally:
        try:
            host.shutdown()
        finally:
            if not keep:
                _remove_tree(workdir)


__all__ = ["COMPILE_PACKAGES", "HARDENED_TMP", "HARDENED_UMASK", "ROOT_PACKAGES", "RootImage", "TargetHost", "boot_unpacked",
           "booted_host", "missing_host_tools"]
