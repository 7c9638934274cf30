"""LLM bookkeeping in the database: the daily token count, the answer cache, the stream table.

Runs on SQLite and PostgreSQL (the ``db`` fixture), since every worker process relies on
these tables for one shared budget and one shared cache.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from oncallm.errors import LeaseLost
from oncallm.ingest.alertmanager import AlertmanagerWebhook, IngestLimits, normalise
from oncallm.llm.ports import UsageRecord, utc_midnight
from oncallm.store import jobs as queue
from oncallm.store import llm as stream_store
from oncallm.store.db import Database
from oncallm.store.ingest import record_notification
from oncallm.store.llm import DbAnswerCache, DbUsageBook
from oncallm.store.models import LLMCacheEntry, LLMUsage, Occurrence, TriageJob, utcnow
from tests.support.payloads import am_alert, am_notification, body

LIMITS = IngestLimits(max_alerts=1000, max_labels=128, max_value_bytes=65536)
LEASE = timedelta(seconds=30)


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def enqueue(db: Database, fingerprint: str) -> int:
    """One alert in, its triage job queued; returns the job (= triage) id."""
    note = am_notification(am_alert(fingerprint, namespace="shop", pod="api-1"))
    await record_notification(
        db, normalise(AlertmanagerWebhook.model_validate(note), LIMITS), body(note), 3
    )
    async with db.read() as conn:
        query = (
            select(TriageJob.id)
            .join(Occurrence, Occurrence.id == TriageJob.occurrence_id)
            .where(Occurrence.fingerprint == fingerprint)
        )
        return int((await conn.execute(query)).scalar_one())


async def test_usage_book_sums_tokens_recorded_since_a_time(db: Database) -> None:
    book = DbUsageBook(db)
    assert await book.spent_since(utc_midnight()) == 0
    await book.record(UsageRecord("openai", "gpt-4.1", 1200, 300, 0.0048, triage_id=7))
    await book.record(UsageRecord("openai-compatible", "llama3.1:8b", 900, 100, None))
    # Yesterday's spending does not count against today's budget.
    async with db.write() as conn:
        await conn.execute(
            update(LLMUsage)
            .where(LLMUsage.model == "llama3.1:8b")
            .values(at=utc_midnight() - timedelta(hours=1))
        )
    assert await book.spent_since(utc_midnight()) == 1500
    assert await book.spent_since(utc_midnight() - timedelta(days=1)) == 2500
    assert await book.spent_since(utcnow() + timedelta(seconds=1)) == 0
    async with db.read() as conn:
        row = (await conn.execute(select(LLMUsage).where(LLMUsage.triage_id == 7))).one()
    assert (row.provider, row.model, row.cost_usd) == ("openai", "gpt-4.1", pytest.approx(0.0048))


async def test_cache_returns_a_stored_answer_until_it_expires(db: Database) -> None:
    cache = DbAnswerCache(db)
    key = _key("openai|gpt-4.1|v1|context")
    assert await cache.get(key) is None
    answer = {"explanation": "The ConfigMap lacks DB_URL [e1].", "tokens": {"prompt": 10}}
    await cache.put(key, answer, ttl_seconds=3600)
    assert await cache.get(key) == answer
    # A second answer for the same key replaces the first (and its expiry).
    await cache.put(key, {"explanation": "newer"}, ttl_seconds=3600)
    assert await cache.get(key) == {"explanation": "newer"}
    async with db.write() as conn:
        await conn.execute(update(LLMCacheEntry).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert await cache.get(key) is None
    # TTL 0 means "do not cache".
    other = _key("no-ttl")
    await cache.put(other, {"explanation": "x"}, ttl_seconds=0)
    assert await cache.get(other) is None


async def test_expired_entries_are_purged_in_bounded_batches_on_put(db: Database) -> None:
    cache = DbAnswerCache(db, purge_batch=2)
    for n in range(3):
        await cache.put(_key(f"old-{n}"), {"n": n}, ttl_seconds=60)
    async with db.write() as conn:
        await conn.execute(update(LLMCacheEntry).values(expires_at=utcnow() - timedelta(minutes=1)))

    async def count() -> int:
        async with db.read() as conn:
            rows = await conn.execute(select(func.count()).select_from(LLMCacheEntry))
            return int(rows.scalar_one())

    await cache.put(_key("fresh-1"), {"fresh": 1}, ttl_seconds=60)
    assert await count() == 2  # two of three expired rows gone, the fresh one added
    await cache.put(_key("fresh-2"), {"fresh": 2}, ttl_seconds=60)
    assert await count() == 2
    assert await cache.get(_key("fresh-1")) == {"fresh": 1}


async def test_cache_keys_must_be_sha256_hex(db: Database) -> None:
    with pytest.raises(ValueError, match="sha256"):
        await DbAnswerCache(db).put("not-a-hash", {}, ttl_seconds=60)


async def test_stream_chunks_are_read_in_order_after_an_id(db: Database) -> None:
    job_id = await enqueue(db, "f100000000000001")
    ids = [await stream_store.append(db, job_id, 1, seq, f"part {seq}. ") for seq in range(4)]
    assert ids == sorted(ids)
    everything = await stream_store.read(db, job_id)
    assert [c.text for c in everything] == [f"part {n}. " for n in range(4)]
    assert [c.text for c in await stream_store.read(db, job_id, ids[1])] == ["part 2. ", "part 3. "]
    assert await stream_store.chunk_attempt(db, job_id, ids[0]) == 1
    assert await stream_store.chunk_attempt(db, job_id + 1, ids[0]) is None


async def test_a_worker_that_lost_its_lease_cannot_append(db: Database) -> None:
    job_id = await enqueue(db, "f100000000000002")
    claimed = await queue.claim(db, "w1", LEASE)
    assert claimed is not None
    assert claimed.id == job_id
    await stream_store.append(db, job_id, 1, 0, "mine", owner="w1")
    with pytest.raises(LeaseLost):
        await stream_store.append(db, job_id, 1, 1, "not mine", owner="w2")
    with pytest.raises(LeaseLost):  # right worker, but an attempt that is over
        await stream_store.append(db, job_id, 2, 0, "stale", owner="w1")
    assert [c.text for c in await stream_store.read(db, job_id)] == ["mine"]


async def test_an_append_wakes_listeners_in_this_process(db: Database) -> None:
    job_id = await enqueue(db, "f100000000000003")
    with stream_store.listen(job_id) as appended:
        await stream_store.append(db, job_id, 1, 0, "hello")
        await asyncio.wait_for(appended.wait(), 1)
    assert job_id not in stream_store._listeners
