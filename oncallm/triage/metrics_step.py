"""The pipeline's metrics step: plan the queries, read them, hand the signals on.

It runs after the cluster is gathered (the plan needs the workloads, nodes and volumes
found there) and before the analyzers, which read the signals from the context. With no
metrics source for the alert's cluster (no Prometheus configured, metrics disabled) the
step does nothing and says nothing: metrics are an addition, not a requirement. A source
that fails becomes gaps on the triage; the triage goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from oncallm.config_metrics import MetricsSettings
from oncallm.sources.metrics import MetricsError, MetricsSource
from oncallm.triage.context import Gap, TriageContext
from oncallm.triage.metric_queries import plan
from oncallm.triage.metric_signals import MetricWindow, charts, read_metrics, with_metrics


class MetricsCatalog(Protocol):
    """Picks the metrics source of an alert's cluster (None: no metrics there)."""

    def source_for(
        self, cluster: str | None, generator_url: str | None = None
    ) -> MetricsSource | None: ...

    async def aclose(self) -> None: ...


class FixedMetrics:
    """A catalog that answers every cluster with one source (one-shot triage, eval)."""

    def __init__(self, source: MetricsSource) -> None:
        self.source = source

    def source_for(
        self, cluster: str | None, generator_url: str | None = None
    ) -> MetricsSource | None:
        return self.source

    async def aclose(self) -> None:
        await self.source.aclose()


class MetricsStep:
    def __init__(self, catalog: MetricsCatalog, settings: MetricsSettings) -> None:
        self.catalog = catalog
        self.settings = settings

    async def read(self, ctx: TriageContext) -> TriageContext:
        """The context with its metric signals, and gaps for the queries that failed."""
        if not self.settings.enabled:
            return ctx
        try:
            source = self._source(ctx)
        except MetricsError as exc:  # an endpoint that cannot be built (unreadable CA file)
            return with_metrics(ctx, {}, [Gap("metrics", exc.detail)])
        if source is None:
            return ctx
        queries = plan(ctx)
        if not queries:
            return ctx
        window = MetricWindow.of_alert(ctx.alert.starts_at, ctx.now, self.settings)
        signals, gaps = await read_metrics(source, queries, window)
        return with_metrics(ctx, signals, gaps)

    def _source(self, ctx: TriageContext) -> MetricsSource | None:
        return self.catalog.source_for(ctx.cluster, ctx.alert.generator_url or None)

    def source_for(self, ctx: TriageContext) -> MetricsSource | None:
        """The source the step read for ``ctx`` (the reasoner's follow-up queries it)."""
        if not self.settings.enabled:
            return None
        try:
            return self._source(ctx)
        except MetricsError:
            return None

    def charts(self, ctx: TriageContext) -> list[dict[str, Any]]:
        """The signals as the result stores them for charts (``result["metrics"]``)."""
        return charts(ctx.metrics.values(), self.settings.max_points)

    async def aclose(self) -> None:
        await self.catalog.aclose()


def snapshot_metrics(snapshot: Path, settings: MetricsSettings | None = None) -> MetricsStep:
    """The step reading a snapshot directory's ``metrics/`` (DESIGN.md §4.2)."""
    from oncallm.sources.snapshot_metrics import SnapshotMetrics

    return MetricsStep(
        FixedMetrics(SnapshotMetrics(snapshot / "metrics")), settings or MetricsSettings()
    )


def attach_charts(result: dict[str, Any], charts_: Sequence[Mapping[str, Any]]) -> None:
    if charts_:
        result["metrics"] = [dict(c) for c in charts_]
