"""The SBOMs (docs/sbom.md): CycloneDX 1.6 JSON of the wheelhouse and of the bundle, each
checked by CycloneDX's own strict validator and object model (support/sbom.py).

Over real files: the test index's tiny wheels and sdist (support/pkgindex.py), the
synthetic wheelhouse's real PyPI wheels (support/rpm.py), and wheels whose metadata is
hostile, by property. The SBOMs of a built bundle are checked where the build tests build
one (test_rpm_build.py, test_build_cli.py).
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from packageurl import PackageURL
from packaging.utils import canonicalize_name

from builder.pydeps import distmeta, sbom
from builder.pydeps.distmeta import MetadataError
from builder.rpm import sbom as rpm_sbom
from builder.rpm.plan import RpmPackage, SpecPlan
from support.pkgindex import PackageIndex, airflow_world, sdist, write_file
from support.rpm import synthetic_wheelhouse
from support.sbom import assert_valid_cyclonedx

EPOCH = 1765352100


def _wheelhouse_plan() -> SpecPlan:
    pkg = RpmPackage("airflow-prod-wheelhouse", "wheels", "wheels", arch="x86_64")
    return SpecPlan("airflow-prod-wheelhouse", "3.1.4", "20251210073500.1.0123abcd.el9", EPOCH, (pkg,), "")


def _wheel_with(tmp: Path, metadata: bytes, filename: str = "x-1.0-py3-none-any.whl") -> Path:
    """A wheel whose METADATA is exactly `metadata` (the dist-info name need not match it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x-1.0.dist-info/METADATA", metadata)
        zf.writestr("x/__init__.py", "")
    return write_file(tmp / filename, buf.getvalue())


def _meta(**fields: str | list[str]) -> bytes:
    lines = ["Metadata-Version: 2.4"]
    for key, value in fields.items():
        header = key.replace("_", "-")
        lines += [f"{header}: {v}" for v in (value if isinstance(value, list) else [value])]
    return ("\n".join(lines) + "\n\n").encode("utf-8", errors="surrogatepass")


def test_the_test_index_wheelhouse_gives_valid_cyclonedx(tmp_path):
    """Every file of the test index's Airflow world (support/pkgindex.py) plus its sdist."""
    index = airflow_world(PackageIndex())
    files = [write_file(tmp_path / f.filename, f.data) for fs in index.files.values() for f in fs]
    name, data = sdist("Pure_Pkg", "1.0")
    files.append(write_file(tmp_path / name, data))
    items = sbom.read_items(files, origins={name: "sdist-for-target"})
    doc = assert_valid_cyclonedx(rpm_sbom.wheelhouse_bom(_wheelhouse_plan(), items, "el9"))

    assert len(doc["components"]) == len(files) == 11
    by_file = {p["value"]: c for c in doc["components"] for p in c["properties"] if p["name"] == "airflow-prod:file"}
    core = by_file["apache_airflow_core-3.1.4-py3-none-any.whl"]
    assert core["purl"] == "pkg:pypi/apache-airflow-core@3.1.4?file_name=apache_airflow_core-3.1.4-py3-none-any.whl"
    assert core["hashes"] == [{"alg": "SHA-256", "content": index.file(core["properties"][0]["value"]).sha256}]
    pure = by_file["pure_pkg-1.0.tar.gz"]
    assert (pure["name"], pure["purl"]) == ("Pure_Pkg", "pkg:pypi/pure-pkg@1.0?file_name=pure_pkg-1.0.tar.gz")
    assert {"name": "airflow-prod:origin", "value": "sdist-for-target"} in pure["properties"]
    subject = doc["metadata"]["component"]
    assert subject["purl"] == ("pkg:rpm/airflow-prod/airflow-prod-wheelhouse@3.1.4-20251210073500.1.0123abcd.el9"
                               "?arch=x86_64&distro=el9")
    [dep] = doc["dependencies"]
    assert dep["ref"] == subject["bom-ref"] and sorted(dep["dependsOn"]) == sorted(by_ref(doc))
    assert doc["metadata"]["timestamp"] == "2025-12-10T07:35:00Z"


def by_ref(doc: dict) -> list[str]:
    return [c["bom-ref"] for c in doc["components"]]


def test_the_synthetic_wheelhouse_real_pypi_wheels_declare_their_licences():
    """six, idna, attrs and uv as PyPI serves them: licences as each one's metadata declares them."""
    wh = synthetic_wheelhouse()
    items = sbom.read_items([*wh.dir.iterdir(), wh.uv_wheel])
    doc = assert_valid_cyclonedx(rpm_sbom.wheelhouse_bom(_wheelhouse_plan(), items, "el9"))
    licences = {c["name"]: c["licenses"] for c in doc["components"]}
    declared = {"acknowledgement": "declared"}
    assert licences["attrs"] == [{"license": {"id": "MIT", **declared}}]          # License-Expression: MIT
    assert licences["six"] == [{"license": {"id": "MIT", **declared}}]            # License: MIT + classifier
    assert licences["idna"] == [{"license": {"name": "BSD License", **declared}}]  # an ambiguous classifier
    assert {lic["license"]["id"] for lic in licences["uv"]} == {"MIT", "Apache-2.0"}


@pytest.mark.parametrize(("fields", "expected"), [
    ({"License_Expression": "Apache-2.0 OR MIT", "Classifier": ["License :: OSI Approved :: BSD License"]},
     [{"expression": "Apache-2.0 OR MIT"}]),
    ({"License_Expression": "apache-2.0"}, [{"license": {"id": "Apache-2.0"}}]),
    ({"License_Expression": "Some House Licence"}, [{"license": {"name": "Some House Licence"}}]),
    ({"License": "BSD-3-Clause OR MIT"}, [{"expression": "BSD-3-Clause OR MIT"}]),
    ({"License": "Apache 2.0", "Classifier": ["License :: OSI Approved :: Apache Software License",
                                              "License :: OSI Approved"]},
     [{"license": {"name": "Apache 2.0"}}, {"license": {"id": "Apache-2.0"}}]),
    ({"License": "UNKNOWN"}, []),
    ({"Classifier": ["License :: OSI Approved :: MIT License", "License :: OSI Approved :: MIT License"]},
     [{"license": {"id": "MIT"}}]),
])
def test_licences_follow_pep_639_then_the_licence_field_and_classifiers(tmp_path, fields, expected):
    meta = distmeta.read(_wheel_with(tmp_path, _meta(Name="p", Version="1", **fields)))
    got = [{k: ({kk: vv for kk, vv in v.items() if kk != "acknowledgement"} if isinstance(v, dict) else v)
            for k, v in lic.items() if k != "acknowledgement"} for lic in sbom.licences(meta)]
    assert got == expected


def test_a_licence_text_in_the_licence_field_is_kept_as_text(tmp_path):
    text = "Copyright (c) 2024 Someone\n        |\n        |Permission is hereby granted, free of charge"
    meta = distmeta.read(_wheel_with(tmp_path, _meta(Name="p", Version="1", License=text)))
    [lic] = sbom.licences(meta)
    assert lic["license"]["name"] == "Copyright (c) 2024 Someone"
    assert lic["license"]["text"]["content"] == "Copyright (c) 2024 Someone\n\nPermission is hereby granted, free of charge"


def test_same_files_same_bytes_other_content_other_serial(tmp_path):
    one = _wheel_with(tmp_path / "a", _meta(Name="p", Version="1"))
    two = _wheel_with(tmp_path / "b", _meta(Name="p", Version="1", License="MIT"))
    plan = _wheelhouse_plan()
    first = rpm_sbom.wheelhouse_bom(plan, sbom.read_items([one]), "el9")
    assert first == rpm_sbom.wheelhouse_bom(plan, sbom.read_items([one]), "el9")
    other = rpm_sbom.wheelhouse_bom(plan, sbom.read_items([two]), "el9")
    assert json.loads(first)["serialNumber"] != json.loads(other)["serialNumber"]


def test_a_file_without_name_or_metadata_is_a_clear_error(tmp_path):
    nameless = _wheel_with(tmp_path, _meta(Version="1"))
    with pytest.raises(MetadataError, match=r"x-1\.0-py3-none-any\.whl: core metadata without Name"):
        distmeta.read(nameless)
    empty = write_file(tmp_path / "y-1.0.tar.gz", _tar({"y-1.0/setup.py": b""}))
    with pytest.raises(MetadataError, match=r"y-1\.0\.tar\.gz: holds no PKG-INFO"):
        distmeta.read(empty)
    with pytest.raises(MetadataError, match=r"z\.whl: cannot read its core metadata"):
        distmeta.read(write_file(tmp_path / "z.whl", b"not a zip"))


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# Anything an author (or an attacker) can write into a header: newlines that start new
# headers, NUL and other controls, lone surrogates, bidi marks, SPDX-looking fragments;
# mixed with well-formed names, versions and expressions so every branch is drawn.
_hostile = st.text(st.characters(codec=None, categories=None), max_size=60) | st.sampled_from([
    "MIT AND (", "GPL-2.0-only WITH", "Apache-2.0\nName: evil", "MIT OR", "(", "\x00", "\u202eMIT",
    "a/b", "x@y", "pkg:pypi/x", "%2F", "LicenseRef-x", "UNKNOWN", " ", "-", "a_b.C-d",
])
_names = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?\Z") | _hostile
_versions = st.sampled_from(["1.0", "2.0.0rc1", "1!2.0+local.7", "0.0.post1.dev3"]) | _hostile
_licences = st.sampled_from([
    "MIT", "mit", "MIT OR Apache-2.0", "(BSD-3-Clause AND MIT) OR PSF-2.0",
    "GPL-2.0-only WITH Classpath-exception-2.0", "Apache Software License", "",
]) | _hostile | st.builds(str.__add__, st.sampled_from(["MIT", "Apache-2.0 OR "]), _hostile)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=_names, version=_versions, lic=_licences, expr=_licences,
       classifiers=st.lists(_licences, max_size=3),
       as_sdist=st.booleans())
def test_hostile_metadata_still_gives_valid_cyclonedx(tmp_path_factory, name, version, lic, expr, classifiers,
                                                      as_sdist):
    fields: dict = {"Name": name, "Version": version, "License": lic, "License_Expression": expr,
                    "Classifier": [f"License :: {c}" for c in classifiers]}
    tmp = tmp_path_factory.mktemp("hostile")
    if as_sdist:
        path = write_file(tmp / "x-1.0.tar.gz", _tar({"x-1.0/PKG-INFO": _meta(**fields)}))
    else:
        path = _wheel_with(tmp, _meta(**fields))
    try:
        items = sbom.read_items([path])
    except MetadataError as exc:
        assert str(path) in exc.message and "without" in exc.message
        event("refused: no name or version")
        return
    meta = items[0].meta
    doc = assert_valid_cyclonedx(rpm_sbom.wheelhouse_bom(_wheelhouse_plan(), items, "el9"))
    [comp] = doc["components"]
    assert comp["name"] == meta.name and comp["version"] == meta.version
    event("with purl" if "purl" in comp else "no purl")
    event("licences: " + ",".join(sorted({"expression" if "expression" in lic else "license"
                                          for lic in comp.get("licenses", [])})))
    if "purl" in comp:
        purl = PackageURL.from_string(comp["purl"])
        assert (purl.type, purl.namespace, purl.name, purl.version) == (
            "pypi", None, canonicalize_name(meta.name), meta.version)
    if meta.license_expression or meta.license:
        assert comp["licenses"]


def test_the_checks_can_fail():
    """What CycloneDX's validator and model refuse, the helper refuses: an id SPDX does not
    list, a dependency on nothing, a serial number that is not a uuid."""
    good = rpm_sbom.wheelhouse_bom(_wheelhouse_plan(), [], "el9")
    assert_valid_cyclonedx(good)
    for spoil in (
        lambda d: d["metadata"]["component"].update(licenses=[{"license": {"id": "Not-An-SPDX-Id"}}]),
        lambda d: d["dependencies"].append({"ref": "nowhere", "dependsOn": ["nothing"]}),
        lambda d: d.update(serialNumber="urn:uuid:not-a-uuid"),
    ):
        doc = json.loads(good)
        spoil(doc)
        with pytest.raises(AssertionError):
            assert_valid_cyclonedx(json.dumps(doc))
