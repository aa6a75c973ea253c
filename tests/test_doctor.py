"""`airflow-prod doctor`, rendered for a site on this machine's real servers (PostgreSQL, Redis,
OpenLDAP, MIT KDC, an HTTPS execution API), run as root under a venv of the lock's own pins:
each check's healthy case, then each server broken the way an admin meets it, named.

systemd does not run here, so the units check reports that and doctor checks every role's
servers (docs/operations.md, "doctor"); the booted e2e runs it on a real host.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import os
import re
import ssl
import subprocess
import threading
import time
from secrets import token_urlsafe
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from builder.fingerprint import site_fingerprints
from builder.layout import ADMIN_TOOL
from builder.render import render_secrets, render_site
from builder.site import site_from_data
from e2e.fixtures import TARGET_HOST, ca, kdc, ldap, postgres, redis, servers_dir  # noqa: F401
from e2e.proc import free_port
from e2e.site import e2e_site_data
from support.doctorvenv import PYTHON, doctor_venv
from support.tls import cert_pem

pytestmark = [pytest.mark.network]  # the venv's pins come from PyPI on first use


@pytest.fixture(scope="module")
def venv() -> Path:
    return doctor_venv()


class ExecutionApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = json.dumps({"status": "healthy"} if self.path == "/execution/health" else {}).encode()
        self.send_response(200 if self.path == "/execution/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def api(ca, tmp_path_factory):
    """An HTTPS server answering the execution API's health route, certificate from the CA."""
    issued = ca.issue_server(tmp_path_factory.mktemp("api-tls"), "api", dns=[TARGET_HOST, "localhost"],
                             ips=["127.0.0.1"])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), ExecutionApi)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(issued.chain, issued.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], issued
    server.shutdown()


@pytest.fixture(scope="module")
def migrations(venv) -> dict[str, str]:
    """Airflow 3.1.4's head and the revision before it, from its migration files."""
    files = sorted((venv / "lib" / "python3.11" / "site-packages" / "airflow" / "migrations" / "versions").glob("0*.py"))
    text = files[-1].read_text()
    return {"head": re.search(r'^revision = "(\w+)"', text, re.M)[1],
            "before": re.search(r'^down_revision = "(\w+)"', text, re.M)[1]}


class Doctor:
    """One host's files in a temporary directory and the rendered doctor pointing at them."""

    def __init__(self, root: Path, venv: Path, data: dict, postgres, ldap, redis) -> None:
        self.root, self.data = root, data
        self.site = site_from_data(data)
        secrets = {"AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                   "AIRFLOW__API__SECRET_KEY": token_urlsafe(32), "AIRFLOW__API_AUTH__JWT_SECRET": token_urlsafe(32), "PGPASSWORD": postgres.password,
                   "AIRFLOW_LDAP_BIND_PASSWORD": ldap.bind.password, "AIRFLOW_BROKER_PASSWORD": redis.password}
        self.secrets_text = render_secrets(self.site, secrets)
        self.write_secrets(self.secrets_text)
        prints = site_fingerprints(self.site, self.path(self.site.paths.config) / "secrets.env")
        rendered = {f.dest: f.text for f in render_site(self.site, prints).files}
        fingerprint_file = f"{self.site.paths.config}/secrets.fingerprint"
        self.path(fingerprint_file).write_text(rendered[fingerprint_file])
        self.path("/etc/sysconfig/airflow").parent.mkdir(parents=True)
        self.path("/etc/sysconfig/airflow").write_text(self.relocate(rendered["/etc/sysconfig/airflow"]))
        self.path(self.site.paths.logs).mkdir(parents=True)
        os.symlink(venv, self.path(self.site.paths.venv))
        self.tool = root / "airflow-prod"
        self.tool.write_text(self.relocate(rendered[ADMIN_TOOL]))
        self.tool.chmod(0o755)

    def path(self, host_path: str) -> Path:
        """Where a host path of the site lies in this test's root."""
        return self.root / host_path.lstrip("/")

    def relocate(self, text: str) -> str:
        """The rendered file with every host path of the site moved under the test's root."""
        return re.sub(r"(?<=[\"'=])(%s)" % "|".join(map(re.escape, HOST_PATHS)), lambda m: str(self.root) + m[1], text)

    @property
    def config(self) -> Path:
        return self.path(self.site.paths.config)

    @property
    def security(self) -> Path:
        return self.path(self.site.paths.security)

    def write_secrets(self, text: str) -> None:
        self.config.mkdir(parents=True, exist_ok=True)
        path = self.config / "secrets.env"
        path.write_text(text)
        path.chmod(0o600)

    def run(self, *args: str, timeout: float = 60) -> tuple[int, dict, float]:
        t0 = time.monotonic()
        proc = subprocess.run([PYTHON, "-I", str(self.tool), "doctor", "--json", *args], capture_output=True,
                              text=True, timeout=timeout, env={"PATH": os.environ["PATH"]})
        assert proc.stdout, proc.stderr
        return proc.returncode, json.loads(proc.stdout), time.monotonic() - t0

    def findings(self, *args: str) -> dict[str, list[dict]]:
        _, report, _ = self.run(*args)
        out: dict[str, list[dict]] = {}
        for check in report["checks"]:
            for f in check["findings"]:
                out.setdefault(f["check"], []).append(f)
        return out


# The site's host paths (the site model refuses temporary directories), each moved under a
# test's root in the rendered doctor and sysconfig.
HOST_PATHS = ("/opt/airflow", "/etc/airflow", "/run/airflow", "/etc/sysconfig/airflow", "/etc/doctor-test")


@pytest.fixture
def doctor(tmp_path, venv, api, postgres, redis, ldap, kdc, ca):
    port, issued = api
    root = tmp_path / "host"
    data = e2e_site_data(api_port=port, postgres=postgres, redis=redis, ldap=ldap, kdc=kdc,
                         ca_on_target="/etc/doctor-test/ldap-ca.pem")
    data["api"]["host"] = "localhost"
    data["kerberos"]["krb5_conf"] = "/etc/doctor-test/krb5.conf"
    d = Doctor(root, venv, data, postgres, ldap, redis)
    d.path("/etc/doctor-test").mkdir(parents=True)
    d.path("/etc/doctor-test/ldap-ca.pem").write_bytes(ca.pem)
    d.path("/etc/doctor-test/krb5.conf").write_text(kdc.krb5_conf_text())
    d.security.mkdir(parents=True)
    (d.security / "airflow_cert.pem").write_bytes(issued.chain.read_bytes())
    (d.security / "airflow_key.pem").write_bytes(issued.key.read_bytes())
    (d.security / "ca-chain.pem").write_bytes(ca.pem)
    (d.security / "airflow.keytab").write_bytes(kdc.keytab.read_bytes())
    return d


def statuses(found: dict[str, list[dict]], check: str) -> list[str]:
    return [f["status"] for f in found.get(check, [])]


def migrated_to(postgres, revision: str | None) -> None:
    postgres.psql("DROP TABLE IF EXISTS alembic_version")
    if revision:
        postgres.psql("CREATE TABLE alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY);"
                      f"INSERT INTO alembic_version VALUES ('{revision}')")


def test_a_healthy_host_passes_every_server_check(doctor, postgres, migrations, kdc):
    migrated_to(postgres, migrations["head"])
    ccache = doctor.path(doctor.site.kerberos.ccache)
    ccache.parent.mkdir(parents=True)
    subprocess.run(["kinit", "-k", "-t", str(kdc.keytab), "-c", f"FILE:{ccache}", kdc.principal],
                   env={**os.environ, **kdc.client_env}, check=True, timeout=30)
    code, report, seconds = doctor.run()
    found = {f["check"]: f for c in report["checks"] for f in c["findings"]}
    for check in ("venv", "database", "schema", "clock", "fernet", "broker", "ldap", "keytab", "kerberos", "tls",
                  "execution-api", "log-disk", "secrets"):
        assert len([f for c in report["checks"] for f in c["findings"] if f["check"] == check]) == 1, check
        assert found[check]["status"] == "ok", (check, found[check])
    assert "ticket-cache" not in found  # the renewer's ticket is there and valid
    assert "Airflow 3.1.4" in found["venv"]["what"] and migrations["head"] in found["schema"]["what"]
    # Not a booted host: systemctl has nothing to say, and doctor says so (the e2e checks units).
    assert report["status"] == "broken" and code == 2
    assert [f["check"] for f in report["checks"][-2]["findings"]] == ["units"]
    assert seconds < 20, seconds


def test_a_schema_behind_the_venv_is_named_with_the_migration_to_run(doctor, postgres, migrations):
    migrated_to(postgres, migrations["before"])
    schema = doctor.findings()["schema"][0]
    assert schema["status"] == "fail" and "schema behind this venv" in schema["what"], schema
    assert migrations["before"] in schema["what"] and migrations["head"] in schema["what"]
    assert "airflow-db-migrate" in schema["fix"]
    migrated_to(postgres, None)
    assert "never migrated" in doctor.findings()["schema"][0]["what"]
    migrated_to(postgres, "ffffffffffff")
    assert "does not know" in doctor.findings()["schema"][0]["what"]


def test_wrong_passwords_are_named(doctor, postgres, ldap):
    text = re.sub(r"^AIRFLOW_LDAP_BIND_PASSWORD=.*$", "AIRFLOW_LDAP_BIND_PASSWORD='wrong'", doctor.secrets_text,
                  flags=re.M)
    text = re.sub(r"^PGPASSWORD=.*$", "PGPASSWORD='wrong'", text, flags=re.M)
    doctor.write_secrets(text)
    found = doctor.findings()
    assert statuses(found, "ldap") == ["fail"] and "invalid credentials" in found["ldap"][0]["what"], found["ldap"]
    assert "AIRFLOW_LDAP_BIND_PASSWORD" in found["ldap"][0]["fix"]
    db = found["database"][0]
    assert db["status"] == "fail" and "password authentication failed" in db["what"], db
    assert "PGPASSWORD" in db["fix"]


@pytest.fixture
def stored(postgres):
    """Airflow's encrypted columns (connection, variable, trigger), as its schema has them; dropped after."""
    postgres.psql("CREATE TABLE connection (conn_id varchar(250), password text, extra text, is_encrypted boolean,"
                  " is_extra_encrypted boolean);"
                  "CREATE TABLE variable (key varchar(250), val text, is_encrypted boolean);"
                  "CREATE TABLE trigger (id serial, kwargs text NOT NULL)")

    def store(key: bytes) -> None:
        f = Fernet(key)
        token = {n: f.encrypt(f"plaintext-{n}".encode()).decode() for n in ("pw", "extra", "val", "kwargs")}
        postgres.psql(f"INSERT INTO connection VALUES ('c1', '{token['pw']}', '{token['extra']}', true, true),"
                      "('plain', 'not-encrypted', NULL, false, false);"
                      f"INSERT INTO variable VALUES ('v1', '{token['val']}', true);"
                      f"INSERT INTO trigger (kwargs) VALUES ('{token['kwargs']}')")
    yield store
    postgres.psql("DROP TABLE IF EXISTS connection, variable, trigger")


def test_stored_secrets_another_fernet_key_wrote_are_named(doctor, stored):
    """Each host decrypts what any host stored: a host one rotation step behind (or ahead) cannot,
    and doctor says so; a rotation under way (values under the old key) is a warning."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()

    def fernet(keys: str) -> dict:
        doctor.write_secrets(re.sub(r"^AIRFLOW__CORE__FERNET_KEY=.*$", f"AIRFLOW__CORE__FERNET_KEY='{keys}'",
                                    doctor.secrets_text, flags=re.M))
        [finding] = doctor.findings()["fernet"]
        return finding

    stored(old.encode())
    ok = fernet(old)
    assert ok["status"] == "ok" and "4 stored secrets decrypt with the current key" in ok["what"], ok
    under_way = fernet(f"{new},{old}")
    assert under_way["status"] == "warn" and "4 of 4" in under_way["what"], under_way
    assert "airflow rotate-fernet-key" in under_way["fix"]
    behind = fernet(new)  # --finish installed before rotate-fernet-key ran, or another host's file
    assert behind["status"] == "fail" and "4 of 4 stored secrets do not decrypt" in behind["what"], behind
    assert "connection 'c1' (password)" in behind["what"] and "every host" in behind["fix"]
    assert "plaintext-" not in json.dumps(behind)  # names, never values
    assert fernet("not-a-key")["status"] == "fail"


def test_a_changed_generated_secret_breaks_the_fingerprint(doctor):
    doctor.write_secrets(re.sub(r"^AIRFLOW__API_AUTH__JWT_SECRET=.*$", "AIRFLOW__API_AUTH__JWT_SECRET='other'",
                                doctor.secrets_text, flags=re.M))
    found = doctor.findings()["secrets"]
    assert [f["status"] for f in found] == ["fail"] and "AIRFLOW__API_AUTH__JWT_SECRET" in found[0]["what"]


def test_a_stopped_broker_is_named(doctor, redis):
    with redis.control.outage():
        found = doctor.findings()["broker"]
    assert found[0]["status"] == "fail" and "unreachable" in found[0]["what"], found


def test_a_dead_server_costs_one_timeout_not_a_hang(doctor, postgres):
    """PostgreSQL stopped (SIGSTOP: it accepts nothing and answers nothing): doctor still ends."""
    os.kill(postgres.pid, 19)
    try:
        code, report, seconds = doctor.run("--timeout", "8")
    finally:
        os.kill(postgres.pid, 18)
    db = next(f for c in report["checks"] for f in c["findings"] if f["check"] == "database")
    assert code == 2 and db["status"] == "fail", db
    assert seconds < 15, seconds


def _expired(ca, key) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=400)).not_valid_after(now - dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(TARGET_HOST), x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca.key, hashes.SHA256()))


def test_an_expired_or_foreign_certificate_is_named(doctor, ca):
    security = doctor.security
    key = serialization.load_pem_private_key((security / "airflow_key.pem").read_bytes(), None)
    (security / "airflow_cert.pem").write_bytes(cert_pem(_expired(ca, key)) + ca.pem)
    tls = doctor.findings()["tls"]
    assert [f["status"] for f in tls] == ["fail"] and "expired" in tls[0]["what"], tls
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (security / "airflow_key.pem").write_bytes(other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    tls = doctor.findings()["tls"]
    assert any("is not the key of" in f["what"] for f in tls), tls


def test_a_keytab_without_the_principal_is_named(doctor, tmp_path):
    keytab = doctor.path(doctor.site.kerberos.keytab)
    keytab.write_bytes(b"\x05\x02")  # an empty keytab: the header only
    found = doctor.findings()
    assert statuses(found, "keytab") == ["fail"] and "has no key for" in found["keytab"][0]["what"], found["keytab"]


def test_plain_output_has_a_line_per_finding_a_fix_per_problem_and_the_verdict(doctor, postgres, migrations):
    migrated_to(postgres, migrations["before"])
    proc = subprocess.run([PYTHON, "-I", str(doctor.tool), "doctor"], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"]})
    print(proc.stdout)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 2 and lines[0].startswith("airflow-prod doctor: ") and "as root" in lines[0]
    schema = next(i for i, line in enumerate(lines) if line.split()[:2] == ["FAIL", "schema"])
    assert "schema behind this venv" in lines[schema] and "-> migrate: systemctl restart" in lines[schema + 1]
    assert re.fullmatch(r"broken: \d+ failed, \d+ warnings, \d+ skipped in [\d.]+ s", lines[-1]), lines[-1]
    assert any(line.split()[:2] == ["ok", "ldap"] for line in lines)


@pytest.mark.parametrize("mode", [0o777, 0o755])
def test_root_runs_no_python_from_a_venv_others_could_write(doctor, tmp_path, mode):
    """A venv directory others can write (0777) is refused: its planted `python` never runs and
    doctor says why. The control (0755, root's) shows the same planted file would run."""
    fake = tmp_path / "venvs" / "planted"
    (fake / "bin").mkdir(parents=True)
    (fake / "pyvenv.cfg").write_text("home = /usr/bin\n")
    marker = tmp_path / "planted-ran"
    python = fake / "bin" / "python"
    python.write_text(f"#!/bin/sh\necho planted > {marker}\nexit 3\n")
    python.chmod(0o755)
    fake.chmod(mode)
    venv = doctor.path(doctor.site.paths.venv)
    venv.unlink()
    venv.symlink_to(fake)
    proc = subprocess.run([PYTHON, "-I", str(doctor.tool), "doctor", "--json"], capture_output=True, text=True,
                          timeout=60, env={"PATH": os.environ["PATH"]})
    if mode == 0o755:
        assert marker.exists() and proc.returncode == 3, proc
        return
    assert not marker.exists(), "root ran the planted python"
    report = json.loads(proc.stdout)
    venv_finding = report["checks"][0]["findings"][0]
    assert venv_finding["status"] == "fail" and "is not root's alone" in venv_finding["what"], venv_finding
    assert "writable by others" in venv_finding["what"]
