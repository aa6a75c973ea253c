"""The site model: valid sites, derived values, and every kind of bad input."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from builder.errors import SiteError
from builder.site import load_site, parse_site, site_from_data
from conftest import EXAMPLE, minimal_data


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
    assert s.result_backend == "db+postgresql://airflow@utility1.my.bigdata.local:5432/airflow"
    assert s.broker_url == "redis://localhost:6379/0"
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


def test_model_is_frozen(example_site):
    with pytest.raises(Exception):
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
    ("os", _set("target.os", "el8"), r"target\.os = 'el8': must be one of 'el9' or 'debian12'"),
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
    ("tls-mode", _set("tls.mode", "acme"), r"tls\.mode = 'acme': must be one of 'csr', 'self-signed' or 'provided'"),
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
    ("env-quote", _set("environment.HADOOP_CONF_DIR", "it's"), r"environment\.HADOOP_CONF_DIR = \"it's\": must not contain a single quote"),
    # cross-field rules
    ("role-on-no-host", _roles("api-server", "scheduler", "kerberos"), r"hosts: no host runs dag-processor, triggerer, celery-worker: a CeleryExecutor deployment needs"),
    ("host-twice", lambda d: d["hosts"].append(dict(d["hosts"][0])), r"hosts: host 'airflow\.my\.bigdata\.local' is listed twice"),
    ("kerberos-no-role", _roles(*ALL_BUT_KRB), r"hosts: \[kerberos\] is configured but no host runs the kerberos role"),
    ("role-no-kerberos", _del("kerberos"), r"kerberos: a host runs the kerberos role: add \[kerberos\] with principal"),
    ("san-missing", _set("tls.dns_names", ["airflow"]), r"tls\.dns_names: base_url host 'airflow\.my\.bigdata\.local' \(api\.host\) is not in the certificate's subjectAltNames"),
    ("api-host-not-in-san", _set("api.host", "gateway1.my.bigdata.local"), r"tls\.dns_names: base_url host 'gateway1\.my\.bigdata\.local'"),
    ("workers", _set("api.workers", 4), r"api\.workers: 4: Airflow 3\.1\.4's api-server loses extra uvicorn workers"),
    ("ldaps-no-ca", lambda d: (d["ldap"].update(url="ldaps://dc.bigdata.local:636", starttls=False), d["ldap"].pop("ca_file")), r"ldap\.ca_file: LDAPS and StartTLS need the CA file"),
    ("starttls-no-ca", _del("ldap.ca_file"), r"ldap\.ca_file: LDAPS and StartTLS need the CA file"),
    ("starttls-ldaps", _set("ldap.url", "ldaps://dc.bigdata.local:636"), r"ldap\.starttls: StartTLS cannot be used with an ldaps:// URL"),
    ("ldap-no-fab", _set("airflow.providers", []), r"airflow\.providers: LDAP login needs 'apache-airflow-providers-fab'"),
    ("ccache-tmp", _set("kerberos.ccache", "/tmp/airflow_krb5_ccache"), r"kerberos\.ccache: '/tmp/airflow_krb5_ccache' is under a private /tmp"),
    ("override-secret", _set("airflow_cfg", {"core": {"fernet_key": "abc"}}), r"airflow_cfg\.core\.fernet_key: secrets never go into airflow\.cfg"),
    ("override-derived", _set("airflow_cfg", {"core": {"execution_api_server_url": "https://x/execution/"}}), r"airflow_cfg\.core\.execution_api_server_url: derived from api\.host / api\.port; set that instead"),
    ("override-nested-table", _set("airflow_cfg", {"core": {"x": {"y": 1}}}), r"airflow_cfg\.core\.x"),
]


@pytest.mark.parametrize("mutate,expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(data, mutate, expected):
    mutate(data)
    with pytest.raises(SiteError) as err:
        site_from_data(data, "site.toml")
    text = str(err.value)
    assert text.startswith("site.toml: ")
    assert re.search(expected, text), f"{expected!r} not in:\n{text}"
    assert "Traceback" not in text


def test_bad_cases_are_many():
    assert len(BAD) >= 40


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
