"""GET /api/v1/triages/{id}/stream and the worker's explanation buffer, end to end.

The app runs under a real uvicorn server in the test's event loop (httpx's ASGI transport
buffers whole responses, so it could not show that events arrive while the triage runs).
Chunks are written through the same store functions the worker uses, or by the worker
itself driving a scripted pipeline; the client reads the event stream as a browser would.
Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import jsonschema
import pytest
import uvicorn
from sqlalchemy import select, update

from oncallm.api import create_app
from oncallm.api.routes import stream as stream_route
from oncallm.config import JobSettings, Settings
from oncallm.errors import LeaseLost
from oncallm.jobs.worker import ExplanationBuffer, Worker
from oncallm.store import jobs as queue
from oncallm.store import llm as stream_store
from oncallm.store.db import Database
from oncallm.store.models import TriageJob, TriageStreamChunk
from oncallm.triage.context import AlertInput
from oncallm.triage.pipeline import PipelineOutput, Progress
from oncallm.triage.targets import resolve_targets
from tests.conftest import make_settings
from tests.integration.test_llm_store import enqueue

LEASE = timedelta(seconds=30)
ROOT_CAUSE = {
    "category": "ConfigError",
    "summary": "ConfigMap shop/api-config lacks the key DB_URL",
    "resource": {"kind": "ConfigMap", "namespace": "shop", "name": "api-config"},
    "confidence": 0.9,
    "evidence": ["e1"],
}


def _result(explanation: str | None = None) -> dict[str, Any]:
    llm = None
    if explanation is not None:
        llm = {"provider": "openai", "model": "gpt-4.1", "explanation": explanation}
    return {
        "schema": "oncallm.triage/v1",
        "status": "completed",
        "root_cause": ROOT_CAUSE,
        "llm": llm,
    }


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]
    id: str | None


def _check_documented(name: str, data: dict[str, Any]) -> None:
    """Every event the route sends is one the OpenAPI document describes."""
    for branch in stream_route.EVENT_SCHEMA["oneOf"]:
        if branch["properties"]["event"]["const"] == name:
            jsonschema.validate(data, branch["properties"]["data"]["contentSchema"])
            return
    pytest.fail(f"event {name!r} is not documented")


class EventReader:
    """Reads a text/event-stream response one event at a time, as EventSource does."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 10) -> Event | None:
        """The next event, or None when the server ended the stream."""
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> Event | None:
        name, data, event_id = "message", "", None
        async for line in self._lines:
            if not line:
                if data:
                    _check_documented(name, json.loads(data))
                    return Event(name, json.loads(data), event_id)
                continue
            if line.startswith(":"):
                continue  # keepalive ping
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data += value
            elif field == "id":
                event_id = value
        return None

    async def rest(self) -> list[Event]:
        events = []
        while (event := await self.next()) is not None:
            events.append(event)
        return events


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app under uvicorn on a free port, and a client for it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings),
        lifespan="on",
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield http
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def http(database_url: str, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    # No embedded worker: each test moves its job through the queue itself.
    async with serving(make_settings(database_url, server={"embedded_worker": False})) as client:
        yield client


@contextlib.asynccontextmanager
async def listening(
    http: httpx.AsyncClient, job_id: int, **headers: str
) -> AsyncIterator[EventReader]:
    async with http.stream("GET", f"/api/v1/triages/{job_id}/stream", headers=headers) as response:
        yield EventReader(response)


async def _stream(http: httpx.AsyncClient, job_id: int, **headers: str) -> list[Event]:
    async with listening(http, job_id, **headers) as reader:
        return await reader.rest()


def _text(events: list[Event]) -> str:
    return "".join(e.data["delta"] for e in events if e.name == "explanation")


async def _claim(db: Database, worker: str) -> queue.ClaimedJob:
    job = await queue.claim(db, worker, LEASE)
    assert job is not None
    return job


async def test_chunks_written_while_listening_arrive_in_order_then_done(
    db: Database, http: httpx.AsyncClient
) -> None:
    job_id = await enqueue(db, "5000000000000001")
    async with listening(http, job_id) as reader:
        first = await reader.next()
        assert first == Event("status", {"status": "queued", "step": None, "attempt": 0}, None)
        job = await _claim(db, "w1")
        assert await reader.next() == Event(
            "status", {"status": "running", "step": "targets", "attempt": 1}, None
        )
        parts = ["The ConfigMap ", "shop/api-config ", "lacks DB_URL [e1]."]
        ids = []
        for seq, part in enumerate(parts):
            ids.append(await stream_store.append(db, job_id, 1, seq, part, owner="w1"))
            # Each chunk reaches the client before the next one is even written.
            event = await reader.next()
            assert event == Event("explanation", {"delta": part, "attempt": 1}, str(ids[-1]))
        await queue.complete(db, job, "w1", [], _result("".join(parts)))
        rest = await reader.rest()
    assert [e.name for e in rest] == ["status", "done"]
    assert rest[0].data == {"status": "completed", "step": "done", "attempt": 1}
    assert rest[1].data["status"] == "completed"
    assert rest[1].data["root_cause"] == ROOT_CAUSE
    assert rest[1].data["llm"]["model"] == "gpt-4.1"


async def test_a_retry_resets_the_explanation(db: Database, http: httpx.AsyncClient) -> None:
    job_id = await enqueue(db, "5000000000000002")
    first = await _claim(db, "w1")
    await stream_store.append(db, job_id, 1, 0, "A half-written first ", owner="w1")
    async with listening(http, job_id) as reader:
        assert (await reader.next()).name == "status"  # type: ignore[union-attr]
        assert (await reader.next()).data == {"delta": "A half-written first ", "attempt": 1}  # type: ignore[union-attr]
        assert await queue.fail(db, first, "w1", "RuntimeError: boom", retry_in=0) == "retried"
        second = await _claim(db, "w2")
        await stream_store.append(db, job_id, 2, 0, "The second attempt's text.", owner="w2")
        await queue.complete(db, second, "w2", [], _result("The second attempt's text."))
        events = await reader.rest()
    names = [e.name for e in events]
    assert "reset" in names
    reset = names.index("reset")
    assert events[reset].data == {"attempt": 2}
    # The reset comes before any text of the new attempt; the old text is not repeated.
    assert _text(events[:reset]) == ""
    assert _text(events[reset:]) == "The second attempt's text."
    assert names[-1] == "done"


async def test_a_finished_triage_replays_its_last_attempt(
    db: Database, http: httpx.AsyncClient
) -> None:
    job_id = await enqueue(db, "5000000000000003")
    first = await _claim(db, "w1")
    await stream_store.append(db, job_id, 1, 0, "discarded", owner="w1")
    await queue.fail(db, first, "w1", "RuntimeError: boom", retry_in=0)
    second = await _claim(db, "w2")
    for seq, part in enumerate(["Kept ", "in ", "order."]):
        await stream_store.append(db, job_id, 2, seq, part, owner="w2")
    await queue.complete(db, second, "w2", [], _result("Kept in order."))
    events = await _stream(http, job_id)
    assert [e.name for e in events] == [
        "status",
        "explanation",
        "explanation",
        "explanation",
        "done",
    ]
    assert events[0].data == {"status": "completed", "step": "done", "attempt": 2}
    assert _text(events) == "Kept in order."
    assert all(e.data["attempt"] == 2 for e in events if e.name == "explanation")
    assert events[-1].data["root_cause"] == ROOT_CAUSE


async def test_a_finished_triage_without_chunks_sends_its_explanation_whole(
    db: Database, http: httpx.AsyncClient
) -> None:
    job_id = await enqueue(db, "5000000000000004")
    job = await _claim(db, "w1")
    await queue.complete(db, job, "w1", [], _result("Answered from the cache."))
    events = await _stream(http, job_id)
    assert [e.name for e in events] == ["status", "explanation", "done"]
    assert events[1] == Event(
        "explanation", {"delta": "Answered from the cache.", "attempt": 1}, None
    )


async def test_a_triage_without_llm_ends_with_done_and_no_text(
    db: Database, http: httpx.AsyncClient
) -> None:
    job_id = await enqueue(db, "5000000000000005")
    job = await _claim(db, "w1")
    await queue.complete(db, job, "w1", [], _result(None))
    events = await _stream(http, job_id)
    assert [e.name for e in events] == ["status", "done"]
    assert events[1].data == {"status": "completed", "root_cause": ROOT_CAUSE, "llm": None}


async def test_a_failed_triage_ends_with_its_error(db: Database, http: httpx.AsyncClient) -> None:
    job_id = await enqueue(db, "5000000000000006")
    async with db.write() as conn:
        await conn.execute(update(TriageJob).values(max_attempts=1))
    job = await _claim(db, "w1")
    await stream_store.append(db, job_id, 1, 0, "Partial ", owner="w1")
    assert await queue.fail(db, job, "w1", "RuntimeError: boom", retry_in=0) == "failed"
    events = await _stream(http, job_id)
    assert [e.name for e in events] == ["status", "explanation", "done"]
    assert events[2].data == {
        "status": "failed",
        "root_cause": None,
        "llm": None,
        "error": "RuntimeError: boom",
    }


async def test_last_event_id_resumes_without_duplicates(
    db: Database, http: httpx.AsyncClient
) -> None:
    job_id = await enqueue(db, "5000000000000007")
    first = await _claim(db, "w1")
    old = await stream_store.append(db, job_id, 1, 0, "old attempt", owner="w1")
    await queue.fail(db, first, "w1", "RuntimeError: boom", retry_in=0)
    second = await _claim(db, "w2")
    ids = [
        await stream_store.append(db, job_id, 2, seq, part, owner="w2")
        for seq, part in enumerate(["one ", "two ", "three"])
    ]
    await queue.complete(db, second, "w2", [], _result("one two three"))

    resumed = await _stream(http, job_id, **{"Last-Event-ID": str(ids[0])})
    assert [e.id for e in resumed if e.name == "explanation"] == [str(i) for i in ids[1:]]
    assert _text(resumed) == "two three"
    assert "reset" not in [e.name for e in resumed]

    # A client that last saw the failed attempt's text is told to drop it first.
    stale = await _stream(http, job_id, **{"Last-Event-ID": str(old)})
    assert [e.name for e in stale] == ["status", "reset", *["explanation"] * 3, "done"]
    assert _text(stale) == "one two three"

    # Everything seen: nothing is sent again, and no whole-text fallback either.
    caught_up = await _stream(http, job_id, **{"Last-Event-ID": str(ids[-1])})
    assert [e.name for e in caught_up] == ["status", "done"]

    # An id that is not one of this triage's chunks is ignored: a full replay.
    for garbage in (b"not-a-number", "²".encode("latin-1"), b"9" * 20, b"%d" % (old + 10_000)):
        async with http.stream(
            "GET", f"/api/v1/triages/{job_id}/stream", headers={"Last-Event-ID": garbage}
        ) as response:
            replay = await EventReader(response).rest()
        assert _text(replay) == "one two three", garbage


async def test_unknown_triage_is_a_problem_not_a_stream(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/triages/424242/stream")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"] == "no triage with id 424242"
    invalid = await http.get("/api/v1/triages/0/stream")
    assert invalid.status_code == 422
    assert invalid.headers["content-type"].startswith("application/problem+json")


async def test_a_stream_ends_with_timeout_after_its_maximum_time(
    db: Database, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_route, "MAX_STREAM_SECONDS", 0.5)
    job_id = await enqueue(db, "5000000000000008")
    events = await _stream(http, job_id)
    assert [e.name for e in events] == ["status", "timeout"]
    assert "reconnect" in events[1].data["detail"]


async def test_a_client_that_goes_away_stops_the_polling(
    db: Database, http: httpx.AsyncClient
) -> None:
    job_id = await enqueue(db, "5000000000000009")
    async with listening(http, job_id) as reader:
        assert (await reader.next()).name == "status"  # type: ignore[union-attr]
        assert job_id in stream_store._listeners
    for _ in range(100):
        if job_id not in stream_store._listeners:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the stream kept running after its client disconnected")


class ScriptedPipeline:
    """Stands in for TriagePipeline: writes an explanation in tiny deltas, like a model."""

    def __init__(self, text: str, delta: int = 6, pause: float = 0.002) -> None:
        self.text, self.delta, self.pause = text, delta, pause
        self.deltas_sent = 0
        self.finished = False
        self.cancelled = False
        self.before_delta: Any = None

    async def run(
        self, alert: AlertInput, progress: Progress, *, explanation: Any
    ) -> PipelineOutput:
        await progress("reason")
        try:
            for start in range(0, len(self.text), self.delta):
                if self.before_delta is not None:
                    await self.before_delta(self.deltas_sent)
                await explanation(self.text[start : start + self.delta])
                self.deltas_sent += 1
                await asyncio.sleep(self.pause)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.finished = True
        return PipelineOutput(resolve_targets(alert.labels), _result(self.text))

    async def aclose(self) -> None:
        return None


async def _run_worker(db: Database, pipeline: ScriptedPipeline, until: Any) -> None:
    stop = asyncio.Event()
    worker = Worker(
        db,
        JobSettings(poll_interval_seconds=0.05, heartbeat_seconds=5),
        pipeline,  # type: ignore[arg-type]
        worker_id="w1",
    )
    running = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(400):
            if await until():
                break
            await asyncio.sleep(0.025)
        else:
            pytest.fail("the worker did not get there")
    finally:
        stop.set()
        await running


async def _chunks(db: Database, job_id: int) -> list[TriageStreamChunk]:
    async with db.read() as conn:
        query = select(TriageStreamChunk).where(TriageStreamChunk.job_id == job_id)
        return list((await conn.execute(query.order_by(TriageStreamChunk.id))).all())  # type: ignore[arg-type]


async def test_the_worker_streams_many_tiny_deltas_as_a_few_chunks(
    db: Database, http: httpx.AsyncClient
) -> None:
    text = "".join(
        f"Line {n}: the ConfigMap shop/api-config lacks DB_URL [e1].\n" for n in range(60)
    )
    pipeline = ScriptedPipeline(text)
    job_id = await enqueue(db, "500000000000000a")
    async with listening(http, job_id) as reader:
        assert (await reader.next()).name == "status"  # type: ignore[union-attr]

        async def finished() -> bool:
            return (await queue.queue_depth(db))["succeeded"] == 1

        await _run_worker(db, pipeline, finished)
        events = await reader.rest()
    chunks = await _chunks(db, job_id)
    deltas = pipeline.deltas_sent
    assert deltas > 500
    # At most every 250 ms or 1 KiB: a few rows for a second or so of streaming.
    assert 2 <= len(chunks) <= 16, (len(chunks), deltas)
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert all(len(c.text.encode()) <= 1024 + pipeline.delta for c in chunks)
    assert "".join(c.text for c in chunks) == text
    # The listener saw the same text, chunk by chunk, then the stored result.
    assert _text(events) == text
    assert [e.name for e in events][-1] == "done"
    assert sum(e.name == "explanation" for e in events) == len(chunks)


async def test_a_worker_that_loses_its_lease_stops_streaming(db: Database) -> None:
    pipeline = ScriptedPipeline("x" * 3000, delta=10, pause=0.005)
    job_id = await enqueue(db, "500000000000000b")

    async def steal(sent: int) -> None:
        if sent == 100:  # another worker takes the job over (this one looked dead)
            async with db.write() as conn:
                await conn.execute(update(TriageJob).values(lease_owner="thief"))

    pipeline.before_delta = steal

    async def stopped() -> bool:
        return pipeline.cancelled or pipeline.finished

    await _run_worker(db, pipeline, stopped)
    assert pipeline.cancelled  # the job was stopped, not run to the end
    assert pipeline.deltas_sent < 300
    written = "".join(c.text for c in await _chunks(db, job_id))
    assert len(written) <= 100 * 10  # nothing after the lease was gone
    async with db.read() as conn:
        job = (await conn.execute(select(TriageJob))).one()
    assert (job.status, job.lease_owner) == ("running", "thief")  # no result by the loser


async def test_the_buffer_refuses_to_write_for_a_lost_lease(db: Database) -> None:
    job_id = await enqueue(db, "500000000000000c")
    job = await _claim(db, "w1")
    lost: list[bool] = []
    sink = ExplanationBuffer(
        db, job.id, job.attempts, "w1", on_lease_lost=lambda: lost.append(True)
    )
    await sink("written while leased")
    await asyncio.sleep(0.05)
    async with db.write() as conn:
        await conn.execute(update(TriageJob).values(lease_owner="w2"))
    await asyncio.sleep(0.3)
    await sink("after the lease is gone")
    await asyncio.sleep(0.3)
    assert lost == [True]
    assert sink.lost
    await sink("ignored")
    with pytest.raises(LeaseLost):
        await sink.close()
    assert [c.text for c in await _chunks(db, job_id)] == ["written while leased"]
