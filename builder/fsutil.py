"""File helpers: atomic writes (temp file in the same directory, then rename), atomic
link-or-copy, and streamed sha256."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes, mode: int = 0o644) -> Path:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def link_or_copy(src: str | Path, dest: str | Path) -> Path:
    """Place `src` at `dest` atomically: a hard link where the filesystem allows, else a copy.

    Nothing happens when dest is already the same file; readers never see a partial file.
    """
    src, dest = Path(src), Path(dest)
    try:
        if dest.exists() and os.path.samefile(src, dest):
            return dest
    except OSError:
        pass
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dest)
    return dest


def sha256_file(path: str | Path, memo: dict[str, str] | None = None) -> str:
    """sha256 of a file, streamed; `memo` keyed by path, size, mtime and inode skips re-hashing."""
    path = Path(path)
    key = ""
    if memo is not None:
        st = path.stat()
        key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
        if key in memo:
            return memo[key]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    digest = h.hexdigest()
    if memo is not None:
        memo[key] = digest
    return digest
