"""airflow.cfg options checked against Airflow's own schema in the real wheels (PyPI, marked
network), and read from the lock's own index (a local one, offline)."""

from __future__ import annotations

import pytest

from builder.check.airflow_schema import _provider_info, check_options, load_schema, validate_against_lock
from builder.errors import ValidationFailed
from builder.render.airflow_cfg import airflow_cfg_options
from builder.site import site_from_data

# The versions a 2025-12-10 resolve of Airflow 3.1.4 pins (see locks/).
PINS = {
    "apache-airflow-core": "3.1.4",
    "apache-airflow-providers-celery": "3.14.0",
    "apache-airflow-providers-fab": "3.0.3",
    "apache-airflow-providers-postgres": "6.5.0",
    "redis": "5.3.1",  # not Airflow: ignored
}

@pytest.fixture(scope="module")
def schema():
    return load_schema(PINS)


@pytest.mark.network
def test_schema_comes_from_the_wheels(schema):
    assert schema.sources == (
        "apache-airflow-core 3.1.4", "apache-airflow-providers-celery 3.14.0",
        "apache-airflow-providers-fab 3.0.3", "apache-airflow-providers-postgres 6.5.0",
    )
    assert schema.has("api_auth", "jwt_issuer")
    assert schema.has("fab", "config_file")          # from the fab provider
    assert schema.has("celery", "worker_concurrency")  # from the celery provider
    assert not schema.has("webserver", "config_file")  # Airflow 2's place


@pytest.mark.network
def test_every_rendered_option_exists(example_site, schema):
    checked = check_options(example_site, airflow_cfg_options(example_site), schema)
    assert checked.count >= 30


@pytest.mark.network
def test_unknown_override_is_named_with_its_site_key(data, schema):
    data["airflow_cfg"] = {
        "dag_processor": {"parsing_processess": 4},
        "scheduler": {"parsing_processes": 4},  # moved to [dag_processor] in Airflow 3
        "webserver": {"workers": 2},
    }
    site = site_from_data(data)
    with pytest.raises(ValidationFailed) as err:
        check_options(site, airflow_cfg_options(site), schema)
    text = str(err.value)
    assert text.startswith("3 option(s) do not exist in Airflow's schema (apache-airflow-core 3.1.4")
    assert ("site.toml airflow_cfg.dag_processor.parsing_processess: [dag_processor] has no option "
            "'parsing_processess' (did you mean 'parsing_processes'?)") in text
    assert ("airflow_cfg.scheduler.parsing_processes: [scheduler] has no option 'parsing_processes'; "
            "Airflow has it in [dag_processor]") in text
    assert "airflow_cfg.webserver.workers: no section [webserver] in Airflow or its pinned providers" in text


@pytest.mark.network
def test_valid_override_passes(data, schema):
    data["airflow_cfg"] = {"scheduler": {"parsing_cleanup_interval": 120}}
    site = site_from_data(data)
    check_options(site, airflow_cfg_options(site), schema)


def test_provider_info_is_read_without_import():
    source = "def get_provider_info():\n    return {'config': {'x': {'options': {'a': {}}}}}\n"
    assert _provider_info(source) == {"config": {"x": {"options": {"a": {}}}}}


def test_missing_core_pin_is_an_error():
    with pytest.raises(ValidationFailed, match="the lock pins no apache-airflow-core"):
        load_schema({"apache-airflow-providers-fab": "3.0.3"})


# --- offline: the lock's index (tests/support/pkgindex.py) ---------------------------------------------------


@pytest.fixture
def private_caches(tmp_path, monkeypatch):
    """No schema memo and no downloaded wheel from earlier tests: this test fetches its own."""
    monkeypatch.setenv("AIRFLOW_PROD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AIRFLOW_PROD_BLOBS", str(tmp_path / "blobs"))


def _mirror_lock(index, tmp_path):
    from builder.pydeps.resolve import ensure_lock
    from support.pkgindex import site_data

    site = site_from_data(site_data(index))
    return site, ensure_lock(site, locks_dir=tmp_path / "locks", index_url=index.simple, notify=lambda *a: None)


def test_schema_is_read_from_the_lock_index(airflow_index, tmp_path, private_caches):
    site, lock = _mirror_lock(airflow_index, tmp_path)
    airflow_index.requests.clear()
    options = airflow_cfg_options(site)
    checked = validate_against_lock(site, options, lock)
    assert checked.count == sum(len(v) for v in options.values())
    assert checked.source == "apache-airflow-core 3.1.4"
    assert "/simple/apache-airflow-core/" in airflow_index.requests
    assert "/files/apache_airflow_core-3.1.4-py3-none-any.whl" in airflow_index.requests


def test_schema_of_the_lock_index_judges(pkgindex, tmp_path, private_caches):
    from support.pkgindex import OPTIONS, airflow_world, config_yml

    # This mirror's core lacks [fab] config_file: the check must say so, so it read this wheel.
    airflow_world(pkgindex, core_config=config_yml({k: v for k, v in OPTIONS.items() if k != "fab"}))
    site, lock = _mirror_lock(pkgindex, tmp_path)
    with pytest.raises(ValidationFailed, match=r"airflow\.cfg \[fab\] config_file: no section \[fab\] in Airflow"):
        validate_against_lock(site, airflow_cfg_options(site), lock)


def test_schema_wheel_must_be_the_locked_one(airflow_index, tmp_path, private_caches):
    from support.pkgindex import wheel

    site, lock = _mirror_lock(airflow_index, tmp_path)
    core = airflow_index.file("apache_airflow_core-3.1.4-py3-none-any.whl")
    core.data = wheel("apache-airflow-core", "3.1.4", files={"airflow/config_templates/config.yml": "{}\n"})[1]
    with pytest.raises(ValidationFailed, match=r"apache-airflow-core 3\.1\.4 has no locked wheel on "
                                               r"http://127\.0\.0\.1:\d+/simple to read its config schema from"):
        validate_against_lock(site, airflow_cfg_options(site), lock)


def test_schema_memo_is_per_wheel_not_per_version(airflow_index, tmp_path, private_caches):
    """Two indexes may serve different files as apache-airflow-core 3.1.4: the memo of one
    must not answer for the other (it was keyed by name and version)."""
    from builder.pydeps.lockfile import Lock
    from support.pkgindex import OPTIONS, config_yml, wheel

    site, lock = _mirror_lock(airflow_index, tmp_path)
    validate_against_lock(site, airflow_cfg_options(site), lock)  # memo of this core written
    core = airflow_index.file("apache_airflow_core-3.1.4-py3-none-any.whl")
    old = core.sha256
    core.data = wheel("apache-airflow-core", "3.1.4", files={
        "airflow/config_templates/config.yml": config_yml({k: v for k, v in OPTIONS.items() if k != "fab"})})[1]
    lock.path.write_text(lock.path.read_text().replace(old, core.sha256))
    with pytest.raises(ValidationFailed, match=r"airflow\.cfg \[fab\] config_file: no section \[fab\]"):
        validate_against_lock(site, airflow_cfg_options(site), Lock.read(lock.path))


def test_schema_from_the_wheelhouse_needs_no_index(airflow_index, tmp_path, private_caches):
    """`bundle build --wheelhouse W --lock W/requirements.lock`: that offline lock names no
    index; the locked core wheel is read from the wheelhouse itself."""
    from builder.pydeps.lockfile import Lock
    from builder.pydeps.wheelhouse import OFFLINE_LOCK, build_wheelhouse

    site, lock = _mirror_lock(airflow_index, tmp_path)
    wh = build_wheelhouse(site, lock, tmp_path / "wh", notify=lambda *a: None)
    offline = Lock.read(wh.out_dir / OFFLINE_LOCK)
    assert "index" not in offline.header
    airflow_index.requests.clear()
    checked = validate_against_lock(site, airflow_cfg_options(site), offline)
    assert checked.source == "apache-airflow-core 3.1.4" and airflow_index.requests == []
    # Elsewhere, without its wheelhouse and without an index: a clear error.
    alone = tmp_path / "alone.lock"
    alone.write_text((wh.out_dir / OFFLINE_LOCK).read_text())
    for memo in (tmp_path / "cache" / "airflow-schema").glob("*.json"):
        memo.unlink()
    with pytest.raises(ValidationFailed, match=r"apache-airflow-core 3\.1\.4: its locked wheel is not in .* and the "
                                               r"lock names no index to fetch it from"):
        validate_against_lock(site, airflow_cfg_options(site), Lock.read(alone))
