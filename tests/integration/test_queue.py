"""The durable triage queue: exclusive claims, leases, fencing, retries and failure."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from oncallm.config import JobSettings, TriageSettings
from oncallm.errors import LeaseLost
from oncallm.ingest.alertmanager import AlertmanagerWebhook, IngestLimits, normalise
from oncallm.jobs.worker import Worker
from oncallm.sources.snapshot import SnapshotSource
from oncallm.store import jobs as queue
from oncallm.store.db import Database
from oncallm.store.ingest import record_notification
from oncallm.store.models import TimelineEntry, TriageJob, TriageResult
from oncallm.triage.oneshot import FixedSource
from oncallm.triage.pipeline import TriagePipeline
from tests.support.payloads import am_alert, am_notification, body

SMALL_CLUSTER = Path(__file__).resolve().parents[1] / "fakes" / "clusters" / "small"

LIMITS = IngestLimits(max_alerts=1000, max_labels=128, max_value_bytes=65536)


async def _enqueue(db: Database, *fingerprints: str, max_attempts: int = 3) -> None:
    note = am_notification(
        *(am_alert(fp, namespace="shop", pod=f"api-{fp[-1]}") for fp in fingerprints)
    )
    parsed = AlertmanagerWebhook.model_validate(note)
    await record_notification(db, normalise(parsed, LIMITS), body(note), max_attempts)


async def _job(db: Database) -> TriageJob:
    async with db.read() as conn:
        return (await conn.execute(select(TriageJob).order_by(TriageJob.id))).first()  # type: ignore[return-value]


async def _results(db: Database) -> int:
    async with db.read() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(TriageResult))).scalar_one()
        )


async def test_concurrent_claims_hand_out_each_job_once(db: Database) -> None:
    await _enqueue(db, *(f"a00000000000000{i}" for i in range(5)))
    lease = timedelta(seconds=30)
    claims = await asyncio.gather(*(queue.claim(db, f"w{i}", lease) for i in range(12)))
    claimed = [c for c in claims if c is not None]
    assert sorted(c.id for c in claimed) == [1, 2, 3, 4, 5]
    assert await queue.claim(db, "late", lease) is None


async def test_failed_attempts_retry_with_backoff_then_fail_with_error(db: Database) -> None:
    await _enqueue(db, "b000000000000001", max_attempts=2)
    lease = timedelta(seconds=30)
    job = await queue.claim(db, "w1", lease)
    assert job is not None
    assert job.attempts == 1
    assert await queue.fail(db, job, "w1", "RuntimeError: boom", retry_in=60) == "retried"
    row = await _job(db)
    assert row.status == "queued"
    assert row.last_error == "RuntimeError: boom"
    # Not due yet: the backoff keeps it from being claimed immediately.
    assert await queue.claim(db, "w2", lease) is None
    async with db.write() as conn:
        await conn.execute(update(TriageJob).values(run_after=row.created_at))
    again = await queue.claim(db, "w2", lease)
    assert again is not None
    assert again.attempts == 2
    assert await queue.fail(db, again, "w2", "RuntimeError: still broken", retry_in=60) == "failed"
    row = await _job(db)
    assert row.status == "failed"
    assert row.last_error == "RuntimeError: still broken"
    assert row.finished_at is not None
    async with db.read() as conn:
        kinds = (await conn.execute(select(TimelineEntry.kind).order_by(TimelineEntry.id))).all()
    assert [k for (k,) in kinds].count("triage.retry") == 1
    assert [k for (k,) in kinds][-1] == "triage.failed"


def test_backoff_doubles_and_is_capped() -> None:
    delays = [queue.backoff_delay(n, base=2, cap=30) for n in range(1, 7)]
    assert delays == [2, 4, 8, 16, 30, 30]


async def test_expired_lease_is_reclaimed_and_the_old_owner_is_fenced(db: Database) -> None:
    await _enqueue(db, "c000000000000001")
    # A lease long enough that a loaded CI machine still claims again within it.
    first = await queue.claim(db, "dead-worker", timedelta(seconds=1))
    assert first is not None
    assert await queue.claim(db, "other", timedelta(seconds=30)) is None  # lease still held
    await asyncio.sleep(1.1)
    second = await queue.claim(db, "other", timedelta(seconds=30))
    assert second is not None
    assert second.id == first.id
    assert second.attempts == 2
    with pytest.raises(LeaseLost):
        await queue.heartbeat(db, first.id, "dead-worker", timedelta(seconds=30))
    with pytest.raises(LeaseLost):
        await queue.complete(db, first, "dead-worker", [], {"status": "completed"})
    await queue.complete(db, second, "other", [], {"status": "completed"})
    assert await _results(db) == 1
    assert (await _job(db)).status == "succeeded"


async def test_lease_expiring_on_the_last_attempt_fails_the_job(db: Database) -> None:
    await _enqueue(db, "d000000000000001", max_attempts=1)
    job = await queue.claim(db, "dead-worker", timedelta(milliseconds=10))
    assert job is not None
    await asyncio.sleep(0.05)
    assert await queue.claim(db, "other", timedelta(seconds=30)) is None  # no attempts left
    assert await queue.fail_exhausted(db) == 1
    row = await _job(db)
    assert row.status == "failed"
    assert "lease expired" in (row.last_error or "")
    assert await queue.claim(db, "other", timedelta(seconds=30)) is None


async def test_worker_runs_jobs_to_a_stored_result(db: Database) -> None:
    await _enqueue(db, "e000000000000001", "e000000000000002")
    stop = asyncio.Event()
    pipeline = TriagePipeline(FixedSource(SnapshotSource(SMALL_CLUSTER)), TriageSettings())
    worker = Worker(db, JobSettings(poll_interval_seconds=0.05, heartbeat_seconds=1), pipeline)
    running = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(200):
            if (await queue.queue_depth(db))["succeeded"] == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running
    assert (await queue.queue_depth(db)) == {"queued": 0, "running": 0, "succeeded": 2, "failed": 0}
    async with db.read() as conn:
        targets = (await conn.execute(select(TriageResult.targets))).scalars().all()
    assert sorted(t[0]["name"] for t in targets) == ["api-1", "api-2"]
    assert all(t[0]["kind"] == "Pod" and t[0]["namespace"] == "shop" for t in targets)
