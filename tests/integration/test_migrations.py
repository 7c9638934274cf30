"""Migrations: empty → head, down one step, head again, on both backends and via the CLI."""

from __future__ import annotations

from sqlalchemy import inspect

from oncallm.config import DatabaseSettings
from oncallm.store import migrate
from oncallm.store.db import Database
from tests.support.services import free_port, oncallm_env, run_oncallm

CORE = {"notifications", "occurrences", "timeline_entries"}
QUEUE = {"triage_jobs", "triage_results"}
LLM = {"llm_usage", "llm_cache", "triage_stream"}


async def _tables(db: Database) -> set[str]:
    async with db.read() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
    return set(names) - {"alembic_version"}


async def _indexes(db: Database, table: str) -> set[str]:
    async with db.read() as conn:
        found = await conn.run_sync(lambda c: inspect(c).get_indexes(table))
    return {str(index["name"]) for index in found}


async def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    db = Database(DatabaseSettings(url=database_url))
    try:
        assert await migrate.current_revision(db) is None
        await migrate.upgrade(db)
        assert await migrate.current_revision(db) == migrate.head_revision()
        assert await _tables(db) == CORE | QUEUE | LLM
        assert "ix_occurrences_status_starts_at_id" in await _indexes(db, "occurrences")
        await migrate.downgrade(db, "-1")
        assert await migrate.current_revision(db) == "0003_llm"
        assert "ix_occurrences_status_starts_at_id" not in await _indexes(db, "occurrences")
        await migrate.downgrade(db, "-1")
        assert await migrate.current_revision(db) == "0002_triage_queue"
        assert await _tables(db) == CORE | QUEUE
        await migrate.downgrade(db, "-1")
        assert await migrate.current_revision(db) == "0001_ingest"
        assert await _tables(db) == CORE
        await migrate.upgrade(db)
        assert await migrate.current_revision(db) == migrate.head_revision()
        assert await _tables(db) == CORE | QUEUE | LLM
    finally:
        await db.dispose()


def test_cli_db_upgrade_and_current(database_url: str) -> None:
    env = oncallm_env(database_url)
    up = run_oncallm(["db", "upgrade"], env)
    assert up.returncode == 0, up.stderr
    assert f"database at revision {migrate.head_revision()}" in up.stdout
    current = run_oncallm(["db", "current"], env)
    assert f"current: {migrate.head_revision()}" in current.stdout


def test_cli_unreachable_database_is_one_line_without_the_password() -> None:
    env = oncallm_env(f"postgresql+asyncpg://oncallm:hunter2@127.0.0.1:{free_port()}/oncallm")
    result = run_oncallm(["db", "upgrade"], env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "error: cannot reach the database at postgresql+asyncpg://oncallm:***@"
    )
    assert "hunter2" not in result.stderr
