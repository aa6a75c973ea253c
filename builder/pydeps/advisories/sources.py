"""The OSV files an admin hands over: a directory of .json files, one .json file, or a zip
as osv.dev exports an ecosystem (https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip).

A zip is read in place, member by member, never extracted: a member's name cannot land
a file anywhere, and a member larger than any real record is refused before it is read.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.fsutil import sha256_file
from builder.pydeps.advisories.osv import OSVError

MAX_RECORD = 16 * 1024 * 1024  # the largest real OSV record is well under 1 MiB


@dataclass(frozen=True)
class Source:
    """One path the admin gave, as it was read."""

    path: str
    kind: str      # zip | directory | file
    sha256: str    # of the file; of a directory: of its .json files' names and hashes
    files: int     # .json documents in it


def _fail(where: str, what: str, hint: str | None = None) -> OSVError:
    return OSVError(f"{where}: {what}", hint=hint or "give a directory of OSV .json files or osv.dev's "
                    "<ecosystem>/all.zip (docs/advisories.md)")


def documents(path: Path) -> tuple[Source, Iterator[tuple[str, object]]]:
    """What `path` holds and its decoded JSON documents as (name for errors, data)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        if not files:
            raise _fail(str(path), "no .json files in this directory")
        digest = hashlib.sha256()
        for f in files:
            digest.update(f"{f.relative_to(path).as_posix()}\0{sha256_file(f)}\n".encode())
        source = Source(str(path), "directory", digest.hexdigest(), len(files))
        return source, ((str(f), _decode(str(f), _read_file(f))) for f in files)
    if not path.is_file():
        raise _fail(str(path), "no such file or directory")
    if path.suffix.lower() == ".json":
        return Source(str(path), "file", sha256_file(path), 1), iter([(str(path), _decode(str(path), _read_file(path)))])
    return _zip(path)


def _zip(path: Path) -> tuple[Source, Iterator[tuple[str, object]]]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise _fail(str(path), f"not a zip archive ({exc})") from None
    except OSError as exc:
        raise _fail(str(path), f"cannot be read ({exc.strerror or exc})") from None
    members = sorted((m for m in archive.infolist() if not m.is_dir() and m.filename.endswith(".json")),
                     key=lambda m: m.filename)
    if not members:
        archive.close()
        raise _fail(str(path), "a zip archive without .json files")
    source = Source(str(path), "zip", sha256_file(path), len(members))

    def read() -> Iterator[tuple[str, object]]:
        with archive:
            for member in members:
                where = f"{path}:{member.filename}"
                if member.file_size > MAX_RECORD:
                    raise _fail(where, f"{member.file_size} bytes: larger than any OSV record ({MAX_RECORD})")
                try:
                    with archive.open(member) as fh:
                        data = fh.read(MAX_RECORD + 1)
                except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                    raise _fail(where, f"cannot be read from the archive ({exc})") from None
                if len(data) > MAX_RECORD:
                    raise _fail(where, f"larger than any OSV record ({MAX_RECORD} bytes)")
                yield where, _decode(where, data)

    return source, read()


def _read_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_RECORD:
            raise _fail(str(path), f"larger than any OSV record ({MAX_RECORD} bytes)")
        return path.read_bytes()
    except OSError as exc:
        raise _fail(str(path), f"cannot be read ({exc.strerror or exc})") from None


def _decode(where: str, data: bytes) -> object:
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _fail(where, f"not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise _fail(where, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise _fail(where, "not JSON this reader accepts: nested too deeply") from None
