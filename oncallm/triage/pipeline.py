"""The triage pipeline: one alert in, one triage result (DESIGN.md §4.4) out.

targets → gather → analyze (analyzers, then causal ranking) → recommend. Each step takes
the previous step's value and returns a new one; the pipeline times every step, reports
progress so the UI can show where a triage is, and collects gaps instead of failing: a
cluster that cannot be reached yields an honest ``Unknown`` with the reason, not an error.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from oncallm.config import Settings, TriageSettings
from oncallm.sources.base import ClusterSource, SourceError
from oncallm.triage.analyze import recommend, run_analyzers
from oncallm.triage.analyzers import Analyzer, registered
from oncallm.triage.context import AlertInput, Gap
from oncallm.triage.gather import GatherLimits, gather
from oncallm.triage.rank import rank
from oncallm.triage.report import RESULT_SCHEMA, build_result
from oncallm.triage.targets import AlertTargets, resolve_targets

__all__ = ["RESULT_SCHEMA", "AlertInput", "PipelineOutput", "SourceCatalog", "TriagePipeline"]

Progress = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class PipelineOutput:
    targets: AlertTargets
    result: dict[str, Any]


class SourceCatalog(Protocol):
    """Picks the cluster source for an alert's ``cluster`` label."""

    def source_for(self, cluster: str | None) -> ClusterSource: ...

    async def aclose(self) -> None: ...


async def _no_progress(_step: str) -> None:
    return None


def limits_from(settings: TriageSettings) -> GatherLimits:
    return GatherLimits(
        concurrency=settings.gather_concurrency,
        max_pods=settings.max_pods,
        tail_lines=settings.log_tail_lines,
        limit_bytes=settings.log_limit_bytes,
        stale_after=timedelta(minutes=settings.stale_event_minutes),
    )


class TriagePipeline:
    def __init__(
        self,
        sources: SourceCatalog,
        settings: TriageSettings,
        analyzers: Sequence[Analyzer] | None = None,
    ) -> None:
        self.sources = sources
        self.settings = settings
        self.limits = limits_from(settings)
        self.analyzers = tuple(analyzers) if analyzers is not None else registered()

    @classmethod
    def from_settings(cls, settings: Settings) -> TriagePipeline:
        from oncallm.sources.clusters import ClusterSources

        return cls(ClusterSources(settings.kubernetes), settings.triage)

    async def aclose(self) -> None:
        await self.sources.aclose()

    async def run(self, alert: AlertInput, progress: Progress = _no_progress) -> PipelineOutput:
        started = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(step: str, since: float) -> float:
            now = time.perf_counter()
            timings[step] = round((now - since) * 1000, 3)
            return now

        await progress("targets")
        targets = resolve_targets(alert.labels)
        mark = lap("targets", started)

        await progress("gather")
        gaps: list[Gap] = []
        try:
            source = self.sources.source_for(targets.cluster)
        except SourceError as exc:
            cluster = targets.cluster or "the default cluster"
            gaps.append(Gap(f"cluster {cluster}", exc.detail))
            mark = lap("gather", mark)
            timings["total"] = round((time.perf_counter() - started) * 1000, 3)
            result = build_result(
                alert=alert, targets=targets, ctx=None, analysis=None, ranking=None,
                recommendations=[], gaps=gaps, timings=timings,
            )  # fmt: skip
            return PipelineOutput(targets, result)
        source_name = "snapshot" if type(source).__name__ == "SnapshotSource" else "kubernetes"
        ctx = await gather(source, alert, targets, self.limits, source_name)
        gaps.extend(ctx.gaps)
        mark = lap("gather", mark)

        await progress("analyze")
        analysis = run_analyzers(ctx, self.analyzers)
        gaps.extend(analysis.gaps)
        ranking = rank(ctx, analysis.findings, self.settings.min_confidence)
        mark = lap("analyze", mark)

        await progress("recommend")
        recommendations, recommend_gaps = recommend(ctx, ranking, self.analyzers)
        gaps.extend(recommend_gaps)
        lap("recommend", mark)

        timings["total"] = round((time.perf_counter() - started) * 1000, 3)
        result = build_result(
            alert=alert,
            targets=targets,
            ctx=ctx,
            analysis=analysis,
            ranking=ranking,
            recommendations=recommendations,
            gaps=gaps,
            timings=timings,
        )
        return PipelineOutput(targets, result)
