"""The analyze step: run every analyzer over the context, rank, and recommend.

Analyzers are independent rules; one that raises must not sink the triage, so its error
becomes a gap (and a log line) and the others' findings stand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import structlog

from oncallm.triage.analyzers import Analyzer
from oncallm.triage.context import Gap, TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.rank import Ranking
from oncallm.triage.recommendations import Recommendation

log = structlog.get_logger("oncallm.triage")

# More steps than this bury the first one; the findings list keeps the rest.
MAX_RECOMMENDATIONS = 8


@dataclass(frozen=True)
class Analysis:
    findings: tuple[Finding, ...]
    ledger: EvidenceLedger
    gaps: tuple[Gap, ...]


def run_analyzers(ctx: TriageContext, analyzers: Sequence[Analyzer]) -> Analysis:
    ledger = EvidenceLedger(ctx.source_name)
    findings: list[Finding] = []
    gaps: list[Gap] = []
    for analyzer in analyzers:
        try:
            for finding in analyzer.analyze(ctx, ledger):
                missing = [e for e in finding.evidence if e not in ledger]
                if missing:
                    raise ValueError(f"finding cites evidence never recorded: {missing}")
                findings.append(
                    finding if finding.analyzer else replace(finding, analyzer=analyzer.name)
                )
        except Exception as exc:
            log.exception("analyzer failed", analyzer=analyzer.name)
            gaps.append(Gap(f"analyzer {analyzer.name}", f"{type(exc).__name__}: {exc}"))
    return Analysis(tuple(findings), ledger, tuple(gaps))


def recommend(
    ctx: TriageContext, ranking: Ranking, analyzers: Sequence[Analyzer]
) -> tuple[list[Recommendation], list[Gap]]:
    """Recommendations for the root cause first, then for the other findings by rank."""
    by_name = {a.name: a for a in analyzers}
    seen: set[str] = set()
    result: list[Recommendation] = []
    gaps: list[Gap] = []
    victims = {id(f) for f in ranking.findings[1 : 1 + ranking.symptoms]}
    root_titles: set[str] = set()
    for finding in ranking.findings:
        analyzer = by_name.get(finding.analyzer)
        if analyzer is None:
            continue
        try:
            recommendations = analyzer.recommend(finding, ctx)
        except Exception as exc:
            log.exception("recommendation failed", analyzer=analyzer.name)
            gaps.append(Gap(f"recommendations of {analyzer.name}", f"{type(exc).__name__}: {exc}"))
            continue
        if finding is ranking.root:
            root_titles = {r.title for r in recommendations}
        for item in recommendations:
            # A victim of the root cause gets its checks, never its own fixes: rolling back
            # checkout does not bring back the database it cannot reach.
            if id(finding) in victims and item.risk != "low":
                continue
            if item.title not in seen:
                seen.add(item.title)
                result.append(item)
    # Root cause's steps first, then by confidence; stable within equal confidence.
    result.sort(key=lambda r: (r.title not in root_titles, -r.confidence))
    return result[:MAX_RECOMMENDATIONS], gaps
