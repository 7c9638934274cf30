"""Reading the metric plan: each query's series around the alert, as analyzers use them.

The window is ``metrics.lookback_minutes`` before the alert started to
``metrics.after_minutes`` after it (never past "now"), at a step fine enough for the
summaries to see a ramp or a spike (about 240 points), while what is stored with the
triage for charts is downsampled to ``metrics.max_points``. Queries run concurrently
under a small bound. A failed query is not an error of the triage: failures are
collected into one gap per distinct reason ("prometheus http://…: connection refused
(12 of 12 queries)"), so a dead Prometheus costs a line, not the triage.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from oncallm.config_metrics import MetricsSettings
from oncallm.sources.metrics import MetricsError, MetricsSource, Series
from oncallm.triage.context import Gap, TriageContext
from oncallm.triage.metric_queries import MetricQuery
from oncallm.triage.series import SeriesSummary, describe, downsample, summarise

ANALYSIS_POINTS = 240
MIN_STEP_SECONDS = 15
CONCURRENCY = 4
MAX_CHART_SERIES = 3  # per query: the series closest to their limit


@dataclass(frozen=True)
class MetricWindow:
    start: datetime
    end: datetime
    step: timedelta

    @classmethod
    def around(
        cls, starts_at: datetime, now: datetime, *, before: timedelta, after: timedelta
    ) -> MetricWindow:
        start = starts_at - before
        end = min(now, starts_at + after)
        if end - start < timedelta(minutes=5):  # an alert from the future, a skewed clock
            end = start + timedelta(minutes=5)
        seconds = (end - start).total_seconds() / ANALYSIS_POINTS
        step = timedelta(seconds=max(MIN_STEP_SECONDS, math.ceil(seconds)))
        return cls(start, end, step)

    @classmethod
    def of_alert(
        cls, starts_at: datetime, now: datetime, settings: MetricsSettings
    ) -> MetricWindow:
        """The window ``metrics.lookback_minutes`` before to ``after_minutes`` after."""
        return cls.around(
            starts_at,
            now,
            before=timedelta(minutes=settings.lookback_minutes),
            after=timedelta(minutes=settings.after_minutes),
        )


@dataclass(frozen=True)
class MetricSignal:
    """One query's answer: its series, the limit they are judged against, and a link."""

    query: MetricQuery
    series: tuple[Series, ...]
    limit: float | None
    window: MetricWindow
    source: str  # "prometheus" or "snapshot"
    url: str | None  # the query over the window in a Prometheus UI

    @property
    def evidence_id(self) -> str:
        return self.query.evidence_id

    def pod_series(self, pod: str) -> Series | None:
        return next((s for s in self.series if s.labels.get("pod") == pod), None)

    def summary_of(self, series: Series, *, until: float | None = None) -> SeriesSummary | None:
        return summarise(series.points, limit=self.limit, until=until)

    def worst(self) -> tuple[Series, SeriesSummary] | None:
        """The series that came closest to its limit (else the highest one)."""
        best: tuple[Series, SeriesSummary] | None = None
        for series in self.series:
            summary = self.summary_of(series)
            if summary is None:
                continue
            if best is None or _severity(summary) > _severity(best[1]):
                best = (series, summary)
        return best

    def describe(self, series: Series, summary: SeriesSummary) -> str:
        who = ", ".join(f"{k}={v}" for k, v in sorted(series.labels.items()))
        sentence = describe(summary, self.query.unit, self.query.limit_name)
        return f"{self.query.title}{f' ({who})' if who else ''}: {sentence}"

    def chart(self, max_points: int) -> dict[str, Any]:
        """The stored, downsampled form the page draws (``result["metrics"]``)."""
        ranked = sorted(
            ((s, self.summary_of(s)) for s in self.series),
            key=lambda pair: _severity(pair[1]) if pair[1] is not None else -1.0,
            reverse=True,
        )[:MAX_CHART_SERIES]
        return {
            "id": self.evidence_id,
            "title": self.query.title,
            "query": self.query.promql,
            "unit": self.query.unit,
            "limit": self.limit,
            "url": self.url,
            "resource": self.query.resource.as_dict() if self.query.resource else None,
            "start": self.window.start.isoformat(),
            "end": self.window.end.isoformat(),
            "series": [
                {
                    "labels": dict(series.labels),
                    "points": [[t, v] for t, v in downsample(series.points, max_points)],
                    "summary": (
                        describe(summary, self.query.unit, self.query.limit_name)
                        if summary
                        else None
                    ),
                }
                for series, summary in ranked
            ],
        }


def _severity(summary: SeriesSummary) -> float:
    return summary.peak_ratio if summary.peak_ratio is not None else summary.max


async def _run(
    source: MetricsSource, query: MetricQuery, window: MetricWindow
) -> MetricSignal | None:
    series = await source.query_range(query.promql, window.start, window.end, window.step)
    series = [s for s in series if s.points]
    if not series:
        return None
    limit = query.limit
    if query.limit_promql is not None:
        capacity = await source.query_range(
            query.limit_promql, window.start, window.end, window.step
        )
        values = [s.points[-1][1] for s in capacity if s.points]
        if values:
            limit = max(values)
    return MetricSignal(
        query=query,
        series=tuple(series),
        limit=limit,
        window=window,
        source=source.name,
        url=source.graph_url(query.promql, window.start, window.end),
    )


async def read_metrics(
    source: MetricsSource, queries: Sequence[MetricQuery], window: MetricWindow
) -> tuple[dict[str, MetricSignal], list[Gap]]:
    """Every query's signal (queries without data are left out) and the gaps."""
    bound = asyncio.Semaphore(CONCURRENCY)

    async def one(query: MetricQuery) -> MetricSignal | MetricsError | None:
        async with bound:
            try:
                return await _run(source, query, window)
            except MetricsError as exc:
                return exc

    answers = await asyncio.gather(*(one(q) for q in queries))
    signals: dict[str, MetricSignal] = {}
    failures: dict[str, int] = {}
    for answer in answers:
        if isinstance(answer, MetricSignal):
            signals[answer.query.key] = answer
        elif isinstance(answer, MetricsError):
            failures[answer.detail] = failures.get(answer.detail, 0) + 1
    gaps = [
        Gap(f"metrics ({source.name})", f"{detail} ({count} of {len(queries)} queries)")
        for detail, count in failures.items()
    ]
    return signals, gaps


def charts(signals: Iterable[MetricSignal], max_points: int) -> list[dict[str, Any]]:
    return [s.chart(max_points) for s in signals]


def with_metrics(
    ctx: TriageContext, signals: Mapping[str, MetricSignal], gaps: Sequence[Gap]
) -> TriageContext:
    return replace(ctx, metrics=dict(signals), gaps=(*ctx.gaps, *gaps))
