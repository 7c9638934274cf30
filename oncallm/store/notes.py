"""Resolution notes: what the on-call engineer did or learned, on the alert's timeline.

A note belongs to the alert's latest occurrence and is stored as a timeline entry of kind
``note`` beside the received/triaged/resolved entries, so the page's timeline and the
incident summary read one history. Notes are validated before anything is written: an
empty or oversized note changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select

from oncallm.errors import BadRequest, NotFound
from oncallm.store.db import Database
from oncallm.store.models import Occurrence, TimelineEntry, utcnow

MAX_NOTE_CHARS = 4000
MAX_AUTHOR_CHARS = 100
NOTE = "note"


@dataclass(frozen=True)
class Note:
    at: datetime
    message: str


def note_message(text: str, author: str | None) -> str:
    """The stored message: ``author: text``; raises BadRequest for an unusable note."""
    text = text.strip()
    author = (author or "").strip()
    if not text:
        raise BadRequest("a note needs some text")
    if len(text) > MAX_NOTE_CHARS:
        raise BadRequest(f"a note is at most {MAX_NOTE_CHARS} characters, not {len(text)}")
    if len(author) > MAX_AUTHOR_CHARS:
        raise BadRequest(f"a name is at most {MAX_AUTHOR_CHARS} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in text + author):
        raise BadRequest("a note cannot contain control characters")
    return f"{author}: {text}" if author else text


async def add_note(db: Database, fingerprint: str, text: str, author: str | None) -> Note:
    """Add a note to the latest occurrence of ``fingerprint``."""
    message = note_message(text, author)
    at = utcnow()
    async with db.write() as conn:
        occurrence = (
            await conn.execute(
                select(Occurrence.id)
                .where(Occurrence.fingerprint == fingerprint)
                .order_by(Occurrence.starts_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if occurrence is None:
            raise NotFound(f"no alert with fingerprint {fingerprint}")
        await conn.execute(
            insert(TimelineEntry).values(
                occurrence_id=occurrence, at=at, kind=NOTE, message=message
            )
        )
    return Note(at, message)
