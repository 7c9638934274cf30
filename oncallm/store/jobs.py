"""The durable triage queue: claim, heartbeat, complete, retry, fail.

A claim is one atomic UPDATE of the oldest runnable job — queued and due, or running with
an expired lease (its worker died). PostgreSQL picks the row with ``FOR UPDATE SKIP
LOCKED`` so workers on many hosts never wait on each other; SQLite's write transaction is
already exclusive (see ``store.db``). Every later write by a worker is *fenced* on
``lease_owner``: a worker that lost its lease can neither renew it nor store a result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from oncallm.errors import LeaseLost
from oncallm.store.db import Database
from oncallm.store.models import Occurrence, TimelineEntry, TriageJob, TriageResult, utcnow

FIRST_STEP = "targets"


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    occurrence_id: int
    attempts: int
    max_attempts: int
    labels: dict[str, str]
    annotations: dict[str, str]
    fingerprint: str
    starts_at: datetime
    alertname: str
    status: str
    generator_url: str = ""


def _runnable(now: datetime) -> Any:
    return or_(
        and_(TriageJob.status == "queued", TriageJob.run_after <= now),
        # A dead worker's job, if it has attempts left (else fail_exhausted fails it).
        and_(
            TriageJob.status == "running",
            TriageJob.lease_expires_at < now,
            TriageJob.attempts < TriageJob.max_attempts,
        ),
    )


async def claim(db: Database, worker_id: str, lease: timedelta) -> ClaimedJob | None:
    """Take the next runnable job for ``worker_id``, or None when there is none."""
    now = utcnow()
    async with db.write() as conn:
        pick = (
            select(TriageJob.id)
            .where(_runnable(now))
            .order_by(TriageJob.run_after, TriageJob.id)
            .limit(1)
        )
        if not db.is_sqlite:
            pick = pick.with_for_update(skip_locked=True)
        job_id = (await conn.execute(pick)).scalar_one_or_none()
        if job_id is None:
            return None
        claimed = await conn.execute(
            update(TriageJob)
            .where(TriageJob.id == job_id, _runnable(now))
            .values(
                status="running",
                step=FIRST_STEP,
                attempts=TriageJob.attempts + 1,
                lease_owner=worker_id,
                lease_expires_at=now + lease,
                started_at=func.coalesce(TriageJob.started_at, now),
                updated_at=now,
            )
            .returning(TriageJob.attempts, TriageJob.max_attempts, TriageJob.occurrence_id)
        )
        row = claimed.one_or_none()
        if row is None:  # pragma: no cover - only if the row changed between the two statements
            return None
        attempts, max_attempts, occurrence_id = row
        occ = (
            await conn.execute(
                select(
                    Occurrence.labels,
                    Occurrence.annotations,
                    Occurrence.fingerprint,
                    Occurrence.starts_at,
                    Occurrence.alertname,
                    Occurrence.status,
                    Occurrence.generator_url,
                ).where(Occurrence.id == occurrence_id)
            )
        ).one()
        message = f"triage started (attempt {attempts} of {max_attempts}) by {worker_id}"
        await _timeline(conn, occurrence_id, now, "triage.started", message)
        return ClaimedJob(
            id=job_id,
            occurrence_id=occurrence_id,
            attempts=attempts,
            max_attempts=max_attempts,
            labels=occ.labels,
            annotations=occ.annotations,
            fingerprint=occ.fingerprint,
            starts_at=occ.starts_at,
            alertname=occ.alertname,
            status=occ.status,
            generator_url=occ.generator_url,
        )


async def _timeline(
    conn: AsyncConnection, occurrence_id: int, at: datetime, kind: str, message: str
) -> None:
    await conn.execute(
        insert(TimelineEntry).values(occurrence_id=occurrence_id, at=at, kind=kind, message=message)
    )


def _owned(job_id: int, worker_id: str) -> Any:
    return and_(
        TriageJob.id == job_id, TriageJob.status == "running", TriageJob.lease_owner == worker_id
    )


async def heartbeat(
    db: Database, job_id: int, worker_id: str, lease: timedelta, step: str | None = None
) -> None:
    """Renew the lease (and record the step); raises LeaseLost if another worker has it."""
    now = utcnow()
    values: dict[str, Any] = {"lease_expires_at": now + lease, "updated_at": now}
    if step is not None:
        values["step"] = step
    async with db.write() as conn:
        result = await conn.execute(
            update(TriageJob).where(_owned(job_id, worker_id)).values(**values)
        )
        if not result.rowcount:
            raise LeaseLost(f"job {job_id} is no longer leased to {worker_id}")


async def complete(
    db: Database,
    job: ClaimedJob,
    worker_id: str,
    targets: list[dict[str, Any]],
    result: dict[str, Any],
) -> None:
    """Store the result and finish the job, in one transaction fenced on the lease."""
    now = utcnow()
    async with db.write() as conn:
        finished = await conn.execute(
            update(TriageJob)
            .where(_owned(job.id, worker_id))
            .values(
                status="succeeded",
                step="done",
                lease_owner=None,
                lease_expires_at=None,
                finished_at=now,
                updated_at=now,
                last_error=None,
            )
        )
        if not finished.rowcount:
            raise LeaseLost(f"job {job.id} is no longer leased to {worker_id}")
        await conn.execute(
            insert(TriageResult).values(
                job_id=job.id,
                occurrence_id=job.occurrence_id,
                worker=worker_id,
                created_at=now,
                targets=targets,
                result=result,
            )
        )
        await _timeline(conn, job.occurrence_id, now, "triage.completed", "triage completed")


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff: base, 2·base, 4·base, ... capped."""
    return float(min(cap, base * (2 ** max(0, attempt - 1))))


async def fail(db: Database, job: ClaimedJob, worker_id: str, error: str, retry_in: float) -> str:
    """Record a failed attempt: requeue after ``retry_in`` seconds, or fail for good when
    it was the last attempt."""
    now = utcnow()
    error = error[:4000]
    final = job.attempts >= job.max_attempts
    values: dict[str, Any] = {
        "lease_owner": None,
        "lease_expires_at": None,
        "last_error": error,
        "updated_at": now,
    }
    if final:
        values.update(status="failed", step="failed", finished_at=now)
        kind, message = "triage.failed", f"triage failed after {job.attempts} attempts: {error}"
    else:
        values.update(status="queued", step=None, run_after=now + timedelta(seconds=retry_in))
        kind = "triage.retry"
        message = f"attempt {job.attempts} failed: {error}; retrying in {retry_in:.0f}s"
    async with db.write() as conn:
        changed = await conn.execute(
            update(TriageJob).where(_owned(job.id, worker_id)).values(**values)
        )
        if not changed.rowcount:
            raise LeaseLost(f"job {job.id} is no longer leased to {worker_id}")
        await _timeline(conn, job.occurrence_id, now, kind, message)
    return "failed" if final else "retried"


async def fail_exhausted(db: Database, now: datetime | None = None) -> int:
    """Jobs whose lease expired on their last attempt are failed instead of re-claimed."""
    now = now or utcnow()
    async with db.write() as conn:
        rows = await conn.execute(
            update(TriageJob)
            .where(
                TriageJob.status == "running",
                TriageJob.lease_expires_at < now,
                TriageJob.attempts >= TriageJob.max_attempts,
            )
            .values(
                status="failed",
                step="failed",
                lease_owner=None,
                lease_expires_at=None,
                finished_at=now,
                updated_at=now,
                last_error="worker stopped responding (lease expired) on the last attempt",
            )
            .returning(TriageJob.occurrence_id)
        )
        failed = [r[0] for r in rows.all()]
        for occurrence_id in failed:
            await _timeline(
                conn,
                occurrence_id,
                now,
                "triage.failed",
                "triage failed: worker stopped responding on the last attempt",
            )
    return len(failed)


async def queue_depth(db: Database) -> dict[str, int]:
    async with db.read() as conn:
        rows = await conn.execute(select(TriageJob.status, func.count()).group_by(TriageJob.status))
        counts = dict(rows.all())
    return {s: counts.get(s, 0) for s in ("queued", "running", "succeeded", "failed")}
