"""A worker killed with SIGKILL while holding a job: another worker finishes it, once.

The job is held mid-flight without any test hook in the product: the test locks the
``triage_results`` table in PostgreSQL, so worker A claims the job, runs the pipeline and
then blocks on storing its result — exactly where a real worker stalls on a slow database.
A is then killed; after its lease expires worker B re-claims and completes the job.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from oncallm.config import DatabaseSettings
from oncallm.ingest.alertmanager import AlertmanagerWebhook, IngestLimits, normalise
from oncallm.store import migrate
from oncallm.store.db import Database
from oncallm.store.ingest import record_notification
from oncallm.store.models import TimelineEntry, TriageJob, TriageResult
from tests.support.payloads import am_alert, am_notification, body
from tests.support.services import PostgresServer, oncallm_env, start_oncallm

WORKER_SETTINGS = {
    "jobs__lease_seconds": "3",
    "jobs__heartbeat_seconds": "1",
    "jobs__poll_interval_seconds": "0.2",
}


async def _wait_for_status(db: Database, status: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with db.read() as conn:
            job = (await conn.execute(select(TriageJob))).first()
        if job is not None and job.status == status:
            return job
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the job never reached status {status!r}")


async def test_killed_worker_job_is_completed_by_another(
    pg: PostgresServer, tmp_path: Path
) -> None:
    name = f"crash_{int(time.time() * 1000)}"
    url = pg.create_database(name)
    db = Database(DatabaseSettings(url=url))
    blocker = create_async_engine(url)
    worker_a = worker_b = None
    try:
        await migrate.upgrade(db)
        env = oncallm_env(url, **WORKER_SETTINGS)
        async with blocker.connect() as lock_conn:
            await lock_conn.execute(text("LOCK TABLE triage_results IN EXCLUSIVE MODE"))
            worker_a = start_oncallm(["worker"], env, tmp_path)
            note = am_notification(am_alert("f00000000000000a", namespace="shop", pod="api-1"))
            parsed = AlertmanagerWebhook.model_validate(note)
            await record_notification(
                db, normalise(parsed, IngestLimits(1000, 128, 65536)), body(note), 5
            )
            held = await _wait_for_status(db, "running")
            assert str(worker_a.process.pid) in (held.lease_owner or "")
            await asyncio.sleep(1.5)  # A is now blocked writing its result
            worker_a.process.send_signal(signal.SIGKILL)
            worker_a.process.wait(10)
            await lock_conn.rollback()  # release the table lock
        worker_b = start_oncallm(["worker"], env, tmp_path)
        done = await _wait_for_status(db, "succeeded", timeout=60)
        assert done.attempts == 2
        assert done.lease_owner is None
        async with db.read() as conn:
            results = (await conn.execute(select(TriageResult.worker))).scalars().all()
            started = (
                await conn.execute(
                    select(func.count()).where(TimelineEntry.kind == "triage.started")
                )
            ).scalar_one()
        assert len(results) == 1, "exactly one result row"
        assert str(worker_b.process.pid) in results[0]
        assert started == 2
    finally:
        for worker in (worker_a, worker_b):
            if worker is not None:
                worker.stop()
        await blocker.dispose()
        await db.dispose()
        pg.drop_database(name)


def test_worker_refuses_unmigrated_database(tmp_path: Path) -> None:
    env = oncallm_env(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    worker = start_oncallm(["worker"], env, tmp_path)
    code = worker.process.wait(30)
    assert code == 2
    assert "run `oncallm db upgrade` first" in worker.log()
