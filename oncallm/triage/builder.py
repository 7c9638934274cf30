"""Assembling a :class:`TriageContext` piece by piece, as the gatherer reads.

The gatherer fetches concurrently; the builder is where its results land (objects with
their distance from the alert, events, logs, dependencies, gaps) until ``build`` freezes
them into the immutable context analyzers read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.context import (
    ERROR_LINE,
    AlertInput,
    Dependency,
    Event,
    Gap,
    LogExcerpt,
    TriageContext,
)
from oncallm.triage.targets import AlertTargets

# Error lines kept from before a log's tail (the tail itself is kept whole).
MAX_EARLIER_ERRORS = 50
# How much more than the tail is read to find them.
LOG_LOOKBACK = 5


class ContextBuilder:
    def __init__(
        self,
        alert: AlertInput,
        targets: AlertTargets,
        *,
        cluster: str | None,
        source_name: str,
        now: datetime,
        stale_after: timedelta = timedelta(minutes=60),
    ) -> None:
        self.alert = alert
        self.targets = targets
        self.cluster = cluster
        self.source_name = source_name
        self.now = now
        self.stale_after = stale_after
        self.objects: dict[ObjectRef, KubeObject] = {}
        self.distance: dict[ObjectRef, int] = {}
        self.events: dict[ObjectRef, list[Event]] = {}
        self.logs: dict[tuple[str, str, str, bool], LogExcerpt] = {}
        self.gaps: list[Gap] = []
        self.focus: set[ObjectRef] = set()
        self.dependencies: list[Dependency] = []

    def add_object(self, obj: KubeObject, distance: int) -> ObjectRef:
        ref = kube.ref(obj)
        self.objects.setdefault(ref, obj)
        self.distance[ref] = min(distance, self.distance.get(ref, distance))
        return ref

    def has(self, ref: ObjectRef) -> bool:
        return ref in self.objects

    def add_events(self, ref: ObjectRef, raw: Iterable[KubeObject]) -> None:
        events = self.events.setdefault(ref, [])
        for obj in raw:
            event = Event.from_object(obj)
            # Match on kind + namespace + name: a ConfigMap and a Pod may share a name.
            if event is not None and event.involved == ref:
                events.append(event)

    def add_log(
        self,
        namespace: str,
        pod: str,
        container: str,
        previous: bool,
        text: str,
        *,
        keep_last: int | None = None,
    ) -> None:
        """Keep the last ``keep_last`` lines, and the error lines before them: the first
        error of a crash often scrolled out of the tail behind a stack trace or retries."""
        lines = [line for line in text.splitlines() if line.strip()]
        if keep_last is not None and len(lines) > keep_last:
            earlier = lines[:-keep_last]
            errors = list(dict.fromkeys(line for line in earlier if ERROR_LINE.search(line)))
            lines = errors[-MAX_EARLIER_ERRORS:] + lines[-keep_last:]
        self.logs[(namespace, pod, container, previous)] = LogExcerpt(
            namespace, pod, container, previous, tuple(lines)
        )

    def add_gap(self, source: str, error: str) -> None:
        gap = Gap(source, error)
        if gap not in self.gaps:
            self.gaps.append(gap)

    def gaps_for(self, source: str) -> list[Gap]:
        return [g for g in self.gaps if g.source == source]

    def add_dependency(self, dependency: Dependency) -> None:
        if dependency not in self.dependencies:
            self.dependencies.append(dependency)

    def build(self) -> TriageContext:
        return TriageContext(
            alert=self.alert,
            targets=self.targets,
            cluster=self.cluster,
            source_name=self.source_name,
            now=self.now,
            objects=dict(self.objects),
            events={ref: tuple(events) for ref, events in self.events.items()},
            logs=dict(self.logs),
            gaps=tuple(self.gaps),
            focus=frozenset(self.focus),
            distance=dict(self.distance),
            dependencies=tuple(self.dependencies),
            stale_after=self.stale_after,
        )
