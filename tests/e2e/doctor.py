"""`airflow-prod doctor` on the booted host (issue 22 item 1): after the install, after each
fault phase, and on a host broken on purpose, where it must name the cause.

Each break is undone at once (the secrets file, the certificate file, Redis, the
alembic_version row) so the deployment goes on serving the phases after it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .target import TargetHost

DOCTOR = "/usr/sbin/airflow-prod"
SECRETS = "/etc/airflow/secrets.env"
CERT = "/opt/airflow/security/airflow_cert.pem"
MIGRATIONS = "/opt/airflow/venv/lib/python3.11/site-packages/airflow/migrations/versions"


def run_doctor(host: TargetHost, user: str = "root") -> tuple[int, dict, float]:
    """doctor --json as `user`: exit code, the report, seconds it took."""
    t0 = time.monotonic()
    proc = host.run([DOCTOR, "doctor", "--json"], user=None if user == "root" else user, check=False, timeout=120)
    seconds = time.monotonic() - t0
    assert proc.stdout.strip(), f"doctor printed nothing (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return proc.returncode, json.loads(proc.stdout), seconds


def findings(report: dict) -> list[dict]:
    return [f for check in report["checks"] for f in check["findings"]]


def fernet_finding(host: TargetHost) -> dict:
    """doctor's finding on what the database stores against this host's fernet keys."""
    _, report, _ = run_doctor(host)
    [finding] = [f for f in findings(report) if f["check"] == "fernet"]
    return finding


def summary(code: int, report: dict, seconds: float) -> str:
    """A phase fact: exit code, time, and every finding that is not ok."""
    bad = [f"{f['status']} {f['check']}: {f['what']}" for f in findings(report) if f["status"] != "ok"]
    return f"exit {code} in {seconds:.1f} s" + (f"; {' | '.join(bad)}" if bad else "")


def assert_nothing_broken(code: int, report: dict) -> None:
    """No failure (exit 0 or 1); warnings, such as recent restarts after a fault, are facts."""
    failed = [f for f in findings(report) if f["status"] == "fail"]
    assert code in (0, 1) and not failed, json.dumps(failed or report, indent=1)[:4000]


def check_after(d, label: str) -> None:
    """Run doctor as root; nothing may be broken; its run time and findings become a fact."""
    code, report, seconds = run_doctor(d.host)
    d.phases.facts[f"doctor {label}"] = summary(code, report, seconds)
    assert_nothing_broken(code, report)


def as_airflow(d) -> dict[str, str]:
    """As the airflow user: the checks that need the secrets file or the keytab say so; none fails."""
    code, report, seconds = run_doctor(d.host, "airflow")
    d.phases.facts["doctor as airflow"] = summary(code, report, seconds)
    statuses = {f["check"]: f["status"] for f in findings(report)}
    assert_nothing_broken(code, report)
    skipped = [f for f in findings(report) if f["status"] == "skip"]
    assert skipped and all("run as root" in f["what"] for f in skipped), skipped
    return statuses


def _named(d, cause: str, check: str, words: str) -> float:
    """doctor on the broken host: exit 2, the named check fails with `words`; seconds to name it."""
    code, report, seconds = run_doctor(d.host)
    hits = [f for f in findings(report) if f["check"] == check and f["status"] == "fail" and words in f["what"]]
    assert code == 2 and hits, f"{cause}: doctor did not name it: {summary(code, report, seconds)}"
    d.phases.facts[f"doctor names: {cause}"] = f"{seconds:.1f} s: {hits[0]['what']} -> {hits[0]['fix']}"
    return seconds


def wrong_bind_password(d) -> float:
    original = d.host.read(SECRETS)
    broken, n = re.subn(r"^AIRFLOW_LDAP_BIND_PASSWORD=.*$", "AIRFLOW_LDAP_BIND_PASSWORD='not-the-password'",
                        original, flags=re.M)
    assert n == 1
    d.host.put(SECRETS, broken, 0o600)
    try:
        return _named(d, "wrong LDAP bind password", "ldap", "invalid credentials")
    finally:
        d.host.put(SECRETS, original, 0o600)


def expired_certificate(d) -> float:
    """The same key and names, signed by the site's CA, expired two days ago."""
    original = d.host.read(CERT)
    leaf = x509.load_pem_x509_certificates(original.encode())[0]
    now = dt.datetime.now(dt.timezone.utc)
    expired = (x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(d.ca.cert.subject)
               .public_key(leaf.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=90)).not_valid_after(now - dt.timedelta(days=2))
               .add_extension(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
                              critical=False)
               .sign(d.ca.key, hashes.SHA256()))
    from support.tls import cert_pem
    d.host.put(CERT, cert_pem(expired) + d.ca.pem, 0o644)
    try:
        return _named(d, "expired certificate", "tls", "expired")
    finally:
        d.host.put(CERT, original, 0o644)


def stopped_broker(d, redis) -> float:
    redis.control.stop()
    try:
        return _named(d, "stopped broker", "broker", "unreachable")
    finally:
        redis.control.start()


def schema_behind(d, postgres) -> float:
    """alembic_version set to the revision before the venv's head, for as long as doctor runs."""
    head = postgres.psql("SELECT version_num FROM alembic_version")
    before = d.host.run(["sh", "-c", f"grep -l '^revision = \"{head}\"' {MIGRATIONS}/*.py | "
                         "xargs sed -n 's/^down_revision = \"\\(.*\\)\"$/\\1/p'"]).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{12}", before), (head, before)
    postgres.psql(f"UPDATE alembic_version SET version_num = '{before}'")
    try:
        return _named(d, "schema behind the venv", "schema", "schema behind this venv")
    finally:
        postgres.psql(f"UPDATE alembic_version SET version_num = '{head}'")


def broken_host(d, redis, postgres) -> dict[str, float]:
    """Each cause on its own, undone before the next; doctor's seconds to name each."""
    return {
        "wrong LDAP bind password": wrong_bind_password(d),
        "expired certificate": expired_certificate(d),
        "stopped broker": stopped_broker(d, redis),
        "schema behind the venv": schema_behind(d, postgres),
    }
