"""airflow.cfg options checked against Airflow's own schema in the real wheels."""

from __future__ import annotations

import pytest

from builder.airflow_schema import check_options, load_schema, _provider_info
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

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def schema():
    return load_schema(PINS)


def test_schema_comes_from_the_wheels(schema):
    assert schema.sources == (
        "apache-airflow-core 3.1.4", "apache-airflow-providers-celery 3.14.0",
        "apache-airflow-providers-fab 3.0.3", "apache-airflow-providers-postgres 6.5.0",
    )
    assert schema.has("api_auth", "jwt_issuer")
    assert schema.has("fab", "config_file")          # from the fab provider
    assert schema.has("celery", "worker_concurrency")  # from the celery provider
    assert not schema.has("webserver", "config_file")  # Airflow 2's place


def test_every_rendered_option_exists(example_site, schema):
    checked = check_options(example_site, airflow_cfg_options(example_site), schema)
    assert checked.count >= 30


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
