"""`bundle secrets rotate`: a new value for one generated secret in the site's secrets file.

The old file is kept beside the new one (0600, named by the time of the rotation), the new
one replaces it atomically, and the caller prints the steps that put it on the hosts
(docs/operations.md, "Rotation"). The fernet key rotates in two steps, as Airflow does it:
"new,old" (every component decrypts with either, encrypts with the new), `airflow
rotate-fernet-key` re-encrypts what is stored, then "new" alone.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets as pysecrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from builder.errors import UsageError
from builder.fsutil import write_atomic
from builder.render.escape import env as envquote
from builder.site.secrets import API_SECRET_KEY, FERNET_KEY, JWT_SECRET, PLACEHOLDER, SecretVar, env_values

# What `bundle secrets rotate NAME` rotates; the rest of the file is the admin's.
ROTATABLE: dict[str, SecretVar] = {"fernet-key": FERNET_KEY, "secret-key": API_SECRET_KEY, "jwt-secret": JWT_SECRET}


@dataclass(frozen=True)
class Rotation:
    secrets: Path   # the file, now with the new value
    kept: Path      # the file as it was
    var: str
    stage: str      # "started" (fernet: new,old), "finished" (fernet: new), "replaced"


def _new_value(var: SecretVar) -> str:
    return Fernet.generate_key().decode() if var is FERNET_KEY else pysecrets.token_hex(32)


def next_value(name: str, current: str, finish: bool) -> tuple[str, str]:
    """The rotated value and the stage it starts, from the current value."""
    var = ROTATABLE[name]
    keys = current.split(",")
    if var is not FERNET_KEY:
        if finish:
            raise UsageError(f"--finish is for fernet-key: {name} is replaced in one step",
                             hint=f"bundle secrets rotate {name} (without --finish)")
        return _new_value(var), "replaced"
    if finish:
        if len(keys) < 2:
            raise UsageError(f"no fernet key rotation is under way: {var.name} holds one key",
                             hint="start one: bundle secrets rotate fernet-key")
        return keys[0], "finished"
    if len(keys) > 1:
        raise UsageError(f"a fernet key rotation is under way: {var.name} holds {len(keys)} keys",
                         hint="after `airflow rotate-fernet-key` ran: bundle secrets rotate fernet-key --finish")
    return f"{_new_value(var)},{current}", "started"


def rotate(path: Path, name: str, finish: bool = False, now: dt.datetime | None = None) -> Rotation:
    """Rotate ROTATABLE[name] in the secrets file at `path`; the old file is kept."""
    if name not in ROTATABLE:
        raise UsageError(f"cannot rotate {name!r}", hint=f"one of: {', '.join(ROTATABLE)}")
    var = ROTATABLE[name]
    path = path.expanduser().absolute()
    if not path.is_file():
        raise UsageError(f"{path}: no such secrets file",
                         hint="pass --secrets with the site's file (bundle secrets init wrote it)")
    text = path.read_text()
    current = env_values(text).get(var.name, "")
    if not current or current == PLACEHOLDER:
        raise UsageError(f"{path}: {var.name} is missing or a placeholder: nothing to rotate",
                         hint="bundle secrets init generates it")
    value, stage = next_value(name, current, finish)
    line = re.compile(rf"^{re.escape(var.name)}=.*$", re.M)
    if len(line.findall(text)) != 1:
        raise UsageError(f"{path}: {var.name} must be set on exactly one line",
                         hint="remove the duplicate lines, then rotate again")
    new_text = line.sub(lambda _: f"{var.name}={envquote(value)}", text)
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%S.%fZ")
    kept = path.with_name(f"{path.name}.{stamp}.{name}.old")
    # The old file first (0600, never replaced), then the new one atomically: a failure
    # leaves the old file in place, and the old values are never lost.
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    write_atomic(path, new_text, mode=0o600)
    return Rotation(path, kept, var.name, stage)
