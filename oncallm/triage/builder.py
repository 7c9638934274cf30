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
    AlertInput,
    Dependency,
    Event,
    Gap,
    LogExcerpt,
    TriageContext,
)
from oncallm.triage.targets import AlertTargets


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

    def add_log(self, namespace: str, pod: str, container: str, previous: bool, text: str) -> None:
        lines = tuple(line for line in text.splitlines() if line.strip())
        self.logs[(namespace, pod, container, previous)] = LogExcerpt(
            namespace, pod, container, previous, lines
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
