"""Failures a user can cause end as `error: <what>` + `hint: <how>` from `bundle`, exit
non-zero, no traceback: each is made to happen for real here (failures needing rpmbuild are
in test_build_cli.py)."""

from __future__ import annotations

import shutil

import pytest

from builder.cli import main
from builder.errors import BundleError
from builder.render import RenderedFile, render_site
from builder.render import jinja
from builder.rpm import plan as P
from conftest import EXAMPLE, REPO


def bundle_in_process(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    return int(done.value.code or 0), capsys.readouterr().err


def test_a_broken_template_is_an_error_with_a_hint(tmp_path, monkeypatch, capsys):
    # A template edited in place (or left from another version) that names what the model lacks.
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    cfg = templates / "airflow.cfg.j2"
    cfg.write_text(cfg.read_text() + "{{ site.no_such_setting }}\n")
    monkeypatch.setattr(jinja, "templates_dir", lambda: templates)
    jinja.environment.cache_clear()
    try:
        code, err = bundle_in_process(capsys, "render", "--site", str(EXAMPLE), "--out", str(tmp_path / "out"),
                                      "--no-validate")
    finally:
        jinja.environment.cache_clear()
    assert code == 1
    assert "error: template airflow.cfg.j2" in err and "cannot be rendered" in err and "no_such_setting" in err
    assert "hint: the template and the site model disagree" in err
    assert "Traceback" not in err


def test_a_missing_template_is_an_error_with_a_hint(tmp_path, monkeypatch, capsys):
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    (templates / "sysconfig.j2").unlink()
    monkeypatch.setattr(jinja, "templates_dir", lambda: templates)
    jinja.environment.cache_clear()
    try:
        code, err = bundle_in_process(capsys, "render", "--site", str(EXAMPLE), "--out", str(tmp_path / "out"),
                                      "--no-validate")
    finally:
        jinja.environment.cache_clear()
    assert code == 1 and f"error: template sysconfig.j2 not found in {templates}" in err
    assert "hint: reinstall" in err and "Traceback" not in err


def test_files_rendered_for_another_site_are_refused_with_a_hint(example_site):
    stray = RenderedFile("/etc/elsewhere.conf", "x\n", package="no-such-role")
    inputs = P.SiteInputs("3.1.4-1.1.abc.el9", 1000, ("airflow",))
    with pytest.raises(BundleError, match=r"rendered files for packages site 'bigdata-prod' does not build: "
                                          r"\['no-such-role'\]") as err:
        P.site_plan(example_site, [*render_site(example_site), stray], inputs, 1765352100, "#!/bin/sh\n")
    assert err.value.hint
