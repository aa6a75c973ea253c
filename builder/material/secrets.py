"""`bundle secrets init`: generate the site's shared secrets into a 0600 file.

The file is written once for a site and copied to every node; it never goes
into an RPM or the repository.
"""

from __future__ import annotations

import os
import secrets as pysecrets
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

from builder.errors import UsageError
from builder.render import render_secrets
from builder.site.secrets import API_SECRET_KEY, BROKER_PASSWORD, FERNET_KEY, JWT_SECRET, PLACEHOLDER, secret_vars
from builder.site import Site


def default_secrets_path(site: Site) -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "airflow-prod" / f"{site.site.name}.secrets.env"


def generate_values(site: Site) -> dict[str, str]:
    values = {v.name: PLACEHOLDER for v in secret_vars(site)}
    values[FERNET_KEY.name] = Fernet.generate_key().decode()
    values[API_SECRET_KEY.name] = pysecrets.token_hex(32)
    values[JWT_SECRET.name] = pysecrets.token_hex(32)
    values[BROKER_PASSWORD.name] = pysecrets.token_urlsafe(32)
    return values


def _inside_git_worktree(path: Path) -> Path | None:
    for parent in [path.parent, *path.parent.parents]:
        if (parent / ".git").exists():
            return parent
    return None


def write_secrets(site: Site, out: Path, force: bool = False) -> Path:
    """Write a new secrets file; refuse to overwrite or to land inside a git tree."""
    out = out.expanduser().absolute()
    repo = _inside_git_worktree(out)
    if repo is not None:
        raise UsageError(
            f"refusing to write secrets to {out}: it is inside the git work tree {repo}",
            hint="pass --out with a path outside any repository (default: ~/.config/airflow-prod/)",
        )
    if out.exists() and not force:
        raise UsageError(
            f"{out} exists: it holds this site's secrets, and every node must share them",
            hint="pass --force to replace them (then copy the new file to every node)",
        )
    text = render_secrets(site, generate_values(site))
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A new file of our own (O_EXCL, a random name), 0600 from the first byte: the keys never
    # sit in a file someone else made or can read, even in a shared directory.
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out
