"""Summaries of the Kubernetes kinds around a workload, and the wording they share.

Each summariser turns one object (kubectl JSON) into a few fact lines the model reads:
a Node's conditions and taints, a Service's selector, ports and endpoint counts, a PVC's
phase and class, an HPA's replicas against its bounds, a quota's use against its hard
limits, a ConfigMap's keys and short values, a Secret's key names (values are never
read). Pods and workloads, which need more, live in :mod:`oncallm.llm.digest_objects`.
The alert and the deterministic findings get their wording here too. Times are phrased
relative to the alert's start (``3m before alert``), the moment the model reasons from.
:func:`healthy` says whether an object shows no trouble of its own, so compression can
drop it first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.sources.snapshot import parse_time
from oncallm.triage import kube
from oncallm.triage.context import TriageContext

MAX_VALUE = 160  # an env or ConfigMap value longer than this is a blob: its head suffices
MAX_MESSAGE = 200
MAX_JSON = 300
NODE_PRESSURES = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")


def clip(text: Any, limit: int = MAX_MESSAGE) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def compact(value: Any, limit: int = MAX_JSON) -> str:
    return clip(json.dumps(value, separators=(",", ":"), sort_keys=True), limit)


def pairs(mapping: Mapping[str, Any] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((mapping or {}).items()))


def relative(when: datetime | None, ctx: TriageContext) -> str:
    """A time as distance from the alert's start, which the model reasons from."""
    if when is None:
        return "time unknown"
    seconds = int((ctx.alert.starts_at - when).total_seconds())
    side = "before" if seconds >= 0 else "after"
    seconds = abs(seconds)
    if seconds < 120:
        span = f"{seconds}s"
    elif seconds < 120 * 60:
        span = f"{round(seconds / 60)}m"
    elif seconds < 48 * 3600:
        span = f"{round(seconds / 3600)}h"
    else:
        span = f"{round(seconds / 86400)}d"
    return f"{span} {side} alert"


def moment(ctx: TriageContext, value: Any) -> str | None:
    return relative(parse_time(value), ctx) if value else None


def facts(*pairs: tuple[str, Any]) -> str:
    """``label value, label value`` for the values that are set."""
    return ", ".join(f"{label} {value}" for label, value in pairs if value not in (None, ""))


def conditions(obj: Mapping[str, Any], good: Mapping[str, str], *, only_bad: bool) -> str:
    """``Type=Status`` for each condition; reason and message where it is not ``good``
    (default ``True``)."""
    parts = []
    for cond in (obj.get("status") or {}).get("conditions") or []:
        ctype, status = str(cond.get("type")), str(cond.get("status"))
        bad = status != good.get(ctype, "True")
        if only_bad and not bad:
            continue
        text = f"{ctype}={status}"
        if bad and (cond.get("reason") or cond.get("message")):
            text += f" {cond.get('reason') or ''}".rstrip()
            if cond.get("message"):
                text += f": {clip(cond['message'])}"
        parts.append(text)
    return "; ".join(parts)


def resources(spec: Mapping[str, Any]) -> str:
    res = spec.get("resources") or {}
    parts = [
        f"{which} {pairs(res.get(which))}" for which in ("requests", "limits") if res.get(which)
    ]
    return "; ".join(parts) or "no requests or limits"


def _node(ctx: TriageContext, obj: KubeObject) -> list[str]:
    spec, status, labels = obj.get("spec") or {}, obj.get("status") or {}, kube.labels(obj)
    good = {"Ready": "True", **dict.fromkeys(NODE_PRESSURES, "False")}
    lines = [f"conditions {conditions(obj, good, only_bad=False)}"]
    taints = [
        f"{t.get('key')}={t.get('value', '')}:{t.get('effect')}" for t in spec.get("taints") or []
    ]
    lines.append(
        facts(
            ("cordoned", "(unschedulable)" if spec.get("unschedulable") else None),
            ("zone", labels.get("topology.kubernetes.io/zone")),
            ("instance-type", labels.get("node.kubernetes.io/instance-type")),
            ("taints", ",".join(taints)),
        )
    )
    allocatable = status.get("allocatable") or {}
    keep = ("cpu", "memory", "pods", "ephemeral-storage")
    lines.append(
        facts(("allocatable", pairs({k: allocatable[k] for k in keep if k in allocatable})))
    )
    return lines


def _service(ctx: TriageContext, obj: KubeObject) -> list[str]:
    spec, ref = obj.get("spec") or {}, kube.ref(obj)
    ports = [
        f"{p.get('name', '')}:{p.get('port')}->{p.get('targetPort', p.get('port'))}"
        f"/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    ]
    ready = ctx.ready_endpoints(ref)
    endpoints = ctx.get("Endpoints", ref.namespace, ref.name) or {}
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in endpoints.get("subsets") or [])
    return [
        facts(
            ("type", spec.get("type", "ClusterIP")),
            ("clusterIP", spec.get("clusterIP")),
            ("ports", ",".join(ports) or "none"),
        ),
        f"selector {pairs(spec.get('selector')) or 'none (endpoints managed by hand)'}",
        "endpoints not read"
        if ready is None
        else f"endpoints ready {ready}, not ready {not_ready}",
    ]


def endpoints(ctx: TriageContext, obj: KubeObject) -> list[str] | None:
    ref = kube.ref(obj)
    service = kube.labels(obj).get("kubernetes.io/service-name", ref.name)
    if ctx.get("Service", ref.namespace, service):
        return None  # the Service's summary counts them
    return [f"subsets {compact(obj.get('subsets') or obj.get('endpoints') or [])}"]


def _pvc(ctx: TriageContext, obj: KubeObject) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    line = facts(
        ("phase", status.get("phase", "?")),
        ("storageClass", spec.get("storageClassName") or "none set"),
        ("access", ",".join(spec.get("accessModes") or [])),
        ("requested", ((spec.get("resources") or {}).get("requests") or {}).get("storage")),
        ("volume", spec.get("volumeName") or "none"),
    )
    conds = conditions(obj, {}, only_bad=False)
    return [line, f"conditions {conds}" if conds else ""]


def _pv(ctx: TriageContext, obj: KubeObject) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    claim = spec.get("claimRef") or {}
    line = facts(
        ("phase", status.get("phase", "?")),
        ("storageClass", spec.get("storageClassName")),
        ("capacity", (spec.get("capacity") or {}).get("storage")),
        ("access", ",".join(spec.get("accessModes") or [])),
        ("claim", f"{claim.get('namespace')}/{claim.get('name')}" if claim else "none"),
        ("reclaim", spec.get("persistentVolumeReclaimPolicy")),
    )
    return [line, facts(("nodeAffinity", compact(spec.get("nodeAffinity") or {})))]


def _storage_class(ctx: TriageContext, obj: KubeObject) -> list[str]:
    annotations = kube.meta(obj).get("annotations") or {}
    default = annotations.get("storageclass.kubernetes.io/is-default-class") == "true"
    return [
        facts(
            ("provisioner", obj.get("provisioner")),
            ("binding", obj.get("volumeBindingMode", "Immediate")),
            ("reclaim", obj.get("reclaimPolicy", "Delete")),
            ("default", str(default).lower()),
        ),
        facts(("parameters", pairs(obj.get("parameters")))),
        facts(("allowedTopologies", compact(obj.get("allowedTopologies") or []))),
    ]


def _hpa(ctx: TriageContext, obj: KubeObject) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    target = spec.get("scaleTargetRef") or {}
    wanted = spec.get("metrics") or spec.get("targetCPUUtilizationPercentage")
    current = status.get("currentMetrics") or status.get("currentCPUUtilizationPercentage")
    conds = conditions(obj, {"ScalingLimited": "False"}, only_bad=False)
    return [
        facts(
            ("target", f"{target.get('kind')} {target.get('name')}"),
            ("replicas current", status.get("currentReplicas")),
            ("desired", status.get("desiredReplicas")),
            ("min", spec.get("minReplicas", 1)),
            ("max", spec.get("maxReplicas")),
        ),
        f"metrics target {compact(wanted, 200)} current {compact(current, 200)}",
        f"conditions {conds}" if conds else "",
    ]


def _quota(ctx: TriageContext, obj: KubeObject) -> list[str]:
    status = obj.get("status") or {}
    hard = status.get("hard") or (obj.get("spec") or {}).get("hard") or {}
    used = status.get("used") or {}
    return [
        "used/hard " + ", ".join(f"{k} {used.get(k, '?')}/{v}" for k, v in sorted(hard.items()))
    ]


def _config_map(ctx: TriageContext, obj: KubeObject) -> list[str]:
    data = {**(obj.get("data") or {}), **dict.fromkeys(obj.get("binaryData") or {}, "<binary>")}
    lines = []
    for key, value in sorted(data.items()):
        text = str(value)
        if "\n" in text.strip():
            flat = clip(text.replace("\n", " | "), MAX_VALUE)
            lines.append(f"{key} ({len(text.splitlines())} lines): {flat}")
        else:
            lines.append(f"{key}={clip(text, MAX_VALUE)}")
    return lines or ["no data"]


def _secret(ctx: TriageContext, obj: KubeObject) -> list[str]:
    keys = sorted({*(obj.get("data") or {}), *(obj.get("stringData") or {})})
    return [
        f"type {obj.get('type', 'Opaque')}, keys {', '.join(keys) or 'none'} (values never read)"
    ]


def _namespace(ctx: TriageContext, obj: KubeObject) -> list[str]:
    labels = {k: v for k, v in kube.labels(obj).items() if k != "kubernetes.io/metadata.name"}
    return [
        facts(("phase", (obj.get("status") or {}).get("phase", "?")), ("labels", pairs(labels)))
    ]


def _network_policy(ctx: TriageContext, obj: KubeObject) -> list[str]:
    spec = obj.get("spec") or {}
    return [
        facts(
            ("podSelector", compact(spec.get("podSelector") or {}, 120)),
            ("policyTypes", ",".join(spec.get("policyTypes") or [])),
        ),
        *(f"{k} {compact(spec[k])}" for k in ("ingress", "egress") if k in spec),
    ]


def _ingress(ctx: TriageContext, obj: KubeObject) -> list[str]:
    spec = obj.get("spec") or {}
    rules = []
    for rule in spec.get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            svc = (path.get("backend") or {}).get("service") or {}
            port = svc.get("port") or {}
            where = f"{rule.get('host', '*')}{path.get('path', '/')}"
            rules.append(f"{where} -> {svc.get('name')}:{port.get('number') or port.get('name')}")
    return [facts(("class", spec.get("ingressClassName")), ("rules", ", ".join(rules) or "none"))]


def generic(ctx: TriageContext, obj: KubeObject) -> list[str]:
    lines = []
    conds = conditions(obj, {}, only_bad=False)
    if conds:
        lines.append(f"conditions {conds}")
    if obj.get("spec"):
        lines.append(f"spec {compact(obj['spec'])}")
    return lines


# --- the alert and the findings -----------------------------------------------------------


def _utc(when: datetime) -> str:
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return f"{when:%Y-%m-%d %H:%M:%S} UTC"


def alert_text(ctx: TriageContext) -> str:
    alert = ctx.alert
    lines = [
        f"{alert.alertname} ({alert.status}), started {_utc(alert.starts_at)}",
        "labels: " + ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())),
    ]
    lines += [f"{k}: {clip(v, 500)}" for k, v in sorted(alert.annotations.items())]
    where = f"cluster {ctx.cluster}" if ctx.cluster else "cluster unnamed"
    lines.append(f"{where}; context read {relative(ctx.now, ctx)}")
    lines.append("times below are relative to the alert's start")
    return "\n".join(lines)


def ref_from(value: Any) -> ObjectRef | None:
    """An ObjectRef from a result's ``{"kind", "namespace", "name"}``, if it is one."""
    if not isinstance(value, Mapping) or not value.get("kind") or not value.get("name"):
        return None
    return ObjectRef(str(value["kind"]), value.get("namespace") or None, str(value["name"]))


def _named(ref: Mapping[str, Any] | None) -> str:
    found = ref_from(ref)
    return str(found) if found is not None else "none named"


def findings_text(result: Mapping[str, Any]) -> str:
    root = result.get("root_cause") or {}
    findings = [f for f in result.get("findings") or [] if isinstance(f, Mapping)]
    lines: list[str] = []
    if root.get("category") == "Unknown" or not findings:
        lines.append(f"Category Unknown — {root.get('summary', 'nothing found')}")
        if findings:
            lines.append("Findings below the confidence threshold:")
    for rank, f in enumerate(findings, 1):
        tag = " [root cause]" if rank == 1 and root.get("category") != "Unknown" else ""
        lines.append(
            f"{rank}.{tag} {f.get('category')} (confidence {float(f.get('confidence') or 0):.2f})"
            f" — culprit {_named(f.get('resource'))}; seen on {_named(f.get('subject'))}"
        )
        lines.append(f"   {f.get('summary', '')}")
        lines.append("   evidence: " + (", ".join(f.get("evidence") or []) or "none"))
    return "\n".join(lines)


KIND_SUMMARIES: dict[str, Callable[[TriageContext, KubeObject], list[str]]] = {
    "Node": _node, "Service": _service, "PersistentVolumeClaim": _pvc,
    "PersistentVolume": _pv, "StorageClass": _storage_class,
    "HorizontalPodAutoscaler": _hpa, "ResourceQuota": _quota, "ConfigMap": _config_map,
    "Secret": _secret, "Namespace": _namespace, "NetworkPolicy": _network_policy,
    "Ingress": _ingress,
}  # fmt: skip


def _count(obj: Mapping[str, Any], *keys: str) -> int:
    node: Any = obj
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return int(node or 0)


def _conditions_ok(obj: Mapping[str, Any], bad: Iterable[tuple[str, str]]) -> bool:
    return not any(kube.condition_is(obj, ctype, status) for ctype, status in bad)


def healthy(ctx: TriageContext, ref: ObjectRef, obj: KubeObject) -> bool:
    """No trouble of its own, judged from its status (events and logs are checked by the
    caller): running and ready, replicas all ready, bound, has endpoints, below max."""
    kind, spec = ref.kind, obj.get("spec") or {}
    if kind == "Pod":
        return kube.pod_finished(obj) or not kube.pod_unhealthy(obj)
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        ready_all = _count(obj, "status", "readyReplicas") >= int(spec.get("replicas", 1))
        return ready_all and _conditions_ok(
            obj, [("Available", "False"), ("Progressing", "False"), ("ReplicaFailure", "True")]
        )
    if kind == "DaemonSet":
        desired = _count(obj, "status", "desiredNumberScheduled")
        return _count(obj, "status", "numberReady") >= desired
    if kind == "Node":
        pressure = [(c, "True") for c in NODE_PRESSURES]
        node_ready = kube.condition_is(obj, "Ready", "True")
        return node_ready and not spec.get("unschedulable") and _conditions_ok(obj, pressure)
    if kind in ("PersistentVolumeClaim", "PersistentVolume"):
        return str((obj.get("status") or {}).get("phase")) in ("Bound", "Available")
    if kind == "Service":
        endpoints = ctx.ready_endpoints(ref)
        return not spec.get("selector") or endpoints is None or endpoints > 0
    if kind == "HorizontalPodAutoscaler":
        below_max = _count(obj, "status", "currentReplicas") < int(spec.get("maxReplicas") or 0)
        return below_max and _conditions_ok(
            obj, [("AbleToScale", "False"), ("ScalingActive", "False")]
        )
    if kind == "Job":
        return _count(obj, "status", "failed") == 0 and _conditions_ok(obj, [("Failed", "True")])
    if kind == "ResourceQuota":
        status = obj.get("status") or {}
        used = status.get("used") or {}
        return all(
            (u := kube.parse_quantity(used.get(k))) is not None
            and (h := kube.parse_quantity(v)) is not None
            and u < h
            for k, v in (status.get("hard") or {}).items()
        )
    if kind == "Namespace":
        return str((obj.get("status") or {}).get("phase", "Active")) == "Active"
    return _conditions_ok(obj, [("Available", "False"), ("Ready", "False")])
