"""Read API: alerts, one alert with its history and triage, one triage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AfterValidator, AwareDatetime

from oncallm.api.openapi import problem_responses
from oncallm.api.schemas import AlertDetail, AlertPage, TriageWithAlert
from oncallm.errors import NotFound
from oncallm.ingest.alertmanager import FINGERPRINT_PATTERN
from oncallm.state import AppState, app_state
from oncallm.store import queries

router = APIRouter(prefix="/api/v1", tags=["alerts"])

MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL
# Filters are compared with stored text, which can never contain NUL.
_TEXT = r"^[^\x00]*$"


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("time is out of the representable range") from exc


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


@router.get(
    "/alerts",
    response_model=AlertPage,
    responses=problem_responses(400, 422),
    summary="List alerts",
)
async def list_alerts(
    state: Annotated[AppState, Depends(app_state)],
    status: Annotated[Literal["firing", "resolved"] | None, Query()] = None,
    alertname: Annotated[str | None, Query(max_length=255, pattern=_TEXT)] = None,
    namespace: Annotated[str | None, Query(max_length=255, pattern=_TEXT)] = None,
    severity: Annotated[str | None, Query(max_length=64, pattern=_TEXT)] = None,
    cluster: Annotated[str | None, Query(max_length=255, pattern=_TEXT)] = None,
    since: Annotated[
        UtcDatetime | None,
        Query(description="Only occurrences that started at or after this (with a UTC offset)."),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=_TEXT,
            description="Case-insensitive text in the alertname, the labels or the summary.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    def one(value: str | None) -> tuple[str, ...]:
        return (value,) if value is not None else ()

    flt = queries.AlertFilter(
        status=one(status),
        alertname=one(alertname),
        namespace=one(namespace),
        severity=one(severity),
        cluster=one(cluster),
        since=since,
        q=q or None,
    )
    items, next_cursor = await queries.list_alerts(state.db, flt, limit, cursor, state.base_url)
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/alerts/{fingerprint}",
    response_model=AlertDetail,
    responses=problem_responses(404, 422),
    summary="One alert: latest occurrence, history, timeline and triage",
)
async def get_alert(
    state: Annotated[AppState, Depends(app_state)],
    fingerprint: Annotated[str, Path(pattern=FINGERPRINT_PATTERN)],
) -> dict[str, Any]:
    alert = await queries.get_alert(state.db, fingerprint, state.base_url)
    if alert is None:
        raise NotFound(f"no alert with fingerprint {fingerprint} has been received")
    return alert


@router.get(
    "/triages/{triage_id}",
    response_model=TriageWithAlert,
    responses=problem_responses(404, 422),
    summary="One triage: status, targets and result",
)
async def get_triage(
    state: Annotated[AppState, Depends(app_state)],
    triage_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> dict[str, Any]:
    triage = await queries.get_triage(state.db, triage_id, state.base_url)
    if triage is None:
        raise NotFound(f"no triage with id {triage_id}")
    return triage
