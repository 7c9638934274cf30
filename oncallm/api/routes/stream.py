"""Server-sent events of one triage: its status, the explanation as produced, the result.

The worker writes the explanation to ``triage_stream`` in chunks (``jobs.worker``); this
route tails that table by id, polling every POLL_SECONDS and waking early when a chunk is
appended in this same process (server with the embedded worker). Event ids are chunk ids,
so a browser that reconnects with ``Last-Event-ID`` continues where it stopped instead of
receiving the text twice. A stream ends with ``done`` (or ``timeout`` after
MAX_STREAM_SECONDS); clients should close their EventSource on ``done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from oncallm.api.openapi import problem_responses
from oncallm.api.routes.alerts import MAX_ID
from oncallm.errors import NotFound
from oncallm.state import AppState, app_state
from oncallm.store import llm as stream_store
from oncallm.store.db import Database

router = APIRouter(prefix="/api/v1", tags=["alerts"])

POLL_SECONDS = 0.25
PING_SECONDS = 15
# A stream is not held open forever (proxies, leaked tabs); the client reconnects with
# Last-Event-ID and continues.
MAX_STREAM_SECONDS = 600.0

_CHUNK_ID = re.compile(r"[0-9]{1,10}")  # ASCII only: str.isdigit() also accepts "²"

# The job's own words for its state, and what the stream calls them (as in the result).
_STATUS = {"queued": "queued", "running": "running", "succeeded": "completed", "failed": "failed"}

EVENTS = """Server-sent events (`text/event-stream`); each `data` is one JSON object.

- `status` `{"status": "queued"|"running"|"completed"|"failed", "step": str|null,
  "attempt": int}` — first on connect, then whenever one of them changes.
- `explanation` `{"delta": str, "attempt": int}` — the next piece of the LLM's explanation,
  in order. Its event `id` is the stored chunk's id: reconnect with `Last-Event-ID` to
  continue without duplicates.
- `reset` `{"attempt": int}` — a new attempt started; discard the explanation shown so far.
- `done` `{"status": "completed"|"failed", "root_cause": object|null, "llm": object|null}`
  (plus `error` when failed) — the stored result; the stream ends. Close the EventSource.
- `timeout` `{"detail": str}` — the stream was open for its maximum time and ends;
  reconnect to continue.

A triage that has already finished replays the explanation of its last attempt, then
`done`. Comment lines (pings) keep idle connections open."""


def _event_schema(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """One event as schema checkers read it: ``data`` is JSON text (OpenAPI 3.1 reads a
    ``text/event-stream`` schema as the schema of each event)."""
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "id": {"type": "string"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"type": "object", "additionalProperties": False, **data},
            },
        },
    }


_ATTEMPT = {"type": "integer", "minimum": 0}
_NULLABLE_OBJECT = {"anyOf": [{"type": "object"}, {"type": "null"}]}
EVENT_SCHEMA: dict[str, Any] = {
    "oneOf": [
        _event_schema(
            "status",
            {
                "required": ["status", "step", "attempt"],
                "properties": {
                    "status": {"enum": sorted(set(_STATUS.values()))},
                    "step": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    "attempt": _ATTEMPT,
                },
            },
        ),
        _event_schema(
            "explanation",
            {
                "required": ["delta", "attempt"],
                "properties": {"delta": {"type": "string"}, "attempt": _ATTEMPT},
            },
        ),
        _event_schema("reset", {"required": ["attempt"], "properties": {"attempt": _ATTEMPT}}),
        _event_schema(
            "done",
            {
                "required": ["status", "root_cause", "llm"],
                "properties": {
                    "status": {"enum": ["completed", "failed"]},
                    "root_cause": _NULLABLE_OBJECT,
                    "llm": _NULLABLE_OBJECT,
                    "error": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
            },
        ),
        _event_schema(
            "timeout", {"required": ["detail"], "properties": {"detail": {"type": "string"}}}
        ),
    ]
}


def _event(name: str, data: dict[str, Any], event_id: int | None = None) -> ServerSentEvent:
    return ServerSentEvent(
        data=json.dumps(data, separators=(",", ":")),
        event=name,
        id=str(event_id) if event_id is not None else None,
    )


def _done(now: stream_store.TriageProgress) -> ServerSentEvent:
    result = now.result or {}
    data: dict[str, Any] = {
        "status": _STATUS[now.status],
        "root_cause": result.get("root_cause"),
        "llm": result.get("llm"),
    }
    if now.status == "failed":
        data["error"] = now.last_error
    return _event("done", data)


async def _events(
    request: Request, db: Database, job_id: int, after: int, shown: int | None
) -> AsyncIterator[ServerSentEvent]:
    """``after``: the last chunk id the client has; ``shown``: the attempt whose text the
    client holds (None: no text)."""
    deadline = time.monotonic() + MAX_STREAM_SECONDS
    last_status: tuple[str, str | None, int] | None = None
    attempt = 0  # the newest attempt seen; older attempts' text is discarded
    with stream_store.listen(job_id) as appended:
        while True:
            appended.clear()
            # The job is read before its chunks: once it reads as finished, every chunk
            # its worker flushed (before finishing) is visible to the read after.
            now = await stream_store.progress(db, job_id)
            if now is None:
                return  # deleted meanwhile
            status = (_STATUS[now.status], now.step, now.attempts)
            if status != last_status:
                last_status = status
                yield _event(
                    "status", {"status": status[0], "step": now.step, "attempt": now.attempts}
                )
            attempt = max(attempt, now.attempts)
            if shown is not None and attempt > shown:
                yield _event("reset", {"attempt": attempt})
                shown = None
            while True:
                chunks = await stream_store.read(db, job_id, after)
                for chunk in chunks:
                    after = chunk.id
                    if chunk.attempt < attempt:
                        continue
                    if shown is not None and chunk.attempt != shown:
                        yield _event("reset", {"attempt": chunk.attempt})
                    attempt = shown = chunk.attempt
                    yield _event(
                        "explanation", {"delta": chunk.text, "attempt": chunk.attempt}, chunk.id
                    )
                if len(chunks) < stream_store.READ_BATCH:
                    break
            if now.finished:
                explanation = ((now.result or {}).get("llm") or {}).get("explanation")
                if shown is None and isinstance(explanation, str) and explanation:
                    # Nothing was streamed (e.g. a cached answer): the text arrives whole.
                    yield _event("explanation", {"delta": explanation, "attempt": now.attempts})
                yield _done(now)
                return
            if time.monotonic() >= deadline:
                detail = f"stream open for {MAX_STREAM_SECONDS:.0f} s; reconnect to continue"
                yield _event("timeout", {"detail": detail})
                return
            if await request.is_disconnected():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(appended.wait(), POLL_SECONDS)


def _chunk_id(last_event_id: str | None) -> int | None:
    """The id a reconnecting client last saw; anything else is ignored, not an error."""
    if last_event_id is None or not _CHUNK_ID.fullmatch(last_event_id.strip()):
        return None
    value = int(last_event_id)
    return value if 1 <= value <= MAX_ID else None


@router.get(
    "/triages/{triage_id}/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": EVENTS,
            "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
        },
        **problem_responses(404, 422),
    },
    summary="Stream one triage: status, the explanation as it is written, the result",
)
async def stream_triage(
    request: Request,
    state: Annotated[AppState, Depends(app_state)],
    triage_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="Sent by a reconnecting EventSource: the last `explanation` id seen.",
        ),
    ] = None,
) -> EventSourceResponse:
    if await stream_store.progress(state.db, triage_id) is None:
        raise NotFound(f"no triage with id {triage_id}")
    after, shown = 0, None
    resume = _chunk_id(last_event_id)
    if resume is not None:
        shown = await stream_store.chunk_attempt(state.db, triage_id, resume)
        if shown is not None:
            after = resume
    return EventSourceResponse(
        _events(request, state.db, triage_id, after, shown), ping=PING_SECONDS
    )
