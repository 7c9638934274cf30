"""The alert page in a real browser: the link in a notification, opened as a user would.

Each test runs at desktop and at phone size (the ``page`` fixture), fails on any console
error, saves a screenshot to test-artifacts/screenshots/ and runs axe-core.
"""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.async_api import Page, expect

from tests.support.browser import (
    ConsoleLog,
    LiveOncallm,
    assert_accessible,
    expect_triage_status,
    screenshot,
)


async def assert_fits_the_screen(page: Page) -> None:
    """Nothing makes the whole page scroll sideways (wide parts scroll on their own)."""
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"


async def test_link_opens_the_triaged_alert_with_root_cause_evidence_and_what_to_do(
    page: Page, oncallm_server: LiveOncallm, viewport: str, request: pytest.FixtureRequest
) -> None:
    posted = await oncallm_server.post_sample("02-oom.json")
    assert posted.url.endswith(f"/alerts/{posted.fingerprint}")

    response = await page.goto(posted.page_url)
    assert response is not None
    assert response.status == 200
    await expect(page).to_have_title(re.compile(r"^KubeContainerOOMKilled"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("KubeContainerOOMKilled")
    await expect(page.get_by_text("Container api was OOMKilled.")).to_be_visible()

    # The page keeps itself current while the triage runs; the test never reloads it.
    await expect_triage_status(page, "succeeded")

    root_cause = page.locator(".root-cause")
    await expect(
        root_cause.get_by_role("heading", name=re.compile(r"^Root cause: OOMKilled"))
    ).to_be_visible()
    await expect(root_cause.get_by_text("Culprit: Deployment shop/api")).to_be_visible()

    # The evidence it rests on, shown open: the kill in the pod's status, and the memory
    # chart climbing to the limit.
    await expect(page.get_by_role("heading", name="Evidence")).to_be_visible()
    await expect(page.get_by_text("reason=OOMKilled exitCode=137").first).to_be_visible()
    memory_chart = page.locator("svg.chart").first
    await expect(memory_chart).to_be_visible()
    await expect(memory_chart).to_have_attribute("role", "img")
    await expect(memory_chart).to_have_attribute("aria-label", re.compile(r"^Memory working set"))
    box = await memory_chart.bounding_box()
    assert box is not None
    assert box["width"] > 300, f"the chart is squeezed to {box['width']}px"
    assert box["height"] > 50, f"the chart is squeezed to {box['height']}px"

    await expect(page.get_by_role("heading", name="What to do")).to_be_visible()
    first_step = page.locator("h3:text-is('What to do') + ol > li").first
    await expect(first_step).to_contain_text("Raise the memory limit")
    await expect(first_step).to_contain_text("kubectl -n shop set resources deployment/api")

    await assert_fits_the_screen(page)
    await screenshot(page, request.node.originalname)
    await assert_accessible(page)
    await page.emulate_media(color_scheme="dark")  # contrast in the other palette too
    await assert_accessible(page)


async def test_unknown_fingerprint_says_not_seen_yet(
    page: Page, oncallm_server: LiveOncallm, console: ConsoleLog, request: pytest.FixtureRequest
) -> None:
    fingerprint = uuid.uuid4().hex[:16]
    console.allow(rf"status of 404 .*/alerts/{fingerprint}:")  # the page's own status
    response = await page.goto(oncallm_server.url(f"/alerts/{fingerprint}"))
    assert response is not None
    assert response.status == 404

    await expect(page.get_by_role("heading", level=1)).to_have_text("Alert not seen yet")
    await expect(page.get_by_text(fingerprint)).to_be_visible()
    await expect(page.get_by_text("checks again every 5 seconds")).to_be_visible()
    # It watches for the alert (the notification can beat the webhook to the phone) without
    # a timed reload the user cannot stop; test_alert_page_live sees it appear.
    await expect(page.get_by_role("button", name="Check now")).to_be_visible()

    await assert_fits_the_screen(page)
    await screenshot(page, request.node.originalname)
    await assert_accessible(page)


async def test_copy_link_puts_the_alert_link_on_the_clipboard(
    page: Page, oncallm_server: LiveOncallm
) -> None:
    # Also shows that the page fixture's clipboard permissions work, for later tests.
    posted = await oncallm_server.post_sample("01-crashloop.json")
    await page.goto(posted.page_url)
    await page.get_by_role("button", name="Copy link").click()
    await expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == posted.url
