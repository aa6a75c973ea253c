"""Check airflow.cfg options against Airflow's own schema, never a hand list.

The schema is `airflow/config_templates/config.yml` in the pinned
apache-airflow-core wheel plus the `config:` of every pinned provider
(`provider.yaml`, or the dict returned by `get_provider_info.py`). Wheels come
from the same content-addressed cache the wheelhouse uses; what they declare is
kept as JSON under `~/.cache/airflow-prod/airflow-schema/<wheel sha256>.json`.
"""

from __future__ import annotations

# The wheels are fetched from the index the lock was resolved against (its header's
# `index`), never from a hard-wired PyPI: a build host that reaches only a mirror can
# still check its render. Where the lock gives hashes, the wheel read must be one of them.

import ast
import difflib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from builder.pydeps.blobs import BlobStore, Wanted
from builder.errors import ValidationFailed
from builder.fsutil import sha256_file, write_atomic
from builder.pydeps.lockfile import Lock
from builder.pydeps.index import PYPI, Registry
from builder.resources import cache_dir
from builder.site import Site

CORE = "apache-airflow-core"
PROVIDER_PREFIX = "apache-airflow-providers-"


@dataclass(frozen=True)
class AirflowSchema:
    options: dict[str, frozenset[str]]  # section -> option names
    sources: tuple[str, ...]            # "apache-airflow-core 3.1.4", ...

    def has(self, section: str, option: str) -> bool:
        return option in self.options.get(section, ())


@dataclass(frozen=True)
class Checked:
    count: int
    source: str


def schema_pins(pins: dict[str, str]) -> dict[str, str]:
    """The distributions whose schemas matter: core and every provider."""
    return {
        name: ver for name, ver in sorted(pins.items())
        if name == CORE or name.startswith(PROVIDER_PREFIX)
    }


def load_schema(pins: dict[str, str], index_url: str | None = PYPI,
                hashes: dict[str, tuple[str, ...]] | None = None,
                wheel_dirs: tuple[Path, ...] = ()) -> AirflowSchema:
    """Airflow's schema for these pins: from a wheel already in one of `wheel_dirs` (a
    wheelhouse), else from `index_url`; one of `hashes[name]` when given ("sha256:<hex>"
    as in the lock)."""
    relevant = schema_pins(pins)
    if CORE not in relevant:
        raise ValidationFailed(f"the lock pins no {CORE}: cannot find Airflow's config schema")
    registry = Registry(index_url) if index_url else None
    merged: dict[str, set[str]] = {}
    for name, version in relevant.items():
        locked = (hashes or {}).get(name)
        for section, options in _options_of(name, version, registry, locked, wheel_dirs).items():
            merged.setdefault(section, set()).update(options)
    return AirflowSchema(
        options={s: frozenset(o) for s, o in merged.items()},
        sources=tuple(f"{n} {v}" for n, v in relevant.items()),
    )


def _memo(sha256: str) -> Path:
    # Keyed by the wheel's sha256, not its name and version: what a wheel declares is a
    # function of its bytes, and two indexes may serve different files under one version.
    return cache_dir() / "airflow-schema" / f"{sha256}.json"


def _local_wheel(name: str, version: str, locked: tuple[str, ...] | None,
                 wheel_dirs: tuple[Path, ...]) -> tuple[str, Path] | None:
    """(sha256, path) of the release's wheel in one of `wheel_dirs`, if it is the locked one."""
    for d in wheel_dirs:
        for path in sorted(d.glob("*.whl")) if d.is_dir() else ():
            try:
                dist, ver, _, _ = parse_wheel_filename(path.name)
            except InvalidWheelFilename:
                continue
            if canonicalize_name(dist) == name and str(ver) == version:
                sha = sha256_file(path)
                if not locked or f"sha256:{sha}" in locked:
                    return sha, path
    return None


def _options_of(name: str, version: str, registry: Registry | None,
                locked: tuple[str, ...] | None = None,
                wheel_dirs: tuple[Path, ...] = ()) -> dict[str, list[str]]:
    """Sections and options one distribution declares (cached as JSON per wheel hash)."""
    for h in sorted(locked or ()):  # the lock names the file: no index request needed
        memo = _memo(h.removeprefix("sha256:"))
        if memo.exists():
            return json.loads(memo.read_text())
    local = _local_wheel(name, version, locked, wheel_dirs)
    if local:
        sha, wheel = local
    elif registry is None:
        raise ValidationFailed(
            f"{name} {version}: its locked wheel is not in {', '.join(map(str, wheel_dirs)) or 'a wheelhouse'} "
            "and the lock names no index to fetch it from (no `# index:` header)",
            hint="give the lock `bundle lock` wrote, or the wheelhouse it belongs to",
        )
    else:
        sha, wheel = _fetch_wheel(name, version, registry, locked)
    memo = _memo(sha)
    if memo.exists():
        return json.loads(memo.read_text())
    found = _read_config_schema(wheel)
    write_atomic(memo, json.dumps(found, sort_keys=True))
    return found


def _fetch_wheel(name: str, version: str, registry: Registry,
                 locked: tuple[str, ...] | None = None) -> tuple[str, Path]:
    """(sha256, path) of the release's wheel from the wheelhouse's content-addressed cache
    (verified by sha256; downloaded only when no earlier wheelhouse or check fetched it)."""
    wheels = sorted((f for f in registry.project(name).release(version) if f.is_wheel),
                    key=lambda f: f.filename)
    if locked:
        wheels = [f for f in wheels if f"sha256:{f.sha256}" in locked]
    if not wheels:
        which = "locked wheel" if locked else "wheel"
        raise ValidationFailed(f"{name} {version} has no {which} on {registry.index_url} to read its config schema from")
    dist = wheels[0]
    store = BlobStore()
    store.fetch_all([Wanted(f"{name}=={version}", dist.filename, dist.url, dist.sha256, dist.size)], registry)
    return dist.sha256, store.path(dist.sha256)


def _read_config_schema(wheel: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        config_yml = [n for n in names if n.endswith("config_templates/config.yml")]
        if config_yml:
            return _sections(yaml.safe_load(zf.read(config_yml[0])))
        provider_yaml = [n for n in names if n.endswith("/provider.yaml")]
        if provider_yaml:
            return _sections(yaml.safe_load(zf.read(provider_yaml[0])).get("config") or {})
        info = [n for n in names if n.endswith("/get_provider_info.py")]
        if info:
            return _sections(_provider_info(zf.read(info[0]).decode()).get("config") or {})
    return {}


def _sections(config: dict) -> dict[str, list[str]]:
    return {
        section: sorted((body or {}).get("options", {}) or {})
        for section, body in config.items()
    }


def _provider_info(source: str) -> dict:
    """The dict literal `get_provider_info()` returns, without importing it."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == "get_provider_info":
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.Return) and stmt.value is not None:
                    return ast.literal_eval(stmt.value)
    return {}


def check_options(site: Site, options: dict[str, dict[str, str]], schema: AirflowSchema) -> Checked:
    problems = []
    count = 0
    for section, values in options.items():
        for option in values:
            count += 1
            if schema.has(section, option):
                continue
            where = (
                f"site.toml airflow_cfg.{section}.{option}"
                if option in site.airflow_cfg.get(section, {})
                else f"airflow.cfg [{section}] {option}"
            )
            problems.append(f"{where}: {_unknown(section, option, schema)}")
    source = ", ".join(schema.sources[:2]) + (
        f" and {len(schema.sources) - 2} more providers" if len(schema.sources) > 2 else ""
    )
    if problems:
        raise ValidationFailed(
            f"{len(problems)} option(s) do not exist in Airflow's schema ({source}):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    return Checked(count, source)


def _unknown(section: str, option: str, schema: AirflowSchema) -> str:
    if section not in schema.options:
        close = difflib.get_close_matches(section, list(schema.options), n=1)
        hint = f" (did you mean [{close[0]}]?)" if close else ""
        return f"no section [{section}] in Airflow or its pinned providers{hint}"
    elsewhere = sorted(s for s, opts in schema.options.items() if option in opts)
    if elsewhere:
        return f"[{section}] has no option {option!r}; Airflow has it in [{elsewhere[0]}]"
    close = difflib.get_close_matches(option, list(schema.options[section]), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"[{section}] has no option {option!r}{hint}"


def validate_options(site: Site, options: dict[str, dict[str, str]], pins: dict[str, str],
                     index_url: str = PYPI, hashes: dict[str, tuple[str, ...]] | None = None) -> Checked:
    return check_options(site, options, load_schema(pins, index_url, hashes))


def validate_against_lock(site: Site, options: dict[str, dict[str, str]], lock: Lock,
                          wheel_dir: Path | None = None) -> Checked:
    """Against the locked Airflow, verified by the lock's hashes: read from the wheelhouse
    (`wheel_dir`, or the lock's own directory when it is a wheelhouse's offline lock), else
    fetched from the index the lock was resolved against."""
    pins = {name: pin.version for name, pin in lock.pins.items()}
    hashes = {name: pin.hashes for name, pin in lock.pins.items() if pin.hashes}
    dirs = tuple(dict.fromkeys(d for d in (wheel_dir, Path(lock.path).parent) if d is not None))
    index = lock.header.get("index") or None
    return check_options(site, options, load_schema(pins, index, hashes, dirs))

