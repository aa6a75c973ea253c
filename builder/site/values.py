"""Checks for single values of site.toml: host names, DNs, principals, ...

Each check returns the value (possibly normalised) or raises
`PydanticCustomError` whose message says what would be valid.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import zoneinfo
from functools import cache
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_PRINCIPAL = re.compile(r"^[^/@\s]+(/[^/@\s]+)?@[A-Z0-9][A-Z0-9.\-]*$")
_DN_ATTR = re.compile(r"^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)*)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SITE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


def _fail(message: str, **ctx: object) -> PydanticCustomError:
    return PydanticCustomError("site_value", message, ctx or None)


def hostname(value: str) -> str:
    """An RFC 1123 host name (one label or an FQDN) or an IP address."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    labels = value.rstrip(".").split(".")
    if len(value) > 253 or not value or not all(_LABEL.match(label) for label in labels):
        raise _fail(
            "not a valid host name: use letters, digits and '-' in dot-separated labels "
            "of at most 63 characters (e.g. airflow.example.com)"
        )
    return value.lower()


def abs_path(value: str) -> str:
    if not value.startswith("/"):
        raise _fail("must be an absolute path (starting with /)")
    if posixpath.normpath(value) != value:
        raise _fail("must be a normalised path (no '..', '//', trailing '/'): {norm}",
                    norm=posixpath.normpath(value))
    return value


def distinguished_name(value: str) -> str:
    """An RFC 4514 DN: attr=value pairs separated by unescaped commas."""
    if not value.strip():
        raise _fail("must be a distinguished name such as CN=Users,DC=example,DC=com")
    for rdn in _split_unescaped(value, ","):
        for ava in _split_unescaped(rdn, "+"):
            attr, eq, val = ava.partition("=")
            if not eq or not _DN_ATTR.match(attr.strip()) or not val.strip():
                raise _fail(
                    "not a distinguished name: {part} is not attribute=value "
                    "(e.g. CN=Users,DC=example,DC=com)",
                    part=repr(ava),
                )
    return value


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def principal(value: str) -> str:
    if not _PRINCIPAL.match(value):
        raise _fail(
            "not a Kerberos principal: use primary[/instance]@REALM with an upper-case "
            "realm (e.g. airflow@EXAMPLE.COM or airflow/_HOST@EXAMPLE.COM)"
        )
    return value


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def timezone(value: str) -> str:
    if value.lower() in ("utc", "system") or value in _zones():
        return value
    lowered = {z.lower(): z for z in _zones()}
    hint = lowered.get(value.lower())
    suffix = f" (did you mean {hint!r}?)" if hint else ""
    raise _fail(
        "not an IANA time zone{suffix}: use a name such as 'UTC', 'Europe/Berlin' or "
        "'Africa/Cairo'",
        suffix=suffix,
    )


def single_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise _fail("must be a single line (it is written into a config file)")
    return value


def env_value(value: str) -> str:
    single_line(value)
    if "'" in value:
        raise _fail("must not contain a single quote ' (environment files quote values with it)")
    return value


def env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise _fail("not an environment variable name: use letters, digits and '_'")
    return value


def site_name(value: str) -> str:
    if not _SITE_NAME.match(value):
        raise _fail(
            "must be 2-40 characters of lower-case letters, digits and '-', starting with "
            "a letter (it becomes part of RPM names)"
        )
    return value


def version(value: str) -> str:
    if not _VERSION.match(value):
        raise _fail("must be an exact version X.Y.Z (e.g. 3.1.4)")
    return value


def ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise _fail("not an IP address (e.g. 192.168.1.70 or ::1)") from None


HostName = Annotated[str, AfterValidator(hostname)]
AbsPath = Annotated[str, AfterValidator(abs_path)]
DN = Annotated[str, AfterValidator(distinguished_name)]
Principal = Annotated[str, AfterValidator(principal)]
TimeZone = Annotated[str, AfterValidator(timezone)]
EnvName = Annotated[str, AfterValidator(env_name)]
EnvValue = Annotated[str, AfterValidator(env_value)]
Line = Annotated[str, AfterValidator(single_line)]
SiteName = Annotated[str, AfterValidator(site_name)]
Version = Annotated[str, AfterValidator(version)]
IPAddress = Annotated[str, AfterValidator(ip_address)]


T = TypeVar("T")


def _tuple_from_list(value: object) -> object:
    # TOML arrays arrive as lists; the frozen model keeps tuples.
    return tuple(value) if isinstance(value, list) else value


Items = Annotated[tuple[T, ...], BeforeValidator(_tuple_from_list)]
