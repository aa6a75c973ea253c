"""Rotation on the running host (issue 22 item 3): each generated key with `bundle secrets
rotate` and the steps it prints, and the TLS certificate; after each, a connection stored
before still decrypts, an LDAP login and a DAG run work, and the old value no longer does.

Downtime of each: from the restart until the api-server reports every component healthy.
The e2e's build ships no fingerprints (it passes no secrets file to `bundle build`), so the
steps here are "install the file, restart"; with fingerprints a `dnf upgrade` of the config
package takes the restart's place (docs/operations.md, Rotation).
"""

from __future__ import annotations

import socket
import ssl
import sys
import time
from typing import Any, Callable

from .doctor import fernet_finding

SECRETS = "/etc/airflow/secrets.env"
SECURITY = "/opt/airflow/security"
CONN = "e2e_rotation"
PASSWORD = "stored-before-every-rotation"


def _served_certificate(d: Any) -> bytes:
    ctx = ssl.create_default_context(cafile=str(d.api.cafile))
    with socket.create_connection((d.api.address, d.api.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=d.api.hostname) as tls:
            return tls.getpeercert(binary_form=True)


def _install_and_restart(d: Any, healthy: Callable[[], None], unit: str = "airflow.target") -> float:
    d.host.copy_in(d.ws.secrets, SECRETS, 0o600, "root", "root")
    t0 = time.monotonic()
    d.host.systemctl("restart", unit)
    restarted = time.monotonic() - t0
    healthy()
    total = time.monotonic() - t0
    # Which part took the time, for the log: systemd's restart job or the components' first heartbeats.
    print(f"[rotation] {unit} restarted in {restarted:.1f} s, healthy {total - restarted:.1f} s later",
          file=sys.stderr)
    return round(total, 1)


def each(d: Any, bundle: Callable[..., str], healthy: Callable[[], None], connection_password: Callable[[str], str],
         run_dag: Callable[[str], dict], new_certificate: Callable[[], None]) -> dict[str, float]:
    """Rotate the fernet key, [api] secret_key, jwt_secret and the certificate in turn."""
    ws, host = d.ws, d.host
    token = d.api.login(d.ldap.admin.account, d.ldap.admin.password)
    conn = {"connection_id": CONN, "conn_type": "postgres", "host": "db.example", "login": "u", "password": PASSWORD}
    resp = d.api.request("POST", "/api/v2/connections", conn, token=token)
    assert resp.status in (200, 201), resp.text

    def rotate(name: str, *extra: str) -> str:
        return bundle("secrets", "rotate", name, *extra, "--site", str(ws.site_path), "--secrets", str(ws.secrets))

    down: dict[str, float] = {}
    said = rotate("fernet-key")
    assert "airflow rotate-fernet-key" in said, said
    down["fernet: new,old"] = _install_and_restart(d, healthy)
    # doctor sees the rotation under way: what is stored decrypts, with the retired key only.
    assert (found := fernet_finding(host))["status"] == "warn", found
    host.run(["airflow", "rotate-fernet-key"], timeout=300)  # root's wrapper: as airflow, with the file's keys
    assert (found := fernet_finding(host))["status"] == "ok", found
    rotate("fernet-key", "--finish")
    down["fernet: new alone"] = _install_and_restart(d, healthy)
    # Only the new key is left: what decrypts now was re-encrypted by rotate-fernet-key.
    assert connection_password(CONN) == PASSWORD

    rotate("secret-key")
    down["secret_key"] = _install_and_restart(d, healthy)

    said = rotate("jwt-secret")
    assert "log in again" in said, said
    down["jwt_secret"] = _install_and_restart(d, healthy)
    assert d.api.get("/api/v2/dags", token=token).status in (401, 403), "a token of the old jwt_secret works"
    token = d.api.login(d.ldap.admin.account, d.ldap.admin.password)
    assert run_dag(token)["state"] == "success"

    # The certificate: a new key and CSR from bundle, signed by the CA, installed, api-server restarted.
    before = _served_certificate(d)
    new_certificate()
    host.copy_in(ws.tls / "airflow_key.pem", f"{SECURITY}/airflow_key.pem", 0o600, "root", "root")
    host.copy_in(ws.tls / "airflow_cert.pem", f"{SECURITY}/airflow_cert.pem", 0o644, "root", "root")
    down["tls certificate (api-server only)"] = _install_and_restart(d, healthy, "airflow-api-server.service")
    assert _served_certificate(d) != before, "the api-server still serves the old certificate"
    assert connection_password(CONN) == PASSWORD
    token = d.api.login(d.ldap.admin.account, d.ldap.admin.password)
    assert run_dag(token)["state"] == "success"
    return down
