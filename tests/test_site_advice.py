"""Risky but valid choices: one warning each from `bundle check` and `bundle build`, with
the reason and the safer setting (docs/security.md); the defaults and the example have none."""

from __future__ import annotations

import copy

import pytest

from builder.site import site_from_data
from builder.site.advice import risky_choices
from support.sites import minimal_data, write_toml

# The guide's choices, each a key the example now sets safely.
GUIDE = {
    "core.test_connection": ("core", "test_connection", "Enabled"),
    "api.expose_config": ("api", "expose_config", True),
    "ldap.registration_role": ("ldap", "registration_role", "User"),
}


def _with(data: dict, *changes: tuple[str, str, object]) -> dict:
    data = copy.deepcopy(data)
    for section, key, value in changes:
        data.setdefault(section, {})[key] = value
    return data


def test_the_example_and_the_defaults_make_no_risky_choice(example_data):
    assert risky_choices(site_from_data(example_data)) == []
    assert risky_choices(site_from_data(minimal_data())) == []


@pytest.mark.parametrize("key", sorted(GUIDE))
def test_each_of_the_guides_risky_choices_is_named_with_the_safer_setting(example_data, key):
    risks = risky_choices(site_from_data(_with(example_data, GUIDE[key])))
    assert [r.key for r in risks] == [key]
    text = str(risks[0])
    assert text.startswith(f"{key} = ") and "; safer: " in text


@pytest.mark.parametrize("role, warned", [("Admin", True), ("Op", True), ("User", True), ("Viewer", False),
                                          ("Public", False)])
def test_self_registration_warns_for_roles_that_write(example_data, role, warned):
    risks = risky_choices(site_from_data(_with(example_data, ("ldap", "registration_role", role))))
    assert bool(risks) is warned
    off = _with(example_data, ("ldap", "registration_role", role), ("ldap", "registration", False))
    assert risky_choices(site_from_data(off)) == []


def test_bundle_check_prints_one_warning_each_and_still_passes(example_data, tmp_path):
    import subprocess
    import sys

    site = write_toml(tmp_path / "site.toml", _with(example_data, *GUIDE.values()))
    result = subprocess.run([sys.executable, "-m", "builder", "check", "--site", str(site), "--offline"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert [w.split(" = ")[0].removeprefix("warning: ") for w in warnings] == list(GUIDE)


@pytest.mark.parametrize("sslmode, warned", [("disable", "in clear"), ("prefer", "without checking whose certificate"),
                                             ("require", "without checking whose certificate"),
                                             ("verify-ca", None), ("verify-full", None)])
def test_an_unverified_remote_database_is_warned_about(example_data, sslmode, warned):
    risks = risky_choices(site_from_data(_with(example_data, ("database", "sslmode", sslmode))))
    assert [r.key for r in risks] == (["database.sslmode"] if warned else [])
    if warned:
        assert warned in risks[0].why and "verify-full" in risks[0].safer
    local = _with(example_data, ("database", "sslmode", sslmode), ("database", "host", "localhost"))
    assert risky_choices(site_from_data(local)) == []
