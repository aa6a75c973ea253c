"""The rendered example does what the guide intends, corrected for Airflow 3.1.4."""

from __future__ import annotations

import ast
import configparser
import re

import pytest

from builder.render import render_site


@pytest.fixture(scope="module")
def files(example_site) -> dict[str, str]:
    return {f.dest: f.text for f in render_site(example_site).files}


@pytest.fixture(scope="module")
def cfg(files) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(files["/etc/airflow/airflow.cfg"])
    return parser


# section, option, value: the guide's airflow.cfg, with its intent kept and
# its mistakes fixed (each fix named).
GUIDE_INTENT = [
    ("core", "dags_folder", "/opt/airflow/dags"),
    ("core", "default_timezone", "Africa/Cairo"),
    ("core", "executor", "CeleryExecutor"),
    ("core", "auth_manager", "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"),
    ("core", "parallelism", "32"),
    ("core", "max_active_tasks_per_dag", "16"),
    ("core", "max_active_runs_per_dag", "16"),
    ("core", "load_examples", "False"),
    ("core", "plugins_folder", "/opt/airflow/plugins"),
    ("core", "security", "kerberos"),
    # guide: Enabled; fixed: connection editors cannot make the api-server connect anywhere
    ("core", "test_connection", "Disabled"),
    # guide: https://gateway1...; fixed: the api host the certificate names
    ("core", "execution_api_server_url", "https://airflow.my.bigdata.local:8080/execution/"),
    # guide: password inline; fixed: PGPASSWORD from the secrets file
    ("database", "sql_alchemy_conn", "postgresql+psycopg2://airflow@utility1.my.bigdata.local:5432/airflow"),
    ("api", "instance_name", "Production Airflow"),
    # guide: True; fixed: the Op role does not see sensitive values
    ("api", "expose_config", "False"),
    ("api", "base_url", "https://airflow.my.bigdata.local:8080"),
    # guide: 4; fixed: extra uvicorn workers die on 3.1.4
    ("api", "workers", "1"),
    ("api", "ssl_cert", "/opt/airflow/security/airflow_cert.pem"),
    ("api", "ssl_key", "/opt/airflow/security/airflow_key.pem"),
    # guide: missing; needed for /auth/token under pyjwt >= 2.11
    ("api_auth", "jwt_issuer", "https://airflow.my.bigdata.local:8080"),
    # guide: two different paths; fixed: one, outside every private /tmp
    ("kerberos", "ccache", "/run/airflow/krb5cc_airflow"),
    ("kerberos", "principal", "airflow@BIGDATA.LOCAL"),
    ("kerberos", "keytab", "/opt/airflow/security/airflow.keytab"),
    # addressless tickets: `kinit -a` needs netlink, which the unit does not allow
    ("kerberos", "include_ip", "False"),
    # guide: no user, no password; the result backend in PostgreSQL with the site's DB user.
    # Fixed: an ACL user (role-env adds its password), the result backend on the same Redis.
    ("celery", "broker_url", "redis://airflow@localhost:6379/0"),
    ("celery", "result_backend", "redis://airflow@localhost:6379/0"),
    ("fab", "config_file", "/etc/airflow/webserver_config.py"),
    ("logging", "base_log_folder", "/opt/airflow/logs"),
]


@pytest.mark.parametrize("section,option,value", GUIDE_INTENT, ids=[f"{s}.{o}" for s, o, _ in GUIDE_INTENT])
def test_airflow_cfg_value(cfg, section, option, value):
    assert cfg.get(section, option) == value


def test_no_secret_in_airflow_cfg(cfg):
    for section, option in [("core", "fernet_key"), ("api", "secret_key"), ("api_auth", "jwt_secret")]:
        assert not cfg.has_option(section, option), f"[{section}] {option} must come from the secrets file"
    assert ":airflow@" not in cfg.get("database", "sql_alchemy_conn")


def _units(files):
    return {path.rsplit("/", 1)[-1]: text for path, text in files.items()
            if path.startswith("/usr/lib/systemd/system/airflow-") and path.endswith(".service")}


def test_ccache_is_one_path_everywhere(files, cfg):
    """The renewer's ccache for every component; the worker's tasks read a copy refreshed
    after each renewal (kinit writes it 0600; the worker runs as another user)."""
    ccache = cfg.get("kerberos", "ccache")
    copy = "/run/airflow-worker/" + ccache.rsplit("/", 1)[-1]
    for name, text in _units(files).items():
        if name == "airflow-celery-worker.service":
            assert f"Environment=KRB5CCNAME=FILE:{copy}\n" in text
            assert f"Environment=AIRFLOW__KERBEROS__CCACHE={copy}\n" in text
            assert "Wants=network-online.target redis.service airflow-worker-ccache.path" in text
        elif name == "airflow-worker-ccache.service":
            assert f"ExecStart=/usr/bin/install -m 0640 -T {ccache} {copy}.new\n" in text
            assert f"ExecStart=/usr/bin/mv -fT {copy}.new {copy}\n" in text
            assert "User=airflow\n" in text  # reads only what the renewer's user may read
        elif name == "airflow-log-groom.service":
            assert "KRB5CCNAME" not in text  # files only, no Airflow code
        else:
            assert f"Environment=KRB5CCNAME=FILE:{ccache}\n" in text, name
    path_unit = files["/usr/lib/systemd/system/airflow-worker-ccache.path"]
    assert f"PathChanged={ccache}\n" in path_unit
    assert f'CCACHE = "FILE:{ccache}"' in files["/usr/bin/airflow"]
    tmpfiles = files["/usr/lib/tmpfiles.d/airflow-prod.conf"]
    assert "d /run/airflow 0750 airflow airflow -" in tmpfiles
    assert "d /run/airflow-worker 0750 airflow airflow -" in tmpfiles
    assert "KRB5CCNAME" not in files["/etc/sysconfig/airflow"]


def test_tls_key_and_keytab_reach_one_unit_each(files, cfg):
    """Root's files, handed as systemd credentials to the api-server and the renewer alone."""
    key, keytab = cfg.get("api", "ssl_key"), cfg.get("kerberos", "keytab")
    for name, text in _units(files).items():
        has_key = f"LoadCredential=tls.key:{key}\n" in text
        has_keytab = f"LoadCredential=keytab:{keytab}\n" in text
        assert has_key == (name == "airflow-api-server.service"), name
        assert has_keytab == (name == "airflow-kerberos.service"), name
        assert ("Environment=AIRFLOW__API__SSL_KEY=%d/tls.key\n" in text) == has_key
        assert ("Environment=KRB5_KTNAME=FILE:%d/keytab\n" in text) == has_keytab
        assert ("Environment=AIRFLOW__KERBEROS__KEYTAB=%d/keytab\n" in text) == has_keytab
    assert "KRB5_KTNAME" not in files["/etc/sysconfig/airflow"]


def test_the_worker_runs_as_its_own_user(files):
    """Every task runs as airflow-worker in the airflow group: ProtectProc=invisible then hides
    every other component from it, and /proc/<pid>/environ of another uid is closed anyway."""
    users = {name: re.search(r"^User=(.*)$", text, re.M).group(1) for name, text in _units(files).items()}
    assert users.pop("airflow-celery-worker.service") == "airflow-worker"
    assert set(users.values()) == {"airflow"}
    sysusers = files["/usr/lib/sysusers.d/airflow-prod.conf"]
    assert 'u airflow-worker -:airflow "Apache Airflow Celery worker and tasks" /opt/airflow /sbin/nologin' in sysusers
    assert "d /opt/airflow/logs 0770 airflow airflow -" in files["/usr/lib/tmpfiles.d/airflow-prod.conf"]


def _fab_key_block(source: str) -> str:
    """The rendered lines that set FAB's SECRET_KEY (stdlib only), as Flask would run them."""
    start = source.index("# FAB's sessions and CSRF tokens")
    return source[start:source.index("WTF_CSRF_ENABLED", start)]


@pytest.mark.parametrize("jwt_secret", ["s3cr3t", "ünï\\\"' $x"])
def test_fab_sessions_are_not_signed_with_the_workers_key(files, jwt_secret, monkeypatch):
    """The worker holds [api] secret_key (its log server); FAB signs sessions and CSRF tokens
    with a key derived from jwt_secret instead, which the worker never holds."""
    block = _fab_key_block(files["/etc/airflow/webserver_config.py"])
    monkeypatch.setenv("AIRFLOW__API__SECRET_KEY", "the-workers-log-key")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", jwt_secret)
    ns: dict = {}
    exec(compile(block, "webserver_config.py", "exec"), ns)
    key = ns["SECRET_KEY"]
    assert key not in ("the-workers-log-key", jwt_secret) and len(key) == 64
    ns2: dict = {}
    exec(compile(block, "webserver_config.py", "exec"), ns2)
    assert ns2["SECRET_KEY"] == key  # the same on every api-server of the site
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", jwt_secret + "x")
    ns3: dict = {}
    exec(compile(block, "webserver_config.py", "exec"), ns3)
    assert ns3["SECRET_KEY"] != key  # rotating jwt_secret rotates it
    monkeypatch.delenv("AIRFLOW__API_AUTH__JWT_SECRET")
    ns4: dict = {}
    exec(compile(block, "webserver_config.py", "exec"), ns4)
    assert "SECRET_KEY" not in ns4  # a CLI without the secrets: FAB's own default


def test_webserver_config_compiles_and_maps_roles(files):
    source = files["/etc/airflow/webserver_config.py"]
    tree = ast.parse(compile(source, "webserver_config.py", "exec", flags=ast.PyCF_ONLY_AST))
    assigned = {
        t.id: node.value for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert ast.unparse(assigned["AUTH_TYPE"]) == "AUTH_LDAP"
    assert ast.literal_eval(assigned["AUTH_LDAP_SERVER"]) == "ldap://dc.bigdata.local:389"
    assert ast.literal_eval(assigned["AUTH_LDAP_USE_TLS"]) is True
    assert ast.literal_eval(assigned["AUTH_LDAP_UID_FIELD"]) == "sAMAccountName"
    assert ast.literal_eval(assigned["AUTH_ROLES_MAPPING"]) == {
        "CN=Domain Admins,CN=Users,DC=bigdata,DC=local": ["Admin"],
        "CN=Domain Users,CN=Users,DC=bigdata,DC=local": ["User"],
    }
    assert "AUTH_LDAP_BIND_PASSWORD = os.environ[\"AIRFLOW_LDAP_BIND_PASSWORD\"]" in source
    assert "Admin&P@ssw0rd" not in source
    assert "ldap.set_option(ldap.OPT_NETWORK_TIMEOUT, 10)" in source
    assert "ldap.set_option(ldap.OPT_TIMEOUT, 30)" in source


def test_webserver_config_fails_loudly_without_bind_password(files, monkeypatch):
    """Executed for real with stand-in modules for ldap/FAB (not installed here):
    a missing password must raise a message naming the secrets file."""
    import sys
    import types

    fake_ldap = types.ModuleType("ldap")
    fake_ldap.OPT_NETWORK_TIMEOUT, fake_ldap.OPT_TIMEOUT = 1, 2
    calls = []
    fake_ldap.set_option = lambda *a: calls.append(a)
    fab = types.ModuleType("flask_appbuilder.security.manager")
    fab.AUTH_LDAP, fab.AUTH_DB = 2, 1
    for name, mod in {"ldap": fake_ldap, "flask_appbuilder": types.ModuleType("flask_appbuilder"),
                      "flask_appbuilder.security": types.ModuleType("flask_appbuilder.security"),
                      "flask_appbuilder.security.manager": fab}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    source = files["/etc/airflow/webserver_config.py"]
    monkeypatch.delenv("AIRFLOW_LDAP_BIND_PASSWORD", raising=False)
    with pytest.raises(RuntimeError, match=r"AIRFLOW_LDAP_BIND_PASSWORD is not set: put it in /etc/airflow/secrets\.env"):
        exec(compile(source, "webserver_config.py", "exec"), {})
    monkeypatch.setenv("AIRFLOW_LDAP_BIND_PASSWORD", "s3cret")
    ns: dict = {}
    exec(compile(source, "webserver_config.py", "exec"), ns)
    assert ns["AUTH_LDAP_BIND_PASSWORD"] == "s3cret"
    assert calls == [(1, 10), (2, 30)]


UNITS = ["api-server", "scheduler", "dag-processor", "triggerer", "celery-worker", "kerberos"]


@pytest.mark.parametrize("role", UNITS)
def test_unit_runs_airflow_in_foreground(files, role):
    unit = files[f"/usr/lib/systemd/system/airflow-{role}.service"]
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
    assert exec_start.startswith("/opt/airflow/venv/bin/airflow ")
    assert " -D" not in exec_start and "--daemon" not in exec_start and "bash" not in exec_start
    for line in ["After=network-online.target", "Wants=network-online.target", "NoNewPrivileges=yes",
                 "ProtectHome=yes", "PrivateTmp=yes", "LimitNOFILE=65536",
                 "EnvironmentFile=/etc/sysconfig/airflow", f"EnvironmentFile=-/run/airflow-prod/{role}.env",
                 "User=airflow", "WantedBy=airflow.target"]:
        assert line in unit, f"{line} missing in airflow-{role}.service"
    assert re.search(r"^ProtectSystem=(strict|full)$", unit, re.M)
    # The worker's files are group-writable: the triggerer writes beside a task's log, the
    # log groomer (as airflow) deletes them.
    assert f"\nUMask={'0007' if role == 'celery-worker' else '0027'}\n" in unit


def test_restart_policy_per_component(files):
    unit = lambda r: files[f"/usr/lib/systemd/system/airflow-{r}.service"]  # noqa: E731
    assert "Restart=always" in unit("kerberos")
    assert "StartLimitIntervalSec=0" in unit("kerberos")
    assert "Restart=on-failure" in unit("scheduler")
    worker = unit("celery-worker")
    assert "KillMode=mixed" in worker and "TimeoutStopSec=600" in worker
    assert "ExecStart=/opt/airflow/venv/bin/airflow celery worker --queues default" in worker



@pytest.mark.parametrize("role", UNITS)
def test_no_component_gives_up_restarting_during_an_outage(files, role):
    """Issue 14: with PostgreSQL stopped for 60 s the scheduler, dag-processor and triggerer
    exit, and every restart fails its start check until the database is back; under
    StartLimitBurst=5 in 300 s with RestartSec=5 the scheduler was left failed for good (the
    e2e's fault phase). Every component restarts without a start limit, 10 s apart."""
    unit = files[f"/usr/lib/systemd/system/airflow-{role}.service"]
    assert "StartLimitIntervalSec=0" in unit and "StartLimitBurst" not in unit, unit[:900]
    assert re.search(r"^Restart=(on-failure|always)$", unit, re.M)
    assert int(re.search(r"^RestartSec=(\d+)$", unit, re.M)[1]) == 10


def test_scheduler_keeps_publishing_through_a_broker_outage(cfg):
    """Issue 14: with Redis stopped for 60 s, tasks that became ready meanwhile failed all their
    tries within seconds (Celery's publish policy gives up after ~0.6 s, before Airflow's 1 s
    operation_timeout, and the scheduler fails a task whose publish raised). A publish now
    outlasts operation_timeout, which the scheduler counts and retries for minutes."""
    import json

    policy = json.loads(cfg["celery"]["extra_celery_config"])["task_publish_retry_policy"]
    # Retrying longer than one operation_timeout (Airflow's default 1 s, not overridden).
    assert "operation_timeout" not in cfg["celery"]
    waits = [min(policy["interval_start"] + i * policy["interval_step"], policy["interval_max"])
             for i in range(policy["max_retries"])]
    assert sum(waits) > 1
    assert int(cfg["celery"]["task_publish_max_retries"]) >= 120

def test_firewalld_ports(files):
    ports = {
        name: re.search(r'port="(\d+)"', text).group(1)
        for name, text in files.items() if name.startswith("/usr/lib/firewalld/services/")
    }
    assert ports == {
        "/usr/lib/firewalld/services/airflow-api-server.xml": "8080",
        "/usr/lib/firewalld/services/airflow-worker-logs.xml": "8793",
        "/usr/lib/firewalld/services/airflow-triggerer-logs.xml": "8794",
    }


def _wrapper_module(text: str) -> dict:
    namespace: dict = {"__name__": "airflow_wrapper"}
    exec(compile(text, "/usr/bin/airflow", "exec"), namespace)
    return namespace


def test_wrapper_reads_service_environment_without_sourcing(files):
    """Root never runs what the env files say: they are parsed like systemd parses them."""
    wrapper = files["/usr/bin/airflow"]
    assert wrapper.startswith("#!/usr/bin/python3.11 -I\n")
    mod = _wrapper_module(wrapper)
    assert (mod["SYSCONFIG"], mod["SECRETS"]) == ("/etc/sysconfig/airflow", "/etc/airflow/secrets.env")
    assert mod["VENV_AIRFLOW"] == "/opt/airflow/venv/bin/airflow"
    assert 'run_detached([RUNUSER, "-u", USER, "--", VENV_AIRFLOW, *argv], env)' in wrapper
    assert "subprocess" not in wrapper and "shell" not in wrapper.split("import sys", 1)[1]


def test_wrapper_parses_env_files_like_systemd(files, tmp_path):
    """systemd's env-file grammar (quotes, escapes, comments, trailing blanks), on a file
    whose every line is a trap for a shell `.`; the same file must never run anything."""
    from support import readers

    read_env_file = _wrapper_module(files["/usr/bin/airflow"])["read_env_file"]
    canary = tmp_path / "ran"
    env = tmp_path / "env"
    env.write_text(readers.TRICKY_ENV_FILE.format(canary=canary))
    assert read_env_file(str(env)) == readers.tricky_env_meaning(canary)
    env.write_bytes(b"A=1\nB=x\x00y\n")  # systemd refuses such a file as a whole
    with pytest.raises(ValueError, match="contains a NUL byte: systemd refuses the whole file"):
        read_env_file(str(env))
    assert not canary.exists()


def test_secrets_example_has_only_placeholders(files):
    text = files["/usr/share/doc/airflow-prod/secrets.env.example"]
    values = [line.split("=", 1)[1] for line in text.splitlines() if line and not line.startswith("#")]
    assert values and set(values) == {"CHANGE-ME"}


def test_address_bound_tickets_open_netlink_for_kerberos_only(data):
    from builder.site import site_from_data

    data["kerberos"]["include_ip"] = True
    files = {f.dest: f.text for f in render_site(site_from_data(data)).files}
    krb = files["/usr/lib/systemd/system/airflow-kerberos.service"]
    assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n" in krb
    assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n" in files["/usr/lib/systemd/system/airflow-scheduler.service"]


def test_wrapper_refuses_clearly_without_secrets(tmp_path):
    """The rendered wrapper, run for real: no secrets file, a message that says what to do."""
    import os
    import subprocess
    import sys

    from builder.site import site_from_data
    from support.sites import minimal_data

    files = {f.dest: f.text for f in render_site(site_from_data(minimal_data())).files}
    wrapper = tmp_path / "airflow"
    # Point the rendered wrapper at a secrets file that does not exist.
    missing = tmp_path / "etc-airflow" / "secrets.env"
    wrapper.write_text(files["/usr/bin/airflow"].replace('"/etc/airflow/secrets.env"', f'"{missing}"'))
    proc = subprocess.run([sys.executable, "-I", str(wrapper), "version"], capture_output=True, text=True)
    assert proc.returncode == 1
    if os.geteuid() == 0:
        assert proc.stderr == (f"airflow: {missing} is missing: make it with 'bundle secrets init' on the "
                               "build host and install it (root:root 0600) on every node\n")
    else:
        assert "run as root (sudo airflow ...) or as the airflow user" in proc.stderr


def test_firewalld_files_are_well_formed_xml(files):
    """firewalld refuses a service file that is not well-formed XML: a `--` inside a
    comment (the old template's `--permanent`) is exactly that. expat decides here;
    firewalld's own loader reads them in test_rpm_install and the e2e."""
    import xml.etree.ElementTree as ET

    fw = {name: text for name, text in files.items() if name.startswith("/usr/lib/firewalld/services/")}
    assert len(fw) == 3
    for name, text in fw.items():
        root = ET.fromstring(text.encode())
        assert root.tag == "service" and root.find("port").get("protocol") == "tcp", name
        assert "firewall-cmd --permanent --add-service=" in root.find("description").text
    with pytest.raises(ET.ParseError):
        ET.fromstring(b"<?xml version='1.0'?><!-- firewall-cmd --permanent --><service/>")


def test_units_start_only_with_a_complete_venv(files):
    """A failed venv build must not start units into a Restart= loop: each airflow unit
    has a start condition on the marker build-venv writes last."""
    units = {n: t for n, t in files.items() if n.endswith(".service") and "-ccache." not in n}
    # six roles + airflow-db-migrate (issue 13) + retention (db-clean, log-groom); the ccache
    # copy runs no Airflow
    assert len(units) == 9
    for name, text in units.items():
        unit_section = text.split("[Service]")[0]
        assert "\nConditionPathExists=/opt/airflow/venv/.airflow-prod-complete\n" in unit_section, name


def test_services_read_airflow_cfg_as_utf8(files):
    """Airflow opens airflow.cfg in the locale's encoding; UTF-8 mode makes a non-ASCII
    instance_name read the same under LANG=C or a Latin-1 locale."""
    assert "\nPYTHONUTF8=1\n" in files["/etc/sysconfig/airflow"]


# --- issue 13: what the golden units gained, and why ----------------------------------------

SCHEMA_UNITS = ["api-server", "scheduler", "dag-processor", "triggerer"]


def test_the_example_migrates_once_in_a_unit_before_scheduler_and_api_server(files):
    """`airflow db migrate` is a oneshot unit (on the migrate host, here the one host), ordered
    before the scheduler and api-server; no scriptlet and no admin step migrates."""
    mig = files["/usr/lib/systemd/system/airflow-db-migrate.service"]
    assert "\nType=oneshot\n" in mig and "\nRemainAfterExit=yes\n" in mig
    assert "\nExecStart=/opt/airflow/venv/bin/airflow db migrate\n" in mig
    # Once per venv and airflow.cfg (and boot), however many restarts one upgrade causes.
    assert "\nExecCondition=/usr/libexec/airflow-prod/check-node --migration-needed\n" in mig
    assert "\nExecStartPost=/usr/libexec/airflow-prod/check-node --migrated\n" in mig
    assert re.search(r"^Before=.*airflow-scheduler\.service", mig, re.M)
    assert re.search(r"^Before=.*airflow-api-server\.service", mig, re.M)
    for role in ("scheduler", "api-server"):
        after = re.search(r"^After=(.*)$", files[f"/usr/lib/systemd/system/airflow-{role}.service"], re.M)[1]
        assert "airflow-db-migrate.service" in after.split()
    assert files["/usr/lib/systemd/system-preset/80-airflow-prod-db-migrate.preset"].endswith(
        "enable airflow-db-migrate.service\n")


@pytest.mark.parametrize("role", SCHEMA_UNITS)
def test_components_check_the_node_then_wait_for_the_schema(files, role):
    """Each component first runs check-node (secrets match the site's, DAG folder there), then
    waits for the schema with a timeout instead of crash-looping; systemd waits longer."""
    unit = files[f"/usr/lib/systemd/system/airflow-{role}.service"]
    pre = re.findall(r"^ExecStartPre=(.*)$", unit, re.M)
    dags = "" if role == "api-server" else " --dags"
    # First, as root, the role's share of the secrets file (docs/security.md).
    assert pre == [f"+/usr/libexec/airflow-prod/role-env {role}",
                   f"/usr/libexec/airflow-prod/check-node --role {role}" + dags,
                   "/opt/airflow/venv/bin/airflow db check-migrations --migration-wait-timeout 600"]
    assert "\nTimeoutStartSec=720\n" in unit


def test_the_worker_checks_its_node_but_never_the_database(files):
    """3.1.4's worker reaches the metadata only through the execution API and its result
    backend is Redis: no schema wait, no database password (docs/security.md)."""
    unit = files["/usr/lib/systemd/system/airflow-celery-worker.service"]
    assert re.findall(r"^ExecStartPre=(.*)$", unit, re.M) == [
        "+/usr/libexec/airflow-prod/role-env celery-worker",
        "/usr/libexec/airflow-prod/check-node --role celery-worker --dags"]
    assert "\nTimeoutStartSec=90\n" in unit


def test_the_local_broker_is_configured_by_the_scheduler_package(files):
    """RHEL's redis.service, changed by a drop-in only: the site's port, loopback, and the ACL
    file role-env writes (as root, before redis-server starts as redis)."""
    dropin = files["/usr/lib/systemd/system/redis.service.d/50-airflow-prod.conf"]
    assert "\nExecStartPre=+/usr/libexec/airflow-prod/role-env --redis-acl\n" in dropin
    assert ("\nExecStart=\nExecStart=/usr/bin/redis-server /etc/redis/redis.conf --daemonize no --supervised "
            "systemd --port 6379 --bind 127.0.0.1 -::1 --protected-mode yes "
            "--aclfile /run/airflow-prod-redis/users.acl\n") in dropin


def test_kerberos_renewer_waits_for_the_schema_but_uses_no_shared_secret(files):
    """`airflow kerberos` exits "You need to initialize the database" before the schema
    exists (seen in the cluster e2e): it waits like the others; it signs nothing, so no
    check-node. The migration runs before it (it needs a password, not a ticket)."""
    krb = files["/usr/lib/systemd/system/airflow-kerberos.service"]
    assert re.findall(r"^ExecStartPre=(.*)$", krb, re.M) == [
        "+/usr/libexec/airflow-prod/role-env kerberos",
        "/opt/airflow/venv/bin/airflow db check-migrations --migration-wait-timeout 600"]
    assert "\nTimeoutStartSec=720\n" in krb
    mig = files["/usr/lib/systemd/system/airflow-db-migrate.service"]
    assert "airflow-kerberos.service" in re.search(r"^Before=(.*)$", mig, re.M)[1].split()
    assert "airflow-kerberos" not in re.search(r"^After=(.*)$", mig, re.M)[1]


def test_check_node_ships_in_the_base_package_and_compiles(files):
    script = files["/usr/libexec/airflow-prod/check-node"]
    assert script.startswith("#!/usr/bin/python3.11 -I\n")
    compile(script, "check-node", "exec")
    assert "CHANGE-ME" in script and "AIRFLOW__API_AUTH__JWT_SECRET" in script


def test_no_fingerprint_file_without_a_secrets_file(files):
    """The example is rendered without secrets: nothing to compare, only missing secrets refused."""
    assert "/etc/airflow/secrets.fingerprint" not in files


def test_metrics_go_to_the_sites_statsd_collector(cfg):
    """[metrics] statsd_host turns StatsD on in airflow.cfg and brings the client (the statsd
    extra); the guide's site sends none."""
    from builder.site import site_from_data
    from support.sites import example_data

    assert not cfg.has_section("metrics")
    data = example_data()
    data["metrics"] = {"statsd_host": "metrics.bigdata.local", "statsd_port": 9125, "prefix": "prod.airflow"}
    site = site_from_data(data)
    assert site.airflow.extras[-1] == "statsd" and site.airflow.extras.count("statsd") == 1
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(next(f.text for f in render_site(site).files if f.dest == "/etc/airflow/airflow.cfg"))
    assert dict(parser["metrics"]) == {"statsd_on": "True", "statsd_host": "metrics.bigdata.local",
                                       "statsd_port": "9125", "statsd_prefix": "prod.airflow"}
