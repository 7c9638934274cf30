"""Tables of OncallM: notifications, alert occurrences, timeline, triage jobs and results.

An *occurrence* is one firing period of an alert, keyed by (fingerprint, starts_at) —
Alertmanager gives a new ``startsAt`` when a resolved alert fires again. A *triage job* is
the durable queue entry for one occurrence; its result lives in ``triage_results`` with
one row per job at most, so a worker that lost its lease can never add a second one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Notification(Base):
    """A webhook body exactly as received, stored once per distinct content."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime]
    receiver: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    group_key: Mapped[str] = mapped_column(Text)
    external_url: Mapped[str] = mapped_column(Text)
    alert_count: Mapped[int]
    body: Mapped[str] = mapped_column(Text)


class Occurrence(Base):
    __tablename__ = "occurrences"
    __table_args__ = (
        Index("uq_occurrence_fingerprint_starts_at", "fingerprint", "starts_at", unique=True),
        Index("ix_occurrences_status_id", "status", "id"),
        # The alert list page: firing first, newest-started first (migration 0004).
        Index("ix_occurrences_status_starts_at_id", "status", "starts_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(128))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))
    alertname: Mapped[str] = mapped_column(String(255), index=True)
    severity: Mapped[str | None] = mapped_column(String(64), index=True)
    namespace: Mapped[str | None] = mapped_column(String(255), index=True)
    cluster: Mapped[str | None] = mapped_column(String(255), index=True)
    labels: Mapped[dict[str, Any]]
    annotations: Mapped[dict[str, Any]]
    generator_url: Mapped[str] = mapped_column(Text)
    receiver: Mapped[str] = mapped_column(String(255))
    group_key: Mapped[str] = mapped_column(Text)
    external_url: Mapped[str] = mapped_column(Text)
    first_notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"))
    last_notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TimelineEntry(Base):
    __tablename__ = "timeline_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)


class TriageJob(Base):
    __tablename__ = "triage_jobs"
    __table_args__ = (Index("ix_triage_jobs_claim", "status", "run_after"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[str] = mapped_column(String(16))  # queued | running | succeeded | failed
    step: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int]
    run_after: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class TriageResult(Base):
    __tablename__ = "triage_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(
        ForeignKey("triage_jobs.id", ondelete="CASCADE"), unique=True
    )
    occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), index=True
    )
    worker: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    targets: Mapped[list[Any]]
    result: Mapped[dict[str, Any]]


class LLMUsage(Base):
    """Tokens one reasoned triage spent; the daily token budget sums these since midnight."""

    __tablename__ = "llm_usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(255))
    prompt_tokens: Mapped[int]
    completion_tokens: Mapped[int]
    cost_usd: Mapped[float | None]
    # No foreign key: spending stays on the books when a triage is deleted.
    triage_id: Mapped[int | None]


class LLMCacheEntry(Base):
    """An earlier model answer, keyed by a sha256 of (provider, model, prompt version, prompt)."""

    __tablename__ = "llm_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    value: Mapped[dict[str, Any]]


class TriageStreamChunk(Base):
    """A piece of a triage's explanation as the model produced it, per attempt, in order."""

    __tablename__ = "triage_stream"
    __table_args__ = (
        Index("uq_triage_stream_job_attempt_seq", "job_id", "attempt", "seq", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("triage_jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int]
    seq: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
