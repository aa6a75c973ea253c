"""Rendered units checked by systemd itself (real systemd-analyze)."""

from __future__ import annotations

import dataclasses

import pytest

from builder.errors import ValidationFailed
from builder.render import RenderedFile, render_site
from builder.site import site_from_data
from builder.check.units import security_scores, verify_units
from support.sites import REPO, minimal_data

# The exposure README.md and docs/unit-security.md claim (systemd-analyze security), plus
# a margin of 0.1 for systemd's rounding: a hardening option lost from a unit fails here.
CLAIMED = {"strict": 1.4, "worker": 1.7}
MARGIN = 0.1
STRICT_LIMIT = CLAIMED["strict"] + MARGIN  # api-server, scheduler, dag-processor, triggerer, kerberos
WORKER_LIMIT = CLAIMED["worker"] + MARGIN  # the worker runs task code, yet stays well below Airflow's own 9.2

GUIDE_UNIT = (REPO / "bench" / "data" / "guide-scheduler.service").read_text()


def test_verify_accepts_every_rendered_unit(example_site):
    units = verify_units(example_site, render_site(example_site).files)
    assert "airflow.target" in units
    # six roles + airflow-db-migrate + the worker's ccache copy (and its .path), the two
    # retention units (and their timers), and redis.service with our drop-in (the local broker)
    assert len([u for u in units if u.endswith(".service")]) == 11 and "redis.service" in units
    assert "airflow-worker-ccache.path" in units
    assert {"airflow-db-clean.timer", "airflow-log-groom.timer"} <= set(units)


def test_verify_accepts_minimal_site():
    site = site_from_data(minimal_data())
    # five roles, airflow-db-migrate, airflow.target, redis.service with our drop-in, and the
    # two retention units with their timers
    assert len(verify_units(site, render_site(site).files)) == 12


def test_verify_reads_the_redis_drop_in(example_site):
    """The drop-in is verified on top of the unit it changes (RHEL's, standing in here)."""
    files = [
        dataclasses.replace(f, text=f.text.replace("ExecStartPre=+", "ExecStartPre=+relative/"))
        if "/redis.service.d/" in f.dest else f
        for f in render_site(example_site).files
    ]
    with pytest.raises(ValidationFailed, match=r"50-airflow-prod\.conf"):
        verify_units(example_site, files)


def test_verify_rejects_a_broken_unit(example_site):
    files = render_site(example_site).files
    broken = [
        dataclasses.replace(f, text=f.text.replace("Type=exec", "Type=bogus"))
        if f.dest.endswith("airflow-scheduler.service") else f
        for f in files
    ]
    with pytest.raises(ValidationFailed, match=r"airflow-scheduler\.service:\d+: Failed to parse service type"):
        verify_units(example_site, broken)


def test_security_scores(example_site):
    scores = {s.unit: s.exposure for s in security_scores(render_site(example_site).files)}
    assert len(scores) == 10  # the services: six roles, migration, ccache copy, two retention units
    for unit, exposure in scores.items():
        limit = WORKER_LIMIT if "celery-worker" in unit else STRICT_LIMIT
        assert exposure <= limit, f"{unit} exposure {exposure} > {limit}"


def test_claimed_exposure_is_what_the_docs_say():
    doc = (REPO / "docs" / "unit-security.md").read_text()
    assert f"| airflow-celery-worker.service | {CLAIMED['worker']} | OK |" in doc
    assert f"| airflow-scheduler.service | {CLAIMED['strict']} | OK |" in doc
    assert f"exposure {CLAIMED['strict']} (worker {CLAIMED['worker']})" in (REPO / "README.md").read_text()


def test_guide_unit_scores_unsafe():
    """The measurement is real: the guide's own unit scores high."""
    (score,) = security_scores([RenderedFile("/usr/lib/systemd/system/guide-scheduler.service", GUIDE_UNIT)])
    assert score.exposure >= 9.0 and score.verdict == "UNSAFE"
