"""The site model: valid sites, derived values, and every kind of bad input."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from builder.errors import SiteError
from builder.site import load_site, parse_site, site_from_data
from support.sites import EXAMPLE, minimal_data


def test_example_loads_with_guide_values(example_site):
    s = example_site
    assert s.airflow.version == "3.1.4"
    assert s.target.python == "3.11.7"
    assert s.core.default_timezone == "Africa/Cairo"
    assert s.core.parallelism == 32
    assert s.roles == ("api-server", "scheduler", "dag-processor", "triggerer", "celery-worker", "kerberos")
    assert "apache-airflow-providers-fab" in s.airflow.providers


def test_derived_values_have_one_source(example_site):
    s = example_site
    # The guide points execution_api_server_url and base_url at gateway1 while
    # the certificate names airflow: here both derive from api.host.
    assert s.base_url == "https://airflow.my.bigdata.local:8080"
    assert s.execution_api_server_url == "https://airflow.my.bigdata.local:8080/execution/"
    assert s.sql_alchemy_conn == "postgresql+psycopg2://airflow@utility1.my.bigdata.local:5432/airflow"
    # No password in either (role-env adds it); the result backend is the broker's Redis.
    assert s.broker_url == "redis://airflow@localhost:6379/0"
    assert s.result_backend == s.broker_url
    assert s.kerberos.ccache == "/run/airflow/krb5cc_airflow"
    assert s.kerberos.keytab == "/opt/airflow/security/airflow.keytab"


def test_defaults_of_minimal_site():
    s = site_from_data(minimal_data())
    assert s.airflow.version == "3.1.4"
    assert s.target.python == "3.11.7"
    assert s.api.host == "af1.example.com"
    assert s.api.workers == 1
    assert s.tls.dns_names == ("af1.example.com",)
    assert s.tls.cert == "/opt/airflow/security/airflow_cert.pem"
    assert s.paths.venv == "/opt/airflow/venv"
    assert s.paths.dags == "/opt/airflow/dags"
    assert s.ldap is None and s.kerberos is None
    assert "apache-airflow-providers-fab" in s.airflow.providers


def test_paths_follow_home():
    d = minimal_data()
    d["paths"] = {"home": "/srv/airflow"}
    s = site_from_data(d)
    assert (s.paths.dags, s.paths.logs, s.paths.security) == (
        "/srv/airflow/dags", "/srv/airflow/logs", "/srv/airflow/security")


def test_defaults_go_into_a_new_model_never_into_the_parsed_one():
    from builder.site import derive
    from builder.site.model import Paths

    parsed = Paths.model_construct(home="/srv/airflow")  # as parsed: the directories under home unset
    paths = derive.paths_under_home(parsed)
    assert parsed.venv is None and paths is not parsed
    assert (paths.venv, paths.security) == ("/srv/airflow/venv", "/srv/airflow/security")
    assert derive.paths_under_home(paths) is paths


def test_a_validated_site_has_nothing_left_to_derive(example_site):
    from builder.site import derive

    for site in (example_site, site_from_data(minimal_data())):
        assert derive.site_defaults(site) == site


def test_model_is_frozen(example_site):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"parallelism\n  Instance is frozen \[type=frozen_instance"):
        example_site.core.parallelism = 1  # type: ignore[misc]


def test_load_site_missing_file(tmp_path):
    with pytest.raises(SiteError, match=r"nope\.toml: 1 problem\n  - file not found"):
        load_site(tmp_path / "nope.toml")


def test_toml_syntax_error_has_line_and_column():
    text = EXAMPLE.read_text().replace('name = "bigdata-prod"', 'name = "bigdata-prod', 1)
    line = text.splitlines().index('name = "bigdata-prod') + 1
    with pytest.raises(SiteError, match=rf"TOML syntax error: .*\(at line {line}, column \d+\)"):
        parse_site(text, "bad.toml")


def test_error_names_the_file():
    with pytest.raises(SiteError, match=r"^my-site\.toml: 3 problems\n  - site\.name = 'x': must be"):
        parse_site('[site]\nname = "x"\n', "my-site.toml")


def test_several_problems_are_reported_together(data):
    data["core"]["parallelism"] = 0
    data["api"]["port"] = 70000
    with pytest.raises(SiteError) as err:
        site_from_data(data)
    assert len(err.value.problems) == 2


def _set(path: str, value) -> Callable[[dict], None]:
    def apply(d: dict) -> None:
        *parents, last = _split(path)
        node = d
        for p in parents:
            node = node[p]
        node[last] = value
    return apply


def _del(path: str) -> Callable[[dict], None]:
    def apply(d: dict) -> None:
        *parents, last = _split(path)
        node = d
        for p in parents:
            node = node[p]
        del node[last]
    return apply


def _split(path: str) -> list:
    return [int(p) if p.isdigit() else p for p in path.split(".")]


def _roles(*roles: str) -> Callable[[dict], None]:
    return _set("hosts.0.roles", list(roles))


ALL_BUT_KRB = ["api-server", "scheduler", "dag-processor", "triggerer", "celery-worker"]

# (id, mutation of the example, expected message regex)
BAD = [
    # unknown keys, with suggestions
    ("unknown-top", _set("databse", {}), r"databse: unknown key \(did you mean 'database'\?\)"),
    ("unknown-nested", _set("core.paralelism", 4), r"core\.paralelism: unknown key \(did you mean 'parallelism'\?\)"),
    ("unknown-no-close", _set("api.zzz", 1), r"api\.zzz: unknown key; valid keys here: host, port"),
    ("unknown-in-host", _set("hosts.0.role", ["x"]), r"hosts\[0\]\.role: unknown key \(did you mean 'roles'\?\)"),
    ("unknown-ldap", _set("ldap.bind_password", "secret"), r"ldap\.bind_password: unknown key"),
    # missing keys
    ("missing-site", _del("site"), r"site: required key is missing"),
    ("missing-db-host", _del("database.host"), r"database\.host: required key is missing"),
    ("missing-hosts", _del("hosts"), r"hosts: required key is missing"),
    ("missing-ldap-url", _del("ldap.url"), r"ldap\.url: required key is missing"),
    ("missing-principal", _del("kerberos.principal"), r"kerberos\.principal: required key is missing"),
    # wrong types
    ("type-parallelism", _set("core.parallelism", "32"), r"core\.parallelism = '32': wrong type \(str\)"),
    ("type-bool", _set("core.load_examples", "no"), r"core\.load_examples = 'no': wrong type \(str\)"),
    ("type-port", _set("api.port", 80.5), r"api\.port = 80\.5: wrong type \(float\)"),
    ("type-roles", _set("hosts.0.roles", "scheduler"), r"hosts\[0\]\.roles = 'scheduler': wrong type"),
    ("type-extras", _set("airflow.extras", "ldap"), r"airflow\.extras = 'ldap': wrong type"),
    # bad values
    ("site-name", _set("site.name", "Big Data"), r"site\.name = 'Big Data': must be 2-40 characters"),
    ("version", _set("airflow.version", "3.1"), r"airflow\.version = '3\.1': must be an exact version X\.Y\.Z"),
    ("python", _set("target.python", "3.11"), r"target\.python = '3\.11': must be an exact version"),
    ("os", _set("target.os", "el8"), r"target\.os = 'el8': must be one of 'el9'"),
    ("arch", _set("target.arch", "aarch64"), r"target\.arch = 'aarch64': must be one of 'x86_64'"),
    ("builder", _set("target.native_builder", "podman"), r"native_builder = 'podman': must be one of 'auto', 'docker', 'host' or 'target'"),
    ("constraints", _set("airflow.constraints", "constraints-3.11.txt"), r"airflow\.constraints = 'constraints-3\.11\.txt': must be an https:// URL or an absolute file path"),
    ("extras-dupe", _set("airflow.extras", ["ldap", "ldap"]), r"airflow\.extras = .*listed twice: ldap"),
    ("host-name", _set("hosts.0.name", "air_flow.example.com"), r"hosts\[0\]\.name = 'air_flow\.example\.com': not a valid host name"),
    ("host-label-dash", _set("database.host", "-db.example.com"), r"database\.host = '-db\.example\.com': not a valid host name"),
    ("role-unknown", _roles(*ALL_BUT_KRB, "webserver"), r"hosts\[0\]\.roles\[5\] = 'webserver': must be one of 'api-server'"),
    ("role-twice", _roles(*ALL_BUT_KRB, "kerberos", "kerberos"), r"hosts\[0\]\.roles = .*a role is listed twice"),
    ("roles-empty", _roles(), r"site.toml: 1 problem\n  - hosts\[0\]\.roles = \[\]: must have at least 1 item"),
    ("port-range", _set("api.port", 70000), r"api\.port = 70000: Input should be less than or equal to 65535"),
    ("db-port-zero", _set("database.port", 0), r"database\.port = 0: Input should be greater than or equal to 1"),
    ("broker-db", _set("broker.db", 16), r"broker\.db = 16: Input should be less than or equal to 15"),
    ("db-name", _set("database.name", "air flow"), r"database\.name = 'air flow': must be a PostgreSQL name: up to 63 letters"),
    ("sslmode", _set("database.sslmode", "on"), r"database\.sslmode = 'on': must be one of 'disable'"),
    ("timezone", _set("core.default_timezone", "Cairo"), r"default_timezone = 'Cairo': not an IANA time zone: use a name such as"),
    ("timezone-case", _set("core.default_timezone", "africa/cairo"), r"did you mean 'Africa/Cairo'\?"),
    ("test-connection", _set("core.test_connection", "True"), r"core\.test_connection = 'True': must be one of 'Disabled', 'Enabled' or 'Hidden'"),
    ("parallelism-zero", _set("core.parallelism", 0), r"core\.parallelism = 0: Input should be greater than or equal to 1"),
    ("bind-ip", _set("api.bind", "all"), r"api\.bind = 'all': not an IP address"),
    ("instance-newline", _set("api.instance_name", "a\nb"), r"api\.instance_name = 'a\\nb': must be a single line"),
    ("tls-ip", _set("tls.ip_addresses", ["192.168.1.300"]), r"tls\.ip_addresses\[0\] = '192\.168\.1\.300': not an IP address"),
    ("tls-country", _set("tls.country", "Egypt"), r"tls\.country = 'Egypt': must be two upper-case letters, an ISO 3166 country code"),
    ("tls-key-size", _set("tls.key_size", 1024), r"tls\.key_size = 1024: must be one of 2048, 3072 or 4096"),
    ("tls-cert-relative", _set("tls.cert", "security/cert.pem"), r"tls\.cert = 'security/cert\.pem': must be an absolute path"),
    ("path-not-normal", _set("paths.home", "/opt/airflow/"), r"paths\.home = '/opt/airflow/': must be a normalised path .*: /opt/airflow"),
    ("path-dotdot", _set("paths.logs", "/opt/airflow/../logs"), r"paths\.logs = .*must be a normalised path"),
    ("ldap-url", _set("ldap.url", "http://dc.bigdata.local"), r"ldap\.url = 'http://dc\.bigdata\.local': not an LDAP URL: use ldap://host\[:port\]"),
    ("ldap-url-port", _set("ldap.url", "ldap://dc.bigdata.local:99999"), r"ldap\.url = .*not an LDAP URL"),
    ("ldap-dn", _set("ldap.search_base", "Users,DC=bigdata"), r"ldap\.search_base = 'Users,DC=bigdata': not a distinguished name: 'Users' is not attribute=value"),
    ("ldap-bind-dn", _set("ldap.bind_dn", "super"), r"ldap\.bind_dn = 'super': not a distinguished name"),
    ("ldap-mapping-key", _set("ldap.role_mapping", {"Domain Admins": ["Admin"]}), r'ldap\.role_mapping\."Domain Admins": not a distinguished name|ldap\.role_mapping.*not a distinguished name'),
    ("ldap-timeout", _set("ldap.network_timeout", 0), r"ldap\.network_timeout = 0: Input should be greater than or equal to 1"),
    ("principal", _set("kerberos.principal", "airflow@bigdata.local"), r"kerberos\.principal = 'airflow@bigdata\.local': not a Kerberos principal: use primary\[/instance\]@REALM"),
    ("principal-no-realm", _set("kerberos.principal", "airflow"), r"kerberos\.principal = 'airflow': not a Kerberos principal"),
    ("keytab-relative", _set("kerberos.keytab", "airflow.keytab"), r"kerberos\.keytab = 'airflow\.keytab': must be an absolute path"),
    ("queue-name", _set("celery.queues", ["bad queue"]), r"celery\.queues\[0\] = 'bad queue': must be a Celery queue name"),
    ("queues-empty", _set("celery.queues", []), r"celery\.queues = \[\]: must have at least 1 item"),
    ("env-name", _set("environment", {"1BAD": "x"}), r"environment\.1BAD.*not an environment variable name|environment.*not an environment variable name"),
    # cross-field rules
    ("role-on-no-host", _roles("api-server", "scheduler", "kerberos"), r"hosts: no host runs dag-processor, triggerer, celery-worker: a CeleryExecutor deployment needs"),
    ("host-twice", lambda d: d["hosts"].append(dict(d["hosts"][0])), r"hosts: host 'airflow\.my\.bigdata\.local' is listed twice"),
    ("role-no-kerberos", _del("kerberos"), r"kerberos: a host runs the kerberos role: add \[kerberos\] with principal"),
    ("san-missing", _set("tls.dns_names", ["airflow"]), r"tls\.dns_names: base_url host 'airflow\.my\.bigdata\.local' \(api\.host\) is not in the certificate's subjectAltNames"),
    ("api-host-not-in-san", _set("api.host", "gateway1.my.bigdata.local"), r"tls\.dns_names: base_url host 'gateway1\.my\.bigdata\.local'"),
    ("workers", _set("api.workers", 4), r"api\.workers: 4: the uvicorn api-server loses extra workers; keep 1 or run"),
    ("ldaps-no-ca", lambda d: (d["ldap"].update(url="ldaps://dc.bigdata.local:636", starttls=False), d["ldap"].pop("ca_file")), r"ldap\.ca_file: LDAPS and StartTLS need the CA file"),
    ("starttls-no-ca", _del("ldap.ca_file"), r"ldap\.ca_file: LDAPS and StartTLS need the CA file"),
    ("starttls-ldaps", _set("ldap.url", "ldaps://dc.bigdata.local:636"), r"ldap\.starttls: StartTLS cannot be used with an ldaps:// URL"),
    # The bind and every user's password would cross the network in clear.
    ("ldap-plaintext", _set("ldap.starttls", False), r"ldap\.starttls: ldap://dc\.bigdata\.local:389 without StartTLS sends the bind password and every user's password in clear: .*ldap\.plaintext_reason"),
    # The broker's password and every task's token would cross the network in clear.
    ("broker-plaintext", lambda d: d["broker"].update(host="redis.my.bigdata.local", tls=False),
     r"broker\.tls: false for 'redis\.my\.bigdata\.local', another host: the broker password and every task's "
     r"token would cross the network in clear\. Set tls = true \(rediss://, with ca_file\), or say why in "
     r"broker\.plaintext_reason"),
    ("broker-user", _set("broker.user", "air flow"), r"broker\.user = 'air flow': must be a Redis user name"),
    ("broker-user-url", _set("broker.user", "a@b"), r"broker\.user = 'a@b': must be a Redis user name"),
    ("broker-ca-relative", _set("broker.ca_file", "ca.pem"), r"broker\.ca_file = 'ca\.pem': must be an absolute path"),
    ("ldap-no-fab", _set("airflow.providers", []), r"airflow\.providers: LDAP login needs 'apache-airflow-providers-fab'"),
    ("ccache-tmp", _set("kerberos.ccache", "/tmp/airflow_krb5_ccache"), r"kerberos\.ccache = '/tmp/airflow_krb5_ccache': '/tmp/airflow_krb5_ccache' is under a temporary directory: every unit runs with PrivateTmp=yes"),
    ("override-secret", _set("airflow_cfg", {"core": {"fernet_key": "abc"}}), r"airflow_cfg\.core\.fernet_key: secrets never go into airflow\.cfg"),
    ("override-derived", _set("airflow_cfg", {"core": {"execution_api_server_url": "https://x/execution/"}}), r"airflow_cfg\.core\.execution_api_server_url: derived from api\.host / api\.port; set that instead"),
    ("override-nested-table", _set("airflow_cfg", {"core": {"x": {"y": 1}}}), r"airflow_cfg\.core\.x"),
] + [
    # Values that reach sh, systemd, rpm, tmpfiles and Airflow's parser (issue 8): each one
    # was accepted once and changed the structure of a rendered file.
    ("path-cmd-subst", _set("paths.config", "/etc/$(touch /tmp/x)"), r"paths\.config = '/etc/\$\(touch /tmp/x\)': may contain only letters, digits and \. _ \+ @ - between slashes \(found '\$'\)"),
    ("path-backtick", _set("paths.home", "/opt/`id`"), r"paths\.home = '/opt/`id`': may contain only .*found '`'"),
    ("path-space", _set("paths.home", "/opt/air flow"), r"paths\.home = '/opt/air flow': may contain only .*found ' '"),
    ("path-quote", _set("paths.home", '/opt/"x'), r"paths\.home = '/opt/\"x': may contain only"),
    ("path-rpm-shell", _set("paths.logs", "/opt/%(touch /x)"), r"paths\.logs = '/opt/%\(touch /x\)': may contain only .*found '%'"),
    ("path-rpm-lua", _set("paths.plugins", "/opt/%{lua:os.exit()}"), r"paths\.plugins = .*found '%'"),
    ("path-interpolation", _set("paths.home", "/opt/%(dags_folder)s"), r"paths\.home = .*found '%'"),
    ("path-newline", _set("paths.dags", "/opt/airflow/dags\nUser=root"), r"paths\.dags = '/opt/airflow/dags\\nUser=root': must not contain control or invisible characters \(found U\+000A at position 17\)"),
    ("path-nul", _set("paths.home", "/opt/air\x00flow"), r"paths\.home = '/opt/air\\x00flow': must not contain control .*U\+0000"),
    ("path-long-component", _set("paths.home", "/opt/" + "a" * 300), r"paths\.home = '/opt/a+\.\.\.: has a component of 300 characters: at most 255"),
    ("path-long", _set("paths.home", "/opt" + "/abcdefghij" * 60), r"paths\.home = .*is 664 characters long: at most 512"),
    ("path-tilde", _set("paths.home", "/opt/~x"), r"paths\.home = '/opt/~x': may contain only .*found '~'"),
    ("path-dot", _set("paths.home", "/opt/./airflow"), r"must be a normalised path"),
    ("path-double-slash", _set("paths.home", "//opt/airflow"), r"paths\.home = '//opt/airflow': must be a normalised path"),
    ("path-system-dir", _set("paths.dags", "/etc"), r"paths\.dags = '/etc': '/etc' is a system directory that other packages own"),
    ("path-system-child", _set("paths.logs", "/var/log"), r"paths\.logs = '/var/log': '/var/log' is a system directory"),
    ("path-usr-bin", _set("paths.plugins", "/usr/bin"), r"paths\.plugins = '/usr/bin': '/usr/bin' is a system directory"),
    ("path-root-home", _set("paths.home", "/root"), r"paths\.home = '/root': '/root' is under a home directory: every unit runs with ProtectHome=yes"),
    ("path-under-home", _set("paths.dags", "/home/etl/dags"), r"paths\.dags = .*ProtectHome=yes"),
    ("path-proc", _set("paths.logs", "/proc/airflow"), r"paths\.logs = .*is on a kernel file system"),
    ("config-is-sysconfig", _set("paths.config", "/etc/sysconfig/airflow"), r"paths\.config: '/etc/sysconfig/airflow' collides with /etc/sysconfig/airflow"),
    ("dir-is-wrapper", _set("paths.plugins", "/usr/bin/airflow"), r"paths\.plugins: '/usr/bin/airflow' collides with the airflow wrapper"),
    ("dir-is-config-file", _set("paths.dags", "/etc/airflow/airflow.cfg"), r"paths\.dags: '/etc/airflow/airflow\.cfg' collides with airflow\.cfg of paths\.config"),
    ("dirs-equal", _set("paths.logs", "/opt/airflow/dags"), r"paths\.logs: '/opt/airflow/dags' is also paths\.dags: each directory has one job"),
    ("dir-in-venv", _set("paths.logs", "/opt/airflow/venvs/logs"), r"paths\.logs: '/opt/airflow/venvs/logs' is inside paths\.venv \(its versioned venvs\)"),
    ("venv-in-logs", _set("paths.venv", "/opt/airflow/logs/venv"), r"paths\.venv: '/opt/airflow/logs/venv' is inside paths\.logs .*which the airflow user can write"),
    # Root's wrapper reads the env files in paths.config: no task may plant one there.
    ("config-in-dags", _set("paths.config", "/opt/airflow/dags/etc"), r"paths\.config: '/opt/airflow/dags/etc' is inside paths\.dags \(/opt/airflow/dags\), which the airflow user \(and so every task\) can write"),
    ("home-in-logs", lambda d: (_set("paths.logs", "/srv/logs")(d), _set("paths.home", "/srv/logs/home")(d)), r"paths\.home: '/srv/logs/home' is inside paths\.logs \(/srv/logs\)"),
    ("bad-memory", _set("limits", {"celery-worker": {"memory_max": "4GB"}}), r"limits\.celery-worker\.memory_max = '4GB': must be a systemd memory size"),
    ("bad-cpu-quota", _set("limits", {"scheduler": {"cpu_quota": "2"}}), r"limits\.scheduler\.cpu_quota = '2': must be a share of one CPU in percent"),
    ("limits-of-no-role", _set("limits", {"webserver": {"tasks_max": 10}}), r"limits\.webserver"),
    ("cert-is-dir", _set("tls.cert", "/opt/airflow/security"), r"tls\.cert: '/opt/airflow/security' is the directory paths\.security: name a file"),
    ("env-name-newline", _set("environment", {"FOO\n": "x"}), r"environment\.\"FOO\\n\" = 'FOO\\n': not an environment variable name"),
    ("env-name-lower", _set("environment", {"hadoop_home": "x"}), r"environment\.hadoop_home.*use upper-case letters"),
    ("env-value-nul", _set("environment.HADOOP_CONF_DIR", "/etc/hadoop\x00x"), r"environment\.HADOOP_CONF_DIR = '/etc/hadoop\\x00x': must not contain control"),
    ("env-value-newline", _set("environment.HADOOP_CONF_DIR", "x\nLD_PRELOAD=/x.so"), r"environment\.HADOOP_CONF_DIR = 'x\\nLD_PRELOAD=/x\.so': must be a single line"),
    ("env-airflow-home", _set("environment.AIRFLOW_HOME", "/srv"), r"environment\.AIRFLOW_HOME.*is set by airflow-prod from the site's other settings"),
    ("env-krb5ccname", _set("environment.KRB5CCNAME", "FILE:/tmp/x"), r"environment\.KRB5CCNAME.*is set by airflow-prod"),
    ("env-airflow-option", _set("environment.AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite://"), r"environment\.AIRFLOW__DATABASE__SQL_ALCHEMY_CONN.*Airflow options go in \[airflow_cfg\.<section>\]"),
    ("env-secret", _set("environment.PGPASSWORD", "hunter2"), r"environment\.PGPASSWORD.*is a secret: it belongs in the secrets file"),
    ("env-ld-preload", _set("environment.LD_PRELOAD", "/x.so"), r"environment\.LD_PRELOAD.*changes how programs, the loader or the interpreter start"),
    ("env-path", _set("environment.PATH", "/tmp"), r"environment\.PATH.*changes how programs"),
    ("env-pythonpath", _set("environment.PYTHONPATH", "/tmp"), r"environment\.PYTHONPATH.*changes how programs"),
    ("host-trailing-newline", _set("database.host", "db.example.com\n"), r"database\.host = 'db\.example\.com\\n': must not contain control"),
    ("host-scope-id", _set("database.host", "fe80::1%eth0"), r"database\.host = 'fe80::1%eth0': IPv6 scope IDs"),
    ("bind-scope-id", _set("api.bind", "fe80::1%anything"), r"api\.bind = 'fe80::1%anything': IPv6 scope IDs"),
    ("san-ip-as-dns", _set("tls.dns_names", ["airflow.my.bigdata.local", "192.168.1.70"]), r"tls\.dns_names\[1\] = '192\.168\.1\.70': is an IP address: list it in tls\.ip_addresses"),
    ("instance-secret-var", _set("api.instance_name", "${AIRFLOW__API__SECRET_KEY}"), r"api\.instance_name = '\$\{AIRFLOW__API__SECRET_KEY\}': Airflow expands \$NAME and \$\{\.\.\.\} in airflow\.cfg values"),
    ("instance-var", _set("api.instance_name", "Airflow $HOSTNAME"), r"api\.instance_name = .*Airflow expands"),
    ("instance-tilde", _set("api.instance_name", "~root"), r"api\.instance_name = '~root': Airflow expands a leading '~'"),
    ("instance-spaces", _set("api.instance_name", " Airflow"), r"api\.instance_name = ' Airflow': must not start or end with spaces"),
    ("instance-u2028", _set("api.instance_name", "Prod\u2028x"), r"api\.instance_name = .*must not contain control or invisible characters \(found U\+2028"),
    ("instance-nel", _set("api.instance_name", "Prod\x85x"), r"api\.instance_name = .*U\+0085"),
    ("instance-bidi", _set("api.instance_name", "Prod\u202ex"), r"api\.instance_name = .*U\+202E"),
    ("instance-long", _set("api.instance_name", "x" * 600), r"api\.instance_name = .*is 600 characters long: at most 512"),
    ("db-user-dollar", _set("database.user", "a$PGPASSWORD"), r"database\.user = 'a\$PGPASSWORD': must be a PostgreSQL name: up to 63 letters, digits, '_' or '-'"),
    ("site-name-newline", _set("site.name", "bigdata\n"), r"site\.name = 'bigdata\\n': must be 2-40 characters"),
    ("version-newline", _set("airflow.version", "3.1.4\n"), r"airflow\.version = '3\.1\.4\\n': must be an exact version"),
    ("principal-newline", _set("kerberos.principal", "airflow@BIGDATA.LOCAL\n"), r"kerberos\.principal = .*must not contain control"),
    ("principal-dollar", _set("kerberos.principal", "$USER@BIGDATA.LOCAL"), r"kerberos\.principal = .*not a Kerberos principal"),
    ("queue-newline", _set("celery.queues", ["default\n"]), r"celery\.queues\[0\] = 'default\\n': must be a Celery queue name"),
    ("extra-newline", _set("airflow.extras", ["ldap\n"]), r"airflow\.extras\[0\] = 'ldap\\n': not a package extra name"),
    ("provider-url", _set("airflow.providers", ["apache-airflow-providers-fab @ https://evil.example/x.whl"]), r"airflow\.providers\[0\] = .*no URL and no marker"),
    ("provider-bad", _set("airflow.providers", ["fab;;"]), r"airflow\.providers\[0\] = 'fab;;': not a requirement"),
    ("ldap-url-newline", _set("ldap.url", "ldap://dc.bigdata.local:389\n"), r"ldap\.url = .*not an LDAP URL"),
    ("ldap-url-v6-unbracketed", _set("ldap.url", "ldap://2001:db8::5"), r"ldap\.url = .*an IPv6 address in brackets"),
    ("dn-newline", _set("ldap.bind_dn", "CN=super,DC=bigdata\nX=1"), r"ldap\.bind_dn = .*must be a single line"),
    ("cfg-section-bracket", _set("airflow_cfg", {"core]\n[x": {"a": 1}}), r"airflow_cfg\.\"core\]\\n\[x\" = 'core\]\\n\[x': not an airflow\.cfg name"),
    ("cfg-option-equals", _set("airflow_cfg", {"core": {"a=b": 1}}), r"airflow_cfg\.core\.\"a=b\".*not an airflow\.cfg name"),
    ("cfg-option-colon", _set("airflow_cfg", {"core": {"a:b": 1}}), r"airflow_cfg\.core\.\"a:b\" = 'a:b': not an airflow\.cfg name"),
    ("cfg-option-upper", _set("airflow_cfg", {"core": {"Parallelism": 1}}), r"airflow_cfg\.core\.Parallelism.*lower-case letters"),
    ("cfg-value-newline", _set("airflow_cfg", {"core": {"x": "a\nb"}}), r"airflow_cfg\.core\.x = 'a\\nb': must be a single line"),
    ("cfg-value-var", _set("airflow_cfg", {"logging": {"log_format": "$PGPASSWORD"}}), r"airflow_cfg\.logging\.log_format = '\$PGPASSWORD': Airflow expands"),
    ("cfg-secret-cmd", _set("airflow_cfg", {"core": {"fernet_key_cmd": "cat /x"}}), r"airflow_cfg\.core\.fernet_key_cmd: secrets never go into airflow\.cfg"),
    ("cfg-derived-secret", _set("airflow_cfg", {"database": {"sql_alchemy_conn_secret": "x"}}), r"airflow_cfg\.database\.sql_alchemy_conn_secret: derived from \[database\]"),
    ("constraints-space", _set("airflow.constraints", "/tmp/c onstraints.txt"), r"airflow\.constraints = .*must not contain spaces or control characters"),
]


@pytest.mark.parametrize("mutate,expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(data, mutate, expected):
    mutate(data)
    with pytest.raises(SiteError) as err:
        site_from_data(data, "site.toml")
    text = str(err.value)
    assert text.startswith("site.toml: ")
    assert re.search(expected, text), f"{expected!r} not in:\n{text}"
    # Shown escaped: no raw control character reaches the terminal.
    assert not any(ord(c) < 32 and c != "\n" for c in text) and "\u2028" not in text


def test_multi_host_needs_public_api_host():
    d = minimal_data()
    d["hosts"] = [
        {"name": "a1.example.com", "roles": ALL_BUT_KRB},
        {"name": "a2.example.com", "roles": ["api-server", "celery-worker"]},
    ]
    d["broker"] = {"host": "redis.example.com"}
    with pytest.raises(SiteError, match=r"api\.host: api-server runs on 2 hosts: name the public host"):
        site_from_data(d)
    d["api"] = {"host": "airflow.example.com"}
    assert site_from_data(d).base_url == "https://airflow.example.com:8080"


def test_local_broker_with_workers_elsewhere():
    d = minimal_data()
    d["hosts"] = [
        {"name": "a1.example.com", "roles": ALL_BUT_KRB},
        {"name": "w1.example.com", "roles": ["celery-worker"]},
    ]
    with pytest.raises(SiteError, match=r"broker\.host: 'localhost' differs on each of \['a1\.example\.com', 'w1\.example\.com'\]"):
        site_from_data(d)


def test_api_port_443_drops_the_port():
    d = minimal_data()
    d["api"] = {"port": 443}
    assert site_from_data(d).base_url == "https://af1.example.com"


@pytest.mark.parametrize("image", [
    "registry.example.com/airflow-prod/el9-builder:1",
    "localhost:5000/el9-builder@sha256:" + "0" * 64,
    "airflow-prod-wheel-builder:3f2a",
    "sha256:" + "ab" * 32,
])
def test_builder_image_accepts_references_and_image_ids(image):
    d = minimal_data()
    d["target"] = {"native_builder": "docker", "builder_image": image}
    assert site_from_data(d).target.builder_image == image
    d["target"] = {"builder_image": image}  # auto may pick docker
    assert site_from_data(d).target.builder_image == image


@pytest.mark.parametrize("image", ["Rocky/el9", "el9 builder", "el9:", "el9@sha256:abc", "x" * 256, "el9\n:1"])
def test_builder_image_refuses_what_is_not_an_image(image):
    d = minimal_data()
    d["target"] = {"native_builder": "docker", "builder_image": image}
    with pytest.raises(SiteError, match=r"target\.builder_image = .*(not a container image|control)"):
        site_from_data(d)


@pytest.mark.parametrize("builder", ["host", "target"])
def test_builder_image_without_docker_is_refused(builder):
    d = minimal_data()
    d["target"] = {"native_builder": builder, "builder_image": "el9-builder:1"}
    with pytest.raises(SiteError, match=rf"target\.builder_image: is set but native_builder is '{builder}'"):
        site_from_data(d)


def test_tls_mode_is_dropped_with_a_warning(data):
    """tls.mode was never read: a site file that sets it stays valid, and is told to drop it."""
    from builder import report

    seen: list[tuple[str, str]] = []
    data = {**data, "tls": {**data.get("tls", {}), "mode": "self-signed"}}
    with report.use(lambda level, msg: seen.append((level, msg))):
        site = site_from_data(data)
    assert not hasattr(site.tls, "mode")
    assert seen == [("warn", "site.toml tls.mode is not read (`bundle tls csr`, `bundle tls self-signed` or "
                             "your own files decide): remove it")]


def test_ldap_in_clear_needs_a_reason(example_data):
    import copy

    data = copy.deepcopy(example_data)
    data["ldap"].update(starttls=False, plaintext_reason="the directory runs on this host")
    data["ldap"].pop("ca_file")
    assert site_from_data(data).ldap.plaintext_reason == "the directory runs on this host"


def test_a_broker_in_clear_on_another_host_needs_a_reason(example_data):
    import copy

    data = copy.deepcopy(example_data)
    data["broker"].update(host="redis.example.com", tls=False, plaintext_reason="a private link to the broker")
    site = site_from_data(data)
    assert site.broker.plaintext_reason == "a private link to the broker"
    assert site.broker_url == "redis://airflow@redis.example.com:6379/0"


@pytest.mark.parametrize("host, url", [
    ("redis.example.com", "rediss://airflow@redis.example.com:6379/0?ssl_cert_reqs=required"
                          "&ssl_ca_certs=/etc/pki/tls/certs/ca-bundle.crt&ssl_check_hostname=true"),
    ("10.0.0.5", "rediss://airflow@10.0.0.5:6379/0?ssl_cert_reqs=required"
                 "&ssl_ca_certs=/etc/pki/tls/certs/ca-bundle.crt&ssl_check_hostname=true"),
    ("::1", "redis://airflow@[::1]:6379/0"),
    ("localhost", "redis://airflow@localhost:6379/0"),
])
def test_a_broker_on_another_host_is_verified_by_default(example_data, host, url):
    import copy

    data = copy.deepcopy(example_data)
    data["broker"]["host"] = host
    site = site_from_data(data)
    assert (site.broker_url, site.result_backend) == (url, url)
    # A local broker over TLS, with the site's own CA ('+' would read as a space in a query).
    data["broker"].update(host="localhost", tls=True, ca_file="/etc/pki/tls/certs/redis+ca.pem", user="af.prod")
    assert site_from_data(data).broker_url == (
        "rediss://af.prod@localhost:6379/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/pki/tls/certs/redis%2Bca.pem"
        "&ssl_check_hostname=true")


@pytest.mark.parametrize("host, sslmode", [("db.example.com", "verify-full"), ("10.0.0.5", "verify-full"),
                                           ("localhost", "prefer"), ("127.0.0.1", "prefer"), ("::1", "prefer")])
def test_a_database_on_another_host_is_verified_by_default(example_data, host, sslmode):
    import copy

    data = copy.deepcopy(example_data)
    data["database"]["host"] = host
    db = site_from_data(data).database
    assert (db.sslmode, db.ca_file) == (sslmode, "/etc/pki/tls/certs/ca-bundle.crt")
    data["database"].update(sslmode="require", ca_file="/etc/pki/tls/certs/db-ca.pem")
    db = site_from_data(data).database
    assert (db.sslmode, db.ca_file) == ("require", "/etc/pki/tls/certs/db-ca.pem")


def test_retention_and_metrics_values_are_checked_and_sized(data):
    from builder.site.sections import Retention

    assert Retention().logs_max_bytes is None
    assert Retention(logs_max_size="20G").logs_max_bytes == 20 * 1024 ** 3
    assert Retention(logs_max_size="512").logs_max_bytes == 512
    data["retention"] = {"database_days": -1, "database_batch_size": 0, "logs_max_size": "20 GB"}
    data["metrics"] = {"statsd_host": "metrics.bigdata.local", "prefix": "bad prefix;"}
    with pytest.raises(SiteError) as err:
        site_from_data(data, "site.toml")
    text = str(err.value)
    assert "retention.database_days = -1: Input should be greater than or equal to 0" in text
    assert "retention.database_batch_size = 0: Input should be greater than or equal to 1" in text
    assert "retention.logs_max_size = '20 GB': must be a size in bytes with K, M, G or T (e.g. 20G)" in text
    assert "metrics.prefix = 'bad prefix;': must be words of letters, digits and '_' joined by '.'" in text
