"""The content-addressed file cache and its parallel, resumable downloader.

Layout under ~/.cache/airflow-prod/blobs/ (or $AIRFLOW_PROD_BLOBS):
    sha256/<aa>/<sha256>     verified files, read-only, named by their hash
    partial/<sha256>.part    downloads in progress (resumed with HTTP Range)

A file enters sha256/ only after its hash matched, by rename, so the cache
never holds a wrong or half-written file under a real name; a cached file
that no longer matches (disk fault, someone edited it) is evicted loudly.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import threading
import urllib.error
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from builder.errors import BundleError
from builder.report import Notify, emit
from builder.fsutil import sha256_file
from builder.pydeps.index import Registry, RegistryError
from builder.resources import blob_dir

CHUNK = 1 << 20


class DownloadError(BundleError):
    pass


class HashMismatch(DownloadError):
    def __init__(self, label: str, filename: str, expected: str, got: str, url: str) -> None:
        super().__init__(
            f"{label}: {filename} does not match the lock's hash\n"
            f"  expected sha256:{expected}\n  got      sha256:{got}\n  from     {url}",
            hint="the index served different bytes than were locked: check the mirror/proxy; "
            "if the release was really re-uploaded, re-lock with `bundle lock --refresh`",
        )


class DiskFull(DownloadError):
    def __init__(self, where: Path, need: int | None, free: int | None, label: str = "") -> None:
        detail = ""
        if need is not None and free is not None:
            detail = f": {_mb(need)} MB still to download, {_mb(free)} MB free"
        lead = f"{label}: " if label else ""
        super().__init__(
            f"{lead}disk full in {where}{detail}",
            hint="free space there or point AIRFLOW_PROD_CACHE at a bigger disk; "
            "finished files stay cached and partial downloads resume on the next run",
        )


class Interrupted(DownloadError):
    pass


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f}"


class Progress(Protocol):
    def start(self, files: int, total_bytes: int) -> None: ...
    def begin(self, key: str, label: str, size: int | None) -> None: ...
    def advance(self, key: str, nbytes: int) -> None: ...
    def end(self, key: str) -> None: ...
    def close(self) -> None: ...


class NullProgress:
    def start(self, files: int, total_bytes: int) -> None: ...
    def begin(self, key: str, label: str, size: int | None) -> None: ...
    def advance(self, key: str, nbytes: int) -> None: ...
    def end(self, key: str) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Wanted:
    label: str  # "name==version", for messages
    filename: str
    url: str
    sha256: str
    size: int | None


class BlobStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or blob_dir()

    def path(self, sha: str) -> Path:
        return self.root / "sha256" / sha[:2] / sha

    def partial(self, sha: str) -> Path:
        return self.root / "partial" / f"{sha}.part"

    def verified(self, sha: str, label: str, notify: Notify) -> bool:
        """True if the cached file exists and still hashes right; evicts it if not."""
        path = self.path(sha)
        if not path.exists():
            return False
        got = sha256_file(path)
        if got == sha:
            return True
        notify("warn", f"{label}: cached file {path} is corrupted (sha256 {got[:12]}..., "
               f"expected {sha[:12]}...); removed it, downloading it again")
        path.unlink(missing_ok=True)
        return False

    def fetch_all(
        self,
        wanted: list[Wanted],
        registry: Registry,
        progress: Progress | None = None,
        notify: Notify = emit,
        workers: int = 6,
    ) -> dict[str, str]:
        """Make every wanted file present and verified: sha256 -> reused|downloaded|resumed."""
        progress = progress or NullProgress()
        unique = {w.sha256: w for w in wanted}
        status: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            checks = dict(zip(unique, pool.map(lambda w: self.verified(w.sha256, w.label, notify),
                                               unique.values()), strict=True))
        todo = [w for sha, w in sorted(unique.items()) if not checks[sha]]
        status.update({sha: "reused" for sha, ok in checks.items() if ok})
        if not todo:
            return status
        need = sum((w.size or 0) - self._partial_size(w.sha256) for w in todo)
        self.root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.root).free
        if need > free:
            raise DiskFull(self.root, need, free)
        progress.start(len(todo), sum(w.size or 0 for w in todo))
        stop = threading.Event()
        # Biggest first: pyspark's 415 MB should not start last.
        todo.sort(key=lambda w: -(w.size or 0))
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            futures = {pool.submit(self._fetch, w, registry, progress, stop): w for w in todo}
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception()]
            if failed:
                stop.set()
                wait(futures)
                exc = failed[0].exception()
                assert exc is not None
                raise exc
            for fut, w in futures.items():
                status[w.sha256] = fut.result()
        except KeyboardInterrupt:
            stop.set()
            raise
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            progress.close()
        return status

    def _partial_size(self, sha: str) -> int:
        try:
            return self.partial(sha).stat().st_size
        except FileNotFoundError:
            return 0

    def _fetch(self, w: Wanted, registry: Registry, progress: Progress, stop: threading.Event) -> str:
        progress.begin(w.sha256, w.label, w.size)
        try:
            resumed = self._partial_size(w.sha256) > 0
            for attempt in range(4):
                try:
                    got = self._stream(w, registry, progress, stop)
                # IncompleteRead: a chunked answer cut short (a short answer with a length is
                # caught below as a ConnectionError); both resume from the partial file.
                except (ConnectionError, TimeoutError, urllib.error.URLError, http.client.HTTPException) as exc:
                    if attempt == 3 or stop.is_set():
                        raise DownloadError(f"{w.label}: downloading {w.url} failed: {exc}") from None
                    continue  # the partial file keeps what arrived: resume
                if got == w.sha256:
                    break
                part = self.partial(w.sha256)
                part.unlink(missing_ok=True)
                if resumed and attempt == 0:
                    resumed = False  # a stale partial: start over once
                    continue
                raise HashMismatch(w.label, w.filename, w.sha256, got, w.url)
            final = self.path(w.sha256)
            final.parent.mkdir(parents=True, exist_ok=True)
            part = self.partial(w.sha256)
            os.chmod(part, 0o444)
            os.replace(part, final)
            return "resumed" if resumed else "downloaded"
        finally:
            progress.end(w.sha256)

    def _stream(self, w: Wanted, registry: Registry, progress: Progress, stop: threading.Event) -> str:
        part = self.partial(w.sha256)
        part.parent.mkdir(parents=True, exist_ok=True)
        offset = self._partial_size(w.sha256)
        if w.size is not None and offset > w.size:
            part.unlink()
            offset = 0
        h = hashlib.sha256()
        if offset:
            with open(part, "rb") as fh:
                while block := fh.read(CHUNK * 4):
                    h.update(block)
            progress.advance(w.sha256, offset)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            resp = registry.open(w.url, headers)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:  # complete already, or the partial is wrong
                return h.hexdigest()
            raise DownloadError(f"{w.label}: {w.url}: HTTP {exc.code} {exc.reason}") from None
        except RegistryError as exc:
            raise DownloadError(f"{w.label}: {exc.message}", hint=exc.hint) from None
        with resp:
            if offset and resp.status != 206:
                h = hashlib.sha256()
                progress.advance(w.sha256, -offset)
                offset = 0
            have = offset
            try:
                with open(part, "ab" if offset else "wb") as fh:
                    while True:
                        if stop.is_set():
                            raise Interrupted(f"{w.label}: interrupted; the partial download resumes next time")
                        chunk = resp.read(CHUNK)
                        if not chunk:
                            break
                        fh.write(chunk)
                        h.update(chunk)
                        have += len(chunk)
                        progress.advance(w.sha256, len(chunk))
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise DiskFull(self.root, None, None, label=w.label) from None
                raise
        if w.size is not None and have < w.size:
            # The connection closed early: what arrived stays in the partial file and the
            # next attempt resumes from there (never a hash mismatch for a short file).
            raise ConnectionError(f"the connection closed after {have} of {w.size} bytes")
        return h.hexdigest()
