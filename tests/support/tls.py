"""Certificates in the tests."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def cert_pem(cert: x509.Certificate) -> bytes:
    """The certificate in PEM, as the files the site's TLS directory holds."""
    return cert.public_bytes(serialization.Encoding.PEM)
