"""Signing and export: the calls into rpm/publish.py a build makes, and the tarball `bundle export` writes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from builder.pipeline.context import BuildError, BuiltPackage, Signing, default_out_dir
from builder.pipeline.state import BuildState
from builder.fsutil import sha256_file, write_atomic
from builder.report import Notify
from builder.site import Site


def signing_key(site: Site, sign: bool | None) -> Signing:
    """The key that will sign, resolved to its fingerprint before any work is done."""
    from builder.rpm import publish

    if not (site.publish.sign if sign is None else sign):
        return Signing()
    key = publish.SigningKey(site.publish.gpg_key, Path(site.publish.gpg_home) if site.publish.gpg_home else None)
    return Signing(key, key.fingerprint())


def check_signing_key(signing: Signing, notify: Notify) -> None:
    """A key RHEL 9 would refuse (SHA-1 self-signature, RSA < 2048, DSA, expired) fails now."""
    from builder.rpm import publish

    if signing.key is None:
        return
    report = publish.check_key(signing.key, signing.fingerprint)
    notify("info", f"[sign] key {report.fingerprint} ({report.description}): the fingerprint admins compare")
    for warning in report.warnings:
        notify("warn", f"[sign] {warning}")


def place_signed(packages: list[BuiltPackage], repo: Path, digests: dict[str, str], signing: Signing,
                 previous: dict, force: bool) -> tuple[int, dict]:
    """Signed copies of the packages in repo, never the cached originals; a package signed
    already with this key is kept. Returns how many were (re)placed and the new record."""
    from builder.rpm import publish

    key, fpr = signing.key, signing.fingerprint
    to_sign, signed = [], {}
    for pkg in packages:
        dest = repo / pkg.path.name
        record = [digests[dest.name], fpr]
        signed[dest.name] = record
        if dest.exists() and previous.get(dest.name) == record and not force:
            continue
        tmp = repo / f".{dest.name}"
        shutil.copyfile(pkg.path, tmp)
        to_sign.append((tmp, dest))
    if key is not None and fpr:
        publish.sign_rpms([tmp for tmp, _ in to_sign], key, fpr)
    for tmp, dest in to_sign:
        os.replace(tmp, dest)
    for stale in repo.glob("*.rpm"):
        if stale.name not in digests:
            stale.unlink()
    return len(to_sign), signed


def write_metadata(repo: Path, stamp: int, signing: Signing, repo_files: dict[str, str]) -> None:
    """xz metadata, and with a key the signed repomd.xml and the public key; the .repo files."""
    from builder.rpm import publish

    key, fpr = signing.key, signing.fingerprint
    publish.make_repo(repo, stamp)
    if key is not None and fpr:
        publish.sign_repomd(repo, key, fpr)
        publish.export_key(repo, key, fpr)
    else:
        (repo / publish.KEY_FILE).unlink(missing_ok=True)
    for name, text in repo_files.items():
        write_atomic(repo / name, text)


def export(site: Site, out_dir: Path | None = None, dest: Path | None = None,
           allow_unsigned: bool = False) -> tuple[Path, str]:
    """The built repository as one tarball (SHA256SUMS inside) for carrying across the air gap.

    An unsigned repository is refused unless `allow_unsigned`: its .repo files say
    gpgcheck=0, so on the other side anything in its place would install as well."""
    from builder.rpm import publish

    out = (out_dir or default_out_dir(site)).resolve()
    build_state = BuildState.load(out / "state.json")
    state = build_state.data
    if "release" not in state:
        raise BuildError(f"nothing built in {out} yet", hint="run `bundle build --site ...` first")
    signed = build_state.recorded("publish").get("signed", {})
    if not allow_unsigned and (not signed or not all(fpr for _, fpr in signed.values())):
        raise BuildError(
            f"the repository in {out} is UNSIGNED: hosts would install it with gpgcheck=0, so "
            "whatever replaced a package on the way across the air gap would install too",
            hint="sign it (set [publish] gpg_key; build without --no-sign) and build again, or pass "
                 "--allow-unsigned to carry it anyway (a test bundle)")
    name = f"airflow-prod-{site.site.name}-{state['version']}-{state['release']}"
    tar = publish.export_tarball(out / "repo", dest or out / "export" / f"{name}.tar", name, state["stamp"])
    digest = sha256_file(tar)
    write_atomic(tar.with_name(tar.name + ".sha256"), f"{digest}  {tar.name}\n")
    return tar, digest
