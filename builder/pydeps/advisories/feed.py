"""An advisory feed: the PyPI records of some OSV sources, by package; and the imported one.

`bundle advisories import` reads the admin's files once, checks every record (a broken
one is found when the feed is carried in, not in the middle of a build), drops withdrawn
records and other ecosystems, and stores the rest one file per package under the feed
directory ($AIRFLOW_PROD_ADVISORIES, else <cache>/advisories) with feed.json, the record
of what it was made from (each file's sha256, when, the newest record's `modified`).
Every later `bundle audit` and `bundle build` reads only the files of the packages the
lock pins. An import replaces the feed as a whole, never half.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from builder.pydeps.advisories.osv import PYPI, Advisory, OSVError, parse
from builder.pydeps.advisories.sources import Source, documents
from builder.report import Notify, emit
from builder.resources import cache_dir

FORMAT = 1
INFO = "feed.json"
PACKAGES = "pypi"


@dataclass(frozen=True)
class FeedInfo:
    """What a feed was made from, for every report that uses it."""

    sources: tuple[Source, ...]
    records: int                 # PyPI records kept
    withdrawn: int               # withdrawn records dropped
    other_ecosystems: int        # records with no PyPI package, dropped
    skipped: tuple[str, ...]     # unreadable records left out (import --lenient)
    newest_modified: str         # the newest record's `modified`: how current the feed is
    imported: str = ""           # when `bundle advisories import` stored it ("" when read directly)

    def describe(self) -> str:
        names = ", ".join(f"{Path(s.path).name} ({s.kind}, {s.files} files, sha256 {s.sha256[:12]})"
                          for s in self.sources)
        when = f"imported {self.imported}, " if self.imported else ""
        return (f"{names}: {self.records} PyPI records, {when}newest record modified "
                f"{self.newest_modified or 'unknown'}")

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Feed:
    info: FeedInfo
    by_package: dict[str, list[Advisory]] = field(default_factory=dict)

    def advisories(self, name: str) -> list[Advisory]:
        return self.by_package.get(name, [])


def default_dir() -> Path:
    """Where the imported feed lives: $AIRFLOW_PROD_ADVISORIES, else <cache>/advisories."""
    override = os.environ.get("AIRFLOW_PROD_ADVISORIES")
    return Path(override) if override else cache_dir() / "advisories"


def read_sources(paths: Iterable[Path], lenient: bool = False, notify: Notify = emit) -> tuple[Feed, dict[str, object]]:
    """The feed in the given files, and its raw PyPI records by id (what an import stores).

    A record that is not OSV fails the whole read (OSVError naming file and key), unless
    `lenient`: then it is left out with a warning, and the report lists it."""
    sources: list[Source] = []
    kept: dict[str, Advisory] = {}
    raw: dict[str, object] = {}
    withdrawn = other = 0
    skipped: list[str] = []
    for path in paths:
        source, docs = documents(Path(path))
        notify("info", f"reading {source.path} ({source.kind}, {source.files} files)")
        sources.append(source)
        for where, data in docs:
            try:
                advisory = parse(data, where)
            except OSVError as exc:
                if not lenient:
                    raise
                notify("warn", f"left out: {exc.message}")
                skipped.append(exc.message)
                continue
            if advisory.withdrawn:
                withdrawn += 1
            elif not any(a.ecosystem == PYPI for a in advisory.affected):
                other += 1
            elif advisory.id not in kept or kept[advisory.id].modified <= advisory.modified:
                kept[advisory.id], raw[advisory.id] = advisory, data
    feed = _feed(kept.values(), FeedInfo(
        tuple(sources), len(kept), withdrawn, other, tuple(skipped),
        max((a.modified for a in kept.values()), default="")))
    return feed, raw


def _feed(advisories: Iterable[Advisory], info: FeedInfo) -> Feed:
    feed = Feed(info)
    for advisory in sorted(advisories, key=lambda a: a.id):
        for name in sorted({a.name for a in advisory.affected if a.ecosystem == PYPI}):
            feed.by_package.setdefault(name, []).append(advisory)
    return feed


def import_feed(paths: list[Path], directory: Path | None = None, lenient: bool = False,
                notify: Notify = emit) -> FeedInfo:
    """Read, check and store the feed in `directory` (default_dir()), replacing the last one."""
    directory = directory or default_dir()
    feed, raw = read_sources(paths, lenient, notify)
    info = replace(feed.info, imported=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    new = directory.with_name(f".{directory.name}.new-{os.getpid()}")
    shutil.rmtree(new, ignore_errors=True)
    (new / PACKAGES).mkdir(parents=True)
    for name, advisories in feed.by_package.items():
        records = [{"source": a.source, "record": raw[a.id]} for a in advisories]
        (new / PACKAGES / f"{name}.json").write_text(json.dumps(records, sort_keys=True) + "\n")
    (new / INFO).write_text(json.dumps({"format": FORMAT, **info.as_json()}, indent=1, sort_keys=True) + "\n")
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    if directory.exists():
        os.replace(directory, old)
    os.replace(new, directory)
    shutil.rmtree(old, ignore_errors=True)
    return info


def imported_info(directory: Path | None = None) -> FeedInfo | None:
    """What the imported feed was made from; None when nothing was imported."""
    path = (directory or default_dir()) / INFO
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, this bundle reads {FORMAT}")
        sources = tuple(Source(**s) for s in data["sources"])
        return FeedInfo(sources=sources, records=data["records"], withdrawn=data["withdrawn"],
                        other_ecosystems=data["other_ecosystems"], skipped=tuple(data["skipped"]),
                        newest_modified=data["newest_modified"], imported=data["imported"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OSVError(f"{path}: the imported feed's record cannot be read ({exc})",
                       hint="import the feed again: bundle advisories import PATH") from None


def load_imported(names: Iterable[str], directory: Path | None = None) -> Feed | None:
    """The imported feed's records for the packages `names`; None when nothing was imported."""
    directory = directory or default_dir()
    info = imported_info(directory)
    if info is None:
        return None
    advisories = {}
    for name in sorted(set(names)):
        path = directory / PACKAGES / f"{name}.json"
        if not path.is_file():
            continue
        try:
            stored = json.loads(path.read_text())
            for item in stored:
                advisories[item["record"]["id"]] = parse(item["record"], item["source"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise OSVError(f"{path}: part of the imported feed cannot be read ({exc})",
                           hint="import the feed again: bundle advisories import PATH") from None
    return _feed(advisories.values(), info)
