"""The alert page keeps itself current: a running triage, a note, a resolution.

A user opens the link while the triage still runs and watches it finish without
reloading; copies a command; writes what they did; and sees the page turn into an
incident summary when the resolved notification arrives. The model is the scripted
OpenAI-compatible server (tests/fakes), holding its answer mid-stream until the test has
seen the explanation being written on the page.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.fakes.llm_script import Reply
from tests.fakes.openai_api import OpenAIFake
from tests.support.browser import (
    LiveOncallm,
    assert_accessible,
    expect_triage_status,
    live_oncallm,
    screenshot,
    triage_status,
)
from tests.support.payloads import am_alert, am_notification, resolved

EXPLANATION = (
    "Container api of Deployment shop/api is killed by the kernel each time its memory "
    "reaches the 256Mi limit: NODE_OPTIONS lets the heap grow to 384Mi, so the runtime does "
    "not collect before the limit is hit. Lower --max-old-space-size to about 192Mi, or "
    "raise the memory limit above the heap setting."
)
VERDICT: dict[str, Any] = {
    "explanation": EXPLANATION,
    "root_cause": {
        "category": "OOMKilled",
        "culprit": {"kind": "Deployment", "namespace": "shop", "name": "api"},
        "summary": "api is OOMKilled at its 256Mi limit; its heap flag allows 384Mi.",
        "confidence": 0.9,
        "evidence": [],
    },
    "alternatives": [],
    "recommendations": [],
}
SLOW = 30_000  # ms: a loaded 2-core machine runs the whole suite beside this


class HeldModel:
    """The fake model; each answer streams a few words, then waits for the test."""

    def __init__(self, fake: OpenAIFake) -> None:
        self.fake = fake
        self.hold = threading.Event()

    def next_hold(self) -> threading.Event:
        self.hold = threading.Event()
        return self.hold

    def reply(self, _request: Any) -> Reply:
        return Reply.output(VERDICT, hold=self.hold, hold_after=8)


@pytest.fixture(scope="module")
def model() -> Iterator[HeldModel]:
    with OpenAIFake() as fake:
        held = HeldModel(fake)
        fake.respond_with(held.reply)
        yield held
        held.hold.set()


@pytest.fixture(scope="module")
def llm_server(model: HeldModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveOncallm]:
    with live_oncallm(
        tmp_path_factory.mktemp("oncallm-llm"),
        llm__provider="openai-compatible",
        llm__base_url=model.fake.base_url,
        llm__api_key=model.fake.api_key,
        llm__models__fast="fake-model",
        llm__models__strong="fake-model",
        llm__cache_ttl_seconds="0",  # every alert asks the model: each test holds its own
    ) as server:
        yield server


@pytest.mark.parametrize("viewport", ["desktop"])
async def test_the_page_follows_a_running_triage_to_the_end_without_a_reload(
    page: Page, llm_server: LiveOncallm, model: HeldModel, request: pytest.FixtureRequest
) -> None:
    hold = model.next_hold()
    posted = await llm_server.post_sample("02-oom.json")
    await page.goto(posted.page_url)
    await page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    # In progress: the stage in words, and the model's explanation as it is written.
    current = page.locator("ol.steps li[aria-current='step']")
    await expect(current).to_have_text("Asking the model", timeout=SLOW)
    await expect(triage_status(page)).to_contain_text("running")
    await expect(page.locator("ol.steps li.done").first).to_have_text("Queued")
    writing = page.locator("#live-explanation .explanation")
    await expect(writing).to_contain_text("Container api", timeout=SLOW)
    partial = await writing.text_content()
    assert partial
    assert EXPLANATION.startswith(partial.strip())
    assert len(partial.strip()) < len(EXPLANATION)
    await screenshot(page, f"{request.node.originalname}-running")
    await assert_accessible(page)

    hold.set()
    await expect_triage_status(page, "succeeded")
    assert await page.evaluate("window.__sameDocument === true"), "the page reloaded"
    await expect(page.locator("ol.steps li:not(.done)")).to_have_count(0)
    await expect(page.locator(".llm .explanation")).to_have_text(EXPLANATION)
    await expect(page.locator(".root-cause")).to_contain_text("Root cause: OOMKilled")
    # The rest of the page catches up too: the timeline says the triage completed.
    await expect(page.locator("ol.timeline")).to_contain_text("triage completed", timeout=SLOW)
    assert await page.evaluate("window.__sameDocument === true"), "the page reloaded"
    await screenshot(page, request.node.originalname)


async def test_a_command_is_copied_with_one_tap(page: Page, oncallm_server: LiveOncallm) -> None:
    posted = await oncallm_server.post_sample("02-oom.json")
    await page.goto(posted.page_url)
    await expect_triage_status(page, "succeeded")
    step = page.locator("ol.recommendations > li").first
    command = (await step.locator(".cmd code").first.text_content() or "").strip()
    assert command.startswith("kubectl -n shop ")
    await step.locator(".cmd").first.get_by_role("button", name="Copy command").click()
    await expect(step.locator(".cmd button").first).to_have_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == command
    await expect(page.locator("#announcer")).to_have_text("Command copied")


async def test_a_note_is_added_and_appears_on_the_timeline(
    page: Page, oncallm_server: LiveOncallm, request: pytest.FixtureRequest
) -> None:
    posted = await oncallm_server.post_sample("01-crashloop.json")
    await page.goto(posted.page_url)
    note = f"Rolled back to 1.4.1 ({uuid.uuid4().hex[:6]}); errors stopped."
    await page.get_by_label("What was done or found").fill(note)
    await page.get_by_label("Your name (optional)").fill("maria")
    await page.get_by_role("button", name="Add note").click()
    await expect(page).to_have_url(posted.page_url + "#timeline-h")
    entry = page.locator("ol.timeline li.note")
    await expect(entry).to_contain_text(f"maria: {note}")
    await screenshot(page, request.node.originalname)
    await assert_accessible(page)


async def test_the_resolved_notification_turns_the_page_into_an_incident_summary(
    page: Page, oncallm_server: LiveOncallm, request: pytest.FixtureRequest
) -> None:
    posted = await oncallm_server.post_sample("02-oom.json")
    await page.goto(posted.page_url)
    await expect_triage_status(page, "succeeded")
    await page.evaluate("window.__sameDocument = true")
    await expect(page.locator(".chip.firing")).to_be_visible()

    await oncallm_server.post_webhook(resolved(posted.payload, "2026-11-26T03:47:00Z"))

    summary = page.get_by_role("region", name="Incident summary")
    await expect(summary).to_be_visible(timeout=SLOW)
    await expect(summary).to_contain_text("resolved at 2026-11-26 03:47 UTC, after 42 min.")
    await expect(summary).to_contain_text("OncallM found OOMKilled in Deployment shop/api")
    await expect(page.locator(".chip.resolved")).to_be_visible()
    await expect(page.locator("ol.timeline")).to_contain_text("resolved")
    assert await page.evaluate("window.__sameDocument === true"), "the page reloaded"
    await screenshot(page, request.node.originalname)
    await assert_accessible(page)


async def test_a_not_yet_seen_alert_appears_once_its_webhook_arrives(
    page: Page, oncallm_server: LiveOncallm, console: Any
) -> None:
    fingerprint = uuid.uuid4().hex[:16]
    console.allow(rf"status of 404 .*/alerts/{fingerprint}")
    await page.goto(oncallm_server.url(f"/alerts/{fingerprint}"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Alert not seen yet")
    await oncallm_server.post_webhook(
        am_notification(am_alert(fingerprint, namespace="shop", pod="api-5d4f7b9c8-h7kq2"))
    )
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "KubePodCrashLooping", timeout=SLOW
    )
