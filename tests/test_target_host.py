"""The booted target host stand-in: a Debian 12 root under systemd-nspawn.

Proves what the end-to-end test stands on: systemd really boots (252, as on
RHEL 9), units start through nsenter, servers on loopback are reachable from
inside, and Debian's dnf installs from a signed repository with gpgcheck on,
resolving RHEL dependency names through the test-only stand-in provider.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
from pathlib import Path

import pytest

from e2e.fixtures import keep_temp, redis, scratch_dir, servers_dir, signing_key, target_image  # noqa: F401
from e2e.proc import CommandFailed
from e2e.repo import STANDIN_NAME, build_rpm, make_repo, repo_file, standin_spec
from e2e.target import booted_host

pytestmark = pytest.mark.e2e

HOSTNAME = "target.e2e.test"
REPO_INSIDE = "/srv/e2e-repos"


@pytest.fixture(scope="module")
def repos_dir():
    path = scratch_dir("e2e-repos")
    yield path
    if not keep_temp():
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def host(target_image, repos_dir):
    work = scratch_dir("target")
    with booted_host(target_image, work, HOSTNAME, binds_ro={str(repos_dir): REPO_INSIDE},
                     keep=keep_temp()) as booted:
        yield booted


def test_root_boots_systemd_252(host, target_image):
    assert host.state in ("running", "degraded"), host.diagnose()
    if host.state == "degraded":
        pytest.fail(f"degraded boot: {host.failed_units()}\n{host.diagnose()}")
    assert host.run(["systemctl", "--version"]).stdout.startswith("systemd 252 ")
    assert host.run(["python3.11", "-c", "import platform; print(platform.python_version())"]).stdout.strip() == "3.11.2"
    assert host.run(["hostname"]).stdout.strip() == HOSTNAME
    assert host.run(["readlink", "/proc/1/exe"]).stdout.strip().endswith("/systemd")
    assert target_image.info()["python"] == "3.11.2"


def test_a_unit_starts_and_logs_to_the_journal(host):
    host.put("/etc/systemd/system/e2e-probe.service", """\
[Unit]
Description=e2e probe

[Service]
Type=simple
ExecStart=/bin/sh -c 'echo e2e-probe-started; exec sleep infinity'
""")
    host.systemctl("daemon-reload")
    host.systemctl("start", "e2e-probe.service")
    assert host.is_active("e2e-probe.service")
    pid = host.systemctl("show", "-P", "MainPID", "e2e-probe.service").stdout.strip()
    assert host.run(["cat", f"/proc/{pid}/comm"]).stdout.strip() == "sleep"
    assert "e2e-probe-started" in host.journal("e2e-probe.service")
    host.systemctl("stop", "e2e-probe.service")
    assert not host.is_active("e2e-probe.service")


def test_loopback_servers_are_reachable_from_inside(host, redis):
    # The broker has no default user (as ours): authenticate as the tests' admin, then PING.
    script = (
        "import socket, time; s = socket.create_connection(('127.0.0.1', %d), timeout=5); "
        "s.sendall(b'AUTH e2e-admin %s\\r\\nPING\\r\\n'); time.sleep(0.5); "
        "print(s.recv(64).decode().split())" % (redis.port, redis.admin_password)
    )
    assert host.run(["python3", "-c", script]).stdout.strip() == "['+OK', '+PONG']"


def test_standin_declares_only_what_the_root_has(host):
    spec, skipped = standin_spec(host.root)
    assert "TEST-ONLY" in spec
    for name in ("python3.11 = 3.11.2", "systemd = 252", "shadow-utils", "/bin/sh", "krb5-workstation",
                 "python(abi) = 3.11", "filesystem", "firewalld-filesystem = 1.3", "redis = 7"):
        assert f"Provides: {name}" in spec
    # It owns RHEL 9's shared directories with RHEL's modes, so a conflict shows here as on RHEL.
    assert "%dir %attr(0755,root,root) /usr/lib/firewalld\n" in spec
    assert "%dir %attr(0750,root,root) /etc/firewalld\n" in spec
    # Nothing is claimed blindly: every skipped name says what the root lacks.
    assert all(": root lacks " in s for s in skipped)


def _dnf(host, *args: str, check: bool = True):
    return host.run(["dnf", "-y", "--setopt=install_weak_deps=False", "--disablerepo=*",
                     "--enablerepo=e2e-*", *args], check=check, timeout=300)


def test_dnf_installs_from_a_signed_repo_with_gpgcheck(host, repos_dir, signing_key):
    spec, _ = standin_spec(host.root)
    build = Path(tempfile.mkdtemp(prefix="rpms-", dir=repos_dir.parent))
    standin = build_rpm(spec, build, STANDIN_NAME)
    # A package needing RHEL names: it installs only if the stand-in resolves them.
    consumer = build_rpm("""\
Name: e2e-test-consumer
Version: 1
Release: 1
Summary: TEST-ONLY: requires RHEL names the stand-in provides
License: Apache-2.0
BuildArch: noarch
Requires: python3.11 >= 3.11, systemd >= 252, shadow-utils, krb5-workstation, /bin/sh
Requires(post): /usr/sbin/useradd, systemd

%description
TEST-ONLY.

%install
mkdir -p %{buildroot}/usr/lib/systemd/system
printf '[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n' \
    > %{buildroot}/usr/lib/systemd/system/e2e-consumer.service

%post
getent passwd e2e-consumer >/dev/null || useradd -r -M -s /sbin/nologin e2e-consumer
# As %systemd_post does: enable by preset, no reload (systemd's file trigger reloads once).
systemctl --no-reload enable e2e-consumer.service >/dev/null 2>&1 || :

%files
/usr/lib/systemd/system/e2e-consumer.service
""", build, "e2e-test-consumer")
    repo = make_repo(repos_dir / "signed", [standin, consumer], signing_key)
    host.put("/etc/yum.repos.d/e2e-signed.repo",
             repo_file("e2e-signed", f"file://{REPO_INSIDE}/signed",
                       f"file://{REPO_INSIDE}/signed/{signing_key.public.name}"))
    assert (repo / "repodata" / "repomd.xml.asc").exists()
    _dnf(host, "install", "e2e-test-consumer")
    assert host.run(["rpm", "-q", STANDIN_NAME]).returncode == 0
    assert host.run(["rpm", "-q", "--whatprovides", "python3.11"]).stdout.startswith(STANDIN_NAME)
    assert host.run(["getent", "passwd", "e2e-consumer"]).returncode == 0
    # The key dnf imported is the throwaway one, and the installed package verified against it.
    keys = host.run(["rpm", "-q", "gpg-pubkey", "--qf", "%{VERSION}\\n"]).stdout.split()
    assert signing_key.fingerprint[-8:].lower() in keys
    sig = host.run(["rpm", "-q", "--qf", "%{RSAHEADER:pgpsig}\\n", "e2e-test-consumer"]).stdout
    assert signing_key.fingerprint[-16:].lower() in sig.lower()
    assert host.run(["rpm", "--dbpath", "/var/lib/rpm", "-qa"]).stdout.count("\n") >= 2
    # The stand-in's copy of RHEL systemd's file trigger reloaded the manager after the
    # transaction: the unit enabled with --no-reload is known to multi-user.target.
    wants = host.systemctl("show", "-P", "Wants", "multi-user.target").stdout.split()
    assert "e2e-consumer.service" in wants


def test_dnf_refuses_an_unsigned_package(host, repos_dir, signing_key):
    build = Path(tempfile.mkdtemp(prefix="rpms-", dir=repos_dir.parent))
    unsigned = build_rpm("""\
Name: e2e-test-unsigned
Version: 1
Release: 1
Summary: TEST-ONLY: never signed
License: Apache-2.0
BuildArch: noarch

%description
TEST-ONLY.

%files
""", build, "e2e-test-unsigned")
    repo = make_repo(repos_dir / "unsigned", [unsigned], key=None)
    (repo / signing_key.public.name).write_text(signing_key.public.read_text())
    # The admin trusts our key, but this package was never signed with it.
    host.put("/etc/yum.repos.d/e2e-unsigned.repo",
             repo_file("e2e-unsigned", f"file://{REPO_INSIDE}/unsigned",
                       f"file://{REPO_INSIDE}/unsigned/{signing_key.public.name}", repo_gpgcheck=False))
    proc = _dnf(host, "install", "e2e-test-unsigned", check=False)
    assert proc.returncode != 0
    assert "e2e-test-unsigned-1-1.noarch.rpm is not signed" in proc.stdout + proc.stderr
    assert host.run(["rpm", "-q", "e2e-test-unsigned"], check=False).returncode != 0
    with pytest.raises(CommandFailed):
        host.run(["rpm", "-q", "e2e-test-unsigned"])


def test_the_host_is_hardened_like_a_stig_host(host):
    """What every booted host of the tests runs under (booted_host's default): the temp
    directories mounted noexec,nosuid,nodev, and dnf given root's CIS umask 077."""
    from e2e.target import HARDENED_TMP, HARDENED_UMASK

    for tmp, opts in host.mount_options(*HARDENED_TMP).items():
        assert {"noexec", "nosuid", "nodev"} <= set(opts), (tmp, opts)
        host.run(["cp", "/usr/bin/true", f"{tmp}/true"])
        ran = host.run([f"{tmp}/true"], check=False)
        assert ran.returncode == 126 and "Permission denied" in ran.stderr, (tmp, ran)
        host.run(["rm", f"{tmp}/true"])
    made = host.run(["sh", "-c", "umask; : > /root/umask-probe; stat -c %a /root/umask-probe"],
                    umask=HARDENED_UMASK).stdout.split()
    assert made == ["0077", "600"], made


def _systemd_env(host, path: str) -> dict[str, str]:
    """The environment systemd 252 gives a service from EnvironmentFile=PATH."""
    out = host.run(["systemd-run", "--quiet", "--wait", "--pipe", "--collect",
                    f"--property=EnvironmentFile={path}", "/usr/bin/env", "-0"]).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if item)


def test_systemd_reads_env_files_as_the_wrapper_and_sh_do(host):
    """systemd's own EnvironmentFile= parser, on (a) a file of its grammar's corners, which
    the `airflow` wrapper's port must read identically, and (b) the sysconfig of a site whose
    [environment] values are full of quotes, `$`, backticks and backslashes, which systemd,
    the wrapper and dash must all read as the site meant."""
    from builder.render import render_site
    from builder.site import site_from_data
    from support import readers
    from support.sites import example_data

    canary = "/root/env-canary"
    host.put("/etc/e2e-env/tricky.env", readers.TRICKY_ENV_FILE.format(canary=canary).encode())
    seen = _systemd_env(host, "/etc/e2e-env/tricky.env")
    for systemd_own in ("LANG", "PATH", "INVOCATION_ID", "SYSTEMD_EXEC_PID"):
        seen.pop(systemd_own)
    assert seen == readers.tricky_env_meaning(canary)
    # A NUL byte: systemd refuses the whole file ("Bad message"), so the wrapper does too.
    host.put("/etc/e2e-env/nul.env", b"A=1\nB=x\x00y\nC=3\n")
    refused = host.run(["systemd-run", "--quiet", "--wait", "--pipe", "--collect",
                        "--property=EnvironmentFile=/etc/e2e-env/nul.env", "/usr/bin/true"], check=False)
    assert refused.returncode != 0
    assert "Failed to load environment files: Bad message" in host.journal(lines=50)

    data = example_data()
    data["environment"] = {
        "QUOTES": "it's \"quoted\" `id` $(touch /root/env-canary) $HOME ${X} \\ trailing\\",
        "SPACES": "  leading and trailing  ", "UNICODE": "Ünïcødé Ω 😀", "EMPTY": "",
        "HASH": "#not a comment ;nor this", "PERCENT": "100% %H %%",
    }
    site = site_from_data(data)
    sysconfig = {f.dest: f.text for f in render_site(site).files}["/etc/sysconfig/airflow"]
    host.put("/etc/e2e-env/sysconfig", sysconfig)
    seen = _systemd_env(host, "/etc/e2e-env/sysconfig")
    intent = readers.sysconfig_intent(site)
    assert {k: seen.get(k) for k in intent} == intent
    wrapper = readers.wrapper_namespace({f.dest: f.text for f in render_site(site).files}["/usr/bin/airflow"])
    local = Path(tempfile.mkdtemp()) / "sysconfig"
    local.write_text(sysconfig)
    assert wrapper["read_env_file"](str(local)) == intent
    dash = host.run(["sh", "-c", 'set -a; . /etc/e2e-env/sysconfig && exec env -0']).stdout
    assert {k: v for k, v in (i.split("=", 1) for i in dash.split("\0") if i) if k in intent} == intent
    assert not host.exists(canary)


PROBE_DIR = "/opt/fapolicyd-probe"
# A Python module libmagic (fapolicyd's ftype) calls text/x-python: one of RHEL's %languages.
PROBE_PY = "#!/usr/bin/python3\nprint('probe ran')\n"
LOAD_SO = "import ctypes, sys; ctypes.CDLL(sys.argv[1]); print('loaded')"


def test_fapolicyd_enforcing_denies_untrusted_code_to_users(host):
    """Debian's fapolicyd 1.1.7, enforcing in the booted host with RHEL 9's default rules and
    the rpmdb emulated by file trust lists (TargetHost.enforce_fapolicyd): an untrusted binary,
    .so, Python file and bytecode are denied to a non-root user and allowed to root; once in a
    trust file (as build-venv does it: --file add DIR/ --trust-file NAME, --update) they are
    allowed, after the daemon's asynchronous reload."""
    from e2e.target import FAPOLICYD_OS_TRUST

    counts = host.enforce_fapolicyd()
    try:
        assert counts[FAPOLICYD_OS_TRUST] > 5000, counts     # every file under /usr
        so = host.run(["python3", "-c", "import ctypes.util; print(ctypes.util._findSoname_ldconfig('z'))"]
                      ).stdout.strip()
        host.put(f"{PROBE_DIR}/probe.py", PROBE_PY)
        host.sh(f"cp /usr/bin/true {PROBE_DIR}/true; cp /usr/lib/x86_64-linux-gnu/{so} {PROBE_DIR}/libprobe.so; "
                f"python3 -m py_compile {PROBE_DIR}/probe.py; "
                f"mv {PROBE_DIR}/__pycache__/probe.*.pyc {PROBE_DIR}/probe.pyc; chmod -R a+rX {PROBE_DIR}")
        ftypes = {n: host.run(["fapolicyd-cli", "--ftype", f"{PROBE_DIR}/{n}"]).stdout.strip()
                  for n in ("probe.py", "probe.pyc", "libprobe.so")}
        assert ftypes == {"probe.py": "text/x-python", "probe.pyc": "application/x-bytecode.python",
                          "libprobe.so": "application/x-sharedlib"}, ftypes

        def as_nobody():
            # Through sh: fapolicyd keeps a process's uid from its first event, so runuser's own
            # execve (a process that was root) would be judged as root's.
            return (host.run(["sh", "-c", f"{PROBE_DIR}/true && echo ran"], user="nobody", check=False),
                    host.run(["python3", "-c", LOAD_SO, f"{PROBE_DIR}/libprobe.so"], user="nobody", check=False),
                    host.run(["python3", f"{PROBE_DIR}/probe.py"], user="nobody", check=False),
                    host.run(["python3", f"{PROBE_DIR}/probe.pyc"], user="nobody", check=False),
                    # build-venv's smoke test: setpriv execs python in the process that was root
                    host.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--init-groups", "--",
                              "python3", "-c", LOAD_SO, f"{PROBE_DIR}/libprobe.so"], check=False))

        for denied in as_nobody():
            assert denied.returncode != 0 and "Operation not permitted" in denied.stderr, denied
        # the OS's own files are fine for nobody, and root may run what is untrusted
        assert host.run(["/usr/bin/true"], user="nobody").returncode == 0
        assert host.run([f"{PROBE_DIR}/true"]).returncode == 0
        assert host.run(["python3", f"{PROBE_DIR}/probe.py"]).stdout.strip() == "probe ran"

        host.run(["fapolicyd-cli", "--file", "add", f"{PROBE_DIR}/", "--trust-file", "e2e-probe"])
        reload_s = host.fapolicyd_update()   # waits for the daemon's "Updated"
        print(f"fapolicyd trust reload after --update: {reload_s:.2f} s")
        exe, lib, py, pyc, setpriv = as_nobody()
        assert exe.stdout.strip() == "ran", exe
        assert lib.stdout.strip() == "loaded" and setpriv.stdout.strip() == "loaded", (lib, setpriv)
        assert py.stdout.strip() == "probe ran" and pyc.stdout.strip() == "probe ran", (py, pyc)
    finally:
        host.systemctl("stop", "fapolicyd.service", check=False)
        host.run(["rm", "-rf", PROBE_DIR, "/etc/fapolicyd/trust.d/e2e-probe"], check=False)


def test_build_venv_trusts_a_venv_and_waits_for_the_daemon(host, example_site):
    """build-venv's own fapolicyd functions against the enforcing daemon: right after
    fapolicyd_trust returns, the airflow user may load the new files; right after
    fapolicyd_trust_uv, the extracted uv may read Python files as root. `fapolicyd-cli --update`
    returns before the daemon reloads (the previous test measures the reload), so without
    fapolicyd_wait the load below is denied."""
    from builder.rpm.spec import render_build_venv

    script = render_build_venv(example_site, ("json",))
    functions = script[script.index('mkdir -p "$LOG_DIR"'):script.index("# --- preconditions")]
    header = "\n".join(line for line in script.splitlines()
                       if line.startswith(("PYTHON=", "FAPOLICYD_CLI=", "TRUST_FILE=", "LOG_DIR=")))
    venv = "/opt/e2e-fapolicyd-venv"
    host.enforce_fapolicyd()
    try:
        host.run(["sh", "-c", "getent passwd airflow || useradd -r -M -s /sbin/nologin airflow"])
        host.sh(f"mkdir -p {venv}/lib; cp /usr/lib/x86_64-linux-gnu/libz.so.1 {venv}/lib/_native.so; "
                f"cp -r /usr/lib/python3.11/json {venv}/lib/; chmod -R a+rX {venv}")
        as_airflow = ["setpriv", "--reuid=airflow", "--regid=airflow", "--init-groups", "--",
                      "python3", "-c", LOAD_SO, f"{venv}/lib/_native.so"]
        before = host.run(as_airflow, check=False)
        assert before.returncode != 0 and "Operation not permitted" in before.stderr, before
        trusted = host.run(["sh", "-euc", f"{header}\n{functions}\nfapolicyd_trust {venv}\n"
                            f"exec {shlex.join(as_airflow)}"])
        assert trusted.stdout.splitlines()[-1] == "loaded", trusted
        assert f"fapolicyd: the daemon trusts {venv}" in trusted.stdout, trusted.stdout
        listed = host.read("/etc/fapolicyd/trust.d/airflow-prod")
        paths = sorted(line.rsplit(" ", 2)[0] for line in listed.splitlines() if line.startswith("/"))
        files = sorted(host.run(["find", venv, "-type", "f"]).stdout.split())
        assert paths == files
        host.run(["sh", "-euc", f"{header}\n{functions}\nfapolicyd_untrust {venv}"])
        assert venv not in host.read("/etc/fapolicyd/trust.d/airflow-prod")

        # uv, extracted by build-venv, is an untrusted program: even as root, fapolicyd denies it
        # the language files it installs, until fapolicyd_trust_uv has the daemon trust it.
        uv = f"{venv}/.build/bin/uv"
        host.sh(f"install -D /usr/bin/cat {uv}")
        host.put(f"{venv}/lib/module.py", PROBE_PY)
        denied = host.run([uv, f"{venv}/lib/module.py"], check=False)
        assert denied.returncode != 0 and "Operation not permitted" in denied.stderr, denied
        ran = host.run(["sh", "-euc", f"{header}\n{functions}\nfapolicyd_trust_uv {uv}\n"
                        f"exec {uv} {venv}/lib/module.py"])
        assert ran.stdout.endswith(PROBE_PY), ran
        assert f"fapolicyd: trusted {uv} for this build" in ran.stdout
        host.run(["sh", "-euc", f"{header}\n{functions}\nfapolicyd_untrust {venv}/.build"])
        assert venv not in host.read("/etc/fapolicyd/trust.d/airflow-prod")
    finally:
        host.systemctl("stop", "fapolicyd.service", check=False)
        host.run(["rm", "-rf", venv, "/etc/fapolicyd/trust.d/airflow-prod"], check=False)


# --- issue 20 item 2: the local broker our packages configure -------------------------------

RESP_PROBE = r"""
import socket, sys
from urllib.parse import unquote, urlsplit
env = dict(l.split("=", 1) for l in open(sys.argv[1]).read().splitlines() if l and not l.startswith("#"))
url = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"].strip('"'))
def cmd(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() for x in args))
s = socket.create_connection((url.hostname, url.port), timeout=5)
s.sendall(cmd("AUTH", unquote(url.username), unquote(url.password)) + cmd("PING"))
print(s.recv(64).decode().replace("\r\n", " ").strip())
"""


LISTENERS = r"""
import sys
port = int(sys.argv[1])
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(table).readlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hexport = local.rpartition(":")
        if state == "0A" and int(hexport, 16) == port:
            print(address)
"""


def test_the_local_broker_lets_in_only_the_sites_user(host):
    """Our redis.service drop-in (as airflow-prod-scheduler ships it) on the booted host's
    Redis, named redis.service as on RHEL: role-env writes the ACL file as root, redis-server
    reads the distribution's redis.conf, then our options. No password: NOAUTH; a local user
    with a guess: refused; the scheduler's share (the URL role-env composes) gets PONG."""
    import hashlib
    import tomllib

    from builder.render import render_site
    from builder.site import site_from_data
    from support.sites import EXAMPLE

    data = tomllib.loads(EXAMPLE.read_text()) | {"broker": {"host": "localhost", "port": _free_port(), "db": 0}}
    files = {f.dest: f for f in render_site(site_from_data(data)).files}
    for dest in ("/usr/libexec/airflow-prod/role-env", "/usr/lib/systemd/system/redis.service.d/50-airflow-prod.conf"):
        host.put(dest, files[dest].text, files[dest].mode)
    password = "b@d:/%?# pass$word"
    host.run(["install", "-d", "-m", "0750", "-g", "root", "/etc/airflow"])
    host.put("/etc/airflow/secrets.env", f"AIRFLOW_BROKER_PASSWORD='{password}'\n", 0o600)
    host.systemctl("unmask", "redis.service", "redis-server.service")
    host.run(["cp", "/lib/systemd/system/redis-server.service", "/etc/systemd/system/redis.service"])
    host.systemctl("daemon-reload")
    try:
        host.systemctl("start", "redis.service")
        assert host.is_active("redis.service"), host.diagnose(["redis.service"])
        port = str(data["broker"]["port"])
        acl = host.run(["stat", "-c", "%U:%G %a", "/run/airflow-prod-redis/users.acl"]).stdout.strip()
        assert acl == "root:redis 640"
        digest = hashlib.sha256(password.encode()).hexdigest()
        assert host.read("/run/airflow-prod-redis/users.acl") == (
            f"user default off\nuser airflow on #{digest} ~* &* +@all -@dangerous\n")
        # Listening sockets on the port (the root has no ss): loopback only, v4 and v6.
        listening = host.run(["python3", "-c", LISTENERS, port]).stdout.split()
        assert listening and set(listening) <= {"0100007F", "00000000000000000000000001000000"}, listening
        cli = ["redis-cli", "-h", "127.0.0.1", "-p", port, "--no-auth-warning"]
        assert host.run([*cli, "PING"]).stdout.strip().startswith("NOAUTH")
        guess = host.run([*cli, "--user", "airflow", "--pass", "airflow", "PING"], user="nobody")
        assert guess.stdout.strip().startswith("NOAUTH"), guess
        host.run(["/usr/libexec/airflow-prod/role-env", "scheduler"])
        probe = host.run(["python3", "-c", RESP_PROBE, "/run/airflow-prod/scheduler.env"]).stdout.strip()
        assert probe == "+OK +PONG", probe
    finally:
        host.systemctl("stop", "redis.service", check=False)
        host.run(["rm", "-rf", "/etc/systemd/system/redis.service", "/etc/airflow",
                  "/usr/lib/systemd/system/redis.service.d", "/run/airflow-prod", "/run/airflow-prod-redis"])
        host.systemctl("mask", "redis.service", "redis-server.service", check=False)
        host.systemctl("daemon-reload")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
