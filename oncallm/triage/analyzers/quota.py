"""ResourceQuotas that refuse pods: the ``QuotaExceeded`` half of the scheduling analyzer.

Controllers report a refused pod as a ``FailedCreate`` event (``exceeded quota:
compute-resources, requested: limits.memory=1Gi, used: ..., limited: ...``). The quota is
the culprit, with what it holds and what the pod would need; each blocked workload gets a
finding that blames the quota, so the quota ranks as their cause. A quota ``must specify``
limits the pod template lacks is the workload's to fix. A quota used up to a non-zero hard
limit is reported weakly even before anyone has been refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.taxonomy import Category

NAME = "scheduling"  # findings are the scheduling analyzer's: it recommends for them
CONTROLLERS = ("ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController")
_QUOTA = re.compile(
    r"exceeded quota: (?P<quota>[\w.-]+), requested: (?P<requested>.+?), "
    r"used: (?P<used>.+?), limited: (?P<limited>[^\s\"']+)"
)
_MUST_SPECIFY = re.compile(r"failed quota: (?P<quota>[\w.-]+): must specify (?P<what>[^\"']+)")


def quantity_text(resource: str, amount: Decimal) -> str:
    if "memory" in resource or "storage" in resource:
        return kube.format_bytes(amount)
    if "cpu" in resource:
        return f"{int(amount * 1000)}m" if amount < 1 else f"{amount.normalize():f}"
    return f"{amount.normalize():f}"


def _pairs(text: str) -> dict[str, str]:
    """``limits.memory=1Gi,requests.cpu=500m`` -> {"limits.memory": "1Gi", ...}."""
    return dict(p.split("=", 1) for p in text.split(",") if "=" in p)


def findings(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    blocked: dict[ObjectRef, dict[ObjectRef, dict[str, Any]]] = {}
    evidence: dict[ObjectRef, list[str]] = {}
    for kind in CONTROLLERS:
        for obj in ctx.of_kind(kind):
            ref = kube.ref(obj)
            for event in ctx.warnings_of(ref, "FailedCreate"):
                workload = ctx.workload_of(obj)
                cited = ledger.cite_event(ref, event.reason, event.describe())
                if m := _QUOTA.search(event.message):
                    quota = ObjectRef("ResourceQuota", ref.namespace, m["quota"])
                    blocked.setdefault(quota, {})[workload] = {
                        "requested": _pairs(m["requested"]),
                        "used": _pairs(m["used"]),
                        "limited": _pairs(m["limited"]),
                        "controller": ref,
                        "evidence": cited,
                    }
                    evidence.setdefault(quota, []).append(cited)
                elif m := _MUST_SPECIFY.search(event.message):
                    yield _must_specify(ref, workload, m["quota"], m["what"], cited)
    for quota, workloads in blocked.items():
        yield from _quota_findings(ctx, ledger, quota, workloads, evidence[quota])
    for obj in ctx.of_kind("ResourceQuota"):
        if kube.ref(obj) not in blocked:
            found = _exhausted(ctx, ledger, obj)
            if found is not None:
                yield found


def _status(obj: KubeObject | None) -> tuple[dict[str, str], dict[str, str]]:
    status = (obj or {}).get("status") or {}
    return dict(status.get("hard") or {}), dict(status.get("used") or {})


def _quota_findings(
    ctx: TriageContext,
    ledger: EvidenceLedger,
    quota: ObjectRef,
    workloads: dict[ObjectRef, dict[str, Any]],
    evidence: list[str],
) -> Iterator[Finding]:
    obj = ctx.objects.get(quota)
    hard, used = _status(obj)
    if obj is not None:
        shown = ", ".join(f"{k} {used.get(k, '?')}/{v}" for k, v in sorted(hard.items()))
        evidence = [*evidence, ledger.cite_object(quota, "status", f"used/hard: {shown}")]
    first = next(iter(workloads.values()))
    limited = first["limited"]
    needed: dict[str, str] = {}
    for resource in limited:
        total = (kube.parse_quantity(first["used"].get(resource)) or Decimal(0)) + (
            kube.parse_quantity(first["requested"].get(resource)) or Decimal(0)
        )
        needed[resource] = quantity_text(resource, total)
    detail = ", ".join(
        f"{r} requested {first['requested'].get(r, '?')}, used {first['used'].get(r, '?')} of {lim}"
        for r, lim in limited.items()
    )
    names = ", ".join(str(w) for w in workloads)
    facts: dict[str, Any] = {
        "quota": quota.name,
        "namespace": quota.namespace,
        "limited": limited,
        "used": first["used"],
        "requested": first["requested"],
        "needed": needed,
        "hard": hard,
        "status_used": used,
        "workloads": [w.as_dict() for w in workloads],
    }
    yield Finding(
        category=Category.QuotaExceeded,
        summary=f"{quota} is exhausted ({detail}): {names} cannot create pods",
        subject=quota,
        resource=quota,
        evidence=pf.unique(evidence),
        confidence=0.9,
        analyzer=NAME,
        facts=facts,
    )
    for workload, info in workloads.items():
        yield Finding(
            category=Category.QuotaExceeded,
            summary=f"{workload} cannot create pods: {info['controller']} is forbidden by "
            f"{quota} ({detail})",
            subject=workload,
            resource=quota,
            evidence=(info["evidence"],),
            confidence=0.6,
            analyzer=NAME,
            blames=(quota,),
            facts={**facts, **pf.workload_facts(workload)},
        )


def _exhausted(ctx: TriageContext, ledger: EvidenceLedger, obj: KubeObject) -> Finding | None:
    """A quota at its hard limit blocks the next pod even before anyone has tried."""
    hard, used = _status(obj)
    full = {}
    for resource, limit in hard.items():
        cap, now = kube.parse_quantity(limit), kube.parse_quantity(used.get(resource))
        if cap is not None and now is not None and cap > 0 and now >= cap:
            full[resource] = f"{used[resource]}/{limit}"
    if not full:
        return None
    ref = kube.ref(obj)
    shown = ", ".join(f"{k} {v}" for k, v in sorted(full.items()))
    cited = ledger.cite_object(ref, "status", f"used/hard: {shown}")
    return Finding(
        category=Category.QuotaExceeded,
        summary=f"{ref} is used up ({shown}): new pods in {ref.namespace} will be refused",
        subject=ref,
        resource=ref,
        evidence=(cited,),
        confidence=0.5,
        analyzer=NAME,
        facts={
            "quota": ref.name,
            "namespace": ref.namespace,
            "limited": {k: hard[k] for k in full},
            "used": {k: used[k] for k in full},
            "requested": {},
            "needed": {},
            "hard": hard,
            "status_used": used,
            "workloads": [],
        },
    )


def _must_specify(
    controller: ObjectRef, workload: ObjectRef, quota: str, what: str, cited: str
) -> Finding:
    return Finding(
        category=Category.QuotaExceeded,
        summary=f"{workload} cannot create pods: ResourceQuota {controller.namespace}/{quota} "
        f"requires every container to set {what.strip()} and its pod template does not",
        subject=workload,
        resource=workload,
        evidence=(cited,),
        confidence=0.85,
        analyzer=NAME,
        blames=(),
        facts={
            "quota": quota,
            "namespace": controller.namespace,
            "must_specify": what.strip(),
            **pf.workload_facts(workload),
        },
    )
