"""Recording a notification: one transaction that stores it exactly once.

Idempotency rests on three unique keys, not on in-memory state, so it holds across
retries, HA Alertmanager pairs, several OncallM replicas and both backends:
``notifications.content_sha256`` (the same body resent), the occurrence key
``(fingerprint, starts_at)``, and ``triage_jobs.occurrence_id`` (one job per occurrence).
Inserts use ``ON CONFLICT DO NOTHING``; only a row that was really inserted creates a
timeline entry or a job.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from oncallm.ingest.alertmanager import IncomingAlert, IncomingNotification
from oncallm.store.db import Database
from oncallm.store.models import Notification, Occurrence, TimelineEntry, TriageJob, utcnow


@dataclass
class IngestOutcome:
    notification_id: int | None
    duplicate_notification: bool = False
    created: list[IncomingAlert] = field(default_factory=list)
    resolved: list[IncomingAlert] = field(default_factory=list)
    unchanged: int = 0
    jobs_enqueued: int = 0


def content_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def record_notification(
    db: Database, notification: IncomingNotification, body: bytes, max_attempts: int
) -> IngestOutcome:
    """Store the notification, its new occurrences, status changes and triage jobs."""
    now = utcnow()
    async with db.write() as conn:
        inserted = await conn.execute(
            _statements(conn.dialect.name).insert_notification,
            {
                "content_sha256": content_digest(body),
                "source": notification.source,
                "received_at": now,
                "receiver": notification.receiver,
                "status": notification.status,
                "group_key": notification.group_key,
                "external_url": notification.external_url,
                "alert_count": len(notification.alerts),
                "body": body.decode("utf-8"),
            },
        )
        notification_id = inserted.scalar_one_or_none()
        if notification_id is None:
            # The exact body was stored before, in a transaction that also applied it.
            return IngestOutcome(notification_id=None, duplicate_notification=True)
        outcome = IngestOutcome(notification_id=notification_id)
        await _apply_alerts(conn, notification, notification_id, now, max_attempts, outcome)
        return outcome


async def _apply_alerts(
    conn: AsyncConnection,
    notification: IncomingNotification,
    notification_id: int,
    now: datetime,
    max_attempts: int,
    outcome: IngestOutcome,
) -> None:
    alerts = {a.key: a for a in notification.alerts}
    rows = [
        {
            "fingerprint": a.fingerprint,
            "starts_at": a.starts_at,
            "ends_at": a.ends_at,
            "status": a.status,
            "alertname": a.alertname,
            "severity": a.severity,
            "namespace": a.namespace,
            "cluster": a.cluster,
            "labels": a.labels,
            "annotations": a.annotations,
            "generator_url": a.generator_url,
            "receiver": notification.receiver,
            "group_key": notification.group_key,
            "external_url": notification.external_url,
            "first_notification_id": notification_id,
            "last_notification_id": notification_id,
            "created_at": now,
            "updated_at": now,
        }
        # Sorted so concurrent PostgreSQL transactions lock keys in one order (no deadlock).
        for a in sorted(alerts.values(), key=lambda a: a.key)
    ]
    statements = _statements(conn.dialect.name)
    created = await conn.execute(statements.insert_occurrences, rows)
    new_ids: dict[tuple[str, datetime], int] = {
        (fp, starts): occ_id for occ_id, fp, starts in created.all()
    }
    timeline: list[dict[str, Any]] = []
    jobs: list[dict[str, Any]] = []
    for key, occ_id in new_ids.items():
        alert = alerts[key]
        outcome.created.append(alert)
        received = f"{alert.alertname} {alert.status} (via {notification.receiver})"
        # An alert first seen resolved (OncallM was down while it fired, or the firing
        # notification went elsewhere) is still triaged: the link in the resolved
        # notification should say what happened, and events keep the record for a while.
        if alert.status == "resolved":
            message = f"{received}; resolved before OncallM saw it firing; triage queued"
        else:
            message = f"{received}; triage queued"
        jobs.append(
            {
                "occurrence_id": occ_id,
                "status": "queued",
                "step": None,
                "attempts": 0,
                "max_attempts": max_attempts,
                "run_after": now,
                "created_at": now,
                "updated_at": now,
            }
        )
        timeline.append(
            {"occurrence_id": occ_id, "at": now, "kind": "received", "message": message}
        )

    existing = [a for key, a in alerts.items() if key not in new_ids]
    await _update_existing(conn, statements, existing, notification_id, now, timeline, outcome)

    if jobs:
        result = await conn.execute(statements.insert_jobs, jobs)
        outcome.jobs_enqueued = len(result.all())
    if timeline:
        await conn.execute(statements.insert_timeline, timeline)


async def _update_existing(
    conn: AsyncConnection,
    statements: _Statements,
    existing: list[IncomingAlert],
    notification_id: int,
    now: datetime,
    timeline: list[dict[str, Any]],
    outcome: IngestOutcome,
) -> None:
    """Move known occurrences forward. Resolved is final: a late firing resend is stale."""
    resolved = [a for a in existing if a.status == "resolved"]
    outcome.unchanged = len(existing) - len(resolved)
    if not resolved:
        return
    pick = select(Occurrence.id, Occurrence.fingerprint, Occurrence.starts_at).where(
        tuple_(Occurrence.fingerprint, Occurrence.starts_at).in_([a.key for a in resolved]),
        Occurrence.status != "resolved",
    )
    if conn.dialect.name == "postgresql":
        # Lock the rows (in id order) so a concurrent resolve of the same alert waits, then
        # finds it resolved; SQLite's write transaction is exclusive already.
        pick = pick.order_by(Occurrence.id).with_for_update()
    by_key = {(fp, starts): occ_id for occ_id, fp, starts in (await conn.execute(pick)).all()}
    outcome.unchanged += len(resolved) - len(by_key)
    changes = []
    for alert in resolved:
        occ_id = by_key.get(alert.key)
        if occ_id is None:
            continue
        outcome.resolved.append(alert)
        changes.append(
            {
                "b_id": occ_id,
                "b_ends_at": alert.ends_at,
                "b_annotations": alert.annotations,
                "b_notification_id": notification_id,
                "b_now": now,
            }
        )
        ended = alert.ends_at.isoformat() if alert.ends_at else "now"
        timeline.append(
            {
                "occurrence_id": occ_id,
                "at": now,
                "kind": "resolved",
                "message": f"{alert.alertname} resolved (ended {ended})",
            }
        )
    if changes:
        await conn.execute(statements.resolve_occurrence, changes)
    # A queued triage of an alert that has since resolved still runs: the post-incident
    # page wants to know what was wrong.


@dataclass(frozen=True)
class _Statements:
    """Statements built once per dialect. Rows go to ``execute`` as parameters (never
    ``.values(rows)``, which SQLAlchemy cannot cache and recompiles per notification);
    SQLAlchemy still sends one multi-row INSERT ... RETURNING ("insertmanyvalues")."""

    insert_notification: Any
    insert_occurrences: Any
    insert_jobs: Any
    insert_timeline: Any
    resolve_occurrence: Any


@functools.cache
def _statements(dialect: str) -> _Statements:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return _Statements(
        insert_notification=insert(Notification)
        .on_conflict_do_nothing(index_elements=["content_sha256"])
        .returning(Notification.id),
        insert_occurrences=insert(Occurrence)
        .on_conflict_do_nothing(index_elements=["fingerprint", "starts_at"])
        .returning(Occurrence.id, Occurrence.fingerprint, Occurrence.starts_at),
        insert_jobs=insert(TriageJob)
        .on_conflict_do_nothing(index_elements=["occurrence_id"])
        .returning(TriageJob.id),
        insert_timeline=insert(TimelineEntry),
        resolve_occurrence=update(Occurrence)
        .where(Occurrence.id == bindparam("b_id"))
        .values(
            status="resolved",
            ends_at=bindparam("b_ends_at"),
            annotations=bindparam("b_annotations"),
            last_notification_id=bindparam("b_notification_id"),
            updated_at=bindparam("b_now"),
        ),
    )
