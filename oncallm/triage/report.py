"""The stored and printed form of a triage: DESIGN.md §4.4, schema ``oncallm.triage/v1``.

``schemas/triage-result.schema.json`` in the repository is the contract; tests validate
every result against it. Extra keys beyond the contract (``subject``, ``targets``) add
detail without breaking readers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oncallm.triage.analyze import Analysis
from oncallm.triage.context import AlertInput, Gap, TriageContext
from oncallm.triage.findings import Finding
from oncallm.triage.rank import Ranking
from oncallm.triage.recommendations import Recommendation
from oncallm.triage.targets import AlertTargets

RESULT_SCHEMA = "oncallm.triage/v1"


def alert_block(alert: AlertInput) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "alertname": alert.alertname,
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": alert.starts_at.isoformat(),
    }


def unknown_root(
    ctx: TriageContext | None, targets: AlertTargets, gaps: Sequence[Gap], best: Finding | None
) -> dict[str, Any]:
    about = ", ".join(
        f"{t.kind} {t.namespace}/{t.name}" if t.namespace else f"{t.kind} {t.name}"
        for t in targets.targets
    )
    reasons = []
    if best is not None:
        reasons.append(
            f"the strongest lead is too weak to name: {best.summary} "
            f"(confidence {best.confidence:.2f})"
        )
    elif ctx is not None and not ctx.objects:
        reasons.append("none of the objects the alert names could be read")
    else:
        inspected = len(ctx.objects) if ctx is not None else 0
        reasons.append(
            f"nothing inspected shows a problem ({inspected} objects, their events and logs)"
        )
    if gaps:
        reasons.append("missing evidence: " + "; ".join(f"{g.source}: {g.error}" for g in gaps[:5]))
    return {
        "category": "Unknown",
        "summary": f"Root cause unknown{' for ' + about if about else ''} — "
        + "; ".join(reasons)
        + ".",
        "resource": None,
        "confidence": 0.0,
        "evidence": [],
    }


def build_result(
    *,
    alert: AlertInput,
    targets: AlertTargets,
    ctx: TriageContext | None,
    analysis: Analysis | None,
    ranking: Ranking | None,
    recommendations: Sequence[Recommendation],
    gaps: Sequence[Gap],
    timings: Mapping[str, float],
) -> dict[str, Any]:
    findings = list(ranking.findings) if ranking else []
    if ranking is not None and ranking.root is not None:
        root = ranking.root.as_dict()
        root.pop("analyzer", None)
    else:
        root = unknown_root(ctx, targets, gaps, findings[0] if findings else None)
    return {
        "schema": RESULT_SCHEMA,
        "alert": alert_block(alert),
        "status": "completed",
        "cluster": ctx.cluster if ctx else targets.cluster,
        "targets": [t.as_dict() for t in targets.targets],
        "root_cause": root,
        "findings": [f.as_dict() for f in findings],
        "evidence": [e.as_dict() for e in analysis.ledger.items()] if analysis else [],
        "recommendations": [r.as_dict() for r in recommendations],
        "inspected": [r.as_dict() for r in ctx.inspected] if ctx else [],
        "gaps": [g.as_dict() for g in gaps],
        "llm": None,
        "timings_ms": dict(timings),
    }
