"""Ingest tables: notifications, alert occurrences and their timeline.

Revision ID: 0001_ingest
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from oncallm.store.models import UTCDateTime

revision = "0001_ingest"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("content_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("receiver", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("external_url", sa.Text(), nullable=False),
        sa.Column("alert_count", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    )
    op.create_table(
        "occurrences",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("alertname", sa.String(255), nullable=False),
        sa.Column("severity", sa.String(64), nullable=True),
        sa.Column("namespace", sa.String(255), nullable=True),
        sa.Column("cluster", sa.String(255), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("generator_url", sa.Text(), nullable=False),
        sa.Column("receiver", sa.String(255), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("external_url", sa.Text(), nullable=False),
        sa.Column(
            "first_notification_id", sa.Integer(), sa.ForeignKey("notifications.id"), nullable=False
        ),
        sa.Column(
            "last_notification_id", sa.Integer(), sa.ForeignKey("notifications.id"), nullable=False
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "uq_occurrence_fingerprint_starts_at",
        "occurrences",
        ["fingerprint", "starts_at"],
        unique=True,
    )
    op.create_index("ix_occurrences_status_id", "occurrences", ["status", "id"])
    for column in ("alertname", "severity", "namespace", "cluster"):
        op.create_index(f"ix_occurrences_{column}", "occurrences", [column])
    op.create_table(
        "timeline_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "occurrence_id",
            sa.Integer(),
            sa.ForeignKey("occurrences.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.create_index("ix_timeline_entries_occurrence_id", "timeline_entries", ["occurrence_id"])


def downgrade() -> None:
    op.drop_table("timeline_entries")
    op.drop_table("occurrences")
    op.drop_table("notifications")
