"""The alert list page `/alerts` as an on-call engineer uses it: firing first, filters that
narrow and survive paging, status chips with counts, what triage found on each row, and
clear answers to bad input and to an empty list. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import html
import re

import httpx

from oncallm.samples import load_sample, sample_cluster
from oncallm.store.queries import COUNT_CAP
from oncallm.web.alert_list import shown_count
from tests.conftest import app_client, make_settings
from tests.support.payloads import am_alert, am_notification, resolved

WEBHOOK = "/api/v1/alerts/alertmanager"
ROW_LINK = re.compile(r'<a class="al-name" href="/alerts/([0-9a-f]{16})">')


def rows(page: str) -> list[str]:
    """The fingerprints of the table's rows, top to bottom."""
    return ROW_LINK.findall(page)


def link(page: str, rel: str) -> str | None:
    found = re.search(rf'<a rel="{rel}" href="([^"]+)">', page)
    return html.unescape(found.group(1)) if found else None


async def post(client: httpx.AsyncClient, *alerts: dict[str, object]) -> None:
    response = await client.post(WEBHOOK, json=am_notification(*alerts))
    assert response.status_code == 202, response.text


async def seed(client: httpx.AsyncClient) -> None:
    """Five alerts: three firing, two resolved, over two clusters and namespaces."""
    await post(
        client,
        am_alert("a000000000000001", namespace="shop", cluster="eu", pod="api-1",
                 starts_at="2026-11-26T01:00:00Z"),
        am_alert("a000000000000002", namespace="data", cluster="us", pod="pg-0",
                 alertname="KubePersistentVolumeFillingUp", severity="critical",
                 starts_at="2026-11-26T03:00:00Z"),
        am_alert("a000000000000003", namespace="shop", cluster="us", pod="web-2",
                 alertname="KubePodNotReady", starts_at="2026-11-26T02:00:00Z"),
    )  # fmt: skip
    # Resolved ones that started later than every firing one: still listed after them.
    done = am_notification(
        am_alert("a000000000000004", namespace="shop", cluster="eu", pod="api-9",
                 starts_at="2026-11-26T05:00:00Z", severity="critical"),
        am_alert("a000000000000005", namespace="data", cluster="eu", pod="redis-0",
                 alertname="KubeDeploymentReplicasMismatch", starts_at="2026-11-26T04:00:00Z"),
    )  # fmt: skip
    await client.post(WEBHOOK, json=done)
    await client.post(WEBHOOK, json=resolved(done, "2026-11-26T05:30:00Z"))


async def listing(client: httpx.AsyncClient, query: str = "") -> str:
    response = await client.get(f"/alerts{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


async def test_root_redirects_to_the_list(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/alerts"


async def test_firing_first_then_resolved_each_newest_first(client: httpx.AsyncClient) -> None:
    await seed(client)
    page = await listing(client)
    assert rows(page) == [
        "a000000000000002",  # firing, started 03:00
        "a000000000000003",  # firing, 02:00
        "a000000000000001",  # firing, 01:00
        "a000000000000004",  # resolved, started 05:00
        "a000000000000005",  # resolved, 04:00
    ]
    first, resolved_row = page.split("</tr>")[1], page.split("</tr>")[4]
    # Status as text and colour; severity as a chip; where; exact start time on hover.
    assert '<span class="chip firing">firing</span>' in first
    assert '<span class="chip al-sev al-sev-critical">critical</span>' in first
    assert "us / data" in first
    assert '<time datetime="2026-11-26T03:00:00Z" title="2026-11-26 03:00:00 UTC">' in first
    assert "KubePersistentVolumeFillingUp on pg-0" in first  # the summary annotation
    # A long CamelCase alertname may wrap between its words on a phone, not mid-word.
    assert ">Kube<wbr>Persistent<wbr>Volume<wbr>Filling<wbr>Up</a>" in first
    assert '<span class="chip resolved">resolved</span>' in resolved_row
    assert "lasted 30 min" in resolved_row


async def test_status_chips_count_and_filter(client: httpx.AsyncClient) -> None:
    await seed(client)
    page = await listing(client)
    assert re.search(r'aria-current="page">All <strong>5</strong>', page)
    assert 'href="/alerts?status=firing">Firing <strong>3</strong>' in page
    assert 'href="/alerts?status=resolved">Resolved <strong>2</strong>' in page
    # Under another filter the chips count within it, and their links keep it.
    shop = await listing(client, "?namespace=shop")
    assert 'href="/alerts?status=firing&amp;namespace=shop">Firing <strong>2</strong>' in shop
    assert 'href="/alerts?status=resolved&amp;namespace=shop">Resolved <strong>1</strong>' in shop
    firing = await listing(client, "?status=firing")
    assert rows(firing) == ["a000000000000002", "a000000000000003", "a000000000000001"]
    assert 'aria-current="page">Firing <strong>3</strong>' in firing
    assert "Clear filters" in firing


async def test_each_filter_and_the_search_narrow_the_rows(client: httpx.AsyncClient) -> None:
    await seed(client)
    cases = {
        "?status=resolved": ["a000000000000004", "a000000000000005"],
        "?severity=critical": ["a000000000000002", "a000000000000004"],
        "?namespace=shop": ["a000000000000003", "a000000000000001", "a000000000000004"],
        "?cluster=us": ["a000000000000002", "a000000000000003"],
        "?alertname=KubePodNotReady": ["a000000000000003"],
        "?cluster=eu&namespace=shop&status=firing": ["a000000000000001"],
        # Several values of one filter are alternatives.
        "?cluster=us&cluster=eu&alertname=KubePodNotReady&alertname=KubePodCrashLooping": [
            "a000000000000003",
            "a000000000000001",
            "a000000000000004",
        ],
        # Search: alertname (any case), a label value, the summary annotation.
        "?q=volumefilling": ["a000000000000002"],
        "?q=redis-0": ["a000000000000005"],
        "?q=CrashLooping+on+api-9": ["a000000000000004"],
        # LIKE wildcards in the search are plain characters.
        "?q=%25": [],
        "?q=api_1": [],
        # An empty form field (the "Any" choice) filters nothing.
        "?status=&severity=&namespace=&cluster=&alertname=&q=": [
            "a000000000000002",
            "a000000000000003",
            "a000000000000001",
            "a000000000000004",
            "a000000000000005",
        ],
    }
    for query, expected in cases.items():
        assert rows(await listing(client, query)) == expected, query


async def test_the_form_offers_the_values_present_and_keeps_the_choice(
    client: httpx.AsyncClient,
) -> None:
    await seed(client)
    page = await listing(client, "?namespace=data&q=pg")
    form = page.split('<form class="al-filters"', 1)[1].split("</form>", 1)[0]
    assert 'method="get" action="/alerts"' in form
    assert '<label for="f-namespace">Namespace</label>' in form
    namespace = form.split('id="f-namespace"', 1)[1].split("</select>", 1)[0]
    assert "<option selected>data</option>" in namespace
    assert "<option>shop</option>" in namespace
    # Severities in order of urgency, not of the alphabet.
    severity = form.split('id="f-severity"', 1)[1].split("</select>", 1)[0]
    assert severity.index("critical") < severity.index("warning")
    assert 'name="q" value="pg"' in form
    assert '<a href="/alerts">Clear filters</a>' in form


async def test_many_distinct_values_make_the_filter_free_text(client: httpx.AsyncClient) -> None:
    alerts = [am_alert(f"b{i:015x}", namespace=f"team-{i:02d}") for i in range(45)]
    await post(client, *alerts)
    page = await listing(client, "?namespace=team-07")
    assert '<input id="f-namespace" name="namespace" value="team-07"' in page
    assert rows(page) == ["b000000000000007"]
    assert '<select id="f-cluster"' in page  # few clusters: still a select


async def test_older_and_newer_walk_every_row_once_and_keep_the_filters(
    client: httpx.AsyncClient,
) -> None:
    # Seven in "shop" (four firing, three resolved) and noise the filter must keep out.
    shop = [
        am_alert(f"c00000000000000{i}", namespace="shop", starts_at=f"2026-11-26T0{i}:00:00Z")
        for i in range(1, 8)
    ]
    await post(client, *shop[:4])
    done = am_notification(*shop[4:])
    await client.post(WEBHOOK, json=done)
    await client.post(WEBHOOK, json=resolved(done, "2026-11-26T09:00:00Z"))
    await post(client, am_alert("d000000000000001", namespace="data"))
    expected = [f"c00000000000000{i}" for i in (4, 3, 2, 1, 7, 6, 5)]

    url: str | None = "/alerts?namespace=shop&limit=3"
    pages: list[list[str]] = []
    page = ""
    while url is not None:
        assert "namespace=shop" in url
        assert "limit=3" in url
        page = await listing(client, url.removeprefix("/alerts"))
        pages.append(rows(page))
        url = link(page, "next")
    assert pages == [expected[:3], expected[3:6], expected[6:]]
    assert link(await listing(client, "?namespace=shop&limit=3"), "prev") is None
    # And back up with Newer, page by page, to the first page.
    back: list[list[str]] = []
    url = link(page, "prev")
    while url is not None:
        assert "namespace=shop" in url
        page = await listing(client, url.removeprefix("/alerts"))
        back.append(rows(page))
        url = link(page, "prev")
    assert back == [expected[3:6], expected[:3]]


async def test_default_page_is_fifty_rows(client: httpx.AsyncClient) -> None:
    await post(client, *[am_alert(f"e{i:015x}", pod=f"p{i}") for i in range(60)])
    page = await listing(client)
    assert len(rows(page)) == 50
    older = link(page, "next")
    assert older is not None
    assert "limit" not in older
    assert len(rows(await listing(client, older.removeprefix("/alerts")))) == 10
    assert len(rows(await listing(client, "?limit=200"))) == 60


async def test_the_row_says_what_triage_found(database_url: str) -> None:
    clusters = {"prod-eu-1": {"snapshot": str(sample_cluster())}}
    settings = make_settings(database_url, kubernetes={"clusters": clusters})
    async with app_client(settings) as client:
        payload = load_sample("02-oom.json")
        await client.post(WEBHOOK, json=payload)
        fingerprint = payload["alerts"][0]["fingerprint"]
        for _ in range(400):
            page = await listing(client)
            if '<span class="al-rc">' in page:
                break
            await asyncio.sleep(0.05)
    row = page.split(f'href="/alerts/{fingerprint}"', 1)[1].split("</tr>", 1)[0]
    assert '<span class="al-rc">OOMKilled</span>' in row
    assert "Culprit: <code>Deployment shop/api</code>" in row


async def test_bad_input_is_a_400_page_not_a_500(client: httpx.AsyncClient) -> None:
    await seed(client)
    for query, says in {
        "?status=pending": "status &#39;pending&#39; is not one of: firing, resolved",
        "?after=not-ours": "cursor is not one this list gave out",
        "?before=bDpmaXJpbmc6eDox": "cursor is not one this list gave out",
        "?limit=0": "limit must be a whole number from 1 to 200",
        "?limit=abc": "limit must be a whole number from 1 to 200",
        "?limit=100000": "limit must be a whole number from 1 to 200",
        "?q=a%00b": "search: at most 200 characters, no NUL",
        "?namespace=a%00b": "namespace: a value contains a NUL character",
        f"?alertname={'x' * 300}": "alertname: a value is longer than 255 characters",
    }.items():
        response = await client.get(f"/alerts{query}")
        assert response.status_code == 400, query
        assert response.headers["content-type"].startswith("text/html"), query
        assert "This list cannot be shown" in response.text, query
        assert says in response.text, query
        assert '<a href="/alerts">Show all alerts</a>' in response.text


async def test_empty_states_say_what_to_do(client: httpx.AsyncClient) -> None:
    fresh = await listing(client)
    assert "No alerts received yet" in fresh
    assert "- url: http://localhost:8080/api/v1/alerts/alertmanager" in fresh
    assert "Connect Alertmanager" in fresh
    assert "oncallm alertmanager-config" in fresh
    assert '<form class="al-filters"' not in fresh  # nothing to filter yet
    await seed(client)
    none = await listing(client, "?namespace=nowhere")
    assert rows(none) == []
    assert "No alerts match these filters" in none
    assert '<a href="/alerts">Clear filters</a>' in none
    assert "No alerts received yet" not in none


async def test_the_api_searches_the_same_way(client: httpx.AsyncClient) -> None:
    await seed(client)
    found = (await client.get("/api/v1/alerts", params={"q": "REDIS-0"})).json()
    assert [a["fingerprint"] for a in found["items"]] == ["a000000000000005"]
    wildcard = (await client.get("/api/v1/alerts", params={"q": "%"})).json()
    assert wildcard["items"] == []


def test_counts_past_the_cap_read_as_more_than() -> None:
    assert shown_count(1234) == "1,234"
    assert shown_count(COUNT_CAP) == f"{COUNT_CAP:,}"
    assert shown_count(COUNT_CAP + 1) == f"{COUNT_CAP:,}+"
