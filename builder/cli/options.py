"""Options shared by several commands."""

from __future__ import annotations

import click

from builder.pydeps.index import PYPI
from builder.site import Site, load_site

site_option = click.option(
    "--site",
    "site_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="The site file (see examples/site.toml).",
)
index_option = click.option(
    "--index-url", default=None, metavar="URL",
    help=f"Package index (Simple API). A mirror works if it serves PEP 691 JSON with upload times. "
    f"Default: the one the existing lock records, else {PYPI}.",
)
locks_option = click.option(
    "--locks-dir", default="locks", show_default=True, type=click.Path(file_okay=False),
    help="Where <site name>.txt lock files live.",
)


def load(site_path: str) -> Site:
    return load_site(site_path)
