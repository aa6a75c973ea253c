"""site.toml: the typed model, its loader and its JSON Schema."""

from builder.site.load import load_site, parse_site
from builder.site.model import ROLES, Site

__all__ = ["ROLES", "Site", "load_site", "parse_site", "json_schema"]


def json_schema() -> dict:
    """The JSON Schema of site.toml, for editors (taplo, VS Code Even Better TOML)."""
    schema = Site.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "airflow-prod site.toml"
    return schema
