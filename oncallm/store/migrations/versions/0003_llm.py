"""LLM bookkeeping: token usage, the answer cache, and the explanation stream.

Revision ID: 0003_llm
Revises: 0002_triage_queue
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from oncallm.store.models import UTCDateTime

revision = "0003_llm"
down_revision = "0002_triage_queue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "llm_usage",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Double(), nullable=True),
        sa.Column("triage_id", sa.Integer(), nullable=True),
    )
    op.create_index("ix_llm_usage_at", "llm_usage", ["at"])
    op.create_table(
        "llm_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
    )
    op.create_index("ix_llm_cache_expires_at", "llm_cache", ["expires_at"])
    op.create_table(
        "triage_stream",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "job_id",
            sa.Integer(),
            sa.ForeignKey("triage_jobs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "uq_triage_stream_job_attempt_seq",
        "triage_stream",
        ["job_id", "attempt", "seq"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("triage_stream")
    op.drop_table("llm_cache")
    op.drop_table("llm_usage")
