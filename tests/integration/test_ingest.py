"""Alertmanager ingest: stored once, idempotent under resends and concurrency, status moves."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlalchemy import func, select

from oncallm.config import DatabaseSettings, Settings
from oncallm.store.db import Database
from oncallm.store.models import Notification, Occurrence, TimelineEntry, TriageJob
from tests.conftest import app_client, make_settings
from tests.support.payloads import am_alert, am_notification, body, resolved

WEBHOOK = "/api/v1/alerts/alertmanager"


async def _count(db: Database, model: type) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


async def test_notification_is_stored_with_every_field(settings: Settings) -> None:
    note = am_notification(
        am_alert("aaaa000000000001", namespace="shop", pod="api-1", cluster="prod"),
        am_alert("aaaa000000000002", namespace="shop", pod="api-2", cluster="prod"),
    )
    async with app_client(settings) as client:
        response = await client.post(WEBHOOK, json=note)
        assert response.status_code == 202
        assert response.json() == {
            "alerts": [
                {
                    "fingerprint": "aaaa000000000001",
                    "alertname": "KubePodCrashLooping",
                    "url": "http://localhost:8080/alerts/aaaa000000000001",
                },
                {
                    "fingerprint": "aaaa000000000002",
                    "alertname": "KubePodCrashLooping",
                    "url": "http://localhost:8080/alerts/aaaa000000000002",
                },
            ],
            "duplicate": False,
        }
        detail = (await client.get("/api/v1/alerts/aaaa000000000001")).json()
    assert detail["status"] == "firing"
    assert detail["ends_at"] is None
    assert detail["labels"]["pod"] == "api-1"
    assert detail["annotations"] == {"summary": "KubePodCrashLooping on api-1"}
    assert detail["starts_at"] == "2026-11-26T03:00:00Z"
    assert detail["generator_url"].startswith("http://prometheus:9090/graph")
    assert detail["receiver"] == "oncallm"
    assert detail["group_key"] == '{}:{alertname="KubePodCrashLooping"}'
    assert detail["external_url"] == "http://alertmanager:9093"
    assert detail["namespace"] == "shop"
    assert detail["cluster"] == "prod"
    first = detail["timeline"][0]
    assert first["kind"] == "received"
    assert first["message"] == "KubePodCrashLooping firing (via oncallm); triage queued"


async def test_resent_notification_changes_nothing(settings: Settings, db: Database) -> None:
    note = am_notification(am_alert("bbbb000000000001", namespace="shop", pod="api-1"))
    async with app_client(settings) as client:
        first = await client.post(
            WEBHOOK, content=body(note), headers={"content-type": "application/json"}
        )
        again = await client.post(
            "/webhook", content=body(note), headers={"content-type": "application/json"}
        )
    assert first.status_code == again.status_code == 202
    assert again.json()["duplicate"] is True
    assert await _count(db, Notification) == 1
    assert await _count(db, Occurrence) == 1
    assert await _count(db, TriageJob) == 1


async def test_ha_pair_resend_with_other_external_url_is_absorbed(
    settings: Settings, db: Database
) -> None:
    note = am_notification(am_alert("cccc000000000001", namespace="shop", pod="api-1"))
    twin = dict(note, externalURL="http://alertmanager-1:9093")
    async with app_client(settings) as client:
        assert (await client.post(WEBHOOK, json=note)).status_code == 202
        response = await client.post(WEBHOOK, json=twin)
    assert response.status_code == 202
    assert response.json()["duplicate"] is False  # a different body, stored as received
    assert await _count(db, Notification) == 2
    assert await _count(db, Occurrence) == 1
    assert await _count(db, TriageJob) == 1


async def test_twenty_concurrent_posts_make_one_occurrence_and_one_job(
    database_url: str, db: Database
) -> None:
    settings = make_settings(database_url, server={"embedded_worker": False})
    note = am_notification(
        am_alert("dddd000000000001", namespace="shop", pod="api-1"),
        am_alert("dddd000000000002", namespace="shop", pod="api-2"),
    )
    # Half identical resends, half HA-twin bodies: both paths must converge.
    bodies = [
        body(note if i % 2 else dict(note, externalURL=f"http://am-{i}:9093")) for i in range(20)
    ]
    async with app_client(settings) as client:
        responses = await asyncio.gather(
            *(
                client.post(WEBHOOK, content=b, headers={"content-type": "application/json"})
                for b in bodies
            )
        )
    assert [r.status_code for r in responses] == [202] * 20
    assert await _count(db, Occurrence) == 2
    assert await _count(db, TriageJob) == 2
    async with db.read() as conn:
        received = (
            await conn.execute(
                select(func.count())
                .select_from(TimelineEntry)
                .where(TimelineEntry.kind == "received")
            )
        ).scalar_one()
    assert received == 2


async def test_concurrent_posts_over_real_http(database_url: str, db: Database) -> None:
    """The same race through a real server process (uvicorn, its own connection pool)."""
    import tempfile
    from pathlib import Path

    from tests.support.services import oncallm_env, start_server

    env = oncallm_env(database_url, server__embedded_worker="false")
    server = start_server(env, Path(tempfile.mkdtemp(prefix="oncallm-srv-")))
    try:
        note = am_notification(am_alert("eeee000000000001", namespace="shop", pod="api-1"))
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            responses = await asyncio.gather(*(http.post(WEBHOOK, json=note) for _ in range(20)))
        assert {r.status_code for r in responses} == {202}
        assert sum(1 for r in responses if not r.json()["duplicate"]) == 1
    finally:
        server.stop()
    assert await _count(db, Occurrence) == 1
    assert await _count(db, TriageJob) == 1


async def test_resolved_notification_moves_status(settings: Settings) -> None:
    note = am_notification(am_alert("ffff000000000001", namespace="shop", pod="api-1"))
    async with app_client(settings) as client:
        await client.post(WEBHOOK, json=note)
        response = await client.post(WEBHOOK, json=resolved(note, "2026-11-26T03:30:00Z"))
        assert response.status_code == 202
        detail = (await client.get("/api/v1/alerts/ffff000000000001")).json()
        # A late resend of the old firing notification must not reopen it.
        await client.post(WEBHOOK, json=dict(note, receiver="other"))
        after = (await client.get("/api/v1/alerts/ffff000000000001")).json()
    assert detail["status"] == "resolved"
    assert detail["ends_at"] == "2026-11-26T03:30:00Z"
    assert "resolved" in [e["kind"] for e in detail["timeline"]]
    assert after["status"] == "resolved"
    assert [e["kind"] for e in after["timeline"]].count("resolved") == 1


async def test_refiring_alert_is_a_new_occurrence_with_history(settings: Settings) -> None:
    first = am_notification(am_alert("ffff000000000002", pod="api-1", namespace="shop"))
    second = am_notification(
        am_alert(
            "ffff000000000002", pod="api-1", namespace="shop", starts_at="2026-11-26T05:00:00Z"
        )
    )
    async with app_client(settings) as client:
        await client.post(WEBHOOK, json=first)
        await client.post(WEBHOOK, json=resolved(first))
        await client.post(WEBHOOK, json=second)
        detail = (await client.get("/api/v1/alerts/ffff000000000002")).json()
    assert detail["status"] == "firing"
    assert detail["starts_at"] == "2026-11-26T05:00:00Z"
    assert [(h["starts_at"], h["status"]) for h in detail["history"]] == [
        ("2026-11-26T05:00:00Z", "firing"),
        ("2026-11-26T03:00:00Z", "resolved"),
    ]


async def test_basic_auth_as_alertmanager_sends_it(database_url: str, db: Database) -> None:
    settings = make_settings(
        database_url, webhook={"auth": "basic", "username": "am", "password": "pa:ss"}
    )
    note = am_notification(am_alert("abab000000000001", namespace="shop", pod="api-1"))
    async with app_client(settings) as client:
        wrong = await client.post(WEBHOOK, json=note, auth=("am", "nope"))
        missing = await client.post(WEBHOOK, json=note)
        bearer = await client.post(WEBHOOK, json=note, headers={"Authorization": "Bearer pa:ss"})
        right = await client.post(WEBHOOK, json=note, auth=("am", "pa:ss"))
    assert [r.status_code for r in (wrong, missing, bearer)] == [401, 401, 401]
    assert wrong.headers["content-type"] == "application/problem+json"
    assert right.status_code == 202
    assert await _count(db, Occurrence) == 1


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    db = Database(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"))
    try:
        async with db.read() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
    finally:
        await db.dispose()
    assert mode == "wal"
