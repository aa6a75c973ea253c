"""Checks for single values of site.toml: host names, paths, DNs, principals, ...

One rule per kind of value. A value of site.toml reaches sh, systemd, rpm,
Airflow's config parser, tmpfiles, firewalld and Python; each rule here keeps
the value from changing the structure of any of those files, so `bundle check`
and rendering agree (no late rejects). The sinks escape again, as defence in
depth (builder/render/jinja.py).

Each check returns the value (possibly normalised) or raises
`PydanticCustomError` whose message says what would be valid. Regular
expressions are always `fullmatch`ed: `$` matches before a trailing newline.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import unicodedata
import zoneinfo
from functools import cache
from typing import Annotated, TypeVar

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion
from packaging.version import Version as PackageVersion
from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_PRINCIPAL_PART = r"[A-Za-z0-9._-]+"
_PRINCIPAL = re.compile(rf"{_PRINCIPAL_PART}(/{_PRINCIPAL_PART})?@[A-Z0-9][A-Z0-9.-]*")
_DN_ATTR = re.compile(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)*")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_SITE_NAME = re.compile(r"[a-z][a-z0-9-]{0,38}[a-z0-9]")
# Worker set names become unit and RPM names.
_WORKER_SET = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]|[a-z]")
_VERSION = re.compile(r"\d+\.\d+\.\d+")
# A container image: docker's reference grammar ([registry[:port]/]path[:tag][@sha256:digest],
# lower-case path components) or an image ID (sha256:<64 hex>).
_IMAGE_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REF = re.compile(
    # a registry is the first component only when it has a '.' or a ':' or is localhost
    rf"(?:(?=[^/]*[.:]|localhost/)[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]+)?/)?{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
    r"|sha256:[0-9a-f]{64}"
)
IMAGE_REF_MAX = 255
_EXTRA = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
_CFG_NAME = re.compile(r"[a-z][a-z0-9_]*")
# What Airflow's expand_env_var (os.path.expandvars) replaces: $name and ${...}.
_EXPANDED_VAR = re.compile(r"\$(\w|\{)", re.ASCII)
# Path components: written unquoted into units, tmpfiles, %files and sh.
_PATH_COMPONENT = re.compile(r"[A-Za-z0-9._+@-]+")
NAME_MAX = 255
PATH_MAX = 512        # far below Linux's 4096: versioned venvs and files go below these
TEXT_MAX = 512
ENV_VALUE_MAX = 4096

# Unicode categories that are never text in a config file: controls (incl. NUL,
# CR, U+0085), format characters (bidi overrides, BOM), line/paragraph separators.
_NOT_TEXT = {"Cc", "Cf", "Cs", "Zl", "Zp"}

# Directories other packages own (RHEL 9's filesystem, setup, systemd, ...):
# tmpfiles and %dir would take them over, with our modes.
SYSTEM_DIRS = frozenset(
    ["/", "/afs", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt",
     "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var"]
    + [f"/usr/{d}" for d in ("bin", "games", "include", "lib", "lib64", "libexec", "local", "sbin",
                             "share", "src", "tmp")]
    + [f"/var/{d}" for d in ("adm", "cache", "crash", "db", "empty", "ftp", "games", "kerberos",
                             "lib", "local", "lock", "log", "mail", "nis", "opt", "preserve", "run",
                             "spool", "tmp", "www", "yp")]
    + [f"/run/{d}" for d in ("lock", "log", "systemd", "user", "dbus", "udev", "cryptsetup",
                             "sudo", "faillock", "setrans", "fapolicyd", "firewalld")]
    + [f"/etc/{d}" for d in (
        "X11", "alternatives", "bash_completion.d", "chkconfig.d", "cron.d", "crypto-policies",
        "default", "dnf", "fapolicyd", "firewalld", "gnupg", "init.d", "krb5.conf.d", "ld.so.conf.d",
        "logrotate.d", "modprobe.d", "opt", "pam.d", "pki", "pm", "profile.d", "rc.d", "rpm",
        "rsyslog.d", "security", "selinux", "skel", "ssh", "ssl", "sudoers.d", "sysconfig",
        "sysctl.d", "systemd", "tmpfiles.d", "udev", "xdg", "yum", "yum.repos.d")]
)
# Trees no service path may lie in, and why.
_FORBIDDEN_TREES = (
    (("/proc", "/sys", "/dev"), "is on a kernel file system"),
    (("/tmp", "/var/tmp"), "is under a temporary directory: every unit runs with PrivateTmp=yes, "
                           "so each service would see its own empty copy (and tmp cleaners remove it)"),
    (("/home", "/root", "/run/user"), "is under a home directory: every unit runs with ProtectHome=yes, "
                                      "so services cannot see it"),
)


def _fail(message: str, **ctx: object) -> PydanticCustomError:
    return PydanticCustomError("site_value", message, ctx or None)


def _no_control(value: str) -> str:
    """Refuse characters that are never text in a config file, naming the first one."""
    for ch in value:
        if unicodedata.category(ch) in _NOT_TEXT:
            raise _fail(
                "must not contain control or invisible characters (found {ch} at position {pos}): "
                "it would end or hide a line in the files it is written to",
                ch=f"U+{ord(ch):04X}", pos=value.index(ch),
            )
    return value


def single_line(value: str) -> str:
    """Free text: one line of printable characters, of sane length."""
    if "\n" in value or "\r" in value:
        raise _fail("must be a single line (it is written into a config file)")
    _no_control(value)
    if len(value) > TEXT_MAX:
        raise _fail("is {n} characters long: at most {max}", n=len(value), max=TEXT_MAX)
    return value


def cfg_text(value: str) -> str:
    """Text that Airflow reads back from airflow.cfg exactly as written.

    `%` is escaped by the renderer (`%%`), but Airflow also runs every value
    through os.path.expandvars and expanduser, which have no escape.
    """
    single_line(value)
    if _EXPANDED_VAR.search(value):
        raise _fail(
            "Airflow expands $NAME and ${...} in airflow.cfg values to the service's environment "
            "(secrets included), and there is no escape: write '$' only before a character that is "
            "not a letter, digit, '_' or '{'"
        )
    if value.startswith("~"):
        raise _fail("Airflow expands a leading '~' in airflow.cfg values to a home directory: "
                    "do not start the value with '~'")
    if value != value.strip():
        raise _fail("must not start or end with spaces: airflow.cfg drops them")
    return value


def hostname(value: str) -> str:
    """An RFC 1123 host name (one label or an FQDN) or an IP address (normalised)."""
    _no_control(value)
    if "%" in value:
        raise _fail("IPv6 scope IDs ('%' and an interface) cannot be used: they do not work in URLs "
                    "or certificates; give the address without it")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    labels = value[:-1].split(".") if value.endswith(".") else value.split(".")
    if len(value) > 253 or not value or not all(_LABEL.fullmatch(label) for label in labels):
        raise _fail(
            "not a valid host name: use letters, digits and '-' in dot-separated labels "
            "of at most 63 characters (e.g. airflow.example.com)"
        )
    return value.lower()


def dns_name(value: str) -> str:
    """A host name for a certificate's DNS subjectAltName: not an IP address."""
    value = hostname(value)
    if is_ip(value):
        raise _fail("is an IP address: list it in tls.ip_addresses instead")
    return value


# Names of this host: traffic to them never leaves it.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def is_local(host: str) -> bool:
    return host in LOCAL_HOSTS


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def url_host(host: str) -> str:
    """A host as it appears in a URL's authority: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host else host


def ip_address(value: str) -> str:
    _no_control(value)
    if "%" in value:
        raise _fail("IPv6 scope IDs ('%' and an interface) cannot be used; give the address without it")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise _fail("not an IP address (e.g. 192.168.1.70 or ::1)") from None


def abs_path(value: str) -> str:
    """An absolute, normalised path of safe characters, within length limits.

    Paths are written unquoted into systemd units (where '%' is a specifier and
    spaces split lists), rpm %files lines (macros, globs), tmpfiles/sysusers
    fields, sh scripts and airflow.cfg (which expands '$' and '~').
    """
    _no_control(value)
    if not value.startswith("/"):
        raise _fail("must be an absolute path (starting with /)")
    if value == "/":
        raise _fail("is the root directory: name a path below it")
    if posixpath.normpath(value) != value or value.startswith("//"):
        raise _fail("must be a normalised path (no '..', '.', '//', trailing '/'): {norm}",
                    norm=posixpath.normpath(value))
    if len(value) > PATH_MAX:
        raise _fail("is {n} characters long: at most {max}", n=len(value), max=PATH_MAX)
    for part in value.split("/")[1:]:
        if len(part) > NAME_MAX:
            raise _fail("has a component of {n} characters: at most {max}", n=len(part), max=NAME_MAX)
        if not _PATH_COMPONENT.fullmatch(part):
            bad = next(ch for ch in part if not _PATH_COMPONENT.fullmatch(ch))
            raise _fail(
                "may contain only letters, digits and . _ + @ - between slashes (found {bad}): "
                "paths are written into units, spec files, tmpfiles and shell scripts",
                bad=repr(bad),
            )
    return value


def service_path(value: str) -> str:
    """A path the services read or write: visible inside their sandbox."""
    abs_path(value)
    for trees, reason in _FORBIDDEN_TREES:
        for tree in trees:
            if value == tree or value.startswith(tree + "/"):
                raise _fail("{value} " + reason, value=repr(value))
    return value


def owned_dir(value: str) -> str:
    """A directory this tool creates and owns (tmpfiles, %dir): never a system one."""
    service_path(value)
    if value in SYSTEM_DIRS:
        raise _fail(
            "{value} is a system directory that other packages own: airflow-prod would take it "
            "over with its own owner and mode; use a directory of its own such as /opt/airflow",
            value=repr(value),
        )
    return value


def host_path(value: str) -> str:
    """A path on the build host (only ever passed as one argument): absolute, printable."""
    _no_control(value)
    if not value.startswith("/"):
        raise _fail("must be an absolute path (starting with /)")
    return value


def distinguished_name(value: str) -> str:
    """An RFC 4514 DN: attr=value pairs separated by unescaped commas."""
    single_line(value)
    if not value.strip():
        raise _fail("must be a distinguished name such as CN=Users,DC=example,DC=com")
    for rdn in _split_unescaped(value, ","):
        for ava in _split_unescaped(rdn, "+"):
            attr, eq, val = ava.partition("=")
            if not eq or not _DN_ATTR.fullmatch(attr.strip()) or not val.strip():
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
    _no_control(value)
    if not _PRINCIPAL.fullmatch(value):
        raise _fail(
            "not a Kerberos principal: use primary[/instance]@REALM of letters, digits, '.', '_' "
            "and '-', with an upper-case realm (e.g. airflow@EXAMPLE.COM or airflow/_HOST@EXAMPLE.COM)"
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


def env_value(value: str) -> str:
    """A value systemd's EnvironmentFile= parser and sh read identically once quoted.

    The renderer double-quotes it and backslash-escapes " \\ ` $ (what both
    parsers unescape); only line breaks and control characters cannot be written.
    """
    if "\n" in value or "\r" in value:
        raise _fail("must be a single line (environment files have one variable per line)")
    _no_control(value)
    if len(value) > ENV_VALUE_MAX:
        raise _fail("is {n} characters long: at most {max}", n=len(value), max=ENV_VALUE_MAX)
    return value


# Names [environment] may not set, and why. Prefixes end in '*'.
_DERIVED_ENV = ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "AIRFLOW_VENV", "PYTHONUNBUFFERED", "KRB5CCNAME",
                "KRB5_KTNAME", "KRB5_CONFIG", "PGSSLMODE", "PGHOST", "PGHOSTADDR", "PGPORT",
                "PGDATABASE", "PGUSER", "PGSERVICE", "PGSERVICEFILE")
_SECRET_ENV = ("PGPASSWORD", "PGPASSFILE", "AIRFLOW_LDAP_BIND_PASSWORD")
_HIJACK_ENV = ("PATH", "LD_*", "PYTHON*", "BASH_ENV", "ENV", "IFS", "SHELLOPTS", "BASHOPTS", "PS4",
               "GCONV_PATH", "HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "NLSPATH", "MALLOC_*",
               "GLIBC_TUNABLES", "PERL5LIB", "PERL5OPT", "NODE_OPTIONS", "UV_*", "PIP_*",
               "HOME", "USER", "LOGNAME", "SHELL", "SYSTEMD_*", "NOTIFY_SOCKET", "LISTEN_*",
               "CREDENTIALS_DIRECTORY", "RUNTIME_DIRECTORY", "INVOCATION_ID")


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


def env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise _fail("not an environment variable name: use upper-case letters, digits and '_', "
                    "not starting with a digit (e.g. HADOOP_CONF_DIR)")
    if value.startswith("AIRFLOW__"):
        raise _fail("Airflow options go in [airflow_cfg.<section>] (checked against Airflow's schema; "
                    "secrets and derived options are refused there with the reason), not in [environment]")
    if _matches(value, _DERIVED_ENV):
        raise _fail("is set by airflow-prod from the site's other settings ([paths], [kerberos], "
                    "[database]): set those instead")
    if _matches(value, _SECRET_ENV):
        raise _fail("is a secret: it belongs in the secrets file (`bundle secrets init`), never in "
                    "the world-readable /etc/sysconfig/airflow")
    if _matches(value, _HIJACK_ENV):
        raise _fail("changes how programs, the loader or the interpreter start (or is set by systemd): "
                    "setting it for every Airflow process is refused")
    return value


def site_name(value: str) -> str:
    if not _SITE_NAME.fullmatch(value):
        raise _fail(
            "must be 2-40 characters of lower-case letters, digits and '-', starting with "
            "a letter (it becomes part of RPM names)"
        )
    return value


def worker_set_name(value: str) -> str:
    if not _WORKER_SET.fullmatch(value):
        raise _fail(
            "must be 1-32 characters of lower-case letters, digits and '-', starting with a letter "
            "and not ending in '-' (it becomes a unit name and an RPM name)"
        )
    return value


def version(value: str) -> str:
    if not _VERSION.fullmatch(value):
        raise _fail("must be an exact version X.Y.Z (e.g. 3.1.4)")
    return value


def image_ref(value: str) -> str:
    """A container image the docker SDK is given as is: a reference or an image ID."""
    _no_control(value)
    if len(value) > IMAGE_REF_MAX or not _IMAGE_REF.fullmatch(value):
        raise _fail(
            "not a container image: [registry[:port]/]name[:tag][@sha256:digest] with a lower-case "
            "name (e.g. registry.example.com/airflow-prod/el9-builder:1) or an image ID sha256:<64 hex>, "
            "at most 255 characters"
        )
    return value


def extra_name(value: str) -> str:
    if not _EXTRA.fullmatch(value):
        raise _fail("not a package extra name: letters, digits, '.', '_' and '-' (e.g. postgres)")
    return value


def requirement(value: str) -> str:
    """A provider distribution as name[extras][specifier]: no URL, no marker."""
    _no_control(value)
    try:
        req = Requirement(value)
    except InvalidRequirement:
        raise _fail("not a requirement: use name[extras][specifier] "
                    "(e.g. apache-airflow-providers-fab or apache-airflow-providers-fab==2.4.4)") from None
    if req.url or req.marker:
        raise _fail("must be name[extras][specifier] from the package index: no URL and no marker")
    return value


# PEP 508 names; the release itself is airflow.version's to choose, never an override's.
_PACKAGE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
PACKAGE_MAX = 200
RELEASE_PACKAGES = ("apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk")
SPECIFIER_MAX = 200
# Advisory IDs as the databases write them: CVE-2026-46745, GHSA-xxxx-xxxx-xxxx (lower-case), PYSEC-2024-1.
_ADVISORY_ID = re.compile(r"CVE-[0-9]{4}-[0-9]{4,19}|GHSA(-[23456789cfghjmpqrvwx]{4}){3}|PYSEC-[0-9]{4}-[0-9]{1,19}")
ADVISORY_FORMS = ("CVE-YYYY-NNNN, GHSA-xxxx-xxxx-xxxx (GitHub's lower-case letters and digits "
                  "23456789cfghjmpqrvwx) or PYSEC-YYYY-N (e.g. CVE-2026-46745)")


def package_name(value: str) -> str:
    """A distribution name on the index (PEP 508), not the Airflow release itself."""
    _no_control(value)
    if len(value) > PACKAGE_MAX or not _PACKAGE.fullmatch(value):
        raise _fail("not a package name: letters, digits, '.', '_' and '-', starting and ending with a "
                    "letter or digit (e.g. apache-airflow-providers-fab)")
    if canonicalize_name(value) in RELEASE_PACKAGES:
        raise _fail("is part of the Airflow release itself: set airflow.version instead of overriding it")
    return value


def version_specifier(value: str) -> str:
    """An exact version (3.7.2) or a PEP 440 specifier set (>=3.7.2,<3.8) an override asks for."""
    _no_control(value)
    text = value.strip()
    if not text or len(value) > SPECIFIER_MAX:
        raise _fail("must be a version (e.g. 3.7.2) or a PEP 440 specifier (e.g. >=3.7.2,<3.8), "
                    "at most {max} characters", max=SPECIFIER_MAX)
    try:
        PackageVersion(text)
        return value
    except InvalidVersion:
        pass
    try:
        spec = SpecifierSet(text)
    except InvalidSpecifier:
        raise _fail("not a PEP 440 version or specifier: use 3.7.2, ==3.7.2, >=3.7.2 or >=3.7.2,<3.8") from None
    if any(s.operator == "===" for s in spec):
        raise _fail("'===' (arbitrary equality) is not supported: use == with a PEP 440 version")
    return value


def override_specifier(value: str) -> SpecifierSet:
    """The specifier set an override's version means (a bare version: exactly it)."""
    text = value.strip()
    try:
        return SpecifierSet(f"=={PackageVersion(text)}")
    except InvalidVersion:
        return SpecifierSet(text)


def advisory_id(value: str) -> str:
    """An advisory ID: the reason an override raises a package."""
    _no_control(value)
    if not _ADVISORY_ID.fullmatch(value):
        raise _fail("not an advisory ID: use " + ADVISORY_FORMS)
    return value


def cfg_name(value: str) -> str:
    """An airflow.cfg section or option name: what configparser and Airflow's schema know."""
    if not _CFG_NAME.fullmatch(value):
        raise _fail("not an airflow.cfg name: lower-case letters, digits and '_', starting with a "
                    "letter (e.g. [airflow_cfg.logging] remote_logging)")
    return value


def cfg_value(value: object) -> object:
    return cfg_text(value) if isinstance(value, str) else value


HostName = Annotated[str, AfterValidator(hostname)]
DnsName = Annotated[str, AfterValidator(dns_name)]
AbsPath = Annotated[str, AfterValidator(service_path)]
OwnedDir = Annotated[str, AfterValidator(owned_dir)]
HostPath = Annotated[str, AfterValidator(host_path)]
DN = Annotated[str, AfterValidator(distinguished_name)]
Principal = Annotated[str, AfterValidator(principal)]
TimeZone = Annotated[str, AfterValidator(timezone)]
EnvName = Annotated[str, AfterValidator(env_name)]
EnvValue = Annotated[str, AfterValidator(env_value)]
Line = Annotated[str, AfterValidator(single_line)]
CfgText = Annotated[str, AfterValidator(cfg_text)]
SiteName = Annotated[str, AfterValidator(site_name)]
WorkerSetName = Annotated[str, AfterValidator(worker_set_name)]
Version = Annotated[str, AfterValidator(version)]
IPAddress = Annotated[str, AfterValidator(ip_address)]
ExtraName = Annotated[str, AfterValidator(extra_name)]
ImageRef = Annotated[str, AfterValidator(image_ref)]
RequirementText = Annotated[str, AfterValidator(requirement)]
PackageName = Annotated[str, AfterValidator(package_name)]
VersionSpecifier = Annotated[str, AfterValidator(version_specifier)]
AdvisoryId = Annotated[str, AfterValidator(advisory_id)]
CfgName = Annotated[str, AfterValidator(cfg_name)]
CfgValue = Annotated[str | int | float | bool, AfterValidator(cfg_value)]


T = TypeVar("T")


def _tuple_from_list(value: object) -> object:
    # TOML arrays arrive as lists; the frozen model keeps tuples.
    return tuple(value) if isinstance(value, list) else value


Items = Annotated[tuple[T, ...], BeforeValidator(_tuple_from_list)]
