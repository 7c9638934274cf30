"""Database engines and transactions for SQLite (default) and PostgreSQL.

SQLite allows one writer at a time. Write transactions therefore start with
``BEGIN IMMEDIATE`` (taking the write lock up front, so two transactions can never
deadlock upgrading a read lock) and, within one process, queue on an asyncio lock instead
of spinning in SQLite's busy handler, which would wreck tail latency. Across processes
``busy_timeout`` makes writers wait their turn. PostgreSQL needs none of this: its row
locks and ``ON CONFLICT`` do the work, so the same repository code runs on both.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from oncallm.config import DatabaseSettings
from oncallm.errors import ConfigError, StorageUnavailable


class Database:
    """Owns the engines; hands out read and write transactions as async context managers."""

    def __init__(self, settings: DatabaseSettings) -> None:
        self.settings = settings
        self.url = settings.url
        try:
            url = make_url(settings.url)
        except Exception as exc:
            raise ConfigError(f"database.url is not a valid database URL: {exc}") from exc
        self.dialect = url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"database.url uses {self.dialect!r}; OncallM supports sqlite and postgresql"
            )
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = self._sqlite_engine(settings, begin="BEGIN IMMEDIATE")
            self.read_engine = self._sqlite_engine(settings, begin="BEGIN")
        else:
            self.write_engine = create_async_engine(
                settings.url,
                pool_size=settings.pool_size,
                max_overflow=settings.pool_size,
                pool_pre_ping=True,
                pool_timeout=10,
                connect_args={"timeout": 10, "command_timeout": 30},
            )
            self.read_engine = self.write_engine

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @staticmethod
    def _sqlite_engine(settings: DatabaseSettings, *, begin: str) -> AsyncEngine:
        engine = create_async_engine(
            settings.url, pool_size=settings.pool_size, max_overflow=0, pool_timeout=30
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Hand transaction control to SQLAlchemy's "begin" event below.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={settings.sqlite_synchronous}")
            cursor.execute(f"PRAGMA busy_timeout={int(settings.busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

        return engine

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: committed on success, rolled back on any exception."""
        if self._write_lock is None:
            async with self.write_engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.write_engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.read_engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        try:
            async with self.read() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            where = make_url(self.url).render_as_string(hide_password=True)
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
            raise StorageUnavailable(
                f"cannot reach the database at {where}: {type(exc).__name__}: {reason}"
            ) from exc

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
