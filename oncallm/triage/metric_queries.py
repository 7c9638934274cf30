"""Which metrics to read for an alert: the catalogue of standard series, as PromQL.

After the cluster is gathered, OncallM knows the workloads, containers, nodes, volumes and
HPAs around an alert; this module turns them into the queries an SRE would type into
Prometheus first: the alert's own expression (the rule's ``g0.expr`` from
``generatorURL``), per container the memory working set against its limit, CPU usage
against its limit, the CFS throttling ratio and restarts; per node the pressure
conditions and memory in use against allocatable; per volume the bytes used against its
capacity; per HPA its replicas against ``maxReplicas``.

The series are the standard ones of kube-prometheus-stack (cAdvisor via the kubelet,
kube-state-metrics, the kubelet's volume stats). Queries select a workload's pods by the
names its controller gives them rather than by a label, because cAdvisor series carry
no pod labels. Query strings are deterministic: a snapshot stores answers under the
exact query, so ``oncallm snapshot`` and triage must ask the same thing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.context import TriageContext

Signal = Literal[
    "alert_expr",
    "memory",
    "cpu",
    "throttling",
    "restarts",
    "node_pressure",
    "node_memory",
    "volume_used",
    "hpa_replicas",
]
Unit = Literal["bytes", "cores", "ratio", "count", ""]

MAX_WORKLOADS = 3
MAX_CONTAINERS = 3  # per workload: the alert's container first, then those with limits
MAX_NODES = 2
MAX_VOLUMES = 3
RATE_WINDOW = "5m"  # kube-prometheus' own recording rules use 5m for container rates

# The names controllers give their pods, as RE2 (Prometheus anchors it at both ends).
_POD_SUFFIX = {
    "Deployment": "-[a-z0-9]{1,10}-[a-z0-9]{5}",  # <deploy>-<template hash>-<random>
    "ReplicaSet": "-[a-z0-9]{5}",
    "StatefulSet": "-[0-9]+",
    "DaemonSet": "-[a-z0-9]{5}",
    "Job": "-([0-9]+-)?[a-z0-9]{5}",  # indexed Jobs put the completion index first
    "CronJob": "-[0-9]+-[a-z0-9]{5}",  # <cronjob>-<scheduled minute>-<random>
}


@dataclass(frozen=True)
class MetricQuery:
    """One query of the plan: what it measures, about which object, against what limit.

    ``limit`` comes from the spec when the spec says it (a container's memory limit in
    bytes, its CPU limit in cores, an HPA's ``maxReplicas``); ``limit_promql`` asks
    Prometheus when only it knows (a volume's filesystem capacity).
    """

    key: str  # stable and readable: "memory/shop/cart/cart" → evidence id "metric:memory/..."
    signal: Signal
    title: str
    promql: str
    unit: Unit
    resource: ObjectRef | None
    container: str | None = None
    limit: float | None = None
    limit_promql: str | None = None
    request: float | None = None
    limit_name: str = "limit"  # what the limit is called: "capacity", "maxReplicas"

    @property
    def evidence_id(self) -> str:
        return f"metric:{self.key}"


def alert_expression(generator_url: str) -> str | None:
    """The rule expression Prometheus put in an alert's ``generatorURL`` (``g0.expr``)."""
    if not generator_url:
        return None
    try:
        query = parse_qs(urlsplit(generator_url).query)
    except ValueError:
        return None
    expr = (query.get("g0.expr") or [""])[0].strip()
    return expr or None


def _quote(value: str) -> str:
    """A PromQL string literal (Kubernetes names need no escapes, label values might)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal_regex(name: str) -> str:
    # `.` is the only regex character a Kubernetes name can hold; a class needs no
    # backslash, which would have to be doubled inside the PromQL string.
    return name.replace(".", "[.]")


def pod_pattern(workload: ObjectRef) -> str:
    """An RE2 pattern matching the names of the pods ``workload`` runs (or the pod itself)."""
    suffix = _POD_SUFFIX.get(workload.kind)
    base = _literal_regex(workload.name)
    return base + suffix if suffix else base


def _matchers(**labels: str) -> str:
    parts = []
    for label, value in labels.items():
        if label == "pod_regex":
            parts.append(f"pod=~{_quote(value)}")
        else:
            parts.append(f"{label}={_quote(value)}")
    return "{" + ", ".join(parts) + "}"


def _bytes(value: str | None) -> float | None:
    parsed = kube.parse_quantity(value) if value is not None else None
    return float(parsed) if parsed is not None else None


def _path(ref: ObjectRef) -> str:
    return f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name


# --- per object ------------------------------------------------------------------------


def container_queries(workload: ObjectRef, spec: Mapping[str, Any]) -> Iterator[MetricQuery]:
    """Memory, CPU, throttling and restarts of one container of a workload."""
    assert workload.namespace is not None
    cname = str(spec.get("name", ""))
    sel = _matchers(namespace=workload.namespace, pod_regex=pod_pattern(workload), container=cname)
    limits = (spec.get("resources") or {}).get("limits") or {}
    requests = (spec.get("resources") or {}).get("requests") or {}
    where = f"{_path(workload)}/{cname}"
    label = f"container {cname} of {workload.kind} {_path(workload)}"
    yield MetricQuery(
        key=f"memory/{where}",
        signal="memory",
        title=f"Memory working set of {label}",
        promql=f"max by (pod) (container_memory_working_set_bytes{sel})",
        unit="bytes",
        resource=workload,
        container=cname,
        limit=_bytes(limits.get("memory")),
        request=_bytes(requests.get("memory")),
    )
    cpu_limit = _bytes(limits.get("cpu"))
    yield MetricQuery(
        key=f"cpu/{where}",
        signal="cpu",
        title=f"CPU usage of {label}",
        promql=f"sum by (pod) (rate(container_cpu_usage_seconds_total{sel}[{RATE_WINDOW}]))",
        unit="cores",
        resource=workload,
        container=cname,
        limit=cpu_limit,
        request=_bytes(requests.get("cpu")),
    )
    if cpu_limit is not None:  # without a CPU limit there is no CFS quota to throttle on
        yield MetricQuery(
            key=f"throttling/{where}",
            signal="throttling",
            title=f"Share of CPU periods throttled, {label}",
            promql=(
                f"sum by (pod) (increase(container_cpu_cfs_throttled_periods_total{sel}"
                f"[{RATE_WINDOW}])) / sum by (pod) (increase(container_cpu_cfs_periods_total"
                f"{sel}[{RATE_WINDOW}]))"
            ),
            unit="ratio",
            resource=workload,
            container=cname,
        )
    yield MetricQuery(
        key=f"restarts/{where}",
        signal="restarts",
        title=f"Restarts of {label}",
        promql=f"max by (pod) (kube_pod_container_status_restarts_total{sel})",
        unit="count",
        resource=workload,
        container=cname,
    )


def node_queries(node: KubeObject) -> Iterator[MetricQuery]:
    ref = kube.ref(node)
    name = ref.name
    yield MetricQuery(
        key=f"node_pressure/{name}",
        signal="node_pressure",
        title=f"Pressure conditions of node {name} (1 = true)",
        promql=(
            "max by (condition) (kube_node_status_condition"
            f'{{node={_quote(name)}, condition=~"MemoryPressure|DiskPressure|PIDPressure", '
            'status="true"})'
        ),
        unit="",
        resource=ref,
    )
    allocatable = ((node.get("status") or {}).get("allocatable") or {}).get("memory")
    yield MetricQuery(
        key=f"node_memory/{name}",
        signal="node_memory",
        title=f"Memory working set of all containers on node {name}",
        promql=(
            "sum(container_memory_working_set_bytes"
            f'{{node={_quote(name)}, container!="", container!="POD"}})'
        ),
        unit="bytes",
        resource=ref,
        limit=_bytes(allocatable),
    )


def volume_queries(pvc: KubeObject) -> Iterator[MetricQuery]:
    ref = kube.ref(pvc)
    assert ref.namespace is not None
    sel = _matchers(namespace=ref.namespace, persistentvolumeclaim=ref.name)
    capacity = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
    yield MetricQuery(
        key=f"volume_used/{_path(ref)}",
        signal="volume_used",
        title=f"Bytes used on volume {_path(ref)}",
        promql=f"max(kubelet_volume_stats_used_bytes{sel})",
        unit="bytes",
        resource=ref,
        limit=_bytes(capacity),  # the request; the filesystem's own size wins when known
        limit_promql=f"max(kubelet_volume_stats_capacity_bytes{sel})",
        limit_name="capacity",
    )


def hpa_queries(hpa: KubeObject) -> Iterator[MetricQuery]:
    ref = kube.ref(hpa)
    assert ref.namespace is not None
    max_replicas = (hpa.get("spec") or {}).get("maxReplicas")
    sel = _matchers(namespace=ref.namespace, horizontalpodautoscaler=ref.name)
    yield MetricQuery(
        key=f"hpa_replicas/{_path(ref)}",
        signal="hpa_replicas",
        title=f"Replicas of HPA {_path(ref)}",
        promql=f"max(kube_horizontalpodautoscaler_status_current_replicas{sel})",
        unit="count",
        resource=ref,
        limit=float(max_replicas) if isinstance(max_replicas, int) else None,
        limit_name="maxReplicas",
    )


# --- the plan ----------------------------------------------------------------------------


def _focus_first(ctx: TriageContext, refs: set[ObjectRef]) -> list[ObjectRef]:
    return sorted(refs, key=lambda r: (ctx.distance.get(r, 99), r))


def _workload_containers(ctx: TriageContext) -> dict[ObjectRef, dict[str, Mapping[str, Any]]]:
    """Workloads of the alerted pods (or the alerted workloads), with their containers."""
    pods = [ctx.objects[r] for r in ctx.focus if r.kind == "Pod" and r in ctx.objects]
    for ref in ctx.focus:
        if ref.kind == "Service" and ref in ctx.objects:  # a latency alert names a Service
            pods.extend(ctx.pods_selected_by(ctx.objects[ref]))
    for ref in ctx.focus:
        if ref.kind in kube.WORKLOAD_KINDS or ref.kind == "HorizontalPodAutoscaler":
            target = ref
            if ref.kind == "HorizontalPodAutoscaler":
                scale = (ctx.objects.get(ref) or {}).get("spec", {}).get("scaleTargetRef") or {}
                target = ObjectRef(str(scale.get("kind")), ref.namespace, str(scale.get("name")))
            pods.extend(ctx.pods_of(target))
    found: dict[ObjectRef, dict[str, Mapping[str, Any]]] = {}
    for pod in sorted(pods, key=kube.ref):
        if kube.namespace(pod) is None:
            continue
        workload = ctx.workload_of(pod)
        specs = found.setdefault(workload, {})
        for ctr in kube.containers(pod, include_init=False):
            specs.setdefault(ctr.name, ctr.spec)
    return found


def _chosen_containers(
    ctx: TriageContext, specs: Mapping[str, Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    wanted = ctx.alert.labels.get("container")
    ordered = sorted(
        specs.values(),
        key=lambda s: (
            s.get("name") != wanted,
            not (s.get("resources") or {}).get("limits"),
            str(s.get("name")),
        ),
    )
    return ordered[:MAX_CONTAINERS]


def plan(ctx: TriageContext) -> list[MetricQuery]:
    """The queries worth running for this triage, most relevant first, bounded in number."""
    queries: list[MetricQuery] = []
    expr = alert_expression(ctx.alert.generator_url)
    if expr is not None:
        subject = _focus_first(ctx, set(ctx.focus))
        queries.append(
            MetricQuery(
                key=f"alert/{ctx.alert.alertname}",
                signal="alert_expr",
                title=f"Expression of alert {ctx.alert.alertname}",
                promql=expr,
                unit="",
                resource=subject[0] if subject else None,
            )
        )
    workloads = _workload_containers(ctx)
    for workload in _focus_first(ctx, set(workloads))[:MAX_WORKLOADS]:
        for spec in _chosen_containers(ctx, workloads[workload]):
            queries.extend(container_queries(workload, spec))
    nodes: set[ObjectRef] = {r for r in ctx.focus if r.kind == "Node"}
    for ref in ctx.focus:
        pod = ctx.objects.get(ref) if ref.kind == "Pod" else None
        node_name = (pod or {}).get("spec", {}).get("nodeName")
        if node_name:
            nodes.add(ObjectRef("Node", None, str(node_name)))
    for ref in _focus_first(ctx, nodes)[:MAX_NODES]:
        node = ctx.objects.get(ref)
        if node is not None:
            queries.extend(node_queries(node))
    volumes = {r for r in ctx.objects if r.kind == "PersistentVolumeClaim"}
    for ref in _focus_first(ctx, volumes)[:MAX_VOLUMES]:
        queries.extend(volume_queries(ctx.objects[ref]))
    hpas = {r for r in ctx.objects if r.kind == "HorizontalPodAutoscaler"}
    for ref in _focus_first(ctx, hpas)[:1]:
        queries.extend(hpa_queries(ctx.objects[ref]))
    return queries
