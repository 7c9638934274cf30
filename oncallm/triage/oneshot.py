"""Triage outside the service: an Alertmanager payload file against a snapshot or a cluster.

This is what ``oncallm triage`` and ``oncallm eval`` run — the same pipeline the queued
jobs run, with one fixed cluster source instead of the per-cluster catalog.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from oncallm.config import TriageSettings
from oncallm.errors import BadRequest
from oncallm.ingest.alertmanager import AlertmanagerWebhook
from oncallm.sources.base import ClusterSource
from oncallm.triage.pipeline import AlertInput, TriagePipeline

if TYPE_CHECKING:
    from oncallm.llm.reasoner import Reasoner
    from oncallm.triage.guidance import RunbookGuide
    from oncallm.triage.metrics_step import MetricsStep


class FixedSource:
    """A source catalog that answers every cluster with the same source."""

    def __init__(self, source: ClusterSource) -> None:
        self.source = source

    def source_for(self, cluster: str | None) -> ClusterSource:
        return self.source

    async def aclose(self) -> None:
        await self.source.close()


def load_alerts(path: Path) -> list[AlertInput]:
    """The alerts of an Alertmanager webhook payload file; BadRequest names what is wrong."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadRequest(f"cannot read alert payload {path}: {exc.strerror}") from None
    try:
        payload = AlertmanagerWebhook.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise BadRequest(
            f"{path} is not an Alertmanager webhook payload: {where}: {first['msg']}{more}"
        ) from None
    return [
        AlertInput(
            fingerprint=alert.fingerprint,
            alertname=alert.labels["alertname"],
            status=alert.status,
            starts_at=alert.starts_at,
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            generator_url=alert.generator_url,
        )
        for alert in payload.alerts
    ]


async def triage_alerts(
    alerts: list[AlertInput],
    source: ClusterSource,
    settings: TriageSettings,
    reasoner: Reasoner | None = None,
    runbooks: RunbookGuide | None = None,
    metrics: MetricsStep | None = None,
) -> list[dict[str, Any]]:
    pipeline = TriagePipeline(
        FixedSource(source), settings, reasoner=reasoner, runbooks=runbooks, metrics=metrics
    )
    try:
        return [(await pipeline.run(alert)).result for alert in alerts]
    finally:
        await pipeline.aclose()


def to_json(results: list[dict[str, Any]]) -> str:
    return json.dumps(results, indent=2, ensure_ascii=False)
