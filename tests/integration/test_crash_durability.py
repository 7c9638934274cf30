"""Nothing accepted is lost: SIGKILL the server in the middle of a stream of notifications
and every alert it answered 202 for is in the database afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import httpx
from sqlalchemy import select

from oncallm.config import DatabaseSettings
from oncallm.store.db import Database
from oncallm.store.models import Occurrence
from tests.support.payloads import am_alert, am_notification
from tests.support.services import oncallm_env, start_server


async def test_sigkill_mid_ingest_loses_no_accepted_alert(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(oncallm_env(database_url), tmp_path)
    accepted: set[str] = set()
    counter = iter(range(1_000_000))

    async def client(http: httpx.AsyncClient) -> None:
        while True:
            batch = [f"{next(counter):016x}" for _ in range(10)]
            note = am_notification(*(am_alert(fp, namespace="shop", pod=fp) for fp in batch))
            try:
                response = await http.post("/api/v1/alerts/alertmanager", json=note)
            except httpx.HTTPError:
                return  # the server is gone
            if response.status_code == 202:
                accepted.update(batch)

    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        clients = [asyncio.create_task(client(http)) for _ in range(8)]
        while len(accepted) < 300:
            await asyncio.sleep(0.02)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        _done, pending = await asyncio.wait(clients, timeout=15)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    db = Database(DatabaseSettings(url=database_url))
    try:
        async with db.read() as conn:
            stored = set((await conn.execute(select(Occurrence.fingerprint))).scalars().all())
    finally:
        await db.dispose()
    assert len(accepted) >= 300
    missing = accepted - stored
    assert not missing, f"{len(missing)} accepted alerts lost, e.g. {sorted(missing)[:3]}"
