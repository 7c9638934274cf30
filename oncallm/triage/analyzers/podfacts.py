"""Facts about pods and their workloads that the pod-level analyzers share.

The pods, config, scheduling, storage and nodes analyzers all aggregate per workload,
pick the pod a human should look at first, print times the same way and build the same
kubectl commands; doing it in one place keeps their summaries and recommendations alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.sources.snapshot import parse_time
from oncallm.triage import kube
from oncallm.triage.context import TriageContext
from oncallm.triage.recommendations import kubectl

# Kinds `kubectl set resources` / `set env` / `rollout` accept; CronJobs and bare pods are
# changed by editing the manifest instead.
SETTABLE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
ROLLOUT_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


# An application failing to write because its filesystem is full.
NO_SPACE = re.compile(
    r"No space left on device|ENOSPC|Disk quota exceeded|database or disk is full", re.I
)


# The kubelet's messages when it evicts a pod for its *own* limits (pkg/kubelet/eviction):
# the workload wrote more than it declared, however much the node had free — so the fix
# is in the workload, not the node. Each maps to how a person names the limit.
_QUOTED = (
    r"\"?([^\"\s]+?)\"?\.?(?:\s|$)"  # a name or quantity, maybe quoted, maybe ending a sentence
)
_OWN_LIMIT_EVICTIONS = (
    (
        re.compile(
            r"ephemeral local storage usage exceeds the total limit of containers " + _QUOTED
        ),
        "ephemeral-storage limit {0} (all containers together)",
    ),
    (
        re.compile(r"Container (\S+) exceeded its local ephemeral storage limit " + _QUOTED),
        "ephemeral-storage limit {1} (container {0})",
    ),
    (
        re.compile(r"Usage of EmptyDir volume \"?([^\"\s]+?)\"? exceeds the limit " + _QUOTED),
        "emptyDir volume {0}'s sizeLimit {1}",
    ),
)


def own_limit_eviction(message: str) -> str | None:
    """``ephemeral-storage limit 2Gi (all containers together)`` when an eviction message
    says the pod outgrew a limit of its own; None for node-pressure evictions."""
    for pattern, phrase in _OWN_LIMIT_EVICTIONS:
        if match := pattern.search(message):
            return phrase.format(*match.groups())
    return None


def pod_failure(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) when the kubelet failed the pod as a whole — ``Evicted``,
    ``DeadlineExceeded``, ``Shutdown``, ``NodeLost`` — rather than a container exiting: the
    containers' exit codes (137, from being stopped) then say nothing about why."""
    status = pod.get("status") or {}
    if kube.pod_phase(pod) != "Failed" or not status.get("reason"):
        return None
    return str(status["reason"]), str(status.get("message") or "").strip()


# A log line's leading timestamp: ``2026-11-26 03:12:04.013 UTC``, ``[2026/11/12 08:05:15]``.
_LOG_TIME = re.compile(
    r"^\s*\[?\d{4}[-/]\d{2}[-/]\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"
    r"(?:Z|[+-]\d{2}:?\d{2}| ?UTC)?\]?\s*"
)


def tidy(line: str, limit: int = 200) -> str:
    """A log line for a summary: without its timestamp, trimmed."""
    text = _LOG_TIME.sub("", line).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stamp(when: datetime | None, now: datetime) -> str:
    """``12:03Z`` on the day of ``now``, ``05-01 12:03Z`` on another day."""
    if when is None:
        return "?"
    if when.date() == now.date():
        return f"{when:%H:%M}Z"
    return f"{when:%Y-%m-%d %H:%M}Z"


def time_of(value: Any) -> datetime | None:
    return parse_time(value)


def is_recent(ctx: TriageContext, when: datetime | None) -> bool:
    """Around or after the alert started (the same window that makes events current)."""
    return when is None or when >= ctx.alert.starts_at - ctx.stale_after


def resource_arg(ref: ObjectRef) -> str:
    """``deployment/api`` — how kubectl names an object on its command line."""
    return f"{ref.kind.lower()}/{ref.name}"


def pod_ref(pod: Mapping[str, Any]) -> ObjectRef:
    return ObjectRef("Pod", kube.namespace(pod), kube.name(pod))


def live_pods(ctx: TriageContext) -> list[KubeObject]:
    """Pods whose containers can be broken. Succeeded pods finished their work; pods the
    kubelet ended itself (``Failed`` with a reason: Evicted, Shutdown, NodeLost...) died of
    their node, which the nodes analyzer reports."""
    return [
        p
        for p in ctx.pods()
        if not kube.pod_finished(p)
        and not (kube.pod_phase(p) == "Failed" and (p.get("status") or {}).get("reason"))
    ]


def first_pod(ctx: TriageContext, pods: Sequence[KubeObject]) -> KubeObject:
    """The pod to name as subject: one the alert is about, else the closest to it."""
    return min(
        pods,
        key=lambda p: (
            not ctx.is_focus(pod_ref(p)),
            ctx.distance.get(pod_ref(p), 99),
            kube.name(p),
        ),
    )


def pods_phrase(pods: Sequence[Mapping[str, Any]], limit: int = 3) -> str:
    names = sorted({kube.name(p) for p in pods})
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def owner_phrase(workload: ObjectRef) -> str:
    """``Deployment shop/api`` — or ``pod shop/x`` for a pod nobody controls."""
    if workload.kind == "Pod":
        return f"pod {workload.namespace}/{workload.name}"
    return str(workload)


def workload_facts(workload: ObjectRef) -> dict[str, Any]:
    return {
        "workload_kind": workload.kind,
        "workload_namespace": workload.namespace,
        "workload_name": workload.name,
    }


def workload_from_facts(facts: Mapping[str, Any]) -> ObjectRef:
    return ObjectRef(
        str(facts["workload_kind"]), facts.get("workload_namespace"), str(facts["workload_name"])
    )


def describe_pod(pod_name: str, namespace: str | None) -> str:
    return kubectl("describe", "pod", pod_name, namespace=namespace)


def pod_events(pod_name: str, namespace: str | None) -> str:
    return kubectl(
        "get",
        "events",
        f"--field-selector involvedObject.kind=Pod,involvedObject.name={pod_name}",
        "--sort-by=.lastTimestamp",
        namespace=namespace,
    )


def object_events(ref: ObjectRef) -> str:
    return kubectl(
        "get",
        "events",
        f"--field-selector involvedObject.kind={ref.kind},involvedObject.name={ref.name}",
        "--sort-by=.lastTimestamp",
        namespace=ref.namespace,
    )


def edit_command(workload: ObjectRef) -> str:
    if workload.kind == "Pod":
        # A bare pod's spec is mostly immutable: change its manifest and recreate it.
        return f"# edit the manifest of pod {workload.name}, then kubectl replace --force -f it"
    return kubectl("edit", resource_arg(workload), namespace=workload.namespace)


def rollout_undo(workload: ObjectRef) -> list[str]:
    if workload.kind not in ROLLOUT_KINDS:
        return []
    arg = resource_arg(workload)
    return [
        kubectl("rollout", "history", arg, namespace=workload.namespace),
        kubectl("rollout", "undo", arg, namespace=workload.namespace),
    ]


def claims_of(pod: Mapping[str, Any], container: str | None = None) -> list[ObjectRef]:
    """PersistentVolumeClaims a pod (or one of its containers) mounts."""
    spec = pod.get("spec") or {}
    by_volume = {
        str(v.get("name")): str(v["persistentVolumeClaim"]["claimName"])
        for v in spec.get("volumes") or []
        if (v.get("persistentVolumeClaim") or {}).get("claimName")
    }
    if container is not None:
        mounted = {
            str(m.get("name"))
            for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
            if c.get("name") == container
            for m in c.get("volumeMounts") or []
        }
        by_volume = {v: c for v, c in by_volume.items() if v in mounted}
    ns = kube.namespace(pod)
    return [ObjectRef("PersistentVolumeClaim", ns, c) for c in dict.fromkeys(by_volume.values())]


_HEAP_FLAGS = (
    re.compile(r"-Xmx(\d+)([kKmMgG]?)\b"),  # JVM
    re.compile(r"--max-old-space-size=(\d+)()"),  # Node.js, in MiB
)
_HEAP_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def memory_text(amount: Decimal) -> str:
    """A memory size rounded up to 64Mi, as a limit is written: ``2304Mi``, ``3Gi``."""
    mebibytes = int(-(-amount // (64 * 2**20))) * 64
    return f"{mebibytes // 1024}Gi" if mebibytes % 1024 == 0 else f"{mebibytes}Mi"


def heap_setting(container: Mapping[str, Any]) -> tuple[str, str, int] | None:
    """(flag, where it is set, bytes) for a runtime heap cap in a container's env or args:
    a heap as large as the memory limit leaves no room for the rest of the process."""
    places = [
        (f"env {e.get('name')}", str(e.get("value")))
        for e in container.get("env") or []
        if isinstance(e.get("value"), str)
    ]
    places += [
        ("args", str(a))
        for a in [*(container.get("command") or []), *(container.get("args") or [])]
    ]
    for where, text in places:
        for index, pattern in enumerate(_HEAP_FLAGS):
            if match := pattern.search(text):
                unit = _HEAP_UNITS[match[2].lower()] if index == 0 else 2**20
                return match[0], where, int(match[1]) * unit
    return None


def unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


_SIGNALS = {6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"}
_EXIT_MEANING = {
    0: "exited successfully — a long-running process returned",
    1: "application error",
    2: "usage error or Go panic",
    126: "command not executable",
    127: "command not found",
    134: "aborted, SIGABRT",
    137: "killed by SIGKILL from outside the process",
    139: "segmentation fault, SIGSEGV",
    143: "terminated by SIGTERM",
    255: "fatal error, exit status -1",
}


def exit_meaning(code: int | None) -> str:
    if code is None:
        return "unknown exit code"
    if code in _EXIT_MEANING:
        return _EXIT_MEANING[code]
    if 128 < code < 160:
        return f"killed by signal {_SIGNALS.get(code - 128, code - 128)}"
    return "application error"


def port_number(port: Any, container: Mapping[str, Any]) -> str:
    """A probe's port as a number: a named port (``http``) resolved from the container."""
    for declared in container.get("ports") or []:
        if port is not None and declared.get("name") == port:
            return str(declared.get("containerPort"))
    return str(port)


def probe_text(probe: Mapping[str, Any], container: Mapping[str, Any]) -> str:
    """``GET :8080/healthz`` / ``TCP :5432`` / ``exec `pg_isready``` — what the kubelet does."""
    if http := probe.get("httpGet"):
        scheme = "HTTPS " if str(http.get("scheme", "")).upper() == "HTTPS" else ""
        port = port_number(http.get("port"), container)
        return f"{scheme}GET :{port}{http.get('path') or '/'}"
    if tcp := probe.get("tcpSocket"):
        return f"TCP :{port_number(tcp.get('port'), container)}"
    if grpc := probe.get("grpc"):
        return f"gRPC :{port_number(grpc.get('port'), container)}"
    if exec_ := probe.get("exec"):
        return f"exec `{' '.join(str(a) for a in exec_.get('command') or [])}`"
    return "probe"


def probe_timing(probe: Mapping[str, Any]) -> dict[str, int]:
    return {
        "timeoutSeconds": int(probe.get("timeoutSeconds") or 1),
        "periodSeconds": int(probe.get("periodSeconds") or 10),
        "failureThreshold": int(probe.get("failureThreshold") or 3),
        "initialDelaySeconds": int(probe.get("initialDelaySeconds") or 0),
    }


def state_text(label: str, state: Mapping[str, Any]) -> str:
    keys = ("reason", "exitCode", "signal", "startedAt", "finishedAt", "message")
    return f"{label}: " + " ".join(f"{k}={state[k]}" for k in keys if state.get(k) is not None)
