"""Services and the traffic between workloads: who cannot reach whom, and why.

Owns three findings. ``ServiceNoEndpoints``: a gathered Service with no ready endpoint —
the Service itself is the culprit when its selector matches no pod (a typo), a symptom
blaming the selected pods when they exist but are not ready. ``DependencyFailure``: a
client whose logs show a dependency refusing, timing out or not resolving; it blames the
dependency's Service and the pods behind it, so a deeper finding on those (the database
pod stuck Pending) ranks as the cause. ``NetworkBlocked``: the dependency is up, the
client times out, and a NetworkPolicy admits no path from the client to it. The policy
semantics live in :mod:`network_policy`, the dependency matching in :mod:`dependencies`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from difflib import SequenceMatcher
from typing import Any

from oncallm.sources.base import KubeObject
from oncallm.triage import kube
from oncallm.triage.analyzers import Analyzer
from oncallm.triage.analyzers.phrases import own_labels, plural, pod_state, selector_text
from oncallm.triage.analyzers.reachability import selector_labels
from oncallm.triage.analyzers.traffic import dependency_findings
from oncallm.triage.analyzers.traffic_advice import recommend_dependency, recommend_network
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl
from oncallm.triage.taxonomy import Category

NAME = "services"
TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


# --- ServiceNoEndpoints ---------------------------------------------------------------


def _workload_labels(
    ctx: TriageContext, namespace: str | None
) -> list[tuple[str, str, Mapping[str, str]]]:
    """(who, owner name, labels) for every pod and pod template in the namespace."""
    found: dict[str, tuple[str, Mapping[str, str]]] = {}
    for pod in ctx.of_kind("Pod", namespace):
        if not kube.pod_finished(pod):
            workload = ctx.workload_of(pod)
            who = f"pod {workload.name}" if workload.kind == "Pod" else f"the pods of {workload}"
            found.setdefault(who, (workload.name, own_labels(kube.labels(pod))))
    for kind in TEMPLATE_KINDS:
        for obj in ctx.of_kind(kind, namespace):
            template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
            labels = own_labels(template.get("labels") or {})
            found.setdefault(f"the pods of {kube.ref(obj)}", (kube.name(obj), labels))
    return [(who, owner, labels) for who, (owner, labels) in found.items()]


def _nearness(
    selector: Mapping[str, str], labels: Mapping[str, str], owner: str, service: str
) -> float:
    """How surely these are the pods the selector meant; 0 when they are someone else's.
    Near means a typo (shared keys, alike values), a relabelling (the same values under
    other keys), or a workload named like the Service."""
    equal = sum(1 for k, v in selector.items() if labels.get(k) == v)
    shared = sum(1 for k in selector if k in labels)
    likeness = sum(
        SequenceMatcher(None, v, labels[k]).ratio()
        for k, v in selector.items()
        if k in labels and labels[k] != v
    )
    value_hits = sum(1 for v in selector.values() if v in set(labels.values()))
    typo = shared > 0 and (equal > 0 or likeness >= 0.6 * (shared - equal))
    relabelled = value_hits == len(selector)
    same_name = owner == service
    if not (typo or relabelled or same_name):
        return 0.0
    return 2 * equal + shared + likeness + value_hits + (2 if same_name else 0)


def _templates_selected(ctx: TriageContext, svc: KubeObject) -> list[KubeObject]:
    selector = (svc.get("spec") or {}).get("selector")
    return [
        obj
        for kind in TEMPLATE_KINDS
        for obj in ctx.of_kind(kind, kube.namespace(svc))
        if kube.selects(
            selector,
            (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")
            or {},
        )
    ]


def _matches_nothing(ctx: TriageContext, ledger: EvidenceLedger, svc: KubeObject) -> Finding:
    ref = kube.ref(svc)
    selector: Mapping[str, str] = (svc.get("spec") or {}).get("selector") or {}
    wanted = selector_text(selector)
    evidence = ledger.cite_object(ref, "selector", f"spec.selector: {wanted}; ready endpoints: 0")
    facts: dict[str, Any] = {"rule": "selector", "selector": dict(selector)}
    for workload in _templates_selected(ctx, svc):
        wref = kube.ref(workload)
        replicas = (workload.get("spec") or {}).get("replicas", 1)
        if wref.kind != "DaemonSet" and replicas == 0:
            cited = ledger.cite_object(wref, "replicas", "spec.replicas: 0")
            return Finding(
                Category.ServiceNoEndpoints,
                f"Service {ref.namespace}/{ref.name} has no endpoints: {wref} it selects "
                f"({wanted}) is scaled to 0 replicas",
                ref,
                wref,
                (evidence, cited),
                0.85,
                NAME,
                facts={
                    **facts,
                    "rule": "scaled-to-zero",
                    "workload": wref.name,
                    "workload_kind": wref.kind,
                },
            )
        return Finding(
            Category.ServiceNoEndpoints,
            f"Service {ref.namespace}/{ref.name} has no endpoints: {wref} matches its "
            f"selector {wanted} but has no pods",
            ref,
            wref,
            (evidence,),
            0.5,
            NAME,
            blames=(
                wref,
                *(
                    kube.ref(rs)
                    for rs in ctx.of_kind("ReplicaSet", ref.namespace)
                    if kube.controller_of(rs) == wref
                ),
            ),
            facts={**facts, "rule": "no-pods", "workload": wref.name, "workload_kind": wref.kind},
        )
    scored = [
        (_nearness(selector, labels, owner, ref.name), who, labels)
        for who, owner, labels in _workload_labels(ctx, ref.namespace)
    ]
    near = [c for c in scored if c[0] > 0]
    if not near:
        # Nothing gathered looks like what the selector meant: the Service selects no pod,
        # but which labels were intended cannot be told.
        summary = (
            f"Service {ref.namespace}/{ref.name} has 0 endpoints: its selector {wanted} "
            "matches no pod, and no gathered pod or workload template carries these labels"
        )
        return Finding(
            Category.ServiceNoEndpoints, summary, ref, ref, (evidence,), 0.7, NAME, facts=facts
        )
    _, who, actual = max(near, key=lambda c: c[0])
    if any(k in actual for k in selector):
        shown = {k: actual[k] for k in selector if k in actual}
        suggested: dict[str, str | None] = {k: actual.get(k) for k in selector}
    else:  # relabelled: drop the old keys, select on the identity the pods now carry
        shown = selector_labels(actual)
        suggested = {**dict.fromkeys(selector), **shown}
    facts.update(actual_labels=dict(actual), suggested_selector=suggested)
    summary = (
        f"Service {ref.namespace}/{ref.name} has 0 endpoints: its selector {wanted} "
        f"matches no pod; {who} are labelled {selector_text(shown) or 'with no labels'}"
    )
    return Finding(
        Category.ServiceNoEndpoints, summary, ref, ref, (evidence,), 0.9, NAME, facts=facts
    )


def _port_names(pods: Iterable[KubeObject]) -> set[str]:
    return {
        str(port.get("name"))
        for pod in pods
        for ctr in kube.containers(pod, include_init=False)
        for port in ctr.spec.get("ports") or []
        if port.get("name")
    }


def _no_endpoints(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    for svc in ctx.of_kind("Service"):
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName" or not spec.get("selector"):
            continue  # endpoints are managed by hand, or there are none by design
        ref = kube.ref(svc)
        everything = ctx.pods_selected_by(svc)
        selected = [p for p in everything if not kube.pod_finished(p)]
        if everything and not selected:
            continue  # it selects only finished pods (a Job's): nothing is meant to serve
        ready = ctx.ready_endpoints(ref)
        if ready is None:
            # Endpoints were not read: only pods we can see as all unready count.
            if not selected or any(kube.pod_ready(p) for p in selected):
                continue
            ready = 0
        if ready > 0:
            continue
        if not selected:
            yield _matches_nothing(ctx, ledger, svc)
            continue
        unready = [p for p in selected if not kube.pod_ready(p)]
        if not unready:
            missing = sorted(
                str(p.get("targetPort"))
                for p in spec.get("ports") or []
                if isinstance(p.get("targetPort"), str)
                and p["targetPort"] not in _port_names(selected)
            )
            if missing:
                evidence = ledger.cite_object(
                    ref, "ports", f"targetPort {', '.join(missing)}; ready endpoints: 0"
                )
                yield Finding(
                    Category.ServiceNoEndpoints,
                    f"Service {ref.namespace}/{ref.name} has 0 endpoints: its named targetPort "
                    f"{', '.join(missing)} is not declared by the {len(selected)} ready pods "
                    "it selects",
                    ref,
                    ref,
                    (evidence,),
                    0.8,
                    NAME,
                    facts={
                        "rule": "target-port",
                        "ports": missing,
                        "selector": dict(spec["selector"]),
                    },
                )
            continue
        yield _unready_backends(ctx, ledger, svc, unready)


def _unready_backends(
    ctx: TriageContext, ledger: EvidenceLedger, svc: KubeObject, unready: list[KubeObject]
) -> Finding:
    ref = kube.ref(svc)
    selector: Mapping[str, str] = (svc.get("spec") or {}).get("selector") or {}
    workloads = sorted({ctx.workload_of(p) for p in unready})
    states = [f"{kube.name(p)} {pod_state(p)}" for p in unready[:4]]
    more = f" and {len(unready) - 4} more" if len(unready) > 4 else ""
    owners = ", ".join(str(w) for w in workloads)
    evidence = ledger.cite_object(
        ref,
        "endpoints",
        f"selector {selector_text(selector)}; ready endpoints: 0; " + "; ".join(states),
    )
    return Finding(
        Category.ServiceNoEndpoints,
        f"Service {ref.namespace}/{ref.name} has no ready endpoints: the "
        f"{plural(len(unready), 'pod')} of {owners} it selects "
        f"{'is' if len(unready) == 1 else 'are'} not ready: {', '.join(states)}{more}",
        ref,
        workloads[0] if len(workloads) == 1 else ref,
        (evidence,),
        0.5,
        NAME,
        blames=(*(kube.ref(p) for p in unready), *workloads),
        facts={
            "rule": "unready",
            "selector": dict(selector),
            "pods": [kube.name(p) for p in unready],
            "workloads": [str(w) for w in workloads],
        },
    )


def _recommend_endpoints(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    svc = finding.subject
    ns = svc.namespace
    facts = finding.facts
    selector = selector_text(facts.get("selector") or {})
    confirm: tuple[str, ...] = (
        kubectl(
            "get", "endpointslices", "-l", f"kubernetes.io/service-name={svc.name}", namespace=ns
        ),
        kubectl("get", "pods", "-l", selector, "--show-labels", "-o", "wide", namespace=ns),
    )
    rule = facts.get("rule")
    if rule in ("selector", "target-port"):
        if rule == "selector":
            patch = json.dumps({"spec": {"selector": facts.get("suggested_selector")}})
            detail = (
                f"The selector {selector} matches no pod. Point it at the labels the pods "
                f"carry ({selector_text(facts.get('actual_labels') or {})}), or fix the pod "
                "template's labels if the Service is right."
            )
        else:
            ports = facts.get("ports") or []
            patch = ""
            detail = (
                f"The named targetPort {', '.join(ports)} is not a containerPort name of the "
                "selected pods: name the container port so, or set targetPort to its number."
            )
        commands: tuple[str, ...] = (
            *confirm,
            kubectl("get", "service", svc.name, "-o", "yaml", namespace=ns),
        )
        if patch:
            commands += (
                kubectl(
                    "patch",
                    "service",
                    svc.name,
                    "--type",
                    "merge",
                    "-p",
                    f"'{patch}'",
                    namespace=ns,
                ),
            )
        return [
            Recommendation(
                f"Fix the selector of Service {svc.name}"
                if patch
                else f"Fix the targetPort of Service {svc.name}",
                detail,
                commands,
                "medium",
                finding.confidence,
            )
        ]
    if rule == "scaled-to-zero":
        kind = str(facts["workload_kind"]).lower()
        return [
            Recommendation(
                f"Scale {facts['workload_kind']} {facts['workload']} back up",
                f"{facts['workload_kind']} {ns}/{facts['workload']} has 0 replicas, so Service "
                f"{svc.name} has nothing to route to. Check who scaled it down before scaling up.",
                (
                    *confirm,
                    kubectl("scale", f"{kind}/{facts['workload']}", "--replicas=1", namespace=ns),
                ),
                "medium",
                finding.confidence,
            )
        ]
    pods = facts.get("pods") or []
    commands = confirm + tuple(kubectl("describe", "pod", p, namespace=ns) for p in pods[:2])
    return [
        Recommendation(
            f"Find out why the pods behind Service {svc.name} are not ready",
            "The Service is only the messenger: its endpoints come back when the pods of "
            f"{', '.join(facts.get('workloads') or [str(finding.resource)])} turn Ready.",
            commands,
            "low",
            finding.confidence,
        )
    ]


def analyze(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    yield from _no_endpoints(ctx, ledger)
    yield from dependency_findings(ctx, ledger, NAME)


def recommend(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    if finding.category is Category.ServiceNoEndpoints:
        return _recommend_endpoints(finding, ctx)
    if finding.category is Category.NetworkBlocked:
        return recommend_network(finding, ctx)
    return recommend_dependency(finding, ctx)


ANALYZER = Analyzer(
    name=NAME,
    categories=frozenset(
        {Category.ServiceNoEndpoints, Category.DependencyFailure, Category.NetworkBlocked}
    ),
    analyze=analyze,
    recommend=recommend,
)
