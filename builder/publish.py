"""Publish: sign the RPMs, make a yum repository RHEL 9's dnf reads, sign its
repomd.xml, export the public key; and the air-gap export tarball.

    repo/
      *.rpm                          signed (rpmsign, sha256 digest)
      repodata/repomd.xml(.asc)      xz-compressed metadata, detached armored signature
      RPM-GPG-KEY-airflow-prod       the public key (Satellite: GPG content credential)
      airflow-prod.repo              a dnf .repo file for hosts without Satellite
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from builder import run
from builder.errors import BundleError
from builder.fsutil import sha256_file, write_atomic

KEY_FILE = "RPM-GPG-KEY-airflow-prod"
REPO_FILE = "airflow-prod.repo"
SUMS = "SHA256SUMS"


class PublishError(BundleError):
    """Signing or repository creation cannot proceed."""


@dataclass(frozen=True)
class SigningKey:
    """A GnuPG secret key: `key` is a fingerprint, key ID or user ID (None: the default key)."""

    key: str | None = None
    gpg_home: Path | None = None

    @property
    def home(self) -> Path | None:
        """[publish] gpg_home, else $GNUPGHOME (tools run with a clean environment, so it is passed on)."""
        env = os.environ.get("GNUPGHOME")
        return self.gpg_home or (Path(env) if env else None)

    def gpg(self, *args: str) -> list[str]:
        argv = ["gpg", "--batch", "--no-tty"]
        if self.home:
            argv += ["--homedir", str(self.home)]
        return argv + list(args)

    def fingerprint(self) -> str:
        """The signing key's fingerprint; a missing key is a user error with a hint."""
        args = ["--with-colons", "--list-secret-keys"] + ([self.key] if self.key else [])
        proc = run.run(self.gpg(*args), what="gpg --list-secret-keys", check=False)
        fprs = []
        lines = proc.stdout.splitlines()
        for prev, line in zip(lines, lines[1:], strict=False):  # pairs of neighbours
            if prev.startswith("sec:") and line.startswith("fpr:"):
                fprs.append(line.split(":")[9])
        where = f" in {self.home}" if self.home else " in the default keyring (~/.gnupg)"
        if proc.returncode != 0 or not fprs:
            raise PublishError(
                f"no secret key {self.key or '(default)'}{where} to sign with",
                hint="set [publish] gpg_key (and gpg_home) in the site file, import the key with "
                "`gpg --import`, or build with --no-sign",
            )
        if len(fprs) > 1:
            raise PublishError(
                f"{len(fprs)} secret keys match {self.key or '(default)'}{where}: {', '.join(fprs)}",
                hint="name one by fingerprint in [publish] gpg_key",
            )
        return fprs[0]


def sign_rpms(paths: list[Path], key: SigningKey, fingerprint: str) -> None:
    """rpmsign --addsign in place, sha256 digests (RHEL 9's crypto policy rejects SHA-1)."""
    if not paths:
        return
    macros = {
        "_gpg_name": fingerprint,
        "__gpg": run.which("gpg"),
        "_gpg_digest_algo": "sha256",
        "_gpg_sign_cmd_extra_args": "--batch --no-tty",
    }
    if key.home:
        macros["_gpg_path"] = str(key.home)
    argv = ["rpmsign", "--addsign"]
    for name, value in macros.items():
        argv += ["--define", f"{name} {value}"]
    run.run(argv + [str(p) for p in paths], what="rpmsign")


def make_repo(repo: Path, revision: int) -> None:
    """createrepo_c with xz metadata (RHEL 9's dnf cannot read zstd metadata), reproducible timestamps."""
    shutil.rmtree(repo / "repodata", ignore_errors=True)
    run.run([
        "createrepo_c", "--no-database", "--general-compress-type=xz", "--checksum=sha256",
        f"--revision={revision}", "--set-timestamp-to-revision", str(repo),
    ], what="createrepo_c")


def sign_repomd(repo: Path, key: SigningKey, fingerprint: str) -> Path:
    repomd = repo / "repodata" / "repomd.xml"
    asc = repomd.with_name("repomd.xml.asc")
    asc.unlink(missing_ok=True)
    run.run(key.gpg("--yes", "--armor", "--digest-algo", "sha256", "--local-user", fingerprint,
                    "--detach-sign", "--output", str(asc), str(repomd)), what="gpg --detach-sign repomd.xml")
    return asc


def export_key(repo: Path, key: SigningKey, fingerprint: str) -> Path:
    proc = run.run(key.gpg("--armor", "--export", fingerprint), what="gpg --export")
    return write_atomic(repo / KEY_FILE, proc.stdout)


def repo_file(site_name: str, signed: bool) -> str:
    check = "1" if signed else "0"
    return (
        f"# dnf repository of Airflow site {site_name} (airflow-prod). Copy to /etc/yum.repos.d/,\n"
        f"# set baseurl to where the repository is served (file:// or https://), and the key to\n"
        f"# /etc/pki/rpm-gpg/{KEY_FILE}. Then: dnf install airflow-prod-<role> ...\n"
        f"[airflow-prod-{site_name}]\n"
        f"name=Apache Airflow bundle for site {site_name}\n"
        f"baseurl=file:///srv/repos/airflow-prod-{site_name}\n"
        "enabled=1\n"
        f"gpgcheck={check}\n"
        f"repo_gpgcheck={check}\n"
        f"gpgkey=file:///etc/pki/rpm-gpg/{KEY_FILE}\n"
    )


def sums_text(root: Path) -> str:
    """`sha256sum -c` format for every file under root except SHA256SUMS, sorted."""
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != SUMS):
        lines.append(f"{sha256_file(path)}  {path.relative_to(root).as_posix()}")
    return "\n".join(lines) + "\n"


def export_tarball(repo: Path, dest: Path, prefix: str, mtime: int) -> Path:
    """One reproducible tarball of the repository with SHA256SUMS inside, for the air gap.

    Files stream into the archive (never whole in memory); uncompressed, since
    RPMs and metadata are compressed already.
    """
    if not (repo / "repodata" / "repomd.xml").is_file():
        raise PublishError(f"{repo} is not a repository yet", hint="run `bundle build` first")
    write_atomic(repo / SUMS, sums_text(repo))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")

    def norm(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = min(int(info.mtime), mtime)
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(repo, arcname=prefix, recursive=False, filter=norm)
        for path in sorted(repo.rglob("*")):
            tar.add(path, arcname=f"{prefix}/{path.relative_to(repo).as_posix()}", recursive=False, filter=norm)
    os.replace(tmp, dest)
    return dest
