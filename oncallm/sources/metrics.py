"""The read-only contract every metrics source fulfils: Prometheus live, or a snapshot.

Triage code reads metrics only through :class:`MetricsSource`. It speaks PromQL, because
Prometheus, Thanos and VictoriaMetrics all answer the Prometheus HTTP API v1, and a
snapshot stores exactly those answers (DESIGN.md §4.2, ``metrics/*.json``).

Two promises every source keeps:
- A failed query raises :class:`MetricsError` (a ``SourceError``) with a short reason that
  names the endpoint ("prometheus http://prom:9090: timed out after 10 s"), which triage
  records as a gap; a query with no data is an empty list, not an error.
- Points are ``(unix seconds, value)`` floats in time order; Prometheus' string values
  (``"NaN"``, ``"+Inf"``) are parsed, and NaN points are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from oncallm.errors import SourceError

__all__ = ["MetricsError", "MetricsSource", "Point", "Series"]

Point = tuple[float, float]  # (unix seconds, value)


class MetricsError(SourceError):
    """A metrics query could not be answered (unreachable, slow, rejected, breaker open)."""

    slug = "metrics-error"
    title = "Metrics unavailable"


@dataclass(frozen=True)
class Series:
    """One time series of a query's answer: its labels and its points, oldest first."""

    labels: Mapping[str, str]
    points: tuple[Point, ...]

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(v for _t, v in self.points)


@runtime_checkable
class MetricsSource(Protocol):
    """Answers PromQL over a time range or at an instant."""

    #: Shown in evidence ``source`` fields: ``prometheus`` or ``snapshot``.
    name: str

    async def query_range(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        """``/api/v1/query_range``: every series of ``query`` between ``start`` and ``end``."""
        ...

    async def query(self, query: str, at: datetime) -> list[Series]:
        """``/api/v1/query``: the value of every series at ``at`` (one point each)."""
        ...

    def graph_url(self, query: str, start: datetime, end: datetime) -> str | None:
        """Where a user opens ``query`` in a Prometheus UI over that range, if anywhere."""
        ...

    async def aclose(self) -> None: ...
