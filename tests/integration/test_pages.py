"""The alert page every notification links to, and the alert list (server-rendered)."""

from __future__ import annotations

import asyncio

import httpx

from oncallm.samples import load_sample, sample_cluster
from tests.conftest import app_client, make_settings
from tests.fakes.llm_script import Reply
from tests.fakes.openai_api import OpenAIFake
from tests.support.payloads import am_alert, am_notification, resolved

WEBHOOK = "/api/v1/alerts/alertmanager"


async def page_once_triaged(client: httpx.AsyncClient, fingerprint: str) -> str:
    """The alert page as soon as its triage has succeeded (or after 20 s, as it is then)."""
    for _ in range(400):
        page = (await client.get(f"/alerts/{fingerprint}")).text
        if "<strong>succeeded</strong>" in page:
            break
        await asyncio.sleep(0.05)
    return page


async def test_link_from_ingest_opens_the_alert_page(client: httpx.AsyncClient) -> None:
    note = am_notification(
        am_alert("9000000000000001", namespace="shop", pod="api-7", container="api")
    )
    accepted = (await client.post(WEBHOOK, json=note)).json()
    path = accepted["alerts"][0]["url"].removeprefix("http://localhost:8080")
    assert path == "/alerts/9000000000000001"
    for _ in range(100):
        page = await client.get(path)
        if "succeeded" in page.text:
            break
        await asyncio.sleep(0.05)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>KubePodCrashLooping</h1>" in page.text
    assert "KubePodCrashLooping on api-7" in page.text  # the summary annotation
    assert "<strong>succeeded</strong>" in page.text
    assert "<code>api-7</code> (container <code>api</code>)" in page.text
    assert 'http-equiv="refresh"' not in page.text  # finished: no more refreshing


async def test_resolved_alert_page_and_list(client: httpx.AsyncClient) -> None:
    note = am_notification(am_alert("9000000000000002", namespace="shop", pod="api-8"))
    await client.post(WEBHOOK, json=note)
    await client.post(WEBHOOK, json=resolved(note, "2026-11-26T03:45:00Z"))
    page = (await client.get("/alerts/9000000000000002")).text
    assert 'class="chip resolved"' in page
    assert "lasted 45 min" in page
    listing = await client.get("/", follow_redirects=True)
    assert listing.status_code == 200
    assert str(listing.url).endswith("/alerts")
    assert 'href="/alerts/9000000000000002"' in listing.text


async def test_unknown_fingerprint_says_not_seen_yet_and_refreshes(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/alerts/0123456789abcdef")
    assert page.status_code == 404
    assert "Alert not seen yet" in page.text
    assert '<meta http-equiv="refresh" content="5">' in page.text


async def test_the_page_shows_the_root_cause_evidence_and_what_to_do(database_url: str) -> None:
    clusters = {"prod-eu-1": {"snapshot": str(sample_cluster())}}
    settings = make_settings(database_url, kubernetes={"clusters": clusters})
    async with app_client(settings) as client:
        payload = load_sample("02-oom.json")
        await client.post(WEBHOOK, json=payload)
        page = await page_once_triaged(client, payload["alerts"][0]["fingerprint"])
    assert "Root cause: OOMKilled" in page
    assert "Culprit: <strong>Deployment shop/api</strong>" in page
    assert "OOMKilled" in page
    assert "<h3>What to do</h3>" in page
    assert "kubectl -n shop" in page
    assert "Inspected " in page


async def test_the_page_draws_the_metric_evidence_with_its_query(database_url: str) -> None:
    clusters = {"prod-eu-1": {"snapshot": str(sample_cluster())}}
    settings = make_settings(database_url, kubernetes={"clusters": clusters})
    async with app_client(settings) as client:
        payload = load_sample("03-pvc-filling.json")
        await client.post(WEBHOOK, json=payload)
        page = await page_once_triaged(client, payload["alerts"][0]["fingerprint"])
    assert "Root cause: VolumeFailure" in page
    assert "full in about" in page
    evidence = page.split("<code>metric:volume_used/data/postgres-data-postgres-0</code>", 1)[1]
    chart, rest = evidence.split("</svg>", 1)
    assert '<svg class="chart"' in chart
    assert 'role="img"' in chart
    assert 'aria-label="Bytes used on volume data/postgres-data-postgres-0: rose steadily' in chart
    assert '<line class="limit"' in chart  # the 20 GiB capacity, dashed
    assert "20 GiB" in chart
    assert chart.count("<polyline") == 1
    # The query as a user would paste it into Prometheus (HTML-escaped on the page).
    assert (
        "max(kubelet_volume_stats_used_bytes{namespace=&#34;data&#34;, "
        "persistentvolumeclaim=&#34;postgres-data-postgres-0&#34;})" in rest.split("</details>")[0]
    )


async def test_the_page_labels_the_models_explanation_and_what_grounding_dropped(
    database_url: str,
) -> None:
    made_up_pod = {"kind": "Pod", "namespace": "shop", "name": "api-5f7c9d-zzzzz"}
    answer = {
        "explanation": "The api pods run out of memory [log:shop/none/api/previous].",
        "root_cause": {
            "category": "OOMKilled",
            "culprit": made_up_pod,
            "summary": "Pod api-5f7c9d-zzzzz leaks memory.",
            "confidence": 0.95,
            "evidence": ["log:shop/none/api/previous"],
        },
        "recommendations": [
            {
                "title": "Delete the leaking pod",
                "commands": ["kubectl -n shop delete pod api-5f7c9d-zzzzz"],
            }
        ],
    }
    clusters = {"prod-eu-1": {"snapshot": str(sample_cluster())}}
    with OpenAIFake(api_key=None) as llm:
        llm.default = Reply.output(answer)
        settings = make_settings(
            database_url,
            kubernetes={"clusters": clusters},
            llm={"provider": "openai-compatible", "base_url": llm.base_url},
        )
        async with app_client(settings) as client:
            payload = load_sample("02-oom.json")
            await client.post(WEBHOOK, json=payload)
            page = await page_once_triaged(client, payload["alerts"][0]["fingerprint"])
    assert "Root cause: OOMKilled" in page
    assert "Culprit: <strong>Deployment shop/api</strong>" in page  # the evidence's culprit
    assert "The model disagrees" in page
    assert "unverified: not in the gathered evidence" in page
    assert "Claims dropped by the grounding check (3)" in page
    assert "kubectl -n shop delete pod api-5f7c9d-zzzzz" not in page.split("Claims dropped")[0]
    assert "llama3.1:8b" in page
