"""`bundle audit` and `bundle advisories`: the lock against real OSV records, offline.

The feeds are real: tests/fixtures/osv/pypa/ is a slice of the PyPA advisory database,
tests/fixtures/osv/airflow/ the advisories of issue 21 written as OSV records (their
READMEs say where each comes from). The CLI runs as a user runs it (a child process).
"""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.pydeps.advisories.audit import audit, audit_lock
from builder.pydeps.advisories.feed import import_feed, load_imported, read_sources
from builder.pydeps.advisories.osv import OSVError, parse
from builder.pydeps.lockfile import Lock
from support.cli import bundle
from support.sites import EXAMPLE, REPO, small_data, write_site

FIXTURES = REPO / "tests" / "fixtures" / "osv"
PYPA, AIRFLOW = FIXTURES / "pypa", FIXTURES / "airflow"
EXAMPLE_LOCK = REPO / "locks" / "bigdata-prod.txt"

# Issue 21's advisories on this deployment's path: package and first fixed release.
ISSUE_21 = {
    "CVE-2026-30911": ("apache-airflow", "3.1.8"), "CVE-2026-28779": ("apache-airflow", "3.1.8"),
    "CVE-2025-57735": ("apache-airflow", "3.2.0"), "CVE-2026-31987": ("apache-airflow", "3.2.0"),
    "CVE-2026-48726": ("apache-airflow", "3.2.2"), "CVE-2026-45426": ("apache-airflow", "3.2.2"),
    "CVE-2026-40861": ("apache-airflow", "3.2.2"), "CVE-2026-46745": ("apache-airflow-providers-fab", "3.6.4"),
}


def _record(name: str) -> dict:
    [path] = FIXTURES.rglob(f"{name}.json")
    return json.loads(path.read_text())


def _lock_with(tmp_path: Path, site_name: str = "bigdata-prod", **versions: str) -> Path:
    """The example lock with some pins moved (`apache_airflow="3.3.2"`), as <tmp>/locks/<site>.txt."""
    lines = []
    for line in EXAMPLE_LOCK.read_text().splitlines():
        for name, version in versions.items():
            if line.startswith(name.replace("_", "-") + "=="):
                line = f"{name.replace('_', '-')}=={version} \\"
        lines.append(line)
    path = tmp_path / "locks" / f"{site_name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# --- the example's lock against the real records -----------------------------------------------


def test_the_example_lock_shows_issue_21s_advisories_with_their_fixed_versions():
    report = audit_lock(Lock.read(EXAMPLE_LOCK), [PYPA, AIRFLOW])
    found = {f.id: f for f in report.findings}
    for cve, (package, fixed) in ISSUE_21.items():
        if package == "apache-airflow-providers-fab":
            continue  # the example's override takes the fix (below)
        assert found[cve].package == package and found[cve].fixed == (fixed,), found[cve]
        assert found[cve].upgrade_to == fixed
    assert found["CVE-2026-30911"].version == "3.1.4"
    # The example raises the FAB provider to 3.7.2 for CVE-2026-46745 (airflow.overrides): no
    # finding, and the override shows the advisory resolved.
    assert "CVE-2026-46745" not in found
    fab = next(r for r in report.overrides if r.id == "CVE-2026-46745")
    assert (fab.package, fab.version, fab.resolved, fab.fixed) == ("apache-airflow-providers-fab", "3.7.2", True, ("3.6.4",))
    # A real PyPA record matches too: werkzeug 2.2.3 (CVE-2023-46136, fixed in 2.3.8 and 3.0.1).
    werkzeug = found["PYSEC-2023-221"]
    assert werkzeug.package == "werkzeug" and werkzeug.fixed == ("2.3.8", "3.0.1") and werkzeug.upgrade_to == "2.3.8"
    assert set(werkzeug.aliases) == {"CVE-2023-46136", "GHSA-hrfv-mqp8-q5rw"}
    assert (werkzeug.severity.level, werkzeug.severity.score) == ("high", 7.5)
    # The old Airflow 2 records (fixed long before 3.1.4) and the withdrawn redis one do not.
    assert not any(f.id.startswith("PYSEC") and f.package == "apache-airflow" for f in report.findings)
    assert set(found) == set(ISSUE_21) - {"CVE-2026-46745"} | {"PYSEC-2023-221"}


def test_a_site_on_the_fixed_releases_shows_none_of_them(tmp_path):
    lock = Lock.read(_lock_with(tmp_path, apache_airflow="3.3.2", apache_airflow_providers_fab="3.6.6"))
    assert not {f.id for f in audit_lock(lock, [AIRFLOW]).findings}


def test_between_fixes_only_the_later_ones_remain(tmp_path):
    """3.1.8 fixed two of them; 3.2.0 and 3.2.2 the rest: the boundaries are PEP 440 exact."""
    lock = Lock.read(_lock_with(tmp_path, apache_airflow="3.1.8", apache_airflow_providers_fab="3.6.4rc1"))
    found = {f.id for f in audit_lock(lock, [AIRFLOW]).findings}
    assert found == {cve for cve, (_, fixed) in ISSUE_21.items() if fixed != "3.1.8"}


def test_withdrawn_records_are_ignored_and_would_match_otherwise():
    record = _record("PYSEC-2023-73")  # redis: introduced 0, never fixed, withdrawn
    pins = {"redis": "6.4.0"}
    feed, _ = read_sources([PYPA])
    assert not audit(pins, feed, "lock").findings
    revived = {k: v for k, v in record.items() if k != "withdrawn"}
    from builder.pydeps.advisories.feed import FeedInfo, _feed

    alive = _feed([parse(revived, "revived")], FeedInfo((), 1, 0, 0, (), ""))
    assert [f.id for f in audit(pins, alive, "lock").findings] == ["PYSEC-2023-73"]


def test_git_ranges_are_ignored():
    record = _record("PYSEC-2023-94")  # flask-appbuilder: a GIT range and an ECOSYSTEM one, fixed 4.3.2
    git_only = copy.deepcopy(record)
    git_only["affected"][0]["ranges"] = [r for r in record["affected"][0]["ranges"] if r["type"] == "GIT"]
    git_only["affected"][0]["versions"] = []
    from builder.pydeps.advisories.ranges import affects

    assert affects(parse(record, "r").affected[0], "4.3.1").affected
    assert not affects(parse(git_only, "r").affected[0], "4.3.1").affected


def test_non_pep440_versions_in_a_real_list_do_not_break_matching():
    """paramiko's record lists "0.1-bulbasaur" among its versions and has two ranges."""
    from builder.pydeps.advisories.ranges import affects

    entry = parse(_record("PYSEC-2022-166"), "r").affected[0]
    assert affects(entry, "2.10.0").affected and affects(entry, "0.1-bulbasaur").affected
    assert not affects(entry, "2.10.1").affected and not affects(entry, "2.9.3").affected


def test_records_naming_each_other_are_one_finding():
    """osv.dev's export has PYSEC-… and GHSA-… for one vulnerability: one finding, both names."""
    pysec = _record("PYSEC-2023-221")
    ghsa = copy.deepcopy(pysec) | {"id": "GHSA-hrfv-mqp8-q5rw", "aliases": ["CVE-2023-46136", "PYSEC-2023-221"],
                                   "database_specific": {"severity": "MODERATE"}}
    del ghsa["severity"]
    from builder.pydeps.advisories.feed import FeedInfo, _feed

    feed = _feed([parse(pysec, "a"), parse(ghsa, "b")], FeedInfo((), 2, 0, 0, (), ""))
    [finding] = audit({"werkzeug": "2.2.3"}, feed, "lock").findings
    assert finding.id == "GHSA-hrfv-mqp8-q5rw"
    assert finding.aliases == ("CVE-2023-46136", "PYSEC-2023-221")
    assert finding.severity.level == "high"  # the worst of the two: the CVSS 7.5 over MODERATE


# --- ranges, versions and names by property -----------------------------------------------------

_release = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30))
_pre = st.sampled_from(["", "a1", "b2", "rc1", ".post1", ".dev3"])
_version = st.builds(lambda r, p: ".".join(map(str, r)) + p, _release, _pre)


def _entry(events: list[dict], versions: list[str] = (), name: str = "pkg") -> dict:
    return {"id": "TEST-1", "affected": [{"package": {"ecosystem": "PyPI", "name": name},
                                          "ranges": [{"type": "ECOSYSTEM", "events": events}],
                                          "versions": list(versions)}]}


@settings(max_examples=300, deadline=None)
@given(st.lists(_version, min_size=2, max_size=8, unique=True), _version, st.booleans(), st.randoms())
def test_a_version_is_affected_exactly_inside_the_generated_ranges(bounds, probe, last_affected, rnd):
    """Disjoint intervals [introduced, fixed) (or [introduced, last_affected]), events in any
    order: affected iff the probe is inside one, by PEP 440 order (an independent oracle)."""
    from packaging.version import Version

    from builder.pydeps.advisories.ranges import affects

    ordered = sorted(bounds, key=Version)
    if len({Version(v) for v in ordered}) != len(ordered):
        return  # "1.0" and "1.0.0" are one version: not a range boundary pair
    pairs = list(zip(ordered[::2], ordered[1::2], strict=False))
    end = "last_affected" if last_affected else "fixed"
    events = [e for lo, hi in pairs for e in ({"introduced": lo}, {end: hi})]
    rnd.shuffle(events)
    p = Version(probe)
    inside = any(Version(lo) <= p and (p <= Version(hi) if last_affected else p < Version(hi)) for lo, hi in pairs)
    assert affects(parse(_entry(events), "t").affected[0], probe).affected == inside


@settings(max_examples=200, deadline=None)
@given(st.lists(_version, max_size=6), _version, _version)
def test_limit_caps_a_range_and_a_list_adds_versions(listed, probe, limit):
    from packaging.version import Version

    from builder.pydeps.advisories.ranges import affects

    entry = parse(_entry([{"introduced": "0"}, {"limit": limit}], listed), "t").affected[0]
    expected = Version(probe) < Version(limit) or any(Version(v) == Version(probe) for v in listed)
    assert affects(entry, probe).affected == expected


_separators = st.sampled_from(["-", "_", ".", "--", "_-."])


@given(st.lists(st.sampled_from(["apache", "airflow", "providers", "fab"]), min_size=1, max_size=4),
       st.data())
def test_pep503_names_match_however_the_record_writes_them(words, data):
    """`Apache_Airflow.providers--FAB` in a record is the lock's apache-airflow-providers-fab."""
    canonical = "-".join(words)
    written = words[0]
    for word in words[1:]:
        written += data.draw(_separators) + word
    written = "".join(c.upper() if data.draw(st.booleans()) else c for c in written)
    advisory = parse(_entry([{"introduced": "0"}], name=written), "t")
    assert [a.name for a in advisory.affected] == [canonical]
    assert advisory.affecting(canonical)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["affected", "severity", "aliases", "id", "database_specific", "summary", "withdrawn"]),
       _json)
def test_a_hostile_field_reads_or_fails_with_the_file_named(field, value):
    """Whatever JSON sits in a field, parse gives an Advisory or an OSVError naming the file."""
    record = _record("PYSEC-2023-221") | {field: value}
    try:
        parse(record, "feed.zip:X.json")
    except OSVError as exc:
        assert exc.message.startswith("feed.zip:X.json")


# --- severity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, vector, level, score", [
    ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "critical", 9.8),
    ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:H", "high", 8.1),
    ("CVSS_V3", "CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", "low", 1.8),
    ("CVSS_V4", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "critical", 9.3),
    ("CVSS_V4", "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N", "medium", 5.3),
    ("CVSS_V2", "AV:N/AC:L/Au:N/C:P/I:P/A:P", "high", 7.5),
])
def test_cvss_base_scores_are_computed_from_the_vector(kind, vector, level, score):
    record = _record("PYSEC-2023-221") | {"severity": [{"type": kind, "score": vector}]}
    severity = parse(record, "r").severity
    assert (severity.level, severity.score, severity.kind) == (level, score, kind)


def test_the_newest_cvss_version_wins_and_a_word_is_the_fallback():
    both = _record("PYSEC-2023-221") | {"severity": [
        {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
        {"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N"}]}
    assert parse(both, "r").severity.kind == "CVSS_V4"
    word = {k: v for k, v in _record("PYSEC-2023-221").items() if k != "severity"}
    assert parse(word | {"database_specific": {"severity": "MODERATE"}}, "r").severity.level == "medium"
    assert parse(word, "r").severity.level == "unknown"


@pytest.mark.parametrize("change, message", [
    ({"database_specific": {"severity": "EXTREME"}}, r"database_specific\.severity: unknown severity 'EXTREME'"),
    ({"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:X"}]}, r"severity\[0\]\.score: CVSS_V3 vector"),
    ({"severity": [{"type": "CVSS_V3", "score": "CVSS:4.0/AV:N"}]}, r"does not start with CVSS:3\.0/ or CVSS:3\.1/"),
    ({"affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "ranges": [{"type": "ECOSYSTEM",
      "events": [{"introduced": "0"}, {"fixd": "1"}]}]}]}, r"affected\[0\]\.ranges\[0\]\.events\[1\]: expected one of"),
    ({"affected": [{"package": {"ecosystem": "PyPI", "name": "../../etc/x"}}]}, r"is not a PyPI project name"),
    ({"id": ""}, r"id: expected a non-empty string"),
])
def test_unreadable_records_name_the_file_and_the_key(change, message):
    with pytest.raises(OSVError, match=r"^feed/X\.json.*" + message):
        parse(_record("PYSEC-2023-221") | change, "feed/X.json")


# --- import: zip and directory; the CLI ------------------------------------------------------


def _zip_of(dest: Path, *dirs: Path) -> Path:
    """A zip laid out as osv.dev's <ecosystem>/all.zip: one <ID>.json per record, flat."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for d in dirs:
            for path in sorted(d.rglob("*.json")):
                z.write(path, path.name)
    return dest


def test_zip_and_directory_imports_give_the_same_findings(tmp_path):
    zipped = _zip_of(tmp_path / "all.zip", PYPA, AIRFLOW)
    from_zip = import_feed([zipped], tmp_path / "db-zip")
    from_dirs = import_feed([PYPA, AIRFLOW], tmp_path / "db-dir")
    assert from_zip.records == from_dirs.records == 44 and from_zip.withdrawn == 1
    assert from_zip.sources[0].kind == "zip" and from_zip.sources[0].files == 45
    pins = Lock.read(EXAMPLE_LOCK)
    a = audit_lock(pins, directory=tmp_path / "db-zip")
    b = audit_lock(pins, directory=tmp_path / "db-dir")
    assert [f.as_json() | {"sources": None} for f in a.findings] == [f.as_json() | {"sources": None} for f in b.findings]
    assert len(a.findings) == 8  # the FAB advisory is resolved by the example's override
    # Only the pinned packages' files are read; a re-import replaces the feed as a whole.
    assert sorted(p.name for p in (tmp_path / "db-dir" / "pypi").iterdir())[:2] == [
        "apache-airflow-providers-apache-spark.json", "apache-airflow-providers-fab.json"]
    import_feed([PYPA], tmp_path / "db-dir")
    assert load_imported(["apache-airflow-providers-fab"], tmp_path / "db-dir").by_package == {}


def _env(db: Path) -> dict[str, str]:
    return {"AIRFLOW_PROD_ADVISORIES": str(db)}


def test_the_cli_imports_a_zip_and_gates_a_pipeline_with_fail_on(tmp_path):
    env = _env(tmp_path / "db")
    none = bundle("audit", "--site", str(EXAMPLE), extra_env=env)
    assert none.returncode == 1 and "no advisory feed imported" in none.stderr
    assert "Traceback" not in none.stderr

    # Only the PyPA slice: one finding for the example, werkzeug's, high (CVSS 7.5).
    imported = bundle("advisories", "import", str(_zip_of(tmp_path / "all.zip", PYPA)), extra_env=env)
    assert imported.returncode == 0, imported.stderr
    assert "36 PyPI records" in imported.stdout and "1 withdrawn" in imported.stdout
    shown = bundle("advisories", "show", extra_env=env)
    assert "all.zip (zip, 37 files" in shown.stdout
    plain = bundle("audit", "--site", str(EXAMPLE), extra_env=env)
    assert plain.returncode == 0, plain.stderr
    assert "werkzeug 2.2.3" in plain.stdout and "PYSEC-2023-221" in plain.stdout
    assert "high 7.5 (CVSS v3)" in plain.stdout and "CVE-2023-46136" in plain.stdout
    assert "1 advisories in 1 of 205 packages (1 high)" in plain.stderr
    assert bundle("audit", "--site", str(EXAMPLE), "--fail-on", "critical", extra_env=env).returncode == 0
    gated = bundle("audit", "--site", str(EXAMPLE), "--fail-on", "high", extra_env=env)
    assert gated.returncode == 3 and "1 advisories at or above --fail-on high: PYSEC-2023-221 (werkzeug)" in gated.stderr

    # With issue 21's records (no score published with them: unknown fails every threshold).
    assert bundle("advisories", "import", str(PYPA), str(AIRFLOW), extra_env=env).returncode == 0
    as_json = bundle("audit", "--site", str(EXAMPLE), "--json", "--fail-on", "critical", extra_env=env)
    assert as_json.returncode == 3
    data = json.loads(as_json.stdout)
    assert data["failed"] is True and data["counts"]["unknown"] == 7 and data["counts"]["high"] == 1
    assert not any(f["id"] == "CVE-2026-46745" for f in data["findings"])
    fab = next(r for r in data["overrides"] if r["id"] == "CVE-2026-46745")
    assert fab["package"] == "apache-airflow-providers-fab" and fab["version"] == "3.7.2" and fab["status"] == "resolved"


def test_the_cli_audits_a_site_on_the_fixed_release_clean(tmp_path):
    site = write_site(tmp_path / "site.toml", small_data("fixed", version="3.3.2"))
    _lock_with(tmp_path, "fixed", apache_airflow="3.3.2", apache_airflow_providers_fab="3.6.6")
    proc = bundle("audit", "--site", str(site), "--locks-dir", str(tmp_path / "locks"),
                  "--advisories", str(AIRFLOW), "--fail-on", "low")
    assert proc.returncode == 0, proc.stderr
    assert "0 advisories in 0 of 205 packages" in proc.stderr
    assert "was made for other inputs" in proc.stderr  # the lock is the example's, moved by hand


@pytest.mark.parametrize("make, message", [
    (lambda p: p.joinpath("all.zip").write_text("not a zip"), "all.zip: not a zip archive"),
    (lambda p: p.joinpath("bad.json").write_text('{"id": "X", '), r"bad.json: not JSON: Expecting"),
    (lambda p: p.joinpath("list.json").write_text("[1, 2]"), r"list.json: the file: expected an object"),
])
def test_bad_feeds_are_refused_with_the_file_and_what_is_wrong(tmp_path, make, message):
    make(tmp_path)
    [path] = tmp_path.iterdir()
    proc = bundle("advisories", "import", str(path), extra_env=_env(tmp_path / "db"))
    assert proc.returncode == 1 and message.replace("\\", "") in proc.stderr.replace("\\", "")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "db").exists(), "a refused feed leaves nothing imported"


def test_a_broken_member_of_a_zip_is_named_and_lenient_leaves_it_out(tmp_path):
    zipped = _zip_of(tmp_path / "all.zip", AIRFLOW)
    with zipfile.ZipFile(zipped, "a") as z:
        z.writestr("GHSA-bad.json", json.dumps({"id": "GHSA-bad", "affected": "everything"}))
    env = _env(tmp_path / "db")
    strict = bundle("advisories", "import", str(zipped), extra_env=env)
    assert strict.returncode == 1
    assert "all.zip:GHSA-bad.json (GHSA-bad): affected: expected a list, found str 'everything'" in strict.stderr
    lenient = bundle("advisories", "import", "--lenient", str(zipped), extra_env=env)
    assert lenient.returncode == 0 and "1 unreadable" in lenient.stdout and "left out:" in lenient.stderr


def test_an_unknown_fail_on_severity_is_a_usage_error():
    proc = bundle("audit", "--site", str(EXAMPLE), "--fail-on", "severe", "--advisories", str(AIRFLOW))
    assert proc.returncode == 2 and "'severe' is not one of 'low', 'medium', 'high', 'critical'" in proc.stderr


def test_an_old_feed_is_announced_with_its_age():
    from datetime import datetime, timezone

    from builder import report

    said: list[tuple[str, str]] = []
    with report.use(lambda level, message: said.append((level, message))):
        audit_lock(Lock.read(EXAMPLE_LOCK), [PYPA], now=datetime(2025, 1, 1, tzinfo=timezone.utc))
        audit_lock(Lock.read(EXAMPLE_LOCK), [PYPA], now=datetime(2024, 4, 1, tzinfo=timezone.utc))
    warnings = [m for level, m in said if level == "warn"]
    # The slice's newest record is of 2024-03-14: 292 whole days before 2025-01-01, 17 before 2024-04-01.
    assert len(warnings) == 1 and "292 days old" in warnings[0] and "import a newer export" in warnings[0]
