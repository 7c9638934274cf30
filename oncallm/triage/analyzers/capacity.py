"""``ScalingLimit``: an HPA that cannot add the replicas its workload needs.

Part of the ``workloads`` analyzer. The finding is: an HPA at ``maxReplicas`` whose
``ScalingLimited`` condition says ``TooManyReplicas``, or one that cannot scale at all
(``AbleToScale``/``ScalingActive`` False, e.g. ``FailedGetResourceMetric``) — named with
its min/max/current replicas and each metric's current value against its target. An HPA
below its maximum is no finding. An HPA that cannot scale because the aggregated metrics
API it reads is unavailable is a ``DependencyFailure`` that blames the API's backing
Service and workload (from its APIService, else metrics-server), so what is wrong with
them ranks as the cause.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import hpa_metrics, metricfacts
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl
from oncallm.triage.taxonomy import Category

V1_CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
_MISSING_REQUEST = re.compile(r"missing request for (\w+)", re.IGNORECASE)


# --- ScalingLimit ---------------------------------------------------------------------------


def _conditions(hpa: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    listed = (hpa.get("status") or {}).get("conditions")
    if listed is None:  # autoscaling/v1 keeps them in an annotation
        raw = (kube.meta(hpa).get("annotations") or {}).get(V1_CONDITIONS)
        try:
            listed = json.loads(raw) if raw else []
        except ValueError:
            listed = []
    return {str(c.get("type")): c for c in listed or [] if isinstance(c, Mapping)}


def _value(block: Mapping[str, Any]) -> str | None:
    if block.get("averageUtilization") is not None:
        return f"{block['averageUtilization']}%"
    for key in ("averageValue", "value"):
        if block.get(key) is not None:
            return str(block[key])
    return None


def _metric_key(metric: Mapping[str, Any]) -> tuple[str, str]:
    kind = str(metric.get("type", ""))
    body = metric.get(kind[:1].lower() + kind[1:]) or {}
    name = body.get("name") or (body.get("metric") or {}).get("name") or "?"
    return kind, str(name)


def metric_lines(hpa: Mapping[str, Any]) -> list[str]:
    """``cpu 180% (target 70%)`` per metric the HPA scales on."""
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    if spec.get("targetCPUUtilizationPercentage") is not None:  # autoscaling/v1
        current = status.get("currentCPUUtilizationPercentage")
        now = f"{current}%" if current is not None else "unknown"
        return [f"cpu {now} (target {spec['targetCPUUtilizationPercentage']}%)"]
    currents = {_metric_key(m): m for m in status.get("currentMetrics") or []}
    lines = []
    for metric in spec.get("metrics") or []:
        key = _metric_key(metric)
        body = metric.get(key[0][:1].lower() + key[0][1:]) or {}
        seen = currents.get(key, {})
        seen_body = seen.get(key[0][:1].lower() + key[0][1:]) or {}
        current = _value(seen_body.get("current") or {}) or "unknown"
        target = _value(body.get("target") or {}) or "?"
        lines.append(f"{key[1]} {current} (target {target})")
    return lines


def _hpa(
    ctx: TriageContext, ledger: EvidenceLedger, analyzer: str, hpa: KubeObject
) -> Finding | None:
    ref = kube.ref(hpa)
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    low, high = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 0)
    current = int(status.get("currentReplicas") or 0)
    desired = int(status.get("desiredReplicas") or current)
    conditions = _conditions(hpa)
    limited = conditions.get("ScalingLimited") or {}
    broken = next(
        (
            c
            for t in ("AbleToScale", "ScalingActive")
            if (c := conditions.get(t))
            and c.get("status") == "False"
            and c.get("reason") != "ScalingDisabled"  # target scaled to 0 on purpose
        ),
        None,
    )
    target = spec.get("scaleTargetRef") or {}
    target_ref = ObjectRef(str(target.get("kind")), ref.namespace, str(target.get("name")))
    saturated = metricfacts.saturation(ctx, ledger, ref, target_ref) if current >= high else None
    maxed = (
        high > 0
        and current >= high
        and (
            (limited.get("status") == "True" and limited.get("reason") == "TooManyReplicas")
            # The condition lags or is missing on old controllers; the replica series does not.
            or (saturated is not None and (saturated.at_max_seconds or 0) >= 600)
        )
    )
    if not (maxed or broken):
        return None
    metrics = metric_lines(hpa)
    shown = broken or limited
    cited = ledger.cite_object(
        ref,
        "status",
        f"min={low} max={high} current={current} desired={desired}; "
        f"{shown.get('type')}={shown.get('status')} {shown.get('reason')}: {shown.get('message')}; "
        + "; ".join(metrics),
    )
    events = [ledger.cite_event(ref, e.reason, e.describe()) for e in ctx.warnings_of(ref)[-1:]]
    facts: dict[str, Any] = {
        "hpa": ref.name,
        "namespace": ref.namespace,
        "min": low,
        "max": high,
        "current": current,
        "desired": desired,
        "metrics": metrics,
        "target_kind": target_ref.kind,
        "target_name": target_ref.name,
    }
    range_text = f"min {low}, max {high}, current {current}"
    if broken and (down := hpa_metrics.unavailable_api(str(broken.get("message") or ""))):
        group, facts["said"] = down
        return hpa_metrics.blind(
            ctx, analyzer, ref, target_ref, broken, group, (cited, *events), facts
        )
    if broken:
        reason, message = str(broken.get("reason")), str(broken.get("message") or "")
        missing = _MISSING_REQUEST.search(message)
        culprit = target_ref if missing else ref
        cause = (
            f"{target_ref} declares no {missing.group(1)} request, so utilization cannot be "
            "computed"
            if missing
            else message or reason
        )
        facts.update(
            rule="cannot-scale",
            reason=reason,
            message=message,
            missing_request=missing.group(1) if missing else None,
        )
        summary = (
            f"HPA {ref.namespace}/{ref.name} cannot scale {target_ref} ({broken.get('type')}="
            f"False {reason}; {range_text}): {cause}"
        )
        return Finding(
            Category.ScalingLimit,
            summary,
            ref,
            culprit,
            (cited, *events),
            0.85,
            analyzer,
            facts=facts,
        )
    facts["rule"] = "at-max"
    summary = (
        f"HPA {ref.namespace}/{ref.name} is at its maximum of {high} replicas for {target_ref} "
        f"({range_text}, desired {desired}) and cannot add more"
        + (f": {', '.join(metrics)}" if metrics else "")
    )
    confidence = 0.8
    if saturated is not None:
        summary += f"; {saturated.sentence}"
        facts["saturation"] = saturated.sentence
        # Pods at (or past) their request while the HPA cannot add more: saturation,
        # measured rather than read off the HPA's own status.
        if (saturated.cpu_of_request or 0) >= 0.8 or (saturated.at_max_seconds or 0) >= 600:
            confidence = 0.9
    return Finding(
        Category.ScalingLimit,
        summary,
        ref,
        ref,
        (cited, *events, *(saturated.evidence if saturated else ())),
        confidence,
        analyzer,
        facts=facts,
    )


def findings(ctx: TriageContext, ledger: EvidenceLedger, analyzer: str) -> Iterator[Finding]:
    for hpa in ctx.of_kind("HorizontalPodAutoscaler"):
        finding = _hpa(ctx, ledger, analyzer, hpa)
        if finding is not None:
            yield finding


# --- recommendations ------------------------------------------------------------------------


def _recommend_hpa(finding: Finding) -> list[Recommendation]:
    facts = finding.facts
    ns, hpa = facts["namespace"], facts["hpa"]
    target = f"{str(facts['target_kind']).lower()}/{facts['target_name']}"
    describe = kubectl("describe", "hpa", hpa, namespace=ns)
    if facts["rule"] == "at-max":
        bigger = max(int(facts["max"]) + 1, math.ceil(int(facts["max"]) * 1.5))
        return [
            Recommendation(
                f"Raise maxReplicas of HPA {hpa} or cut the load",
                f"HPA {ns}/{hpa} runs {facts['current']} of at most {facts['max']} replicas"
                + (f" with {', '.join(facts['metrics'])}" if facts["metrics"] else "")
                + f". Raise the maximum (e.g. to {bigger}) if the nodes have room, or find what "
                "drives the load.",
                (
                    describe,
                    kubectl("top", "pods", "--sort-by=cpu", namespace=ns),
                    kubectl(
                        "patch",
                        "hpa",
                        hpa,
                        "--type",
                        "merge",
                        "-p",
                        f'\'{{"spec":{{"maxReplicas":{bigger}}}}}\'',
                        namespace=ns,
                    ),
                ),
                "medium",
                finding.confidence,
            )
        ]
    if facts["rule"] == "metrics-api-down":
        return [hpa_metrics.recommend(finding)]
    missing = facts.get("missing_request")
    if missing:
        return [
            Recommendation(
                f"Give {facts['target_kind']} {facts['target_name']} a {missing} request",
                f"HPA {hpa} scales on {missing} utilization, a percentage of the request; the "
                f"containers of {target} declare none ({facts['reason']}).",
                (
                    describe,
                    kubectl(
                        "set",
                        "resources",
                        target,
                        f"--requests={missing}=100m"
                        if missing == "cpu"
                        else f"--requests={missing}=128Mi",
                        namespace=ns,
                    ),
                ),
                "medium",
                finding.confidence,
            )
        ]
    return [
        Recommendation(
            f"Restore the metrics HPA {hpa} scales on",
            f"HPA {ns}/{hpa} cannot scale: {facts['reason']}: {facts['message']}",
            (
                describe,
                kubectl("top", "pods", namespace=ns),
                "kubectl get apiservice v1beta1.metrics.k8s.io",
                kubectl("get", "pods", "-l", "k8s-app=metrics-server", namespace="kube-system"),
            ),
            "low",
            finding.confidence,
        )
    ]


def recommend(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    return _recommend_hpa(finding)
