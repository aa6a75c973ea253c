"""CycloneDX's own checks over an SBOM the builder wrote: its strict JSON schema
validator, then its object model reading the document back (Bom.validate() checks that
every dependency names a component). Plus what neither can see: unique bom-refs and
package URLs that round-trip through the purl reference library."""

from __future__ import annotations

import functools
import json

from cyclonedx.exception import CycloneDxException
from cyclonedx.model.bom import Bom
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL


@functools.cache
def _validator(version: str) -> JsonStrictValidator:
    return JsonStrictValidator(SchemaVersion.from_version(version))


def assert_valid_cyclonedx(text: str) -> dict:
    """The parsed document, after every check passed."""
    doc = json.loads(text)
    assert doc["specVersion"] == "1.6"
    errors = _validator(doc["specVersion"]).validate_str(text, all_errors=True)
    assert errors is None, "\n".join(str(e) for e in errors or ())
    try:
        Bom.from_json(doc).validate()  # type: ignore[attr-defined]
    except CycloneDxException as exc:
        raise AssertionError(f"CycloneDX's model refuses it: {exc}") from exc
    refs = [c["bom-ref"] for c in doc.get("components", [])] + [doc["metadata"]["component"]["bom-ref"]]
    assert len(refs) == len(set(refs)), "bom-refs must be unique"
    for dep in doc.get("dependencies", []):
        assert dep["ref"] in refs and set(dep.get("dependsOn", [])) <= set(refs), dep
    for comp in doc.get("components", []):
        if "purl" in comp:
            assert PackageURL.from_string(comp["purl"]).to_string() == comp["purl"]
    return doc
