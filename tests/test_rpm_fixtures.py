"""Shared pieces of the RPM tests (test_rpm_*, test_publish*, test_build*): a small
synthetic wheelhouse, a throwaway GnuPG key, sites on disk, the target root and
the TEST-ONLY stand-in provides package. Real tools throughout (rpmbuild,
createrepo_c, gpg, dnf); nothing is mocked.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "site.toml"

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


def _pip_download(dest: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--isolated", "-q", "-d", str(dest), *args],
                   check=True, env=env, capture_output=True, text=True, timeout=300)


def synthetic_wheelhouse() -> SynthWheelhouse:
    """A few real small wheels from PyPI with a --hash lock, plus uv's wheel for the
    target; cached (downloaded once per machine). Skips when PyPI is unreachable."""
    root = _cache() / "test-wheelhouse-v1"
    wheels, uv_dir = root / "wheels", root / "uv"
    lock = root / "requirements.txt"
    if not lock.is_file():
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _pip_download(tmp / "wheels", "--only-binary", ":all:", *[f"{n}=={v}" for n, v in SYNTH_PINS.items()])
            _pip_download(tmp / "uv", "--only-binary", ":all:", "--platform", "manylinux_2_17_x86_64",
                          "--python-version", "3.11", f"uv=={UV_PIN}")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            pytest.skip(f"cannot download the synthetic wheelhouse from PyPI: {exc}")
        import hashlib

        lines = ["# date: 2025-12-10T07:35:00Z", ""]
        for whl in sorted((tmp / "wheels").glob("*.whl")):
            name, version = whl.name.split("-")[:2]
            digest = hashlib.sha256(whl.read_bytes()).hexdigest()
            lines += [f"{name.lower()}=={version} \\", f"    --hash=sha256:{digest}"]
        (tmp / "requirements.txt").write_text("\n".join(lines) + "\n")
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    return SynthWheelhouse(wheels, lock, next(uv_dir.glob("uv-*.whl")))


def example_data() -> dict:
    return tomllib.loads(EXAMPLE.read_text())


def mini_data(name: str = "mini") -> dict:
    """The smallest site: one host, the five roles CeleryExecutor needs, no LDAP or Kerberos."""
    return {
        "site": {"name": name, "description": "RPM test site"},
        "hosts": [{"name": "af1.example.com",
                   "roles": ["api-server", "scheduler", "dag-processor", "triggerer", "celery-worker"]}],
        "database": {"host": "db.example.com"},
    }


def toml_dumps(data: dict) -> str:
    """Just enough TOML for site files (tables, arrays of tables, scalars, lists)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(v)

    out: list[str] = []

    def table(prefix: str, d: dict) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)
                   and not (isinstance(v, list) and v and isinstance(v[0], dict))}
        if prefix:
            out.append(f"\n[{prefix}]")
        for k, v in scalars.items():
            out.append(f"{value(k) if not re.match(r'^[A-Za-z0-9_-]+$', k) else k} = {value(v)}")
        for k, v in d.items():
            key = k if re.match(r"^[A-Za-z0-9_-]+$", k) else value(k)
            if isinstance(v, dict):
                table(f"{prefix}.{key}" if prefix else key, v)
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    out.append(f"\n[[{prefix + '.' if prefix else ''}{key}]]")
                    for ik, iv in item.items():
                        out.append(f"{ik} = {value(iv)}")

    table("", data)
    return "\n".join(out).lstrip() + "\n"


def write_site(path: Path, data: dict) -> Path:
    path.write_text(toml_dumps(copy.deepcopy(data)))
    from builder.site import load_site

    load_site(path)  # must be valid
    return path


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
    from builder.build import BuildOptions, build as run_build
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


def test_toml_dumps_round_trips():
    data = example_data()
    assert tomllib.loads(toml_dumps(data)) == data


def test_standin_claims_nothing_the_root_lacks(tmp_path):
    from e2e.repo import standin_spec

    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/python3.11").touch()
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text("")
    spec, skipped = standin_spec(tmp_path)
    provides = [line for line in spec.splitlines() if line.startswith("Provides:")]
    assert "Provides: /usr/bin/python3.11" in provides
    assert not any("systemd" in line or "shadow-utils" in line for line in provides)
    assert any(s.startswith("shadow-utils: root lacks") for s in skipped)
