"""`bundle audit` and `bundle advisories import|show`: the lock against an offline advisory feed.

The findings go to stdout (text, or JSON with --json); what was read and the summary go
through the report (stderr), so `bundle audit --json > report.json` holds JSON alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from builder.cli.options import load, locks_option, site_option
from builder.pydeps.advisories.severity import FAIL_LEVELS
from builder.pydeps.lockfile import Lock
from builder.site import Site

_paths = click.Path(path_type=Path)


@click.command("audit")
@site_option
@locks_option
@click.option("--lock", "lock_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Audit this lock file instead of <locks-dir>/<site name>.txt.")
@click.option("--advisories", "advisory_paths", multiple=True, type=_paths, metavar="PATH",
              help="Read the feed from these OSV files instead of the imported one: a directory of "
              ".json files, one .json file or osv.dev's <ecosystem>/all.zip (repeatable).")
@click.option("--fail-on", type=click.Choice(FAIL_LEVELS, case_sensitive=False), default=None,
              help="Exit with code 3 when a finding is this severe or more (or its severity is unknown).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def audit_cmd(site_path: str, locks_dir: str, lock_file: Path | None, advisory_paths: tuple[Path, ...],
              fail_on: str | None, as_json: bool) -> None:
    """Match every package the site's lock pins against the advisory feed, offline.

    The feed is what `bundle advisories import` stored (or --advisories): OSV records as
    osv.dev exports them. Each finding: package, pinned version, advisory ID and aliases
    (CVE, GHSA), severity (CVSS base score, else the database's rating), the fixed
    versions and a summary. Nothing is fetched: how current the answer is depends on the
    feed, whose date the report states. Exit codes: 0 clean or below --fail-on, 3 findings
    at or above it, 1 no feed or an unreadable one, 2 usage.
    """
    from builder import report
    from builder.errors import BundleError
    from builder.pydeps.advisories.audit import NO_FEED, AuditFailed, audit_lock
    from builder.pydeps.resolve import lock_path

    site = load(site_path)
    lock = Lock.read(lock_file or lock_path(site, locks_dir))
    if lock_file is None:
        _warn_if_stale(site, lock)
    result = audit_lock(lock, advisory_paths)
    if result.feed is None:
        raise BundleError(f"{NO_FEED}: nothing to check {lock.path}'s {len(lock.pins)} packages against",
                          hint="carry osv.dev's PyPI/all.zip across, then: bundle advisories import all.zip "
                               "(docs/advisories.md)")
    failing = result.failing(fail_on.lower() if fail_on else None)
    if as_json:
        click.echo(json.dumps(result.as_json() | {"fail_on": fail_on, "failed": bool(failing)},
                              indent=1, sort_keys=True))
    else:
        for line in result.lines():
            click.echo(line)
    if failing:
        ids = ", ".join(f"{f.id} ({f.package})" for f in failing[:10]) + (" ..." if len(failing) > 10 else "")
        raise AuditFailed(f"{len(failing)} advisories at or above --fail-on {fail_on}: {ids}")
    report.debug("audit: no finding at or above --fail-on" if fail_on else "audit: done")


def _warn_if_stale(site: Site, lock: Lock) -> None:
    """Audit the lock as it is, but say so when the site asks for something else."""
    from builder import report
    from builder.pydeps.lockfile import LockError
    from builder.pydeps.resolve import input_hash

    try:
        wanted = input_hash(site, lock.backend, lock.index)
    except LockError:  # a header without backend or index: `bundle build` refuses it, audit reads it
        return
    if lock.input_hash != wanted:
        made_for = lock.header.get("airflow", "?")
        report.warn(f"{lock.path} was made for other inputs than {site.site.name!r} now gives "
                    f"(lock: Airflow {made_for}, site: Airflow {site.airflow.version}); auditing the lock as "
                    "it is; `bundle lock --site ...` re-makes it")


@click.group("advisories")
def advisories_group() -> None:
    """The offline advisory feed `bundle audit` and `bundle build` read."""


@advisories_group.command("import")
@click.argument("paths", nargs=-1, required=True, type=_paths)
@click.option("--lenient", is_flag=True,
              help="Leave out records that are not OSV (each named in a warning) instead of refusing the feed.")
def import_cmd(paths: tuple[Path, ...], lenient: bool) -> None:
    """Check and store OSV files as the feed: replaces the one imported before.

    PATHS: directories of .json files, .json files, or zips as osv.dev exports each
    ecosystem (https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip). Stored
    in $AIRFLOW_PROD_ADVISORIES, else ~/.cache/airflow-prod/advisories.
    """
    from builder.pydeps.advisories.feed import default_dir, import_feed

    info = import_feed(list(paths), lenient=lenient)
    click.echo(f"imported into {default_dir()}: {info.describe()}")
    dropped = [f"{info.withdrawn} withdrawn", f"{info.other_ecosystems} of other ecosystems"]
    if info.skipped:
        dropped.append(f"{len(info.skipped)} unreadable")
    click.echo(f"left out: {', '.join(dropped)}")


@advisories_group.command("show")
def show_cmd() -> None:
    """Say what the imported feed was made from and how current it is."""
    from builder.pydeps.advisories.audit import NO_FEED
    from builder.pydeps.advisories.feed import default_dir, imported_info

    info = imported_info()
    if info is None:
        click.echo(f"{default_dir()}: {NO_FEED}")
        return
    click.echo(f"{default_dir()}: {info.describe()}")
    for source in info.sources:
        click.echo(f"  {source.path}: {source.kind}, {source.files} files, sha256 {source.sha256}")


COMMANDS = [audit_cmd, advisories_group]
