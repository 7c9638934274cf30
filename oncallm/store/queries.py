"""Read side: alert lists, one alert with its history, one triage.

Returns plain dicts shaped for the API; pagination is keyset (by occurrence id, newest
first), so pages stay stable while new alerts arrive.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from oncallm.errors import BadRequest
from oncallm.store.db import Database
from oncallm.store.models import Occurrence, TimelineEntry, TriageJob, TriageResult

HISTORY_LIMIT = 50


@dataclass(frozen=True)
class AlertFilter:
    status: str | None = None
    alertname: str | None = None
    namespace: str | None = None
    severity: str | None = None
    cluster: str | None = None
    since: datetime | None = None


def encode_cursor(occurrence_id: int) -> str:
    return base64.urlsafe_b64encode(f"o:{occurrence_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        prefix, _, value = text.partition(":")
        occurrence_id = int(value)
        if prefix != "o" or not 1 <= occurrence_id <= 2**31 - 1:
            raise ValueError(text)
        return occurrence_id
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise BadRequest("cursor is not one this API returned") from exc


def _occurrence_dict(row: Any, base_url: str) -> dict[str, Any]:
    return {
        "fingerprint": row.fingerprint,
        "alertname": row.alertname,
        "status": row.status,
        "severity": row.severity,
        "namespace": row.namespace,
        "cluster": row.cluster,
        "starts_at": row.starts_at,
        "ends_at": row.ends_at,
        "labels": row.labels,
        "annotations": row.annotations,
        "generator_url": row.generator_url,
        "receiver": row.receiver,
        "group_key": row.group_key,
        "external_url": row.external_url,
        "url": f"{base_url}/alerts/{row.fingerprint}",
    }


def _triage_dict(job: Row[Any] | None, result: Row[Any] | None) -> dict[str, Any] | None:
    if job is None:
        return None
    return {
        "id": job.id,
        "status": job.status,
        "step": job.step,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "last_error": job.last_error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "targets": result.targets if result is not None else [],
        "result": result.result if result is not None else None,
    }


async def list_alerts(
    db: Database, flt: AlertFilter, limit: int, cursor: str | None, base_url: str
) -> tuple[list[dict[str, Any]], str | None]:
    query = select(Occurrence, TriageJob.status.label("triage_status")).outerjoin(
        TriageJob, TriageJob.occurrence_id == Occurrence.id
    )
    for column, value in (
        (Occurrence.status, flt.status),
        (Occurrence.alertname, flt.alertname),
        (Occurrence.namespace, flt.namespace),
        (Occurrence.severity, flt.severity),
        (Occurrence.cluster, flt.cluster),
    ):
        if value is not None:
            query = query.where(column == value)
    if flt.since is not None:
        query = query.where(Occurrence.starts_at >= flt.since)
    if cursor:
        query = query.where(Occurrence.id < decode_cursor(cursor))
    query = query.order_by(Occurrence.id.desc()).limit(limit + 1)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    items = []
    for row in rows[:limit]:
        item = _occurrence_dict(row, base_url)
        item["triage_status"] = row.triage_status
        items.append(item)
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return items, next_cursor


async def _job_and_result(
    conn: AsyncConnection, occurrence_id: int
) -> tuple[Row[Any] | None, Row[Any] | None]:
    job = (
        await conn.execute(select(TriageJob).where(TriageJob.occurrence_id == occurrence_id))
    ).first()
    if job is None:
        return None, None
    return job, await _result_of(conn, job.id)


async def _result_of(conn: AsyncConnection, job_id: int) -> Row[Any] | None:
    return (await conn.execute(select(TriageResult).where(TriageResult.job_id == job_id))).first()


async def get_alert(db: Database, fingerprint: str, base_url: str) -> dict[str, Any] | None:
    async with db.read() as conn:
        history = (
            await conn.execute(
                select(Occurrence)
                .where(Occurrence.fingerprint == fingerprint)
                .order_by(Occurrence.starts_at.desc())
                .limit(HISTORY_LIMIT)
            )
        ).all()
        if not history:
            return None
        latest = history[0]
        job, result = await _job_and_result(conn, latest.id)
        timeline = (
            await conn.execute(
                select(TimelineEntry.at, TimelineEntry.kind, TimelineEntry.message)
                .where(TimelineEntry.occurrence_id == latest.id)
                .order_by(TimelineEntry.at, TimelineEntry.id)
            )
        ).all()
    alert = _occurrence_dict(latest, base_url)
    alert["triage"] = _triage_dict(job, result)
    alert["triage_status"] = job.status if job is not None else None
    alert["timeline"] = [{"at": t.at, "kind": t.kind, "message": t.message} for t in timeline]
    alert["history"] = [
        {"starts_at": h.starts_at, "ends_at": h.ends_at, "status": h.status} for h in history
    ]
    return alert


async def get_triage(db: Database, triage_id: int, base_url: str) -> dict[str, Any] | None:
    async with db.read() as conn:
        job = (await conn.execute(select(TriageJob).where(TriageJob.id == triage_id))).first()
        if job is None:
            return None
        result = await _result_of(conn, job.id)
        occurrence = (
            await conn.execute(
                select(Occurrence.fingerprint, Occurrence.alertname, Occurrence.starts_at).where(
                    Occurrence.id == job.occurrence_id
                )
            )
        ).one()
    triage = _triage_dict(job, result)
    assert triage is not None
    triage["alert"] = {
        "fingerprint": occurrence.fingerprint,
        "alertname": occurrence.alertname,
        "starts_at": occurrence.starts_at,
        "url": f"{base_url}/alerts/{occurrence.fingerprint}",
    }
    return triage
