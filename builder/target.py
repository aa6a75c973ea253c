"""The target platform: the one module that knows what `[target]` means below the site file.

    glibc          the highest manylinux glibc the OS family has (RHEL 9: 2.34)
    manylinux      the wheel platform tag at that glibc ("manylinux_2_34_x86_64")
    uv_platform    uv's --python-platform ("x86_64-manylinux_2_34")
    wheel_tags     the interpreter's tags, best first, manylinux capped at the glibc
    dist_tag       the RPM release's dist tag ("el9")

Each takes the site's `target` section, so the lock, the wheelhouse and the RPM plan ask
here instead of each keeping its own table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from packaging.tags import Tag, compatible_tags, cpython_tags

if TYPE_CHECKING:
    from builder.site.model import Target

# Highest manylinux glibc per target OS family (RHEL 9: glibc 2.34).
GLIBC = {"el9": (2, 34)}
# The release's dist tag per target OS family.
DIST_TAG = {"el9": "el9"}
# Older manylinux tags (PEP 513/571/599 aliases and below 2.17), after the 2.17..cap range.
_LEGACY_MANYLINUX = ("manylinux2014", "manylinux_2_12", "manylinux2010", "manylinux_2_5", "manylinux1")


def glibc(family: str) -> tuple[int, int]:
    """The highest glibc wheels for `family` may need; el9's for an unknown family."""
    return GLIBC.get(family, GLIBC["el9"])


def manylinux(target: Target) -> str:
    """The wheel platform tag at the target's glibc: manylinux_2_34_x86_64."""
    major, minor = glibc(target.os)
    return f"manylinux_{major}_{minor}_{target.arch}"


def uv_platform(target: Target) -> str:
    """uv's --python-platform for the target: x86_64-manylinux_2_34."""
    major, minor = glibc(target.os)
    return f"{target.arch}-manylinux_{major}_{minor}"


def wheel_tags(target: Target) -> list[Tag]:
    """The target interpreter's tags, best first; manylinux capped at the target's glibc."""
    major, cap = glibc(target.os)
    arch = target.arch
    platforms = [f"manylinux_{major}_{m}_{arch}" for m in range(cap, 16, -1)]
    platforms += [f"{legacy}_{arch}" for legacy in _LEGACY_MANYLINUX]
    py = tuple(int(x) for x in target.python.split(".")[:2])
    interp = f"cp{py[0]}{py[1]}"
    return list(cpython_tags(py, abis=[interp], platforms=platforms)) + list(
        compatible_tags(py, interpreter=interp, platforms=platforms)
    )


def marker_environment(target: Target) -> dict[str, str]:
    """PEP 508 marker values of the target interpreter (no extra): what a Requires-Dist line means there."""
    minor = ".".join(target.python.split(".")[:2])
    return {"python_version": minor, "python_full_version": target.python, "implementation_name": "cpython",
            "implementation_version": target.python, "platform_python_implementation": "CPython",
            "os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
            "platform_machine": target.arch, "platform_release": "", "platform_version": "", "extra": ""}


def dist_tag(family: str) -> str:
    """The RPM release's dist tag for the target OS family."""
    return DIST_TAG[family]
