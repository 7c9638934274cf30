"""Runbook retrieval: which sections of the team's runbooks speak to this alert.

A runbook set is one or more directories of Markdown runbooks (format in
``runbook_parse``). :class:`RunbookLibrary` parses them, indexes every ``##`` section in
an in-memory SQLite FTS5 table (BM25 ranking, Porter stemming) and answers
:meth:`RunbookLibrary.search`:

1. runbooks written *for* the alert (its alertname listed, its matchers matching the
   labels) come first — their sections most relevant to the finding text, or their first
   sections when nothing in the text helps;
2. then sections of other runbooks that match the finding text well enough. A floor on
   relevance keeps an unrelated alert from dragging in whatever shares a few words: a
   minimum BM25 score, at least two distinct terms, and one of them in the section's
   heading or in a taxonomy category the section names.

The set is re-read when the files change (their paths, mtimes and sizes, looked at no more
often than ``recheck_seconds``), so a team can edit runbooks without a restart. Files that
cannot be parsed are skipped and listed by :meth:`RunbookLibrary.problems`.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from oncallm.sources.runbook_parse import (
    LabelMatcher,
    Runbook,
    RunbookProblem,
    RunbookSection,
    excerpt,
    parse_matcher,
    parse_matchers,
    parse_runbook,
    slugify,
)

__all__ = [
    "LabelMatcher",
    "Runbook",
    "RunbookLibrary",
    "RunbookMatch",
    "RunbookProblem",
    "RunbookSection",
    "parse_matcher",
    "parse_matchers",
    "query_terms",
    "slugify",
]

# Below these a cross-runbook text hit is noise: one shared common word is not relevance.
TEXT_MIN_SCORE = 4.0
TEXT_MIN_TERMS = 2

# Column weights for bm25(): a heading or category naming the term says more than a body.
_WEIGHTS = (2.0, 4.0, 1.0, 3.0)  # title, heading, body, tags

# Words that occur in nearly every triage text and runbook; matching them proves nothing.
_COMMON_WORDS = """a an and are as at be been but by can could did do does for from had has have how
    if in into is it its may might no not of on or so than that the their then there these
    this to was were what when where which while who why will with would you your
    pod pods container containers namespace alert alerts kubernetes k8s kube cluster
    firing resolved warning critical info severity unknown"""
_STOPWORDS = frozenset(_COMMON_WORDS.split())


@dataclass(frozen=True)
class RunbookMatch:
    """One runbook section attached to a triage as evidence."""

    title: str
    source: str  # file path or URL, with "#anchor" of the section
    excerpt: str  # Markdown, whole lines, at most ~1,200 characters
    score: float  # BM25 relevance (higher is better); 0 when chosen by position only
    why: Literal["alertname", "text", "url"]
    heading: str = ""
    categories: tuple[str, ...] = ()


def _split_camel(word: str) -> str:
    # "OOMKilled" -> "OOM Killed", "CPUThrottling" -> "CPU Throttling": category names and
    # alert names then match the words a runbook uses.
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", word)


def query_terms(text: str, limit: int = 32) -> list[str]:
    """Distinct lower-case search terms of ``text``, common words dropped."""
    words = re.findall(r"[A-Za-z0-9]+", text)
    expanded = [w for word in words for w in (word, *_split_camel(word).split())]
    terms: list[str] = []
    for word in expanded:
        term = word.lower()
        if len(term) > 1 and term not in _STOPWORDS and not term.isdigit() and term not in terms:
            terms.append(term)
    return terms[:limit]


def _tags(runbook: Runbook, section: RunbookSection) -> str:
    # Only the categories this section names: tagging every section with all of the
    # runbook's categories would make "Safe fixes" match every cause equally.
    named = (c for c in runbook.categories if c.lower() in section.text.lower())
    return " ".join(f"{c} {_split_camel(c)}" for c in named)


@dataclass(frozen=True)
class _Row:
    runbook: Runbook
    section: RunbookSection
    position: int  # index of the section in its runbook


class RunbookLibrary:
    """The runbooks of one or more directories, indexed for :meth:`search`."""

    def __init__(
        self,
        directories: Path | Sequence[Path],
        *,
        categories: Collection[str] | None = None,
        recheck_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dirs = [directories] if isinstance(directories, Path) else list(directories)
        self._categories = categories
        self._recheck = recheck_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._checked_at = float("-inf")
        self._rows: list[_Row] = []
        self._runbooks: list[Runbook] = []
        self._problems: list[RunbookProblem] = []
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self.refresh(force=True)

    @property
    def directories(self) -> list[Path]:
        return list(self._dirs)

    def runbooks(self) -> list[Runbook]:
        self.refresh()
        return list(self._runbooks)

    def problems(self) -> list[RunbookProblem]:
        """Files that could not be used, or were used with something wrong, by file:line."""
        self.refresh()
        return list(self._problems)

    def close(self) -> None:
        self._db.close()

    # --- indexing -------------------------------------------------------------------

    def _files(self) -> Iterator[Path]:
        for directory in self._dirs:
            if not directory.is_dir():
                continue
            for path in sorted(directory.rglob("*.md")):
                relative = path.relative_to(directory).parts
                # README files describe the set, and hidden directories are VCS metadata.
                if path.name.lower() == "readme.md" or any(p.startswith(".") for p in relative):
                    continue
                yield path

    def _current_stamp(self) -> tuple[tuple[str, int, int], ...]:
        stamp = []
        for path in self._files():
            try:
                info = path.stat()
            except OSError:
                continue
            stamp.append((str(path), info.st_mtime_ns, info.st_size))
        return tuple(stamp)

    def refresh(self, force: bool = False) -> bool:
        """Re-read the set if its files changed; returns whether it was re-indexed."""
        with self._lock:
            now = self._clock()
            if not force and now - self._checked_at < self._recheck:
                return False
            self._checked_at = now
            stamp = self._current_stamp()
            if not force and stamp == self._stamp:
                return False
            self._stamp = stamp
            self._load()
            return True

    def _load(self) -> None:
        runbooks: list[Runbook] = []
        problems: list[RunbookProblem] = []
        for directory in self._dirs:
            if not directory.is_dir():
                problems.append(RunbookProblem(directory, 0, "runbook directory not found"))
        for path in self._files():
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(RunbookProblem(path, 0, f"cannot read: {exc}"))
                continue
            runbook, found = parse_runbook(path, text, self._categories)
            problems += found
            if runbook is not None:
                runbooks.append(runbook)
        problems += _duplicates(runbooks)

        db = self._db
        db.execute("DROP TABLE IF EXISTS sections")
        db.execute(
            "CREATE VIRTUAL TABLE sections USING fts5("
            "title, heading, body, tags, tokenize='porter unicode61')"
        )
        rows = []
        for runbook in runbooks:
            for position, section in enumerate(runbook.sections):
                rows.append(_Row(runbook, section, position))
        db.executemany(
            "INSERT INTO sections(rowid, title, heading, body, tags) VALUES (?, ?, ?, ?, ?)",
            [
                (i, r.runbook.title, r.section.heading, r.section.text, _tags(r.runbook, r.section))
                for i, r in enumerate(rows)
            ],
        )
        db.commit()
        self._rows, self._runbooks, self._problems = rows, runbooks, problems

    # --- searching ------------------------------------------------------------------

    def _ranked(self, terms: list[str]) -> dict[int, float]:
        """rowid -> BM25 relevance (positive, higher is better) for any of ``terms``."""
        if not terms:
            return {}
        query = " OR ".join(f'"{t}"' for t in terms)
        cursor = self._db.execute(
            "SELECT rowid, bm25(sections, ?, ?, ?, ?) FROM sections WHERE sections MATCH ?",
            (*_WEIGHTS, query),
        )
        return {int(rowid): -float(rank) for rowid, rank in cursor}

    def _coverage(self, terms: list[str], rowids: Collection[int]) -> dict[int, int]:
        """How many distinct terms each row contains (stemmed, as the index sees them)."""
        counts = dict.fromkeys(rowids, 0)
        for term in terms:
            for (rowid,) in self._db.execute(
                "SELECT rowid FROM sections WHERE sections MATCH ?", (f'"{term}"',)
            ):
                if rowid in counts:
                    counts[rowid] += 1
        return counts

    def _about(self, terms: list[str]) -> set[int]:
        """Rows whose heading or category tags contain a term: sections *about* the text,
        not ones that merely share a few ordinary words with it."""
        if not terms:
            return set()
        query = "{heading tags} : (" + " OR ".join(f'"{t}"' for t in terms) + ")"
        return {
            int(r)
            for (r,) in self._db.execute(
                "SELECT rowid FROM sections WHERE sections MATCH ?", (query,)
            )
        }

    def _match(self, row: _Row, score: float, why: Literal["alertname", "text"]) -> RunbookMatch:
        return RunbookMatch(
            title=row.runbook.title,
            source=f"{row.runbook.path}#{row.section.anchor}",
            excerpt=excerpt(row.section.text),
            score=round(score, 3),
            why=why,
            heading=row.section.heading,
            categories=row.runbook.categories,
        )

    def search(
        self, alertname: str, labels: Mapping[str, str], text: str = "", limit: int = 3
    ) -> list[RunbookMatch]:
        """The best ``limit`` runbook sections for an alert: its own runbooks first, then
        other runbooks' sections that match ``text`` (finding summaries, category names)."""
        if limit <= 0:
            return []
        self.refresh()
        with self._lock:
            terms = query_terms(text)
            ranked = self._ranked(terms)
            rows = self._rows

            # Runbooks for this alert; one with more matchers is more specific, so first.
            own = [rb for rb in self._runbooks if rb.applies_to(alertname, labels)]
            own.sort(key=lambda rb: -len(rb.matchers))
            per_runbook: list[list[RunbookMatch]] = []
            for runbook in own:
                ids = [i for i, r in enumerate(rows) if r.runbook is runbook]
                hits = sorted((i for i in ids if i in ranked), key=lambda i: -ranked[i])
                rest = [i for i in ids if i not in ranked]
                per_runbook.append(
                    [self._match(rows[i], ranked[i], "alertname") for i in hits]
                    + [self._match(rows[i], 0.0, "alertname") for i in rest]
                )
            # Round-robin, so a team's own runbook and the shipped one both get a say.
            primary = [m for group in _zip_longest(per_runbook) for m in group if m is not None]

            own_ids = {id(rb) for rb in own}
            candidates = [
                i
                for i, score in ranked.items()
                if id(rows[i].runbook) not in own_ids
                and rows[i].runbook.labels_match(labels)
                and score >= TEXT_MIN_SCORE
            ]
            coverage = self._coverage(terms, candidates)
            about = self._about(terms)
            needed = min(TEXT_MIN_TERMS, len(terms))
            secondary = [
                self._match(rows[i], ranked[i], "text")
                for i in sorted(candidates, key=lambda i: -ranked[i])
                if coverage[i] >= needed and i in about
            ]

        # Keep one place for the best cross-runbook hit: it is often the root cause's
        # runbook (an OOM section for a NotReady alert).
        room = limit - 1 if secondary and limit > 1 else limit
        chosen = primary[:room]
        return chosen + secondary[: limit - len(chosen)]


def _zip_longest(groups: list[list[RunbookMatch]]) -> Iterator[list[RunbookMatch | None]]:
    for index in range(max((len(g) for g in groups), default=0)):
        yield [g[index] if index < len(g) else None for g in groups]


def _duplicates(runbooks: list[Runbook]) -> list[RunbookProblem]:
    """Two files for the same alert and the same matchers: which one wins is arbitrary."""
    seen: dict[tuple[str, tuple[str, ...]], Path] = {}
    problems = []
    for runbook in runbooks:
        key_matchers = tuple(sorted(str(m) for m in runbook.matchers))
        for name in runbook.alertnames:
            first = seen.setdefault((name, key_matchers), runbook.path)
            if first != runbook.path:
                problems.append(
                    RunbookProblem(
                        runbook.path,
                        runbook.alertnames_line,
                        f"{name} with the same matchers is already covered by {first}",
                    )
                )
    return problems
