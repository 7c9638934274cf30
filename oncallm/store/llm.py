"""LLM bookkeeping in the database: token usage, the answer cache, the explanation stream.

``DbUsageBook`` and ``DbAnswerCache`` implement the ``UsageBook`` and ``AnswerCache``
Protocols of ``oncallm.llm.ports``, so every worker process shares one daily budget and
one cache. The stream functions store a triage's explanation as the model produces it —
one row per flushed chunk, numbered per attempt — and let the SSE route tail it by id.
Writes go through ``Database.write`` like every other store module (on SQLite: one
writer, queued on the in-process lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from oncallm.errors import LeaseLost
from oncallm.llm.ports import UsageRecord
from oncallm.store.db import Database
from oncallm.store.models import (
    LLMCacheEntry,
    LLMUsage,
    TriageJob,
    TriageResult,
    TriageStreamChunk,
    UTCDateTime,
    utcnow,
)

# Expired cache rows deleted per put: enough to keep up with inserts, small enough that a
# put never turns into a long table scan holding SQLite's single write lock.
PURGE_BATCH = 100
# Chunks returned per read; a reader that gets a full batch reads again at once.
READ_BATCH = 500

_CACHE_KEY = re.compile(r"^[0-9a-f]{64}$")


class DbUsageBook:
    """The ``UsageBook`` on the ``llm_usage`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def spent_since(self, since: datetime) -> int:
        total = func.coalesce(func.sum(LLMUsage.prompt_tokens + LLMUsage.completion_tokens), 0)
        async with self.db.read() as conn:
            spent = (await conn.execute(select(total).where(LLMUsage.at >= since))).scalar_one()
        return int(spent)

    async def record(self, usage: UsageRecord) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                insert(LLMUsage).values(
                    at=utcnow(),
                    provider=usage.provider,
                    model=usage.model,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    cost_usd=usage.cost_usd,
                    triage_id=usage.triage_id,
                )
            )


class DbAnswerCache:
    """The ``AnswerCache`` on the ``llm_cache`` table; keys are sha256 hex digests."""

    def __init__(self, db: Database, purge_batch: int = PURGE_BATCH) -> None:
        self.db = db
        self.purge_batch = purge_batch

    @staticmethod
    def _check(key: str) -> None:
        if not _CACHE_KEY.match(key):
            raise ValueError("answer cache keys are sha256 hex digests (64 lowercase hex)")

    async def get(self, key: str) -> dict[str, Any] | None:
        self._check(key)
        query = select(LLMCacheEntry.value).where(
            LLMCacheEntry.key == key, LLMCacheEntry.expires_at > utcnow()
        )
        async with self.db.read() as conn:
            value = (await conn.execute(query)).scalar_one_or_none()
        return dict(value) if value is not None else None

    async def put(self, key: str, value: dict[str, Any], ttl_seconds: int) -> None:
        self._check(key)
        if ttl_seconds <= 0:
            return
        now = utcnow()
        row = {"key": key, "created_at": now, "expires_at": now + timedelta(seconds=ttl_seconds)}
        dialect_insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        upsert = dialect_insert(LLMCacheEntry).values(**row, value=value)
        upsert = upsert.on_conflict_do_update(
            index_elements=[LLMCacheEntry.key],
            set_={
                "created_at": upsert.excluded.created_at,
                "expires_at": upsert.excluded.expires_at,
                "value": upsert.excluded.value,
            },
        )
        expired = (
            select(LLMCacheEntry.key)
            .where(LLMCacheEntry.expires_at <= now)
            .limit(self.purge_batch)
            .scalar_subquery()
        )
        async with self.db.write() as conn:
            await conn.execute(upsert)
            # Reads ignore expired rows already; this only keeps the table from growing.
            await conn.execute(delete(LLMCacheEntry).where(LLMCacheEntry.key.in_(expired)))


# --- the explanation stream -------------------------------------------------------------


@dataclass(frozen=True)
class StreamChunk:
    id: int
    attempt: int
    seq: int
    text: str


@dataclass(frozen=True)
class TriageProgress:
    """Where a triage job is, for the stream; ``result`` only once it has one."""

    status: str  # queued | running | succeeded | failed (the job's own words)
    step: str | None
    attempts: int
    last_error: str | None
    result: dict[str, Any] | None

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed")


# Readers tailing a job in this process, woken when a chunk for it is committed, so a
# server with an embedded worker streams without waiting for the next poll.
_listeners: dict[int, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}


@contextlib.contextmanager
def listen(job_id: int) -> Iterator[asyncio.Event]:
    """An event set whenever a chunk of ``job_id`` is appended in this process."""
    entry = (asyncio.get_running_loop(), asyncio.Event())
    _listeners.setdefault(job_id, set()).add(entry)
    try:
        yield entry[1]
    finally:
        waiting = _listeners.get(job_id)
        if waiting is not None:
            waiting.discard(entry)
            if not waiting:
                _listeners.pop(job_id, None)


def _notify(job_id: int) -> None:
    try:
        current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    for loop, event in list(_listeners.get(job_id, ())):
        if loop is current:
            event.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(event.set)  # asyncio.Event is not thread-safe


async def append(
    db: Database,
    job_id: int,
    attempt: int,
    seq: int,
    text: str,
    *,
    owner: str | None = None,
) -> int:
    """Store one chunk; returns its id. With ``owner`` the write is fenced like the other
    job writes: it happens only while ``owner`` holds the lease on that very attempt, and
    raises LeaseLost otherwise, so a worker that lost its job cannot keep streaming."""
    now = utcnow()
    columns = ("job_id", "attempt", "seq", "text", "created_at")
    async with db.write() as conn:
        if owner is None:
            statement = insert(TriageStreamChunk).values(
                job_id=job_id, attempt=attempt, seq=seq, text=text, created_at=now
            )
        else:
            owned = select(
                TriageJob.id,
                literal(attempt),
                literal(seq),
                literal(text),
                literal(now, UTCDateTime()),
            ).where(
                TriageJob.id == job_id,
                TriageJob.status == "running",
                TriageJob.lease_owner == owner,
                TriageJob.attempts == attempt,
            )
            statement = insert(TriageStreamChunk).from_select(columns, owned)
        chunk_id = (
            await conn.execute(statement.returning(TriageStreamChunk.id))
        ).scalar_one_or_none()
    if chunk_id is None:
        raise LeaseLost(f"job {job_id} attempt {attempt} is no longer leased to {owner}")
    _notify(job_id)
    return int(chunk_id)


async def read(
    db: Database, job_id: int, after_id: int = 0, limit: int = READ_BATCH
) -> list[StreamChunk]:
    """Chunks of ``job_id`` with an id above ``after_id``, oldest first (all attempts)."""
    query = (
        select(
            TriageStreamChunk.id,
            TriageStreamChunk.attempt,
            TriageStreamChunk.seq,
            TriageStreamChunk.text,
        )
        .where(TriageStreamChunk.job_id == job_id, TriageStreamChunk.id > after_id)
        .order_by(TriageStreamChunk.id)
        .limit(limit)
    )
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [StreamChunk(r.id, r.attempt, r.seq, r.text) for r in rows]


async def chunk_attempt(db: Database, job_id: int, chunk_id: int) -> int | None:
    """The attempt a chunk of ``job_id`` belongs to (None if it is not one of its chunks)."""
    query = select(TriageStreamChunk.attempt).where(
        TriageStreamChunk.id == chunk_id, TriageStreamChunk.job_id == job_id
    )
    async with db.read() as conn:
        attempt = (await conn.execute(query)).scalar_one_or_none()
    return int(attempt) if attempt is not None else None


async def progress(db: Database, job_id: int) -> TriageProgress | None:
    """The job's status, step and attempt; with its stored result once it has finished."""
    query = select(
        TriageJob.status, TriageJob.step, TriageJob.attempts, TriageJob.last_error
    ).where(TriageJob.id == job_id)
    async with db.read() as conn:
        job = (await conn.execute(query)).one_or_none()
        if job is None:
            return None
        result = None
        if job.status in ("succeeded", "failed"):
            stored = select(TriageResult.result).where(TriageResult.job_id == job_id)
            result = (await conn.execute(stored)).scalar_one_or_none()
    return TriageProgress(job.status, job.step, job.attempts, job.last_error, result)
