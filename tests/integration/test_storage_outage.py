"""PostgreSQL goes away: ingest answers 503 (Alertmanager retries), readiness says why,
nothing half-written remains, and service resumes by itself when the database is back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from oncallm.config import DatabaseSettings
from oncallm.store.db import Database
from oncallm.store.models import Occurrence
from tests.conftest import app_client, make_settings
from tests.support.payloads import am_alert, am_notification
from tests.support.services import PostgresServer, postgres_server

WEBHOOK = "/api/v1/alerts/alertmanager"


@pytest.fixture
def own_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, since the test stops it."""
    with postgres_server() as server:
        yield server


async def test_database_outage_is_a_503_and_recovers(own_pg: PostgresServer) -> None:
    url = own_pg.create_database("outage")
    settings = make_settings(url)
    async with app_client(settings) as client:
        ok = await client.post(WEBHOOK, json=am_notification(am_alert("0a00000000000001")))
        assert ok.status_code == 202
        own_pg.stop()
        refused = await client.post(WEBHOOK, json=am_notification(am_alert("0a00000000000002")))
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "5"
        assert "nothing was stored" in refused.json()["detail"]
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("unreachable")
        own_pg.start()
        for _ in range(50):  # the pool notices the restart on its own
            again = await client.post(WEBHOOK, json=am_notification(am_alert("0a00000000000002")))
            if again.status_code == 202:
                break
            await asyncio.sleep(0.2)
        assert again.status_code == 202
        assert (await client.get("/readyz")).status_code == 200
    db = Database(DatabaseSettings(url=url))
    try:
        async with db.read() as conn:
            count = (await conn.execute(select(func.count()).select_from(Occurrence))).scalar()
        assert count == 2
    finally:
        await db.dispose()
