"""The RPMs as built by real rpmbuild from a small synthetic wheelhouse: names,
reproducibility, incremental rebuilds, rpmlint, rpmlib features, RHEL names,
%config(noreplace), scriptlets, and no secret anywhere in a package."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from support.rpm import EPOCH, build, extract, mini_data, needs_rpm, rpm_query, synthetic_wheelhouse
from support.sbom import assert_valid_cyclonedx
from support.sites import REPO, example_data, write_site

pytestmark = [pytest.mark.integration, needs_rpm]

ROLES = ("api-server", "scheduler", "dag-processor", "triggerer", "celery-worker", "kerberos")

# Every rpmlib() feature rpm 4.16 (RHEL 9) provides, with the version it provides
# (rpm-4.16.1 lib/rpmds.c, rpmlibProvides). Anything else would fail on RHEL 9.
RPMLIB_416 = {
    "BuiltinLuaScripts": "4.2.2-1", "CaretInVersions": "4.15.0-1", "CompressedFileNames": "3.0.4-1",
    "ConcurrentAccess": "4.1-1", "DynamicBuildRequires": "4.15.0-1", "ExplicitPackageProvide": "4.0-1",
    "FileCaps": "4.6.1-1", "FileDigests": "4.6.0-1", "HeaderLoadSortsTags": "4.0.1-1",
    "LargeFiles": "4.12.0-1", "PartialHardlinkSets": "4.0.4-1", "PayloadFilesHavePrefix": "4.0-1",
    "PayloadIsBzip2": "3.0.5-1", "PayloadIsLzma": "4.4.2-1", "PayloadIsXz": "5.2-1",
    "PayloadIsZstd": "5.4.18-1", "RichDependencies": "4.12.0-1", "ScriptletExpansion": "4.9.0-1",
    "ScriptletInterpreterArgs": "4.0.3-1", "TildeInVersions": "4.10.0-1", "VersionedDependencies": "3.0.3-1",
}


def _vr(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text))


@pytest.fixture(scope="module")
def wh():
    return synthetic_wheelhouse()


@pytest.fixture(scope="module")
def secrets(tmp_path_factory):
    """Real generated secrets for the example site, passwords filled in, stored
    beside the site file: the build must never pick any of them up."""
    from builder.material.secrets import write_secrets
    from builder.site.secrets import PLACEHOLDER
    from builder.site import load_site

    d = tmp_path_factory.mktemp("site")
    data = example_data()
    data["site"]["description"] = "Example site, 100% test"  # a literal % must survive rpm
    site_path = write_site(d / "site.toml", data)
    path = write_secrets(load_site(site_path), d / "site.secrets.env")
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            name, value = line.split("=", 1)
            value = value.strip("'")
            values[name] = value if value != PLACEHOLDER else f"pw-{name.lower()}-Zq81x"
    path.write_text("".join(f"{k}='{v}'\n" for k, v in values.items()))
    assert all(len(v) >= 8 for v in values.values()), values
    return site_path, values


@pytest.fixture(scope="module")
def built(tmp_path_factory, wh, secrets):
    site_path, _ = secrets
    root = tmp_path_factory.mktemp("build")
    summary = build(site_path, root / "out", wh, sign=False, rpm_cache=root / "cache")
    return summary, root


def _rpms(summary) -> dict[str, Path]:
    return {p.name: p.path for p in summary.packages}


def test_one_package_per_role_plus_base_config_and_wheelhouse(built):
    summary, _ = built
    names = set(_rpms(summary))
    # + the migration unit's package and one package per host (issue 13: docs/cluster.md), and
    # the retention units' (docs/operations.md)
    assert names == {"airflow-prod-wheelhouse", "airflow-prod", "airflow-prod-config-bigdata-prod",
                     *(f"airflow-prod-{r}" for r in ROLES), "airflow-prod-db-migrate",
                     "airflow-prod-db-clean", "airflow-prod-log-groom",
                     "airflow-prod-host-airflow.my.bigdata.local"}
    paths = _rpms(summary)
    assert paths["airflow-prod-wheelhouse"].name.endswith(".el9.x86_64.rpm")
    assert all(p.name.endswith(".el9.noarch.rpm") for n, p in paths.items() if n != "airflow-prod-wheelhouse")
    assert [s.name for s in summary.steps] == ["lock", "wheelhouse", "render", "package", "publish", "audit", "sbom"]
    assert (summary.repo / "repodata" / "repomd.xml").is_file()


def test_two_builds_give_byte_identical_rpms(built, wh, secrets, tmp_path):
    """The second build runs as a user runs it: another process, another hash seed."""
    import os
    import sys

    summary, _ = built
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONHASHSEED": "4242", "SOURCE_DATE_EPOCH": EPOCH}
    proc = subprocess.run(
        [sys.executable, "-m", "builder", "build", "--site", str(secrets[0]), "--out", str(out),
         "--wheelhouse", str(wh.dir), "--lock", str(wh.lock), "--uv-wheel", str(wh.uv_wheel), "--no-sign",
         "--rpm-cache", str(tmp_path / "cache")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = {p.path.name: p.path for p in summary.packages}
    second = {p.name: p for p in (out / "rpms").glob("*.rpm")}
    assert sorted(first) == sorted(second)
    for name in first:
        assert first[name].read_bytes() == second[name].read_bytes(), f"{name} differs between builds"


def test_config_only_change_rebuilds_small_packages_and_reuses_the_wheelhouse_rpm(wh, tmp_path):
    data = mini_data("incr")
    site = write_site(tmp_path / "site.toml", data)
    first = build(site, tmp_path / "out", wh, sign=False, rpm_cache=tmp_path / "cache")
    again = build(site, tmp_path / "out", wh, sign=False, rpm_cache=tmp_path / "cache")
    assert all(s.reused for s in again.steps), again.steps
    wh_rpm = _rpms(first)["airflow-prod-wheelhouse"]
    inode = wh_rpm.stat().st_ino

    data["core"] = {"parallelism": 64}
    write_site(site, data)
    changed = build(site, tmp_path / "out", wh, sign=False, rpm_cache=tmp_path / "cache")
    steps = {s.name: s for s in changed.steps}
    assert not steps["render"].reused and not steps["package"].reused
    pkgs = {p.name: p for p in changed.packages}
    assert pkgs["airflow-prod-wheelhouse"].reused
    assert pkgs["airflow-prod-wheelhouse"].path.stat().st_ino == inode  # the same file, not rebuilt
    assert not pkgs["airflow-prod-config-incr"].reused
    old, new = _rpms(first), _rpms(changed)
    # Two builds of one site never share a name-version-release.
    assert old["airflow-prod-config-incr"].name != new["airflow-prod-config-incr"].name
    assert old["airflow-prod"].name != new["airflow-prod"].name
    assert "parallelism = 64" in extract_text(new["airflow-prod-config-incr"], "etc/airflow/airflow.cfg", tmp_path)


def extract_text(rpm: Path, rel: str, tmp: Path) -> str:
    dest = extract(rpm, tmp / ("x-" + rpm.name))
    return (dest / rel).read_text()


def test_two_sites_never_collide_on_a_name_version_release(built, wh, tmp_path):
    summary, _ = built
    other = build(write_site(tmp_path / "site.toml", mini_data("othersite")), tmp_path / "out", wh,
                  sign=False, rpm_cache=tmp_path / "cache")
    mine = {p.name for p in _rpms(summary).values()}
    theirs = {p.name for p in _rpms(other).values()}
    # The wheelhouse is site-independent and shared; nothing else is.
    assert mine & theirs == {_rpms(summary)["airflow-prod-wheelhouse"].name}


def test_rpmlint_reports_nothing_with_the_filter_file(built):
    summary, _ = built
    if not shutil.which("rpmlint"):
        pytest.skip("rpmlint not installed")
    proc = subprocess.run(["rpmlint", "-c", str(REPO / "tests" / "rpmlint-filters.toml"),
                           *[str(p) for p in _rpms(summary).values()]], capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    m = re.search(r"(\d+) errors, (\d+) warnings", out)
    assert m, out
    assert (m.group(1), m.group(2)) == ("0", "0"), out


def test_no_rpmlib_feature_beyond_rhel9_rpm_416(built):
    summary, _ = built
    for name, path in _rpms(summary).items():
        for line in rpm_query(path, "--requires").splitlines():
            m = re.match(r"rpmlib\((\w+)\)\s*<=\s*(\S+)", line)
            if not m:
                continue
            feature, version = m.groups()
            assert feature in RPMLIB_416, f"{name} needs rpmlib({feature}), which rpm 4.16 lacks"
            assert _vr(version) <= _vr(RPMLIB_416[feature]), f"{name}: {line}"


def test_requires_use_rhel9_names_and_wheels_carry_no_automatic_deps(built):
    summary, _ = built
    rpms = _rpms(summary)
    base = rpm_query(rpms["airflow-prod"], "--requires")
    for dep in ("python3.11", "shadow-utils", "systemd", "airflow-prod-wheelhouse = "):
        assert dep in base, base
    assert "krb5-workstation" in rpm_query(rpms["airflow-prod-kerberos"], "--requires")
    assert "Recommends" not in rpm_query(rpms["airflow-prod-api-server"], "--recommends")
    wheel_reqs = [r for r in rpm_query(rpms["airflow-prod-wheelhouse"], "--requires").splitlines()
                  if not r.startswith("rpmlib(")]
    assert wheel_reqs == [], wheel_reqs
    provides = rpm_query(rpms["airflow-prod-wheelhouse"], "--provides").split()
    assert provides[0] == "airflow-prod-wheelhouse" and "python3dist" not in " ".join(provides)


def test_site_configuration_is_config_noreplace_and_secrets_file_is_not_packaged(built):
    summary, _ = built
    rpms = _rpms(summary)
    cfg = rpms["airflow-prod-config-bigdata-prod"]
    flags = dict(
        line.split(" ", 1)[::-1]
        for line in rpm_query(cfg, "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]").splitlines()
    )
    for path in ("/etc/airflow/airflow.cfg", "/etc/airflow/webserver_config.py", "/etc/sysconfig/airflow"):
        assert "c" in flags[path] and "n" in flags[path], (path, flags[path])
    assert "/etc/airflow/secrets.env.example" not in flags   # documentation now, in the base package
    assert "/usr/share/doc/airflow-prod/secrets.env.example" in rpm_query(rpms["airflow-prod"], "-l")
    for name, path in rpms.items():
        assert "/etc/airflow/secrets.env\n" not in rpm_query(path, "-l") + "\n", name


def test_scriptlets_behave_like_fedora_systemd_macros(built):
    summary, _ = built
    rpms = _rpms(summary)
    sched = rpm_query(rpms["airflow-prod-scheduler"], "--scripts")
    assert re.search(r"if \[ \$1 -eq 1 \]; then\s+/usr/bin/systemctl --no-reload preset airflow-scheduler.service", sched)
    assert re.search(r"if \[ \$1 -eq 0 \]; then\s+/usr/bin/systemctl --no-reload disable --now airflow-scheduler.service", sched)
    # Restarts are queued (--no-block): no rpm transaction waits for a drain or a migration.
    assert "daemon-reload" in sched and "try-restart --no-block airflow-scheduler.service" in sched
    assert not re.search(r"try-restart (?!--no-block)", sched + rpm_query(rpms["airflow-prod"], "--scripts"))
    base = rpm_query(rpms["airflow-prod"], "--scripts")
    pre = base.split("postinstall scriptlet")[0]
    # Preconditions come before the user is created, and before any file lands.
    assert pre.index("is not Python 3.11") < pre.index("useradd -r -g airflow")
    assert "needs $need_kb KiB free" in pre
    assert "/usr/libexec/airflow-prod/build-venv" in base and "THE AIRFLOW VIRTUALENV WAS NOT BUILT" in base
    assert "userdel" not in base and "groupdel" not in base  # erase keeps the user
    assert "rm -rf /opt/airflow/dags" not in base and "rm -rf /opt/airflow/logs" not in base


def test_literal_percent_survives_rpm_macro_expansion(built):
    summary, _ = built
    assert "100% test" in rpm_query(_rpms(summary)["airflow-prod"], "--qf", "%{DESCRIPTION}")


def test_no_secret_value_appears_in_any_package(built, secrets, tmp_path):
    summary, _ = built
    _, values = secrets
    needles = {name: value.encode() for name, value in values.items()}
    for name, path in _rpms(summary).items():
        # Payload: unpacked with rpm2cpio (streamed), every file scanned.
        root = extract(path, tmp_path / name)
        for f in root.rglob("*"):
            if f.is_file():
                data = f.read_bytes() if f.suffix != ".whl" else b""
                for var, needle in needles.items():
                    assert needle not in data, f"{var} found in {name}:{f.relative_to(root)}"
        # Header: scriptlets, descriptions, everything rpm -qi and --scripts show.
        header = (rpm_query(path, "-i", "--scripts", "--triggers") + rpm_query(path, "--qf", "%{DESCRIPTION}")).encode()
        for var, needle in needles.items():
            assert needle not in header, f"{var} found in the header of {name}"
    # And the raw RPM files, for good measure (a payload is compressed; this covers headers).
    for name, path in _rpms(summary).items():
        raw = path.read_bytes() if path.stat().st_size < 50 << 20 else b""
        assert not any(n in raw for n in needles.values()), name


def test_wheelhouse_holds_wheels_offline_lock_and_uv(built, wh):
    summary, _ = built
    files = rpm_query(_rpms(summary)["airflow-prod-wheelhouse"], "-l").split()
    for whl in wh.dir.glob("*.whl"):
        assert f"/usr/lib/airflow-prod/wheelhouse/{whl.name}" in files
    assert "/usr/lib/airflow-prod/requirements.txt" in files
    assert f"/usr/lib/airflow-prod/uv/{wh.uv_wheel.name}" in files


def test_the_bundle_and_wheelhouse_sboms_are_valid_cyclonedx_and_the_docs_package_ships_one(built, wh, tmp_path):
    """docs/sbom.md: every RPM with the sha256 of the file published, every wheel, and the
    graph between them; the base package carries the wheelhouse's SBOM in its docs dir."""
    from builder.fsutil import sha256_file

    summary, _ = built
    sboms = summary.repo / "sbom"
    bundle = assert_valid_cyclonedx((sboms / "bundle.cdx.json").read_text())
    wheelhouse_text = (sboms / "wheelhouse.cdx.json").read_text()
    assert_valid_cyclonedx(wheelhouse_text)

    rpms = {c["name"]: c for c in bundle["components"] if c["purl"].startswith("pkg:rpm/airflow-prod/")}
    wheels = {c["properties"][0]["value"]: c for c in bundle["components"] if c["purl"].startswith("pkg:pypi/")}
    assert set(rpms) == {p.name for p in summary.packages}
    assert len(bundle["components"]) == len(rpms) + len(wheels)
    for pkg in summary.packages:
        assert rpms[pkg.name]["hashes"] == [{"alg": "SHA-256", "content": sha256_file(summary.repo / pkg.path.name)}]
    assert sorted(wheels) == sorted([p.name for p in wh.dir.glob("*.whl")] + [wh.uv_wheel.name])
    assert wheels["six-1.17.0-py2.py3-none-any.whl"]["hashes"][0]["content"] == sha256_file(
        wh.dir / "six-1.17.0-py2.py3-none-any.whl")
    deps = {d["ref"]: set(d["dependsOn"]) for d in bundle["dependencies"]}
    ref = {name: c["bom-ref"] for name, c in rpms.items()}
    assert deps[ref["airflow-prod-wheelhouse"]] == {w["bom-ref"] for w in wheels.values()}
    assert deps[ref["airflow-prod"]] == {ref["airflow-prod-wheelhouse"]}
    config = next(n for n in rpms if n.startswith("airflow-prod-config-"))
    assert {ref["airflow-prod"], ref[config]} <= deps[ref["airflow-prod-scheduler"]]
    assert deps[bundle["metadata"]["component"]["bom-ref"]] == set(ref.values())

    shipped = extract_text(_rpms(summary)["airflow-prod"], "usr/share/doc/airflow-prod/wheelhouse.cdx.json", tmp_path)
    assert shipped == wheelhouse_text


def _payload(path: Path) -> list[tuple[str, str, str, str, str]]:
    """(perms, user, group, fflags, name) of every file and directory in a package."""
    qf = "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags}| %{FILENAMES}\n]"
    rows = []
    for line in rpm_query(path, "--qf", qf).splitlines():
        head, name = line.split("| ", 1)
        perms, user, group, *fflags = head.split(" ")
        rows.append((perms, user, group, "".join(fflags), name))
    return rows


def test_no_directory_we_ship_is_one_rhel9_owns_and_owners_are_required(built):
    """rpm calls a directory owned by two packages with different modes a file conflict
    (firewalld-filesystem's /usr/lib/firewalld 0755 vs ours 0750 blocked every install).
    Over the built RPMs: no RHEL 9 directory is ours, every RHEL owner of a directory we
    put files in is required, nothing under /etc is anything but %config."""
    from builder.rpm.dirs import IMPLICIT_OWNERS, RHEL9_SHARED, parents

    summary, _ = built
    problems = []
    shipped_dirs: dict[str, str] = {}
    for name, path in _rpms(summary).items():
        requires = {r.split()[0] for r in rpm_query(path, "--requires").splitlines()}
        for perms, user, group, fflags, dest in _payload(path):
            if perms.startswith("d"):
                shipped_dirs[dest] = name
                if dest in RHEL9_SHARED:
                    rhel = RHEL9_SHARED[dest]
                    problems.append(f"{name} owns {dest} {perms} {user}:{group}; RHEL 9's {rhel.owner} "
                                    f"owns it {rhel.mode:04o} {rhel.user}:{rhel.group}")
            elif dest.startswith("/etc/") and "c" not in fflags:
                problems.append(f"{name}: {dest} is under /etc but not %config")
            for parent in parents(dest):
                rhel = RHEL9_SHARED.get(parent)
                if rhel and rhel.owner not in IMPLICIT_OWNERS and rhel.owner not in requires:
                    problems.append(f"{name} puts {dest} in {parent} but does not require {rhel.owner}")
    assert problems == []
    # What we do own has the modes of the explicit table (never the build host's umask).
    assert {"/opt/airflow", "/etc/airflow", "/usr/share/doc/airflow-prod", "/var/log/airflow-prod"} <= set(shipped_dirs)


def test_the_engine_refuses_a_package_that_owns_a_rhel_directory():
    """The same rule at build time, before rpmbuild: the old firewalld co-ownership fails
    with the reason, as does a file dropped into a shared directory without its owner."""
    from builder.rpm.dirs import PackagingError, check_packages
    from builder.rpm.plan import Entry, RpmPackage

    old_role = RpmPackage("airflow-prod-api-server", "", "", entries=(
        Entry("/usr/lib/firewalld", "dir", 0o750), Entry("/usr/lib/firewalld/services", "dir", 0o750),
        Entry("/usr/lib/firewalld/services/airflow-api-server.xml", text="<service/>"),
    ), requires=("systemd",))
    with pytest.raises(PackagingError) as err:
        check_packages([old_role])
    msg = str(err.value)
    assert "owns /usr/lib/firewalld (0750 root:root), which RHEL 9's firewalld-filesystem owns (0755" in msg
    assert "does not require firewalld-filesystem" in msg
    stray = RpmPackage("x", "", "", entries=(Entry("/etc/airflow/notes.txt", text="x"),
                                             Entry("/usr/share/doc/x/README", text="x")))
    with pytest.raises(PackagingError, match=r"(?s)/etc/airflow/notes.txt under /etc but not as %config"
                                             r".*nobody owns /usr/share/doc/x"):
        check_packages([stray])


def test_the_test_standin_and_the_engine_agree_on_rhel9_modes():
    """Two lists of RHEL 9's directories (the engine's check, the stand-in's rpmdb) must
    not drift apart: a mode they disagree on would hide a conflict from the install tests."""
    from builder.rpm.dirs import RHEL9_SHARED
    from e2e.repo import RHEL_DIRS

    common = [d for d in RHEL_DIRS if d.path in RHEL9_SHARED]
    assert len(common) >= 12
    for d in common:
        rhel = RHEL9_SHARED[d.path]
        assert (d.mode, d.user, d.group) == (rhel.mode, rhel.user, rhel.group), d.path
