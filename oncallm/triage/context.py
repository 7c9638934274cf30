"""What the gatherer found around an alert, in the form analyzers read.

A :class:`TriageContext` is immutable once gathered: the alert, the objects inspected
(raw, as kubectl prints them), events per involved object, container logs, dependencies
named in env and logs, and the gaps — reads that failed. Helper methods answer the
cross-object questions analyzers share (whose pod is this, which Services select it), so
every analyzer walks the graph the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.sources.snapshot import involved_ref, parse_time
from oncallm.triage import kube
from oncallm.triage.targets import AlertTargets

if TYPE_CHECKING:
    from oncallm.triage.metric_signals import MetricSignal

# Lines worth showing a human: errors, panics, refusals, stack-trace heads.
ERROR_LINE = re.compile(
    r"\b(error|err|fatal|panic|exception|traceback|failed|failure|refused|denied|forbidden|"
    r"timeout|timed out|unreachable|no such host|x509|killed|cannot|could not|unable to|"
    r"invalid|missing|not found|segmentation fault|out of memory|oom)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Event:
    """A ``v1`` Event, normalised."""

    involved: ObjectRef
    type: str
    reason: str
    message: str
    count: int
    first_seen: datetime | None
    last_seen: datetime | None

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Event | None:
        involved = involved_ref(obj)
        if involved is None:
            return None
        last = parse_time(obj.get("lastTimestamp")) or parse_time(obj.get("eventTime"))
        first = parse_time(obj.get("firstTimestamp")) or last
        return cls(
            involved=involved,
            type=str(obj.get("type") or "Normal"),
            reason=str(obj.get("reason") or ""),
            message=str(obj.get("message") or "").strip(),
            count=int(obj.get("count") or 1),
            first_seen=first,
            last_seen=last or parse_time((obj.get("metadata") or {}).get("creationTimestamp")),
        )

    @property
    def warning(self) -> bool:
        return self.type == "Warning"

    def describe(self) -> str:
        times = f" (x{self.count})" if self.count > 1 else ""
        when = f" last seen {self.last_seen:%Y-%m-%d %H:%M:%SZ}" if self.last_seen else ""
        return f"{self.type} {self.reason}{times}{when}: {self.message}"


@dataclass(frozen=True)
class LogExcerpt:
    namespace: str
    pod: str
    container: str
    previous: bool
    lines: tuple[str, ...]

    @property
    def error_lines(self) -> tuple[str, ...]:
        return tuple(line for line in self.lines if ERROR_LINE.search(line))

    def matching(self, pattern: re.Pattern[str]) -> tuple[str, ...]:
        return tuple(line for line in self.lines if pattern.search(line))

    def last(self, n: int) -> tuple[str, ...]:
        return self.lines[-n:]


@dataclass(frozen=True)
class Gap:
    """A read that failed: triage went on without it, and says so."""

    source: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "error": self.error}


@dataclass(frozen=True)
class Dependency:
    """A network dependency a workload names (env value or log line), and where it leads."""

    client: ObjectRef  # the pod that talks to it
    host: str
    port: int | None
    service: ObjectRef | None  # the Service the host resolves to, when in the cluster
    via: str  # "env DATABASE_URL" or "log"
    line: str  # the env value or log line that named it


@dataclass(frozen=True)
class AlertInput:
    """The alert being triaged, as the queue or a payload file hands it over."""

    fingerprint: str
    alertname: str
    status: str
    starts_at: datetime
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    generator_url: str = ""  # Prometheus' link to the rule's expression (g0.expr)


@dataclass(frozen=True)
class TriageContext:
    alert: AlertInput
    targets: AlertTargets
    cluster: str | None
    source_name: str
    now: datetime
    objects: Mapping[ObjectRef, KubeObject]
    events: Mapping[ObjectRef, tuple[Event, ...]]
    logs: Mapping[tuple[str, str, str, bool], LogExcerpt]
    gaps: tuple[Gap, ...] = ()
    focus: frozenset[ObjectRef] = frozenset()  # the objects the alert is about
    distance: Mapping[ObjectRef, int] = field(default_factory=dict)
    dependencies: tuple[Dependency, ...] = ()
    stale_after: timedelta = timedelta(minutes=60)
    # Metric signals by query key, read after the cluster (``triage.metric_signals``).
    metrics: Mapping[str, MetricSignal] = field(default_factory=dict)

    # --- lookups -------------------------------------------------------------------------

    def get(self, kind: str, namespace: str | None, name: str) -> KubeObject | None:
        return self.objects.get(ObjectRef(kind, namespace, name))

    def of_kind(self, kind: str, namespace: str | None = None) -> list[KubeObject]:
        return [
            obj
            for ref, obj in self.objects.items()
            if ref.kind == kind and (namespace is None or ref.namespace == namespace)
        ]

    def pods(self) -> list[KubeObject]:
        return self.of_kind("Pod")

    @property
    def inspected(self) -> list[ObjectRef]:
        return sorted(self.objects, key=lambda r: (self.distance.get(r, 99), r))

    # --- time ----------------------------------------------------------------------------

    def is_current(self, event: Event) -> bool:
        """Seen around or after the alert started; older Warnings are history."""
        if event.last_seen is None:
            return True
        return event.last_seen >= self.alert.starts_at - self.stale_after

    def events_of(self, ref: ObjectRef, *, current_only: bool = True) -> list[Event]:
        """Events of exactly this object (kind + namespace + name), newest last."""
        events = [e for e in self.events.get(ref, ()) if not current_only or self.is_current(e)]
        return sorted(events, key=lambda e: e.last_seen or self.now)

    def warnings_of(self, ref: ObjectRef, *reasons: str) -> list[Event]:
        return [
            e for e in self.events_of(ref) if e.warning and (not reasons or e.reason in reasons)
        ]

    # --- logs ----------------------------------------------------------------------------

    def log(self, namespace: str, pod: str, container: str, previous: bool) -> LogExcerpt | None:
        return self.logs.get((namespace, pod, container, previous))

    def logs_of_pod(self, pod_ref: ObjectRef) -> list[LogExcerpt]:
        return [
            excerpt
            for (ns, pod, _c, _p), excerpt in self.logs.items()
            if ns == pod_ref.namespace and pod == pod_ref.name
        ]

    # --- the object graph ----------------------------------------------------------------

    def owner(self, obj: Mapping[str, Any]) -> ObjectRef | None:
        return kube.controller_of(obj)

    def workload_of(self, pod: Mapping[str, Any]) -> ObjectRef:
        """The top controller that owns a pod's spec (Deployment over its ReplicaSet, CronJob
        over its Job), or the pod itself when it is bare."""
        current = kube.ref(pod)
        owner = kube.controller_of(pod)
        while owner is not None:
            current = owner
            parent = self.objects.get(owner)
            owner = kube.controller_of(parent) if parent is not None else None
            if owner is not None and owner.kind not in kube.WORKLOAD_KINDS:
                break
        return current

    def pods_of(self, workload: ObjectRef) -> list[KubeObject]:
        return [
            pod
            for pod in self.pods()
            if kube.namespace(pod) == workload.namespace
            and (self.workload_of(pod) == workload or kube.controller_of(pod) == workload)
        ]

    def services_selecting(self, pod: Mapping[str, Any]) -> list[KubeObject]:
        pod_labels = kube.labels(pod)
        return [
            svc
            for svc in self.of_kind("Service", kube.namespace(pod))
            if kube.selects((svc.get("spec") or {}).get("selector"), pod_labels)
        ]

    def pods_selected_by(self, service: Mapping[str, Any]) -> list[KubeObject]:
        selector = (service.get("spec") or {}).get("selector")
        return [
            pod
            for pod in self.of_kind("Pod", kube.namespace(service))
            if kube.selects(selector, kube.labels(pod))
        ]

    def ready_endpoints(self, service: ObjectRef) -> int | None:
        """Ready addresses behind a Service, from Endpoints or EndpointSlices; None when
        neither was read."""
        endpoints = self.get("Endpoints", service.namespace, service.name)
        slices = [
            s
            for s in self.of_kind("EndpointSlice", service.namespace)
            if kube.labels(s).get("kubernetes.io/service-name") == service.name
        ]
        if slices:
            return sum(
                1
                for s in slices
                for ep in s.get("endpoints") or []
                if (ep.get("conditions") or {}).get("ready", True)
            )
        if endpoints is not None:
            return sum(len(sub.get("addresses") or []) for sub in endpoints.get("subsets") or [])
        return None

    def dependencies_of(self, refs: Iterable[ObjectRef]) -> list[Dependency]:
        wanted = set(refs)
        return [d for d in self.dependencies if d.client in wanted]

    def is_focus(self, ref: ObjectRef) -> bool:
        return ref in self.focus

    # --- metrics -------------------------------------------------------------------------

    def metric(
        self, signal: str, resource: ObjectRef | None = None, container: str | None = None
    ) -> MetricSignal | None:
        """The metric signal of that kind about ``resource``/``container``, if it was read."""
        for found in self.metrics.values():
            q = found.query
            if (
                q.signal == signal
                and resource in (None, q.resource)
                and container in (None, q.container)
            ):
                return found
        return None
