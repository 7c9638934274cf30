"""The triage worker: claims jobs, keeps their leases alive, runs the pipeline.

Each worker has a unique id (host, pid, random suffix) written into the lease, so a job
held by a dead process is recognisable and is re-claimed by any other worker once its
lease expires. Up to ``jobs.concurrency`` jobs run at once; an idle worker sleeps until the
poll interval passes or ingest wakes it (same process) — whichever comes first. An
embedded worker defers each claim until no notification is being ingested, for at most
MAX_DEFERRAL_SECONDS, so an alert storm slows triage rather than the webhook. While a job
runs, its explanation (the LLM's text, as produced) is buffered and written to the
``triage_stream`` table in a few chunks rather than one row per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError

from oncallm.config import JobSettings
from oncallm.errors import LeaseLost
from oncallm.observability import JOB_DURATION, JOB_OUTCOMES
from oncallm.store import jobs as queue
from oncallm.store import llm as stream_store
from oncallm.store.db import Database
from oncallm.triage.pipeline import AlertInput, TriagePipeline

log = structlog.get_logger("oncallm.worker")

# Longest a claim waits for a gap in ingest; under an alert storm triage still advances.
MAX_DEFERRAL_SECONDS = 0.25
# The explanation is written at most this often, unless this much text is waiting: a
# reader sees text within a quarter second, and the database sees a few rows per second.
STREAM_FLUSH_SECONDS = 0.25
STREAM_FLUSH_BYTES = 1024


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class ExplanationBuffer:
    """The ``ExplanationSink`` of one job attempt: buffers deltas, writes them in chunks.

    A background task writes whatever is waiting at most every ``interval`` seconds, or at
    once when ``max_bytes`` are waiting, so the model's stream is never held up by the
    database. Writes are fenced on the lease: when one finds the lease gone, buffering
    stops and ``on_lease_lost`` is called (the worker cancels the job, as its heartbeat
    does). ``close`` writes the rest and must be called when the pipeline ends.
    """

    def __init__(
        self,
        db: Database,
        job_id: int,
        attempt: int,
        worker_id: str,
        *,
        on_lease_lost: Callable[[], object] = lambda: None,
        interval: float = STREAM_FLUSH_SECONDS,
        max_bytes: int = STREAM_FLUSH_BYTES,
    ) -> None:
        self.db = db
        self.job_id = job_id
        self.attempt = attempt
        self.worker_id = worker_id
        self.on_lease_lost = on_lease_lost
        self.interval = interval
        self.max_bytes = max_bytes
        self.lost = False
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._seq = 0
        self._last_write = float("-inf")
        self._closing = False
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, delta: str) -> None:
        if not delta or self.lost or self._closing:
            return  # after a lost lease the job is being cancelled; nothing more is stored
        was_empty = not self._pending
        self._pending.append(delta)
        self._pending_bytes += len(delta.encode())
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_loop())
        if was_empty or self._pending_bytes >= self.max_bytes:
            self._wake.set()

    async def close(self) -> None:
        """Write what is left; raises LeaseLost if the lease turned out to be gone."""
        self._closing = True
        if self._writer is None:
            return
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # The job is being stopped (lease lost, shutdown): nothing more is written.
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            return
        self._wake.set()
        await self._writer
        if self.lost:
            raise LeaseLost(f"job {self.job_id} is no longer leased to {self.worker_id}")

    async def _write_loop(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            due = self._last_write + self.interval - time.monotonic()
            if due > 0 and not self._closing and self._pending_bytes < self.max_bytes:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), due)
                self._wake.clear()
                continue
            try:
                await self._write()
            except LeaseLost:
                self.lost = True
                self._pending.clear()
                log.warning("lease lost while streaming the explanation", job=self.job_id)
                if not self._closing:
                    self.on_lease_lost()
                return
            except (SQLAlchemyError, OSError) as exc:
                # The explanation is a convenience; the triage result must not fail for it.
                log.warning("explanation chunk not stored", job=self.job_id, error=str(exc)[:300])
                if self._closing:
                    return
                self._last_write = time.monotonic()  # try again after an interval

    async def _write(self) -> None:
        taken = len(self._pending)
        text = "".join(self._pending[:taken])
        self._last_write = time.monotonic()
        await stream_store.append(
            self.db, self.job_id, self.attempt, self._seq, text, owner=self.worker_id
        )
        # Only what was written leaves the buffer; deltas that came meanwhile stay.
        del self._pending[:taken]
        self._pending_bytes -= len(text.encode())
        self._seq += 1


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
                generator_url=job.generator_url,
            )

            recorded = {"step": queue.FIRST_STEP}  # the claim already wrote the first step

            async def progress(step: str) -> None:
                if step != recorded["step"]:
                    await queue.heartbeat(self.db, job.id, self.id, self.lease, step=step)
                    recorded["step"] = step

            sink = ExplanationBuffer(
                self.db, job.id, job.attempts, self.id, on_lease_lost=owner.cancel
            )
            try:
                output = await self.pipeline.run(alert, progress, explanation=sink)
            finally:
                await sink.close()
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
