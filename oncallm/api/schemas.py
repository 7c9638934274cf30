"""Response models of the JSON API, so the OpenAPI schema says exactly what is returned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from oncallm.triage.targets import Target


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str
    errors: list[dict[str, str]] | None = Field(
        default=None, description="One entry per offending field, for validation problems."
    )


class AcceptedAlert(BaseModel):
    fingerprint: str
    alertname: str
    url: str = Field(description="The alert's OncallM page: `{base_url}/alerts/{fingerprint}`.")


class IngestAccepted(BaseModel):
    alerts: list[AcceptedAlert]
    duplicate: bool = Field(
        description="True when this exact notification was received before (nothing changed)."
    )


class Triage(BaseModel):
    id: int
    status: str = Field(description="queued, running, succeeded or failed.")
    step: str | None = Field(description="The pipeline step running now, or done/failed.")
    attempts: int
    max_attempts: int
    last_error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    targets: list[Target]
    result: dict[str, Any] | None = Field(description="The triage result (oncallm.triage/v1).")


class TriageAlertRef(BaseModel):
    fingerprint: str
    alertname: str
    starts_at: datetime
    url: str


class TriageWithAlert(Triage):
    alert: TriageAlertRef


class AlertSummary(BaseModel):
    fingerprint: str
    alertname: str
    status: str = Field(description="firing or resolved.")
    severity: str | None
    namespace: str | None
    cluster: str | None
    starts_at: datetime
    ends_at: datetime | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    receiver: str
    group_key: str
    external_url: str
    url: str
    triage_status: str | None = None


class AlertPage(BaseModel):
    items: list[AlertSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class TimelineItem(BaseModel):
    at: datetime
    kind: str
    message: str


class HistoryItem(BaseModel):
    starts_at: datetime
    ends_at: datetime | None
    status: str


class AlertDetail(AlertSummary):
    triage: Triage | None
    timeline: list[TimelineItem]
    history: list[HistoryItem]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
