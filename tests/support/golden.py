"""Golden eval cases run through the deterministic triage, keeping the context.

``TriagePipeline.run`` returns only the result; the LLM-side tests (digest, prompts) also
need the :class:`TriageContext` the result was built from. This runs the same steps in the
same order — targets, gather, analyzers, ranking, recommendations, ``build_result`` — so
the pair is what the pipeline would have produced for the case under default settings
(``GatherLimits()`` defaults equal ``TriageSettings()``'s). It does not import the
pipeline module, so it keeps working while the pipeline grows its LLM step.
"""

from __future__ import annotations

import asyncio
from functools import cache
from pathlib import Path
from typing import Any

from oncallm.config import TriageSettings
from oncallm.ingest.alertmanager import AlertmanagerWebhook
from oncallm.sources.snapshot import SnapshotSource
from oncallm.triage.analyze import recommend, run_analyzers
from oncallm.triage.analyzers import registered
from oncallm.triage.context import AlertInput, TriageContext
from oncallm.triage.gather import GatherLimits, gather
from oncallm.triage.metrics_step import attach_charts, snapshot_metrics
from oncallm.triage.rank import rank
from oncallm.triage.report import build_result
from oncallm.triage.targets import resolve_targets

CASES_DIR = Path(__file__).resolve().parents[2] / "evals" / "cases"


def case_names() -> list[str]:
    return sorted(p.name for p in CASES_DIR.iterdir() if (p / "alert.json").is_file())


def first_alert(case: Path) -> AlertInput:
    payload = AlertmanagerWebhook.model_validate_json((case / "alert.json").read_bytes())
    alert = payload.alerts[0]
    return AlertInput(
        fingerprint=alert.fingerprint,
        alertname=alert.labels["alertname"],
        status=alert.status,
        starts_at=alert.starts_at,
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        generator_url=alert.generator_url,
    )


async def _triage(case: Path, settings: TriageSettings) -> tuple[TriageContext, dict[str, Any]]:
    alert = first_alert(case)
    targets = resolve_targets(alert.labels)
    source = SnapshotSource(case / "snapshot")
    try:
        analyzers = registered()
        ctx = await gather(source, alert, targets, GatherLimits(), "snapshot")
        metrics = snapshot_metrics(case / "snapshot")
        ctx = await metrics.read(ctx)
        analysis = run_analyzers(ctx, analyzers)
        ranking = rank(ctx, analysis.findings, settings.min_confidence)
        recommendations, recommend_gaps = recommend(ctx, ranking, analyzers)
    finally:
        await source.close()
    gaps = [*ctx.gaps, *analysis.gaps, *recommend_gaps]
    result = build_result(
        alert=alert,
        targets=targets,
        ctx=ctx,
        analysis=analysis,
        ranking=ranking,
        recommendations=recommendations,
        gaps=gaps,
        timings={},  # wall-clock timings would make snapshots differ run to run
    )
    attach_charts(result, metrics.charts(ctx))
    return ctx, result


def run_golden(name: str) -> tuple[TriageContext, dict[str, Any]]:
    """(context, result) of one case under default triage settings, gathered anew."""
    return asyncio.run(_triage(CASES_DIR / name, TriageSettings()))


@cache
def golden_triage(name: str) -> tuple[TriageContext, dict[str, Any]]:
    """:func:`run_golden`, cached per process because every case is read by several
    tests. Callers must not mutate what it returns."""
    return run_golden(name)
