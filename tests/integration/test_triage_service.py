"""Queued triage end to end: an alert posted to the service is triaged against its cluster
and the stored result (DESIGN.md 4.4) comes back from the API."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from oncallm.samples import load_sample, sample_cluster
from tests.conftest import app_client, make_settings
from tests.support.payloads import am_alert, am_notification
from tests.support.schema import assert_valid_result

WEBHOOK = "/api/v1/alerts/alertmanager"


async def _triaged(client: httpx.AsyncClient, fingerprint: str) -> dict[str, Any]:
    for _ in range(300):
        detail = (await client.get(f"/api/v1/alerts/{fingerprint}")).json()
        triage = detail.get("triage") or {}
        if triage.get("status") in ("succeeded", "failed"):
            return detail
        await asyncio.sleep(0.05)
    raise AssertionError(f"triage of {fingerprint} did not finish: {detail}")


def _settings(database_url: str, **kubernetes: Any) -> Any:
    clusters = {"prod-eu-1": {"snapshot": str(sample_cluster())}}
    return make_settings(database_url, kubernetes={"clusters": clusters, **kubernetes})


async def test_posted_alert_is_triaged_against_its_cluster(database_url: str) -> None:
    async with app_client(_settings(database_url)) as client:
        payload = load_sample("02-oom.json")
        fingerprint = payload["alerts"][0]["fingerprint"]
        assert (await client.post(WEBHOOK, json=payload)).status_code == 202
        detail = await _triaged(client, fingerprint)
        triage = detail["triage"]
        assert triage["status"] == "succeeded", triage
        result = triage["result"]
        assert_valid_result(result)
        root = result["root_cause"]
        assert root["category"] == "OOMKilled"
        assert root["resource"] == {"kind": "Deployment", "namespace": "shop", "name": "api"}
        assert root["confidence"] >= 0.7
        cited = {e["id"] for e in result["evidence"]}
        assert root["evidence"]
        assert set(root["evidence"]) <= cited
        assert result["recommendations"]
        assert result["recommendations"][0]["commands"]
        assert {"kind": "Pod", "namespace": "shop", "name": "api-5d4f7b9c8-h7kq2"} in result[
            "inspected"
        ]
        assert set(result["timings_ms"]) >= {"targets", "gather", "analyze", "total"}
        by_id = (await client.get(f"/api/v1/triages/{triage['id']}")).json()
        assert by_id["result"] == result


async def test_an_unreachable_cluster_is_a_gap_not_a_failure(database_url: str) -> None:
    settings = make_settings(
        database_url,
        kubernetes={"clusters": {"prod": {"kubeconfig": "/nonexistent/kubeconfig"}}},
    )
    async with app_client(settings) as client:
        alert = am_alert("3000000000000001", namespace="shop", pod="api-1", cluster="prod")
        assert (await client.post(WEBHOOK, json=am_notification(alert))).status_code == 202
        triage = (await _triaged(client, "3000000000000001"))["triage"]
        assert triage["status"] == "succeeded"
        result = triage["result"]
        assert_valid_result(result)
        assert result["root_cause"]["category"] == "Unknown"
        assert result["root_cause"]["resource"] is None
        assert any("/nonexistent/kubeconfig" in g["error"] for g in result["gaps"]), result["gaps"]
        assert "kubeconfig" in result["root_cause"]["summary"]
