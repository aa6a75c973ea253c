"""How bad an advisory is: the CVSS base score of its vectors, or the database's own word.

OSV gives severity as CVSS vectors (`severity[]`, types CVSS_V2/V3/V4) and some databases
add a word (`database_specific.severity`: GitHub's LOW/MODERATE/HIGH/CRITICAL). A vector
is scored with the `cvss` library (FIRST's equations and, for v4, its MacroVector
table), never read off a number someone wrote beside it. The newest CVSS version a
record has wins: that is the one its database published last.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("none", "low", "medium", "high", "critical")  # in order; "unknown" is outside it
UNKNOWN = "unknown"
FAIL_LEVELS = LEVELS[1:]  # what --fail-on takes

# database_specific.severity words seen in OSV feeds, to our levels.
WORDS = {"none": "none", "low": "low", "moderate": "medium", "medium": "medium", "high": "high",
         "important": "high", "critical": "critical"}
CVSS_TYPES = ("CVSS_V2", "CVSS_V3", "CVSS_V4")


class SeverityError(ValueError):
    """A severity entry that cannot be read (the caller names the file and key)."""


@dataclass(frozen=True)
class Severity:
    level: str                 # one of LEVELS, or UNKNOWN
    score: float | None = None  # CVSS base score
    vector: str = ""           # the CVSS vector it was computed from
    kind: str = ""             # CVSS_V3, CVSS_V4, ... or "database" for a word

    @property
    def rank(self) -> int:
        """Position in LEVELS (-1 for unknown; `meets` decides what unknown means for --fail-on)."""
        return LEVELS.index(self.level) if self.level in LEVELS else -1

    def meets(self, threshold: str) -> bool:
        """Whether a finding of this severity fails `--fail-on threshold`.

        An unknown severity fails every threshold: the feed does not say it is below it."""
        return self.level == UNKNOWN or self.rank >= LEVELS.index(threshold)

    def text(self) -> str:
        if self.score is not None:
            return f"{self.level} {self.score:.1f} ({self.kind.replace('_V', ' v')})"
        return self.level if self.level == UNKNOWN else f"{self.level} (database)"

    def as_json(self) -> dict[str, object]:
        return {"level": self.level, "score": self.score, "vector": self.vector or None, "type": self.kind or None}


def level_of(score: float, version: int) -> str:
    """The qualitative rating of a base score (v3/v4: FIRST's table; v2: NVD's, no critical)."""
    if version == 2:
        return "low" if score < 4.0 else "medium" if score < 7.0 else "high"
    if score == 0.0:
        return "none"
    return "low" if score < 4.0 else "medium" if score < 7.0 else "high" if score < 9.0 else "critical"


def score_vector(kind: str, vector: str) -> Severity:
    """The base score and level of one CVSS vector; SeverityError when it is not one."""
    from cvss import CVSS2, CVSS3, CVSS4, CVSSError

    want = {"CVSS_V2": None, "CVSS_V3": ("CVSS:3.0/", "CVSS:3.1/"), "CVSS_V4": ("CVSS:4.0/",)}[kind]
    if want and not vector.startswith(want):
        raise SeverityError(f"{kind} vector {vector!r} does not start with {' or '.join(want)}")
    try:
        if kind == "CVSS_V2":
            score = float(CVSS2(vector).base_score)
        elif kind == "CVSS_V3":
            score = float(CVSS3(vector).base_score)
        else:
            score = float(CVSS4(vector).base_score)
    except CVSSError as exc:
        raise SeverityError(f"{kind} vector {vector!r} is not valid: {exc}") from None
    return Severity(level_of(score, int(kind[-1])), score, vector, kind)


def from_word(word: str) -> Severity:
    level = WORDS.get(word.strip().lower())
    if level is None:
        raise SeverityError(f"unknown severity {word!r} (known: {', '.join(sorted(WORDS))})")
    return Severity(level, kind="database")


def worst(severities: list[Severity]) -> Severity:
    """The most severe of several (unknown only when all are unknown)."""
    known = [s for s in severities if s.level != UNKNOWN]
    if not known:
        return Severity(UNKNOWN)
    return max(known, key=lambda s: (s.rank, s.score or 0.0))
