"""Fixtures of the end-to-end tests: the real servers, the CA, the root image, the signing key."""

from .fixtures import (  # noqa: F401
    ca,
    e2e_target_image,
    kdc,
    ldap,
    postgres,
    redis,
    servers_dir,
    signing_key,
    target_image,
)
