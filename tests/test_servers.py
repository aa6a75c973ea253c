"""The real servers the end-to-end test uses, proven to work for real.

Each fixture starts an actual daemon on a free loopback port; these tests
talk to it with the ordinary clients (psql, redis-cli, ldapsearch, kinit) the
way Airflow and an admin would.
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from builder.site import site_from_data
from builder.material.tls import check_tls, write_csr
from e2e.fixtures import TARGET_HOST, ca, kdc, ldap, postgres, redis, servers_dir  # noqa: F401
from e2e.proc import run
from e2e.site import tls_only_site_data


# --- PostgreSQL ---------------------------------------------------------------

def test_postgres_password_login_over_tcp(postgres):
    assert postgres.psql("SELECT current_user || '@' || current_database()") == f"{postgres.user}@{postgres.dbname}"
    assert postgres.psql("SHOW password_encryption") == "scram-sha-256"
    # The application user owns its database: migrations can create tables.
    postgres.psql("CREATE TABLE probe (id int); DROP TABLE probe")


def test_postgres_refuses_a_wrong_password(postgres):
    env = {**postgres.env, "PGPASSWORD": "wrong"}
    proc = run(["psql", "-X", "-Atc", "SELECT 1"], env=env, check=False)
    assert proc.returncode != 0
    assert "password authentication failed" in proc.stderr


def test_postgres_stores_scram_verifiers(postgres):
    stored = postgres.psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{postgres.user}'", superuser=True)
    assert stored.startswith("SCRAM-SHA-256$")



def test_postgres_outage_refuses_connections_then_keeps_its_data(postgres):
    """The fault phase's database outage (servers.Control): down means refused, and the same
    server (port, data, password) comes back."""
    postgres.psql("CREATE TABLE IF NOT EXISTS outage_probe (n int); INSERT INTO outage_probe VALUES (14)")
    with postgres.control.outage():
        down = run(["pg_isready", "-h", postgres.host, "-p", str(postgres.port)], check=False)
        assert down.returncode != 0, down.stdout
    assert postgres.psql("SELECT max(n) FROM outage_probe") == "14"

# --- Redis ---------------------------------------------------------------------

def test_redis_ping_and_no_persistence(redis):
    from e2e.servers import redis_cli

    # As our local broker is: no default user (NOAUTH), the site's user by its password.
    anonymous = ["redis-cli", "-h", redis.host, "-p", str(redis.port)]
    assert "NOAUTH" in run([*anonymous, "PING"], check=False).stdout
    site_user = [*anonymous, "--user", redis.user, "--pass", redis.password, "--no-auth-warning"]
    assert run([*site_user, "PING"]).stdout.strip() == "PONG"
    cli = redis_cli(redis.host, redis.port, redis.admin_password, None)
    assert run([*cli, "PING"]).stdout.strip() == "PONG"
    run([*cli, "SET", "probe", "1"])
    assert run([*cli, "GET", "probe"]).stdout.strip() == "1"
    assert run([*cli, "CONFIG", "GET", "save"]).stdout.split("\n")[1] == ""
    assert run([*cli, "CONFIG", "GET", "appendonly"]).stdout.split("\n")[1] == "no"



def test_redis_outage_keeps_queued_messages(redis):
    """Stopped as a persistent Redis stops (SHUTDOWN SAVE): a queue survives the outage."""
    from e2e.servers import redis_cli

    cli = redis_cli(redis.host, redis.port, redis.admin_password, None)
    run([*cli, "DEL", "outage_queue"])
    run([*cli, "RPUSH", "outage_queue", "a", "b"])
    with redis.control.outage():
        assert run([*cli, "PING"], check=False).stdout.strip() != "PONG"
    assert run([*cli, "LRANGE", "outage_queue", "0", "-1"]).stdout.split() == ["a", "b"]

# --- OpenLDAP ------------------------------------------------------------------

def _whoami(ldap, dn: str, password: str, *extra: str, url: str | None = None):
    return run(["ldapwhoami", "-x", *extra, "-H", url or ldap.url, "-D", dn, "-w", password],
               env=ldap.client_env, check=False)


@pytest.mark.parametrize("who", ["bind", "admin", "user", "nogroup"])
def test_ldap_every_account_binds(ldap, who):
    person = getattr(ldap, who)
    proc = _whoami(ldap, person.dn, person.password)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"dn:{person.dn}"


def test_ldap_wrong_password_is_refused(ldap):
    proc = _whoami(ldap, ldap.admin.dn, "wrong")
    assert proc.returncode == 49, proc.stdout + proc.stderr  # invalidCredentials


@pytest.mark.parametrize("who", ["admin", "user", "nogroup"])
def test_ldap_memberof_is_populated(ldap, who):
    """FAB reads only memberOf from the user entry: it must be set by the overlay."""
    person = getattr(ldap, who)
    out = ldap.search(ldap.users_base, f"(sAMAccountName={person.account})", "memberOf")
    assert f"dn: {person.dn}" in out
    found = sorted(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("memberOf: "))
    assert found == sorted(person.groups)


def test_ldap_groups_are_distinct(ldap):
    assert ldap.admin.groups == (ldap.admin_group,)
    assert ldap.user.groups == (ldap.users_group,)
    assert ldap.nogroup.groups == ()


def test_ldap_search_filter_keeps_out_the_no_group_user(ldap):
    """The e2e site restricts logins to members of the mapped groups with this filter."""
    filt = f"(&(sAMAccountName=*)(|(memberOf={ldap.admin_group})(memberOf={ldap.users_group})))"
    out = ldap.search(ldap.users_base, filt, "sAMAccountName")
    accounts = sorted(line.split(": ")[1] for line in out.splitlines() if line.startswith("sAMAccountName: "))
    assert accounts == sorted([ldap.admin.account, ldap.user.account])


def test_ldap_anonymous_cannot_read(ldap):
    proc = run(["ldapsearch", "-LLL", "-x", "-H", ldap.url, "-b", ldap.users_base, "(objectClass=*)"],
               env=ldap.client_env, check=False)
    # The ACL hides the tree from anonymous binds: noSuchObject, not a failure to connect.
    assert (proc.returncode, proc.stderr.strip(), proc.stdout) == (32, "No such object (32)", ""), proc
    # ... while the service account reads the same base.
    assert f"dn: {ldap.user.dn}" in ldap.search(ldap.users_base, "(objectClass=*)", "dn")


def test_ldap_starttls_and_ldaps_verify_against_the_ca(ldap):
    assert _whoami(ldap, ldap.bind.dn, ldap.bind.password, "-ZZ").returncode == 0
    proc = _whoami(ldap, ldap.bind.dn, ldap.bind.password, url=ldap.ldaps_url)
    assert proc.returncode == 0, proc.stderr


def test_ldap_tls_fails_against_another_ca(ldap, tmp_path):
    from e2e.ca import PrivateCA

    other = PrivateCA(tmp_path / "other-ca", name="some other CA")
    env = {**ldap.client_env, "LDAPTLS_CACERT": str(other.cert_path)}
    argv = ["ldapwhoami", "-x", "-d", "1", "-H", ldap.ldaps_url, "-D", ldap.bind.dn, "-w", ldap.bind.password]
    proc = run(argv, env=env, check=False)
    # libldap reports any TLS failure as "Can't contact LDAP server (-1)", exit 255; its
    # debug output says why: the certificate did not verify (not a dead server).
    assert proc.returncode == 255, proc.stdout + proc.stderr
    assert "ldap_sasl_bind(SIMPLE): Can't contact LDAP server (-1)" in proc.stderr
    assert "TLS: peer cert untrusted or revoked" in proc.stderr
    # StartTLS with the wrong CA: refused at the StartTLS step.
    starttls = run(["ldapwhoami", "-x", "-ZZ", "-H", ldap.url, "-D", ldap.bind.dn, "-w", ldap.bind.password],
                   env=env, check=False)
    assert starttls.returncode == 1 and "ldap_start_tls: Connect error (-11)" in starttls.stderr, starttls
    # The same command with the right CA works: the refusal was the CA's.
    assert run(argv, env=ldap.client_env, check=False).returncode == 0


# --- MIT Kerberos ----------------------------------------------------------------

def test_kdc_keytab_gives_a_renewable_ticket(kdc, tmp_path):
    ccache = f"FILE:{tmp_path}/krb5cc"
    env = {**kdc.client_env, "KRB5CCNAME": ccache}
    run(["kinit", "-k", "-t", kdc.keytab, "-r", "7d", kdc.principal], env=env)
    listing = run(["klist", "-f"], env=env).stdout
    assert f"Default principal: {kdc.principal}" in listing
    assert "renew until" in listing
    flags = [line.split("Flags: ")[1] for line in listing.splitlines() if "Flags: " in line]
    assert flags and "R" in flags[0], listing
    # What `airflow kerberos` does on each reinit: renew the ticket.
    run(["kinit", "-R"], env=env)
    assert f"Default principal: {kdc.principal}" in run(["klist"], env=env).stdout


def test_kdc_keytab_holds_the_airflow_principal(kdc):
    listing = run(["klist", "-k", "-t", kdc.keytab], env=kdc.client_env).stdout
    assert kdc.principal == f"airflow/{TARGET_HOST}@{kdc.realm}"
    assert kdc.principal in listing


# --- Private CA and the guide's CSR flow (case A) ---------------------------------

@pytest.fixture(scope="module")
def api_tls(ca, tmp_path_factory):
    site = site_from_data(tls_only_site_data())
    out = tmp_path_factory.mktemp("api-tls")
    files = write_csr(site, out)
    cert = ca.sign_csr(files.csr.read_bytes())
    _, chain = ca.write_chain(cert, out, "airflow_cert")
    return site, files.key, chain


def test_csr_signed_by_the_ca_passes_bundle_tls_check(api_tls, ca):
    site, key, chain = api_tls
    report = check_tls(site, chain, key, ca.cert_path)
    assert report.ok, report.problems
    assert report.chain_length == 2
    assert f"DNS:{TARGET_HOST}" in report.sans


def test_tls_handshake_verifies_against_the_ca(api_tls, ca):
    _, key, chain = api_tls
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(chain, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"hello")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(ca.cert_path))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with client_ctx.wrap_socket(raw, server_hostname=TARGET_HOST) as tls:
            assert tls.recv(5) == b"hello"
            assert tls.getpeercert()["subject"][0][0][1] == TARGET_HOST
    thread.join(5)
    listener.close()


def test_tls_handshake_with_a_foreign_name_fails(api_tls, ca):
    """The CA alone is not enough: the name must be in the certificate's SANs."""
    _, key, chain = api_tls
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(chain, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            server_ctx.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(ca.cert_path))
    with socket.create_connection(listener.getsockname(), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            client_ctx.wrap_socket(raw, server_hostname="not-in-the-sans.e2e.test")
    thread.join(5)
    listener.close()


def test_servers_run_from_one_session_dir(servers_dir: Path, postgres, redis, ldap, kdc):
    for server in (postgres, redis, ldap, kdc):
        assert Path(f"/proc/{server.pid}").exists()  # start times are reported by the e2e, not asserted
    assert postgres.data_dir.is_relative_to(servers_dir)
