"""Choices a site may make that give someone more than they need (docs/security.md).

Valid, so not refused: the guide makes some of them. `bundle check` and `bundle build`
print one warning for each, with the reason and the safer setting. The defaults are the
safer settings, so a site that does not name these keys gets no warning.
"""

from __future__ import annotations

from dataclasses import dataclass

from builder.site.model import Site
from builder.site.values import is_local

# Roles Airflow's FAB auth manager gives more than reading: a self-registered directory
# account with one of them can trigger, clear or edit what others wrote.
_WRITING_ROLES = ("Admin", "Op", "User")


@dataclass(frozen=True)
class Risk:
    key: str       # the site key, as written in site.toml
    value: str     # what the site sets
    why: str       # who gets what
    safer: str     # the setting that does not

    def __str__(self) -> str:
        return f"{self.key} = {self.value}: {self.why}; safer: {self.safer}"


def risky_choices(site: Site) -> list[Risk]:
    """One Risk per risky choice of the site, in site-file order."""
    risks = []
    db = site.database
    if not is_local(db.host) and db.sslmode not in ("verify-ca", "verify-full"):
        risks.append(Risk(
            "database.sslmode", f'"{db.sslmode}"',
            f"the database password and every query cross the network to {db.host} "
            + ("in clear" if db.sslmode in ("disable", "allow") else "without checking whose certificate "
               "answers: a peer on the path can read and change them"),
            'sslmode = "verify-full" (the default), with database.ca_file'))
    if site.core.test_connection == "Enabled":
        risks.append(Risk(
            "core.test_connection", '"Enabled"',
            "any user who may edit connections makes the api-server (which holds the TLS key and "
            "the LDAP bind password) connect to any host and port they name",
            'test_connection = "Disabled" (or "Hidden")'))
    if site.api.expose_config:
        risks.append(Risk(
            "api.expose_config", "true",
            "the configuration page shows sensitive values (connection URLs, secret options) to the "
            "Op role in Airflow 3.1.4",
            "expose_config = false"))
    if site.ldap and site.ldap.registration and site.ldap.registration_role in _WRITING_ROLES:
        risks.append(Risk(
            "ldap.registration_role", f'"{site.ldap.registration_role}"',
            "every directory account the search filter admits gets this role at its first login, "
            "with the right to trigger and clear DAG runs",
            'registration_role = "Viewer" (or "Public"), and more through ldap.role_mapping'))
    return risks
