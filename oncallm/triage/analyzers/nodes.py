"""Nodes analyzer: nodes that are down or under pressure, and the pods that pay for it.

It owns ``NodeFailure``: a Node whose ``Ready`` condition is False/Unknown, with
Memory/Disk/PID pressure or an unavailable network, or a known-bad node-problem-detector
condition (``KernelDeadlock``, ``ReadonlyFilesystem``...) that is True — other condition
types are ignored, since custom detectors report many harmless ones. Pods on a failing
node (not ready, marked for deletion by the taint manager, evicted for node pressure)
get findings that blame the Node, so the Node ranks as the cause. A pod evicted for
exceeding its own ephemeral-storage limit is its workload's fault, not the node's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import Analyzer, nodes_advice
from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.taxonomy import Category

NAME = "nodes"
PRESSURE = {
    "MemoryPressure": "memory pressure",
    "DiskPressure": "disk pressure",
    "PIDPressure": "PID pressure",
    "NetworkUnavailable": "its network unavailable",
}
# node-problem-detector conditions that mean real trouble when True; any other custom type
# is left alone (k8sgpt reported FrequentContainerdRestart=False as a failure).
KNOWN_BAD = {
    "KernelDeadlock": "a kernel deadlock",
    "ReadonlyFilesystem": "a read-only filesystem",
    "FrequentKubeletRestart": "the kubelet restarting repeatedly",
    "FrequentContainerdRestart": "containerd restarting repeatedly",
    "FrequentDockerRestart": "docker restarting repeatedly",
    "CorruptDockerOverlay2": "a corrupt overlay2 storage driver",
}
NODE_EVENTS = (
    "SystemOOM",
    "EvictionThresholdMet",
    "Rebooted",
    "ImageGCFailed",
    "ContainerGCFailed",
    "FreeDiskSpaceFailed",
    "NodeNotReady",
)
_LOW_ON = re.compile(r"low on resource: (?P<resource>[\w-]+)")
_USING = re.compile(r"Container (?P<ctr>\S+) was using (?P<used>\S+), request is (?P<req>[^\s,]+)")


def _problems(node: KubeObject) -> list[tuple[str, str, float, datetime | None]]:
    """(condition, how the node is, confidence, since) for every bad condition — the
    second reads after "Node x": "is NotReady since 02:15Z: NodeStatusUnknown — ..."."""
    found: list[tuple[str, str, float, datetime | None]] = []
    for cond in (node.get("status") or {}).get("conditions") or []:
        kind, status = str(cond.get("type")), cond.get("status")
        since = pf.time_of(cond.get("lastTransitionTime"))
        reason, message = cond.get("reason"), str(cond.get("message") or "").rstrip(".")
        if kind == "Ready" and status in ("False", "Unknown"):
            state = "NotReady" if status == "False" else "NotReady (status Unknown)"
            detail = " — ".join(str(x) for x in (reason, message) if x) or "kubelet not ready"
            found.append((state, f"is {state} since {{since}}: {detail}", 0.9, since))
        elif kind in PRESSURE and status == "True":
            detail = message or str(reason or PRESSURE[kind])
            found.append((kind, f"has {kind} since {{since}}: {detail}", 0.85, since))
        elif kind in KNOWN_BAD and status == "True":
            detail = message or str(reason or "")
            found.append(
                (kind, f"reports {KNOWN_BAD[kind]} ({kind}) since {{since}}: {detail}", 0.6, since)
            )
    return found


def _pods_on(ctx: TriageContext, node: str) -> list[KubeObject]:
    return [p for p in pf.live_pods(ctx) if (p.get("spec") or {}).get("nodeName") == node]


def _affected(ctx: TriageContext, pod: KubeObject) -> list[Any]:
    """Signs a pod suffers from its node: node-controller events, or not ready there."""
    ref = pf.pod_ref(pod)
    events = [e for e in ctx.events_of(ref) if e.reason in ("NodeNotReady", "TaintManagerEviction")]
    if events or kube.pod_phase(pod) == "Unknown" or not kube.pod_ready(pod):
        return events or [None]
    return []


def _node_findings(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    for node in ctx.of_kind("Node"):
        ref, name = kube.ref(node), kube.name(node)
        problems = _problems(node)
        events = [e for e in ctx.events_of(ref) if e.reason in NODE_EVENTS]
        recent_down = [e for e in events if e.reason == "NodeNotReady"]
        if not problems and recent_down:  # back to Ready, but it went down during the alert
            down = recent_down[-1]
            said = f"was NotReady at {{since}} and is Ready again: {down.message}"
            problems.append(("NotReady earlier", said, 0.5, down.last_seen))
        if not problems:
            continue
        problems.sort(key=lambda p: -p[2])
        problems = [
            (c, m.replace("{since}", pf.stamp(s, ctx.now)), x, s) for c, m, x, s in problems
        ]
        _condition, meaning, confidence, since = problems[0]
        pods = _pods_on(ctx, name)
        hurt = [p for p in pods if _affected(ctx, p)]
        evidence = [
            ledger.cite_object(ref, f"status.conditions[{c}]", f"Node {name} {m}")
            for c, m, _x, _s in problems
        ]
        evidence += [ledger.cite_event(ref, e.reason, e.describe()) for e in events[-3:]]
        summary = f"Node {name} {meaning[:300]}"
        others = [c for c, _m, _x, _s in problems[1:]]
        if others:
            summary += f"; also {', '.join(others)}"
        if hurt:
            summary += f"; {len(hurt)} pod(s) on it affected ({pf.pods_phrase(hurt)})"
        if (node.get("spec") or {}).get("unschedulable"):
            summary += "; it is cordoned"
        yield Finding(
            category=Category.NodeFailure,
            summary=summary,
            subject=ref,
            resource=ref,
            evidence=pf.unique(evidence),
            confidence=confidence,
            analyzer=NAME,
            facts={
                "problem": "node",
                "node": name,
                "conditions": [c for c, *_ in problems],
                "meaning": meaning,
                "since": pf.stamp(since, ctx.now),
                "pods": sorted(kube.name(p) for p in hurt),
                "events": [e.reason for e in events],
            },
        )


def _pod_findings(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    """Pods hit by a failing node: they blame it, so the node ranks as their cause."""
    bad_nodes = {kube.name(n) for n in ctx.of_kind("Node") if _problems(n)}
    for pod in pf.live_pods(ctx):
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or kube.pod_phase(pod) == "Failed":
            continue
        signs = _affected(ctx, pod)
        events = [e for e in signs if e is not None]
        if not signs or (node not in bad_nodes and (not events or kube.pod_ready(pod))):
            continue
        ref, node_ref = pf.pod_ref(pod), ObjectRef("Node", None, str(node))
        evidence = [ledger.cite_event(ref, e.reason, e.describe()) for e in events[-2:]]
        if not evidence:
            evidence.append(
                ledger.cite_object(
                    ref,
                    "status.phase",
                    f"phase={kube.pod_phase(pod)} ready={kube.pod_ready(pod)} node={node}",
                )
            )
        workload = ctx.workload_of(pod)
        what = (
            "is marked for deletion"
            if any(e.reason == "TaintManagerEviction" for e in events)
            else "is not ready"
        )
        yield Finding(
            category=Category.NodeFailure,
            summary=f"pod {ref.namespace}/{ref.name} of {pf.owner_phrase(workload)} {what} "
            f"on failing node {node}",
            subject=ref,
            resource=node_ref,
            evidence=pf.unique(evidence),
            confidence=0.6 if events else 0.55,
            analyzer=NAME,
            blames=(node_ref,),
            facts={
                "problem": "pod-on-node",
                "node": node,
                "pod": ref.name,
                **pf.workload_facts(workload),
            },
        )


def _evictions(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    groups: dict[tuple[ObjectRef, str, bool], list[tuple[KubeObject, list[str]]]] = {}
    for pod in ctx.pods():
        status = pod.get("status") or {}
        if kube.pod_phase(pod) != "Failed" or status.get("reason") != "Evicted":
            continue
        ref = pf.pod_ref(pod)
        events = ctx.warnings_of(ref, "Evicted")
        changed = [pf.time_of(c.get("lastTransitionTime")) for c in status.get("conditions") or []]
        latest = max((t for t in changed if t is not None), default=None)
        if not events and (latest is None or not pf.is_recent(ctx, latest)):
            continue  # evicted pods linger for days: old ones are history
        message = str(status.get("message") or (events[-1].message if events else ""))
        evidence = [ledger.cite_object(ref, "status", f"phase=Failed reason=Evicted: {message}")]
        evidence += [ledger.cite_event(ref, e.reason, e.describe()) for e in events[-1:]]
        own = pf.own_limit_eviction(message) is not None
        # An eviction for the pod's own limit follows the workload to every node it runs on:
        # one finding per workload, not per node.
        node = "" if own else str((pod.get("spec") or {}).get("nodeName") or "")
        groups.setdefault((ctx.workload_of(pod), node, own), []).append((pod, evidence))
    for (workload, node, own), entries in groups.items():
        pods = [p for p, _e in entries]
        subject = pf.first_pod(ctx, pods)
        message = str((subject.get("status") or {}).get("message") or "")
        node_ref = ObjectRef("Node", None, node) if node else None
        low = _LOW_ON.search(message)
        using = _USING.search(message)
        reason = f"the node was low on {low['resource']}" if low else message[:200]
        where = f"from node {node or '?'}"
        if own:
            reason = f"it exceeded its own {pf.own_limit_eviction(message)} ({message[:160]})"
            nodes = {str((p.get("spec") or {}).get("nodeName") or "?") for p in pods}
            where = f"on {len(nodes)} node(s)"
        summary = f"{len(pods)} pod(s) of {pf.owner_phrase(workload)} evicted {where}: {reason}"
        if using:
            summary += (
                f"; container {using['ctr']} was using {_amount(using['used'])} "
                f"against a {_amount(using['req'])} request"
            )
        yield Finding(
            category=Category.NodeFailure,
            summary=summary,
            subject=pf.pod_ref(subject),
            resource=workload if own or node_ref is None else node_ref,
            evidence=pf.unique(e for _p, ev in entries for e in ev),
            confidence=0.8 if own else 0.7,
            analyzer=NAME,
            blames=() if own or node_ref is None else (node_ref,),
            facts={
                "problem": "evicted-own-limit" if own else "evicted",
                "node": node,
                "pod": kube.name(subject),
                "pods": sorted(kube.name(p) for p in pods),
                "message": message,
                "resource": low["resource"] if low else None,
                "container": using["ctr"] if using else None,
                **pf.workload_facts(workload),
            },
        )


def _amount(quantity: str) -> str:
    """``1843212Ki`` -> ``1.8Gi``: the kubelet's eviction message in units people read."""
    parsed = kube.parse_quantity(quantity)
    return kube.format_bytes(parsed) if parsed is not None and parsed >= 1024 else quantity


def analyze(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    yield from _node_findings(ctx, ledger)
    yield from _pod_findings(ctx, ledger)
    yield from _evictions(ctx, ledger)


ANALYZER = Analyzer(
    name=NAME,
    categories=frozenset({Category.NodeFailure}),
    analyze=analyze,
    recommend=nodes_advice.recommend,
)
