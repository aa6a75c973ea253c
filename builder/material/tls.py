"""TLS material for the api-server: the guide's case A (key + CSR for a CA),
case B (self-signed), and a check of what will be deployed.

The certificate file Airflow gets as [api] ssl_cert must be the full chain
(server first, then intermediates and CA): task workers trust certifi plus
that file only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from builder.errors import BundleError, UsageError
from builder.fsutil import write_atomic
from builder.site import Site


class TlsCheckFailed(BundleError):
    pass


def _derived(value: str | None, key: str) -> str:
    """A setting the site model fills in when the file leaves it out."""
    assert value is not None, f"{key} is derived by the site model"
    return value


def _subject(site: Site) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, _derived(site.tls.common_name, "tls.common_name"))]
    if site.tls.organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, site.tls.organization))
    if site.tls.country:
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, site.tls.country))
    return x509.Name(attrs)


def _sans(site: Site) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in site.tls.dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in site.tls.ip_addresses]
    return x509.SubjectAlternativeName(names)


_EKU = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
_KU = x509.KeyUsage(
    digital_signature=True, key_encipherment=True, content_commitment=False, data_encipherment=False,
    key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
)


def new_key(site: Site) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=site.tls.key_size)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def build_csr(site: Site, key: rsa.RSAPrivateKey) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_subject(site))
        .add_extension(_sans(site), critical=False)
        .add_extension(_EKU, critical=False)
        .add_extension(_KU, critical=True)
        .sign(key, hashes.SHA256())
    )


def build_self_signed(site: Site, key: rsa.RSAPrivateKey, now: dt.datetime | None = None) -> x509.Certificate:
    now = now or dt.datetime.now(dt.timezone.utc)
    name = _subject(site)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=site.tls.days))
        .add_extension(_sans(site), critical=False)
        .add_extension(_EKU, critical=False)
        .add_extension(_KU, critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


@dataclass(frozen=True)
class TlsFiles:
    key: Path
    csr: Path | None = None
    cert: Path | None = None


def _key_out(out_dir: Path, site: Site, force: bool) -> Path:
    key_path = out_dir / Path(_derived(site.tls.key, "tls.key")).name
    if key_path.exists() and not force:
        raise UsageError(f"{key_path} exists; pass --force to replace the private key")
    return key_path


def write_csr(site: Site, out_dir: Path, force: bool = False) -> TlsFiles:
    """Case A: a new key and a CSR to send to your CA."""
    key_path = _key_out(out_dir, site, force)
    key = new_key(site)
    csr_path = out_dir / "airflow.csr"
    write_atomic(key_path, _key_pem(key), 0o600)
    write_atomic(csr_path, build_csr(site, key).public_bytes(serialization.Encoding.PEM))
    return TlsFiles(key=key_path, csr=csr_path)


def write_self_signed(site: Site, out_dir: Path, force: bool = False) -> TlsFiles:
    """Case B: a new key and a self-signed certificate (it is its own chain)."""
    key_path = _key_out(out_dir, site, force)
    key = new_key(site)
    cert_path = out_dir / Path(_derived(site.tls.cert, "tls.cert")).name
    write_atomic(key_path, _key_pem(key), 0o600)
    write_atomic(cert_path, build_self_signed(site, key).public_bytes(serialization.Encoding.PEM))
    return TlsFiles(key=key_path, cert=cert_path)


@dataclass
class TlsReport:
    subject: str = ""
    sans: list[str] = field(default_factory=list)
    chain_length: int = 0
    days_left: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _load_certs(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found") from None
    except ValueError as exc:
        raise UsageError(f"{path}: not PEM certificates ({exc})") from None


def check_tls(site: Site, cert: Path, key: Path, ca: Path | None, now: dt.datetime | None = None) -> TlsReport:
    """Key matches cert, SANs cover the base_url host, chain complete, expiry."""
    now = now or dt.datetime.now(dt.timezone.utc)
    chain = _load_certs(cert)
    leaf = chain[0]
    report = TlsReport(subject=leaf.subject.rfc4514_string(), chain_length=len(chain))
    try:
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except FileNotFoundError:
        raise UsageError(f"{key}: file not found") from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{key}: not an unencrypted PEM private key ({exc})") from None
    # SubjectPublicKeyInfo bytes: comparable for every key type (public_numbers is not).
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if private.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        report.problems.append(f"{key} does not match the certificate {cert} (different public keys)")

    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    report.sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
    host = site.api.host
    if host not in dns and host not in ips:
        report.problems.append(
            f"the certificate's subjectAltNames {report.sans} do not cover {host!r}, the host of "
            f"base_url {site.base_url}"
        )

    report.days_left = (leaf.not_valid_after_utc - now).days
    if report.days_left < 0:
        report.problems.append(f"the certificate expired {-report.days_left} days ago")
    elif report.days_left < 30:
        report.problems.append(f"the certificate expires in {report.days_left} days")

    report.problems += _chain_problems(chain, _load_certs(ca) if ca else [], cert)
    return report


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def _chain_problems(chain: list[x509.Certificate], anchors: list[x509.Certificate], cert: Path) -> list[str]:
    for child, parent in zip(chain, chain[1:], strict=False):  # each with the next
        if not _issued_by(child, parent):
            return [f"{cert}: certificate {child.subject.rfc4514_string()!r} is not issued by the next one "
                    f"in the file ({parent.subject.rfc4514_string()!r}): order is server, intermediates, CA"]
    last = chain[-1]
    if _issued_by(last, last):
        if anchors and not any(a == last for a in anchors):
            return [f"the chain in {cert} ends in {last.subject.rfc4514_string()!r}, which is not in the CA file"]
        return []
    if any(_issued_by(last, a) for a in anchors):
        if len(chain) == 1:
            # Workers trust certifi plus [api] ssl_cert only: the CA must be in that file.
            return [f"{cert} holds only the server certificate: append the CA chain "
                    f"(cat cert.pem ca-chain.pem > {cert.name}); task workers trust only this file"]
        return [f"{cert} does not end with its root CA {last.issuer.rfc4514_string()!r}: append it"]
    return [f"the chain in {cert} is incomplete: nothing verifies {last.subject.rfc4514_string()!r} "
            f"(issuer {last.issuer.rfc4514_string()!r}); give --ca with the issuing CA"]


def default_paths(site: Site, base: Path | None) -> tuple[Path, Path, Path | None]:
    """cert, key, ca: under `base` (a local copy of the security dir) or as on the host."""
    names = (_derived(site.tls.cert, "tls.cert"), _derived(site.tls.key, "tls.key"), _derived(site.tls.ca, "tls.ca"))
    if base is None:
        cert, key, ca = (Path(n) for n in names)
    else:
        cert, key, ca = (base / Path(n).name for n in names)
    return cert, key, (ca if ca.exists() else None)


__all__ = [
    "TlsReport", "TlsFiles", "build_csr", "build_self_signed", "check_tls", "default_paths",
    "write_csr", "write_self_signed",
]
