"""Publish: sign the RPMs, make a yum repository RHEL 9's dnf reads, sign its
repomd.xml, export the public key; and the air-gap export tarball.

    repo/
      *.rpm                          signed (rpmsign, sha256 digest)
      repodata/repomd.xml(.asc)      xz-compressed metadata, detached armored signature
      RPM-GPG-KEY-airflow-prod       the public key (Satellite: GPG content credential)
      airflow-prod.repo              .repo for hosts reading this repository directly (or a
                                     Satellite Complete Mirroring copy): repo_gpgcheck=1
      airflow-prod-satellite.repo    .repo for a Satellite Additive / Content-only copy, whose
                                     metadata Satellite republishes unsigned: repo_gpgcheck=0
"""

from __future__ import annotations

import os
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from builder import run
from builder.errors import BundleError
from builder.fsutil import sha256_file, write_atomic

KEY_FILE = "RPM-GPG-KEY-airflow-prod"
REPO_FILE = "airflow-prod.repo"
SATELLITE_REPO_FILE = "airflow-prod-satellite.repo"
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


# OpenPGP public-key algorithms (RFC 4880 9.1) and hash algorithms (9.4) by number.
PK_ALGOS = {1: "RSA", 2: "RSA", 3: "RSA", 16: "Elgamal", 17: "DSA", 18: "ECDH", 19: "ECDSA", 22: "EdDSA"}
HASH_ALGOS = {1: "MD5", 2: "SHA-1", 3: "RIPEMD-160", 8: "SHA-256", 9: "SHA-384", 10: "SHA-512", 11: "SHA-224"}
# What RHEL 9's DEFAULT crypto policy refuses in rpm signatures and keys.
WEAK_HASHES = {1, 2, 3}
MIN_RSA_BITS = 2048
EXPIRY_WARN_DAYS = 90


@dataclass(frozen=True)
class KeyReport:
    """The signing key as RHEL 9 will judge it: what admins compare, what needs attention."""

    fingerprint: str
    description: str               # e.g. "RSA 3072, expires 2027-01-01"
    warnings: tuple[str, ...] = ()


@dataclass
class _Key:
    kind: str           # pub | sub
    validity: str
    bits: int
    algo: int
    keyid: str
    expires: int        # 0: never
    caps: str


def _list_key(key: SigningKey, fingerprint: str) -> tuple[list[_Key], list[tuple[_Key, str, str, int]]]:
    """The key and its subkeys, and every signature on them: (signed key, signer key ID,
    class, hash algorithm), from gpg's colon listing."""
    proc = run.run(key.gpg("--with-colons", "--fixed-list-mode", "--list-sigs", fingerprint),
                   what="gpg --list-sigs", check=False)
    if proc.returncode != 0:
        raise PublishError(f"cannot read the public key {fingerprint}: {proc.stderr.strip()[-300:]}")
    keys: list[_Key] = []
    sigs: list[tuple[_Key, str, str, int]] = []
    current = None
    for line in proc.stdout.splitlines():
        f = line.split(":")
        if f[0] in ("pub", "sub"):
            current = _Key(f[0], f[1], int(f[2] or 0), int(f[3] or 0), f[4], int(f[6] or 0),
                           f[11] if len(f) > 11 else "")
            keys.append(current)
        elif f[0] == "sig" and current is not None and len(f) > 15:
            sigs.append((current, f[4], f[10], int(f[15] or 0)))
    if not keys:
        raise PublishError(f"gpg lists no public key for {fingerprint}")
    return keys, sigs


def _key_problems(signers: list[_Key], primary: _Key, now: float) -> list[str]:
    problems = []
    for k in signers:
        what = "the primary key" if k is primary else f"signing subkey {k.keyid}"
        algo = PK_ALGOS.get(k.algo, f"algorithm {k.algo}")
        if algo in ("DSA", "Elgamal"):
            problems.append(f"{what} is {algo}: RHEL 9's DEFAULT crypto policy does not accept {algo} signatures")
        elif algo == "RSA" and k.bits < MIN_RSA_BITS:
            problems.append(f"{what} is RSA {k.bits}: RHEL 9's DEFAULT crypto policy needs RSA >= {MIN_RSA_BITS}")
        if k.validity == "r":
            problems.append(f"{what} is revoked")
        if k.expires and k.expires <= now:
            day = time.strftime("%Y-%m-%d", time.gmtime(k.expires))
            problems.append(f"{what} expired on {day}: dnf refuses packages signed with it")
    return problems


def _signature_problems(sigs: list[tuple[_Key, str, str, int]], primary: _Key) -> list[str]:
    problems = []
    for k, signer, sigclass, digest in sigs:
        # 0x13/0x10-0x12: certifications of the user ID by the key itself; 0x18: subkey binding.
        if signer != primary.keyid or sigclass[:2] not in ("10", "11", "12", "13", "18"):
            continue
        if digest in WEAK_HASHES:
            kind = "subkey binding" if sigclass.startswith("18") else "self-signature"
            problems.append(f"its {kind} ({'primary key' if k is primary else 'subkey ' + k.keyid}) "
                            f"uses {HASH_ALGOS[digest]}: RHEL 9's DEFAULT crypto policy rejects SHA-1 "
                            "(and weaker) signatures, so rpm --import refuses the key")
    return problems


def check_key(key: SigningKey, fingerprint: str, now: float | None = None) -> KeyReport:
    """Refuse a key RHEL 9 hosts would reject (DEFAULT crypto policy), before anything is signed.

    Refused: a DSA (or Elgamal) primary or signing key, RSA under 2048 bits, a self- or
    subkey-binding signature made with SHA-1/MD5/RIPEMD-160 (rpm on RHEL 9 rejects the
    key on import: dnf cannot verify anything it signed), and an expired key (dnf refuses
    packages signed by it). Warned: expiry within 90 days (every host would have to get a
    new key before then)."""
    now = time.time() if now is None else now
    keys, sigs = _list_key(key, fingerprint)
    primary = keys[0]
    signers = [k for k in keys if k is primary or "s" in k.caps.lower()]
    problems = _key_problems(signers, primary, now) + _signature_problems(sigs, primary)
    if problems:
        raise PublishError(
            f"signing key {fingerprint} would be refused by RHEL 9 hosts:\n"
            + "\n".join(f"  - {p}" for p in dict.fromkeys(problems)),
            hint="make a new key: gpg --quick-gen-key 'Airflow packages <you@example.com>' rsa3072 sign 3y "
                 "(gpg 2.2 self-signs with SHA-256 by default)",
        )
    warnings = []
    expiries = [k.expires for k in signers if k.expires]
    soonest = min(expiries) if expiries else 0
    if soonest and soonest - now < EXPIRY_WARN_DAYS * 86400:
        days = int((soonest - now) // 86400)
        warnings.append(f"signing key {fingerprint} expires in {days} days "
                        f"({time.strftime('%Y-%m-%d', time.gmtime(soonest))}): extend it (gpg --quick-set-expire) "
                        "and give every host the refreshed public key before then")
    algo = PK_ALGOS.get(primary.algo, str(primary.algo))
    size = f" {primary.bits}" if algo in ("RSA", "DSA") else ""
    until = time.strftime("%Y-%m-%d", time.gmtime(soonest)) if soonest else "never"
    return KeyReport(fingerprint, f"{algo}{size}, expires {until}", tuple(warnings))


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


def repo_file(site_name: str, signed: bool, satellite: bool = False) -> str:
    """A dnf .repo file. Package signatures (gpgcheck) are checked on every path; the
    metadata signature (repo_gpgcheck) only where our signed repomd.xml reaches the host:
    direct, or through Satellite's Complete Mirroring. Additive and Content-only syncs
    republish the metadata unsigned, and dnf would fail on a 404 for repomd.xml.asc."""
    check = "1" if signed else "0"
    if satellite:
        head = (
            f"# dnf repository of Airflow site {site_name} (airflow-prod), synced into Red Hat Satellite\n"
            "# with the Additive or Content-only mirroring policy. Satellite republishes the metadata\n"
            "# unsigned, so repo_gpgcheck=0; every package stays signed and checked (gpgcheck=1).\n"
            "# With Complete Mirroring use airflow-prod.repo (repo_gpgcheck=1) instead. Hosts\n"
            "# registered to Satellite get the repository from subscription-manager and need neither.\n"
            "# baseurl: the repository's Published At URL (hammer repository info).\n"
        )
        baseurl = f"https://satellite.example.com/pulp/content/ORG/Library/custom/Airflow_{site_name}/airflow-prod/"
        meta = "0"
    else:
        head = (
            f"# dnf repository of Airflow site {site_name} (airflow-prod), read directly (file:// or\n"
            "# https://) or from a Satellite Complete Mirroring copy: packages and repomd.xml are\n"
            "# signature-checked. Copy to /etc/yum.repos.d/, set baseurl, put the key in\n"
            f"# /etc/pki/rpm-gpg/{KEY_FILE}. Then: dnf install airflow-prod-<role> ...\n"
        )
        baseurl = f"file:///srv/repos/airflow-prod-{site_name}"
        meta = check
    return head + (
        f"[airflow-prod-{site_name}]\n"
        f"name=Apache Airflow bundle for site {site_name}\n"
        f"baseurl={baseurl}\n"
        "enabled=1\n"
        f"gpgcheck={check}\n"
        f"repo_gpgcheck={meta}\n"
        f"gpgkey=file:///etc/pki/rpm-gpg/{KEY_FILE}\n"
    )


def repo_files(site_name: str, signed: bool) -> dict[str, str]:
    """Both .repo variants, by file name, as the repository ships them."""
    return {REPO_FILE: repo_file(site_name, signed), SATELLITE_REPO_FILE: repo_file(site_name, signed, True)}


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
