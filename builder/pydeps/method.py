"""How the lock is resolved: against Airflow's official constraints, else a date cutoff.

The constraints file for the release and the target's Python minor (or the site's own
`airflow.constraints`) pins every package as Airflow's CI tested it. When it cannot be
fetched, the resolve takes whatever the index had just after the release was uploaded.
"""

from __future__ import annotations

import hashlib
import urllib.error
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from builder.errors import BundleError
from builder.pydeps.index import Registry, RegistryUnreachable
from builder.pydeps.lockfile import LockError, iso
from builder.pydeps.release import Release
from builder.site.model import Site


CONSTRAINTS_URL = (
    "https://raw.githubusercontent.com/apache/airflow/"
    "constraints-{version}/constraints-{python_minor}.txt"
)


@dataclass
class Method:
    kind: str  # "constraints" | "date-cutoff"
    description: str
    constraints_text: str | None = None
    cutoff: datetime | None = None


def choose_method(site: Site, release: Release, registry: Registry) -> Method:
    source = site.airflow.constraints or CONSTRAINTS_URL.format(
        version=site.airflow.version, python_minor=site.target.python_minor
    )
    if "://" not in source:
        path = Path(source)
        if not path.is_file():
            raise LockError(f"airflow.constraints: {source}: no such file")
        text = path.read_text()
    else:
        try:
            text = Registry(timeout=10, retries=2).get_bytes(source).decode()
        except (RegistryUnreachable, urllib.error.URLError, OSError) as exc:
            reason = exc.message if isinstance(exc, BundleError) else f"{source}: {exc}"
            return Method(
                "date-cutoff",
                f"date-cutoff {iso(release.cutoff)} (official constraints unreachable: {reason.splitlines()[0]})",
                cutoff=release.cutoff,
            )
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Method("constraints", f"constraints {source} (sha256 {digest}...)", constraints_text=text)
