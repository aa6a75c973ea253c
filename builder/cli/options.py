"""Options shared by several commands."""

from __future__ import annotations

import click

from builder.site import Site, load_site

site_option = click.option(
    "--site",
    "site_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="The site file (see examples/site.toml).",
)


def load(site_path: str) -> Site:
    return load_site(site_path)
