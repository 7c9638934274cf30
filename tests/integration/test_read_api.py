"""Read API, operations endpoints and metrics as a user of the API sees them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from oncallm.config import Settings
from tests.conftest import app_client, make_settings
from tests.support.payloads import am_alert, am_notification, resolved

WEBHOOK = "/api/v1/alerts/alertmanager"


async def _seed(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Three alerts (the first resolved); returns them as posted."""
    alerts = [
        am_alert(
            "1000000000000001",
            namespace="shop",
            pod="a",
            cluster="eu",
            starts_at="2026-11-26T01:00:00Z",
        ),
        am_alert(
            "1000000000000002",
            namespace="shop",
            pod="b",
            cluster="us",
            alertname="KubePodNotReady",
            starts_at="2026-11-26T02:00:00Z",
        ),
        am_alert(
            "1000000000000003",
            namespace="data",
            pod="c",
            cluster="eu",
            starts_at="2026-11-26T03:00:00Z",
        ),
    ]
    alerts[2]["labels"]["severity"] = "critical"
    for alert in alerts:
        assert (await client.post(WEBHOOK, json=am_notification(alert))).status_code == 202
    first = am_notification(alerts[0])
    assert (await client.post(WEBHOOK, json=resolved(first))).status_code == 202
    return alerts


async def _fingerprints(client: httpx.AsyncClient, **params: str) -> list[str]:
    response = await client.get("/api/v1/alerts", params=params)
    assert response.status_code == 200, response.text
    return [item["fingerprint"] for item in response.json()["items"]]


async def test_filters(client: httpx.AsyncClient) -> None:
    await _seed(client)
    assert await _fingerprints(client) == [
        "1000000000000003",
        "1000000000000002",
        "1000000000000001",
    ]
    assert await _fingerprints(client, status="resolved") == ["1000000000000001"]
    assert await _fingerprints(client, status="firing") == ["1000000000000003", "1000000000000002"]
    assert await _fingerprints(client, alertname="KubePodNotReady") == ["1000000000000002"]
    assert await _fingerprints(client, namespace="shop", cluster="eu") == ["1000000000000001"]
    assert await _fingerprints(client, severity="critical") == ["1000000000000003"]
    assert await _fingerprints(client, since="2026-11-26T02:00:00Z") == [
        "1000000000000003",
        "1000000000000002",
    ]


async def test_cursor_pagination_walks_every_alert_once(client: httpx.AsyncClient) -> None:
    await _seed(client)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/alerts", params=params)).json()
        seen += [i["fingerprint"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["1000000000000003", "1000000000000002", "1000000000000001"]


async def test_bad_query_parameters_are_problems(client: httpx.AsyncClient) -> None:
    bad_cursor = await client.get("/api/v1/alerts", params={"cursor": "not-ours"})
    assert bad_cursor.status_code == 400
    assert bad_cursor.headers["content-type"] == "application/problem+json"
    bad_status = await client.get("/api/v1/alerts", params={"status": "pending", "limit": "0"})
    assert bad_status.status_code == 422
    fields = {e["field"] for e in bad_status.json()["errors"]}
    assert fields == {"status", "limit"}


async def test_alert_and_triage_detail(settings: Settings) -> None:
    async with app_client(settings) as client:
        await _seed(client)
        for _ in range(100):
            alert = (await client.get("/api/v1/alerts/1000000000000003")).json()
            if alert["triage"]["status"] == "succeeded":
                break
            await asyncio.sleep(0.05)
        triage = alert["triage"]
        assert triage["status"] == "succeeded"
        assert triage["targets"] == [
            {"kind": "Pod", "name": "c", "namespace": "data", "container": None, "label": "pod"}
        ]
        by_id = (await client.get(f"/api/v1/triages/{triage['id']}")).json()
        assert by_id["alert"]["url"] == "http://localhost:8080/alerts/1000000000000003"
        assert by_id["result"]["schema"] == "oncallm.triage/v1"
        assert by_id["result"]["timings_ms"]["total"] >= by_id["result"]["timings_ms"]["targets"]
        missing = await client.get("/api/v1/alerts/ffffffffffffffff")
        assert missing.status_code == 404
        assert "ffffffffffffffff" in missing.json()["detail"]
        assert (await client.get("/api/v1/triages/999999")).status_code == 404


async def test_request_id_is_echoed_and_kept_in_problems(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/alerts/nope", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["request_id"] == "abc-123"
    hostile = await client.get("/healthz", headers={"X-Request-ID": "a b\tc" * 30})
    assert hostile.headers["x-request-id"] != "a b\tc" * 30


async def test_readyz_and_metrics(client: httpx.AsyncClient) -> None:
    seeded = await _seed(client)
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "worker": "ok"}
    assert (await client.get("/healthz")).json() == {"status": "ok", "checks": {}}
    await client.post(WEBHOOK, content=b"{", headers={"content-type": "application/json"})
    twin = am_notification(seeded[1])  # the same firing alert, from the HA peer
    twin["externalURL"] = "http://alertmanager-1:9093"
    assert (await client.post(WEBHOOK, json=twin)).json()["duplicate"] is False
    text = (await client.get("/metrics")).text
    for series in (
        'oncallm_notifications_received_total{source="alertmanager"}',
        'oncallm_notifications_rejected_total{reason="malformed-json"}',
        "oncallm_occurrences_created_total",
        'oncallm_duplicates_absorbed_total{kind="alert"}',
        'oncallm_triage_queue_depth{status="queued"}',
        'oncallm_http_request_duration_seconds_bucket{le="0.005",method="POST",'
        'route="/api/v1/alerts/alertmanager",status="202"}',
    ):
        assert series in text, series


async def test_readyz_fails_when_schema_is_behind(database_url: str) -> None:
    settings = make_settings(database_url, server={"migrate_on_start": False})
    async with app_client(settings) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["migrations"].startswith("at None")


async def test_openapi_documents_the_routes(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/api/v1/alerts/alertmanager",
        "/webhook",
        "/api/v1/alerts",
        "/api/v1/alerts/{fingerprint}",
        "/api/v1/triages/{triage_id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    ingest = paths["/api/v1/alerts/alertmanager"]["post"]
    assert "202" in ingest["responses"]
    assert "application/problem+json" in ingest["responses"]["422"]["content"]
