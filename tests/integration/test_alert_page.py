"""The alert page's working parts over HTTP: the live triage fragment, evidence links,
highlighted logs, copyable commands, notes and the incident summary of a resolved alert.

The browser tests (tests/browser) click through the same page; these pin the server's
side, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import httpx

from oncallm.samples import load_sample, sample_cluster
from oncallm.web.presenters import anchor
from tests.conftest import app_client, make_settings
from tests.integration.test_pages import page_once_triaged
from tests.support.payloads import am_alert, am_notification, resolved

WEBHOOK = "/api/v1/alerts/alertmanager"
CLUSTERS = {"prod-eu-1": {"snapshot": str(sample_cluster())}}


@contextlib.asynccontextmanager
async def triaged(
    database_url: str, sample: str
) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """The app on the sample cluster with ``sample`` posted: (client, fingerprint, page)
    once its triage succeeded; the client stays usable inside the block."""
    settings = make_settings(database_url, kubernetes={"clusters": CLUSTERS})
    async with app_client(settings) as client:
        payload = load_sample(sample)
        fingerprint = payload["alerts"][0]["fingerprint"]
        await client.post(WEBHOOK, json=payload)
        yield client, fingerprint, await page_once_triaged(client, fingerprint)


async def test_the_triage_fragment_is_what_the_page_swaps_in(database_url: str) -> None:
    async with triaged(database_url, "02-oom.json") as (client, fingerprint, page):
        fragment = await client.get(f"/alerts/{fingerprint}/triage")
        missing = await client.get("/alerts/00000000000000ff/triage")
    assert fragment.status_code == 200
    assert fragment.headers["cache-control"] == "no-store"
    assert fragment.text.lstrip().startswith("{#") is False
    assert '<div id="triage" data-live="false"' in fragment.text
    assert "data-stream" not in fragment.text  # finished: nothing left to follow
    assert "Root cause: OOMKilled" in fragment.text
    assert "<html" not in fragment.text  # a fragment, not a page
    # The page embeds the same markup and loads the script that swaps it.
    assert '<div id="triage" data-live="false"' in page
    assert '<script src="/static/oncallm.js?v=' in page
    assert missing.status_code == 404


async def test_every_claim_links_to_evidence_that_is_on_the_page(database_url: str) -> None:
    async with triaged(database_url, "01-crashloop.json") as (_client, _fingerprint, page):
        pass
    rests_on = page.split('class="rests-on"', 1)[1].split("</p>", 1)[0]
    targets = re.findall(r'href="#(ev-[^"]+)"', rests_on)
    assert targets
    for target in targets:
        assert f'id="{target}"' in page, target
    # The root's evidence is open; the telling log lines are marked.
    first = page.split(f'id="{targets[0]}"', 1)[1].split(">", 1)[0]
    assert "open" in first
    assert "<mark>" in page


async def test_commands_are_copyable_and_recommendations_ranked(database_url: str) -> None:
    async with triaged(database_url, "02-oom.json") as (client, fingerprint, page):
        detail = (await client.get(f"/api/v1/alerts/{fingerprint}")).json()
    recs = detail["triage"]["result"]["recommendations"]
    first_command = recs[0]["commands"][0] if recs[0]["commands"] else None
    confidences = [float(c) for c in re.findall(r"confidence (\d\.\d\d)</span>\s*<p>", page)]
    assert confidences == sorted(confidences, reverse=True)
    assert len(confidences) == len(recs)
    assert first_command is not None
    quoted = first_command.replace("'", "&#39;").replace('"', "&#34;")
    assert f'data-copy="{quoted}"' in page
    assert 'id="share"' in page
    assert f'data-copy="http://localhost:8080/alerts/{fingerprint}"' in page


async def test_a_note_is_added_from_the_form_and_shows_on_the_timeline(
    client: httpx.AsyncClient,
) -> None:
    await client.post(WEBHOOK, json=am_notification(am_alert("9000000000000031", pod="api-1")))
    form = {"text": "Rolled back to 1.4.1; error rate back to normal.", "author": "maria"}
    posted = await client.post("/alerts/9000000000000031/notes", data=form)
    assert posted.status_code == 303
    assert posted.headers["location"] == "/alerts/9000000000000031#timeline-h"
    page = (await client.get("/alerts/9000000000000031")).text
    timeline = page.split('id="timeline-h"', 1)[1]
    assert "maria: Rolled back to 1.4.1; error rate back to normal." in timeline
    assert '<span class="chip">note</span>' in timeline


async def test_a_bad_note_is_refused_with_the_reason_and_stores_nothing(
    client: httpx.AsyncClient,
) -> None:
    await client.post(WEBHOOK, json=am_notification(am_alert("9000000000000032", pod="api-1")))
    empty = await client.post("/alerts/9000000000000032/notes", data={"text": "   "})
    assert empty.status_code == 400
    assert "a note needs some text" in empty.text
    assert 'id="note-form"' in empty.text  # the page again, with the form to fix it
    too_long = await client.post("/api/v1/alerts/9000000000000032/notes", json={"text": "x" * 4001})
    assert too_long.status_code == 422
    wrong_type = await client.post(
        "/alerts/9000000000000032/notes", content=b"{}", headers={"content-type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    unknown = await client.post("/api/v1/alerts/00000000000000aa/notes", json={"text": "hi"})
    assert unknown.status_code == 404
    timeline = (await client.get("/api/v1/alerts/9000000000000032")).json()["timeline"]
    assert [e for e in timeline if e["kind"] == "note"] == []


async def test_the_notes_api_adds_to_the_timeline(client: httpx.AsyncClient) -> None:
    await client.post(WEBHOOK, json=am_notification(am_alert("9000000000000033", pod="api-1")))
    added = await client.post(
        "/api/v1/alerts/9000000000000033/notes", json={"text": "Paged the DB team", "author": "li"}
    )
    assert added.status_code == 201
    assert added.json()["message"] == "li: Paged the DB team"
    timeline = (await client.get("/api/v1/alerts/9000000000000033")).json()["timeline"]
    assert timeline[-1]["kind"] == "note"
    assert timeline[-1]["message"] == "li: Paged the DB team"


async def test_a_resolved_alert_gets_an_incident_summary(database_url: str) -> None:
    async with triaged(database_url, "02-oom.json") as (client, fingerprint, firing):
        await client.post(
            f"/api/v1/alerts/{fingerprint}/notes",
            json={"text": "Raised the limit to 384Mi", "author": "sam"},
        )
        payload = load_sample("02-oom.json")
        await client.post(WEBHOOK, json=resolved(payload, "2026-11-26T03:47:00Z"))
        page = (await client.get(f"/alerts/{fingerprint}")).text
    assert "Incident summary" not in firing
    summary = page.split('id="summary-h"', 1)[1].split("</section>", 1)[0]
    assert "KubeContainerOOMKilled (prod-eu-1 / shop) fired at 2026-11-26 03:05 UTC" in summary
    assert "resolved at 2026-11-26 03:47 UTC, after 42 min." in summary
    assert "OncallM found OOMKilled in Deployment shop/api (confidence 0.95)" in summary
    assert "Done: sam: Raised the limit to 384Mi." in summary


def test_evidence_anchors_are_stable_and_distinct() -> None:
    first = anchor("log:shop/api-1/api/previous")
    assert first == anchor("log:shop/api-1/api/previous")
    assert first != anchor("log:shop/api-1/api/current")
    assert re.fullmatch(r"ev-[A-Za-z0-9_-]+", first)
