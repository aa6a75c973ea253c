"""A private certificate authority for the tests (the admin's corporate CA).

It signs the api-server's CSR exactly as a CA would in the guide's case A
(`builder.material.tls.write_csr` -> CA -> full chain), and issues slapd's server
certificate for LDAPS/StartTLS.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support.tls import cert_pem


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class IssuedCert:
    key: Path       # private key (PEM, 0600)
    cert: Path      # the certificate alone
    chain: Path     # certificate followed by the CA: what [api] ssl_cert needs


class PrivateCA:
    """A self-signed root; `cert_path` is the file clients trust."""

    def __init__(self, directory: Path, name: str = "airflow-prod e2e test CA") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "airflow-prod tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ])
        now = _now()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = self.dir / "ca.pem"
        self.cert_path.write_bytes(cert_pem(self.cert))

    @property
    def pem(self) -> bytes:
        return cert_pem(self.cert)

    def sign_csr(self, csr_pem: bytes, days: int = 90) -> x509.Certificate:
        """Sign a CSR as a CA would: subject and requested extensions kept, CA=false added."""
        csr = x509.load_pem_x509_csr(csr_pem)
        assert csr.is_signature_valid, "CSR signature does not verify"
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject).issuer_name(self.cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
        )
        for ext in csr.extensions:
            if not isinstance(ext.value, (x509.BasicConstraints, x509.SubjectKeyIdentifier,
                                          x509.AuthorityKeyIdentifier)):
                builder = builder.add_extension(ext.value, critical=ext.critical)
        return builder.sign(self.key, hashes.SHA256())

    def write_chain(self, cert: x509.Certificate, out_dir: Path, stem: str) -> tuple[Path, Path]:
        """`<stem>.crt` (the certificate) and `<stem>-chain.pem` (certificate + CA)."""
        cert_path = out_dir / f"{stem}.crt"
        chain_path = out_dir / f"{stem}-chain.pem"
        cert_path.write_bytes(cert_pem(cert))
        chain_path.write_bytes(cert_pem(cert) + self.pem)
        return cert_path, chain_path

    def issue_server(self, out_dir: Path, stem: str, dns: list[str], ips: list[str]) -> IssuedCert:
        """A server key and certificate (for slapd), through a CSR like everyone else."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (dns or ips)[0])]))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256())
        )
        cert = self.sign_csr(csr.public_bytes(serialization.Encoding.PEM))
        out_dir.mkdir(parents=True, exist_ok=True)
        key_path = out_dir / f"{stem}.key"
        key_path.write_bytes(_key_pem(key))
        key_path.chmod(0o600)
        cert_path, chain_path = self.write_chain(cert, out_dir, stem)
        return IssuedCert(key=key_path, cert=cert_path, chain=chain_path)
