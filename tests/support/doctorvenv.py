"""A small venv with the libraries `airflow-prod doctor` imports from the site's venv.

Doctor imports psycopg2, redis, python-ldap, cryptography and certifi from the root-owned
venv and nothing of Airflow. The unit tests run the rendered doctor against real servers
with a venv of exactly those pins from the project's lock (hash-checked), built once per
set of pins under ~/.cache/airflow-prod (test infrastructure, not code under test).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "locks" / "bigdata-prod.txt"
# What doctor imports, what they need at run time, and Airflow itself (its migration files
# and version, which doctor reads; --no-deps: never imported).
PACKAGES = ("apache-airflow-core", "certifi", "cffi", "pycparser", "cryptography", "psycopg2-binary", "redis", "python-ldap",
            "pyasn1", "pyasn1-modules")
# The target's interpreter version (3.11.7): the project venv's base interpreter, not Debian's 3.11.2.
PYTHON = os.path.realpath(sys.executable)


def pinned_requirements(lock: Path = LOCK) -> str:
    """The lock's entries (pin and hashes) of PACKAGES, in lock order."""
    entries = re.split(r"\n(?=\S)", lock.read_text())
    chosen = [e.strip() for e in entries if re.match(r"([A-Za-z0-9_.-]+)==", e)
              and re.match(r"([A-Za-z0-9_.-]+)==", e)[1].lower() in PACKAGES]  # type: ignore[index]
    missing = set(PACKAGES) - {e.split("==", 1)[0].lower() for e in chosen}
    assert not missing, f"{lock} lacks {sorted(missing)}"
    return "\n".join(chosen) + "\n"


def doctor_venv(cache: Path | None = None) -> Path:
    """A root-owned venv (0755 all the way) with the pins; reused while the pins are the same."""
    reqs = pinned_requirements()
    key = hashlib.sha256((PYTHON + reqs).encode()).hexdigest()[:16]
    base = cache or Path(os.environ.get("HOME", "/root")) / ".cache" / "airflow-prod"
    venv = base / f"doctor-venv-{key}"
    if (venv / ".complete").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    base.mkdir(parents=True, exist_ok=True)
    subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True)
    (venv / "requirements.txt").write_text(reqs)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--no-deps", "--require-hashes", "-r", str(venv / "requirements.txt")],
                   check=True, timeout=900)
    (venv / ".complete").write_text(key + "\n")
    return venv
