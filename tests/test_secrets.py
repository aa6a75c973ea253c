"""`bundle secrets init`: generated values, file mode, refusals."""

from __future__ import annotations

import base64
import stat

import pytest
from cryptography.fernet import Fernet

from builder.errors import UsageError
from builder.material.secrets import default_secrets_path, write_secrets
from builder.site import site_from_data
from support.sites import minimal_data


def _parse(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name] = value.strip("'")
    return out


def test_generates_working_keys_with_mode_0600(tmp_path, example_site):
    path = write_secrets(example_site, tmp_path / "s.env")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = _parse(path.read_text())
    assert list(values) == [
        "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET",
        "PGPASSWORD", "AIRFLOW_BROKER_PASSWORD", "AIRFLOW_LDAP_BIND_PASSWORD",
    ]
    token = Fernet(values["AIRFLOW__CORE__FERNET_KEY"].encode()).encrypt(b"x")  # a usable key
    assert Fernet(values["AIRFLOW__CORE__FERNET_KEY"].encode()).decrypt(token) == b"x"
    assert len(base64.urlsafe_b64decode(values["AIRFLOW__CORE__FERNET_KEY"])) == 32
    assert len(bytes.fromhex(values["AIRFLOW__API__SECRET_KEY"])) == 32
    assert len(bytes.fromhex(values["AIRFLOW__API_AUTH__JWT_SECRET"])) == 32
    assert values["AIRFLOW__API__SECRET_KEY"] != values["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert values["PGPASSWORD"] == values["AIRFLOW_LDAP_BIND_PASSWORD"] == "CHANGE-ME"
    assert len(base64.urlsafe_b64decode(values["AIRFLOW_BROKER_PASSWORD"] + "=")) == 32  # 256 bits, URL-safe


def test_each_init_makes_new_values(tmp_path, example_site):
    a = _parse(write_secrets(example_site, tmp_path / "a.env").read_text())
    b = _parse(write_secrets(example_site, tmp_path / "b.env").read_text())
    assert a["AIRFLOW__CORE__FERNET_KEY"] != b["AIRFLOW__CORE__FERNET_KEY"]


def test_no_ldap_no_bind_password(tmp_path):
    values = _parse(write_secrets(site_from_data(minimal_data()), tmp_path / "s.env").read_text())
    assert "AIRFLOW_LDAP_BIND_PASSWORD" not in values


def test_refuses_to_overwrite(tmp_path, example_site):
    path = write_secrets(example_site, tmp_path / "s.env")
    before = path.read_text()
    with pytest.raises(UsageError, match=r"s\.env exists: it holds this site's secrets"):
        write_secrets(example_site, path)
    assert path.read_text() == before
    write_secrets(example_site, path, force=True)
    assert path.read_text() != before


def test_refuses_a_path_inside_a_git_tree(tmp_path, example_site):
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    with pytest.raises(UsageError, match=r"inside the git work tree .*repo"):
        write_secrets(example_site, tmp_path / "repo" / "deploy" / "s.env")
    assert not (tmp_path / "repo" / "deploy" / "s.env").exists()


def test_default_path_is_outside_the_repo(example_site):
    path = default_secrets_path(example_site)
    assert path.name == "bigdata-prod.secrets.env"
    assert "airflow-prod" in path.parts


def test_a_file_planted_at_the_old_temporary_name_gets_no_secret(tmp_path, example_site):
    """Someone who can write the directory made `.s.env.tmp` (the name used before) readable to
    all, or a symlink to their own file: the secrets go into a new file of our own instead."""
    import stat

    theirs = tmp_path / "theirs"
    theirs.write_text("")
    theirs.chmod(0o666)
    (tmp_path / ".s.env.tmp").symlink_to(theirs)
    path = write_secrets(example_site, tmp_path / "s.env")
    assert theirs.read_text() == "" and (tmp_path / ".s.env.tmp").is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and not path.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".s.env.tmp", "s.env", "theirs"]


# --- bundle secrets rotate ----------------------------------------------------------------------

def _values(path):
    from builder.fingerprint import read_env_values
    return read_env_values(path)


def test_fernet_rotation_keeps_old_tokens_readable_until_finished(tmp_path, example_site):
    """new,old: Airflow's MultiFernet reads what the old key wrote and writes with the new one;
    --finish keeps the new one alone. Every other line stays byte for byte, the old files 0600."""
    from cryptography.fernet import MultiFernet

    from builder.material.rotation import rotate

    path = write_secrets(example_site, tmp_path / "s.env")
    before = path.read_text()
    old = _values(path)["AIRFLOW__CORE__FERNET_KEY"]
    stored = Fernet(old.encode()).encrypt(b"conn password")
    started = rotate(path, "fernet-key")
    keys = _values(path)["AIRFLOW__CORE__FERNET_KEY"].split(",")
    assert started.stage == "started" and len(keys) == 2 and keys[1] == old and keys[0] != old
    both = MultiFernet([Fernet(k.encode()) for k in keys])
    assert both.decrypt(stored) == b"conn password"
    rewritten = both.rotate(stored)                      # what `airflow rotate-fernet-key` does
    finished = rotate(path, "fernet-key", finish=True)
    assert finished.stage == "finished" and _values(path)["AIRFLOW__CORE__FERNET_KEY"] == keys[0]
    assert Fernet(keys[0].encode()).decrypt(rewritten) == b"conn password"
    changed = [(a, b) for a, b in zip(before.splitlines(), path.read_text().splitlines()) if a != b]
    assert [a.split("=")[0] for a, _ in changed] == ["AIRFLOW__CORE__FERNET_KEY"]
    assert started.kept.read_text() == before
    for f in (path, started.kept, finished.kept):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600


def test_jwt_and_secret_key_are_replaced_in_one_step(tmp_path, example_site):
    from builder.material.rotation import rotate

    path = write_secrets(example_site, tmp_path / "s.env")
    old = _values(path)
    for name, var in (("jwt-secret", "AIRFLOW__API_AUTH__JWT_SECRET"), ("secret-key", "AIRFLOW__API__SECRET_KEY")):
        done = rotate(path, name)
        new = _values(path)[var]
        assert done.stage == "replaced" and new != old[var] and len(bytes.fromhex(new)) == 32
    assert {k: v for k, v in _values(path).items() if "SECRET" not in k} == \
        {k: v for k, v in old.items() if "SECRET" not in k}


@pytest.mark.parametrize("setup, name, finish, message", [
    (None, "fernet-key", True, "no fernet key rotation is under way"),
    ("fernet-key", "fernet-key", False, "a fernet key rotation is under way"),
    (None, "jwt-secret", True, "--finish is for fernet-key"),
    (None, "database-password", False, "cannot rotate 'database-password'"),
])
def test_a_rotation_that_cannot_be_done_changes_nothing(tmp_path, example_site, setup, name, finish, message):
    from builder.material.rotation import rotate

    path = write_secrets(example_site, tmp_path / "s.env")
    if setup:
        rotate(path, setup)
    files = {p: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(UsageError, match=message):
        rotate(path, name, finish)
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == files
    with pytest.raises(UsageError, match="no such secrets file"):
        rotate(tmp_path / "missing.env", "jwt-secret")
