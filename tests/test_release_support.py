"""Where the site's Airflow release stands on the index (PEP 592 yanks, PEP 691 JSON): `bundle
check` and `bundle lock` warn when it is yanked or its line gets no more fixes, naming what to
move to; airflow.refuse_unsupported makes that an error. Against a real index on loopback."""

from __future__ import annotations

import copy

import pytest

from builder.pydeps.index import Registry
from builder.pydeps.lockfile import LockError
from builder.pydeps.release import Support, release_support
from builder.site import site_from_data
from support.cli import bundle
from support.pkgindex import YANK_REASON
from support.sites import EXAMPLE, write_toml


def _newer_lines(index) -> None:
    """What the index served in December 2026: 3.1.x ended at 3.1.8, 3.3.2 is current."""
    for version, when in (("3.1.8", "2026-03-01"), ("3.3.1", "2026-08-01"), ("3.3.2", "2026-09-17"),
                          ("3.4.0rc1", "2026-11-01")):
        index.add_wheel("apache-airflow", version, upload_time=f"{when}T00:00:00.000000Z")


@pytest.mark.parametrize("version, yanked, patch, newest, sound, says", [
    ("3.1.4", "wrong RC", "3.1.8", "3.3.2", False, ["is yanked on the index ('wrong RC'): use 3.1.8, the newest "
                                                  "release of 3.1", "Airflow 3.1.x gets no more fixes"]),
    ("3.1.8", None, "3.1.8", "3.3.2", False, ["Airflow 3.1.x gets no more fixes, security fixes included: only the "
                                            "newest line, 3.3.x, does; its newest release is 3.3.2"]),
    ("3.3.1", None, "3.3.2", "3.3.2", True, ["Airflow 3.3.1 is not the newest release of 3.3: 3.3.2 is"]),
    ("3.3.2", None, "3.3.2", "3.3.2", True, []),
])
def test_what_each_standing_says(version, yanked, patch, newest, sound, says):
    support = Support(version, yanked, patch, newest)
    assert support.sound is sound
    notices = support.notices()
    assert len(notices) == len(says) and all(s in n for s, n in zip(says, notices, strict=True)), notices


def test_the_index_knows_yanks_newest_patches_and_lines(airflow_index):
    project = Registry(airflow_index.simple).project("apache-airflow")
    assert release_support(project, "3.1.4") == Support("3.1.4", YANK_REASON, "3.1.5", "3.1.5")
    _newer_lines(airflow_index)
    project = Registry(airflow_index.simple).project("apache-airflow")
    # Prereleases and yanks are never what a site is told to move to.
    assert release_support(project, "3.1.4") == Support("3.1.4", YANK_REASON, "3.1.8", "3.3.2")


def test_bundle_check_warns_and_refuses_when_asked(airflow_index, tmp_path, example_data):
    _newer_lines(airflow_index)
    site = write_toml(tmp_path / "site.toml", example_data)
    proc = bundle("check", "--site", str(site), "--index-url", airflow_index.simple, "--locks-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: apache-airflow 3.1.4 is yanked on the index ({YANK_REASON!r}): use 3.1.8, the newest release of 3.1",
        "warning: Airflow 3.1.x gets no more fixes, security fixes included: only the newest line, 3.3.x, does; "
        "its newest release is 3.3.2",
    ]
    strict = copy.deepcopy(example_data)
    strict["airflow"]["refuse_unsupported"] = True
    site = write_toml(tmp_path / "strict.toml", strict)
    proc = bundle("check", "--site", str(site), "--index-url", airflow_index.simple, "--locks-dir", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{site}: 1 problem" in proc.stderr
    assert "airflow.version = '3.1.4': apache-airflow 3.1.4 is yanked" in proc.stderr
    assert "(refused: airflow.refuse_unsupported = true); set airflow.version = '3.3.2'" in proc.stderr


def test_bundle_check_says_when_it_cannot_ask(tmp_path):
    from e2e.proc import free_port

    proc = bundle("check", "--site", str(EXAMPLE), "--index-url", f"http://127.0.0.1:{free_port()}/simple",
                  "--locks-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "could not ask http://127.0.0.1:" in proc.stderr and "--offline skips asking" in proc.stderr


def test_lock_refuses_an_unsupported_release_when_the_site_asks(airflow_index):
    from builder.pydeps.release import check_release
    from support.pkgindex import site_data

    _newer_lines(airflow_index)
    data = site_data(airflow_index)
    data["airflow"]["refuse_unsupported"] = True
    with pytest.raises(LockError, match=r"airflow.version = '3.1.4': .*Airflow 3.1.x gets no more fixes.*refused"):
        check_release(site_from_data(data), Registry(airflow_index.simple))
    data["airflow"]["refuse_unsupported"] = False
    notices = [m for _, m in check_release(site_from_data(data), Registry(airflow_index.simple)).notices]
    assert any(m.startswith("Airflow 3.1.x gets no more fixes") for m in notices), notices
    assert sum("apache-airflow 3.1.4 is yanked" in m for m in notices) == 1  # said once, by the lock's own words
