"""Hostile site values, by property: every string a site file can hold either is refused
by `bundle check` (exit 2, one line per problem naming the key, the value escaped) or
reaches every rendered file without changing what its reader sees.

Run longer:  HYPOTHESIS_PROFILE=long scripts/test tests/test_hostile_values.py
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import os
import re
import tempfile
import tomllib
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from builder import layout
from support import readers
from builder.cli import main as cli
from builder.errors import SiteError
from builder.render import render_site
from builder.render.units import unit_specs
from builder.site import Site, site_from_data
from support.sites import example_data, to_toml

settings.register_profile("suite", max_examples=1500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("long", max_examples=20_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "suite")

EXAMPLE_DATA = example_data()
TOP_KEYS = tuple(Site.model_fields)

# Pieces that mean something to sh, systemd, rpm, configparser, Airflow, XML or Python.
ATOMS = [
    "\n", "\r", "\r\n", "\x00", "\t", "\x7f", "\x1b[31m", "'", '"', "\\", "\\\n", "$(touch /tmp/pwned)",
    "`id`", "$VAR", "$HOME", "${AIRFLOW__API__SECRET_KEY}", "$", "%(x)s", "%(dags_folder)s", "%{x}",
    "%{lua:os.exit(1)}", "%(echo hi)", "%H", "%%", "%", "~", "~root", "\u2028", "\u2029", "\u0085",
    "\u202e", "\ufeff", "é", "Ω", "\U0001f600", " ", "  ", "#", ";", "=", "[", "]", "[core]", "{", "}",
    "--", "<", ">", "&", "<!--", "]]>", "*", "?", ",", ":", "@", "/", "..", "//", "-", "\\x41",
    "User=root", "\nUser=root", "a" * 300,
]
# Half the draws keep to printable text, which free-text fields accept: those must then
# reach every file literally (the other half exercises refusals and their messages).
PRINTABLE = [a for a in ATOMS if all(unicodedata.category(c)[0] not in "CZ" or c == " " for c in a)]
hostile_text = st.one_of(
    st.lists(st.one_of(st.sampled_from(ATOMS), st.text(max_size=4)), min_size=1, max_size=5).map("".join),
    st.lists(st.sampled_from(PRINTABLE), min_size=1, max_size=6).map("".join),
)


def _put(path: str) -> Callable[[dict, str], None]:
    """Set one string in the site data: 'a.b.0.c' walks dicts and lists."""
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]

    def apply(data: dict, value: str) -> None:
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {}) if isinstance(p, str) else node[p]
        node[parts[-1]] = value
    return apply


def _rename(path: str, old: str) -> Callable[[dict, str], None]:
    """Put the value in as a *key* of a table, replacing `old`."""
    def apply(data: dict, value: str) -> None:
        node = data
        for p in path.split("."):
            node = node.setdefault(p, {})
        node[value] = node.pop(old) if old in node else "x"
    return apply


def _api_host(data: dict, value: str) -> None:
    data["api"]["host"] = value
    data["tls"]["dns_names"] = [value, *data["tls"]["dns_names"]]


STRING_FIELDS: dict[str, Callable[[dict, str], None]] = {
    p: _put(p) for p in (
        "site.name", "site.description", "airflow.version", "airflow.extras.0", "airflow.providers.0",
        "airflow.constraints", "target.python", "paths.home", "paths.config", "paths.venv", "paths.dags",
        "paths.logs", "paths.plugins", "paths.security", "paths.run", "hosts.0.name", "database.host",
        "database.name", "database.user", "broker.host", "broker.user", "broker.ca_file",
        "broker.plaintext_reason", "core.default_timezone", "api.bind",
        "api.instance_name", "tls.common_name", "tls.organization", "tls.country", "tls.dns_names.1",
        "tls.ip_addresses.0", "tls.cert", "tls.key", "tls.ca", "ldap.url", "ldap.ca_file", "ldap.search_base",
        "ldap.search_filter", "ldap.bind_dn", "ldap.uid_field", "ldap.group_field", "ldap.firstname_field",
        "ldap.lastname_field", "ldap.email_field", "ldap.registration_role",
        "ldap.role_mapping.CN=Domain Users,CN=Users,DC=bigdata,DC=local.0", "kerberos.principal",
        "kerberos.keytab", "kerberos.ccache", "kerberos.krb5_conf", "celery.queues.0",
        "environment.HADOOP_CONF_DIR", "airflow_cfg.logging.log_format", "airflow_cfg.webserver.x",
        "publish.gpg_key", "publish.gpg_home", "target.builder_image",
    )
} | {
    "api.host": _api_host,
    "environment (name)": _rename("environment", "YARN_CONF_DIR"),
    "airflow_cfg (section)": lambda d, v: d.setdefault("airflow_cfg", {}).__setitem__(v, {"x": "1"}),
    "airflow_cfg (option)": lambda d, v: d.setdefault("airflow_cfg", {}).setdefault("core", {}).__setitem__(v, "1"),
    "ldap.role_mapping (group DN)": _rename("ldap.role_mapping", "CN=Domain Users,CN=Users,DC=bigdata,DC=local"),
    # Issue 13: worker sets and the migration host (the example's one host runs every role).
    "worker_sets.0.name": lambda d, v: d.__setitem__(
        "worker_sets", [{"name": v, "queues": ["default"], "hosts": [d["hosts"][0]["name"]]}]),
    "worker_sets.0.queues.0": lambda d, v: d.__setitem__(
        "worker_sets", [{"name": "etl", "queues": ["default", v], "hosts": [d["hosts"][0]["name"]]}]),
    "worker_sets.0.hosts.0": lambda d, v: d.__setitem__(
        "worker_sets", [{"name": "etl", "queues": ["default"], "hosts": [v]}]),
    "database.migrate_host": _put("database.migrate_host"),
    # Every api-server host must be in the certificate (issue 13): rename it there too.
    "hosts.0.name": lambda d, v: (d["hosts"][0].__setitem__("name", v), d["tls"]["dns_names"].append(v)),
}


def _original(field: str) -> str:
    node: object = EXAMPLE_DATA
    for p in re.sub(r" \(.*\)$", "", field).split("."):
        if isinstance(node, dict) and p in node:
            node = node[p]
        elif isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
        else:
            return ""
    return node if isinstance(node, str) else ""


@st.composite
def hostile_site(draw) -> tuple[str, dict, str]:
    """(field, mutated site data, value): a hostile string alone, or spliced into the valid value."""
    field = draw(st.sampled_from(sorted(STRING_FIELDS)))
    hostile = draw(hostile_text)
    base = _original(field)
    at = draw(st.integers(0, len(base)))
    value = draw(st.sampled_from([hostile, base + hostile, hostile + base, base[:at] + hostile + base[at:]]))
    data = copy.deepcopy(EXAMPLE_DATA)
    STRING_FIELDS[field](data, value)
    return field, data, value


# --- the two outcomes ---------------------------------------------------------------------

def assert_refused_clearly(data: dict, workdir: Path) -> None:
    site_toml = workdir / "site.toml"
    site_toml.write_text(to_toml(data), encoding="utf-8")
    assert tomllib.loads(site_toml.read_text(encoding="utf-8")) == data  # the file says what we drew
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit:
        cli(["check", "--site", str(site_toml)])  # the CLI in-process, exactly as `bundle` runs it
    text = err.getvalue()
    assert exit.value.code == 2 and out.getvalue() == "", f"exit {exit.value.code}:\n{out.getvalue()}{text}"
    lines = text.rstrip("\n").split("\n")
    head = re.fullmatch(rf"error: {re.escape(str(site_toml))}: (\d+) problems?", lines[0])
    assert head, text
    problems = lines[1:]
    assert len(problems) == int(head.group(1)), text
    for line in problems:
        assert line.startswith("  - "), line
        key = line[4:]
        assert key.startswith(TOP_KEYS) or key.startswith(tuple(f'"{k}' for k in TOP_KEYS)), line
    # Control characters never reach the terminal raw: values are shown escaped.
    assert not any(ord(c) < 0x20 and c != "\n" or c in "\u2028\u2029\u0085\x7f" for c in text), text


# A benign value for fields the example does not set, so that the control render has
# the same shape (a worker set, a migrate host) as the hostile one.
BENIGN = {
    "worker_sets.0.name": "etl", "worker_sets.0.queues.0": "etl",
    "worker_sets.0.hosts.0": EXAMPLE_DATA["hosts"][0]["name"],
    "database.migrate_host": EXAMPLE_DATA["hosts"][0]["name"],
    # A broker on another host: no local redis.service drop-in, as with any hostile name.
    "broker.host": "redis.example.com",
}


@functools.cache
def control(field: str, local_broker: bool = False) -> dict[str, str]:
    """Files of the example with `field` holding a benign value: what the structure must stay.
    A broker host on this host (loopback, its own name) brings the redis.service drop-in."""
    data = copy.deepcopy(EXAMPLE_DATA)
    if field in BENIGN and not (field == "broker.host" and local_broker):
        STRING_FIELDS[field](data, BENIGN[field])
    return {_kind(f.dest, site): f.text for site in [site_from_data(data)] for f in render_site(site).files}


def _kind(dest: str, site: Site) -> str:
    """A file's place with the parts that follow site values (config dir, set names) generic."""
    dest = dest.replace(site.paths.config + "/", "/etc/airflow/", 1)
    for ws in site.worker_sets:
        dest = re.sub(rf"-{re.escape(ws.name)}(\.service|\.preset)$", r"-<set>\1", dest)
    return dest


def assert_every_reader_sees_the_intent(site: Site, workdir: Path, field: str = "") -> None:
    files = {f.dest: f.text for f in render_site(site).files}
    kinds = {_kind(dest, site): text for dest, text in files.items()}
    reference = control(field, site.broker_is_local)
    assert sorted(kinds) == sorted(reference)  # the same files
    cfg_path = f"{site.paths.config}/airflow.cfg"
    assert readers.airflow_cfg_reads(files[cfg_path]) == readers.airflow_cfg_intent(site)
    for unit in unit_specs(site):
        dest = f"/usr/lib/systemd/system/{unit.name}"
        assert readers.unit_keys(files[dest]) == readers.unit_keys(reference[_kind(dest, site)])
        assert readers.unit_meaning(files[dest]) == readers.unit_intent(site, unit)
    sysconfig = workdir / "sysconfig"
    sysconfig.write_text(files["/etc/sysconfig/airflow"], encoding="utf-8")
    wrapper = readers.wrapper_namespace(files["/usr/bin/airflow"])
    intent = readers.sysconfig_intent(site)
    assert wrapper["read_env_file"](str(sysconfig)) == intent
    canaries = workdir / "canaries"
    canaries.mkdir(exist_ok=True)
    assert readers.sh_reads(sysconfig, canaries) == intent
    assert readers.ast_shape(files["/usr/bin/airflow"]) == readers.ast_shape(reference["/usr/bin/airflow"])
    assert (wrapper["SYSCONFIG"], wrapper["HOME"]) == ("/etc/sysconfig/airflow", site.paths.home)
    assert [row[1] for row in readers.config_fields(files["/usr/lib/tmpfiles.d/airflow-prod.conf"])] == \
        readers.tmpfiles_intent(site)
    users = readers.config_fields(files[layout.SYSUSERS])
    assert [len(r) for r in users] == [3, 6, 6] and users[1][4] == users[2][4] == site.paths.home
    webserver = files[f"{site.paths.config}/webserver_config.py"]
    assert readers.ast_shape(webserver) == readers.ast_shape(reference["/etc/airflow/webserver_config.py"])
    assigned = readers.py_assignments(webserver)
    ldap = site.ldap
    assert ldap is not None
    assert (assigned["AUTH_LDAP_SERVER"], assigned["AUTH_LDAP_SEARCH"], assigned["AUTH_LDAP_BIND_USER"],
            assigned["AUTH_LDAP_SEARCH_FILTER"], assigned["AUTH_ROLES_MAPPING"]) == (
        ldap.url, ldap.search_base, ldap.bind_dn, ldap.search_filter,
        {k: list(v) for k, v in ldap.role_mapping.items()})
    for dest, text in files.items():
        if dest.endswith(".xml"):
            assert readers.xml_shape(text) == readers.xml_shape(reference[dest])


@settings(settings.get_profile(PROFILE))
@given(case=hostile_site())
def test_hostile_value_is_refused_or_harmless(case):
    field, data, value = case
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        try:
            site = site_from_data(copy.deepcopy(data))
        except SiteError:
            event("refused")
            assert_refused_clearly(data, workdir)
            return
        event("accepted")
        event(f"accepted: {field}")
        assert_every_reader_sees_the_intent(site, workdir, field)


# The hostile values of issue 8, each once, with the outcome they must have now.
REFUSED = [
    ("paths.config", "/etc/$(touch /tmp/x)"), ("paths.home", "/opt/air flow"), ("paths.home", '/opt/"x'),
    ("paths.logs", "/opt/%(echo hi)"), ("paths.plugins", "/opt/%{lua:os.exit(1)}"),
    ("paths.dags", "/opt/airflow/dags\nUser=root"), ("environment (name)", "FOO\n"),
    ("environment.HADOOP_CONF_DIR", "a\x00b"), ("database.host", "db.example.com\n"),
    ("api.bind", "fe80::1%anything"), ("api.instance_name", "${AIRFLOW__API__SECRET_KEY}"),
    ("database.user", "a$PGPASSWORD"), ("paths.home", "/opt/%(dags_folder)s"), ("paths.home", "/opt/a\x00"),
    ("paths.home", "/opt/" + "a" * 300), ("paths.config", "/etc/sysconfig/airflow"),
    ("environment (name)", "AIRFLOW_HOME"), ("environment (name)", "LD_PRELOAD"),
    ("environment (name)", "PGPASSWORD"), ("paths.dags", "/etc"), ("paths.home", "/root"),
    ("site.name", "bigdata\n"), ("airflow.version", "3.1.4\n"), ("airflow_cfg (section)", "core]"),
    ("kerberos.ccache", "/"), ("paths.home", "/"), ("airflow_cfg (option)", "a=b"), ("airflow_cfg (option)", "a:b"), ("airflow_cfg.webserver.x", "a\nb"),
]
ACCEPTED = [
    ("airflow_cfg.logging.log_format", "[%(asctime)s] %(levelname)s - %(message)s"),
    ("api.instance_name", "Prod 100% \"quoted\" 'single' `tick` \\ back\\ $ 5$ a~b"),
    ("environment.HADOOP_CONF_DIR", "it's \"$(touch /tmp/x)\" `id` $HOME \\ trailing\\"),
    ("site.description", "%{lua:os.exit(1)} %(touch /tmp/x) 100%"),
    ("ldap.search_filter", "(&(objectClass=user)(cn=*\\2a*)) \"quoted\" %(x)s"),
    ("tls.organization", "Ünïcødé & <Co> -- \"Ltd\""),
    ("paths.home", "/srv/air-flow_2.0+x@y"),
    ("database.host", "2001:db8::5"),
    ("api.host", "2001:db8::7"),
]


@pytest.mark.parametrize("field,value", REFUSED, ids=[f"{f}={v!r}"[:60] for f, v in REFUSED])
def test_issue_values_are_refused(field, value, tmp_path):
    data = copy.deepcopy(EXAMPLE_DATA)
    STRING_FIELDS[field](data, value)
    with pytest.raises(SiteError):
        site_from_data(copy.deepcopy(data))
    assert_refused_clearly(data, tmp_path)


@pytest.mark.parametrize("field,value", ACCEPTED, ids=[f"{f}={v!r}"[:60] for f, v in ACCEPTED])
def test_meaningful_characters_are_written_literally(field, value, tmp_path):
    data = copy.deepcopy(EXAMPLE_DATA)
    STRING_FIELDS[field](data, value)
    if field == "api.host":  # an IP address is an iPAddress SAN
        data["tls"]["dns_names"] = data["tls"]["dns_names"][1:]
        data["tls"]["ip_addresses"].append(value)
    site = site_from_data(data)
    assert_every_reader_sees_the_intent(site, tmp_path, field)


def test_ipv6_hosts_are_bracketed_in_urls():
    data = copy.deepcopy(EXAMPLE_DATA)
    data["database"]["host"] = "2001:db8::5"
    data["broker"]["host"] = "2001:db8::6"
    data["api"]["host"] = "2001:0db8::7"
    data["tls"]["ip_addresses"].append("2001:db8::7")
    site = site_from_data(data)
    assert site.base_url == "https://[2001:db8::7]:8080"
    assert site.sql_alchemy_conn == "postgresql+psycopg2://airflow@[2001:db8::5]:5432/airflow"
    assert site.broker_url == ("rediss://airflow@[2001:db8::6]:6379/0?ssl_cert_reqs=required"
                               "&ssl_ca_certs=/etc/pki/tls/certs/ca-bundle.crt&ssl_check_hostname=true")
