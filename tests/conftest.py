"""Shared fixtures: both database backends, a migrated database, an app client.

Tests that take ``database_url`` (directly or through ``db``/``client``) run twice: on
SQLite and on a real PostgreSQL started once per session by ``tests.support.services``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from oncallm.api import create_app
from oncallm.config import DatabaseSettings, LogSettings, Settings
from oncallm.observability import configure_logging
from oncallm.store import migrate
from oncallm.store.db import Database
from tests.fakes.anthropic_api import AnthropicFake
from tests.fakes.openai_api import OpenAIFake
from tests.support.services import PostgresServer, postgres_server

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="session", autouse=True)
def _plain_logs() -> None:
    """Logs as JSON lines: structlog's default dev renderer formats every logged
    exception with rich, which costs seconds per error in the malformed-input corpus."""
    configure_logging(LogSettings(format="json", level="INFO"))


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'oncallm.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg")
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)


def make_settings(database_url: str, **sections: dict[str, Any]) -> Settings:
    data: dict[str, Any] = {"database": {"url": database_url}}
    data["jobs"] = {"poll_interval_seconds": 0.1, "backoff_base_seconds": 0.05}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return Settings.model_validate(data)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(DatabaseSettings(url=database_url))
    await migrate.upgrade(database)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings) as http:
        yield http


class app_client:
    """An httpx client talking to the ASGI app in-process, with its lifespan running."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self._lifespan: Any = None
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> httpx.AsyncClient:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://testserver"
        )
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        assert self._client is not None
        await self._client.aclose()
        await self._lifespan.__aexit__(None, None, None)


@pytest.fixture
def oai() -> Iterator[OpenAIFake]:
    """A scripted OpenAI-compatible server (tests/fakes/openai_api.py)."""
    with OpenAIFake() as fake:
        yield fake


@pytest.fixture
def ant() -> Iterator[AnthropicFake]:
    """A scripted Anthropic Messages server (tests/fakes/anthropic_api.py)."""
    with AnthropicFake() as fake:
        yield fake
