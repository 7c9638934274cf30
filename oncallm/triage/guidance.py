"""The runbook step: the team's own guidance for this alert, attached as evidence.

After analysis, the alert's name and labels and what the analyzers found pick the best
sections of the configured runbook set (and of the alert's ``runbook_url`` when its host
is allowed). Each becomes a ``runbook`` evidence item the page shows and the reasoner
reads; a runbook URL that cannot be fetched is a gap, never a failed triage. Runbooks are
guidance, not evidence about the cluster: they are never cited as a finding's proof.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oncallm.config_runbooks import RunbooksSettings
from oncallm.llm.prompts import RunbookExcerpt
from oncallm.sources.runbook_fetch import RunbookFetcher
from oncallm.sources.runbooks import RunbookLibrary, RunbookMatch
from oncallm.triage.context import AlertInput, Gap
from oncallm.triage.evidence import EvidenceItem
from oncallm.triage.taxonomy import Category


@dataclass(frozen=True)
class Guidance:
    matches: tuple[RunbookMatch, ...]
    gaps: tuple[Gap, ...]

    def evidence(self, directories: Sequence[Path]) -> list[EvidenceItem]:
        return [runbook_evidence(m, directories) for m in self.matches]


def _short_source(source: str, directories: Sequence[Path]) -> str:
    """A file source relative to its runbook directory: ids must not hold host paths."""
    for directory in directories:
        prefix = str(directory.resolve()) + "/"
        if source.startswith(prefix):
            return source[len(prefix) :]
    return source


def runbook_evidence(match: RunbookMatch, directories: Sequence[Path]) -> EvidenceItem:
    short = _short_source(match.source, directories)
    return EvidenceItem(
        f"runbook:{short}",
        "runbook",
        None,
        match.excerpt,
        f"runbook “{match.title}” ({short})",
    )


def search_text(result: Mapping[str, Any]) -> str:
    """What the analyzers found, in words a runbook uses: categories and summaries."""
    parts: list[str] = []
    for finding in [result.get("root_cause"), *(result.get("findings") or [])[:3]]:
        if finding and finding.get("category") not in (None, Category.Unknown.value):
            parts += [finding["category"], finding.get("summary", "")]
    return " ".join(parts)


class RunbookGuide:
    """Finds runbook guidance for one alert; one per process (the index is shared)."""

    def __init__(self, settings: RunbooksSettings) -> None:
        self.settings = settings
        self.directories = settings.directories()
        self.library = RunbookLibrary(
            self.directories,
            categories=[c.value for c in Category],
            recheck_seconds=settings.recheck_seconds,
        )
        self.fetcher = (
            RunbookFetcher(
                settings.allowed_hosts,
                timeout_seconds=settings.fetch_timeout_seconds,
                max_bytes=settings.max_bytes,
                cache_ttl_seconds=settings.cache_ttl_seconds,
            )
            if settings.allowed_hosts
            else None
        )

    async def find(self, alert: AlertInput, result: Mapping[str, Any]) -> Guidance:
        text = search_text(result)
        limit = self.settings.max_excerpts
        # The index is SQLite in memory: fast, but off the event loop all the same.
        matches = await asyncio.to_thread(
            self.library.search, alert.alertname, dict(alert.labels), text, limit
        )
        gaps: list[Gap] = []
        url = alert.annotations.get("runbook_url")
        if url and self.fetcher is not None:
            outcome = await self.fetcher.fetch(url, text)
            if outcome.match is not None:
                matches = [outcome.match, *matches][:limit]
            elif outcome.gap:
                gaps.append(Gap(f"runbook {url}", outcome.gap))
        return Guidance(tuple(matches), tuple(gaps))

    async def attach(self, alert: AlertInput, result: dict[str, Any]) -> list[RunbookExcerpt]:
        """Add the guidance for ``alert`` to ``result`` (evidence, gaps) in place; the
        excerpts, with their evidence ids, are what the reasoner reads."""
        guidance = await self.find(alert, result)
        excerpts = []
        for match, item in zip(guidance.matches, guidance.evidence(self.directories), strict=True):
            result["evidence"].append(item.as_dict())
            excerpts.append(RunbookExcerpt(match.title, item.id, item.excerpt))
        result["gaps"].extend(g.as_dict() for g in guidance.gaps)
        return excerpts

    async def aclose(self) -> None:
        self.library.close()
        if self.fetcher is not None:
            await self.fetcher.aclose()
