"""The wheelhouse RPM's build serials, kept with the RPM cache every site shares.

One serial per wheelhouse content, counting up: a new content sorts above every older
one, whichever site built it. (The site packages' serial lives in each build's state.)
"""

from __future__ import annotations

import json
from pathlib import Path

from builder.fsutil import write_atomic


def cache_serial(cache_root: Path, digest: str) -> int:
    """The wheelhouse's build serial for this content: recorded once, then the same."""
    path = cache_root / "serials.json"
    try:
        serials = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        serials = {}
    if digest not in serials:
        serials[digest] = max(serials.values(), default=0) + 1
        write_atomic(path, json.dumps(serials, indent=1, sort_keys=True) + "\n")
    return serials[digest]
