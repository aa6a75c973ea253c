"""Issue 13 without booting anything: one site file for a cluster (examples/cluster.toml).

Per-host packages, worker sets, migrations on one host, the schema wait, HA api names,
and the shared-secrets check run for real (check-node as rendered, in a subprocess).
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from builder.errors import SiteError, UsageError
from builder.fingerprint import estimated_bits, fingerprint, site_fingerprints
from builder.render import render_site
from builder.layout import CHECK_NODE, ROLE_ENV, UNIT_DIR
from builder.render.units import unit_specs
from builder.rpm import plan as P
from builder.material.secrets import generate_values, write_secrets
from builder.site.secrets import BROKER_PASSWORD, JWT_SECRET
from builder.site import load_site, site_from_data
from builder.check.units import security_scores, verify_units
from support.sites import REPO

CLUSTER = REPO / "examples" / "cluster.toml"
A, B, C, D = (f"af-{x}.my.bigdata.local" for x in "abcd")


@pytest.fixture(scope="module")
def site():
    return load_site(CLUSTER)


@pytest.fixture
def cdata() -> dict:
    return copy.deepcopy(tomllib.loads(CLUSTER.read_text()))


@pytest.fixture(scope="module")
def files(site) -> dict[str, str]:
    return {f.dest: f.text for f in render_site(site).files}


def _units(site, name):
    return [u.name for u in render_site(site).units_of(name)]


# --- the site model ------------------------------------------------------------------------


def test_each_host_runs_exactly_its_units(site):
    assert _units(site, A) == ["airflow-api-server.service", "airflow-scheduler.service",
                               "airflow-dag-processor.service", "airflow-triggerer.service",
                               "airflow-kerberos.service", "airflow-db-migrate.service",
                               "airflow-db-clean.service", "airflow-log-groom.service"]
    # Database retention once per site (with the migration), log retention on every host.
    groom = "airflow-log-groom.service"
    assert _units(site, B) == ["airflow-api-server.service", "airflow-scheduler.service", groom]
    # The Kerberos renewer comes with tasks and the triggerer (A, C, D), not with B.
    assert _units(site, C) == ["airflow-celery-worker-etl.service", "airflow-kerberos.service", groom]
    assert _units(site, D) == ["airflow-celery-worker-ml.service", "airflow-kerberos.service", groom]


def test_migrations_default_to_the_first_scheduler_host(cdata):
    del cdata["database"]["migrate_host"]
    cdata["hosts"][0], cdata["hosts"][1] = cdata["hosts"][1], cdata["hosts"][0]
    s = site_from_data(cdata)
    assert s.database.migrate_host == B
    assert [h.name for h in s.hosts if "airflow-db-migrate.service" in _units(s, h.name)] == [B]


def test_one_api_name_covers_every_api_server_host(site):
    assert site.tls.dns_names == ("airflow.my.bigdata.local", A, B)
    assert site.execution_api_server_url == "https://airflow.my.bigdata.local:8080/execution/"


def _bad(mutate, expected, cdata):
    mutate(cdata)
    with pytest.raises(SiteError) as err:
        site_from_data(cdata, "site.toml")
    assert re.search(expected, str(err.value)), str(err.value)


def _ws(i, **kw):
    def apply(d):
        d["worker_sets"][i].update(kw)
    return apply


BAD = [
    ("set-host-unknown", _ws(0, hosts=["af-x.my.bigdata.local"]), r"worker_sets\[0\]\.hosts\[0\]: 'af-x\.my\.bigdata\.local' is not one of \[\[hosts\]\]"),
    ("set-host-no-role", _ws(0, hosts=[A]), r"worker_sets\[0\]\.hosts\[0\]: 'af-a\.my\.bigdata\.local' does not have the celery-worker role"),
    ("host-in-two-sets", _ws(1, hosts=[D, C]), r"worker_sets\[1\]\.hosts\[1\]: 'af-c\.my\.bigdata\.local' is also in worker set 'etl': one set per host"),
    ("worker-in-no-set", _ws(1, hosts=[C], name="ml"), r"worker_sets\[1\]\.hosts\[0\]: .*is also in worker set"),
    ("set-twice", _ws(1, name="etl"), r"worker_sets\[1\]\.name: worker set 'etl' is listed twice"),
    ("set-name-upper", _ws(0, name="ETL"), r"worker_sets\[0\]\.name = 'ETL': must be 1-32 characters of lower-case"),
    ("set-name-newline", _ws(0, name="etl\n"), r"worker_sets\[0\]\.name = 'etl\\n': must be 1-32"),
    ("set-name-percent", _ws(0, name="e%h"), r"worker_sets\[0\]\.name = 'e%h': must be 1-32"),
    ("set-queue-space", _ws(0, queues=["de fault"]), r"worker_sets\[0\]\.queues\[0\] = 'de fault': must be a Celery queue name"),
    ("set-host-bad", _ws(0, hosts=["af c"]), r"worker_sets\[0\]\.hosts\[0\] = 'af c': not a valid host name"),
    ("default-queue-unserved", _ws(0, queues=["etl"]), r"worker_sets: no worker set consumes 'default', the default queue"),
    ("migrate-unknown", lambda d: d["database"].update(migrate_host="x.example.com"), r"database\.migrate_host: 'x\.example\.com' is not one of \[\[hosts\]\]"),
    ("migrate-on-worker", lambda d: d["database"].update(migrate_host=C), r"database\.migrate_host: 'af-c\.my\.bigdata\.local' runs neither scheduler nor api-server"),
    ("api-host-not-in-san", lambda d: d.setdefault("tls", {}).update(dns_names=["airflow.my.bigdata.local", A]), r"tls\.dns_names: api-server host 'af-b\.my\.bigdata\.local' is not in the certificate's subjectAltNames"),
]


@pytest.mark.parametrize("mutate,expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_cluster(cdata, mutate, expected):
    _bad(mutate, expected, cdata)


def test_a_worker_host_outside_every_set_is_refused(cdata):
    cdata["hosts"].append({"name": "af-e.my.bigdata.local", "roles": ["celery-worker"]})
    _bad(lambda d: None, r"worker_sets: host 'af-e\.my\.bigdata\.local' has the celery-worker role but is in no worker set", cdata)


# --- units ---------------------------------------------------------------------------------


def _exec(unit: str, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", unit, re.M)


def test_one_unit_per_worker_set_with_its_queues_and_concurrency(files):
    etl = files[f"{UNIT_DIR}/airflow-celery-worker-etl.service"]
    ml = files[f"{UNIT_DIR}/airflow-celery-worker-ml.service"]
    # No --celery-hostname (Airflow's pre-check of it hangs prefork children: units.py);
    # Celery's node name celery@<host FQDN> is unique, as a host is in one set only.
    assert _exec(etl, "ExecStart") == [
        "/opt/airflow/venv/bin/airflow celery worker --queues default --concurrency 8"]
    assert _exec(ml, "ExecStart") == [
        "/opt/airflow/venv/bin/airflow celery worker --queues ml --concurrency 2"]
    assert "KillMode=mixed" in ml and "TimeoutStopSec=600" in ml  # warm shutdown: running tasks finish
    assert f"{UNIT_DIR}/airflow-celery-worker.service" not in files
    # One firewalld service for the workers' log server, whatever the number of sets.
    assert [f for f in files if "worker-logs" in f] == ["/usr/lib/firewalld/services/airflow-worker-logs.xml"]


def test_migration_unit_runs_once_before_scheduler_and_api_server(files, site):
    mig = files[f"{UNIT_DIR}/airflow-db-migrate.service"]
    assert "Type=oneshot" in mig and "RemainAfterExit=yes" in mig
    assert _exec(mig, "ExecStart") == ["/opt/airflow/venv/bin/airflow db migrate"]
    before = _exec(mig, "Before")[0].split()
    assert {"airflow-scheduler.service", "airflow-api-server.service"} <= set(before)
    for role in ("scheduler", "api-server"):
        assert "airflow-db-migrate.service" in _exec(files[f"{UNIT_DIR}/airflow-{role}.service"], "After")[0].split()
    assert "WantedBy=airflow.target" in mig and "PartOf=airflow.target" in mig


def test_every_component_waits_for_the_schema_and_checks_the_node(files):
    for name, text in files.items():
        if not name.startswith(UNIT_DIR) or not name.endswith(".service") or "-ccache." in name:
            continue  # (the ccache copy runs no Airflow: test_render_intent.py)
        first, *pre = _exec(text, "ExecStartPre")
        assert first.startswith(f"+{ROLE_ENV} "), name  # the role's share of the secrets, as root
        wait = "/opt/airflow/venv/bin/airflow db check-migrations --migration-wait-timeout 600"
        if "kerberos" in name:
            assert pre == [wait], name  # it reads the database at start, signs nothing
            continue
        if "log-groom" in name:
            assert pre == [], name  # files only: no secrets to check, no database
            continue
        if "db-clean" in name:
            # Its own secrets; no wait: on a schema behind its venv it fails, and doctor says so.
            assert pre == [f"{CHECK_NODE} --role db-clean"], name
            continue
        assert pre[0].startswith(CHECK_NODE), name
        if "migrate" in name:
            # the backup before a migration to another release (docs/upgrades.md)
            assert pre == [f"{CHECK_NODE} --role db-migrate", "/usr/libexec/airflow-prod/db-backup"], name
            continue
        if "celery-worker" in name:
            assert pre == [pre[0]], name  # it never opens the metadata database (docs/security.md)
            continue
        assert pre[1] == wait, name
        # systemd must not give up before the wait does.
        assert int(_exec(text, "TimeoutStartSec")[0]) > 600, name
        assert (" --dags" in pre[0]) == ("api-server" not in name), name


def test_systemd_accepts_the_cluster_units(site):
    units = verify_units(site, render_site(site).files)
    assert {"airflow-celery-worker-etl.service", "airflow-celery-worker-ml.service",
            "airflow-db-migrate.service"} <= set(units)
    for score in security_scores(render_site(site).files):
        assert score.exposure <= (1.9 if "celery-worker" in score.unit else 1.5), score


# --- packages ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec_plan(site):
    inputs = P.SiteInputs(wheelhouse_evr="3.1.4-1.el9", venv_kb=1024)
    return P.site_plan(site, render_site(site), inputs, 1_700_000_000, "#!/bin/sh\n")


def test_a_host_package_per_host_requires_exactly_its_packages(spec_plan):
    pkgs = {p.name: p for p in spec_plan.packages}
    req = lambda host: sorted(r.split(" =")[0] for r in pkgs[P.host_package_name(host)].requires)  # noqa: E731
    assert req(A) == sorted(["airflow-prod-api-server", "airflow-prod-scheduler", "airflow-prod-dag-processor",
                             "airflow-prod-triggerer", "airflow-prod-kerberos", "airflow-prod-db-migrate",
                             "airflow-prod-db-clean", "airflow-prod-log-groom"])
    groom = "airflow-prod-log-groom"
    assert req(B) == ["airflow-prod-api-server", groom, "airflow-prod-scheduler"]
    assert req(C) == ["airflow-prod-celery-worker", "airflow-prod-celery-worker-etl", "airflow-prod-kerberos", groom]
    assert req(D) == ["airflow-prod-celery-worker", "airflow-prod-celery-worker-ml", "airflow-prod-kerberos", groom]
    assert all(r.endswith("= %{version}-%{release}") for p in pkgs.values() if "-host-" in p.name for r in p.requires)
    # Only A's host package brings the migration unit.
    assert [n for n, p in pkgs.items() if any(r.startswith("airflow-prod-db-migrate ") for r in p.requires)] == [
        P.host_package_name(A)]
    # A worker set's package ships its unit and preset; the role package the shared firewalld file.
    etl = pkgs["airflow-prod-celery-worker-etl"]
    assert sorted(e.dest for e in etl.entries) == [
        "/usr/lib/systemd/system-preset/80-airflow-prod-celery-worker-etl.preset",
        f"{UNIT_DIR}/airflow-celery-worker-etl.service"]
    assert "airflow-prod-celery-worker = %{version}-%{release}" in etl.requires
    # ... and, with Kerberos, the pair that copies the renewer's ticket for the tasks.
    assert [e.dest for e in pkgs["airflow-prod-celery-worker"].entries] == [
        "/usr/lib/firewalld/services/airflow-worker-logs.xml",
        f"{UNIT_DIR}/airflow-worker-ccache.path", f"{UNIT_DIR}/airflow-worker-ccache.service"]


def test_no_scriptlet_migrates_the_database(spec_plan, site):
    for pkg in spec_plan.packages:
        for section, body in pkg.scripts:
            assert "db migrate" not in body and "db upgrade" not in body, (pkg.name, section)
    # The single-host example too: its migration is a unit, started with airflow.target.
    example = load_site(REPO / "examples" / "site.toml")
    assert [u.name for u in unit_specs(example) if u.role == "db-migrate"] == ["airflow-db-migrate.service"]


# --- shared secrets ------------------------------------------------------------------------


@pytest.fixture
def secrets_file(site, tmp_path) -> Path:
    return write_secrets(site, tmp_path / "cfg" / "site.secrets.env")


def _check_node(site, fingerprints, tmp_path, env, *args) -> subprocess.CompletedProcess:
    """The rendered check-node, pointed at files under tmp_path, run as a real process."""
    files = {f.dest: f.text for f in render_site(site, fingerprints).files}
    fp = tmp_path / "secrets.fingerprint"
    if fingerprints:
        fp.write_text(files["/etc/airflow/secrets.fingerprint"])
    script = tmp_path / "check-node"
    text = files[CHECK_NODE].replace('"/etc/airflow/secrets.fingerprint"', f'"{fp}"')
    text = text.replace('DAGS = "/opt/airflow/dags"', f'DAGS = "{tmp_path / "dags"}"')
    script.write_text(text)
    return subprocess.run([sys.executable, "-I", str(script), *args], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], **env})


def _env(path: Path) -> dict[str, str]:
    from builder.fingerprint import read_env_values
    return {k: v for k, v in read_env_values(path).items() if k.startswith("AIRFLOW__")}


def _node_env(site, path: Path, broker_password: str | None = None) -> dict[str, str]:
    """What a unit gets: the secrets, and the broker password only inside the broker URL
    (as role-env composes it)."""
    from urllib.parse import quote

    from builder.fingerprint import read_env_values
    password = broker_password or read_env_values(path)[BROKER_PASSWORD.name]
    url = site.broker_url.replace("@", ":" + quote(password, safe="") + "@", 1)
    return _env(path) | {"AIRFLOW__CELERY__BROKER_URL": url}


def test_fingerprints_hold_no_secret_and_match_on_a_good_node(site, secrets_file, tmp_path):
    from builder.fingerprint import read_env_values

    fps = site_fingerprints(site, secrets_file)
    values = {k: v for k, v in read_env_values(secrets_file).items() if k in fps}
    assert set(fps) == set(values) == {"AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY",
                                       "AIRFLOW__API_AUTH__JWT_SECRET", BROKER_PASSWORD.name}
    text = {f.dest: f.text for f in render_site(site, fps).files}["/etc/airflow/secrets.fingerprint"]
    for v in values.values():
        assert v not in text and v[:12] not in text
    assert all(estimated_bits(v) >= 128 for v in values.values())
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "x.py").write_text("")
    proc = _check_node(site, fps, tmp_path, _node_env(site, secrets_file), "--dags")
    assert (proc.returncode, proc.stderr) == (0, "")


def test_a_node_with_another_broker_password_refuses_to_start(site, secrets_file, tmp_path):
    """check-node reads the broker password out of the URL role-env composed (the units get
    it nowhere else) and compares it with the site's fingerprint."""
    fps = site_fingerprints(site, secrets_file)
    env = _node_env(site, secrets_file, broker_password="an@other:password/" + "x" * 40)
    proc = _check_node(site, fps, tmp_path, env, "--role", "celery-worker")
    assert proc.returncode == 1
    assert f"AIRFLOW_BROKER_PASSWORD differs from this site's (its fingerprint does not match {tmp_path}" in proc.stderr
    env.pop("AIRFLOW__CELERY__BROKER_URL")
    proc = _check_node(site, fps, tmp_path, env, "--role", "celery-worker")
    assert "AIRFLOW_BROKER_PASSWORD is missing or still 'CHANGE-ME'" in proc.stderr


def test_a_node_with_another_jwt_secret_refuses_to_start(site, secrets_file, tmp_path):
    fps = site_fingerprints(site, secrets_file)
    env = _node_env(site, secrets_file) | {JWT_SECRET.name: generate_values(site)[JWT_SECRET.name]}
    proc = _check_node(site, fps, tmp_path, env)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "airflow-prod check-node: /etc/airflow/secrets.env: AIRFLOW__API_AUTH__JWT_SECRET differs from this "
        f"site's (its fingerprint does not match {tmp_path}/secrets.fingerprint): every node must have the "
        "same secrets file; copy it from the node or build host that holds the site's file",
        "airflow-prod check-node: refusing to start",
    ]


def test_missing_secret_and_dag_folder_are_named(site, secrets_file, tmp_path):
    env = _node_env(site, secrets_file)
    del env["AIRFLOW__CORE__FERNET_KEY"]
    proc = _check_node(site, None, tmp_path, env, "--dags")
    assert proc.returncode == 1
    assert "/etc/airflow/secrets.env: AIRFLOW__CORE__FERNET_KEY is missing or still 'CHANGE-ME'" in proc.stderr
    assert f"the DAG folder {tmp_path}/dags does not exist" in proc.stderr
    # A shared DAG folder that is empty is an unmounted share.
    (tmp_path / "dags").mkdir()
    proc = _check_node(site, None, tmp_path, _node_env(site, secrets_file), "--dags")
    assert proc.returncode == 1 and "is empty, and this site shares it between hosts (dags.shared)" in proc.stderr


def test_weak_or_placeholder_secrets_get_no_fingerprint(site, secrets_file, tmp_path):
    weak = tmp_path / "weak.env"
    weak.write_text(secrets_file.read_text().replace(_env(secrets_file)[JWT_SECRET.name], "hunter2hunter2"))
    with pytest.raises(UsageError, match=r"AIRFLOW__API_AUTH__JWT_SECRET looks weak \(at most ~\d+ bits\)"):
        site_fingerprints(site, weak)
    weak.write_text(secrets_file.read_text().replace(_env(secrets_file)[JWT_SECRET.name], "CHANGE-ME"))
    with pytest.raises(UsageError, match=r"AIRFLOW__API_AUTH__JWT_SECRET is missing or a placeholder"):
        site_fingerprints(site, weak)
    assert estimated_bits("a" * 64) < 128


def test_fingerprint_is_keyed_per_site():
    assert fingerprint("one", "X", "v") != fingerprint("two", "X", "v")
    assert len(fingerprint("one", "X", "v")) == 64


def test_migration_runs_once_per_venv_and_configuration(site, tmp_path):
    """One upgrade transaction restarts airflow-db-migrate several times (base, config and its
    own package): ExecCondition=check-node --migration-needed lets only the first one migrate."""
    files = {f.dest: f.text for f in render_site(site).files}
    mig = files[f"{UNIT_DIR}/airflow-db-migrate.service"]
    assert _exec(mig, "ExecCondition") == [f"{CHECK_NODE} --migration-needed"]
    assert _exec(mig, "ExecStartPost") == [f"{CHECK_NODE} --migrated"]
    venvs = tmp_path / "venvs"
    (venvs / "one").mkdir(parents=True)
    (venvs / "two").mkdir()
    venv = tmp_path / "venv"
    venv.symlink_to(venvs / "one")
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text("[core]\nparallelism = 8\n")
    script = tmp_path / "check-node"
    script.write_text(files[CHECK_NODE]
                      .replace('VENV = "/opt/airflow/venv"', f'VENV = "{venv}"')
                      .replace('AIRFLOW_CFG = "/etc/airflow/airflow.cfg"', f'AIRFLOW_CFG = "{cfg}"')
                      .replace('STAMP = "/run/airflow/migrated"', f'STAMP = "{tmp_path / "migrated"}"'))

    def needed() -> bool:
        proc = subprocess.run([sys.executable, "-I", str(script), "--migration-needed"], capture_output=True, text=True)
        assert proc.returncode in (0, 1), proc
        return proc.returncode == 0

    def migrated() -> None:
        subprocess.run([sys.executable, "-I", str(script), "--migrated"], check=True, capture_output=True)

    assert needed()                     # first boot
    migrated()
    assert not needed()                 # the next restarts of the same transaction
    cfg.write_text("[core]\nparallelism = 9\n")
    assert needed()                     # a new configuration
    migrated()
    venv.unlink()
    venv.symlink_to(venvs / "two")
    assert needed()                     # a new venv (new Airflow)
