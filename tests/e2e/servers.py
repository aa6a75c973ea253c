"""Real servers for the tests, each in its own directory on free loopback ports.

Every server is a context manager yielding a small frozen description (host,
port, credentials, paths) and stopping the process it started, by PID, on
exit. They are the recipes of shared/reference/test-fixtures.md turned into
code: PostgreSQL, Redis, OpenLDAP slapd (memberOf, AD-like sAMAccountName,
StartTLS and LDAPS from the private CA) and an MIT KDC with renewable tickets.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from .ca import PrivateCA
from .proc import CommandFailed, Daemon, free_port, run, stop_pid, wait_until

LOOPBACK = "127.0.0.1"


def _password() -> str:
    return secrets.token_urlsafe(18)


@dataclass
class Control:
    """Stop and start one server of the session again (fault tests: a database or broker
    outage), same command, port and data; the session's teardown stops whichever process
    runs at the end, by its PID."""

    daemon: Daemon
    ready: Callable[[], bool]
    stop_signal: int = signal.SIGTERM
    # Run instead of a signal to stop it (e.g. Redis's SHUTDOWN SAVE); the process must then exit.
    stop_command: list[str] | None = None

    def stop(self, timeout: float = 30) -> None:
        proc = self.daemon.proc
        if proc is None or proc.poll() is not None:
            return
        if self.stop_command:
            run(self.stop_command, check=False, timeout=timeout)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:  # fall back to the signal, then SIGKILL
                pass
        stop_pid(proc.pid, timeout, self.stop_signal)
        proc.wait(timeout=10)

    def start(self, timeout: float = 30) -> float:
        """Start the same command again; seconds until it is ready."""
        self.daemon = replace(self.daemon, proc=None).start()
        return wait_until(self.ready, timeout, f"{self.daemon.name} ready again", alive=self.daemon.exited)

    @contextmanager
    def outage(self) -> Iterator[None]:
        """The server is down inside the block and up again (ready) after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()


# --- PostgreSQL --------------------------------------------------------------

@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    dbname: str
    user: str
    password: str
    superuser: str
    socket_dir: Path
    data_dir: Path
    log: Path
    started_in: float
    control: Control = field(compare=False, repr=False)

    @property
    def pid(self) -> int:
        """The running postmaster's (a new one after an outage)."""
        return self.control.daemon.pid

    @property
    def env(self) -> dict[str, str]:
        """libpq environment for the application user over TCP (password auth)."""
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGDATABASE": self.dbname,
                "PGUSER": self.user, "PGPASSWORD": self.password, "PGSSLMODE": "disable"}

    def psql(self, sql: str, *, superuser: bool = False) -> str:
        """Run SQL; the application user goes over TCP with its password, the superuser over the socket."""
        if superuser:
            env = {"PGHOST": str(self.socket_dir), "PGPORT": str(self.port), "PGUSER": self.superuser,
                   "PGDATABASE": "postgres"}
        else:
            env = self.env
        return run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-Atc", sql], env=env).stdout.strip()


def _pg_bindir() -> Path:
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise CommandFailed("PostgreSQL is not installed (Debian: apt install postgresql)")
    return found[-1].parent


def _service_user(name: str) -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as `name`."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise CommandFailed(f"running as root needs a {name!r} user for PostgreSQL") from None
    return name


@contextmanager
def postgres_server(base: Path, dbname: str = "airflow", user: str = "airflow") -> Iterator[Postgres]:
    bindir = _pg_bindir()
    run_as = _service_user("postgres")
    base.mkdir(parents=True, exist_ok=True)
    data, sock = base / "data", base / "sock"
    sock.mkdir(exist_ok=True)
    if run_as:
        pw = pwd.getpwnam(run_as)
        for path in (base, sock):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        base.chmod(0o755)
    port = free_port()
    password = _password()
    run([bindir / "initdb", "-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
         "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"], user=run_as)
    t0 = time.monotonic()
    daemon = Daemon("postgres", [
        str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sock),
        "-c", f"listen_addresses={LOOPBACK}", "-c", "fsync=off", "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off", "-c", "password_encryption=scram-sha-256",
        "-c", "max_connections=200",
    ], log=base / "postgres.log", user=run_as).start()
    def ready() -> bool:
        return run([bindir / "pg_isready", "-q", "-h", LOOPBACK, "-p", str(port)], check=False).returncode == 0

    # SIGINT: fast shutdown (SIGTERM's smart shutdown waits for every client to leave).
    control = Control(daemon, ready, stop_signal=signal.SIGINT)
    try:
        wait_until(ready, 30, "PostgreSQL accepting connections", alive=daemon.exited)
        server = Postgres(LOOPBACK, port, dbname, user, password, "postgres", sock, data,
                          daemon.log, time.monotonic() - t0, control)
        server.psql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'", superuser=True)
        server.psql(f"CREATE DATABASE {dbname} OWNER {user}", superuser=True)
        yield server
    finally:
        control.stop()


# --- Redis ---------------------------------------------------------------------

@dataclass(frozen=True)
class Redis:
    host: str
    port: int
    log: Path
    started_in: float
    control: Control = field(compare=False, repr=False)
    # The site's ACL user and its password (the admin puts it into the secrets file as
    # AIRFLOW_BROKER_PASSWORD); the tests' own admin user only stops and pings the server.
    user: str = "airflow"
    password: str = field(default="", repr=False)
    admin_password: str = field(default="", repr=False)
    ca_file: Path | None = None  # set when the server speaks TLS only (the cluster's remote broker)

    @property
    def pid(self) -> int:
        """The running redis-server's (a new one after an outage)."""
        return self.control.daemon.pid

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


def broker_password() -> str:
    """A broker password with the characters a URL must quote (role-env does)."""
    return _password() + "@:/%#?$"


def redis_acl(user: str, password: str, admin_password: str) -> str:
    """As our local broker's ACL file (role-env --redis-acl): no default user, the site's user
    by the password's SHA-256 and every command but the dangerous ones; plus the tests' admin."""
    import hashlib
    digest = hashlib.sha256(password.encode()).hexdigest()
    return (f"user default off\nuser {user} on #{digest} ~* &* +@all -@dangerous\n"
            f"user e2e-admin on >{admin_password} ~* &* +@all\n")


def redis_cli(host: str, port: int, admin_password: str, ca_file: Path | None, *args: str) -> list[str]:
    tls = ["--tls", "--cacert", str(ca_file)] if ca_file else []
    return ["redis-cli", "-h", host, "-p", str(port), *tls, "--user", "e2e-admin", "--pass", admin_password,
            "--no-auth-warning", *args]


@contextmanager
def redis_server(base: Path) -> Iterator[Redis]:
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = base / "redis.conf"
    password, admin = broker_password(), _password()
    (base / "users.acl").write_text(redis_acl("airflow", password, admin))
    conf.write_text(
        f"bind {LOOPBACK}\nport {port}\nprotected-mode yes\ndaemonize no\n"
        f"dir {base}\nsave \"\"\nappendonly no\nlogfile \"\"\naclfile {base / 'users.acl'}\n"
    )
    t0 = time.monotonic()
    daemon = Daemon("redis-server", ["redis-server", str(conf)], log=base / "redis.log").start()
    cli = redis_cli(LOOPBACK, port, admin, None)
    # An outage stops it as a production Redis with RDB persistence stops (RHEL's redis.conf
    # has save points): the queue is written to dump.rdb in `dir` and loaded at the next start.
    control = Control(daemon, lambda: _redis_ping(cli), stop_command=[*cli, "SHUTDOWN", "SAVE"])
    try:
        wait_until(lambda: _redis_ping(cli), 15, "redis PING", alive=daemon.exited)
        yield Redis(LOOPBACK, port, daemon.log, time.monotonic() - t0, control, password=password,
                    admin_password=admin)
    finally:
        control.daemon.stop()


def _redis_ping(cli: list[str]) -> bool:
    proc = run([*cli, "PING"], check=False)
    return proc.stdout.strip() == "PONG"


# --- OpenLDAP ------------------------------------------------------------------

# AD's sAMAccountName with an equality rule (Debian's msuser.schema has none and
# clashes with the memberof overlay's memberOf).
AD_COMPAT_SCHEMA = """\
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName' EQUALITY caseIgnoreMatch
    SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.55555.1.1 NAME 'adCompatUser' AUXILIARY MAY ( sAMAccountName ) )
"""


@dataclass(frozen=True)
class LdapUser:
    account: str      # sAMAccountName: what people type on the login form
    dn: str
    password: str
    groups: tuple[str, ...]  # group DNs, as memberOf must show them


@dataclass(frozen=True)
class Ldap:
    host: str
    port: int            # ldap:// (StartTLS available)
    ldaps_port: int
    suffix: str
    users_base: str      # search base for people (AD's CN=Users container)
    admin_group: str
    users_group: str
    bind: LdapUser       # the service account Airflow binds as
    admin: LdapUser      # member of admin_group
    user: LdapUser       # member of users_group
    nogroup: LdapUser    # member of nothing
    rootdn: str
    rootpw: str
    ca_file: Path
    conf: Path
    log: Path
    pid: int
    started_in: float

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.host}:{self.ldaps_port}"

    @property
    def client_env(self) -> dict[str, str]:
        """OpenLDAP client tools: verify the server against the test CA, ignore host config."""
        return {"LDAPCONF": "/dev/null", "LDAPRC": "/dev/null", "LDAPTLS_CACERT": str(self.ca_file),
                "LDAPTLS_REQCERT": "demand"}

    def search(self, base: str, filt: str, *attrs: str, as_user: LdapUser | None = None,
               url: str | None = None, starttls: bool = False) -> str:
        who = as_user or self.bind
        argv = ["ldapsearch", "-LLL", "-x", "-H", url or self.url, "-D", who.dn, "-w", who.password,
                "-b", base, filt, *attrs]
        if starttls:
            argv.insert(1, "-ZZ")
        return run(argv, env=self.client_env).stdout


def _ldif(entries: list[dict[str, list[str] | str]]) -> str:
    out = []
    for entry in entries:
        lines = [f"dn: {entry['dn']}"]
        for attr, values in entry.items():
            if attr == "dn":
                continue
            for v in [values] if isinstance(values, str) else values:
                lines.append(f"{attr}: {v}")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _slapd_binary() -> str:
    found = shutil.which("slapd") or ("/usr/sbin/slapd" if Path("/usr/sbin/slapd").exists() else None)
    if not found:
        raise CommandFailed("slapd is not installed (Debian: apt install slapd ldap-utils)")
    return found


def _ldap_schema_dir() -> Path:
    for d in ("/etc/ldap/schema", "/etc/openldap/schema"):
        if Path(d, "core.schema").exists():
            return Path(d)
    raise CommandFailed("OpenLDAP schema files not found in /etc/ldap/schema or /etc/openldap/schema")


def _ldap_module_dir() -> Path:
    for d in ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap"):
        if list(Path(d).glob("memberof*")):
            return Path(d)
    raise CommandFailed("slapd modules (memberof, refint) not found")


@contextmanager
def ldap_server(base: Path, ca: PrivateCA, suffix: str = "dc=bigdata,dc=test") -> Iterator[Ldap]:
    base.mkdir(parents=True, exist_ok=True)
    (base / "data").mkdir(exist_ok=True)
    port, ldaps_port = free_port(), free_port()
    while ldaps_port == port:
        ldaps_port = free_port()
    tls = ca.issue_server(base / "tls", "slapd", dns=["localhost"], ips=[LOOPBACK])
    (base / "ad-compat.schema").write_text(AD_COMPAT_SCHEMA)
    rootdn, rootpw = f"cn=admin,{suffix}", _password()
    rootpw_hash = run(["slappasswd", "-h", "{SSHA}", "-s", rootpw]).stdout.strip()
    schema = _ldap_schema_dir()
    conf = base / "slapd.conf"
    conf.write_text(f"""\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
include {base}/ad-compat.schema
pidfile {base}/slapd.pid
modulepath {_ldap_module_dir()}
moduleload back_mdb
moduleload memberof
moduleload refint
TLSCACertificateFile {ca.cert_path}
TLSCertificateFile {tls.cert}
TLSCertificateKeyFile {tls.key}
database mdb
maxsize 104857600
suffix "{suffix}"
rootdn "{rootdn}"
rootpw {rootpw_hash}
directory {base}/data
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
overlay refint
refint_attributes member
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
""")
    run(["slaptest", "-Q", "-u", "-f", conf])
    t0 = time.monotonic()
    daemon = Daemon("slapd", [
        _slapd_binary(), "-d", "0", "-f", str(conf),
        "-h", f"ldap://{LOOPBACK}:{port}/ ldaps://{LOOPBACK}:{ldaps_port}/",
    ], log=base / "slapd.log").start()
    try:
        daemon.wait_port(LOOPBACK, port)
        daemon.wait_port(LOOPBACK, ldaps_port)
        started_in = time.monotonic() - t0
        users_base = f"cn=Users,{suffix}"

        def user(account: str, groups: tuple[str, ...] = ()) -> LdapUser:
            return LdapUser(account, f"cn={account},{users_base}", _password(), groups)

        admin_group = f"cn=Airflow Admins,{users_base}"
        users_group = f"cn=Airflow Users,{users_base}"
        people = [  # (account, givenName, sn)
            (user("svc-airflow"), "Airflow", "Service"),
            (user("af-admin", (admin_group,)), "Ada", "Admin"),
            (user("af-user", (users_group,)), "Ulla", "User"),
            (user("af-nogroup"), "Nora", "Nogroup"),
        ]
        entries: list[dict] = [
            {"dn": suffix, "objectClass": ["top", "dcObject", "organization"],
             "dc": suffix.split(",")[0].split("=")[1], "o": "airflow-prod e2e"},
            {"dn": users_base, "objectClass": ["top", "organizationalRole"], "cn": "Users",
             "description": "people and groups, like AD's CN=Users container"},
        ]
        for person, given, sn in people:
            entries.append({
                "dn": person.dn, "objectClass": ["top", "inetOrgPerson", "adCompatUser"],
                "cn": person.account, "sAMAccountName": person.account, "givenName": given, "sn": sn,
                "mail": f"{person.account}@bigdata.test", "userPassword": person.password,
            })
        for group, members in ((admin_group, [people[1][0].dn]), (users_group, [people[2][0].dn])):
            entries.append({"dn": group, "objectClass": ["top", "groupOfNames"],
                            "cn": group.split(",")[0][3:], "member": members})
        ldif = base / "entries.ldif"
        ldif.write_text(_ldif(entries))
        # Online, through the overlay: slapadd would leave memberOf empty.
        run(["ldapadd", "-x", "-H", f"ldap://{LOOPBACK}:{port}", "-D", rootdn, "-w", rootpw, "-f", ldif],
            env={"LDAPCONF": "/dev/null", "LDAPRC": "/dev/null"})
        yield Ldap(
            host=LOOPBACK, port=port, ldaps_port=ldaps_port, suffix=suffix, users_base=users_base,
            admin_group=admin_group, users_group=users_group,
            bind=people[0][0], admin=people[1][0], user=people[2][0], nogroup=people[3][0],
            rootdn=rootdn, rootpw=rootpw, ca_file=ca.cert_path, conf=conf, log=daemon.log,
            pid=daemon.pid, started_in=started_in,
        )
    finally:
        daemon.stop()


# --- MIT Kerberos KDC ----------------------------------------------------------------

@dataclass(frozen=True)
class Kdc:
    realm: str
    host: str
    port: int
    principal: str
    keytab: Path
    krb5_conf: Path
    kdc_conf: Path
    log: Path
    pid: int
    started_in: float
    max_renewable: str = "7d"

    @property
    def client_env(self) -> dict[str, str]:
        return {"KRB5_CONFIG": str(self.krb5_conf)}

    def krb5_conf_text(self) -> str:
        """The client configuration, to copy onto the target host as /etc/krb5.conf."""
        return self.krb5_conf.read_text()


def _krb5_conf(realm: str, port: int, max_renewable: str) -> str:
    return f"""\
[libdefaults]
    default_realm = {realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 1
    ticket_lifetime = 1h
    renew_lifetime = {max_renewable}
    forwardable = true

[realms]
    {realm} = {{
        kdc = {LOOPBACK}:{port}
    }}
"""


@contextmanager
def kdc_server(base: Path, principal_name: str, realm: str = "BIGDATA.TEST",
               max_renewable: str = "7d") -> Iterator[Kdc]:
    """A KDC whose realm allows renewable tickets, and a keytab for `principal_name`."""
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    principal = principal_name if "@" in principal_name else f"{principal_name}@{realm}"
    krb5_conf, kdc_conf = base / "krb5.conf", base / "kdc.conf"
    krb5_conf.write_text(_krb5_conf(realm, port, max_renewable))
    (base / "kadm5.acl").write_text("")
    # max_renewable_life must be in kdc.conf BEFORE `kdb5_util create`: it sets
    # krbtgt's renewable life (MIT's default is 0: tickets are not renewable).
    kdc_conf.write_text(f"""\
[kdcdefaults]
    kdc_listen = {LOOPBACK}:{port}
    kdc_tcp_listen = {LOOPBACK}:{port}

[realms]
    {realm} = {{
        database_name = {base}/principal
        key_stash_file = {base}/stash
        acl_file = {base}/kadm5.acl
        max_life = 1h
        max_renewable_life = {max_renewable}
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }}

[logging]
    kdc = FILE:{base}/kdc.log
""")
    env = {"KRB5_CONFIG": str(krb5_conf), "KRB5_KDC_PROFILE": str(kdc_conf)}
    run(["kdb5_util", "create", "-s", "-r", realm, "-P", _password()], env=env)
    keytab = base / "airflow.keytab"
    run(["kadmin.local", "-r", realm, "-q", f"addprinc -randkey -maxrenewlife {max_renewable} {principal}"], env=env)
    run(["kadmin.local", "-r", realm, "-q", f"ktadd -norandkey -k {keytab} {principal}"], env=env)
    t0 = time.monotonic()
    daemon = Daemon("krb5kdc", ["krb5kdc", "-n", "-r", realm, "-P", str(base / "krb5kdc.pid")],
                    log=base / "krb5kdc.out", env=env).start()
    try:
        daemon.wait_port(LOOPBACK, port)
        yield Kdc(realm, LOOPBACK, port, principal, keytab, krb5_conf, kdc_conf, base / "kdc.log",
                  daemon.pid, time.monotonic() - t0, max_renewable)
    finally:
        daemon.stop()
