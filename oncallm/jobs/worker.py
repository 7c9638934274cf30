"""The triage worker: claims jobs, keeps their leases alive, runs the pipeline.

Each worker has a unique id (host, pid, random suffix) written into the lease, so a job
held by a dead process is recognisable and is re-claimed by any other worker once its
lease expires. Up to ``jobs.concurrency`` jobs run at once; an idle worker sleeps until the
poll interval passes or ingest wakes it (same process) — whichever comes first. An
embedded worker defers each claim until no notification is being ingested, for at most
MAX_DEFERRAL_SECONDS, so an alert storm slows triage rather than the webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import traceback
import uuid
from datetime import timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError

from oncallm.config import JobSettings
from oncallm.errors import LeaseLost
from oncallm.observability import JOB_DURATION, JOB_OUTCOMES
from oncallm.store import jobs as queue
from oncallm.store.db import Database
from oncallm.triage.pipeline import AlertInput, TriagePipeline

log = structlog.get_logger("oncallm.worker")

# Longest a claim waits for a gap in ingest; under an alert storm triage still advances.
MAX_DEFERRAL_SECONDS = 0.25


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        db: Database,
        settings: JobSettings,
        pipeline: TriagePipeline,
        *,
        worker_id: str | None = None,
        wakeup: asyncio.Event | None = None,
        after_ingest: asyncio.Event | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.pipeline = pipeline
        self.id = worker_id or new_worker_id()
        self.wakeup = wakeup or asyncio.Event()
        self.after_ingest = after_ingest
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.last_tick = time.monotonic()
        self._running: set[asyncio.Task[None]] = set()
        self._db_failures = 0

    def alive(self) -> bool:
        """The loop has gone round recently (readiness probe)."""
        return time.monotonic() - self.last_tick < max(
            30.0, 3 * self.settings.poll_interval_seconds
        )

    async def run(self, stop: asyncio.Event) -> None:
        log.info("worker started", worker=self.id, concurrency=self.settings.concurrency)
        slots = asyncio.Semaphore(self.settings.concurrency)
        last_sweep = 0.0
        try:
            while not stop.is_set():
                self.last_tick = time.monotonic()
                if self.last_tick - last_sweep > self.settings.poll_interval_seconds:
                    last_sweep = self.last_tick
                    await self._sweep()
                await slots.acquire()
                await self._give_way_to_ingest()
                try:
                    job = await queue.claim(self.db, self.id, self.lease)
                except (SQLAlchemyError, OSError) as exc:
                    slots.release()
                    await self._database_down(stop, exc)
                    continue
                if self._db_failures:
                    log.info("database reachable again", worker=self.id)
                    self._db_failures = 0
                if job is None:
                    slots.release()
                    await self._idle(stop)
                    continue
                task = asyncio.create_task(self._execute(job))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
                task.add_done_callback(lambda _t: slots.release())
        finally:
            if self._running:
                # Let running jobs finish their current write; anything cut short is
                # re-claimed by another worker after its lease.
                await asyncio.wait(self._running, timeout=self.settings.lease_seconds)
            log.info("worker stopped", worker=self.id)

    async def _give_way_to_ingest(self) -> None:
        """Accepting alerts durably comes first: wait (briefly) for a gap in ingest."""
        if self.after_ingest is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.after_ingest.wait(), MAX_DEFERRAL_SECONDS)

    async def _database_down(self, stop: asyncio.Event, exc: BaseException) -> None:
        """Back off while the database is unreachable, logging once per outage."""
        if not self._db_failures:
            log.warning("database unreachable; retrying with backoff", error=str(exc)[:300])
        self._db_failures += 1
        delay = min(30.0, self.settings.poll_interval_seconds * 2 ** min(self._db_failures, 8))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)

    async def _sweep(self) -> None:
        if self._db_failures:
            return  # the claim loop is already backing off
        try:
            failed = await queue.fail_exhausted(self.db)
        except (SQLAlchemyError, OSError):
            return  # the claim right after will see it and back off
        if failed:
            JOB_OUTCOMES.labels("failed").inc(failed)
            log.warning("jobs failed after their worker stopped responding", count=failed)

    async def _idle(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(self.wakeup.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(
                waiters,
                timeout=self.settings.poll_interval_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        self.wakeup.clear()

    async def _execute(self, job: queue.ClaimedJob) -> None:
        started = time.perf_counter()
        bound = log.bind(job=job.id, fingerprint=job.fingerprint, attempt=job.attempts)
        owner = asyncio.current_task()
        assert owner is not None
        heartbeat = asyncio.create_task(self._heartbeat(job, owner))
        outcome = "succeeded"
        try:
            alert = AlertInput(
                fingerprint=job.fingerprint,
                alertname=job.alertname,
                status=job.status,
                starts_at=job.starts_at,
                labels=job.labels,
                annotations=job.annotations,
            )

            recorded = {"step": queue.FIRST_STEP}  # the claim already wrote the first step

            async def progress(step: str) -> None:
                if step != recorded["step"]:
                    await queue.heartbeat(self.db, job.id, self.id, self.lease, step=step)
                    recorded["step"] = step

            output = await self.pipeline.run(alert, progress)
            targets = [t.as_dict() for t in output.targets.targets]
            await queue.complete(self.db, job, self.id, targets, output.result)
            bound.info("triage completed", targets=len(targets))
        except LeaseLost:
            outcome = "lease_lost"
            bound.warning("lease lost; another worker owns the job now")
        except asyncio.CancelledError:
            outcome = "lease_lost"
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            bound.error("triage attempt failed", error=error, trace=traceback.format_exc(limit=5))
            retry_in = queue.backoff_delay(
                job.attempts, self.settings.backoff_base_seconds, self.settings.backoff_max_seconds
            )
            try:
                outcome = await queue.fail(self.db, job, self.id, error, retry_in)
            except LeaseLost:
                outcome = "lease_lost"
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            JOB_DURATION.labels(outcome).observe(time.perf_counter() - started)
            JOB_OUTCOMES.labels(outcome).inc()

    async def _heartbeat(self, job: queue.ClaimedJob, owner: asyncio.Task[None]) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                await queue.heartbeat(self.db, job.id, self.id, self.lease)
            except LeaseLost:
                log.warning("lease lost during heartbeat", job=job.id)
                # Stop the job itself: its result would be refused anyway.
                owner.cancel()
                return
            except (SQLAlchemyError, OSError) as exc:
                # Keep trying until the lease itself runs out; the DB may come back.
                log.warning("heartbeat failed", job=job.id, error=str(exc)[:300])
