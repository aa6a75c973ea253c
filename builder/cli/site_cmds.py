"""`bundle check`, `bundle render`, `bundle schema`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from builder.site import Site

from builder.cli.options import index_option, load, locks_option, site_option
from builder.fsutil import write_atomic


@click.command()
@site_option
@index_option
@locks_option
@click.option("--offline", is_flag=True,
              help="Do not ask the index whether airflow.version is yanked or its line still gets fixes.")
def check(site_path: str, index_url: str | None, locks_dir: str, offline: bool) -> None:
    """Validate a site file and print what it describes.

    Exit code 0 when valid, 2 with one line per problem otherwise. Valid choices that give
    someone more than they need (docs/security.md) are warnings, each with the safer setting.
    Unless --offline, the index says whether the site's Airflow release is yanked or its
    line no longer gets fixes: a warning, or a problem with airflow.refuse_unsupported.
    """
    from builder import report
    from builder.site.advice import risky_choices

    site = load(site_path)
    for risk in risky_choices(site):
        report.warn(str(risk))
    if not offline:
        _release_standing(site, site_path, index_url, locks_dir)
    click.echo(f"{site_path}: valid site {site.site.name!r} (Airflow {site.airflow.version}, "
               f"{site.target.os}/{site.target.arch}, Python {site.target.python})")
    for host in site.hosts:
        click.echo(f"  {host.name}: {', '.join(host.roles)}")
    click.echo(f"  base_url {site.base_url}, database {site.database.host}, broker {site.broker_url}")


def _release_standing(site: Site, site_path: str, index_url: str | None, locks_dir: str) -> None:
    """Warn (or, with airflow.refuse_unsupported, refuse) a yanked release or one without fixes."""
    from builder import report
    from builder.errors import SiteError
    from builder.pydeps.index import PYPI, Registry, RegistryError
    from builder.pydeps.lockfile import Lock, LockError
    from builder.pydeps.release import AIRFLOW, refuse, release_support
    from builder.pydeps.resolve import lock_path

    lock = lock_path(site, locks_dir)
    url = index_url or (Lock.read(lock).index if lock.is_file() else None) or PYPI
    try:
        project = Registry(url, timeout=10, retries=1).project(AIRFLOW)
    except RegistryError as exc:
        report.warn(f"could not ask {url} whether Airflow {site.airflow.version} is yanked or its line "
                    f"still gets fixes ({exc.message}); --offline skips asking")
        return
    support = release_support(project, site.airflow.version)
    try:
        refuse(site, support)
    except LockError as exc:
        raise SiteError(site_path, [exc.message + (f"; {exc.hint}" if exc.hint else "")]) from None
    for notice in support.notices():
        report.warn(notice)


@click.command()
@site_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Directory to write the rendered tree into (replaced as a whole).")
@click.option("--lock", "lock_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Lock file whose pins select Airflow's schema (default: locks/<site name>.txt).")
@click.option("--no-validate", is_flag=True,
              help="Skip the checks: airflow.cfg against Airflow's own schema (needs the lock's index "
              "or a cache), units with systemd-analyze verify.")
def render(site_path: str, out_dir: str, lock_path: Path | None, no_validate: bool) -> None:
    """Render every config file and systemd unit of the site into OUT.

    Files land at OUT/<path on the target host>, e.g. OUT/etc/airflow/airflow.cfg
    and OUT/usr/lib/systemd/system/airflow-scheduler.service. Unless
    --no-validate, airflow.cfg is checked against the config.yml of the pinned
    apache-airflow-core and the providers' schemas, and the units with
    `systemd-analyze verify`: the checks `bundle build` makes, by the same rules (a
    lock without apache-airflow-core, or a host without systemd-analyze, is a warning).
    """
    from builder.render import render_site, write_tree

    site = load(site_path)
    files = render_site(site).files
    if not no_validate:
        from builder import report
        from builder.pydeps.lockfile import Lock
        from builder.pydeps.resolve import lock_path as default_lock_path
        from builder.check.rendered import validate

        # The same checks, by the same rules, as the render step of `bundle build`.
        checked = validate(site, files, Lock.read(lock_path or default_lock_path(site)))
        for line in checked.lines():
            click.echo(line)
        for why in checked.skipped:
            report.warn(why)
    out = write_tree(files, out_dir)
    click.echo(f"rendered {len(files)} files into {out}")


@click.command()
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=str),
              help="Write to this file instead of standard output.")
def schema(out_path: str | None) -> None:
    """Print the JSON Schema of site.toml (for editor completion and checks)."""
    from builder.site import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if out_path:
        write_atomic(out_path, text)
    else:
        click.echo(text, nl=False)


COMMANDS = [check, render, schema]
