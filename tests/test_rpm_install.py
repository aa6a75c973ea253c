"""Install the signed repository with `dnf --installroot` (gpgcheck and repo_gpgcheck
on) into a Debian 12 root standing in for a RHEL 9 host, and check what %pre and
%post really did: user and group, directories, the venv built offline with uv and
importing the synthetic wheelhouse's packages, presets; then a config upgrade
(.rpmnew), a failing venv build (old venv keeps serving, loudly), and erase
(user, DAGs, logs and edited config stay).

The root is hardened like a DISA STIG / CIS RHEL 9 host, on every run: /tmp and /var/tmp
are tmpfs mounted noexec,nosuid,nodev for the whole transaction, and dnf runs with root's
umask 077. So the venv must build without executing anything from the temp directories,
and everything the airflow user reads must stay readable by it.

How the scriptlets get a real interpreter: the root is a debootstrap'd Debian 12
(minbase + python3, systemd, passwd, krb5-user), so /usr/bin/python3.11 inside it is a real
CPython 3.11.2 and rpm runs every scriptlet chrooted there; /dev and /proc are
bind-mounted for the duration. Its rpmdb knows nothing of Debian's packages, so a
TEST-ONLY stand-in package provides the RHEL names (python3.11, systemd,
shadow-utils, krb5-workstation, ...) after checking each path exists in the root
(tests/support/rpm.py). Every package of the repository is installed: all six roles.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support.rpm import (
    SYNTH_MODULES, build, have, make_gpg_key, mini_data, needs_rpm, standin_rpm, stop_gpg_agent,
    synthetic_wheelhouse, target_root,
)
from support.sbom import assert_valid_cyclonedx
from support.sites import write_site

pytestmark = [
    pytest.mark.integration, needs_rpm,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot scriptlets, mounts)"),
    pytest.mark.skipif(not have("dnf", "zstd", "chroot", "mount"), reason="needs dnf, zstd, chroot, mount"),
]

ROLES = ["api-server", "scheduler", "dag-processor", "triggerer", "celery-worker", "kerberos"]
SITE = "irsite"
# STIG / CIS: the temp directories may hold data, never code; root's umask is 077.
HARDENED_TMP = ("/tmp", "/var/tmp")
HARDENED_TMP_OPTIONS = "mode=1777,noexec,nosuid,nodev"
HARDENED_UMASK = 0o077
TRUST_FILE = "/etc/fapolicyd/trust.d/airflow-prod"


class Host:
    """The installroot and the repository it installs from."""

    def __init__(self, base: Path):
        self.base = base
        self.root = base / "root"
        self.home = base / "home"   # HOME for rpm/dnf: .rpmmacros sets %_dbpath /var/lib/rpm
        self.key = make_gpg_key(base / "gnupg")
        self.wh = synthetic_wheelhouse()
        self.data = mini_data(SITE)
        self.data["hosts"][0]["roles"].append("kerberos")
        self.data["kerberos"] = {"principal": "airflow/af1.example.com@EXAMPLE.COM"}
        self.data["publish"] = {"gpg_key": self.key.fingerprint, "gpg_home": str(self.key.home)}
        self.site = base / "site.toml"
        self.mounts: list[Path] = []

    def build(self, wh=None):
        write_site(self.site, self.data)
        return build(self.site, self.base / "out", wh or self.wh, sign=True, rpm_cache=self.base / "cache")

    def env(self) -> dict:
        return {**os.environ, "HOME": str(self.home)}

    def dnf(self, *args: str) -> subprocess.CompletedProcess:
        repo = self.base / "out" / "repo"
        argv = ["dnf", "-y", f"--installroot={self.root}", "--releasever=9", "--setopt=reposdir=/nonexistent",
                f"--setopt=cachedir={self.base / 'dnf-cache'}", "--setopt=install_weak_deps=False",
                f"--repofrompath=airflow-prod,file://{repo}", "--setopt=airflow-prod.gpgcheck=1",
                "--setopt=airflow-prod.repo_gpgcheck=1",
                f"--setopt=airflow-prod.gpgkey=file://{repo}/RPM-GPG-KEY-airflow-prod",
                "--setopt=airflow-prod.metadata_expire=0", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env(), timeout=600,
                              umask=HARDENED_UMASK)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    def rpm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["rpm", f"--root={self.root}", *args], capture_output=True, text=True,
                              env=self.env(), timeout=120)
        assert proc.returncode == 0 or not check, proc.stdout + proc.stderr
        return proc

    def chroot(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["chroot", str(self.root), *argv], capture_output=True, text=True, timeout=120)

    def as_airflow(self, *argv: str) -> subprocess.CompletedProcess:
        """A command in the root as the airflow user (its groups too), from /."""
        return self.chroot("setpriv", "--reuid=airflow", "--regid=airflow", "--init-groups", "--",
                           "env", "-i", "PATH=/usr/bin:/bin", "HOME=/opt/airflow", *argv)

    def path(self, p: str) -> Path:
        return self.root / p.lstrip("/")

    def ids(self, name: str) -> tuple[int, int]:
        for line in self.path("/etc/passwd").read_text().splitlines():
            f = line.split(":")
            if f[0] == name:
                return int(f[2]), int(f[3])
        raise KeyError(name)

    def setup(self) -> None:
        target_root(self.root)
        self.home.mkdir()
        (self.home / ".rpmmacros").write_text("%_dbpath /var/lib/rpm\n")
        for src, dest, kind in (("/dev", "dev", "bind"), ("proc", "proc", "proc")):
            target = self.root / dest
            cmd = ["mount", "--bind", src, str(target)] if kind == "bind" else ["mount", "-t", "proc", "proc", str(target)]
            subprocess.run(cmd, check=True)
            self.mounts.append(target)
        for tmp in HARDENED_TMP:
            target = self.path(tmp)
            subprocess.run(["mount", "-t", "tmpfs", "-o", HARDENED_TMP_OPTIONS, "tmpfs", str(target)], check=True)
            self.mounts.append(target)
        stand = standin_rpm(self.root, self.base / "standin")
        subprocess.run(["rpm", f"--root={self.root}", "--initdb"], check=True, env=self.env())
        subprocess.run(["rpm", f"--root={self.root}", "-i", str(stand)], check=True, env=self.env(),
                       capture_output=True)

    def teardown(self) -> None:
        self.key.stop()
        for pubring in (self.base / "dnf-cache").glob("*/pubring"):  # dnf's key import starts agents too
            stop_gpg_agent(pubring)
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(m)], check=False)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    h = Host(tmp_path_factory.mktemp("installroot"))
    try:
        h.setup()
        h.build()
        h.dnf("install", *[f"airflow-prod-{r}" for r in ROLES])
        yield h
    finally:
        h.teardown()


def _venv_target(host: Host) -> str:
    return os.readlink(host.path("/opt/airflow/venv"))


def test_pre_created_the_user_and_group_and_directories_have_owners_and_modes(host):
    uid, gid = host.ids("airflow")
    assert uid < 1000  # a system account
    assert "/opt/airflow:/sbin/nologin" in host.path("/etc/passwd").read_text()
    # The worker's and its tasks' own user: another uid, the airflow group, no group of its own.
    worker_uid, worker_gid = host.ids("airflow-worker")
    assert worker_uid < 1000 and worker_uid != uid and worker_gid == gid
    assert "airflow-worker" not in host.path("/etc/group").read_text()
    # DAGs, plugins and the security files are root's: no task changes them (docs/security.md).
    expect = {"/opt/airflow": (0o755, 0, 0), "/opt/airflow/dags": (0o755, 0, 0), "/opt/airflow/plugins": (0o755, 0, 0),
              "/opt/airflow/logs": (0o770, uid, gid), "/opt/airflow/security": (0o750, 0, gid),
              "/opt/airflow/venvs": (0o755, 0, 0), "/etc/airflow": (0o750, 0, gid),
              "/run/airflow": (0o750, uid, gid)}
    for path, (mode, u, g) in expect.items():
        st = host.path(path).stat()
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, u, g), path
    doc = host.path("/usr/share/doc/airflow-prod/secrets.env.example").stat()
    assert (doc.st_mode & 0o777, doc.st_uid, doc.st_gid) == (0o644, 0, 0)
    # The wheelhouse's SBOM (docs/sbom.md), readable by anyone on the host, as CycloneDX wants it.
    sbom = host.path("/usr/share/doc/airflow-prod/wheelhouse.cdx.json")
    assert (sbom.stat().st_mode & 0o777, sbom.stat().st_uid) == (0o644, 0)
    assert assert_valid_cyclonedx(sbom.read_text())["metadata"]["component"]["name"] == "airflow-prod-wheelhouse"
    assert not host.path("/etc/airflow/secrets.env.example").exists()
    assert not host.path("/etc/airflow/secrets.env").exists()


def test_rhel_directories_keep_their_rhel_owner_and_mode(host):
    """The stand-in owns RHEL 9's shared directories with RHEL's modes (as filesystem,
    systemd and firewalld-filesystem do); all six roles installed beside it without a
    conflict, and none of those directories changed hands or mode."""
    from e2e.repo import RHEL_DIRS, STANDIN_NAME

    for d in RHEL_DIRS:
        owners = host.rpm("-qf", d.path).stdout.split()
        assert [o.rsplit("-", 2)[0] for o in owners] == [STANDIN_NAME], (d.path, owners)
        assert host.path(d.path).stat().st_mode & 0o7777 == d.mode, d.path
    # Local broker: the scheduler and the worker really require redis (not a weak dependency).
    for role in ("scheduler", "celery-worker"):
        assert "redis" in host.rpm("-q", "--requires", f"airflow-prod-{role}").stdout.split()


def test_a_package_reowning_a_rhel_directory_with_another_mode_fails_to_install(host):
    """The control: what the role packages used to do (/usr/lib/firewalld 0750) is a file
    conflict with the stand-in, as with firewalld-filesystem on RHEL."""
    from e2e.repo import build_rpm

    out = host.base / "conflict"
    out.mkdir(exist_ok=True)
    rpm = build_rpm("""\
Name: e2e-test-reowns-firewalld
Version: 1
Release: 1
Summary: TEST-ONLY: owns /usr/lib/firewalld 0750 like the old role packages
License: Apache-2.0
BuildArch: noarch

%description
TEST-ONLY.

%install
mkdir -p %{buildroot}/usr/lib/firewalld/services

%files
%dir %attr(0750,root,root) /usr/lib/firewalld
%dir %attr(0750,root,root) /usr/lib/firewalld/services
""", out, "e2e-test-reowns-firewalld")
    proc = host.rpm("-i", "--test", str(rpm), check=False)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "file /usr/lib/firewalld from install of e2e-test-reowns-firewalld-1-1.noarch conflicts with file " \
           "from package e2e-test-standin-rhel-provides" in said, said


def test_firewalld_loads_every_service_file_we_ship(host):
    """firewalld's own code (Debian's firewalld 1.3, in the root) reads our service files:
    its XML reader, then `firewall-offline-cmd --add-service` (firewall-cmd --permanent
    without the daemon: nothing touches a firewall). A malformed file fails the same reader."""
    shipped = sorted(p.name for p in host.path("/usr/lib/firewalld/services").glob("airflow-*.xml"))
    assert shipped == ["airflow-api-server.xml", "airflow-triggerer-logs.xml", "airflow-worker-logs.xml"]
    reader = ("import sys\nfrom firewall.core.io.service import service_reader\n"
              "s = service_reader(sys.argv[1], sys.argv[2])\nprint(s.short, s.ports)\n")
    for name in shipped:
        proc = host.chroot("python3", "-c", reader, name, "/usr/lib/firewalld/services")
        assert proc.returncode == 0, proc.stderr
        assert "'tcp')]" in proc.stdout, proc.stdout
    for service in (n[:-4] for n in shipped):
        proc = host.chroot("firewall-offline-cmd", f"--add-service={service}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = host.chroot("firewall-offline-cmd", "--list-services").stdout.split()
    assert {"airflow-api-server", "airflow-worker-logs", "airflow-triggerer-logs"} <= set(listed)
    bad = host.path("/root/fw-bad")
    bad.mkdir(exist_ok=True)
    (bad / "bad.xml").write_text('<?xml version="1.0"?>\n<!-- firewall-cmd --permanent -->\n<service/>\n')
    proc = host.chroot("python3", "-c", reader, "bad.xml", "/root/fw-bad")
    assert proc.returncode != 0 and "not well-formed" in proc.stderr, proc.stdout + proc.stderr


def test_post_built_the_venv_offline_and_switched_the_symlink(host):
    target = _venv_target(host)
    assert target.startswith("/opt/airflow/venvs/py3.11-")
    assert host.path(target + "/.airflow-prod-complete").is_file()
    proc = host.chroot("/opt/airflow/venv/bin/python", "-c",
                       f"import {', '.join(SYNTH_MODULES)}, sys; print(sys.version)")
    assert proc.returncode == 0 and proc.stdout.startswith("3.11"), proc.stderr
    # Bytecode compiled at install time (uv --compile-bytecode).
    assert list(host.path(target).rglob("six*.pyc"))
    log = host.path("/var/log/airflow-prod/build-venv.log").read_text()
    assert "built " + target in log


def test_the_root_really_is_hardened(host):
    """The conditions the install ran under, checked on the mounts and by trying."""
    mounts = {line.split()[1]: line.split()[3].split(",") for line in Path("/proc/self/mounts").read_text().splitlines()}
    for tmp in HARDENED_TMP:
        opts = mounts[str(host.path(tmp))]
        assert {"noexec", "nosuid", "nodev"} <= set(opts), (tmp, opts)
        shutil.copy2(host.path("/usr/bin/true"), host.path(f"{tmp}/true"))
        ran = host.chroot(f"{tmp}/true")
        assert ran.returncode == 126 and "Permission denied" in ran.stderr, (tmp, ran)
        host.path(f"{tmp}/true").unlink()
    # dnf ran with umask 077: its own files show it (the payload's modes are rpm's, explicit).
    history = host.path("/var/lib/dnf/history.sqlite")
    assert history.stat().st_mode & 0o077 == 0, oct(history.stat().st_mode)


def test_the_venv_build_left_nothing_in_the_temp_directories_or_beside_the_venvs(host):
    # dnf's cachedir (a path of this machine) lands under the installroot's /tmp: skip it.
    dnf_cache = host.path(str(host.base / "dnf-cache"))
    for tmp in HARDENED_TMP:
        left = [p for p in host.path(tmp).rglob("*") if p != dnf_cache and dnf_cache not in p.parents
                and p not in dnf_cache.parents]
        assert left == [], (tmp, left)
    assert [p.name for p in host.path("/opt/airflow/venvs").iterdir()] == [_venv_target(host).rsplit("/", 1)[1]]
    log = host.path("/var/log/airflow-prod/build-venv.log").read_text()
    assert "work space beyond it" in log and "/tmp" not in log.replace("/opt/airflow/venvs/.build-", "")


def test_the_airflow_user_imports_the_venv_and_reads_every_file_a_service_reads(host):
    """Under umask 077: nothing the services read may have come out 0600/0700."""
    proc = host.as_airflow("/opt/airflow/venv/bin/python", "-c",
                           f"import {', '.join(SYNTH_MODULES)}, sys; print(sys.prefix)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "/opt/airflow/venv"
    service_reads = [_venv_target(host), "/etc/airflow/airflow.cfg", "/etc/airflow/webserver_config.py",
                     "/usr/bin/airflow", "/usr/lib/airflow-prod"]
    unreadable = host.as_airflow("find", *service_reads, "!", "-readable")
    assert unreadable.returncode == 0 and unreadable.stdout == "", unreadable.stdout[:2000] + unreadable.stderr
    log = host.path("/var/log/airflow-prod/build-venv.log").read_text()
    assert "modules as the airflow user" in log


def _trust_entries(host: Host) -> dict[str, tuple[int, str]]:
    """/etc/fapolicyd/trust.d/airflow-prod as fapolicyd reads it: path size sha256 per line."""
    entries = {}
    for line in host.path(TRUST_FILE).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            path, size, digest = line.rsplit(" ", 2)
            entries[path] = (int(size), digest)
    return entries


def test_fapolicyd_trusts_exactly_the_files_of_the_venv(host):
    """Debian's real fapolicyd-cli (1.1.7) is in the root: build-venv wrote the trust file
    (the daemon is not running here; the file is read when it starts)."""
    import hashlib

    target = _venv_target(host)
    files = {"/" + str(p.relative_to(host.root)) for p in host.path(target).rglob("*")
             if p.is_file() and not p.is_symlink()}
    # The completion marker is written after the smoke test; nothing executes or maps it.
    files.discard(f"{target}/.airflow-prod-complete")
    entries = _trust_entries(host)
    assert set(entries) == files
    for path in sorted(files):
        data = host.path(path).read_bytes()
        assert entries[path] == (len(data), hashlib.sha256(data).hexdigest()), path
    log = host.path("/var/log/airflow-prod/build-venv.log").read_text()
    assert f"fapolicyd: trusted the files of {target}" in log


def test_presets_enabled_every_role_into_airflow_target(host):
    wants = host.path("/etc/systemd/system/airflow.target.wants")
    assert sorted(p.name for p in wants.iterdir()) == sorted(f"airflow-{r}.service" for r in ROLES)
    assert host.path("/etc/systemd/system/multi-user.target.wants/airflow.target").is_symlink()


def test_upgrade_keeps_edited_config_and_reuses_the_venv(host):
    cfg = host.path("/etc/airflow/airflow.cfg")
    cfg.write_text(cfg.read_text() + "\n# local edit by the admin\n")
    before = _venv_target(host)
    host.data["core"] = {"parallelism": 99}
    host.build()
    out = host.dnf("upgrade").stdout
    assert "Upgraded" in out or "Upgrading" in out, out[-2000:]
    assert "# local edit by the admin" in cfg.read_text()
    assert "parallelism = 99" in host.path("/etc/airflow/airflow.cfg.rpmnew").read_text()
    assert _venv_target(host) == before  # same lock: the same venv is reused
    assert "is complete already: reusing it" in host.path("/var/log/airflow-prod/build-venv.log").read_text()


def test_failed_venv_build_keeps_the_old_venv_serving_and_says_so_loudly(host):
    """A tampered lock (wrong hash) makes uv refuse: %post fails, dnf still exits 0
    (rpm's rule), the banner is in dnf's output, and the old venv keeps serving."""
    bad = host.base / "bad-wheelhouse"
    shutil.copytree(host.wh.dir, bad / "wheels")
    lock = host.wh.lock.read_text()
    first_hash = lock.split("sha256:")[1][:64]
    (bad / "requirements.txt").write_text(lock.replace(first_hash, "0" * 64))
    from support.rpm import SynthWheelhouse

    before = _venv_target(host)
    host.build(SynthWheelhouse(bad / "wheels", bad / "requirements.txt", host.wh.uv_wheel))
    proc = host.dnf("upgrade")
    said = proc.stdout + proc.stderr
    assert "THE AIRFLOW VIRTUALENV WAS NOT BUILT" in said, said[-3000:]
    assert _venv_target(host) == before
    assert host.chroot("/opt/airflow/venv/bin/python", "-c", "import six").returncode == 0
    # Nothing half-built is left beside the serving venv.
    assert sorted(p.name for p in host.path("/opt/airflow/venvs").iterdir()) == [before.rsplit("/", 1)[1]]
    # Back to the good wheelhouse for the next test.
    host.build()
    host.dnf("upgrade")  # dnf takes the newest release: the last build's


def test_erase_keeps_user_dags_logs_and_edited_config(host):
    dag = host.path("/opt/airflow/dags/my_dag.py")
    dag.write_text("# a DAG\n")
    log = host.path("/opt/airflow/logs/scheduler.log")
    log.write_text("log line\n")
    host.dnf("remove", "airflow-prod*")
    assert "airflow:" in host.path("/etc/passwd").read_text()
    assert dag.read_text() == "# a DAG\n" and log.read_text() == "log line\n"
    edited = host.path("/etc/airflow/airflow.cfg.rpmsave")
    assert "# local edit by the admin" in edited.read_text()
    assert not host.path("/opt/airflow/venv").exists() and not host.path("/opt/airflow/venvs").exists()
    assert not host.path(TRUST_FILE).exists()  # fapolicyd's trust went with the venvs
    assert not host.path("/etc/systemd/system/airflow.target.wants").exists() or \
        not any(host.path("/etc/systemd/system/airflow.target.wants").iterdir())
