"""Cython's half of compile-on-target, done on the build host (builder/pydeps/cythonized.py).

The real sdists of the example's lock (gssapi, krb5), the Cython and setuptools their builds
pin, this host's gcc and MIT krb5 headers (libkrb5-dev, scripts/deps-debian.txt):
- each recipe writes byte for byte the C that the sdist's own setup.py writes;
- the derived sdist builds offline with uv without Cython running, into the same modules;
- deriving is reproducible; a setup.py no recipe was checked against ships unchanged.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.pydeps import cythonized, native
from builder.pydeps.blobs import BlobStore
from builder.pydeps.index import Registry
from builder.pydeps.lockfile import Pin, render_pins
from builder.pydeps.resolve import ensure_lock
from builder.pydeps.uv import uv_bin
from builder.pydeps.wheelhouse import _resolve_build_requirements, select_artifacts
from support.sites import REPO

METADATA = re.compile(rb"/\* BEGIN: Cython Metadata.*?END: Cython Metadata \*/\n", re.S)


class Seen(list):
    def __call__(self, level: str, message: str) -> None:
        self.append((level, message))


@pytest.fixture(scope="module")
def real(example_site):
    """name -> (sdist blob, filename, sha256, its build pins, wheels of those pins)."""
    lock = ensure_lock(example_site, locks_dir=REPO / "locks", may_relock=False)
    registry = Registry(lock.index)
    store = BlobStore()
    picked = select_artifacts({n: lock.pins[n] for n in cythonized.RECIPES}, example_site, registry, lock.files)
    got = {}
    for a in picked:
        blob = store.path(a.sha256)
        store.fetch_all([a.wanted()], registry)
        pins = _resolve_build_requirements(native.build_requires(blob, a.filename), example_site, lock,
                                           registry.index_url)
        wheels = [select_artifacts({p.name: p}, example_site, registry)[0] for p in pins.values()]
        store.fetch_all([w.wanted() for w in wheels], registry)
        got[a.name] = (blob, a.filename, a.sha256, pins, {w.filename: store.path(w.sha256) for w in wheels})
    return got, registry.index_url


def _own_cythonize(sdist: Path, pins: dict[str, Pin], work: Path) -> dict[str, bytes]:
    """The C files the sdist's own setup.py writes (it calls cythonize() when it is loaded)."""
    venv = work / "venv"
    subprocess.run([uv_bin(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    reqs = work / "build.txt"
    reqs.write_text(render_pins({n: p for n, p in pins.items() if n in ("cython", "setuptools")}))
    subprocess.run([uv_bin(), "pip", "install", "-q", "--require-hashes", "--python", str(venv / "bin/python"),
                    "-r", str(reqs)], check=True)
    with tarfile.open(sdist) as tf:
        top = tf.getmembers()[0].name.split("/")[0]
        tf.extractall(work, filter="data")
    proc = subprocess.run([str(venv / "bin/python"), "setup.py", "--name"], cwd=work / top,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {str(c.relative_to(work / top)): c.read_bytes() for c in (work / top).rglob("*.c")}


def _members(sdist: Path) -> dict[str, bytes]:
    with tarfile.open(sdist) as tf:
        top = tf.getmembers()[0].name.split("/")[0]
        return {m.name.removeprefix(top + "/"): tf.extractfile(m).read() for m in tf if m.isfile()}


@pytest.mark.network
@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(cythonized.RECIPES))
def test_derived_sdist_has_setup_pys_own_c_and_builds_without_cython(name, real, tmp_path):
    (blob, filename, sha, pins, wheels), index_url = real[0][name], real[1]
    seen = Seen()
    derived = cythonized.derive(blob, name, filename, sha, pins, index_url, seen)
    assert derived is not None, seen
    assert derived.cython == pins["cython"].version and derived.from_sha256 == sha != derived.sha256

    own = _own_cythonize(blob, pins, tmp_path / "own")
    shipped = _members(derived.path)
    assert len(own) >= 20, sorted(own)  # this host's MIT krb5 selects most modules
    for c_file, text in own.items():
        assert METADATA.sub(b"", shipped[c_file]) == METADATA.sub(b"", text), f"{filename}: {c_file} differs"
    original = _members(blob)
    assert {k for k in shipped if k not in original} == {*derived_c(shipped), cythonized.LISTING}
    assert all(shipped[k] == v for k, v in original.items() if k != "setup.py"), "original files unchanged"

    # Built offline from the derived sdist and the pinned build requirements, as build-venv does.
    links = tmp_path / "links"
    links.mkdir()
    for wheel_name, path in wheels.items():
        os.link(path, links / wheel_name)
    os.link(derived.path, links / filename)
    proc = subprocess.run(
        [uv_bin(), "build", "--no-config", "--offline", "--no-index", "--find-links", str(links), "--wheel",
         "--cache-dir", str(tmp_path / "uv"), "--out-dir", str(tmp_path / "out"), str(links / filename)],
        capture_output=True, text=True, env={**os.environ, **native.COMPILE_ENV},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "Cythonizing" not in log and "because it" not in log, "Cython ran again on the target side"
    (wheel,) = (tmp_path / "out").glob("*.whl")
    built = {Path(n).with_suffix("").with_suffix("").as_posix() for n in zipfile.ZipFile(wheel).namelist()
             if n.endswith(".so")}
    assert built == {_module(c) for c in own}, "the same extension modules as the sdist's own build"


def derived_c(members: dict[str, bytes]) -> set[str]:
    listing = members[cythonized.LISTING].decode().splitlines()
    return {line for line in listing if line and not line.startswith("#")}


def _module(c_file: str) -> str:
    return c_file.removeprefix("src/").removesuffix(".c")


@pytest.mark.network
@pytest.mark.integration
def test_deriving_is_reproducible(real, tmp_path, monkeypatch):
    (blob, filename, sha, pins, _), index_url = real[0]["gssapi"], real[1]
    first = cythonized.derive(blob, "gssapi", filename, sha, pins, index_url, Seen())
    monkeypatch.setenv("AIRFLOW_PROD_CACHE", str(tmp_path / "other-cache"))
    again = cythonized.derive(blob, "gssapi", filename, sha, pins, index_url, Seen())
    assert first and again and first.path != again.path
    assert first.sha256 == again.sha256


def _sdist(path: Path, setup_py: bytes | None, name: str = "krb5-0.9.0") -> Path:
    files = {f"{name}/src/krb5/_a.pyx": b"x = 1\n"} | ({f"{name}/setup.py": setup_py} if setup_py is not None else {})
    with tarfile.open(path, "w:gz") as tf:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_a_setup_py_no_recipe_was_checked_against_ships_unchanged(tmp_path):
    sdist = _sdist(tmp_path / "krb5-0.9.0.tar.gz", b"from setuptools import setup\nsetup()\n")
    seen = Seen()
    pins = {"cython": Pin("cython", "3.2.1", ())}
    assert cythonized.derive(sdist, "krb5", sdist.name, "0" * 64, pins, "http://127.0.0.1:9/", seen) is None
    assert [level for level, _ in seen] == ["warn"] and "ships unchanged" in seen[0][1]
    assert cythonized.derive(sdist, "thrift", sdist.name, "0" * 64, pins, "http://127.0.0.1:9/", seen) is None
    assert cythonized.derive(sdist, "krb5", sdist.name, "0" * 64, {}, "http://127.0.0.1:9/", seen) is None
    assert len(seen) == 1, "no recipe or no Cython pin: nothing to say"
    sdist = _sdist(tmp_path / "pyproject-only.tar.gz", None)
    assert cythonized.derive(sdist, "krb5", "krb5-0.9.0.tar.gz", "0" * 64, pins, "http://127.0.0.1:9/", seen) is None
    assert "it has no setup.py" in seen[-1][1]


_docstring = st.sampled_from(["", '"""Build it."""\n', "'''Multi\nline\n'''\n", 'r"""raw"""\n'])
_future = st.lists(st.sampled_from(["from __future__ import annotations\n",
                                    "from __future__ import annotations, division\n",
                                    "from __future__ import (\n    annotations,\n)\n"]), max_size=2)
_head = st.lists(st.sampled_from(["#!/usr/bin/env python\n", "# -*- coding: utf-8 -*-\n", "\n", "# note\n"]),
                 max_size=3)


@settings(max_examples=60, deadline=None)
@given(head=_head, doc=_docstring, future=_future, tail_newline=st.booleans())
def test_prelude_runs_first_and_touches_the_listed_c_files(tmp_path_factory, head, doc, future, tail_newline):
    """Whatever a setup.py opens with, the prelude comes after its docstring and __future__
    imports, the result still runs, and the listed C files end up newer than anything before."""
    body = "".join(head) + doc + "".join(future) + "RAN = __doc__\n" + ("" if tail_newline else "X = 1")
    work = tmp_path_factory.mktemp("setup")
    (work / "src").mkdir()
    c_file = work / "src" / "_a.c"
    c_file.write_text("/* C */\n")
    os.utime(c_file, (0, 0))
    (work / cythonized.LISTING).write_text("# comment\nsrc/_a.c\n")
    (work / "setup.py").write_bytes(cythonized.with_prelude(body.encode()))
    proc = subprocess.run([sys.executable, "-c", "import runpy; g = runpy.run_path('setup.py'); print(g['RAN'])"],
                          cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert c_file.stat().st_mtime > 1e9
    expected_doc = doc.strip().lstrip("r").strip("'\"") if doc else "None"
    assert proc.stdout.strip().replace("\n", "") == expected_doc.replace("\n", "")
