"""Alert list order: an index on (status, starts_at, id) for firing-first, newest-first pages.

The alert list page walks occurrences one status at a time, newest-started first, and
resumes from a cursor with a row-value comparison on (starts_at, id); this index turns
each page into one range scan instead of a sort of every occurrence of that status.

Revision ID: 0004_alert_list
Revises: 0003_llm
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0004_alert_list"
down_revision = "0003_llm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_occurrences_status_starts_at_id", "occurrences", ["status", "starts_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_occurrences_status_starts_at_id", table_name="occurrences")
