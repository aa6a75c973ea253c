"""site.toml: the typed model, its loader and its JSON Schema."""

from builder.site.load import load_site, parse_site, site_from_data
from builder.site.model import ROLES, Site

__all__ = ["ROLES", "Site", "json_schema", "load_site", "parse_site", "site_from_data"]


def json_schema() -> dict:
    """The JSON Schema of site.toml, for editors (taplo, VS Code Even Better TOML)."""
    schema = Site.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "airflow-prod site.toml"
    return schema
