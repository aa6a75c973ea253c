"""TLS material: the guide's CSR flow with a real private CA, self-signed, checks,
and real TLS handshakes with Python's ssl module."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from builder.errors import UsageError
from builder.site import site_from_data
from builder.material.tls import check_tls, write_csr, write_self_signed
from support.sites import minimal_data
from support.tls import cert_pem

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def fast_site():
    d = minimal_data()
    d["api"] = {"host": "localhost"}
    # every api-server host must be in the SANs (the host af1 serves directly too)
    d["tls"] = {"dns_names": ["localhost", "af1.example.com"], "ip_addresses": ["127.0.0.1"], "key_size": 2048,
                "organization": "Airflow Prod", "country": "EG"}
    return site_from_data(d)


class PrivateCA:
    """A real root CA that signs CSRs, copying their extensions as a CA would."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Root CA")])
        now = dt.datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def sign(self, csr: x509.CertificateSigningRequest, days: int = 365) -> x509.Certificate:
        now = dt.datetime.now(UTC)
        builder = (
            x509.CertificateBuilder().subject_name(csr.subject).issuer_name(self.cert.subject)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=days))
        )
        for ext in csr.extensions:
            builder = builder.add_extension(ext.value, ext.critical)
        return builder.sign(self.key, hashes.SHA256())

    def pem(self) -> bytes:
        return cert_pem(self.cert)


@pytest.fixture(scope="module")
def ca() -> PrivateCA:
    return PrivateCA()


@pytest.fixture
def signed(tmp_path, fast_site, ca):
    """Case A end to end: key + CSR from the tool, signed by the CA, full chain assembled."""
    files = write_csr(fast_site, tmp_path)
    csr = x509.load_pem_x509_csr(files.csr.read_bytes())
    leaf = ca.sign(csr)
    (tmp_path / "leaf.pem").write_bytes(cert_pem(leaf))
    (tmp_path / "airflow_cert.pem").write_bytes(cert_pem(leaf) + ca.pem())
    (tmp_path / "ca-chain.pem").write_bytes(ca.pem())
    return tmp_path


def test_csr_carries_sans_and_usages(tmp_path, fast_site):
    files = write_csr(fast_site, tmp_path)
    assert oct(files.key.stat().st_mode & 0o777) == "0o600"
    csr = x509.load_pem_x509_csr(files.csr.read_bytes())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Airflow Prod"
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "af1.example.com"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    eku = csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def test_key_is_not_overwritten_without_force(tmp_path, fast_site):
    write_csr(fast_site, tmp_path)
    key = (tmp_path / "airflow_key.pem").read_bytes()
    with pytest.raises(UsageError, match=r"airflow_key\.pem exists; pass --force"):
        write_csr(fast_site, tmp_path)
    assert (tmp_path / "airflow_key.pem").read_bytes() == key
    write_csr(fast_site, tmp_path, force=True)
    assert (tmp_path / "airflow_key.pem").read_bytes() != key


def test_signed_full_chain_passes(signed, fast_site):
    report = check_tls(fast_site, signed / "airflow_cert.pem", signed / "airflow_key.pem", signed / "ca-chain.pem")
    assert report.ok, report.problems
    assert report.chain_length == 2
    assert 360 <= report.days_left <= 365


def test_leaf_only_is_an_incomplete_chain(signed, fast_site):
    report = check_tls(fast_site, signed / "leaf.pem", signed / "airflow_key.pem", signed / "ca-chain.pem")
    assert any("holds only the server certificate: append the CA chain" in p for p in report.problems)


def test_unknown_issuer_is_reported(signed, fast_site):
    report = check_tls(fast_site, signed / "leaf.pem", signed / "airflow_key.pem", None)
    assert any("the chain in" in p and "is incomplete: nothing verifies" in p for p in report.problems)


def test_wrong_key_is_reported(signed, fast_site, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    write_csr(fast_site, other)
    report = check_tls(fast_site, signed / "airflow_cert.pem", other / "airflow_key.pem", signed / "ca-chain.pem")
    assert report.problems == [f"{other / 'airflow_key.pem'} does not match the certificate "
                               f"{signed / 'airflow_cert.pem'} (different public keys)"]


def test_sans_must_cover_base_url_host(signed, ca):
    d = minimal_data()
    d["api"] = {"host": "airflow.example.com"}
    d["tls"] = {"dns_names": ["airflow.example.com", "af1.example.com"]}
    other_site = site_from_data(d)
    report = check_tls(other_site, signed / "airflow_cert.pem", signed / "airflow_key.pem", signed / "ca-chain.pem")
    assert any("do not cover 'airflow.example.com', the host of base_url" in p for p in report.problems)


def test_expiry_is_reported(signed, fast_site):
    later = dt.datetime.now(UTC) + dt.timedelta(days=400)
    report = check_tls(fast_site, signed / "airflow_cert.pem", signed / "airflow_key.pem",
                       signed / "ca-chain.pem", now=later)
    assert any("the certificate expired" in p for p in report.problems)


def test_wrong_order_is_reported(signed, fast_site, ca):
    leaf = (signed / "leaf.pem").read_bytes()
    (signed / "reversed.pem").write_bytes(ca.pem() + leaf)
    report = check_tls(fast_site, signed / "reversed.pem", signed / "airflow_key.pem", signed / "ca-chain.pem")
    # The chain-order check itself must speak (the key mismatch alone would also fail the check).
    ca_name = x509.load_pem_x509_certificate(ca.pem()).subject.rfc4514_string()
    leaf_name = x509.load_pem_x509_certificate(leaf).subject.rfc4514_string()
    assert (f"{signed / 'reversed.pem'}: certificate {ca_name!r} is not issued by the next one in the file "
            f"({leaf_name!r}): order is server, intermediates, CA") in report.problems


def test_garbage_files_are_clear_errors(tmp_path, fast_site):
    (tmp_path / "c.pem").write_text("not a cert")
    with pytest.raises(UsageError, match=r"c\.pem: not PEM certificates"):
        check_tls(fast_site, tmp_path / "c.pem", tmp_path / "k.pem", None)
    with pytest.raises(UsageError, match=r"missing\.pem: file not found"):
        check_tls(fast_site, tmp_path / "missing.pem", tmp_path / "k.pem", None)


def _handshake(cert: Path, key: Path, cafile: Path, server_hostname: str) -> str:
    """Serve TLS on a free loopback port; connect verifying like a task worker does."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls_conn:
                tls_conn.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(cafile))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with client_ctx.wrap_socket(raw, server_hostname=server_hostname) as conn:
                return conn.recv(2).decode()
    finally:
        thread.join(5)
        listener.close()


def test_full_chain_verifies_in_a_real_handshake(signed):
    # Workers trust [api] ssl_cert: the full chain file itself is the CA file.
    assert _handshake(signed / "airflow_cert.pem", signed / "airflow_key.pem",
                      signed / "airflow_cert.pem", "localhost") == "ok"


def test_leaf_only_fails_a_real_handshake(signed):
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(signed / "leaf.pem", signed / "airflow_key.pem", signed / "leaf.pem", "localhost")


def test_self_signed_verifies_in_a_real_handshake(tmp_path, fast_site):
    files = write_self_signed(fast_site, tmp_path)
    assert check_tls(fast_site, files.cert, files.key, None).ok
    assert _handshake(files.cert, files.key, files.cert, "127.0.0.1") == "ok"
