"""A local package index for tests: PEP 691 JSON Simple API with PEP 700 upload times,
PEP 592 yanks and PEP 658 metadata files, served from test data on loopback.

Like pip-tools' fake repository, but real HTTP, so the code under test (builder.pydeps.index,
the blob store, uv and pip-compile) talks to it exactly as to PyPI or a mirror. Wheels are
built in the test (`wheel()`): a few hundred bytes each, real zip files with METADATA,
WHEEL and RECORD.

Faults are per file: `serve=` bytes other than the ones the index advertises (hash
mismatch), `truncate=` to cut the body short while promising the full Content-Length,
`metadata=False` to serve no PEP 658 file. Every request is recorded in `.requests`.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from support.sites import small_data


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def metadata_text(name: str, version: str, requires: Iterable[str] = (), extras: Iterable[str] = (),
                  requires_python: str | None = None) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Provides-Extra: {e}" for e in extras]
    lines += [f"Requires-Dist: {r}" for r in requires]
    return "\n".join(lines) + "\n\n"


def wheel(name: str, version: str, *, requires: Iterable[str] = (), extras: Iterable[str] = (),
          requires_python: str | None = None, files: dict[str, bytes | str] | None = None,
          tag: str = "py3-none-any", with_metadata: bool = True) -> tuple[str, bytes]:
    """(filename, bytes) of a real, tiny wheel. Zip entries get a fixed date: same input, same bytes."""
    dist = canonicalize_name(name).replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    entries: dict[str, bytes] = {}
    for path, content in (files or {"%s/__init__.py" % dist: f"__version__ = {version!r}\n"}).items():
        entries[path] = content.encode() if isinstance(content, str) else content
    if with_metadata:
        entries[f"{info}/METADATA"] = metadata_text(name, version, requires, extras, requires_python).encode()
    entries[f"{info}/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: tests.pkgindex\nRoot-Is-Purelib: true\nTag: {tag}\n".encode()
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in entries.items()) + f"{info}/RECORD,,\n"
    entries[f"{info}/RECORD"] = record.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in entries.items():
            zi = zipfile.ZipInfo(path, date_time=(2025, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return f"{dist}-{version}-{tag}.whl", buf.getvalue()


@dataclass
class File:
    filename: str
    data: bytes
    upload_time: str = "2025-01-01T00:00:00.000000Z"
    yanked: bool | str = False
    requires_python: str | None = None
    metadata: bytes | None = None        # the PEP 658 file; None: the wheel's own METADATA
    serve_metadata: bool = True          # False: no PEP 658 file (clients must read the wheel)
    serve: bytes | None = None           # bytes actually served (a mirror gone wrong)
    truncate: int | None = None          # stop sending after this many bytes (Content-Length stays full)
    truncate_times: int | None = None    # only the first N responses are cut short (None: all)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def project(self) -> str:
        if self.filename.endswith(".whl"):
            return canonicalize_name(parse_wheel_filename(self.filename)[0])
        return canonicalize_name(parse_sdist_filename(self.filename)[0])

    def core_metadata(self) -> bytes | None:
        if not self.serve_metadata or not self.filename.endswith(".whl"):
            return None
        if self.metadata is not None:
            return self.metadata
        with zipfile.ZipFile(io.BytesIO(self.data)) as zf:
            names = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
            return zf.read(names[0]) if names else None


@dataclass
class PackageIndex:
    """The data behind the server: files by project, extra static paths, a request log."""

    files: dict[str, list[File]] = field(default_factory=dict)
    static: dict[str, bytes] = field(default_factory=dict)   # "/path" -> body
    requests: list[str] = field(default_factory=list)
    url: str = ""  # http://127.0.0.1:<port>, set when served

    @property
    def simple(self) -> str:
        return f"{self.url}/simple"

    def add(self, f: File) -> File:
        self.files.setdefault(f.project, []).append(f)
        return f

    def add_wheel(self, name: str, version: str, *, upload_time: str = "2025-01-01T00:00:00.000000Z",
                  yanked: bool | str = False, **kw) -> File:
        requires_python = kw.get("requires_python")
        filename, data = wheel(name, version, **kw)
        return self.add(File(filename, data, upload_time=upload_time, yanked=yanked,
                             requires_python=requires_python))

    def file(self, filename: str) -> File:
        return next(f for fs in self.files.values() for f in fs if f.filename == filename)

    def project_json(self, project: str) -> dict:
        files = []
        for f in self.files[project]:
            core = f.core_metadata()
            entry: dict = {
                "filename": f.filename,
                "url": f"../../files/{f.filename}",
                "hashes": {"sha256": f.sha256},
                "requires-python": f.requires_python,
                "upload-time": f.upload_time,
                "yanked": f.yanked,
                "size": len(f.data),
                "core-metadata": {"sha256": hashlib.sha256(core).hexdigest()} if core else False,
            }
            files.append(entry)
        versions = sorted({str(parse_wheel_filename(f.filename)[1]) if f.filename.endswith(".whl")
                           else str(parse_sdist_filename(f.filename)[1]) for f in self.files[project]})
        return {"meta": {"api-version": "1.1"}, "name": project, "versions": versions, "files": files}


class _Handler(http.server.BaseHTTPRequestHandler):
    index: PackageIndex
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/octet-stream",
              length: int | None = None, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        idx = self.index
        path = self.path.split("?", 1)[0]
        idx.requests.append(path)
        if path in idx.static:
            return self._send(200, idx.static[path], "text/plain")
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2 and parts[0] == "simple":
            project = canonicalize_name(parts[1])
            if project not in idx.files:
                return self._send(404, b"not found", "text/plain")
            if project != parts[1]:
                return self._send(301, b"", extra={"Location": f"/simple/{project}/"})
            body = json.dumps(idx.project_json(project)).encode()
            return self._send(200, body, "application/vnd.pypi.simple.v1+json")
        if len(parts) == 2 and parts[0] == "files":
            name = parts[1]
            meta = name.endswith(".metadata")
            try:
                f = idx.file(name.removesuffix(".metadata"))
            except StopIteration:
                return self._send(404, b"not found", "text/plain")
            if meta:
                core = f.core_metadata()
                return self._send(200, core) if core else self._send(404, b"no metadata", "text/plain")
            body = f.serve if f.serve is not None else f.data
            cut = f.truncate is not None and (f.truncate_times is None or f.truncate_times > 0)
            if cut and f.truncate_times is not None:
                f.truncate_times -= 1
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and not cut:
                start = int(rng[6:].split("-")[0])
                if start >= len(body):
                    return self._send(416, b"", extra={"Content-Range": f"bytes */{len(body)}"})
                return self._send(206, body[start:], extra={"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"})
            if cut:
                assert f.truncate is not None
                self._send(200, body[:f.truncate], length=len(body))
                self.close_connection = True
                return None
            return self._send(200, body)
        return self._send(404, b"not found", "text/plain")


class Server:
    def __init__(self, index: PackageIndex) -> None:
        handler = type("Handler", (_Handler,), {"index": index})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        index.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.index = index
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="pkgindex", daemon=True)

    def __enter__(self) -> PackageIndex:
        self.thread.start()
        return self.index

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


# --- a small Airflow-shaped world ------------------------------------------------------------
#
# Enough of apache-airflow 3.1.4 for the lock, wheelhouse, schema check and `bundle build`:
# the release pins core and task-sdk exactly (like the real one), the `ssh` extra pulls
# paramiko, one paramiko release is uploaded after the cutoff, the release itself is yanked
# with PyPI's real reason, core carries a config.yml and one provider a provider.yaml.

RELEASE_UPLOAD = "2025-12-10T07:30:12.000000Z"
TASK_SDK_UPLOAD = "2025-12-10T07:33:37.000000Z"   # the last of the release: cutoff 07:35:00Z
CUTOFF = "2025-12-10T07:35:00Z"
YANK_REASON = "The wrong RC was mistakenly released!"

# What a minimal site renders into airflow.cfg (the real schema has ~400 more).
OPTIONS = {
    "core": ["auth_manager", "dags_folder", "default_timezone", "execution_api_server_url", "executor",
             "load_examples", "max_active_runs_per_dag", "max_active_tasks_per_dag", "parallelism",
             "plugins_folder", "test_connection", "security", "fernet_key"],
    "database": ["sql_alchemy_conn"],
    "logging": ["base_log_folder", "dag_processor_child_process_log_directory", "trigger_log_server_port",
                "worker_log_server_port"],
    "api": ["base_url", "expose_config", "host", "instance_name", "port", "ssl_cert", "ssl_key", "workers",
            "secret_key"],
    "api_auth": ["jwt_issuer", "jwt_secret"],
    "operators": ["default_queue"],
    "celery": ["broker_url", "result_backend", "worker_concurrency", "extra_celery_config", "task_publish_max_retries",
               "task_track_started"],
    "workers": ["execution_api_retries"],
    "fab": ["config_file"],
}


def config_yml(options: dict[str, list[str]]) -> str:
    """Airflow's config.yml shape: section -> options -> option -> attributes."""
    import yaml

    return yaml.safe_dump({section: {"description": section, "options": {o: {"default": ""} for o in opts}}
                           for section, opts in options.items()})


CONFIG_YML = config_yml(OPTIONS)

PROVIDER_YAML = """\
package-name: apache-airflow-providers-fakecfg
config:
  fakecfg:
    options:
      knob: {default: "1"}
"""


def airflow_world(index: PackageIndex, *, version: str = "3.1.4", core_config: str = CONFIG_YML) -> PackageIndex:
    index.add_wheel("apache-airflow", version, upload_time=RELEASE_UPLOAD, yanked=YANK_REASON,
                    requires_python=">=3.10,<3.14", extras=["ssh", "ldap"],
                    requires=[f"apache-airflow-core=={version}", "apache-airflow-task-sdk==1.1.4",
                              'paramiko>=3; extra == "ssh"'])
    index.add_wheel("apache-airflow", "3.1.5", upload_time="2025-12-12T10:00:00.000000Z",
                    requires_python=">=3.10,<3.14", extras=["ssh"],
                    requires=["apache-airflow-core==3.1.5", "apache-airflow-task-sdk==1.1.5"])
    index.add_wheel("apache-airflow-core", version, upload_time=RELEASE_UPLOAD, yanked=YANK_REASON,
                    requires_python=">=3.10,<3.14", requires=["six>=1.16"],
                    files={"airflow/__init__.py": f"__version__ = {version!r}\n",
                           "airflow/config_templates/config.yml": core_config})
    index.add_wheel("apache-airflow-task-sdk", "1.1.4", upload_time=TASK_SDK_UPLOAD, requires_python=">=3.10")
    index.add_wheel("paramiko", "3.4.0", upload_time="2024-01-01T00:00:00.000000Z")
    index.add_wheel("paramiko", "3.9.0", upload_time="2025-12-11T00:00:00.000000Z")  # after the cutoff
    index.add_wheel("six", "1.17.0", upload_time="2024-12-04T00:00:00.000000Z")
    index.add_wheel("six", "1.16.0", upload_time="2021-05-05T00:00:00.000000Z")
    index.add_wheel("uv", "0.9.5", upload_time="2025-10-20T00:00:00.000000Z",
                    files={"uv/__init__.py": "# a stand-in: the real uv wheel holds the binary\n"})
    index.add_wheel("apache-airflow-providers-fakecfg", "1.0.0", upload_time="2025-06-01T00:00:00.000000Z",
                    files={"airflow/providers/fakecfg/provider.yaml": PROVIDER_YAML})
    # The official constraints URL of a mirror-only host: unreachable (404 here).
    return index


def site_data(index: PackageIndex, name: str = "mini", **airflow) -> dict:
    """A minimal site locking the fake Airflow against this index, with no network elsewhere."""
    # The constraints URL is served as 404 by the index: the date-cutoff fallback, no GitHub traffic.
    constraints = f"{index.url}/constraints-3.1.4/constraints-3.11.txt"
    return small_data(name, **{"constraints": constraints, **airflow})


def write_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- an sdist whose build backend comes from the index ------------------------------------------

TINY_BACKEND = '''\
"""A PEP 517 build backend in one module, served as a wheel by tests/pkgindex.py."""
import base64, hashlib, os, zipfile

def _meta():
    fields = dict(line.split(": ", 1) for line in open("PKG-INFO").read().splitlines() if ": " in line)
    return fields["Name"], fields["Version"]

def _info(name, version):
    return f"{name.replace('-', '_')}-{version}.dist-info"

def _metadata(name, version):
    return f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n\\n"

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    name, version = _meta()
    info = os.path.join(metadata_directory, _info(name, version))
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as fh:
        fh.write(_metadata(name, version))
    return os.path.basename(info)

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, version = _meta()
    pkg = name.replace("-", "_")
    info = _info(name, version)
    files = {f"{pkg}/__init__.py": open(os.path.join(pkg, "__init__.py"), "rb").read(),
             f"{info}/METADATA": _metadata(name, version).encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: tinybackend\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    def digest(data):
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record = "".join(f"{p},{digest(d)},{len(d)}\\n" for p, d in files.items()) + f"{info}/RECORD,,\\n"
    filename = f"{pkg}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        for path, data in [*files.items(), (f"{info}/RECORD", record.encode())]:
            zi = zipfile.ZipInfo(path, date_time=(2025, 1, 1, 0, 0, 0))
            zf.writestr(zi, data)
    return filename
'''


def sdist(name: str, version: str, backend: str = "tinybackend") -> tuple[str, bytes]:
    """(filename, bytes) of an sdist built by `backend`, a build requirement the index must serve."""
    import tarfile

    dist = canonicalize_name(name).replace("-", "_")
    root = f"{dist}-{version}"
    files = {
        f"{root}/pyproject.toml": f'[build-system]\nrequires = ["{backend}"]\nbuild-backend = "{backend}"\n',
        f"{root}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{root}/{dist}/__init__.py": f"__version__ = {version!r}\n",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 1735689600, 0o644
            tf.addfile(info, io.BytesIO(data))
    return f"{root}.tar.gz", buf.getvalue()


def add_sdist_world(index: PackageIndex, name: str = "purepkg", version: str = "1.0") -> File:
    """An sdist-only project plus the build backend it needs, both on this index only."""
    index.add_wheel("tinybackend", "1.0", upload_time="2024-06-01T00:00:00.000000Z",
                    files={"tinybackend.py": TINY_BACKEND})
    filename, data = sdist(name, version)
    return index.add(File(filename, data, upload_time="2024-06-01T00:00:00.000000Z"))
