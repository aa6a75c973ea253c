"""The engine's floors: each package of builder/ imports only the floors below it.

The table is README's "Layout" (and docs/architecture.md): folder, job, what it may
import. Read from the code's own imports (the AST, TYPE_CHECKING blocks included), so a
new import that runs back up fails here, with the file and the line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BUILDER = Path(__file__).resolve().parent.parent / "builder"

BASE = {"errors", "report", "fsutil", "resources", "layout"}
# What each top-level module or package of builder/ may import (besides itself).
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "report": set(),
    "fsutil": set(),
    "resources": {"errors"},
    "layout": set(),
    "run": BASE,
    "site": BASE,
    "target": BASE | {"site"},
    "fingerprint": BASE | {"site"},
    "render": BASE | {"site"},
    "material": BASE | {"site", "render"},
    "pydeps": BASE | {"run", "site", "target"},
    "check": BASE | {"run", "site", "target", "render", "pydeps"},
    "rpm": BASE | {"run", "site", "target", "render", "pydeps"},
    "pipeline": BASE | {"run", "site", "target", "fingerprint", "render", "material", "pydeps", "check", "rpm"},
    "cli": BASE | {"run", "site", "target", "fingerprint", "render", "material", "pydeps", "check", "rpm",
                   "pipeline"},
    "__main__": {"cli"},
    "__init__": set(),
}


def _floor(path: Path) -> str:
    return path.relative_to(BUILDER).with_suffix("").parts[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level builder module) of every import of the engine in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = ([f"builder.{a.name}" for a in node.names] if node.module == "builder"
                     else [node.module])
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(node.lineno, n.split(".")[1]) for n in names if n.startswith("builder.")]
    return found


def test_every_floor_of_the_engine_is_in_the_table():
    floors = {_floor(p) for p in BUILDER.rglob("*.py")}
    assert floors == set(MAY_IMPORT), "add the new floor to README's Layout table and to MAY_IMPORT"


@pytest.mark.parametrize("floor", sorted(MAY_IMPORT))
def test_imports_run_down_the_floors_only(floor):
    files = [p for p in sorted(BUILDER.rglob("*.py")) if _floor(p) == floor]
    wrong = [f"{p.relative_to(BUILDER.parent)}:{line} imports builder.{to}"
             for p in files for line, to in _imports(p)
             if to != floor and to not in MAY_IMPORT[floor]]
    assert not wrong, f"{floor} may import only {sorted(MAY_IMPORT[floor])}:\n" + "\n".join(wrong)


def test_the_check_can_fail(tmp_path):
    """A planted upward import is seen (the AST reader finds `from builder.cli import main`)."""
    planted = tmp_path / "x.py"
    planted.write_text("from builder.cli import main\nimport builder.rpm.plan\nfrom builder import layout\n")
    assert _imports(planted) == [(1, "cli"), (2, "rpm"), (3, "layout")]
