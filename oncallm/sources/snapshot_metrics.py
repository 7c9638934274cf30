"""A snapshot's ``metrics/*.json`` (DESIGN.md §4.2) answering PromQL as Prometheus did.

Each file is a ``query_range`` answer of the Prometheus HTTP API with the ``query`` it
answered beside ``data``. A snapshot cannot evaluate PromQL, so a query is answered by
looking up the recorded answer to the *same* query; "same" ignores whitespace, because
the query catalogue and a hand-edited snapshot rarely agree on spaces around ``by (...)``
or ``/``. A query the snapshot did not record answers ``[]``: the snapshot has no data
for it, exactly as Prometheus would say of a series that does not exist.

The directory is indexed once, on the first query (snapshots are read-only), so a broken
file is reported the first time metrics are asked for, naming the file.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from oncallm.errors import SnapshotError
from oncallm.sources.metrics import Point, Series

__all__ = ["SnapshotMetrics", "normalise_promql", "parse_api_data", "unix_seconds"]

# --- the Prometheus answer format, shared with PrometheusSource ---------------------------
# Here rather than in prometheus.py because a snapshot stores exactly those answers and
# must parse them without needing an HTTP client.


def parse_api_data(data: Any) -> list[Series]:
    """The ``data`` object of a ``query``/``query_range`` answer as series.

    Values arrive as strings; ``"NaN"``, ``"+Inf"`` and ``"-Inf"`` parse as floats and NaN
    points are dropped (a gap in the graph, not a value). A ``scalar`` is one series without
    labels. Raises ``ValueError`` when the object is not a Prometheus result.
    """
    if not isinstance(data, Mapping):
        raise ValueError("'data' is not an object")
    kind, result = data.get("resultType"), data.get("result")
    if kind in ("matrix", "vector") and isinstance(result, list):
        return [_series(item, kind) for item in result]
    if kind == "scalar":
        return [Series({}, _points([result]))]
    if kind == "string":
        raise ValueError("the query's result is a string, not numbers")
    raise ValueError(f"unknown resultType {kind!r}")


def _series(item: Any, kind: str) -> Series:
    """One ``{metric, values}`` (matrix) or ``{metric, value}`` (vector) entry."""
    if not isinstance(item, Mapping) or not isinstance(item.get("metric") or {}, Mapping):
        raise ValueError("a result entry is not {metric, value(s)}")
    labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
    if kind == "matrix":
        return Series(labels, _points(item.get("values") or []))
    return Series(labels, _points([item["value"]] if "value" in item else []))


def _points(raw: Any) -> tuple[Point, ...]:
    points = []
    for pair in raw:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(f"a sample is not [time, value]: {str(pair)[:80]}")
        ts, value = float(pair[0]), float(pair[1])
        if not math.isnan(value):
            points.append((ts, value))
    points.sort(key=lambda p: p[0])
    return tuple(points)


def unix_seconds(moment: datetime) -> float:
    """``moment`` as unix seconds; a naive datetime is taken as UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


# --- matching queries ----------------------------------------------------------------------

_QUOTES = "\"'`"


def _is_word(char: str) -> bool:
    """Characters that run together into one token: names, numbers, durations (5m, 1.5)."""
    return char.isalnum() or char in "_:."


def normalise_promql(query: str) -> str:
    """``query`` with insignificant whitespace removed, string literals left untouched.

    Outside quotes a run of whitespace disappears unless it separates two word tokens
    (``a and b``, ``offset 5m``), where it becomes one space; so ``sum by (pod) (x)`` and
    ``sum by(pod)(x)`` normalise alike while ``{pod="a  b"}`` keeps its two spaces.
    """
    out: list[str] = []
    i, n = 0, len(query)
    pending_space = False
    while i < n:
        char = query[i]
        if char.isspace():
            pending_space = True
            i += 1
            continue
        if pending_space and out and _is_word(out[-1][-1]) and _is_word(char):
            out.append(" ")
        pending_space = False
        if char in _QUOTES:
            end = _string_end(query, i)
            out.append(query[i:end])
            i = end
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _string_end(query: str, start: int) -> int:
    """Index just past the string literal opening at ``start`` (backslash escapes honoured,
    except in raw backtick strings); an unterminated string runs to the end."""
    quote = query[start]
    i = start + 1
    while i < len(query):
        if query[i] == "\\" and quote != "`":
            i += 2
            continue
        if query[i] == quote:
            return i + 1
        i += 1
    return len(query)


class SnapshotMetrics:
    """The recorded metrics of one snapshot directory (its ``metrics/`` folder)."""

    name = "snapshot"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._index: dict[str, list[Series]] | None = None
        self._lock = threading.Lock()

    async def query_range(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        """The recorded series clipped to ``[start, end]``; ``step`` is not applied (the
        points are the recorded ones, not resampled). Series without a point in the range
        are left out, as Prometheus leaves them out."""
        low, high = unix_seconds(start), unix_seconds(end)
        answer = []
        for series in self._recorded(query):
            points = tuple(p for p in series.points if low <= p[0] <= high)
            if points:
                answer.append(Series(series.labels, points))
        return answer

    async def query(self, query: str, at: datetime) -> list[Series]:
        """Per recorded series, its last point at or before ``at``, with the timestamp it
        was recorded at (so an old value shows its age)."""
        moment = unix_seconds(at)
        answer = []
        for series in self._recorded(query):
            before = [p for p in series.points if p[0] <= moment]
            if before:
                answer.append(Series(series.labels, (before[-1],)))
        return answer

    def graph_url(self, query: str, start: datetime, end: datetime) -> str | None:
        return None  # a snapshot has no UI to open

    async def aclose(self) -> None:
        return None

    def _recorded(self, query: str) -> list[Series]:
        with self._lock:
            if self._index is None:
                self._index = self._load()
            index = self._index
        return index.get(normalise_promql(query), [])

    def _load(self) -> dict[str, list[Series]]:
        index: dict[str, list[Series]] = {}
        if not self.directory.is_dir():
            return index  # the snapshot recorded no metrics: every query has no data
        for path in sorted(self.directory.rglob("*.json")):
            query, series = _read_answer(path)
            # Two files answering one query (split by series) are one answer.
            index.setdefault(normalise_promql(query), []).extend(series)
        return index


def _read_answer(path: Path) -> tuple[str, list[Series]]:
    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path}: cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SnapshotError(f"{path}: not a Prometheus answer (a JSON object with 'query')")
    query = doc.get("query")
    if not isinstance(query, str) or not query.strip():
        raise SnapshotError(f"{path}: no 'query' field naming the PromQL it answers")
    if "data" not in doc:
        raise SnapshotError(f"{path}: no 'data' field (a Prometheus query_range answer)")
    try:
        return query, parse_api_data(doc["data"])
    except (ValueError, TypeError, KeyError) as exc:
        raise SnapshotError(f"{path}: 'data' is not a Prometheus result: {exc}") from None
