"""Read-only access to a Python package index (PyPI by default).

Only the standard, mirror-friendly APIs are used: the Simple API in its JSON
form (PEP 691) with upload times (PEP 700) and yank reasons (PEP 592), and
core metadata files (PEP 658). PyPI's per-release JSON API is not used: the
caching proxies build hosts sit behind often do not serve it.

Network access honours the host's TLS trust (SSL_CERT_FILE/SSL_CERT_DIR) and
proxy variables; nothing from pip's or uv's configuration is read.
"""

from __future__ import annotations

import email.parser
import http.client
import io
import json
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from functools import cached_property

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from builder.errors import BundleError

PYPI = "https://pypi.org/simple"
USER_AGENT = "airflow-prod-bundle (+https://github.com/apache/airflow)"
# Host settings a network tool needs to reach the index at all: TLS trust and
# proxies. Package-selection settings (PIP_*, UV_*) are never passed on.
NETWORK_ENV = (
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
    "ALL_PROXY", "all_proxy",
)


class RegistryError(BundleError):
    """The index answered something we cannot use (or nothing)."""


class RegistryUnreachable(RegistryError):
    def __init__(self, url: str, reason: object) -> None:
        super().__init__(
            f"cannot reach {url}: {reason}",
            hint="check the network, the proxy (HTTPS_PROXY) and TLS trust (SSL_CERT_FILE), "
            "or point --index-url at a reachable mirror",
        )


class UnknownProject(RegistryError):
    def __init__(self, name: str, index: str) -> None:
        super().__init__(f"no project named {name!r} on {index}")


def network_env() -> dict[str, str]:
    """The host's TLS-trust and proxy variables, for tools run under run.clean_env()."""
    env = {k: os.environ[k] for k in NETWORK_ENV if os.environ.get(k)}
    # Python and pip default to certifi, uv to its bundled roots: point them at
    # the host's trust store when the host names one (TLS-inspecting proxies).
    cafile = env.get("SSL_CERT_FILE") or env.get("REQUESTS_CA_BUNDLE")
    if cafile:
        env.setdefault("SSL_CERT_FILE", cafile)
        env.setdefault("PIP_CERT", cafile)
    return env


@dataclass(frozen=True)
class DistFile:
    """One file of a release, as the index describes it."""

    project: str  # canonical name
    filename: str
    url: str
    sha256: str
    size: int | None
    upload_time: datetime | None
    requires_python: str | None
    yanked: str | None  # None, or the reason ("" when none was given)

    @cached_property
    def version(self) -> Version | None:
        try:
            if self.is_wheel:
                return parse_wheel_filename(self.filename)[1]
            return parse_sdist_filename(self.filename)[1]
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            return None

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith((".tar.gz", ".zip"))

    @cached_property
    def tags(self) -> frozenset:
        return parse_wheel_filename(self.filename)[3] if self.is_wheel else frozenset()

    def supports_python(self, version: str) -> bool:
        if not self.requires_python:
            return True
        try:
            return SpecifierSet(self.requires_python).contains(version, prereleases=True)
        except InvalidSpecifier:
            return True


@dataclass(frozen=True)
class Project:
    name: str  # canonical
    files: tuple[DistFile, ...]

    def versions(self, include_yanked: bool = True) -> list[Version]:
        found = {f.version for f in self.files if f.version is not None
                 and (include_yanked or f.yanked is None)}
        return sorted(found)

    def release(self, version: str) -> list[DistFile]:
        want = Version(version)
        return [f for f in self.files if f.version == want]

    def yank_reason(self, version: str) -> str | None:
        """The reason if every file of the release is yanked (PEP 592), else None."""
        files = self.release(version)
        if files and all(f.yanked is not None for f in files):
            return files[0].yanked or "no reason given"
        return None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _yank(value: object) -> str | None:
    if value is False or value is None:
        return None
    return value if isinstance(value, str) else ""


class Registry:
    """A package index: Simple API (JSON) plus PEP 658 metadata, cached per instance."""

    def __init__(self, index_url: str = PYPI, timeout: float = 30.0, retries: int = 4) -> None:
        self.index_url = index_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self._projects: dict[str, Project] = {}
        self._lock = threading.Lock()
        self._ssl = ssl.create_default_context()

    # --- HTTP -----------------------------------------------------------------

    def open(self, url: str, headers: Mapping[str, str] | None = None):
        """urlopen with retries on transient failures; 4xx are raised at once."""
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
        last: Exception | None = None
        for attempt in range(self.retries):
            try:
                return urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl)
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == self.retries - 1:
                    raise
                last = exc
            except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                # A name that does not resolve or a refused connection will not
                # heal in a second: fail fast with the reason.
                permanent = isinstance(reason, (ConnectionRefusedError, ssl.SSLError)) or (
                    isinstance(reason, socket.gaierror) and reason.errno == socket.EAI_NONAME
                )
                if permanent:
                    raise RegistryUnreachable(url, reason) from exc
                last = exc
            time.sleep(0.5 * 2**attempt)
        raise RegistryUnreachable(url, getattr(last, "reason", last))

    def get_bytes(self, url: str, headers: Mapping[str, str] | None = None) -> bytes:
        """The whole body; an answer cut short (fewer bytes than promised, a broken chunk) is
        asked for again, then a RegistryError."""
        for attempt in range(self.retries):
            try:
                with self.open(url, headers) as resp:
                    return resp.read()
            except http.client.IncompleteRead as exc:
                if attempt == self.retries - 1:
                    raise RegistryError(
                        f"{url}: the connection closed before the answer was complete "
                        f"({len(exc.partial)} bytes, {exc.expected} more expected)",
                        hint="a flaky network, or a proxy or mirror cutting answers short; try again",
                    ) from None
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")  # the loop returns or raises

    # --- Simple API -----------------------------------------------------------

    def project(self, name: str) -> Project:
        key = canonicalize_name(name)
        with self._lock:
            if key in self._projects:
                return self._projects[key]
        url = f"{self.index_url}/{key}/"
        try:
            raw = self.get_bytes(url, {"Accept": "application/vnd.pypi.simple.v1+json"})
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise UnknownProject(name, self.index_url) from None
            raise RegistryError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise RegistryError(
                f"{url} did not answer in the Simple API's JSON form (PEP 691)",
                hint="use an index that serves application/vnd.pypi.simple.v1+json (PyPI, devpi, Artifactory, Nexus 3.60+)",
            ) from None
        files = tuple(
            DistFile(
                project=key,
                filename=f["filename"],
                url=urllib.parse.urljoin(url, f["url"]),
                sha256=f.get("hashes", {}).get("sha256", ""),
                size=f.get("size"),
                upload_time=_parse_time(f.get("upload-time")),
                requires_python=f.get("requires-python"),
                yanked=_yank(f.get("yanked")),
            )
            for f in data.get("files", [])
        )
        project = Project(key, files)
        with self._lock:
            self._projects[key] = project
        return project

    def projects(self, names: Iterable[str], workers: int = 8) -> dict[str, Project]:
        """Fetch many projects in parallel: name -> Project (canonical names)."""
        from concurrent.futures import ThreadPoolExecutor

        names = sorted({canonicalize_name(n) for n in names})
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return dict(zip(names, pool.map(self.project, names), strict=True))

    # --- metadata -------------------------------------------------------------

    def metadata(self, dist: DistFile) -> Message:
        """Core metadata of a wheel: the PEP 658 file, else read from the wheel itself."""
        if not dist.is_wheel:
            raise RegistryError(f"{dist.filename}: metadata is only read from wheels")
        try:
            raw = self.get_bytes(dist.url + ".metadata")
        except urllib.error.HTTPError:
            blob = self.get_bytes(dist.url)
            try:
                with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                    name = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
                    raw = zf.read(name) if name else b""
            except zipfile.BadZipFile:
                raise RegistryError(f"{dist.url}: not a valid wheel (a zip file): cannot read its metadata") from None
            if not name:
                raise RegistryError(
                    f"{dist.filename}: the index has no metadata file for it (PEP 658) and the wheel "
                    "holds no .dist-info/METADATA",
                    hint="the index serves a broken wheel: check the mirror, or pick another version",
                ) from None
        return email.parser.BytesParser().parsebytes(raw)

