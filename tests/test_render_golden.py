"""Golden files: every rendered file of the example and of a minimal site.

After an intended change, regenerate with:
    UPDATE_GOLDEN=1 pytest tests/test_render_golden.py
and review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.render import render_site
from builder.site import site_from_data
from conftest import minimal_data

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _sites(example_site):
    return {"example": example_site, "minimal": site_from_data(minimal_data())}


@pytest.mark.parametrize("name", ["example", "minimal"])
def test_rendered_files_match_golden(name, example_site):
    site = _sites(example_site)[name]
    files = render_site(site)
    root = GOLDEN / name
    rendered = {f.relpath: f.text for f in files}
    if UPDATE:
        for rel, text in rendered.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        for stale in root.rglob("*"):
            if stale.is_file() and str(stale.relative_to(root)) not in rendered:
                stale.unlink()
    on_disk = {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}
    assert sorted(on_disk) == sorted(rendered), "set of rendered files changed"
    for rel, text in rendered.items():
        assert text == on_disk[rel], f"{rel} differs from tests/golden/{name}/{rel}"


def test_rendering_is_stable(example_site):
    assert render_site(example_site) == render_site(example_site)


def test_every_role_has_unit_and_preset(example_site):
    dests = {f.dest for f in render_site(example_site)}
    for role in example_site.roles:
        assert f"/usr/lib/systemd/system/airflow-{role}.service" in dests
        assert f"/usr/lib/systemd/system-preset/80-airflow-prod-{role}.preset" in dests


def test_minimal_site_has_no_kerberos_or_ldap():
    files = {f.relpath: f.text for f in render_site(site_from_data(minimal_data()))}
    assert "usr/lib/systemd/system/airflow-kerberos.service" not in files
    assert "AUTH_TYPE = AUTH_DB" in files["etc/airflow/webserver_config.py"]
    assert "[kerberos]" not in files["etc/airflow/airflow.cfg"]
    assert "KRB5CCNAME" not in files["etc/sysconfig/airflow"]
