"""``oncallm snapshot metrics``: record in a snapshot the metrics triage reads for an alert.

A snapshot replays an incident offline only if it carries the graphs too. For each alert
this gathers the snapshot's cluster exactly as triage does, plans the same queries
(``triage.metric_queries``), reads them from Prometheus over the same window around the
alert, and writes each answer to ``metrics/<name>.json`` as DESIGN.md §4.2 describes: a
``query_range`` response with its ``query`` beside ``data``. Triage of the snapshot then
finds them by their query text, and says what it would have said live.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oncallm.config_metrics import MetricsSettings
from oncallm.sources.metrics import MetricsError, MetricsSource, Series
from oncallm.sources.snapshot import SnapshotSource
from oncallm.triage.context import AlertInput
from oncallm.triage.gather import GatherLimits, gather
from oncallm.triage.metric_queries import plan
from oncallm.triage.metric_signals import MetricWindow
from oncallm.triage.targets import resolve_targets

__all__ = ["MetricsCapture", "capture_metrics"]


@dataclass
class MetricsCapture:
    """What was written, and what could not be."""

    directory: Path
    files: int = 0
    series: int = 0
    empty: list[str] = field(default_factory=list)  # queries Prometheus had no data for
    failed: list[str] = field(default_factory=list)  # "key: reason"

    def line(self) -> str:
        parts = [f"wrote {self.files} metric files ({self.series} series) to {self.directory}"]
        if self.empty:
            parts.append(f"{len(self.empty)} queries without data")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return "; ".join(parts)


def _answer(query: str, series: Sequence[Series]) -> dict[str, Any]:
    return {
        "query": query,
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {
                    "metric": dict(s.labels),
                    # Prometheus prints values as strings; repr keeps every digit.
                    "values": [[t, repr(v)] for t, v in s.points],
                }
                for s in series
            ],
        },
    }


def _file_name(key: str, taken: set[str]) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "query"
    name, number = f"{stem}.json", 2
    while name in taken:
        name, number = f"{stem}-{number}.json", number + 1
    taken.add(name)
    return name


async def capture_metrics(
    snapshot: Path,
    alerts: Sequence[AlertInput],
    source: MetricsSource,
    settings: MetricsSettings,
) -> MetricsCapture:
    """Write the metrics of ``alerts`` from ``source`` into ``snapshot/metrics/``."""
    directory = snapshot / "metrics"
    summary = MetricsCapture(directory)
    directory.mkdir(parents=True, exist_ok=True)
    taken = {p.name for p in directory.glob("*.json")}
    written: set[str] = set()
    cluster = SnapshotSource(snapshot)
    try:
        for alert in alerts:
            ctx = await gather(
                cluster, alert, resolve_targets(alert.labels), GatherLimits(), "snapshot"
            )
            window = MetricWindow.of_alert(alert.starts_at, ctx.now, settings)
            for query in plan(ctx):
                asks = [(query.key, query.promql)]
                if query.limit_promql is not None:
                    asks.append((f"{query.key}-limit", query.limit_promql))
                for key, promql in asks:
                    if promql in written:
                        continue
                    try:
                        series = await source.query_range(
                            promql, window.start, window.end, window.step
                        )
                    except MetricsError as exc:
                        summary.failed.append(f"{key}: {exc.detail}")
                        continue
                    written.add(promql)
                    if not series:
                        summary.empty.append(key)
                        continue
                    path = directory / _file_name(key, taken)
                    path.write_text(json.dumps(_answer(promql, series), indent=1) + "\n")
                    summary.files += 1
                    summary.series += len(series)
    finally:
        await cluster.close()
    return summary
