"""[airflow.overrides]: a package taken above the release's constraints for a fix, named by advisory.

The site model's errors, hostile input (Hypothesis), the lock with real uv against a local
index (tests/support/pkgindex.py: a FAB-shaped provider whose fixed release is newer than
the release's date cutoff and needs a newer dependency), the lock header and manifest
records, lock reuse, and `bundle audit` with the real OSV record of CVE-2026-46745.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.errors import SiteError
from builder.pydeps import manifest
from builder.pydeps.advisories.audit import audit_lock
from builder.pydeps.lockfile import Lock, LockError, LockOverride, render_overrides
from builder.pydeps.resolve import ensure_lock, input_hash, pinned_versions
from builder.site.load import site_from_data
from builder.site.values import RELEASE_PACKAGES
from support.cli import bundle
from support.pkgindex import site_data
from support.sites import REPO, minimal_data, write_site

FAB = "apache-airflow-providers-fab"
AIRFLOW_OSV = REPO / "tests" / "fixtures" / "osv" / "airflow"
EXAMPLE_LOCK = REPO / "locks" / "bigdata-prod.txt"


def quiet(level, message):
    pass


def with_overrides(overrides: dict, **airflow) -> dict:
    data = minimal_data("ov")
    data["airflow"] = {"overrides": overrides, **airflow}
    return data


def problems(data: dict) -> list[str]:
    with pytest.raises(SiteError) as err:
        site_from_data(data)
    return err.value.problems


# --- the site model --------------------------------------------------------------------------


def test_an_override_reads_as_typed_values():
    site = site_from_data(with_overrides({"Apache_Airflow_Providers_FAB": {
        "version": ">=3.7.2,<3.8", "reason": ["CVE-2026-46745", "GHSA-hrfv-mqp8-q5rw", "PYSEC-2023-221"]}}))
    override = site.airflow.override_of(FAB)
    assert override is not None and override.reason == ("CVE-2026-46745", "GHSA-hrfv-mqp8-q5rw", "PYSEC-2023-221")
    assert "3.7.5" in override.specifier and "3.8.0" not in override.specifier
    exact = site_from_data(with_overrides({FAB: {"version": "3.7.2", "reason": ["CVE-2026-46745"]}}))
    assert str(exact.airflow.overrides[FAB].specifier) == "==3.7.2"


@pytest.mark.parametrize("overrides, expected", [
    ({"bad name!": {"version": "1", "reason": ["CVE-2026-46745"]}},
     "airflow.overrides.\"bad name!\" = 'bad name!': not a package name: letters, digits, '.', '_' and '-'"),
    ({"apache_airflow_core": {"version": "3.1.8", "reason": ["CVE-2026-30911"]}},
     "airflow.overrides.apache_airflow_core = 'apache_airflow_core': is part of the Airflow release itself: "
     "set airflow.version instead of overriding it"),
    ({FAB: {"version": ">=3.7,<", "reason": ["CVE-2026-46745"]}},
     f"airflow.overrides.{FAB}.version = '>=3.7,<': not a PEP 440 version or specifier: use 3.7.2, ==3.7.2"),
    ({FAB: {"version": "===3.7.2", "reason": ["CVE-2026-46745"]}},
     f"airflow.overrides.{FAB}.version = '===3.7.2': '===' (arbitrary equality) is not supported"),
    ({FAB: {"version": "3.7.2"}}, f"airflow.overrides.{FAB}.reason: required key is missing"),
    ({FAB: {"version": "3.7.2", "reason": []}}, f"airflow.overrides.{FAB}.reason = []: must have at least 1 item"),
    ({FAB: {"version": "3.7.2", "reason": "CVE-2026-46745"}},
     f"airflow.overrides.{FAB}.reason = 'CVE-2026-46745': wrong type (str): must be a list (a TOML array"),
    ({FAB: {"version": "3.7.2", "reason": ["cve-2026-46745"]}},
     f"airflow.overrides.{FAB}.reason[0] = 'cve-2026-46745': not an advisory ID: use CVE-YYYY-NNNN, "
     "GHSA-xxxx-xxxx-xxxx"),
    ({FAB: {"version": "3.7.2", "reason": ["fixes LDAP"]}},
     f"airflow.overrides.{FAB}.reason[0] = 'fixes LDAP': not an advisory ID"),
    ({FAB: {"version": "3.7.2", "reason": ["CVE-2026-46745", "CVE-2026-46745"]}},
     f"airflow.overrides.{FAB}.reason = ['CVE-2026-46745', 'CVE-2026-46745']: listed twice: CVE-2026-46745"),
    ({FAB: {"version": "3.7.2", "reason": ["CVE-2026-46745"], "why": "x"}}, f"airflow.overrides.{FAB}.why: unknown key"),
    ({FAB: {"version": "3.7.2", "reason": ["CVE-2026-46745"]},
      "Apache.Airflow.Providers.Fab": {"version": "3.7.3", "reason": ["CVE-2026-46745"]}},
     "airflow.overrides = {...}: the same package twice (names compare as PEP 503 normalizes them): "
     f"'{FAB}' and 'Apache.Airflow.Providers.Fab'"),
], ids=["bad-name", "release-package", "bad-specifier", "arbitrary-equality", "no-reason", "empty-reason",
        "reason-not-a-list", "lower-case-cve", "free-text-reason", "reason-twice", "unknown-key", "same-package"])
def test_bad_overrides_are_named_with_key_value_and_what_is_valid(overrides, expected):
    found = problems(with_overrides(overrides))
    assert any(p.startswith(expected) for p in found), found


_ID = st.one_of(
    st.from_regex(r"CVE-[0-9]{4}-[0-9]{4,7}", fullmatch=True),
    st.from_regex(r"GHSA(-[23456789cfghjmpqrvwx]{4}){3}", fullmatch=True),
    st.from_regex(r"PYSEC-[0-9]{4}-[0-9]{1,5}", fullmatch=True),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(max_size=40), version=st.text(max_size=40), reason=st.text(max_size=40))
def test_hostile_values_are_refused_with_the_key_or_are_safe_in_the_lock_header(name, version, reason):
    """Whatever is written, validation either refuses it naming the key, or the values fit the
    lock header's one line and read back unchanged."""
    data = with_overrides({name: {"version": version, "reason": [reason]}})
    try:
        site = site_from_data(data)
    except SiteError as err:
        assert err.problems and all(p.startswith("airflow.overrides") for p in err.problems), err.problems
        return
    [(written, override)] = site.airflow.overrides.items()
    assert re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", written)
    assert written.lower().replace("_", "-").replace(".", "-") not in RELEASE_PACKAGES
    assert str(override.specifier), "an override always asks for something"
    recorded = LockOverride(written.lower(), "1.0", override.version, override.reason)
    lock = Lock.parse(f"# overrides: {render_overrides((recorded,))}\nsix==1.0\n")
    assert lock.overrides == (recorded,)


@given(ids=st.lists(_ID, min_size=1, max_size=4, unique=True),
       spec=st.sampled_from(["3.7.2", "==3.7.2", ">=3.7.2,<3.8", "~=3.7.2", ">= 3.7 , != 3.7.1", "3.7.2.post1"]),
       raised=st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True), max_size=3, unique=True))
def test_every_valid_override_round_trips_through_the_header(ids, spec, raised):
    site = site_from_data(with_overrides({FAB: {"version": spec, "reason": ids}}))
    o = site.airflow.overrides[FAB]
    recorded = (LockOverride(FAB, "3.7.2", o.version, o.reason, tuple(raised)),
                LockOverride("flask-appbuilder", "5.2.1", "5.2.1", o.reason))
    assert Lock.parse(f"# overrides: {render_overrides(recorded)}\nsix==1.0\n").overrides == recorded


# --- the lock, real uv against a local index -------------------------------------------------------
#
# Like the real case: the release (3.1.4, cutoff 2025-12-10T07:35Z) took fab 1.0, whose upper bound
# holds sqlish at 1.0. fab 2.0 (the fix, June 2026) needs flaskish>=2 (May 2026, after the cutoff);
# flaskish 2.1 came after fab 2.0. fab 3.0 needs apache-airflow>=3.2; fab 2.5 needs a paramiko
# that does not exist.

def fab_world(index):
    from support.pkgindex import airflow_world

    airflow_world(index)
    add = index.add_wheel
    add(FAB, "1.0.0", upload_time="2025-06-01T00:00:00.000000Z",
        requires=["apache-airflow>=3.0", "flaskish<2", "sqlish<2"])
    add(FAB, "2.0.0", upload_time="2026-06-22T19:58:59.000000Z",
        requires=["apache-airflow>=3.0", "flaskish>=2", "sqlish", 'nothere>=9; python_version < "3.8"'])
    add(FAB, "2.5.0", upload_time="2026-07-01T00:00:00.000000Z", requires=["apache-airflow>=3.0", "paramiko>=4"])
    add(FAB, "3.0.0", upload_time="2026-08-01T00:00:00.000000Z", requires=["apache-airflow>=3.2.0", "flaskish>=2"])
    add("flaskish", "1.0", upload_time="2025-01-01T00:00:00.000000Z")
    add("flaskish", "2.0", upload_time="2026-05-01T00:00:00.000000Z")
    add("flaskish", "2.1", upload_time="2026-07-01T00:00:00.000000Z")
    add("sqlish", "1.0", upload_time="2024-01-01T00:00:00.000000Z")
    add("sqlish", "2.0", upload_time="2025-01-01T00:00:00.000000Z")
    return index


@pytest.fixture
def fab_index(pkgindex):
    return fab_world(pkgindex)


def fab_site(index, version=None, reason=("CVE-2026-46745",), **airflow):
    overrides = {FAB: {"version": version, "reason": list(reason)}} if version else {}
    return site_from_data(site_data(index, providers=[FAB], overrides=overrides, **airflow))


def test_without_an_override_the_release_keeps_its_own_fab(fab_index, tmp_path):
    lock = ensure_lock(fab_site(fab_index), locks_dir=tmp_path, index_url=fab_index.simple, notify=quiet)
    versions = pinned_versions(lock)
    assert (versions[FAB], versions["flaskish"], versions["sqlish"]) == ("1.0.0", "1.0", "1.0")
    assert "overrides" not in lock.header and lock.overrides == ()


def test_an_override_takes_the_fix_raises_what_it_needs_and_holds_the_rest(fab_index, tmp_path):
    seen: list[str] = []
    site = fab_site(fab_index, "2.0.0", reason=("CVE-2026-46745", "CVE-2026-59245"))
    lock = ensure_lock(site, locks_dir=tmp_path, index_url=fab_index.simple, notify=lambda lv, m: seen.append(m))
    versions = pinned_versions(lock)
    assert versions[FAB] == "2.0.0"
    # flaskish>=2 is newer than the release's cutoff: raised, but no newer than fab 2.0's own upload
    assert versions["flaskish"] == "2.0"
    # sqlish: fab 2.0 drops the old fab's <2 bound; the release's own resolution holds it
    assert versions["sqlish"] == "1.0"
    assert versions["paramiko"] == "3.4.0"  # still the release's cutoff
    assert (f"airflow.overrides.{FAB}: taking {FAB} 2.0.0 for CVE-2026-46745, CVE-2026-59245; raises with it "
            "flaskish (its requirements the release cannot meet)") in seen
    expected = (LockOverride(FAB, "2.0.0", "2.0.0", ("CVE-2026-46745", "CVE-2026-59245"), ("flaskish",)),)
    assert lock.overrides == expected and Lock.read(lock.path).overrides == expected
    assert lock.header["overrides"] == f"{FAB} 2.0.0 (asked 2.0.0) for CVE-2026-46745 CVE-2026-59245 raising flaskish"
    assert f"{FAB}==2.0.0" in lock.requirements and FAB not in lock.requirements
    # unchanged: reused; a changed reason or version is a changed input
    assert ensure_lock(site, locks_dir=tmp_path, notify=quiet).reused
    for other in (fab_site(fab_index, "2.0.0"), fab_site(fab_index, "==2.0.0", reason=("CVE-2026-46745", "CVE-2026-59245"))):
        assert input_hash(other, "uv", fab_index.simple) != lock.input_hash
    assert input_hash(fab_site(fab_index), "uv", fab_index.simple) != lock.input_hash
    again = ensure_lock(fab_site(fab_index), locks_dir=tmp_path, notify=quiet)
    assert not again.reused and pinned_versions(again)[FAB] == "1.0.0" and again.overrides == ()


def test_a_specifier_takes_the_newest_release_that_installs_with_the_site(fab_index, tmp_path):
    seen: list[str] = []
    site = fab_site(fab_index, ">=2,!=2.5.0")
    lock = ensure_lock(site, locks_dir=tmp_path, index_url=fab_index.simple, notify=lambda lv, m: seen.append(m))
    assert pinned_versions(lock)[FAB] == "2.0.0"
    assert (f"airflow.overrides.{FAB}: {FAB} 3.0.0 requires apache-airflow>=3.2.0 (its Requires-Dist), and the "
            "site's release pins apache-airflow 3.1.4; taking 2.0.0, the newest that installs with it") in seen


@pytest.mark.parametrize("version, message", [
    ("3.0.0", rf"airflow\.overrides\.{FAB}: version = '3\.0\.0': {FAB} 3\.0\.0 requires apache-airflow>=3\.2\.0 "
              r"\(its Requires-Dist\), and the site's release pins apache-airflow 3\.1\.4: it cannot install with this "
              r"release\nhint: pick a version"),
    ("9.9", rf"airflow\.overrides\.{FAB}: version = '9\.9': no release of {FAB} on the index matches it for "
            r"Python 3\.11\.7\nhint: newest releases: 1\.0\.0, 2\.0\.0, 2\.5\.0, 3\.0\.0"),
    ("2.5.0", rf"airflow\.overrides: the release does not resolve with {FAB} 2\.5\.0; the resolver says:\n"
              r"(.|\n)*paramiko>=4(.|\n)*\nhint: each requirement it names must fit the site's Airflow"),
], ids=["needs-newer-airflow", "no-such-version", "unresolvable-requirement"])
def test_an_override_that_cannot_install_says_which_requirement(fab_index, tmp_path, version, message):
    with pytest.raises(LockError) as err:
        ensure_lock(fab_site(fab_index, version), locks_dir=tmp_path, index_url=fab_index.simple, notify=quiet)
    assert re.search(message, str(err.value)), str(err.value)
    assert not list(tmp_path.iterdir()), "no lock file written"


def test_the_pip_compile_backend_refuses_an_override_on_a_date_cutoff(fab_index, tmp_path):
    with pytest.raises(LockError, match="airflow.overrides on a date-cutoff lock needs --backend uv"):
        ensure_lock(fab_site(fab_index, "2.0.0"), locks_dir=tmp_path, backend="pip-compile",
                    index_url=fab_index.simple, notify=quiet)


def test_with_official_constraints_the_override_replaces_its_pin(fab_index, tmp_path):
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(f"{FAB}==1.0.0\nflaskish==1.0\nsqlish==1.0\nparamiko==3.4.0\nsix==1.16.0\n")
    site = fab_site(fab_index, "2.0.0", constraints=str(constraints))
    lock = ensure_lock(site, locks_dir=tmp_path / "locks", index_url=fab_index.simple, notify=quiet)
    versions = pinned_versions(lock)
    assert lock.method.startswith("constraints ")
    # no cutoff with constraints: the raised flaskish is the newest; everything else as constrained
    assert (versions[FAB], versions["flaskish"], versions["sqlish"], versions["six"]) == ("2.0.0", "2.1", "1.0", "1.16.0")
    assert lock.overrides[0].raised == ("flaskish",)


def test_the_wheelhouse_manifest_records_each_override(fab_index, tmp_path):
    lock = ensure_lock(fab_site(fab_index, "2.0.0"), locks_dir=tmp_path, index_url=fab_index.simple, notify=quiet)
    wh = manifest.Wheelhouse(tmp_path, [], tmp_path / "requirements.lock", None, tmp_path / "manifest.json", None)
    data = json.loads(manifest.write(wh, fab_site(fab_index, "2.0.0"), lock, {}).read_text())
    assert data["lock"]["overrides"] == [{"package": FAB, "version": "2.0.0", "asked": "2.0.0",
                                          "reasons": ["CVE-2026-46745"], "raised": ["flaskish"]}]


# --- bundle audit ------------------------------------------------------------------------------------


def example_lock_with_fab(tmp_path: Path, version: str, reasons: str, name: str = "bigdata-prod") -> Path:
    """The example lock with FAB moved to `version` and an overrides header line, as <tmp>/locks/<name>.txt."""
    out = []
    for line in EXAMPLE_LOCK.read_text().splitlines():
        if line.startswith(f"{FAB}=="):
            line = f"{FAB}=={version} \\"
        if line.startswith("# backend:"):
            out.append(f"# overrides: {FAB} {version} (asked {version}) for {reasons} raising flask-appbuilder")
        out.append(line)
    path = tmp_path / "locks" / f"{name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")
    return path


def test_audit_shows_the_reason_resolved_when_the_pin_reaches_a_fix(tmp_path):
    lock = Lock.read(example_lock_with_fab(tmp_path, "3.7.2", "CVE-2026-46745 CVE-2026-59245"))
    result = audit_lock(lock, [AIRFLOW_OSV], notify=quiet)
    assert not [f for f in result.findings if f.package == FAB]
    lines = result.lines()
    assert f"{FAB} 3.7.2 (airflow.overrides)" in lines
    assert f"  {'CVE-2026-46745':<20} resolved by the override (fixed in 3.6.4)" in lines
    # issue 21's records do not hold CVE-2026-59245: said, never shown as resolved
    assert any(line.startswith(f"  {'CVE-2026-59245':<20} not in the feed") for line in lines)
    as_json = {r["id"]: r["status"] for r in result.as_json()["overrides"]}
    assert as_json == {"CVE-2026-46745": "resolved", "CVE-2026-59245": "not-in-feed"}


def test_audit_keeps_an_override_that_falls_short_open(tmp_path):
    lock = Lock.read(example_lock_with_fab(tmp_path, "3.6.3", "CVE-2026-46745"))
    result = audit_lock(lock, [AIRFLOW_OSV], notify=quiet)
    assert [f.id for f in result.findings if f.package == FAB] == ["CVE-2026-46745"]
    assert f"  {'CVE-2026-46745':<20} STILL OPEN: 3.6.3 does not reach a fixed version (fixed in 3.6.4)" in result.lines()
    assert result.as_json()["overrides"][0]["status"] == "open"


def test_the_audit_cli_prints_the_resolution(tmp_path):
    data = minimal_data("bigdata-prod")
    site = write_site(tmp_path / "site.toml", data)
    example_lock_with_fab(tmp_path, "3.7.2", "CVE-2026-46745")
    proc = bundle("audit", "--site", str(site), "--locks-dir", str(tmp_path / "locks"), "--advisories", str(AIRFLOW_OSV))
    assert proc.returncode == 0, proc.stderr
    assert f"{FAB} 3.7.2 (airflow.overrides)\n  CVE-2026-46745       resolved by the override (fixed in 3.6.4)" in proc.stdout
    assert "Traceback" not in proc.stderr
