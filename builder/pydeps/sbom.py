"""CycloneDX 1.6 JSON of the wheelhouse: one component per wheel or sdist that ships.

Pure and reproducible: the same files give the same bytes. No clock is read: the only
time stamp is the one the caller passes (the build's fixed epoch), and the serial number
is a uuid5 of the document's own content. Licences are what each file's core metadata
declares (builder.pydeps.distmeta), classified with CycloneDX's own SPDX list and
expression check; anything else is kept verbatim as a named licence.

Why 1.6: CycloneDX's library validates 1.5 and 1.6 against the same kind of strict JSON
schema, and 1.6 adds `acknowledgement: declared`, which says exactly what these licences
are (what the author declared, not a conclusion of ours).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

from cyclonedx import spdx
from packageurl import PackageURL
from packaging.utils import canonicalize_name

from builder.fsutil import sha256_file
from builder.pydeps import distmeta

SPEC_VERSION = "1.6"
TOOL = "airflow-prod-bundle"
# uuid5 namespace of every serial number this tool writes (a fixed, arbitrary uuid4).
SERIAL_NAMESPACE = uuid.UUID("5b0f6c1e-7f43-4c55-9a58-2f1d5e0b9a61")

# PEP 508 project names; anything else has no package URL (a "/" would read as a namespace).
_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
# License classifiers that name exactly one SPDX licence. Ambiguous ones ("BSD License",
# the GPL family without "only"/"or later") stay named licences.
CLASSIFIER_SPDX = {
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: MIT No Attribution License (MIT-0)": "MIT-0",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: The Unlicense (Unlicense)": "Unlicense",
    "License :: OSI Approved :: Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "License :: OSI Approved :: Zero-Clause BSD (0BSD)": "0BSD",
    "License :: OSI Approved :: Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "License :: CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}
_DECLARED = {"acknowledgement": "declared"}


@dataclass(frozen=True)
class WheelhouseItem:
    """One file of the wheelhouse as the SBOM lists it."""

    filename: str
    sha256: str
    meta: distmeta.DistMeta
    origin: str = ""   # from the wheelhouse manifest when there is one (downloaded, built-host, ...)


def read_items(paths: Iterable[Path], memo: dict[str, str] | None = None,
               origins: dict[str, str] | None = None) -> list[WheelhouseItem]:
    """Each file's own metadata and sha256 (the hash the offline lock pins)."""
    origins = origins or {}
    return [WheelhouseItem(p.name, sha256_file(p, memo), distmeta.read(p), origins.get(p.name, ""))
            for p in sorted(paths, key=lambda p: p.name)]


def pypi_purl(name: str, version: str, filename: str) -> str | None:
    """pkg:pypi/<PEP 503 name>@<version>?file_name=<file>; None for a name PyPI cannot have."""
    if not _PROJECT_NAME.match(name):
        return None
    return PackageURL(type="pypi", name=canonicalize_name(name), version=version,
                      qualifiers={"file_name": filename}).to_string()


def component(item: WheelhouseItem) -> dict:
    """A wheel or sdist as a CycloneDX library component, its purl as its bom-ref."""
    purl = pypi_purl(item.meta.name, item.meta.version, item.filename)
    comp: dict = {
        "type": "library",
        "bom-ref": purl or f"file:{item.filename}",
        "name": item.meta.name,
        "version": item.meta.version,
        "hashes": [{"alg": "SHA-256", "content": item.sha256}],
        "properties": [{"name": "airflow-prod:file", "value": item.filename}],
    }
    if purl:
        comp["purl"] = purl
    if item.origin:
        comp["properties"].append({"name": "airflow-prod:origin", "value": item.origin})
    found = licences(item.meta)
    if found:
        comp["licenses"] = found
    return comp


def licences(meta: distmeta.DistMeta) -> list[dict]:
    """CycloneDX licence choice: PEP 639's expression wins; else the License field and classifiers."""
    if meta.license_expression:
        return [_expression_or_named(meta.license_expression)]
    if meta.license and "\n" not in meta.license and not spdx.fixup_id(meta.license) \
            and spdx.is_expression(meta.license):
        return [{"expression": meta.license, **_DECLARED}]   # a compound expression in the old field
    found = ([_declared_text(meta.license)] if meta.license else []) + [
        _classified(c) for c in meta.classifiers if c != "License :: OSI Approved"]
    unique: dict[str, dict] = {}
    for lic in found:
        key = lic["license"].get("id") or lic["license"]["name"]
        unique.setdefault(key, lic)
    return list(unique.values())


def _expression_or_named(expr: str) -> dict:
    spdx_id = spdx.fixup_id(expr)
    if spdx_id:
        return {"license": {"id": spdx_id, **_DECLARED}}
    if spdx.is_expression(expr):
        return {"expression": expr, **_DECLARED}
    return {"license": {"name": expr, **_DECLARED}}


def _declared_text(text: str) -> dict:
    """The License field: an SPDX id, a short name, or a whole licence text (kept as its text)."""
    spdx_id = spdx.fixup_id(text)
    if spdx_id:
        return {"license": {"id": spdx_id, **_DECLARED}}
    first = text.splitlines()[0] if text.splitlines() else text
    if "\n" not in text and len(text) <= 200:
        return {"license": {"name": text, **_DECLARED}}
    return {"license": {"name": first[:80] or "licence text", **_DECLARED,
                        "text": {"content": text, "contentType": "text/plain"}}}


def _classified(classifier: str) -> dict:
    spdx_id = CLASSIFIER_SPDX.get(classifier)
    if spdx_id:
        return {"license": {"id": spdx_id, **_DECLARED}}
    return {"license": {"name": classifier.rsplit(" :: ", 1)[-1] or classifier, **_DECLARED}}


def document(subject: dict, components: list[dict], dependencies: dict[str, list[str]], epoch: int) -> str:
    """The BOM as JSON text: components and dependencies sorted, serial from the content."""
    doc: dict = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": {
            "timestamp": datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [_tool()]},
            "component": subject,
        },
        "components": sorted(components, key=lambda c: c["bom-ref"]),
        "dependencies": [{"ref": ref, "dependsOn": sorted(set(on))} for ref, on in sorted(dependencies.items())],
    }
    content = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    doc["serialNumber"] = f"urn:uuid:{uuid.uuid5(SERIAL_NAMESPACE, content)}"
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def _tool() -> dict:
    tool: dict = {"type": "application", "name": TOOL}
    try:
        tool["version"] = importlib_metadata.version(TOOL)
    except importlib_metadata.PackageNotFoundError:
        pass
    return tool
