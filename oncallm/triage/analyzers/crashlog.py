"""Which line of a crashed container's log says why it died.

A person reading a crash log skips the banner and the stack frames and quotes one line:
the panic, the uncaught exception, else the last line logged at error level. Many tools
print a generic wrapper first ("Validate failed: Migrations have failed validation",
"Application run failed") and the reason on the lines right after it (Flyway's "Migration
checksum mismatch for migration version 5.11.3", Java's "Caused by: ..."): quoting the
wrapper tells the reader nothing, so the reason is preferred when it follows closely.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# What a crash says about itself, most telling first: panics and uncaught exceptions, then
# exception lines (``TypeError: ...``), then lines logged at error level.
_HEADLINES = (
    re.compile(r"\bPANIC\b"),  # PostgreSQL's most severe level, above FATAL
    re.compile(
        r"^\s*(?:panic:|fatal error:|Exception in thread|Uncaught\b|Unhandled\b)|"
        r"caught signal|segmentation fault|core dumped",
        re.I,
    ),
    re.compile(r"^\s*(?:[\w$]+\.)*[A-Za-z_$]*(?:Error|Exception)\b(?::|\s*$)"),
    re.compile(
        r"\b(?:FATAL|CRITICAL|ERROR)\b|\"level\":\s*(?:\"(?:error|fatal)\"|50|60)\b|"
        r"level=(?:error|fatal)",
        re.I,
    ),
)
# Lines around a crash that say nothing about it: stack frames, carets, npm's banner.
_NOISE = re.compile(r"^\s*(?:at |\^|\.\.\.|npm (?:notice|ERR! A complete log)|triggerUncaught)")

# Words that name what is wrong rather than that something is: a mismatch, a conflict, an
# object that is missing or refused, or a quoted name.
_SPECIFIC = re.compile(
    r"mismatch|checksum|conflict|duplicate|already exists|does not exist|doesn't exist|"
    r"not found|no such|missing|unknown|undefined|not resolved|invalid|incompatible|"
    r"violat|corrupt|denied|refused|unreachable|timed out|timeout|permission|"
    r"^\s*Caused by:|[\"'`][^\"'`\s][^\"'`]*[\"'`]",
    re.I,
)
# How far after a generic wrapper its reason may be printed.
_REASON_WINDOW = 4


def is_specific(line: str) -> bool:
    """The line names what is wrong, not only that something failed."""
    return bool(_SPECIFIC.search(line))


def headline_at(lines: Sequence[str]) -> int | None:
    """Where the line that best says why a process died is."""
    for pattern in _HEADLINES:
        for index in range(len(lines) - 1, -1, -1):
            if pattern.search(lines[index]) and not _NOISE.search(lines[index]):
                return index
    return None


def reason_at(lines: Sequence[str], at: int) -> int:
    """The line that says *why*, given the headline at ``at``: the headline itself when it
    names something specific, else the first specific line printed right after it."""
    if is_specific(lines[at]):
        return at
    for index in range(at + 1, min(len(lines), at + 1 + _REASON_WINDOW)):
        line = lines[index]
        if line.strip() and not _NOISE.search(line) and is_specific(line):
            return index
    return at
