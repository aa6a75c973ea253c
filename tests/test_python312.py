"""Python 3.12 as a target (issue 10): RHEL 9.4+ ships python3.12 beside the short-lived
python3.11 Application Stream. `[target] python = "3.12.x"` must lock, build and install.

Offline: what the site's Python decides in the packages (the interpreter required, the check
build-venv makes, the wheel tags, the -devel package compile-on-target needs). With PyPI
(`network`): a small site's lock and wheelhouse for 3.12, proven by an offline install into a
fresh venv of a real CPython 3.12 and `airflow version` (pyenv's on these machines).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from builder import target
from builder.pydeps import native
from builder.render import render_site
from builder.rpm import plan as P
from builder.rpm.spec import render_build_venv, render_spec
from builder.site import site_from_data
from support.sites import minimal_data


def site_312(python: str = "3.12.1", extras: tuple[str, ...] = ("ssh",)):
    data = copy.deepcopy(minimal_data())
    data["airflow"] = {"version": "3.1.4", "extras": list(extras), "providers": []}
    data["target"] = {"python": python}
    return site_from_data(data)


def test_a_312_site_requires_python312_and_builds_its_venv_with_it():
    site = site_312()
    assert site.target.python_minor == "3.12" and site.target.interpreter == "/usr/bin/python3.12"
    inputs = P.SiteInputs("3.1.4-1.1.abc.el9", 1000, ("airflow",))
    script = render_build_venv(site, inputs.smoke_imports)
    assert "PYTHON=/usr/bin/python3.12\n" in script
    assert "sys.version_info[:2] != (3, 12)" in script
    assert 'ID="py3.12-$LOCK_ID"' in script            # beside a 3.11 venv, never over it
    plan = P.site_plan(site, render_site(site), inputs, 1765352100, script)
    base = next(p for p in plan.packages if p.name == "airflow-prod")
    for deps in (base.requires, base.requires_pre, base.requires_post):
        assert "python3.12" in deps and "python3.11" not in deps, deps
    spec = render_spec(plan)
    assert not re.search(r"^Requires(\(\w+\))?:\s+python3\.11", spec, re.M)
    pre = dict(base.scripts)["pre"]
    assert "/usr/bin/python3.12" in pre and "install python3.12 first" in pre


def test_a_312_target_takes_cp312_wheels_and_python312_devel():
    tags = {str(t) for t in target.wheel_tags(site_312().target)}
    assert "cp312-cp312-manylinux_2_34_x86_64" in tags and "cp312-abi3-manylinux2014_x86_64" in tags
    assert not any(t.startswith("cp311-cp311") for t in tags)
    assert "python3.12-devel" in native.target_build_packages(["python-ldap"], "3.12")


def _cpython_312() -> Path | None:
    """A real CPython 3.12: on PATH, or pyenv's."""
    found = shutil.which("python3.12")
    if found and "shims" not in found:
        return Path(found)
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for candidate in sorted(root.glob("versions/3.12.*/bin/python3.12"), reverse=True):
        return candidate
    return None


@pytest.mark.network
def test_small_312_wheelhouse_installs_offline_and_runs_airflow(tmp_path, monkeypatch):
    from builder.pydeps.resolve import ensure_lock
    from builder.check.wheelhouse import prove_complete
    from builder.pydeps.wheelhouse import build_wheelhouse

    python = _cpython_312()
    if python is None:
        pytest.skip("no CPython 3.12 on this machine (PATH or pyenv) for the install proof")
    version = python.resolve().parent.parent.name if "pyenv" in str(python) else None
    if version is None:
        import subprocess

        version = subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.setenv("PATH", f"{python.parent}:{os.environ['PATH']}")
    site = site_312(python=version)
    lock = ensure_lock(site, locks_dir=tmp_path / "locks", notify=lambda level, msg: None)
    assert lock.header["target"].startswith(f"python {version}, x86_64")
    wh = build_wheelhouse(site, lock, tmp_path / "wh", notify=lambda level, msg: None)
    wanted = {str(t) for t in target.wheel_tags(site.target)}
    wheels = [f.filename for f in wh.files if f.filename.endswith(".whl")]
    assert all({str(t) for t in parse_wheel_filename(w)[3]} & wanted for w in wheels)
    assert any("-cp312-cp312-" in w for w in wheels) and not any("-cp311-cp311-" in w for w in wheels), wheels
    proof = prove_complete(site, lock, wh)
    assert proof.kind == "install", proof
    assert f"fresh Python {version} venv" in proof.detail and "`airflow version` printed 3.1.4" in proof.detail
