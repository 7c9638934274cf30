"""Scheduling analyzer: pods no node will take, and pods a ResourceQuota will not admit.

It owns ``Unschedulable`` — a pending pod the scheduler rejects (``PodScheduled=False``,
``FailedScheduling``): not enough cpu/memory, taints, node selectors and affinity. The
culprit is the workload whose requests or placement rules must change; when the scheduler
says the pod waits for an unbound PersistentVolumeClaim the finding is only a symptom
blaming the claim, so the storage analyzer's finding on it ranks as the cause. It owns
``QuotaExceeded`` too: controllers whose pods are forbidden by a quota (``FailedCreate:
exceeded quota``) and quotas used up to their hard limit; the ResourceQuota is the culprit
and each blocked workload's finding blames it (detected in :mod:`quota`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import Analyzer, quota, scheduling_advice
from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.taxonomy import Category

NAME = "scheduling"
_AVAILABLE = re.compile(r"\d+/\d+ nodes are available: (?P<items>.*?)(?:\.\s*preemption:|\.?$)")
_COUNTED = re.compile(r"^(\d+) (.+)$")
_REASONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "volume",
        re.compile(
            r"PersistentVolumeClaim|persistent volume|volume node affinity|"
            r"persistentvolumeclaim|volume",
            re.I,
        ),
    ),
    ("resources", re.compile(r"Insufficient (\S+)")),
    ("taint", re.compile(r"taint \{([^}]*)\}")),
    ("selector", re.compile(r"didn't match Pod's node affinity|node selector|node affinity", re.I)),
    ("affinity", re.compile(r"pod affinity|anti-affinity", re.I)),
    ("topology", re.compile(r"topology spread", re.I)),
    ("cordoned", re.compile(r"were unschedulable|unschedulable", re.I)),
    ("ports", re.compile(r"free ports", re.I)),
    ("pods", re.compile(r"Too many pods", re.I)),
)
_NODE_DOWN_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def parse_unschedulable(message: str) -> list[tuple[str, str, int]]:
    """``0/3 nodes are available: 2 Insufficient memory, 1 node(s) had untolerated taint
    {k: v}.`` -> [("resources", "memory", 2), ("taint", "k: v", 1)]."""
    match = _AVAILABLE.search(message)
    items = match["items"].split(", ") if match else [message]
    parsed: list[tuple[str, str, int]] = []
    for item in items:
        counted = _COUNTED.match(item.strip())
        count, text = (int(counted[1]), counted[2]) if counted else (0, item.strip())
        for reason, pattern in _REASONS:
            if found := pattern.search(text):
                parsed.append((reason, found[1] if found.groups() else text, count))
                break
        else:
            parsed.append(("other", text, count))
    return parsed


def pod_requests(pod_spec: Mapping[str, Any]) -> dict[str, Decimal]:
    """What the scheduler reserves: the sum of the containers' requests (a limit stands in
    for a missing request), or the largest init container's when that is more."""
    total: dict[str, Decimal] = {}
    init_max: dict[str, Decimal] = {}
    for group, into in (("containers", total), ("initContainers", init_max)):
        for ctr in pod_spec.get(group) or []:
            resources = ctr.get("resources") or {}
            wanted = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
            for name, value in wanted.items():
                amount = kube.parse_quantity(value) or Decimal(0)
                if into is total:
                    total[name] = total.get(name, Decimal(0)) + amount
                else:
                    init_max[name] = max(init_max.get(name, Decimal(0)), amount)
    for name, amount in init_max.items():
        total[name] = max(total.get(name, Decimal(0)), amount)
    return total


def _scheduling_message(ctx: TriageContext, pod: KubeObject) -> tuple[str, list[str]] | None:
    scheduled = kube.condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "True":
        return None
    if scheduled and scheduled.get("reason") == "SchedulingGated":
        return None  # held back on purpose until its gates are removed
    if kube.pod_phase(pod) != "Pending" or (pod.get("spec") or {}).get("nodeName"):
        return None
    events = ctx.warnings_of(pf.pod_ref(pod), "FailedScheduling")
    if events:
        return events[-1].message, [e.describe() for e in events[-1:]]
    if scheduled and scheduled.get("reason") == "Unschedulable":
        return str(scheduled.get("message") or "Unschedulable"), []
    return None


def _unschedulable(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    groups: dict[ObjectRef, list[tuple[KubeObject, str, list[str]]]] = {}
    for pod in pf.live_pods(ctx):
        found = _scheduling_message(ctx, pod)
        if found is None:
            continue
        message, described = found
        ref = pf.pod_ref(pod)
        evidence = [ledger.cite_event(ref, "FailedScheduling", d) for d in described]
        if not evidence:
            evidence.append(ledger.cite_object(ref, "status.conditions[PodScheduled]", message))
        groups.setdefault(ctx.workload_of(pod), []).append((pod, message, evidence))
    for workload, entries in groups.items():
        pods = [p for p, _m, _e in entries]
        subject = pf.first_pod(ctx, pods)
        message = next(m for p, m, _e in entries if p is subject)
        yield _unschedulable_finding(
            ctx, workload, subject, pods, message, [e for _p, _m, ev in entries for e in ev]
        )


def _unschedulable_finding(
    ctx: TriageContext,
    workload: ObjectRef,
    pod: KubeObject,
    pods: list[KubeObject],
    message: str,
    evidence: list[str],
) -> Finding:
    reasons = parse_unschedulable(message)
    kinds = {r for r, _d, _c in reasons}
    spec, ns = pod.get("spec") or {}, kube.namespace(pod)
    requests = pod_requests(spec)
    owner = pf.owner_phrase(workload)
    since = kube.condition(pod, "PodScheduled") or {}
    pending = pf.time_of(since.get("lastTransitionTime")) or pf.time_of(
        kube.meta(pod).get("creationTimestamp")
    )
    said = message.split(" preemption:")[0].strip().rstrip(".")
    pending_count = f" ({len(pods)} pods pending)" if len(pods) > 1 else ""
    summary = f"pod {ns}/{kube.name(pod)} of {owner}{pending_count} cannot be scheduled: {said}"
    culprit, blames, confidence = workload, [], 0.85
    if "volume" in kinds:
        claims = [ObjectRef("PersistentVolumeClaim", ns, c) for c in kube.pvc_names(spec)]
        pending_claims = [
            c
            for c in claims
            if (ctx.objects.get(c) or {}).get("status", {}).get("phase") != "Bound"
        ]
        blames = pending_claims or claims
        if kinds <= {"volume", "other"} and blames:
            culprit = blames[0]
            confidence = 0.5  # only a symptom: the claim's own problem is the cause
        else:
            confidence = 0.7  # the volume narrows the nodes; something else rules them out
    short = [r for r in reasons if r[0] == "resources"]
    largest: dict[str, str] = {}
    for resource in {d for _r, d, _c in short}:
        wanted = requests.get(resource)
        offers = [
            kube.parse_quantity(((n.get("status") or {}).get("allocatable") or {}).get(resource))
            for n in ctx.of_kind("Node")
        ]
        known = [o for o in offers if o is not None]
        if wanted is not None:
            summary += f"; it requests {quota.quantity_text(resource, wanted)} {resource}"
        if wanted is not None and known and wanted > max(known):
            largest[resource] = quota.quantity_text(resource, max(known))
            summary += f", more than any node offers ({largest[resource]} allocatable)"
            confidence = 0.9
    if any(taint in message for taint in _NODE_DOWN_TAINTS):
        # Nodes out of service: their failure is why the pod has nowhere to go.
        blames += [
            kube.ref(n)
            for n in ctx.of_kind("Node")
            if any(
                t.get("key") in _NODE_DOWN_TAINTS for t in (n.get("spec") or {}).get("taints") or []
            )
        ]
    if kinds & {"selector", "affinity"}:
        # "matches no node" only when no other reason left a node in play (tainted nodes are
        # dedicated ones), not when e.g. a volume's zone ruled out the rest: then some nodes
        # may well match, and the nodes OncallM read are not all the nodes there are.
        summary += placement_text(ctx, spec, sole=kinds <= {"selector", "affinity", "taint"})
    facts: dict[str, Any] = {
        "pod": kube.name(pod),
        "pods": sorted(kube.name(p) for p in pods),
        "message": message,
        "reasons": [{"reason": r, "detail": d, "nodes": c} for r, d, c in reasons],
        "requests": {k: quota.quantity_text(k, v) for k, v in requests.items()},
        "largest_allocatable": largest,
        "node_selector": spec.get("nodeSelector") or {},
        "tolerations": spec.get("tolerations") or [],
        "pending_since": pf.stamp(pending, ctx.now),
        "containers": [str(c.get("name")) for c in spec.get("containers") or []],
        "cordoned": [
            kube.name(n) for n in ctx.of_kind("Node") if (n.get("spec") or {}).get("unschedulable")
        ],
        **pf.workload_facts(workload),
    }
    return Finding(
        category=Category.Unschedulable,
        summary=summary,
        subject=pf.pod_ref(pod),
        resource=culprit,
        evidence=pf.unique(evidence),
        confidence=confidence,
        analyzer=NAME,
        blames=tuple(dict.fromkeys(blames)),
        facts=facts,
    )


def placement_text(ctx: TriageContext, spec: Mapping[str, Any], *, sole: bool) -> str:
    """``; its nodeSelector pool=render matches no node (nodes have pool=rendering)`` — "matches
    no node" only when placement (not capacity) is what rules the remaining nodes out."""
    selector: Mapping[str, str] = spec.get("nodeSelector") or {}
    node_affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = [
        f"{e.get('key')} {e.get('operator')} {','.join(e.get('values') or [])}".strip()
        for term in node_affinity.get("nodeSelectorTerms") or []
        for e in term.get("matchExpressions") or []
    ]
    text = ""
    if selector:
        shown = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        text += f"; its nodeSelector {shown}" + (" matches no node" if sole else "")
        seen = sorted(
            {
                f"{key}={kube.labels(n)[key]}"
                for n in ctx.of_kind("Node")
                for key in selector
                if key in kube.labels(n) and kube.labels(n)[key] != selector[key]
            }
        )
        if seen:
            text += f" (nodes have {', '.join(seen)})"
    if terms:
        text += f"; its required node affinity is {'; '.join(terms)}"
    return text


def analyze(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    yield from _unschedulable(ctx, ledger)
    yield from quota.findings(ctx, ledger)


ANALYZER = Analyzer(
    name=NAME,
    categories=frozenset({Category.Unschedulable, Category.QuotaExceeded}),
    analyze=analyze,
    recommend=scheduling_advice.recommend,
)
