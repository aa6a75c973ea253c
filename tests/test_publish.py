"""Publish with a throwaway GnuPG key made at run time: signed RPMs (`rpm -K`),
xz metadata, signed repomd.xml, exported key, and the air-gap export tarball."""

from __future__ import annotations

import hashlib
import re
import subprocess
import tarfile

import pytest

from support.rpm import build, make_gpg_key, mini_data, needs_rpm, stop_gpg_agent, synthetic_wheelhouse
from support.sites import write_site

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
    from builder.pipeline import export
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
    from builder.rpm.publish import PublishError, SigningKey

    with pytest.raises(PublishError, match="no secret key NOPE-0000 in .* to sign with"):
        SigningKey("NOPE-0000", key.home).fingerprint()


def _odd_key(home, uid: str, algo: str, expire: str, *extra: str):
    """A throwaway key made by this test with gpg options RHEL 9 may refuse."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    subprocess.run(["gpg", "--batch", "--homedir", str(home), "--passphrase", "", *extra,
                    "--quick-gen-key", uid, algo, "sign", expire], check=True, capture_output=True, timeout=120)
    out = subprocess.run(["gpg", "--batch", "--homedir", str(home), "--with-colons", "--list-secret-keys", uid],
                         check=True, capture_output=True, text=True).stdout
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


@pytest.fixture(scope="module")
def odd_keys(tmp_path_factory):
    home = tmp_path_factory.mktemp("odd-gnupg")
    keys = {
        "sha1": _odd_key(home, "sha1 self-sig <sha1@example.invalid>", "rsa3072", "1y", "--cert-digest-algo", "SHA1"),
        "rsa1024": _odd_key(home, "small <small@example.invalid>", "rsa1024", "1y"),
        "dsa": _odd_key(home, "dsa <dsa@example.invalid>", "dsa2048", "1y"),
        # Made "in 2020" with a day to live: expired long ago.
        "expired": _odd_key(home, "expired <old@example.invalid>", "rsa3072", "1d",
                            "--faked-system-time", "20200101T000000!"),
        "expiring": _odd_key(home, "expiring <soon@example.invalid>", "rsa3072", "30d"),
        "good": _odd_key(home, "good <good@example.invalid>", "rsa3072", "2y"),
    }
    yield home, keys
    stop_gpg_agent(home)


@pytest.mark.parametrize("which, reason", [
    ("sha1", r"self-signature \(primary key\) uses SHA-1: RHEL 9's DEFAULT crypto policy rejects SHA-1"),
    ("rsa1024", r"the primary key is RSA 1024: RHEL 9's DEFAULT crypto policy needs RSA >= 2048"),
    ("dsa", r"the primary key is DSA: RHEL 9's DEFAULT crypto policy does not accept DSA"),
    ("expired", r"the primary key expired on 2020-01-02: dnf refuses packages signed with it"),
])
def test_a_key_rhel9_refuses_is_refused_with_the_reason(odd_keys, which, reason):
    from builder.rpm.publish import PublishError, SigningKey, check_key

    home, keys = odd_keys
    key = SigningKey(keys[which], home)
    with pytest.raises(PublishError, match=reason) as err:
        check_key(key, key.fingerprint())
    assert keys[which] in str(err.value) and "hint: make a new key" in str(err.value)


def test_a_key_expiring_within_90_days_warns_and_a_good_one_does_not(odd_keys):
    from builder.rpm.publish import SigningKey, check_key

    home, keys = odd_keys
    soon = check_key(SigningKey(keys["expiring"], home), keys["expiring"])
    assert len(soon.warnings) == 1 and re.search(r"expires in (29|30) days", soon.warnings[0]), soon.warnings
    good = check_key(SigningKey(keys["good"], home), keys["good"])
    assert good.warnings == () and good.fingerprint == keys["good"]
    assert re.fullmatch(r"RSA 3072, expires \d{4}-\d\d-\d\d", good.description), good.description


def test_build_refuses_a_sha1_key_before_any_work(odd_keys, tmp_path):
    """`bundle build` with that key stops at once with the reason (a BundleError, no traceback)."""
    from builder.errors import BundleError

    home, keys = odd_keys
    data = mini_data("sha1site")
    data["publish"] = {"gpg_key": keys["sha1"], "gpg_home": str(home)}
    site = write_site(tmp_path / "site.toml", data)
    with pytest.raises(BundleError, match="would be refused by RHEL 9 hosts") as err:
        build(site, tmp_path / "out", synthetic_wheelhouse(), sign=True, rpm_cache=tmp_path / "cache")
    assert not (tmp_path / "out" / "repo").exists()
    assert type(err.value).__name__ == "PublishError"


def _makecache(tmp_path, repo_text: str, baseurl: str, key: str) -> subprocess.CompletedProcess:
    """Real dnf reads the repository through one of our .repo files (installroot, no host repos)."""
    import configparser
    import os

    cfg = configparser.ConfigParser()
    cfg.read_string(repo_text)
    section = cfg.sections()[0]
    cfg[section]["baseurl"] = baseurl
    cfg[section]["gpgkey"] = key
    reposdir = tmp_path / "repos.d"
    reposdir.mkdir(parents=True, exist_ok=True)
    with open(reposdir / "airflow-prod.repo", "w") as fh:
        cfg.write(fh)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".rpmmacros").write_text("%_dbpath /var/lib/rpm\n")
    argv = ["dnf", "-y", f"--installroot={tmp_path / 'root'}", "--releasever=9", f"--setopt=reposdir={reposdir}",
            f"--setopt=cachedir={tmp_path / 'cache'}", "--setopt=skip_if_unavailable=False",  # RHEL 9's default
            "makecache"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(home)})


@pytest.mark.skipif(not __import__("shutil").which("dnf"), reason="needs dnf")
def test_each_repo_file_fits_its_path_direct_or_satellite(published, tmp_path):
    """Satellite's Additive and Content-only policies republish our metadata unsigned: the
    direct .repo (repo_gpgcheck=1) fails there on the missing repomd.xml.asc, the Satellite
    one (repo_gpgcheck=0, gpgcheck=1) reads it. Both read the signed original."""
    import configparser
    import shutil

    summary, *_ = published
    direct = (summary.repo / "airflow-prod.repo").read_text()
    satellite = (summary.repo / "airflow-prod-satellite.repo").read_text()
    for text, meta in ((direct, "1"), (satellite, "0")):
        cfg = configparser.ConfigParser()
        cfg.read_string(text)
        section = cfg["airflow-prod-pubsite"]
        assert (section["gpgcheck"], section["repo_gpgcheck"]) == ("1", meta)
    key = f"file://{summary.repo / 'RPM-GPG-KEY-airflow-prod'}"
    republished = tmp_path / "satellite-additive"
    shutil.copytree(summary.repo, republished)
    (republished / "repodata" / "repomd.xml.asc").unlink()   # what Additive/Content-only serve
    try:
        ok = _makecache(tmp_path / "a", direct, f"file://{summary.repo}", key)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        refused = _makecache(tmp_path / "b", direct, f"file://{republished}", key)
        assert refused.returncode != 0, refused.stdout + refused.stderr
        assert "repomd.xml.asc" in refused.stdout + refused.stderr
        fed = _makecache(tmp_path / "c", satellite, f"file://{republished}", key)
        assert fed.returncode == 0, fed.stdout + fed.stderr
    finally:
        for pubring in tmp_path.glob("*/cache/*/pubring"):
            stop_gpg_agent(pubring)
