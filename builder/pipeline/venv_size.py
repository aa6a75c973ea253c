"""How much free space a new venv needs: the base package's %pre refuses to start without it."""

from __future__ import annotations

import zipfile
from pathlib import Path

from builder.pipeline.context import BuildError
from builder.fsutil import sha256_file


def venv_kb(wheels: list[Path], memo: dict[str, str]) -> int:
    """Free space a new venv needs: unpacked wheel sizes (zip directories only) plus bytecode and slack."""
    total = 0
    for w in wheels:
        if w.suffix != ".whl":
            continue
        key = f"unzipped:{sha256_file(w, memo)}"
        if key not in memo:
            try:
                with zipfile.ZipFile(w) as z:
                    memo[key] = str(sum(i.file_size for i in z.infolist()))
            except zipfile.BadZipFile:
                raise BuildError(
                    f"{w}: not a valid wheel (truncated or corrupted zip)",
                    hint="re-run `bundle wheelhouse`: it re-downloads and verifies every file by hash",
                ) from None
        total += int(memo[key])
    return int(total * 1.5 / 1024) + 64 * 1024
