"""``CPUThrottling``: a container the CFS quota of its CPU limit holds back.

Part of the ``workloads`` analyzer. Today the signal is the alert itself (kube-prometheus'
``CPUThrottlingHigh``, or any alert naming throttling): it is cited with the throttled
share of periods from its description, next to the container's CPU limit and request
from the pod spec. The culprit is the workload whose limit must change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import metricfacts
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl
from oncallm.triage.taxonomy import Category

THROTTLING = re.compile(r"throttl", re.IGNORECASE)
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%\s*throttl", re.IGNORECASE)


def cpu_text(value: Decimal | None) -> str:
    if value is None:
        return "?"
    if value >= 1 and value == value.to_integral_value():
        return str(int(value))
    return f"{int(value * 1000)}m"


def _throttled_pod(ctx: TriageContext) -> KubeObject | None:
    labels = ctx.alert.labels
    if labels.get("pod") and labels.get("namespace"):
        found = ctx.get("Pod", labels["namespace"], labels["pod"])
        if found is not None:
            return found
    return next((ctx.objects[r] for r in sorted(ctx.focus) if r.kind == "Pod"), None)


def _throttling(ctx: TriageContext, ledger: EvidenceLedger, analyzer: str) -> Finding | None:
    alert = ctx.alert
    if not (
        THROTTLING.search(alert.alertname)
        or THROTTLING.search(alert.annotations.get("summary", ""))
    ):
        return None
    description = alert.annotations.get("description") or alert.annotations.get("message") or ""
    where = ", ".join(
        f"{k}={alert.labels[k]}" for k in ("namespace", "pod", "container") if alert.labels.get(k)
    )
    evidence = [ledger.cite_alert(alert.alertname, f"{alert.alertname} {{{where}}}: {description}")]
    percent = _PERCENT.search(description)
    pod = _throttled_pod(ctx)
    cname = alert.labels.get("container")
    ctr = None
    if pod is not None:
        ctr = (
            kube.container(pod, cname)
            if cname
            else next((c for c in kube.containers(pod, include_init=False) if c.limit("cpu")), None)
        )
    if pod is None or ctr is None:
        subject = ObjectRef("Pod", alert.labels.get("namespace"), alert.labels.get("pod", "?"))
        return Finding(
            Category.CPUThrottling,
            f"{alert.alertname}: container {cname or '?'} of {subject} is CPU-throttled"
            + (f" ({percent.group(1)}% of periods)" if percent else "")
            + "; its pod spec was not available to compare limit and request",
            subject,
            subject,
            tuple(evidence),
            0.6,
            analyzer,
            facts={
                "container": cname,
                "percent": percent.group(1) if percent else None,
                "namespace": subject.namespace,
                "limit": None,
                "request": None,
                "workload_kind": "Pod",
                "workload_name": subject.name,
            },
        )
    pod_ref = kube.ref(pod)
    workload = ctx.workload_of(pod)
    limit, request = ctr.limit("cpu"), ctr.request("cpu")
    evidence.append(
        ledger.cite_object(
            pod_ref,
            f"spec.containers[{ctr.name}].resources",
            f"limits.cpu={limit or 'none'} requests.cpu={request or 'none'}",
        )
    )
    limit_q = kube.parse_quantity(limit)
    suggested = cpu_text(limit_q * 2) if limit_q else None
    rate = f" ({percent.group(1)}% of CFS periods throttled)" if percent else ""
    measured = metricfacts.throttling(ctx, ledger, workload, ctr.name)
    where_text = f"in {workload}" if workload.kind != "Pod" else f"of pod {pod_ref.name}"
    if limit:
        summary = (
            f"container {ctr.name} {where_text} is CPU-throttled{rate if not measured else ''} "
            f"at its {limit} CPU limit (request {request or 'none'})"
        )
        if measured is not None:
            evidence.extend(measured.evidence)
            summary += f": {measured.sentence}"
    else:
        summary = (
            f"container {ctr.name} {where_text} is reported CPU-throttled{rate} but declares "
            "no CPU limit: the throttling comes from elsewhere (a LimitRange default "
            "applied later, or the node's cgroup)"
        )
    return Finding(
        Category.CPUThrottling,
        summary,
        pod_ref,
        workload,
        tuple(evidence),
        (0.9 if measured else 0.85) if limit else 0.5,
        analyzer,
        facts={
            "container": ctr.name,
            "percent": percent.group(1) if percent else None,
            "limit": limit,
            "request": request,
            "suggested_limit": suggested,
            "namespace": pod_ref.namespace,
            "pod": pod_ref.name,
            "workload_kind": workload.kind,
            "workload_name": workload.name,
        },
    )


def _measured(ctx: TriageContext, ledger: EvidenceLedger, analyzer: str) -> Iterator[Finding]:
    """Throttling the metrics show on the alerted workloads, whatever the alert is about:
    a latency or error-rate alert is often a CPU limit in disguise."""
    for signal in ctx.metrics.values():
        workload, cname = signal.query.resource, signal.query.container
        if signal.query.signal != "throttling" or workload is None or cname is None:
            continue
        measured = metricfacts.throttling(ctx, ledger, workload, cname)
        if measured is None:
            continue
        pods = ctx.pods_of(workload)
        pod = next((p for p in pods if kube.name(p) == measured.pod), pods[0] if pods else None)
        ctr = kube.container(pod, cname) if pod is not None else None
        limit = ctr.limit("cpu") if ctr else None
        request = ctr.request("cpu") if ctr else None
        limit_q = kube.parse_quantity(limit)
        subject = kube.ref(pod) if pod is not None else workload
        where = f"in {workload}" if workload.kind != "Pod" else f"of pod {workload.name}"
        # Throttling that uses the whole limit is the limit's fault; throttling at low
        # average use is bursts (many threads at once), which a bigger limit also absorbs.
        confidence = 0.8 if (measured.usage_ratio or 0) >= 0.8 else 0.7
        yield Finding(
            Category.CPUThrottling,
            f"container {cname} {where} is CPU-throttled at its {limit or '?'} CPU limit "
            f"(request {request or 'none'}): {measured.sentence}",
            subject,
            workload,
            measured.evidence,
            confidence,
            analyzer,
            facts={
                "container": cname,
                "percent": f"{measured.ratio * 100:.0f}",
                "limit": limit,
                "request": request,
                "suggested_limit": cpu_text(limit_q * 2) if limit_q else None,
                "namespace": workload.namespace,
                "pod": measured.pod or (kube.name(pod) if pod is not None else None),
                "workload_kind": workload.kind,
                "workload_name": workload.name,
            },
        )


def findings(ctx: TriageContext, ledger: EvidenceLedger, analyzer: str) -> Iterator[Finding]:
    throttled = _throttling(ctx, ledger, analyzer)
    if throttled is not None:
        yield throttled
        return
    yield from _measured(ctx, ledger, analyzer)


def recommend(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    facts = finding.facts
    ns, container = facts["namespace"], facts["container"]
    top = kubectl(
        "top", "pod", str(facts.get("pod") or facts["workload_name"]), "--containers", namespace=ns
    )
    commands = [top]
    if facts.get("suggested_limit") and facts["workload_kind"] != "Pod":
        target = f"{str(facts['workload_kind']).lower()}/{facts['workload_name']}"
        commands.append(
            kubectl(
                "set",
                "resources",
                target,
                "-c",
                str(container),
                f"--limits=cpu={facts['suggested_limit']}",
                namespace=ns,
            )
        )
    raise_to = f" to {facts['suggested_limit']}" if facts.get("suggested_limit") else ""
    return [
        Recommendation(
            f"Give container {container} more CPU headroom",
            f"Container {container} hits its CPU limit ({facts.get('limit') or 'none'}, "
            f"request {facts.get('request') or 'none'}) and is throttled, which shows as "
            f"latency. Raise the limit{raise_to} (or drop it and size the request to real "
            "usage).",
            tuple(commands),
            "medium",
            finding.confidence,
        )
    ]
