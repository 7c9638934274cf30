"""An HPA that cannot scale because the aggregated metrics API it reads is unavailable.

Part of the ``workloads`` analyzer's HPA rules (:mod:`capacity`). ``FailedGetResourceMetric``
with "unable to fetch metrics from resource metrics API: the server is currently unable to
handle the request (get pods.metrics.k8s.io)" says nothing is wrong with the HPA: the server
behind ``metrics.k8s.io`` (``custom.``/``external.metrics.k8s.io`` for adapters such as
prometheus-adapter or KEDA) is down. The finding blames that server — the Service its
APIService names and the workloads behind it, metrics-server's when no APIService was read —
so a finding about it (OOMKilled, crash loop, no endpoints) ranks as the cause.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.context import TriageContext
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl
from oncallm.triage.taxonomy import Category

# Which aggregated metrics API an HPA condition names: "unable to fetch metrics from
# resource metrics API", "(get pods.custom.metrics.k8s.io *)".
_API = re.compile(
    r"unable to fetch metrics from (?P<api>resource|custom|external) metrics API"
    r"|\((?:get|list) [\w-]+\.(?P<group>(?:custom\.|external\.)?metrics\.k8s\.io)\b",
    re.IGNORECASE,
)
# ...and that nobody answered: the API's backing server is down or not registered. ("the
# server could not find the metric X" is an answer — the adapter lacks a rule — not this.)
_UNAVAILABLE = re.compile(
    r"unable to handle the request|could not find the requested resource|connection refused|"
    r"no such host|i/o timeout|deadline exceeded|service unavailable|no endpoints available",
    re.IGNORECASE,
)
_API_GROUPS = {
    "resource": "metrics.k8s.io",
    "custom": "custom.metrics.k8s.io",
    "external": "external.metrics.k8s.io",
}
# Where the resource metrics API is served when no APIService says otherwise: the
# metrics-server add-on, as every distribution and its Helm chart install it.
DEFAULT_METRICS_SERVER = (
    ObjectRef("Service", "kube-system", "metrics-server"),
    ObjectRef("Deployment", "kube-system", "metrics-server"),
)


def unavailable_api(message: str) -> tuple[str, str] | None:
    """(API group, the part of the message that says so) when an HPA condition says the
    metrics API could not be reached."""
    match = _API.search(message)
    if match is None or not _UNAVAILABLE.search(message, match.start()):
        return None
    group = _API_GROUPS[match["api"].lower()] if match["api"] else str(match["group"])
    return group, message[match.start() :]


def _backend(ctx: TriageContext, group: str) -> tuple[KubeObject | None, list[ObjectRef]]:
    """The APIService serving a metrics API group, and the objects that serve it: its
    Service and the workloads of that Service's pods (metrics-server's defaults for the
    resource metrics API when no APIService was read)."""
    apiservice = next(
        (a for a in ctx.of_kind("APIService") if (a.get("spec") or {}).get("group") == group),
        None,
    )
    backing = ((apiservice or {}).get("spec") or {}).get("service") or {}
    if not backing.get("name"):
        defaults = list(DEFAULT_METRICS_SERVER) if group == "metrics.k8s.io" else []
        return apiservice, defaults
    service = ObjectRef("Service", backing.get("namespace"), str(backing["name"]))
    refs = [service]
    if (svc := ctx.objects.get(service)) is not None:
        refs += [ctx.workload_of(p) for p in ctx.pods_selected_by(svc)]
    if group == "metrics.k8s.io":
        refs += DEFAULT_METRICS_SERVER  # harmless when metrics-server lives elsewhere
    return apiservice, list(dict.fromkeys(refs))


def blind(
    ctx: TriageContext,
    analyzer: str,
    ref: ObjectRef,
    target_ref: ObjectRef,
    broken: Mapping[str, Any],
    group: str,
    evidence: tuple[str, ...],
    facts: dict[str, Any],
) -> Finding:
    """An HPA blind because the metrics API it reads is unavailable.

    DependencyFailure rather than ScalingLimit: nothing about the HPA's own limits or spec
    is wrong — it is the victim of the component serving the metrics API, and the fix is
    there. Being a symptom category (and only 0.5 sure), it yields to the finding about
    that component (metrics-server OOMKilled, its Service without endpoints) that its
    blames link it to, and stands as the answer only when nothing deeper was read.
    """
    apiservice, serving = _backend(ctx, group)
    available = kube.condition(apiservice, "Available") if apiservice is not None else None
    blames = [*serving]
    if apiservice is not None:
        blames.append(kube.ref(apiservice))
    culprit = next((r for r in serving if r.kind == "Service"), None)
    culprit = culprit or (kube.ref(apiservice) if apiservice is not None else target_ref)
    served_by = f" (served by {culprit})" if culprit.kind == "Service" else ""
    state = ""
    if available and available.get("status") != "True":
        state = (
            f"; APIService {kube.name(apiservice or {})} Available={available.get('status')} "
            f"{available.get('reason')}: {available.get('message')}"
        )
    message = str(broken.get("message") or "")
    summary = (
        f"HPA {ref.namespace}/{ref.name} cannot scale {target_ref} ({broken.get('type')}=False "
        f"{broken.get('reason')}): the {group} metrics API{served_by} is unavailable, so it "
        f"cannot read its metrics and stays at {facts['current']} replicas (min {facts['min']}, "
        f"max {facts['max']}){state}; the HPA says: {str(facts.pop('said'))[:200]}"
    )
    facts.update(
        rule="metrics-api-down",
        reason=str(broken.get("reason")),
        message=message,
        group=group,
        apiservice=kube.name(apiservice) if apiservice is not None else None,
        backend=[str(r) for r in serving],
        backend_service=[culprit.namespace, culprit.name] if culprit.kind == "Service" else None,
    )
    return Finding(
        Category.DependencyFailure,
        summary,
        ref,
        culprit,
        evidence,
        0.5,
        analyzer,
        blames=tuple(blames),
        facts=facts,
    )


def recommend(finding: Finding) -> Recommendation:
    facts = finding.facts
    ns, hpa, group = facts["namespace"], facts["hpa"], facts["group"]
    commands = [kubectl("describe", "hpa", hpa, namespace=ns)]
    if facts.get("apiservice"):
        commands.append(f"kubectl get apiservice {facts['apiservice']} -o yaml")
    else:
        commands.append(f"kubectl get apiservice | grep {group}")
    if backend := facts.get("backend_service"):
        commands += [
            kubectl("get", "endpoints", backend[1], namespace=backend[0]),
            kubectl("get", "pods", "-o", "wide", namespace=backend[0]) + f" | grep {backend[1]}",
        ]
    return Recommendation(
        f"Bring back the {group} metrics API that HPA {hpa} reads",
        f"HPA {ns}/{hpa} cannot read its metrics ({facts['reason']}), so it holds "
        f"{facts['target_kind']} {facts['target_name']} at {facts['current']} replicas "
        "whatever the load. Fix the server behind the API "
        + (f"({', '.join(facts['backend'])})" if facts.get("backend") else "")
        + " — its pods crashing, OOMKilled or unschedulable — and the HPA resumes by itself.",
        tuple(commands),
        "low",
        finding.confidence,
    )
