"""The shared test helpers (tests/support/) and the e2e stand-in's spec, tested themselves."""

from __future__ import annotations

import tomllib

from support.rpm import example_data, toml_dumps


def test_toml_dumps_round_trips():
    data = example_data()
    assert tomllib.loads(toml_dumps(data)) == data


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
