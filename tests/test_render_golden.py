"""Golden files: every rendered file of the example and of a minimal site, and its mode
(tests/golden/<name>.modes: git keeps only the executable bit).

After an intended change, regenerate with:
    UPDATE_GOLDEN=1 pytest tests/test_render_golden.py
review the diff like code, and add an assertion of the intent to tests/test_render_intent.py.
Under CI (AIRFLOW_PROD_CI=1 or CI=true) UPDATE_GOLDEN is refused: tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.render import render_site
from builder.site import site_from_data
from support.sites import EXAMPLE, REPO, minimal_data

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _modes(files) -> str:
    return "".join(f"{f.mode:04o} {f.relpath}\n" for f in sorted(files, key=lambda f: f.relpath))


def _sites(example_site):
    return {"example": example_site, "minimal": site_from_data(minimal_data())}


@pytest.mark.parametrize("name", ["example", "minimal"])
def test_rendered_files_match_golden(name, example_site):
    site = _sites(example_site)[name]
    files = render_site(site).files
    root = GOLDEN / name
    rendered = {f.relpath: f.text for f in files}
    if UPDATE:
        for rel, text in rendered.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        for stale in root.rglob("*"):
            if stale.is_file() and str(stale.relative_to(root)) not in rendered:
                stale.unlink()
        (GOLDEN / f"{name}.modes").write_text(_modes(files))
    on_disk = {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}
    assert sorted(on_disk) == sorted(rendered), "set of rendered files changed"
    for rel, text in rendered.items():
        assert text == on_disk[rel], f"{rel} differs from tests/golden/{name}/{rel}"
    assert _modes(files) == (GOLDEN / f"{name}.modes").read_text(), f"file modes differ from tests/golden/{name}.modes"


_RENDER = """
import json, sys
from builder.render import render_site
from builder.site import load_site
print(json.dumps([[f.dest, f.mode, f.package, f.text] for f in render_site(load_site(sys.argv[1])).files]))
"""


def test_rendering_is_stable(example_site):
    """Same site, other processes with other hash seeds: the same files, modes and order."""
    here = [[f.dest, f.mode, f.package, f.text] for f in render_site(example_site).files]
    for seed in ("0", "4242"):
        proc = subprocess.run([sys.executable, "-c", _RENDER, str(EXAMPLE)], capture_output=True, text=True,
                              cwd=REPO, env={**os.environ, "PYTHONHASHSEED": seed}, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == here, f"rendering differs with PYTHONHASHSEED={seed}"


def test_every_role_has_unit_and_preset(example_site):
    dests = {f.dest for f in render_site(example_site).files}
    for role in example_site.roles:
        assert f"/usr/lib/systemd/system/airflow-{role}.service" in dests
        assert f"/usr/lib/systemd/system-preset/80-airflow-prod-{role}.preset" in dests


def test_minimal_site_has_no_kerberos_or_ldap():
    files = {f.relpath: f.text for f in render_site(site_from_data(minimal_data())).files}
    assert "usr/lib/systemd/system/airflow-kerberos.service" not in files
    assert "AUTH_TYPE = AUTH_DB" in files["etc/airflow/webserver_config.py"]
    assert "[kerberos]" not in files["etc/airflow/airflow.cfg"]
    assert "KRB5CCNAME" not in files["etc/sysconfig/airflow"]
