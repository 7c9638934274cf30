"""Read side: alert lists, one alert with its history, one triage.

Returns plain dicts shaped for the API and the pages. Pagination is keyset, so pages stay
stable while new alerts arrive: the API walks occurrences by id, newest first; the alert
list page walks them firing first, then resolved, each newest-started first.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVarTuple

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Text,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import InstrumentedAttribute

from oncallm.errors import BadRequest
from oncallm.store.db import Database
from oncallm.store.models import Occurrence, TimelineEntry, TriageJob, TriageResult

HISTORY_LIMIT = 50
_Columns = TypeVarTuple("_Columns")


# The order of the alert list page: what needs a human now comes first.
STATUS_ORDER = ("firing", "resolved")
COUNT_CAP = 10_000


@dataclass(frozen=True)
class AlertFilter:
    """Which occurrences a list shows. Every given field narrows the list; several values
    of one field are alternatives (``severity=("critical", "warning")``)."""

    status: tuple[str, ...] = ()
    alertname: tuple[str, ...] = ()
    namespace: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    cluster: tuple[str, ...] = ()
    since: datetime | None = None
    # Case-insensitive substring of the alertname, the labels or the summary annotation.
    q: str | None = None


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


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _narrowed(
    query: Select[*_Columns], flt: AlertFilter, *, with_status: bool = True
) -> Select[*_Columns]:
    columns: list[tuple[InstrumentedAttribute[Any], tuple[str, ...]]] = [
        (Occurrence.alertname, flt.alertname),
        (Occurrence.namespace, flt.namespace),
        (Occurrence.severity, flt.severity),
        (Occurrence.cluster, flt.cluster),
    ]
    if with_status:
        columns.append((Occurrence.status, flt.status))
    for column, values in columns:
        if len(values) == 1:
            query = query.where(column == values[0])
        elif values:
            query = query.where(column.in_(values))
    if flt.since is not None:
        query = query.where(Occurrence.starts_at >= flt.since)
    if flt.q:
        # A substring search scans the rows the other filters leave; at the sizes an
        # on-call history reaches (tens of thousands of occurrences) that is milliseconds,
        # and it needs no search index that SQLite and PostgreSQL would spell differently.
        pattern = _like_pattern(flt.q)
        query = query.where(
            or_(
                Occurrence.alertname.ilike(pattern, escape="\\"),
                cast(Occurrence.labels, Text).ilike(pattern, escape="\\"),
                Occurrence.annotations["summary"].as_string().ilike(pattern, escape="\\"),
            )
        )
    return query


async def list_alerts(
    db: Database, flt: AlertFilter, limit: int, cursor: str | None, base_url: str
) -> tuple[list[dict[str, Any]], str | None]:
    query = select(Occurrence, TriageJob.status.label("triage_status")).outerjoin(
        TriageJob, TriageJob.occurrence_id == Occurrence.id
    )
    query = _narrowed(query, flt)
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


@dataclass(frozen=True)
class ListPosition:
    """A place in the firing-first order: the (status, starts_at, id) of one row."""

    status: str
    starts_at: datetime
    occurrence_id: int

    def encode(self) -> str:
        micros = int(self.starts_at.timestamp() * 1_000_000)
        text = f"l:{self.status}:{micros}:{self.occurrence_id}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> ListPosition:
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
            prefix, status, micros, value = text.split(":")
            occurrence_id = int(value)
            if prefix != "l" or status not in STATUS_ORDER or not 1 <= occurrence_id <= 2**31 - 1:
                raise ValueError(text)
            starts_at = datetime.fromtimestamp(int(micros) / 1_000_000, UTC)
            return cls(status, starts_at, occurrence_id)
        except (ValueError, UnicodeError, binascii.Error, OverflowError, OSError) as exc:
            raise BadRequest("cursor is not one this list gave out") from exc


@dataclass(frozen=True)
class AlertListPage:
    """One page of the alert list, with cursors to the pages either side (None: no such page)."""

    items: list[dict[str, Any]]
    older: str | None = None
    newer: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


def _list_columns() -> Select[Any]:
    return select(
        Occurrence.id,
        Occurrence.fingerprint,
        Occurrence.alertname,
        Occurrence.status,
        Occurrence.severity,
        Occurrence.namespace,
        Occurrence.cluster,
        Occurrence.starts_at,
        Occurrence.ends_at,
        Occurrence.annotations["summary"].as_string().label("summary"),
        TriageJob.status.label("triage_status"),
        TriageJob.step.label("triage_step"),
        # Only the root cause is read out of the stored result (which can hold hundreds of
        # evidence items), and with one extraction: PostgreSQL's json type re-parses the
        # whole document for each path it is asked for.
        TriageResult.result["root_cause"].label("root_cause"),
    ).select_from(
        Occurrence.__table__.outerjoin(
            TriageJob.__table__, TriageJob.occurrence_id == Occurrence.id
        ).outerjoin(TriageResult.__table__, TriageResult.job_id == TriageJob.id)
    )


def _list_row(row: Any, base_url: str) -> dict[str, Any]:
    found = row.root_cause if isinstance(row.root_cause, dict) else {}
    root_cause = None
    if row.triage_status == "succeeded" and isinstance(found.get("category"), str):
        resource = found.get("resource")
        culprit = None
        if isinstance(resource, dict) and resource.get("kind") and resource.get("name"):
            culprit = {k: resource.get(k) for k in ("kind", "namespace", "name")}
        confidence = found.get("confidence")
        root_cause = {
            "category": found["category"],
            "summary": found.get("summary"),
            "confidence": confidence if isinstance(confidence, int | float) else None,
            "resource": culprit,
        }
    return {
        "fingerprint": row.fingerprint,
        "alertname": row.alertname,
        "status": row.status,
        "severity": row.severity,
        "namespace": row.namespace,
        "cluster": row.cluster,
        "starts_at": row.starts_at,
        "ends_at": row.ends_at,
        "summary": row.summary,
        "triage_status": row.triage_status,
        "triage_step": row.triage_step,
        "root_cause": root_cause,
        "url": f"{base_url}/alerts/{row.fingerprint}",
        "position": ListPosition(row.status, row.starts_at, row.id),
    }


def _after(position: ListPosition, *, newer: bool) -> ColumnElement[bool]:
    # A row-value comparison, so the database seeks straight to the cursor in the
    # (status, starts_at, id) index instead of filtering its way there.
    key = tuple_(Occurrence.starts_at, Occurrence.id)
    bound = tuple_(
        literal(position.starts_at, Occurrence.starts_at.type),
        literal(position.occurrence_id, Occurrence.id.type),
    )
    return key > bound if newer else key < bound


async def _walk(
    conn: AsyncConnection,
    flt: AlertFilter,
    statuses: Sequence[str],
    start: ListPosition | None,
    want: int,
    *,
    newer: bool,
) -> list[Any]:
    """Up to ``want`` rows from ``start`` (exclusive) on, one status segment at a time.

    Each segment is one indexed range scan of (status, starts_at, id); a single query
    ordering by a CASE over status could not use the index and would sort the table.
    """
    rows: list[Any] = []
    order = list(reversed(statuses)) if newer else list(statuses)
    for status in order:
        if start is not None:
            here, there = STATUS_ORDER.index(status), STATUS_ORDER.index(start.status)
            if (here > there) if newer else (here < there):
                continue
        query = _narrowed(_list_columns(), flt, with_status=False).where(
            Occurrence.status == status
        )
        if start is not None and status == start.status:
            query = query.where(_after(start, newer=newer))
        if newer:
            query = query.order_by(Occurrence.starts_at.asc(), Occurrence.id.asc())
        else:
            query = query.order_by(Occurrence.starts_at.desc(), Occurrence.id.desc())
        rows += (await conn.execute(query.limit(want - len(rows)))).all()
        if len(rows) >= want:
            break
    return rows


async def _count(conn: AsyncConnection, flt: AlertFilter, status: str) -> int:
    # Capped: a year of resolved history should not make every page load count it all.
    # COUNT_CAP + 1 means "more than COUNT_CAP".
    matching = (
        _narrowed(select(Occurrence.id), flt, with_status=False)
        .where(Occurrence.status == status)
        .limit(COUNT_CAP + 1)
        .subquery()
    )
    return int((await conn.execute(select(func.count()).select_from(matching))).scalar_one())


async def list_alerts_firing_first(
    db: Database,
    flt: AlertFilter,
    limit: int,
    base_url: str,
    *,
    after: str | None = None,
    before: str | None = None,
) -> AlertListPage:
    """The alert list page: firing first, then resolved, each newest-started first.

    ``after`` (the Older link) continues past a row; ``before`` (the Newer link) goes back
    to the rows above one. ``counts`` counts each status under the other filters, so the
    status chips say how many a click on them would show.
    """
    start_after = ListPosition.decode(after) if after else None
    start_before = ListPosition.decode(before) if before else None
    statuses = [s for s in STATUS_ORDER if not flt.status or s in flt.status]
    async with db.read() as conn:
        counts = {s: await _count(conn, flt, s) for s in STATUS_ORDER}
        if start_before is not None:
            rows = await _walk(conn, flt, statuses, start_before, limit + 1, newer=True)
            if len(rows) > limit:
                items = [_list_row(r, base_url) for r in reversed(rows[:limit])]
                return AlertListPage(
                    items,
                    older=items[-1]["position"].encode(),
                    newer=items[0]["position"].encode(),
                    counts=counts,
                )
            # Fewer than a page above: that is the top, which is the first page.
            start_after = None
        rows = await _walk(conn, flt, statuses, start_after, limit + 1, newer=False)
    items = [_list_row(r, base_url) for r in rows[:limit]]
    return AlertListPage(
        items,
        older=items[-1]["position"].encode() if len(rows) > limit else None,
        newer=items[0]["position"].encode() if start_after is not None and items else None,
        counts=counts,
    )


FILTER_COLUMNS = ("alertname", "severity", "namespace", "cluster")


# A "loose index scan": each step jumps to the next larger value in the column's index,
# so finding N distinct values costs N index probes however many rows share them (a plain
# DISTINCT reads the whole index). Both SQLite and PostgreSQL stop at the LIMIT.
_DISTINCT = """
WITH RECURSIVE v(x) AS (
  SELECT min({column}) FROM occurrences
  UNION ALL
  SELECT (SELECT min({column}) FROM occurrences WHERE {column} > v.x) FROM v WHERE v.x IS NOT NULL
)
SELECT x FROM v WHERE x IS NOT NULL LIMIT :limit
"""


async def filter_choices(db: Database, cap: int) -> dict[str, list[str] | None]:
    """The distinct non-empty values of each filterable column, sorted; None for a column
    with more than ``cap`` (a select of hundreds of options helps nobody: offer free text).
    """
    choices: dict[str, list[str] | None] = {}
    async with db.read() as conn:
        for name in FILTER_COLUMNS:  # fixed names: never user input in this SQL
            query = text(_DISTINCT.format(column=name))
            found = (await conn.execute(query, {"limit": cap + 2})).scalars().all()
            values = [v for v in found if v]  # "" sorts first: one spare in the limit
            choices[name] = None if len(values) > cap else values
    return choices


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
