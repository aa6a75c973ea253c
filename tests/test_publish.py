"""Publish with a throwaway GnuPG key made at run time: signed RPMs (`rpm -K`),
xz metadata, signed repomd.xml, exported key, and the air-gap export tarball."""

from __future__ import annotations

import hashlib
import subprocess
import tarfile

import pytest

from test_rpm_fixtures import (
    build, make_gpg_key, mini_data, needs_rpm, stop_gpg_agent, synthetic_wheelhouse, write_site,
)

pytestmark = [pytest.mark.integration, needs_rpm]


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    key = make_gpg_key(tmp_path_factory.mktemp("gnupg"))
    yield key
    key.stop()


def _site(path, key, name="pubsite"):
    data = mini_data(name)
    data["publish"] = {"gpg_key": key.fingerprint, "gpg_home": str(key.home)}
    return write_site(path, data)


@pytest.fixture(scope="module")
def published(tmp_path_factory, key):
    wh = synthetic_wheelhouse()
    d = tmp_path_factory.mktemp("pub")
    site = _site(d / "site.toml", key)
    summary = build(site, d / "out", wh, sign=True, rpm_cache=d / "cache")
    return summary, site, d, wh


def test_every_rpm_is_signed_and_rpm_K_passes_with_the_exported_key(published, tmp_path):
    summary, *_ = published
    repo = summary.repo
    assert summary.signed_by == summary.signed_by.upper() and len(summary.signed_by) == 40
    db = tmp_path / "rpmdb"
    db.mkdir()
    subprocess.run(["rpm", "--dbpath", str(db), "--import", str(repo / "RPM-GPG-KEY-airflow-prod")], check=True)
    rpms = sorted(repo.glob("*.rpm"))
    assert len(rpms) == len(summary.packages)
    for rpm in rpms:
        out = subprocess.run(["rpm", "--dbpath", str(db), "-K", str(rpm)], capture_output=True, text=True)
        assert out.returncode == 0 and "signatures OK" in out.stdout, out.stdout + out.stderr
        info = subprocess.run(["rpm", "--dbpath", str(db), "-qp", "--qf", "%{RSAHEADER:pgpsig}", str(rpm)],
                              capture_output=True, text=True, check=True).stdout
        assert "SHA256" in info and summary.signed_by[-16:].lower() in info.lower(), info
    # The unsigned originals stay unsigned (they are what reproducibility compares).
    for pkg in summary.packages:
        sig = subprocess.run(["rpm", "-qp", "--qf", "%{RSAHEADER:pgpsig}", str(pkg.path)],
                             capture_output=True, text=True).stdout
        assert "(none)" in sig


def test_repomd_is_signed_and_metadata_is_xz(published, tmp_path):
    summary, *_ = published
    repodata = summary.repo / "repodata"
    repomd = (repodata / "repomd.xml").read_text()
    assert "primary.xml.xz" in repomd and ".zst" not in repomd
    home = tmp_path / "verify"
    home.mkdir(mode=0o700)
    subprocess.run(["gpg", "--batch", "--homedir", str(home), "--import",
                    str(summary.repo / "RPM-GPG-KEY-airflow-prod")], check=True, capture_output=True)
    ok = subprocess.run(["gpg", "--batch", "--homedir", str(home), "--verify",
                         str(repodata / "repomd.xml.asc"), str(repodata / "repomd.xml")], capture_output=True, text=True)
    stop_gpg_agent(home)
    assert ok.returncode == 0, ok.stderr
    repo_file = (summary.repo / "airflow-prod.repo").read_text()
    assert "gpgcheck=1" in repo_file and "repo_gpgcheck=1" in repo_file


def test_export_tarball_carries_the_repo_with_sha256sums(published, tmp_path):
    from builder.build import export
    from builder.site import load_site

    summary, site_path, d, _ = published
    site = load_site(site_path)
    tar, digest = export(site, d / "out", tmp_path / "bundle.tar")
    assert hashlib.sha256(tar.read_bytes()).hexdigest() == digest
    assert (tmp_path / "bundle.tar.sha256").read_text() == f"{digest}  bundle.tar\n"
    with tarfile.open(tar) as t:
        names = t.getnames()
        prefix = names[0]
        sums = t.extractfile(f"{prefix}/SHA256SUMS").read().decode()
        listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in sums.splitlines()}
        for member in t.getmembers():
            if member.isfile() and not member.name.endswith("/SHA256SUMS"):
                rel = member.name[len(prefix) + 1:]
                assert listed.pop(rel) == hashlib.sha256(t.extractfile(member).read()).hexdigest(), rel
    assert not listed, f"listed but missing: {listed}"
    assert any(n.endswith("repodata/repomd.xml.asc") for n in names)
    assert any(n.endswith("RPM-GPG-KEY-airflow-prod") for n in names)
    again, digest2 = export(site, d / "out", tmp_path / "again.tar")
    assert digest2 == digest  # reproducible


def test_config_only_change_re_signs_only_the_small_packages(published, key):
    summary, site_path, d, wh = published
    repo_wh = next(summary.repo.glob("airflow-prod-wheelhouse-*.rpm"))
    inode = repo_wh.stat().st_ino
    data = mini_data("pubsite")
    data["publish"] = {"gpg_key": key.fingerprint, "gpg_home": str(key.home)}
    data["core"] = {"parallelism": 40}
    write_site(site_path, data)
    again = build(site_path, d / "out", wh, sign=True, rpm_cache=d / "cache")
    publish = next(s for s in again.steps if s.name == "publish")
    assert not publish.reused and "kept 1" in publish.detail, publish.detail
    assert repo_wh.stat().st_ino == inode


def test_a_missing_signing_key_is_a_clear_error(tmp_path, key):
    from builder.publish import PublishError, SigningKey

    with pytest.raises(PublishError, match="no secret key NOPE-0000 in .* to sign with"):
        SigningKey("NOPE-0000", key.home).fingerprint()
