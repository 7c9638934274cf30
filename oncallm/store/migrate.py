"""Schema migrations: upgrade, downgrade and "is the database at head?" for readiness.

Alembic is driven programmatically (no alembic.ini to ship); migrations live in
``oncallm/store/migrations/versions`` and run inside one transaction on each backend.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from oncallm.store.db import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache  # the scripts ship with the package; readiness probes ask every few seconds
def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


async def upgrade(db: Database, revision: str = "head") -> None:
    async with db.write() as conn:
        await conn.run_sync(lambda c: command.upgrade(_alembic_config(c), revision))


async def downgrade(db: Database, revision: str) -> None:
    async with db.write() as conn:
        await conn.run_sync(lambda c: command.downgrade(_alembic_config(c), revision))


async def current_revision(db: Database) -> str | None:
    async with db.read() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
