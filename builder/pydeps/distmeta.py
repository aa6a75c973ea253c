"""What a wheel or sdist says about itself: its core metadata (a wheel's .dist-info/METADATA,
an sdist's PKG-INFO), read from the file that ships, not from the index.

Only the fields the SBOM needs: name, version and the three places a licence is declared
(PEP 639 License-Expression, the License field, License :: classifiers). The text is
whatever the package's author wrote, so it is decoded leniently and never trusted.
"""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from builder.errors import BundleError

# Metadata files are small; a member larger than this is not one (and is not read whole).
_MAX_METADATA = 16 << 20


class MetadataError(BundleError):
    """A file in the wheelhouse whose core metadata cannot be read."""


@dataclass(frozen=True)
class DistMeta:
    name: str
    version: str
    license_expression: str = ""        # PEP 639
    license: str = ""                   # the older free-text field (sometimes a whole licence text)
    classifiers: tuple[str, ...] = ()   # the "License :: ..." classifiers only


def read(path: Path) -> DistMeta:
    """The core metadata of a wheel (.whl) or sdist (.tar.gz, .zip) in the wheelhouse."""
    try:
        raw = _metadata_bytes(path)
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise MetadataError(f"{path}: cannot read its core metadata: {exc}") from exc
    if raw is None:
        what = ".dist-info/METADATA" if path.name.endswith(".whl") else "PKG-INFO"
        raise MetadataError(f"{path}: holds no {what}", hint="rebuild the wheelhouse (`bundle wheelhouse`)")
    return parse(raw.decode("utf-8", errors="replace"), str(path))


def _metadata_bytes(path: Path) -> bytes | None:
    """METADATA of a wheel, or the top directory's PKG-INFO of an sdist."""
    if path.name.endswith(".whl"):
        return _from_zip(path, lambda n: n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
    if path.name.endswith(".zip"):
        return _from_zip(path, lambda n: n.count("/") == 1 and n.endswith("/PKG-INFO"))
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            if member.isfile() and member.name.count("/") == 1 and member.name.endswith("/PKG-INFO"):
                if member.size > _MAX_METADATA:
                    return None
                fh = tar.extractfile(member)
                return fh.read() if fh else None
    return None


def _from_zip(path: Path, wanted: Callable[[str], bool]) -> bytes | None:
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if wanted(info.filename) and info.file_size <= _MAX_METADATA:
                return zf.read(info)
    return None


def parse(text: str, source: str = "<metadata>") -> DistMeta:
    """Core metadata text -> DistMeta; a missing Name or Version is an error naming `source`."""
    # Lone surrogates cannot be written as UTF-8 (or valid JSON): replace them first.
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    msg = HeaderParser().parsestr(text)
    name, version = _one_line(msg.get("Name")), _one_line(msg.get("Version"))
    missing = [f for f, v in (("Name", name), ("Version", version)) if not v]
    if missing:
        raise MetadataError(f"{source}: core metadata without {' and '.join(missing)}",
                            hint="every wheel and sdist must name itself; rebuild or replace this file")
    classifiers = tuple(
        c for c in (_one_line(v) for v in msg.get_all("Classifier") or []) if c.startswith("License ::")
    )
    return DistMeta(
        name=name, version=version,
        license_expression=_one_line(msg.get("License-Expression")),
        license=_text(msg.get("License")),
        classifiers=classifiers,
    )


def _one_line(value: object) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _text(value: object) -> str:
    """A multi-line field: continuation lines lose their indent (and setuptools' '|' prefix)."""
    if value is None:
        return ""
    lines = [line.strip() for line in str(value).splitlines()]
    lines = [line[1:].lstrip() if line.startswith("|") else line for line in lines]
    text = "\n".join(lines).strip()
    return "" if text.upper() == "UNKNOWN" else text
