"""`bundle lock` and `bundle wheelhouse`: parse options, call the engine, report.

The engine's messages reach stderr through the report `bundle` installed (cli/terminal.py);
the download display is rich's, here in the CLI only."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.progress import TaskID

from builder.cli.options import index_option, load, locks_option, site_option
from builder.pydeps.backends import BACKENDS


class RichProgress:
    """download.Progress on a rich live display: one total bar, one row per active file."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}", justify="left"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
            disable=not sys.stderr.isatty(),
        )
        self._tasks: dict[str, TaskID] = {}
        self._total: TaskID | None = None
        self._lock = threading.Lock()
        self._done = 0
        self._files = 0

    def start(self, files: int, total_bytes: int) -> None:
        self._files, self._done = files, 0
        self._progress.start()
        self._total = self._progress.add_task(f"downloading 0/{files} files", total=total_bytes)
        if not sys.stderr.isatty():
            click.echo(f"downloading {files} files ({total_bytes / 1e6:.0f} MB)", err=True)

    def begin(self, key: str, label: str, size: int | None) -> None:
        with self._lock:
            self._tasks[key] = self._progress.add_task(f"  {label}", total=size)

    def advance(self, key: str, nbytes: int) -> None:
        with self._lock:
            self._progress.advance(self._tasks[key], nbytes)
            if self._total is not None:
                self._progress.advance(self._total, nbytes)

    def end(self, key: str) -> None:
        with self._lock:
            self._progress.remove_task(self._tasks.pop(key))
            self._done += 1
            if self._total is not None:
                self._progress.update(self._total, description=f"downloading {self._done}/{self._files} files")

    def close(self) -> None:
        self._progress.stop()


@click.command("lock")
@site_option
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Resolver; both write the same pip-tools format with sha256 hashes. "
              "Default: the one the existing lock records, else uv.")
@click.option("--refresh", is_flag=True, help="Resolve again even if the lock's inputs are unchanged.")
@locks_option
@index_option
def lock_cmd(site_path: str, backend: str | None, refresh: bool, locks_dir: str, index_url: str | None) -> None:
    """Resolve the site's Airflow for the target into locks/<site name>.txt.

    Uses the official constraints when reachable, else a date cutoff just after
    the release (announced and recorded in the lock header). The header also
    records the backend and index: `bundle build` and `bundle wheelhouse` reuse
    the lock as it was made, or refuse it when the site changed; they never
    re-resolve a pip-compile or mirror lock with other tools.
    """
    from builder.pydeps.resolve import ensure_lock

    site = load(site_path)
    lock = ensure_lock(site, locks_dir=locks_dir, backend=backend, index_url=index_url,
                       refresh=refresh)
    state = "unchanged" if lock.reused else "written"
    click.echo(f"{lock.path}: {len(lock.pins)} packages, {state} (method: {lock.method})")


@click.command("wheelhouse")
@site_option
@click.option("--out", "out_dir", default="wheelhouse", show_default=True, type=click.Path(file_okay=False),
              help="Output directory (hard links into the cache under ~/.cache/airflow-prod).")
@click.option("--prove", is_flag=True,
              help="Then prove it complete: offline install + `airflow version` (or an offline resolve).")
@click.option("--jobs", default=6, show_default=True, type=click.IntRange(1, 32), help="Parallel downloads.")
@locks_option
@index_option
def wheelhouse_cmd(site_path: str, out_dir: str, prove: bool, jobs: int, locks_dir: str,
                   index_url: str | None) -> None:
    """Download and build exactly the locked files for the target into a wheelhouse.

    Uses the site's lock as `bundle lock` made it (same index); without one, locks
    first (uv, --index-url or PyPI).
    """
    from builder.pydeps.resolve import ensure_lock
    from builder.pydeps.index import Registry
    from builder.check.wheelhouse import prove_complete
    from builder.pydeps.wheelhouse import build_wheelhouse

    site = load(site_path)
    lock = ensure_lock(site, locks_dir=locks_dir, index_url=index_url, may_relock=False)
    wh = build_wheelhouse(site, lock, out_dir, registry=Registry(lock.index), progress=RichProgress(),
                          workers=jobs)
    click.echo(
        f"{wh.out_dir}: {len(wh.files)} files, {wh.size / 1e6:.0f} MB in {wh.seconds:.1f} s "
        f"({len(wh.downloaded)} downloaded, {len(wh.reused)} from cache, {len(wh.built)} built from sdists)"
    )
    if wh.builder:
        click.echo(f"native builder: {wh.builder.name} ({wh.builder.reason})")
    if wh.target_sdists:
        click.echo(f"compiled on the target: {', '.join(wh.target_sdists)}; "
                   f"the target needs: {' '.join(wh.target_build_packages)}")
    if wh.cythonized:
        click.echo(f"Cython already ran here for: {', '.join(wh.cythonized)} (the target compiles their C only)")
    click.echo(f"offline lock: {wh.offline_lock}")
    if prove:
        proof = prove_complete(site, lock, wh)
        click.echo(f"complete: {proof.detail} ({proof.seconds:.1f} s)")


COMMANDS = [lock_cmd, wheelhouse_cmd]
