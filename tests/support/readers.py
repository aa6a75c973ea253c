"""How each program that reads a rendered file sees it, and what the site meant it to say.

The parsers here follow their programs' documented grammars (systemd.syntax(7),
tmpfiles.d(5), sysusers.d(5), configparser as Airflow drives it); real
readers check the same files in tests/test_real_readers.py and the booted host,
so these mirrors are themselves tested against the programs.
"""

from __future__ import annotations

import ast
import configparser
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from builder.render.airflow_cfg import airflow_cfg_options
from builder.render.units import UnitSpec
from builder.layout import SYSCONFIG
from builder.site import Site

# What every Airflow process's environment holds that an unescaped $NAME or ~
# in airflow.cfg would pull in (the reader test sets these for real).
CANARY_ENV = {"HOME": "/canary-home", "CANARY": "leaked", "AIRFLOW__API__SECRET_KEY": "leaked-secret"}


# --- systemd unit files -----------------------------------------------------------------

def unit_lines(text: str) -> list[tuple[str, str, str]]:
    """(section, key, raw value) as systemd's config parser reads a unit file."""
    out: list[tuple[str, str, str]] = []
    section = ""
    pending = ""
    for raw in text.split("\n"):
        line = pending + raw
        pending = ""
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.endswith("\\"):  # continuation: backslash-newline becomes a space
            pending = stripped[:-1] + " "
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        key, eq, value = stripped.partition("=")
        assert eq, f"not a key=value line in a unit: {stripped!r}"
        out.append((section, key.strip(), value.strip()))
    return out


def unit_words(value: str) -> list[str]:
    """Split a setting like ExecStart= into words: quotes and C escapes (extract_first_word)."""
    words, current, quote, escape, any_char = [], [], "", False, False
    for ch in value:
        if escape:
            current.append({"n": "\n", "t": "\t"}.get(ch, ch))
            escape = False
        elif ch == "\\":
            escape = any_char = True
        elif quote:
            if ch == quote:
                quote = ""
            else:
                current.append(ch)
        elif ch in "\"'":
            quote, any_char = ch, True
        elif ch.isspace():
            if current or any_char:
                words.append("".join(current))
            current, any_char = [], False
        else:
            current.append(ch)
            any_char = True
    if current or any_char:
        words.append("".join(current))
    return words


def unspecify(value: str, exec_line: bool = False) -> str:
    """Undo systemd's specifier (and, in Exec lines, variable) escaping."""
    value = value.replace("%%", "\0")
    assert "%" not in value, f"an unescaped systemd specifier in {value!r}"
    value = value.replace("\0", "%")
    if exec_line:
        value = value.replace("$$", "\0")
        assert "$" not in value, f"an unescaped $ expansion in an Exec line: {value!r}"
        value = value.replace("\0", "$")
    return value


def unit_meaning(text: str) -> dict[str, object]:
    """What systemd sees in a service unit, in the terms the site means."""
    lines = unit_lines(text)
    values: dict[str, list[str]] = {}
    for _section, key, value in lines:
        values.setdefault(key, []).append(value)
    exec_start = [unspecify(w, exec_line=True) for w in unit_words(values["ExecStart"][0])]
    return {
        "sections": sorted({s for s, _k, _v in lines}),
        "User": values.get("User"), "Group": values.get("Group"),
        "ExecStart": exec_start, "ExecStart count": len(values["ExecStart"]),
        "ExecStartPre": [[unspecify(w, exec_line=True) for w in unit_words(v)] for v in values.get("ExecStartPre", [])],
        "EnvironmentFile": [unspecify(v) for v in values.get("EnvironmentFile", [])],
        "WorkingDirectory": [unspecify(v) for v in values.get("WorkingDirectory", [])],
        "ConditionPathExists": [unspecify(v) for v in values.get("ConditionPathExists", [])],
        "ReadWritePaths": [unspecify(w) for v in values.get("ReadWritePaths", []) for w in v.split()],
    }


def unit_intent(site: Site, spec: UnitSpec) -> dict[str, object]:
    return {
        # A unit its timer starts has no [Install] (the timer has).
        "sections": ["Service", "Unit"] if spec.timer else ["Install", "Service", "Unit"],
        "User": ["airflow-worker" if spec.role == "celery-worker" else "airflow"], "Group": ["airflow"],
        "ExecStart": [spec.program or f"{site.paths.venv}/bin/airflow", *spec.args], "ExecStart count": 1,
        "ExecStartPre": [["+" + spec.secrets_pre[0], *spec.secrets_pre[1:]], *(list(argv) for argv in spec.pre)],
        "EnvironmentFile": [SYSCONFIG, f"-{spec.env_file}"],
        "WorkingDirectory": [site.paths.home],
        "ConditionPathExists": [f"{site.paths.venv}/.airflow-prod-complete"],
        "ReadWritePaths": [site.paths.logs, site.paths.run, *spec.read_write] if spec.strict else list(spec.read_write),
    }


def unit_keys(text: str) -> list[tuple[str, str]]:
    """The directives of a unit, without the values; RuntimeDirectory* follow paths.run."""
    return sorted((s, k) for s, k, _v in unit_lines(text) if not k.startswith("RuntimeDirectory"))


# --- environment files ------------------------------------------------------------------

def sysconfig_intent(site: Site) -> dict[str, str]:
    env = {
        "AIRFLOW_HOME": site.paths.home,
        "AIRFLOW_CONFIG": f"{site.paths.config}/airflow.cfg",
        "AIRFLOW_VENV": site.paths.venv,
        "PYTHONUNBUFFERED": "1",
        "PYTHONUTF8": "1",
    }
    if site.database.sslmode != "prefer":
        env["PGSSLMODE"] = site.database.sslmode
    if site.database.sslmode in ("verify-ca", "verify-full"):
        env["PGSSLROOTCERT"] = site.database.ca_file
    # The ccache and the keytab are each unit's (Environment=, LoadCredential=), not here.
    if site.kerberos and site.kerberos.krb5_conf != "/etc/krb5.conf":
        env["KRB5_CONFIG"] = site.kerberos.krb5_conf
    env.update(site.environment)
    return env


def sh_reads(path: Path, canary_dir: Path) -> dict[str, str]:
    """The variables POSIX sh (dash) gets from `set -a; . FILE` in an empty environment."""
    proc = subprocess.run(
        ["sh", "-c", 'set -a; . "$1" && exec env -0', "sh", str(path)],
        env={}, cwd=canary_dir, capture_output=True, timeout=30,
    )
    assert proc.returncode == 0, f"sh cannot read {path}: {proc.stderr.decode(errors='replace')}"
    assert not any(canary_dir.iterdir()), f"sourcing {path} ran a command: {list(canary_dir.iterdir())}"
    env = dict(item.split("=", 1) for item in proc.stdout.decode().split("\0") if item)
    for shell_own in ("PWD", "OLDPWD", "SHLVL", "_"):
        env.pop(shell_own, None)
    return env


# Every line a trap for a shell `.`, and a corner of systemd's env-file grammar. The
# wrapper's parser must read it exactly as systemd 252 does (tests/test_target_host.py).
TRICKY_ENV_FILE = (
    "# comment $(touch {canary})\n"
    "PLAIN=a:b,c=d\n"
    "  SPACED  =  value with trailing blanks   \n"
    "SINGLE='$(touch {canary}) `x` \\ \"'\n"
    'DOUBLE="a \\"q\\" \\$HOME \\` \\\\ \\n kept"\n'
    "ESCAPED=a\\ b\\$c\n"
    "CONT=\"one\\\ntwo\"\n"
    "# a comment ending in a backslash swallows the next line \\\n"
    "HIDDEN=yes\n"
    "; other comment\n"
    "NOVALUE\n"
    "EMPTY=\n"
    "1BAD=x\n"
    "CTRL=\"a\x01b\"\n"
    "UNICODE=\"Ünï \u2028 x\"\n"
    "LAST=end\n"
)


def tricky_env_meaning(canary: object) -> dict[str, str]:
    return {
        "PLAIN": "a:b,c=d",
        "SPACED": "value with trailing blanks",
        "SINGLE": f"$(touch {canary}) `x` \\ \"",
        "DOUBLE": 'a "q" $HOME ` \\ \\n kept',
        "ESCAPED": "a b$c",
        "CONT": "onetwo",
        "EMPTY": "",
        "UNICODE": "Ünï \u2028 x",
        "CTRL": "a\x01b",  # systemd keeps control characters in values (env_value_is_valid)
        "LAST": "end",
    }


def wrapper_namespace(text: str) -> dict:
    namespace: dict = {"__name__": "airflow_wrapper"}
    exec(compile(text, "/usr/bin/airflow", "exec"), namespace)
    return namespace


# --- airflow.cfg -------------------------------------------------------------------------

def expand_env_var(value: str, env: dict[str, str]) -> str:
    """airflow.configuration.expand_env_var, against a given environment."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        while True:
            expanded = os.path.expanduser(os.path.expandvars(value))
            if expanded == value:
                return expanded
            value = expanded
    finally:
        os.environ.clear()
        os.environ.update(saved)


def airflow_cfg_reads(text: str) -> dict[str, dict[str, str]]:
    """Each option as AirflowConfigParser.get returns it: configparser (strict, %-interpolation)
    then expand_env_var. tests/test_real_readers.py checks this mirror against Airflow itself."""
    parser = configparser.ConfigParser(strict=True)
    parser.read_string(text)
    return {
        section: {option: expand_env_var(parser.get(section, option), CANARY_ENV) for option in parser.options(section)}
        for section in parser.sections()
    }


def airflow_cfg_intent(site: Site) -> dict[str, dict[str, str]]:
    return airflow_cfg_options(site)


# --- tmpfiles.d / sysusers.d ---------------------------------------------------------------

def config_fields(text: str) -> list[list[str]]:
    """Fields of each line of a tmpfiles.d / sysusers.d file (quotes, C escapes, %%)."""
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        rows.append([unspecify(w) for w in unit_words(line)])
    return rows


def tmpfiles_intent(site: Site) -> list[str]:
    p = site.paths
    worker_ccache = ["/run/airflow-worker"] if site.kerberos else []
    return [p.home, p.dags, p.plugins, p.logs, p.security, p.config, p.run, *worker_ccache]


# --- Python and XML --------------------------------------------------------------------------

def ast_shape(text: str) -> str:
    """The syntax tree with every literal replaced by its type: what the code *does*."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            node.value = type(node.value).__name__
    return ast.dump(tree, include_attributes=False)


def py_assignments(text: str) -> dict[str, object]:
    """Module-level NAME = <literal> assignments."""
    out: dict[str, object] = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def xml_shape(text: str) -> list[tuple[str, tuple[str, ...]]]:
    return [(el.tag, tuple(sorted(el.attrib))) for el in ET.fromstring(text.encode()).iter()]
