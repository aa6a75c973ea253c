"""`bundle build` and `bundle export` as a user runs them (subprocess, real tools); the
whole pipeline (lock, wheelhouse, manifest, schema check) against a local index."""

from __future__ import annotations

import functools
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from support import cli
from support.rpm import make_gpg_key, mini_data, needs_rpm, stop_gpg_agent, synthetic_wheelhouse
from support.sbom import assert_valid_cyclonedx
from support.sites import write_site, write_toml

pytestmark = [pytest.mark.integration, needs_rpm]


# `bundle build` runs the whole pipeline: a longer ceiling than the other commands'.
bundle = functools.partial(cli.bundle, timeout=600)


def test_build_then_export_prints_a_summary(tmp_path):
    wh = synthetic_wheelhouse()
    key = make_gpg_key(tmp_path / "gnupg")
    data = mini_data("clisite")
    data["publish"] = {"gpg_key": key.fingerprint, "gpg_home": str(key.home)}
    site = write_site(tmp_path / "site.toml", data)
    args = ["build", "--site", str(site), "--out", str(tmp_path / "out"), "--wheelhouse", str(wh.dir),
            "--lock", str(wh.lock), "--uv-wheel", str(wh.uv_wheel), "--rpm-cache", str(tmp_path / "cache")]
    proc = bundle(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for step in ("lock", "wheelhouse", "render", "package", "publish", "audit", "sbom"):
        assert f"[{step}] " in out
    # wheelhouse, base, config, five roles, airflow-prod-db-migrate, the host package (issue 13),
    # the two retention packages (db-clean, log-groom)
    assert "site clisite: 12 packages" in out
    assert f"signed by {key.fingerprint}" in out
    assert "airflow-prod-config-clisite-" in out and "MiB" in out

    again = bundle(*args)
    assert "steps skipped (inputs unchanged or given): lock, wheelhouse, render, package, publish, audit, sbom" in again.stdout

    exp = bundle("export", "--site", str(site), "--out", str(tmp_path / "out"))
    assert exp.returncode == 0, exp.stderr
    assert "wrote " in exp.stdout and "sha256 " in exp.stdout
    assert list((tmp_path / "out" / "export").glob("airflow-prod-clisite-*.tar.sha256"))
    # The SBOMs travel in the export, listed in its SHA256SUMS (docs/sbom.md).
    [tar] = (tmp_path / "out" / "export").glob("airflow-prod-clisite-*.tar")
    with tarfile.open(tar) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
        sums = tf.extractfile(f"{tar.stem}/SHA256SUMS").read().decode()
        assert_valid_cyclonedx(tf.extractfile(f"{tar.stem}/sbom/bundle.cdx.json").read().decode())
    assert {"sbom/bundle.cdx.json", "sbom/wheelhouse.cdx.json"} <= names
    assert "  sbom/bundle.cdx.json\n" in sums and "  sbom/wheelhouse.cdx.json\n" in sums
    key.stop()


def test_wheelhouse_without_lock_is_a_usage_error(tmp_path):
    site = write_site(tmp_path / "site.toml", mini_data())
    proc = bundle("build", "--site", str(site), "--wheelhouse", str(tmp_path))
    assert proc.returncode == 2
    assert "--wheelhouse needs --lock" in proc.stderr


def test_missing_signing_key_says_how_to_fix_it(tmp_path):
    wh = synthetic_wheelhouse()
    home = tmp_path / "empty-gnupg"
    home.mkdir(mode=0o700)
    data = mini_data("nokey")
    data["publish"] = {"gpg_home": str(home)}
    site = write_site(tmp_path / "site.toml", data)
    proc = bundle("build", "--site", str(site), "--out", str(tmp_path / "out"), "--wheelhouse", str(wh.dir),
                  "--lock", str(wh.lock), "--uv-wheel", str(wh.uv_wheel), "--rpm-cache", str(tmp_path / "cache"))
    stop_gpg_agent(home)
    assert proc.returncode == 1
    assert "no secret key (default)" in proc.stderr and "hint:" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unsigned_repository_is_not_exported_without_saying_so(tmp_path):
    """Its .repo files say gpgcheck=0: carried across the air gap, anything could replace it."""
    wh = synthetic_wheelhouse()
    site = write_site(tmp_path / "site.toml", mini_data("unsigned"))
    out = tmp_path / "out"
    proc = bundle("build", "--site", str(site), "--out", str(out), "--no-sign", "--wheelhouse", str(wh.dir),
                  "--lock", str(wh.lock), "--uv-wheel", str(wh.uv_wheel), "--rpm-cache", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "repository (UNSIGNED)" in proc.stdout
    refused = bundle("export", "--site", str(site), "--out", str(out))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "is UNSIGNED: hosts would install it with gpgcheck=0" in refused.stderr
    assert "--allow-unsigned" in refused.stderr
    assert not (out / "export").exists()
    allowed = bundle("export", "--site", str(site), "--out", str(out), "--allow-unsigned")
    assert allowed.returncode == 0, allowed.stderr
    assert list((out / "export").glob("airflow-prod-unsigned-*.tar"))


def test_export_before_build_is_a_clear_error(tmp_path):
    site = write_site(tmp_path / "site.toml", mini_data())
    proc = bundle("export", "--site", str(site), "--out", str(tmp_path / "nothing"))
    assert proc.returncode == 1 and "nothing built in" in proc.stderr


def test_truncated_wheel_is_a_clear_error(tmp_path):
    import shutil

    wh = synthetic_wheelhouse()
    broken = tmp_path / "wheels"
    shutil.copytree(wh.dir, broken)
    victim = next(p for p in sorted(broken.glob("*.whl")) if not p.name.startswith("uv-"))
    victim.write_bytes(victim.read_bytes()[:100])
    site = write_site(tmp_path / "site.toml", {**mini_data("trunc"), "publish": {"sign": False}})
    proc = bundle("build", "--site", str(site), "--out", str(tmp_path / "out"), "--wheelhouse", str(broken),
                  "--lock", str(wh.lock), "--uv-wheel", str(wh.uv_wheel), "--rpm-cache", str(tmp_path / "cache"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{victim}: not a valid wheel (truncated or corrupted zip)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_rpms_written_elsewhere_are_a_clear_error(tmp_path):
    """A build host whose ~/.rpmmacros moves %_rpmdir: rpmbuild succeeds, the RPMs are not
    where the plan says; the user is told where they went and why, not shown a traceback."""
    wh = synthetic_wheelhouse()
    home = tmp_path / "home"
    home.mkdir()
    (home / ".rpmmacros").write_text(f"%_rpmdir {tmp_path / 'elsewhere'}\n")
    site = write_site(tmp_path / "site.toml", {**mini_data("moved"), "publish": {"sign": False}})
    proc = bundle("build", "--site", str(site), "--out", str(tmp_path / "out"), "--wheelhouse", str(wh.dir),
                  "--lock", str(wh.lock), "--uv-wheel", str(wh.uv_wheel), "--rpm-cache", str(tmp_path / "cache"),
                  extra_env={"HOME": str(home)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "succeeded but did not write airflow-prod-wheelhouse-" in proc.stderr
    assert "hint: a macro file of this build host (~/.rpmmacros" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_build_without_wheelhouse_or_lock_against_a_local_index(airflow_index, tmp_path):
    """lock -> wheelhouse -> manifest -> schema check -> package -> publish, offline: the
    engine's own lock and wheelhouse steps, which every other build test skips."""
    import json

    from support.pkgindex import site_data

    data = {**site_data(airflow_index, name="idx"), "publish": {"sign": False}}
    site = write_toml(tmp_path / "site.toml", data)
    locks, out = tmp_path / "locks", tmp_path / "out"
    env = {"AIRFLOW_PROD_BLOBS": str(tmp_path / "blobs")}  # every file comes from this index
    made = bundle("lock", "--site", str(site), "--locks-dir", str(locks), "--index-url", airflow_index.simple,
                  extra_env=env)
    assert made.returncode == 0, made.stderr
    args = ["build", "--site", str(site), "--locks-dir", str(locks), "--out", str(out),
            "--rpm-cache", str(tmp_path / "cache")]
    proc = bundle(*args, extra_env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout
    assert "[lock] reused in" in lines and f"(6 pins, uv against {airflow_index.simple})" in lines
    assert re.search(r"\[wheelhouse\] done in [\d.]+s: .*/wheelhouse: 6 files, 0 MB \(6 downloaded, 0 built\)", lines)
    options = sum(1 for line in (out / "rendered" / "etc" / "airflow" / "airflow.cfg").read_text().splitlines()
                  if "=" in line and not line.lstrip().startswith("#"))
    assert f"{options} airflow.cfg options valid" in lines, "the schema check ran, on the mirror's core wheel"
    assert "/files/apache_airflow_core-3.1.4-py3-none-any.whl" in airflow_index.requests
    manifest = json.loads((out / "wheelhouse" / "manifest.json").read_text())
    assert sorted(f["filename"] for f in manifest["files"]) == sorted(p.name for p in (out / "wheelhouse").glob("*.whl"))
    assert {f["origin"] for f in manifest["files"]} == {"downloaded"}
    assert manifest["lock"]["path"] == str(locks / "idx.txt")
    assert manifest["advisories"]["status"] == "no advisory feed imported"  # the audit step's record
    [wh_rpm] = (out / "rpms").glob("airflow-prod-wheelhouse-*.rpm")
    listed = subprocess.run(["rpm", "-qlp", str(wh_rpm)], capture_output=True, text=True, check=True).stdout
    assert "paramiko-3.4.0-py3-none-any.whl" in listed and "apache_airflow_core-3.1.4-py3-none-any.whl" in listed
    assert (out / "repo" / "repodata" / "repomd.xml").is_file()
    # The SBOM says where each file came from, as the wheelhouse manifest does.
    sbom = assert_valid_cyclonedx((out / "repo" / "sbom" / "bundle.cdx.json").read_text())
    origins = {p["value"] for c in sbom["components"] for p in c["properties"] if p["name"] == "airflow-prod:origin"}
    assert origins == {"downloaded"}
    again = bundle(*args, extra_env=env)
    assert "steps skipped (inputs unchanged or given): lock, wheelhouse, render, package, publish, audit, sbom" in again.stdout
    # The wheelhouse and its offline lock (which names no index), with a fresh cache: the
    # schema is read from the wheelhouse's own core wheel, nothing from the index.
    airflow_index.requests.clear()
    given = bundle("build", "--site", str(site), "--out", str(tmp_path / "out2"), "--wheelhouse",
                   str(out / "wheelhouse"), "--lock", str(out / "wheelhouse" / "requirements.lock"),
                   "--rpm-cache", str(tmp_path / "cache"),
                   extra_env={**env, "AIRFLOW_PROD_CACHE": str(tmp_path / "c2")})
    assert given.returncode == 0, given.stdout + given.stderr
    assert f"{options} airflow.cfg options valid" in given.stdout and airflow_index.requests == []
    # An option the mirror's Airflow does not have fails the render step, naming it.
    data["airflow_cfg"] = {"core": {"parallelism_typo": 3}}
    write_toml(site, data)
    bad = bundle(*args, extra_env=env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert ("site.toml airflow_cfg.core.parallelism_typo: [core] has no option 'parallelism_typo' "
            "(did you mean 'parallelism'?)") in bad.stderr


def test_the_build_records_the_advisory_audit_in_the_repository_and_the_export(tmp_path):
    """No feed: the record says so. With one: the findings, in repo/ and so in the export."""
    import json
    import tarfile

    wh = synthetic_wheelhouse()  # pins idna 3.10
    site = write_site(tmp_path / "site.toml", mini_data("auditsite"))
    out = tmp_path / "out"
    env = {"AIRFLOW_PROD_ADVISORIES": str(tmp_path / "advisories")}
    args = ["build", "--site", str(site), "--out", str(out), "--wheelhouse", str(wh.dir), "--lock", str(wh.lock),
            "--uv-wheel", str(wh.uv_wheel), "--rpm-cache", str(tmp_path / "cache"), "--no-sign"]
    first = bundle(*args, extra_env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "[audit] done" in first.stdout and "not audited: no advisory feed imported" in first.stdout
    record = json.loads((out / "repo" / "advisories.json").read_text())
    assert record["status"] == "no advisory feed imported" and record["findings"] is None

    # A record written for this test: idna before 3.11 (the wheelhouse pins 3.10).
    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / "TEST-IDNA-1.json").write_text(json.dumps({
        "id": "TEST-IDNA-1", "modified": "2026-12-01T00:00:00Z", "aliases": ["CVE-2099-0001"],
        "summary": "test record", "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
        "affected": [{"package": {"ecosystem": "PyPI", "name": "IDNA"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.11"}]}]}]}))
    assert bundle("advisories", "import", str(feed), extra_env=env).returncode == 0
    second = bundle(*args, extra_env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 advisories in 1 of" in second.stdout and "high, critical or unknown severity" in second.stderr
    [finding] = json.loads((out / "repo" / "advisories.json").read_text())["findings"]
    assert (finding["package"], finding["id"], finding["fixed"]) == ("idna", "TEST-IDNA-1", ["3.11"])
    assert finding["severity"]["level"] == "critical" and finding["severity"]["score"] == 9.8

    exp = bundle("export", "--site", str(site), "--out", str(out), "--allow-unsigned")
    assert exp.returncode == 0, exp.stderr
    [tar_path] = (out / "export").glob("*.tar")
    with tarfile.open(tar_path) as tar:
        names = {Path(n).name: n for n in tar.getnames()}
        sums = tar.extractfile(names["SHA256SUMS"]).read().decode()
        text = tar.extractfile(names["advisories.txt"]).read().decode()
    assert "  advisories.json\n" in sums and "  advisories.txt\n" in sums
    assert "idna 3.10" in text and "TEST-IDNA-1" in text and "CVE-2099-0001" in text
