"""The triage pipeline: one alert in, one triage result (DESIGN.md §4.4) out.

targets → gather → metrics → analyze (analyzers, then causal ranking) → recommend →
runbooks → reason. Each step
takes the previous step's value and returns a new one; the pipeline times every step,
reports progress so the UI can show where a triage is, and collects gaps instead of
failing: a cluster that cannot be reached yields an honest ``Unknown`` with the reason,
not an error. The last step runs only with an LLM configured; it reads the finished
deterministic result and may only add to it or re-rank it on verified evidence (see
``oncallm.llm.grounding``); when it fails, the deterministic result stands.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from oncallm.config import Settings, TriageSettings
from oncallm.llm.ports import AnswerCache, ExplanationSink, UsageBook, discard_explanation
from oncallm.llm.prompts import RunbookExcerpt
from oncallm.sources.base import ClusterSource, SourceError
from oncallm.triage.analyze import recommend, run_analyzers
from oncallm.triage.analyzers import Analyzer, registered
from oncallm.triage.context import AlertInput, Gap
from oncallm.triage.gather import GatherLimits, gather
from oncallm.triage.guidance import RunbookGuide
from oncallm.triage.metrics_step import MetricsStep, attach_charts
from oncallm.triage.rank import rank
from oncallm.triage.report import RESULT_SCHEMA, build_result
from oncallm.triage.targets import AlertTargets, resolve_targets

if TYPE_CHECKING:
    from oncallm.llm.reasoner import Reasoner

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
        reasoner: Reasoner | None = None,
        runbooks: RunbookGuide | None = None,
        metrics: MetricsStep | None = None,
    ) -> None:
        self.sources = sources
        self.metrics = metrics
        self.settings = settings
        self.limits = limits_from(settings)
        self.analyzers = tuple(analyzers) if analyzers is not None else registered()
        self.reasoner = reasoner
        self.runbooks = runbooks

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        usage: UsageBook | None = None,
        cache: AnswerCache | None = None,
    ) -> TriagePipeline:
        """The pipeline a process runs; ``usage``/``cache`` default to in-memory ones."""
        from oncallm.sources.clusters import ClusterSources
        from oncallm.sources.prometheus import PrometheusSources

        reasoner = None
        if settings.llm.enabled:
            # Imported only when configured: pydantic-ai and the provider SDKs cost ~1 s.
            from oncallm.llm.reasoner import Reasoner

            reasoner = Reasoner.from_settings(settings.llm, usage=usage, cache=cache)
        return cls(
            ClusterSources(settings.kubernetes),
            settings.triage,
            reasoner=reasoner,
            runbooks=RunbookGuide(settings.runbooks),
            metrics=MetricsStep(
                PrometheusSources(settings.metrics, settings.kubernetes), settings.metrics
            ),
        )

    async def aclose(self) -> None:
        await self.sources.aclose()
        if self.reasoner is not None:
            await self.reasoner.aclose()
        if self.runbooks is not None:
            await self.runbooks.aclose()
        if self.metrics is not None:
            await self.metrics.aclose()

    async def run(
        self,
        alert: AlertInput,
        progress: Progress = _no_progress,
        *,
        explanation: ExplanationSink = discard_explanation,
    ) -> PipelineOutput:
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
        mark = lap("gather", mark)
        if self.metrics is not None:
            await progress("metrics")
            ctx = await self.metrics.read(ctx)
            mark = lap("metrics", mark)
        gaps.extend(ctx.gaps)

        await progress("analyze")
        analysis = run_analyzers(ctx, self.analyzers)
        gaps.extend(analysis.gaps)
        ranking = rank(ctx, analysis.findings, self.settings.min_confidence)
        mark = lap("analyze", mark)

        await progress("recommend")
        recommendations, recommend_gaps = recommend(ctx, ranking, self.analyzers)
        gaps.extend(recommend_gaps)
        mark = lap("recommend", mark)

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
        if self.metrics is not None:
            attach_charts(result, self.metrics.charts(ctx))
        excerpts: list[RunbookExcerpt] = []
        if self.runbooks is not None:
            await progress("runbooks")
            excerpts = await self.runbooks.attach(alert, result)
            mark = lap("runbooks", mark)
        if self.reasoner is not None:
            await progress("reason")
            metrics = self.metrics.source_for(ctx) if self.metrics is not None else None
            await self.reasoner.reason(ctx, result, source, explanation, excerpts, metrics)
            lap("reason", mark)

        timings["total"] = round((time.perf_counter() - started) * 1000, 3)
        result["timings_ms"] = dict(timings)
        return PipelineOutput(targets, result)
