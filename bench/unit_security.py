#!/usr/bin/env python3
"""Measure `systemd-analyze security --offline=yes` of every rendered unit.

Usage: python bench/unit_security.py [SITE]   (default: examples/site.toml)
Prints a Markdown table; docs/unit-security.md holds the last recorded run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from builder.render import RenderedFile, render_site  # noqa: E402
from builder.site import load_site  # noqa: E402
from builder.check.units import security_scores  # noqa: E402


def main() -> None:
    site_path = sys.argv[1] if len(sys.argv) > 1 else str(REPO / "examples" / "site.toml")
    files = render_site(load_site(site_path)).files
    guide = RenderedFile("/usr/lib/systemd/system/guide-scheduler.service",
                         (REPO / "bench" / "data" / "guide-scheduler.service").read_text())
    version = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"Measured with {version} on {site_path}\n")
    print("| unit | exposure | verdict |")
    print("|---|---:|---|")
    for score in security_scores(files) + security_scores([guide]):
        print(f"| {score.unit} | {score.exposure:.1f} | {score.verdict} |")


if __name__ == "__main__":
    main()
