"""The shared test helpers (tests/support/) and the e2e stand-in's spec, tested themselves."""

from __future__ import annotations

import tomllib

from support.sites import example_data, to_toml


def test_to_toml_round_trips():
    data = example_data()
    assert tomllib.loads(to_toml(data)) == data
    # Keys and strings that are not bare (a trailing newline included), an empty table.
    tricky = {"site": {"name": 'a"b\\c\n\x00\x7f\u2028é'}, "hosts": [{"name": "h", "roles": ["x", "y"]}],
              "airflow_cfg": {"core": {"key\n": "v", "a.b": 1, "": True}, "empty": {}}}
    assert tomllib.loads(to_toml(tricky)) == tricky
    assert to_toml({"a": 1}, comment="made here") == "# made here\na = 1\n"


def test_standin_claims_nothing_the_root_lacks(tmp_path):
    from e2e.repo import standin_spec

    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/python3.11").touch()
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text("")
    spec, skipped = standin_spec(tmp_path)
    provides = [line for line in spec.splitlines() if line.startswith("Provides:")]
    assert "Provides: /usr/bin/python3.11" in provides
    assert not any("systemd" in line or "shadow-utils" in line for line in provides)
    assert any(s.startswith("shadow-utils: root lacks") for s in skipped)
