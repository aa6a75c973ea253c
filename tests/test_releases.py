"""The versioned table of what differs between Airflow releases (builder/site/releases.py):
its rows, what the site model does with them, and each fact against the release's own wheel."""

from __future__ import annotations

import dataclasses
import re
import zipfile

import pytest
from packaging.version import Version

from builder.errors import SiteError
from builder.render.airflow_cfg import airflow_cfg_options
from builder.site import site_from_data
from builder.site.releases import RELEASES, first_with, release
from support.sites import example_data


def test_rows_are_in_release_order_and_each_changes_something():
    assert [Version(r.since) for r in RELEASES] == sorted({Version(r.since) for r in RELEASES})
    for before, after in zip(RELEASES, RELEASES[1:], strict=False):
        assert before != dataclasses.replace(after, since=before.since)


@pytest.mark.parametrize("version,since", [("3.1.4", "3.1.0"), ("3.1.8", "3.1.0"), ("3.2.0", "3.2.0"),
                                           ("3.2.2", "3.2.0"), ("3.3.0", "3.3.0"), ("3.3.2", "3.3.0"),
                                           ("3.4.0", "3.3.0"), ("3.3.0rc1", "3.2.0")])
def test_each_release_reads_its_row(version, since):
    assert release(version).since == since


def _site(version: str, **api):
    data = example_data()
    data["airflow"]["version"] = version
    # None: not written (the example's own `workers = 1` then goes too).
    data["api"] = {k: v for k, v in {**data["api"], **api}.items() if v is not None}
    return site_from_data(data)


def test_jwt_audience_is_per_site_where_airflow_honours_it():
    newest = _site("3.3.2")
    assert newest.api.jwt_audience == "airflow-prod/bigdata-prod"
    assert airflow_cfg_options(newest)["api_auth"]["jwt_audience"] == "airflow-prod/bigdata-prod"
    assert _site("3.3.2", jwt_audience="tenant-a").api.jwt_audience == "tenant-a"
    guide = _site("3.1.4")
    assert guide.api.jwt_audience is None and "jwt_audience" not in airflow_cfg_options(guide)["api_auth"]


def test_the_worker_keeps_procs_default_where_airflow_makes_tasks_nondumpable():
    """hidepid would hide a non-dumpable task from its own supervisor (psutil.NoSuchProcess)."""
    from builder.render.units import unit_specs

    for version, worker_proc in (("3.1.4", "invisible"), ("3.2.2", "default"), ("3.3.2", "default")):
        procs = {u.role: u.protect_proc for u in unit_specs(_site(version))}
        assert procs.pop("celery-worker") == worker_proc, version
        assert set(procs.values()) == {"invisible"}, version


def test_jwt_audience_on_a_release_that_breaks_it_is_refused():
    with pytest.raises(SiteError) as exc:
        _site("3.2.2", jwt_audience="tenant-a")
    message = str(exc.value)
    assert "api.jwt_audience: 'tenant-a': Airflow 3.2.2 signs its tokens with [api] jwt_audience" in message
    assert f"from Airflow {first_with('jwt_audience')} on" in message


def test_gunicorn_api_server_where_airflow_has_it():
    """Several workers and a rolling refresh: the extra that brings gunicorn, the options, and a
    unit that lets gunicorn's master stop its workers."""
    from builder.render.units import unit_specs

    site = _site("3.3.2", server_type="gunicorn", workers=None)
    assert (site.api.workers, site.api.worker_refresh_interval, site.api.worker_refresh_batch_size) == (2, 43200, 1)
    assert "gunicorn" in site.airflow.extras
    api = airflow_cfg_options(site)["api"]
    assert {k: api[k] for k in ("server_type", "workers", "worker_refresh_interval", "worker_refresh_batch_size")} \
        == {"server_type": "gunicorn", "workers": "2", "worker_refresh_interval": "43200",
            "worker_refresh_batch_size": "1"}
    api_unit = next(u for u in unit_specs(site) if u.role == "api-server")
    assert api_unit.kill_mode == "mixed"
    # No client's X-Forwarded-* is trusted (gunicorn's own default trusts loopback), and the
    # renewer's ticket is still named beside it; Airflow trusts them only with --proxy-headers.
    assert dict(api_unit.environment) == {"KRB5CCNAME": f"FILE:{site.kerberos.ccache}", "FORWARDED_ALLOW_IPS": ""}
    assert "--proxy-headers" not in api_unit.args
    own = _site("3.2.2", server_type="gunicorn", workers=4, worker_refresh_interval=600, worker_refresh_batch_size=2)
    assert airflow_cfg_options(own)["api"]["worker_refresh_batch_size"] == "2"
    # The default stays Airflow's: uvicorn, one worker, none of gunicorn's options written.
    guide = _site("3.1.4")
    assert (guide.api.server_type, guide.api.workers) == ("uvicorn", 1) and "gunicorn" not in guide.airflow.extras
    assert not {"server_type", "worker_refresh_interval"} & set(airflow_cfg_options(guide)["api"])
    guide_api = next(u for u in unit_specs(guide) if u.role == "api-server")
    assert guide_api.kill_mode == "control-group" and "FORWARDED_ALLOW_IPS" not in dict(guide_api.environment)


@pytest.mark.parametrize("version,api,expected", [
    ("3.1.4", {"server_type": "gunicorn"},
     "api.server_type: 'gunicorn': Airflow 3.1.4 has only the uvicorn api-server; gunicorn comes with Airflow 3.2.0"),
    ("3.3.2", {"workers": 3},
     'api.workers: 3: the uvicorn api-server loses extra workers; keep 1 or set api.server_type = "gunicorn"'),
    ("3.1.4", {"workers": 3},
     "api.workers: 3: the uvicorn api-server loses extra workers; keep 1 or run api-server on more hosts"),
    ("3.3.2", {"worker_refresh_interval": 600},
     "api.worker_refresh_interval: 600: only the gunicorn api-server refreshes its workers"),
    ("3.3.2", {"worker_refresh_batch_size": 2},
     "api.worker_refresh_batch_size: 2: only the gunicorn api-server refreshes its workers"),
    ("3.3.2", {"server_type": "gunicorn", "workers": 2, "worker_refresh_batch_size": 3},
     "api.worker_refresh_batch_size: 3: more than the 2 api.workers it refreshes; at most 2"),
    ("3.3.2", {"server_type": "hypercorn"}, "api.server_type"),
])
def test_api_server_settings_airflow_would_not_honour_are_refused(version, api, expected):
    with pytest.raises(SiteError) as exc:
        _site(version, **api)
    assert expected in str(exc.value)


def test_api_server_options_come_from_the_api_table_only():
    data = example_data()
    data["airflow_cfg"] = {**data.get("airflow_cfg", {}), "api": {"workers": "4"}}
    with pytest.raises(SiteError) as exc:
        site_from_data(data)
    assert "api.workers" in str(exc.value)


# --- each fact against the release's own files -------------------------------------------------

_SIGNER = re.compile(r"def _get_token_signer\(.*?\n    @classmethod", re.S)


def _auth_manager_source(version: str) -> str:
    from builder.check.airflow_schema import _fetch_wheel
    from builder.pydeps.index import Registry

    _, wheel = _fetch_wheel("apache-airflow-core", version, Registry())
    with zipfile.ZipFile(wheel) as zf:
        return zf.read("airflow/api_fastapi/auth/managers/base_auth_manager.py").decode()


def _last_before(since: str) -> str:
    return {"3.2.0": "3.1.8", "3.3.0": "3.2.2"}[since]


@pytest.mark.network
@pytest.mark.parametrize("row", [r for r in RELEASES if r.jwt_audience][:1], ids=lambda r: r.since)
def test_jwt_audience_fact_is_what_the_wheels_say(row):
    """From the first release the table says, the signer reads [api_auth] jwt_audience as the
    validator does; in the release before, it reads [api] jwt_audience."""
    fixed, broken = _auth_manager_source(row.since), _auth_manager_source(_last_before(row.since))
    assert 'conf.get("api", "jwt_audience", fallback="apache-airflow")' in _SIGNER.search(broken)[0]
    assert "audience=cls._get_jwt_audience()" in _SIGNER.search(fixed)[0]
    assert 'conf.has_option("api_auth", "jwt_audience")' in fixed


@pytest.mark.network
def test_nondumpable_tasks_fact_is_what_the_wheels_say():
    """The task SDK pinned by the first release the table says makes the supervisor non-dumpable;
    the one pinned by the release before does not."""
    from builder.check.airflow_schema import _fetch_wheel
    from builder.pydeps.index import Registry

    def supervisor(sdk: str) -> str:
        _, wheel = _fetch_wheel("apache-airflow-task-sdk", sdk, Registry())
        with zipfile.ZipFile(wheel) as zf:
            return zf.read("airflow/sdk/execution_time/supervisor.py").decode()

    since = next(r.since for r in RELEASES if r.nondumpable_tasks)
    assert since == "3.2.0"  # core 3.2.0 pins task-sdk 1.2.0; 3.1.8 pins 1.1.8
    assert "_make_process_nondumpable()" in supervisor("1.2.0")
    assert "_make_process_nondumpable" not in supervisor("1.1.8")


@pytest.mark.network
def test_gunicorn_fact_is_what_the_wheels_say():
    """[api] server_type with gunicorn arrives in the release the table says, not before."""
    since = first_with("gunicorn")
    from builder.check.airflow_schema import _fetch_wheel, _read_config_schema
    from builder.pydeps.index import Registry

    def options(version: str) -> list[str]:
        _, wheel = _fetch_wheel("apache-airflow-core", version, Registry())
        return _read_config_schema(wheel).get("api", [])

    assert "server_type" in options(since) and "server_type" not in options(_last_before(since))
    # What the site renders with it: the rolling refresh arrives with the server type.
    assert {"worker_refresh_interval", "worker_refresh_batch_size"} <= set(options(since))


# --- every release line locks and renders against its own schema ------------------------------

@pytest.mark.network
@pytest.mark.parametrize("version", ["3.1.8", "3.2.2", "3.3.2"])
def test_each_release_line_locks_and_renders_against_its_own_schema(version, tmp_path):
    """The newest patch of every Airflow 3 line: locked for the target (constraints or the
    date-cutoff fallback), then every airflow.cfg option checked against that release's own
    config.yml and its providers'. 3.1.4 and the newest are installed and run by the e2e."""
    from support.cli import bundle
    from support.sites import small_data, write_site

    # The providers whose sections airflow.cfg sets ([celery], [fab]).
    data = small_data(name=f"line{version.replace('.', '')}", version=version,
                      extras=["celery", "redis", "postgres"], providers=["apache-airflow-providers-fab"])
    gunicorn = release(version).gunicorn
    if gunicorn:  # its options against the schema, its extra in the lock
        data["api"] = {**data.get("api", {}), "server_type": "gunicorn"}
    site = write_site(tmp_path / "site.toml", data)
    locked = bundle("lock", "--site", str(site), "--locks-dir", str(tmp_path / "locks"), timeout=600)
    assert locked.returncode == 0, locked.stderr
    lock = next((tmp_path / "locks").glob("*.txt")).read_text()
    assert f"apache-airflow-core=={version} " in lock
    rendered = bundle("render", "--site", str(site), "--out", str(tmp_path / "r"),
                      "--lock", str(next((tmp_path / "locks").glob("*.txt"))), timeout=600)
    assert rendered.returncode == 0, rendered.stderr
    assert f"valid for apache-airflow-core {version}" in rendered.stdout, rendered.stdout
    cfg = (tmp_path / "r" / "etc/airflow/airflow.cfg").read_text()
    assert ("jwt_audience = airflow-prod/" in cfg) == release(version).jwt_audience
    assert ("server_type = gunicorn" in cfg) == gunicorn and ("\ngunicorn==" in lock) == gunicorn
