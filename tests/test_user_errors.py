"""Failures a user can cause end as `error: <what>` + `hint: <how>` from `bundle`, exit
non-zero, no traceback: each is made to happen for real here (failures needing rpmbuild are
in test_build_cli.py)."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from builder.cli import main
from builder.errors import BundleError
from builder.render import RenderedFile, render_site
from builder.render import jinja
from builder.rpm import plan as P
from support.sites import EXAMPLE, REPO


def bundle_in_process(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    return int(done.value.code or 0), capsys.readouterr().err


@pytest.fixture
def templates(tmp_path, monkeypatch):
    """A copy of templates/ that rendering reads instead (a template changed in place)."""
    copy = tmp_path / "templates"
    shutil.copytree(REPO / "templates", copy)
    monkeypatch.setattr(jinja, "templates_dir", lambda: copy)
    jinja.environment.cache_clear()
    yield copy
    jinja.environment.cache_clear()


def render_example(capsys, tmp_path) -> tuple[int, str]:
    return bundle_in_process(capsys, "render", "--site", str(EXAMPLE), "--out", str(tmp_path / "out"),
                             "--no-validate")


def test_a_broken_template_is_an_error_with_a_hint(templates, tmp_path, capsys):
    # A template edited in place (or left from another version) that names what the model lacks.
    cfg = templates / "airflow.cfg.j2"
    cfg.write_text(cfg.read_text() + "{{ site.no_such_setting }}\n")
    code, err = render_example(capsys, tmp_path)
    assert code == 1
    assert "error: template airflow.cfg.j2" in err and "cannot be rendered" in err and "no_such_setting" in err
    assert "hint: the template and the site model disagree" in err
    assert "Traceback" not in err


def test_a_missing_template_is_an_error_with_a_hint(templates, tmp_path, capsys):
    (templates / "sysconfig.j2").unlink()
    code, err = render_example(capsys, tmp_path)
    assert code == 1 and f"error: template sysconfig.j2 not found in {templates}" in err
    assert "hint: reinstall" in err and "Traceback" not in err


def test_files_rendered_for_another_site_are_refused_with_a_hint(example_site):
    stray = RenderedFile("/etc/elsewhere.conf", "x\n", package="no-such-role")
    inputs = P.SiteInputs("3.1.4-1.1.abc.el9", 1000, ("airflow",))
    with pytest.raises(BundleError, match=r"rendered files for packages site 'bigdata-prod' does not build: "
                                          r"\['no-such-role'\]") as err:
        rendered = render_site(example_site)
        P.site_plan(example_site, replace(rendered, files=(*rendered.files, stray)), inputs, 1765352100,
                    "#!/bin/sh\n")
    assert err.value.hint


def test_an_answer_cut_short_is_a_registry_error_with_a_hint(pkgindex):
    from support.pkgindex import File, wheel

    from builder.pydeps.index import Registry, RegistryError

    filename, data = wheel("short", "1.0")
    pkgindex.add(File(filename, data, serve_metadata=False, truncate=50))  # Content-Length stays full
    reg = Registry(pkgindex.simple, retries=2)
    with pytest.raises(RegistryError, match=rf"/files/{filename}: the connection closed before the answer was "
                                            rf"complete \(50 bytes, {len(data) - 50} more expected\)") as err:
        reg.metadata(reg.project("short").files[0])
    assert "try again" in str(err.value.hint)
    assert pkgindex.requests.count(f"/files/{filename}") == 2, "asked again before giving up"


def test_bundle_lock_with_a_mirror_cutting_answers_short(airflow_index, tmp_path):
    import subprocess
    import sys

    from support.pkgindex import site_data
    from support.sites import write_site

    airflow = next(f for f in airflow_index.files["apache-airflow"] if f.filename.endswith(".whl"))
    airflow.serve_metadata, airflow.truncate = False, 40  # lock reads Airflow's extras from the wheel
    site = write_site(tmp_path / "site.toml", site_data(airflow_index))
    proc = subprocess.run([sys.executable, "-m", "builder", "lock", "--site", str(site), "--index-url",
                           airflow_index.simple, "--locks-dir", str(tmp_path / "locks")],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: {airflow_index.url}/files/{airflow.filename}: the connection closed before" in proc.stderr
    assert "hint: a flaky network" in proc.stderr and "Traceback" not in proc.stderr


def test_a_chunked_download_cut_short_is_retried_then_named(tmp_path, monkeypatch):
    """A server that answers in chunks and drops the connection mid-chunk (http.client's
    IncompleteRead): retried, resumed from the partial file, then a DownloadError."""
    import hashlib
    import http.server
    import threading

    from builder.pydeps.blobs import BlobStore, DownloadError, Wanted
    from builder.pydeps.index import Registry

    body = b"x" * 5000
    hits: list[str] = []

    class Cut(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n" % len(body) + body[:100])  # promises 5000, sends 100
            self.close_connection = True

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Cut)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/files/cut-1.0.tar.gz"
        store = BlobStore(tmp_path / "blobs")
        want = Wanted("cut==1.0", "cut-1.0.tar.gz", url, hashlib.sha256(body).hexdigest(), None)
        with pytest.raises(DownloadError, match=rf"^cut==1\.0: downloading {url} failed: "):
            store.fetch_all([want], Registry("http://127.0.0.1:1/simple", retries=1))
        assert len(hits) == 4, "retried"
    finally:
        server.shutdown()
