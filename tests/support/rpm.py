"""Shared pieces of the RPM tests (test_rpm_*, test_publish*, test_build*): a small
synthetic wheelhouse, a throwaway GnuPG key, the target root and the TEST-ONLY
stand-in provides package (sites on disk: support/sites.py). Real tools throughout
(rpmbuild, createrepo_c, gpg, dnf); nothing is mocked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.sites import minimal_data

# Small pure-Python wheels the synthetic wheelhouse holds, and the modules they provide.
SYNTH_PINS = {"six": "1.17.0", "idna": "3.10", "attrs": "25.3.0"}
SYNTH_MODULES = ("six", "idna", "attr")
UV_PIN = "0.9.5"
# A fixed epoch so builds in different tests and runs are comparable.
EPOCH = "1765352100"


def have(*tools: str) -> bool:
    return all(shutil.which(t) for t in tools)


needs_rpm = pytest.mark.skipif(not have("rpmbuild", "rpm", "createrepo_c"), reason="needs rpmbuild, rpm, createrepo_c")


def _cache() -> Path:
    from builder.resources import cache_dir

    return cache_dir()


@dataclass(frozen=True)
class SynthWheelhouse:
    dir: Path
    lock: Path
    uv_wheel: Path


# The synthetic wheelhouse's files with PyPI's sha256: fetched through the project's own
# content-addressed blob store (shared across test sessions, every file re-verified by its
# hash), so a warm machine builds these RPMs without network.
SYNTH_FILES = {
    "six-1.17.0-py2.py3-none-any.whl": "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
    "idna-3.10-py3-none-any.whl": "946d195a0d259cbba61165e88e65941f16e9b36ea6ddb97f00452bae8b1287d3",
    "attrs-25.3.0-py3-none-any.whl": "427318ce031701fea540783410126f03899a97ffc6f61596ad581ac2e40e3bc3",
}
UV_FILE = ("uv-0.9.5-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
           "6507bbbcd788553ec4ad5a96fa19364dc0f58b023e31d79868773559a83ec181")


def _fetch_verified(files: dict[str, str]) -> dict[str, Path]:
    """filename -> verified blob; asks PyPI only for what the blob store lacks."""
    from builder.pydeps.blobs import BlobStore, Wanted
    from builder.errors import BundleError
    from builder.pydeps.index import Registry

    store = BlobStore()
    missing = {fn: sha for fn, sha in files.items() if not store.verified(sha, fn, lambda *a: None)}
    if missing:
        reg = Registry()
        wanted = []
        for fn, sha in missing.items():
            name, version = fn.split("-")[:2]
            try:
                [dist] = [f for f in reg.project(name).release(version) if f.filename == fn]
            except BundleError as exc:
                pytest.skip(f"cannot download the synthetic wheelhouse from PyPI: {exc.message}")
            wanted.append(Wanted(f"{name}=={version}", fn, dist.url, sha, dist.size))
        store.fetch_all(wanted, reg)
    return {fn: store.path(sha) for fn, sha in files.items()}


def synthetic_wheelhouse() -> SynthWheelhouse:
    """A few real small wheels from PyPI with a --hash lock, plus uv's wheel for the
    target (hash-pinned above; downloaded once per machine into the shared blob store).
    Skips when PyPI is unreachable and the blobs are not there yet."""
    from builder.fsutil import link_or_copy

    root = _cache() / "test-wheelhouse-v2"
    wheels, uv_dir = root / "wheels", root / "uv"
    lock = root / "requirements.txt"
    if not lock.is_file():
        blobs = _fetch_verified({**SYNTH_FILES, UV_FILE[0]: UV_FILE[1]})
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        lines = ["# date: 2025-12-10T07:35:00Z", ""]
        for fn in sorted(SYNTH_FILES):
            link_or_copy(blobs[fn], _mkdir(tmp / "wheels") / fn)
            name, version = fn.split("-")[:2]
            lines += [f"{name.lower()}=={version} \\", f"    --hash=sha256:{SYNTH_FILES[fn]}"]
        link_or_copy(blobs[UV_FILE[0]], _mkdir(tmp / "uv") / UV_FILE[0])
        (tmp / "requirements.txt").write_text("\n".join(lines) + "\n")
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    return SynthWheelhouse(wheels, lock, uv_dir / UV_FILE[0])


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def mini_data(name: str = "mini") -> dict:
    """The smallest site (support/sites.py minimal_data) as the RPM tests' site, described."""
    data = minimal_data(name)
    data["site"]["description"] = "RPM test site"
    return data


@dataclass(frozen=True)
class GpgKey:
    home: Path
    fingerprint: str

    def stop(self) -> None:
        stop_gpg_agent(self.home)


def stop_gpg_agent(home: Path) -> None:
    """gpg (and dnf's key import) start a gpg-agent per home; never leave one behind."""
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)


def make_gpg_key(home: Path, uid: str = "airflow-prod test key (THROWAWAY) <test@example.invalid>") -> GpgKey:
    """A throwaway RSA key without passphrase, made at run time in its own GNUPGHOME."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    subprocess.run(["gpg", "--batch", "--homedir", str(home), "--passphrase", "", "--quick-gen-key", uid,
                    "rsa3072", "sign", "1d"], check=True, capture_output=True, timeout=120)
    out = subprocess.run(["gpg", "--batch", "--homedir", str(home), "--with-colons", "--list-secret-keys"],
                         check=True, capture_output=True, text=True).stdout
    fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
    return GpgKey(home, fpr)


def build(site_path: Path, out: Path, wh: SynthWheelhouse, *, sign: bool, rpm_cache: Path, force: bool = False):
    """`bundle build` through the engine, with the synthetic wheelhouse and a fixed epoch."""
    from builder.pipeline import BuildOptions, build as run_build
    from builder.site import load_site

    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    try:
        site = load_site(site_path)
        return run_build(site, site_path, BuildOptions(
            out_dir=out, wheelhouse_dir=wh.dir, lock_file=wh.lock, uv_wheel=wh.uv_wheel, sign=sign,
            rpm_cache=rpm_cache, force=force,
        ))
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]


def rpm_query(path: Path, *args: str) -> str:
    return subprocess.run(["rpm", "-qp", *args, str(path)], check=True, capture_output=True, text=True).stdout


def extract(rpm: Path, dest: Path) -> Path:
    """Unpack a payload with rpm2cpio | cpio (streamed: never the whole payload in memory)."""
    dest.mkdir(parents=True, exist_ok=True)
    p1 = subprocess.Popen(["rpm2cpio", str(rpm)], stdout=subprocess.PIPE)
    subprocess.run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], stdin=p1.stdout, cwd=dest, check=True)
    p1.stdout.close()
    assert p1.wait() == 0
    return dest


# --- the target root and the stand-in ----------------------------------------------------

def target_root(dest: Path) -> Path:
    """A Debian 12 minbase root (systemd 252, python3.11 3.11.2) as the RHEL 9 stand-in host.

    The same cached root the end-to-end test boots (tests/e2e/target.py): one
    debootstrap (~60-80 s) serves both."""
    from e2e.target import RootImage, missing_host_tools

    missing = missing_host_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} to make the target root")
    tarball = RootImage().ensure()
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd",
                    "-C", str(dest), "-xf", str(tarball)], check=True)
    return dest


def standin_rpm(root: Path, out: Path) -> Path:
    """The TEST-ONLY stand-in RPM of the e2e test (tests/e2e/repo.py): one Provides per
    RHEL name the Debian root really backs, each checked against its files."""
    from e2e.repo import STANDIN_NAME, build_rpm, standin_spec

    out.mkdir(parents=True, exist_ok=True)
    spec, _skipped = standin_spec(root)
    return build_rpm(spec, out, STANDIN_NAME)

