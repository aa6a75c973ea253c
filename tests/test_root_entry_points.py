"""Root's entry points hand Airflow's code nothing of root's (docs/security.md, "root admin").

The `airflow` wrapper runs as root and starts Airflow, whose start imports files the airflow
user (and so every task) can write. It must start that code in a session of its own (no
controlling terminal: TIOCSTI cannot type into root's shell), from /, with an allow-listed
environment, reading only files root alone can change. build-venv and the scriptlets run
root's Python isolated (-I), so a module planted in the caller's directory is never imported.

The wrapper runs here for real, under a pseudo-terminal that is its controlling terminal, with
a stand-in for runuser that drops to `nobody` (as runuser drops to airflow) and then tries
what planted code would try. Each attack is also tried without the wrapper, where it must
succeed: the test can fail.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.render import render_site

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the wrapper's root path needs root")

# Planted code's view, as the service user: can it type into the terminal, open it, what
# session, directory and environment does it have.
PROBE = r"""
import fcntl, json, os, sys, termios
out = open(RESULT, "w")  # before dropping privileges: the result lives in root's tmp dir
os.setgid(65534); os.setuid(65534)
try:
    fcntl.ioctl(0, termios.TIOCSTI, b"#")
    typed = True
except OSError as exc:
    typed = exc.strerror
try:
    os.close(os.open("/dev/tty", os.O_RDWR))
    tty = True
except OSError as exc:
    tty = exc.strerror
json.dump({"typed": typed, "tty": tty, "cwd": os.getcwd(), "env": dict(os.environ), "argv": sys.argv[1:]}, out)
"""


def _wrapper_text() -> str:
    from builder.site import load_site

    site = load_site(Path(__file__).resolve().parent.parent / "examples" / "site.toml")
    return {f.dest: f.text for f in render_site(site).files}["/usr/bin/airflow"]


def _runuser_standin(tmp: Path, result: Path) -> Path:
    """What /usr/sbin/runuser -u airflow -- <airflow> ARGS would exec, as a probe: drops to
    nobody, records what it can do, exits 7."""
    probe = tmp / "probe.py"
    probe.write_text(f"RESULT = {str(result)!r}\n" + PROBE)
    fake = tmp / "runuser"
    fake.write_text(f"#!{sys.executable} -I\n"
                    "import os, sys\n"
                    f"os.execv({sys.executable!r}, [{sys.executable!r}, '-I', {str(probe)!r}, *sys.argv[1:]])\n")
    fake.chmod(0o755)
    return fake


def _wrapper(tmp: Path, runuser: Path, *, secrets_mode: int = 0o640) -> Path:
    sysconfig, secrets = tmp / "etc" / "sysconfig-airflow", tmp / "etc" / "secrets.env"
    sysconfig.parent.mkdir(mode=0o755)
    sysconfig.write_text("AIRFLOW_HOME=/opt/airflow\nKRB5CCNAME=FILE:/run/airflow/krb5cc\n")
    secrets.write_text("AIRFLOW__CORE__FERNET_KEY='k'\nPGPASSWORD='pw'\n")
    secrets.chmod(secrets_mode)
    text = _wrapper_text()
    for name, value in (("SYSCONFIG", sysconfig), ("SECRETS", secrets), ("RUNUSER", runuser)):
        text, n = re.subn(rf"^{name} = .*$", f"{name} = {str(value)!r}", text, count=1, flags=re.M)
        assert n == 1, name
    path = tmp / "airflow"
    path.write_text(text)
    path.chmod(0o755)
    return path


def _on_a_terminal(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run argv as the leader of a new session whose controlling terminal is a pty, the way
    an admin's shell runs it; (exit code, what it printed)."""
    pid, master = pty.fork()
    if pid == 0:
        os.chdir(cwd)
        os.execve(argv[0], argv, env)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(master)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


HOSTILE_ENV = {"PATH": "/tmp/evil:/usr/bin:/bin", "PYTHONPATH": "/tmp/evil", "LD_PRELOAD": "/tmp/evil.so",
               "ROOT_TOKEN": "root-only-secret", "LANG": "C.UTF-8", "TERM": "xterm",
               "AIRFLOW__CORE__PARALLELISM": "3"}


def test_planted_code_cannot_type_into_roots_terminal_nor_see_roots_environment(tmp_path):
    result = tmp_path / "seen.json"
    runuser = _runuser_standin(tmp_path, result)
    code, out = _on_a_terminal([str(_wrapper(tmp_path, runuser)), "dags", "list"], HOSTILE_ENV, tmp_path)
    assert code == 0, out
    seen = json.loads(result.read_text())
    assert seen["argv"] == ["-u", "airflow", "--", "/opt/airflow/venv/bin/airflow", "dags", "list"]
    assert seen["typed"] != True and seen["tty"] != True, seen  # noqa: E712 - True, or the error
    assert seen["cwd"] == "/"
    env = seen["env"]
    assert {"PYTHONPATH", "LD_PRELOAD", "ROOT_TOKEN"}.isdisjoint(env), env
    assert env["PATH"] == "/usr/sbin:/usr/bin:/sbin:/bin"
    # What the services get, plus the admin's own terminal, locale and AIRFLOW__ overrides.
    assert env["PGPASSWORD"] == "pw" and env["AIRFLOW_HOME"] == "/opt/airflow"
    assert env["LANG"] == "C.UTF-8" and env["TERM"] == "xterm" and env["AIRFLOW__CORE__PARALLELISM"] == "3"


def test_without_the_wrapper_the_same_probe_types_into_the_terminal(tmp_path):
    """The control: the probe, run in the terminal's own session as nobody, does type into
    it and open it, so the test above would see a wrapper that kept root's terminal."""
    result = tmp_path / "seen.json"
    runuser = _runuser_standin(tmp_path, result)
    code, out = _on_a_terminal([str(runuser)], HOSTILE_ENV, tmp_path)
    assert code == 0, out
    seen = json.loads(result.read_text())
    assert seen["typed"] is True and seen["tty"] is True, seen
    assert "#" in out  # the typed character came back through the terminal


def test_signals_reach_airflow_and_its_exit_code_comes_back(tmp_path):
    """Ctrl-C reaches the wrapper only (the command runs in another session): it passes it on."""
    fake = tmp_path / "runuser"
    fake.write_text(f"#!{sys.executable} -I\nimport signal, sys, time\n"
                    "signal.signal(signal.SIGINT, lambda *a: sys.exit(42))\n"
                    "print('ready', flush=True)\ntime.sleep(30)\nsys.exit(1)\n")
    fake.chmod(0o755)
    proc = subprocess.Popen([str(_wrapper(tmp_path, fake)), "scheduler"], stdout=subprocess.PIPE, text=True,
                            env=HOSTILE_ENV)
    assert proc.stdout and proc.stdout.readline().strip() == "ready"
    proc.send_signal(2)
    assert proc.wait(10) == 42


@pytest.mark.parametrize("make_unsafe, why", [
    (lambda etc, secrets: secrets.chmod(0o646), r"secrets.env is writable by others than root \(mode 0646\)"),
    (lambda etc, secrets: os.chown(secrets, 65534, 0), r"secrets.env belongs to uid 65534, not root"),
    (lambda etc, secrets: etc.chmod(0o777), r"/etc is writable by others than root \(mode 0777\)"),
    (lambda etc, secrets: (secrets.rename(etc / "real"), secrets.symlink_to(etc / "real")),
     r"secrets.env is a symlink"),
])
def test_root_refuses_env_files_that_others_could_have_written(tmp_path, make_unsafe, why):
    runuser = _runuser_standin(tmp_path, tmp_path / "seen.json")
    wrapper = _wrapper(tmp_path, runuser)
    make_unsafe(tmp_path / "etc", tmp_path / "etc" / "secrets.env")
    proc = subprocess.run([str(wrapper), "version"], capture_output=True, text=True, env=HOSTILE_ENV)
    assert proc.returncode == 1
    assert re.search(rf"refusing to read \S+ as root: \S*{why}", proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "seen.json").exists()


# --- build-venv and the scriptlets: root's Python, isolated --------------------------------

PLANTED = "import pathlib; pathlib.Path({canary!r}).write_text('ran as ' + str(__import__('os').getuid()))\n"


def _build_venv(tmp: Path) -> str:
    """build-venv of the example, pointed at a scratch wheelhouse whose uv is a stand-in
    that fails at `uv venv`: the script gets as far as extracting uv with root's Python."""
    import zipfile

    from builder.rpm.spec import render_build_venv
    from builder.site import load_site

    site = load_site(Path(__file__).resolve().parent.parent / "examples" / "site.toml")
    text = render_build_venv(site, ("airflow",))
    wheels, uv_dir, venvs, logs = (tmp / d for d in ("wheels", "uv", "venvs", "log"))
    for d in (wheels, uv_dir, venvs):
        d.mkdir()
    (tmp / "requirements.txt").write_text("")
    with zipfile.ZipFile(uv_dir / "uv-0.0.0-py3-none-any.whl", "w") as z:
        z.writestr("uv-0.0.0.data/scripts/uv", "#!/bin/sh\n[ \"$1\" = --version ] && echo 'uv 0.0.0' && exit 0\nexit 3\n")
    for name, value in (("PYTHON", sys.executable), ("VENV_LINK", venvs / "current"), ("VENVS", venvs),
                        ("WHEELS", wheels), ("LOCK", tmp / "requirements.txt"), ("UV_DIR", uv_dir),
                        ("LOG_DIR", logs), ("FAPOLICYD_CLI", tmp / "no-fapolicyd")):
        text, n = re.subn(rf"^{name}=.*$", f"{name}='{value}'", text, count=1, flags=re.M)
        assert n == 1, name
    # The example targets python3.11 at /usr/bin; the version check must pass here.
    return text.replace("sys.version_info[:2] != (3, 11)", f"sys.version_info[:2] != {sys.version_info[:2]}")


def test_build_venv_imports_nothing_from_the_callers_directory(tmp_path):
    """An admin re-runs build-venv by hand (its failure banner says to) from a directory
    someone else could write: a zipfile.py there must not run as root."""
    script = tmp_path / "build-venv"
    script.write_text(_build_venv(tmp_path))
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    canary = tmp_path / "ran"
    (cwd / "zipfile.py").write_text(PLANTED.format(canary=str(canary)))
    proc = subprocess.run(["sh", str(script)], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(cwd)})
    # It got past extracting uv (zipfile imported) and stopped at the stand-in's `uv venv`.
    assert "FAILED: uv venv failed" in proc.stderr, proc.stderr
    assert (tmp_path / "venvs").exists() and not canary.exists()
    # The control: the same Python, reading a script from stdin as build-venv did before -I,
    # runs the planted module.
    subprocess.run([sys.executable, "-", "x"], input="import zipfile\n", cwd=cwd, text=True, check=True)
    assert canary.read_text() == f"ran as {os.getuid()}"


def test_every_python_root_runs_in_build_venv_and_the_scriptlets_is_isolated(example_site):
    """Static, over everything rendered: each interpreter call root makes carries -I."""
    from builder.rpm import scriptlets
    from builder.rpm.spec import render_build_venv

    texts = {"build-venv": render_build_venv(example_site, ("airflow",)),
             "%pre": scriptlets.base_pre(example_site, 1000)}
    calls = [(name, line.strip()) for name, text in texts.items() for line in text.splitlines()
             if re.search(r'(\$PYTHON"|/bin/python[0-9.]*"?|python3\.11) +-', line)
             and "--python " not in line]  # uv's --python names the target, it runs nothing here
    assert len(calls) >= 5, calls  # the version checks, free space, the probe, uv, the smoke import
    loose = [c for c in calls if not re.search(r'(python[0-9.]*"?|\$PYTHON") -I\b', c[1])]
    assert not loose, loose
    assert "setsid --wait setpriv" in texts["build-venv"]


# --- role-env: each role's share of the secrets file ----------------------------------------

def _role_env(tmp: Path) -> tuple[Path, Path, Path]:
    from builder.site import load_site

    site = load_site(Path(__file__).resolve().parent.parent / "examples" / "site.toml")
    text = {f.dest: f.text for f in render_site(site).files}["/usr/libexec/airflow-prod/role-env"]
    secrets, env_dir = tmp / "etc" / "secrets.env", tmp / "run" / "airflow-prod"
    secrets.parent.mkdir(mode=0o755)
    for name, value in (("SECRETS", secrets), ("ENV_DIR", env_dir), ("REDIS_ACL", tmp / "run" / "redis" / "users.acl")):
        text, n = re.subn(rf"^{name} = .*$", f"{name} = {str(value)!r}", text, count=1, flags=re.M)
        assert n == 1, name
    script = tmp / "role-env"
    script.write_text(text)
    script.chmod(0o755)
    return script, secrets, env_dir


def test_each_role_gets_its_share_of_the_secrets_and_nothing_else(tmp_path):
    from support import readers

    script, secrets, env_dir = _role_env(tmp_path)
    # Values systemd's parser must read back unchanged: quotes, backslashes, $, backticks.
    hostile = 'p"w\\x$HOME`id`'
    secrets.write_text(f"AIRFLOW__CORE__FERNET_KEY=fernet\nAIRFLOW__API__SECRET_KEY=api\n"
                       f"AIRFLOW__API_AUTH__JWT_SECRET=jwt\nPGPASSWORD='{hostile}'\n"
                       "AIRFLOW_LDAP_BIND_PASSWORD=ldap\nAIRFLOW_BROKER_PASSWORD='b@d:/%?#'\n")
    secrets.chmod(0o600)
    read = readers.wrapper_namespace(_wrapper_text())["read_env_file"]  # systemd's grammar (tested there)
    full = read(str(secrets))  # what systemd reads from the admin's file
    assert len(full) == 6 and "$HOME" in full["PGPASSWORD"] and '"' in full["PGPASSWORD"]
    # The broker password only inside the two URLs, quoted; airflow.cfg has them without it.
    url = "redis://airflow:b%40d%3A%2F%25%3F%23@localhost:6379/0"
    broker = {"AIRFLOW__CELERY__BROKER_URL": url, "AIRFLOW__CELERY__RESULT_BACKEND": url}
    expected = {
        "celery-worker": ("AIRFLOW__API__SECRET_KEY",),
        "scheduler": ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "PGPASSWORD"),
        "kerberos": ("PGPASSWORD",),
        "api-server": tuple(n for n in full if n != "AIRFLOW_BROKER_PASSWORD"),
    }
    for role, names in expected.items():
        env = {name: full[name] for name in names} | (broker if role in ("celery-worker", "scheduler") else {})
        proc = subprocess.run([str(script), role], capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        out = env_dir / f"{role}.env"
        assert read(str(out)) == env, role
        assert (out.stat().st_mode & 0o777, out.stat().st_uid) == (0o600, 0)
    assert env_dir.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in env_dir.iterdir()) == sorted(f"{r}.env" for r in expected)  # no temp files


def test_role_env_refuses_a_secrets_file_others_could_write_and_warns_when_others_can_read(tmp_path):
    script, secrets, env_dir = _role_env(tmp_path)
    secrets.write_text("PGPASSWORD=x\n")
    secrets.chmod(0o640)
    proc = subprocess.run([str(script), "kerberos"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "is readable by others than root: every task can read every secret" in proc.stderr
    secrets.chmod(0o666)
    proc = subprocess.run([str(script), "kerberos"], capture_output=True, text=True)
    assert proc.returncode == 1 and "writable by others than root (mode 0666)" in proc.stderr
    proc = subprocess.run([str(script), "webserver"], capture_output=True, text=True)
    assert proc.returncode == 1 and "usage: role-env ROLE, one of api-server, celery-worker" in proc.stderr


# Any password an admin may put in the secrets file (one line without control characters:
# what `bundle secrets init`'s quoting writes; surrounding blanks are not kept by systemd).
_PASSWORDS = st.text(st.characters(blacklist_categories=("Cs", "Cc")),
                     min_size=1, max_size=40).filter(lambda v: v.strip(" \t") == v)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=_PASSWORDS)
def test_any_broker_password_survives_into_the_urls(tmp_path, password):
    """As the services read it: systemd's env-file grammar, then Airflow (which expands `$`
    and a leading `~` in env overrides), then kombu's and Celery's URL parsing (urlparse,
    unquote: kombu.utils.url.url_to_parts)."""
    from urllib.parse import unquote, urlsplit

    from builder.render.escape import env as envquote
    from support import readers

    import tempfile

    base = Path(tempfile.mkdtemp(dir=tmp_path))
    script, secrets, env_dir = _role_env(base)
    secrets.write_text(f"AIRFLOW_BROKER_PASSWORD={envquote(password)}\n")
    secrets.chmod(0o600)
    proc = subprocess.run([str(script), "celery-worker"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = readers.wrapper_namespace(_wrapper_text())["read_env_file"](str(env_dir / "celery-worker.env"))
    for var in ("AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND"):
        url = got[var]
        assert readers.expand_env_var(url, {"HOME": "/root", "x": "y"}) == url  # Airflow's env override reader
        parts = urlsplit(url)
        assert (parts.scheme, parts.username, parts.hostname, parts.port, parts.path) == (
            "redis", "airflow", "localhost", 6379, "/0")
        assert unquote(parts.password) == password


def test_the_local_brokers_acl_file_lets_only_our_user_in(tmp_path):
    """role-env --redis-acl, read by a real redis-server: no default user, ours by the
    password's SHA-256 (the file never holds the password), readable by the redis group."""
    import grp
    import hashlib
    import socket
    import time

    script, secrets, _ = _role_env(tmp_path)
    password = "p@ss word:$x%"
    secrets.write_text(f"AIRFLOW_BROKER_PASSWORD='{password}'\n")
    secrets.chmod(0o600)
    proc = subprocess.run([str(script), "--redis-acl"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    acl = tmp_path / "run" / "redis" / "users.acl"
    digest = hashlib.sha256(password.encode()).hexdigest()
    assert acl.read_text() == f"user default off\nuser airflow on #{digest} ~* &* +@all -@dangerous\n"
    st_acl, st_dir = acl.stat(), acl.parent.stat()
    redis_gid = grp.getgrnam("redis").gr_gid
    assert (st_acl.st_mode & 0o777, st_acl.st_uid, st_acl.st_gid) == (0o640, 0, redis_gid)
    assert (st_dir.st_mode & 0o777, st_dir.st_uid, st_dir.st_gid) == (0o750, 0, redis_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--aclfile", str(acl), "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        def cli(*args: str) -> str:
            return subprocess.run(["redis-cli", "-p", str(port), "--no-auth-warning", *args],
                                  capture_output=True, text=True, timeout=10).stdout.strip()
        for _ in range(100):
            assert server.poll() is None, "redis-server refused the ACL file"
            if cli("PING"):
                break
            time.sleep(0.05)
        assert cli("PING").startswith("NOAUTH")
        # redis-cli's AUTH fails (WRONGPASS on stderr); the command then meets NOAUTH.
        assert cli("--user", "airflow", "--pass", "guess", "PING").startswith("NOAUTH")
        assert cli("--user", "default", "--pass", "", "PING").startswith("NOAUTH")
        assert cli("--user", "airflow", "--pass", password, "PING") == "PONG"
        # -@dangerous: no CONFIG, no FLUSHALL, no SHUTDOWN for the broker's user.
        assert cli("--user", "airflow", "--pass", password, "CONFIG", "GET", "requirepass").startswith("NOPERM")
    finally:
        server.terminate()
        server.wait(10)


def test_role_env_refuses_to_make_a_broker_acl_without_the_password(tmp_path):
    script, secrets, _ = _role_env(tmp_path)
    secrets.write_text("PGPASSWORD=x\n")
    secrets.chmod(0o600)
    proc = subprocess.run([str(script), "--redis-acl"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "has no AIRFLOW_BROKER_PASSWORD: the local broker would have no user to let in" in proc.stderr
    assert not (tmp_path / "run" / "redis").exists()


def test_the_wrapper_gives_airflow_the_broker_password_only_inside_the_urls(tmp_path):
    """An admin's `airflow celery ...` reaches the broker as the units do: the URLs with the
    quoted password, and no AIRFLOW_BROKER_PASSWORD (no config option, so never masked)."""
    from support import readers

    ns = readers.wrapper_namespace(_wrapper_text())
    sysconfig, secrets = tmp_path / "sysconfig", tmp_path / "secrets.env"
    sysconfig.write_text("AIRFLOW_HOME=/opt/airflow\n")
    secrets.write_text("PGPASSWORD=pw\nAIRFLOW_BROKER_PASSWORD='a b@c'\n")
    ns["SYSCONFIG"], ns["SECRETS"] = str(sysconfig), str(secrets)
    env = ns["service_env"](False)
    url = "redis://airflow:a%20b%40c@localhost:6379/0"
    assert (env["AIRFLOW__CELERY__BROKER_URL"], env["AIRFLOW__CELERY__RESULT_BACKEND"]) == (url, url)
    assert "AIRFLOW_BROKER_PASSWORD" not in env and env["PGPASSWORD"] == "pw"
