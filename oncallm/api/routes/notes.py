"""Notes API: add a resolution note to an alert's timeline (``POST .../notes``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from oncallm.api.openapi import problem_responses
from oncallm.ingest.alertmanager import FINGERPRINT_PATTERN
from oncallm.state import AppState, app_state
from oncallm.store.notes import MAX_AUTHOR_CHARS, MAX_NOTE_CHARS, add_note

router = APIRouter(prefix="/api/v1", tags=["alerts"])


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        min_length=1, max_length=MAX_NOTE_CHARS, description="What was done or found."
    )
    author: str | None = Field(
        default=None, max_length=MAX_AUTHOR_CHARS, description="Who wrote it (free text)."
    )


class NoteOut(BaseModel):
    at: datetime
    kind: str = "note"
    message: str


@router.post(
    "/alerts/{fingerprint}/notes",
    status_code=201,
    response_model=NoteOut,
    responses=problem_responses(400, 404, 422),
    summary="Add a note to the alert's timeline (latest occurrence)",
)
async def post_note(
    state: Annotated[AppState, Depends(app_state)],
    fingerprint: Annotated[str, Path(pattern=FINGERPRINT_PATTERN)],
    note: NoteIn,
) -> NoteOut:
    added = await add_note(state.db, fingerprint, note.text, note.author)
    return NoteOut(at=added.at, message=added.message)
