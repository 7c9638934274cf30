"""The alert list in a real browser: a smoke test (the page is being reworked).

Asserts only what any version must do: list a posted alert and link to its page.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.support.browser import LiveOncallm, screenshot


async def test_alert_list_links_to_the_posted_alert(
    page: Page, oncallm_server: LiveOncallm, request: pytest.FixtureRequest
) -> None:
    posted = await oncallm_server.post_sample("01-crashloop.json")

    await page.goto(oncallm_server.url("/"))  # / leads to the list
    await expect(page).to_have_url(oncallm_server.url("/alerts"))
    link = page.locator(f'a[href$="/alerts/{posted.fingerprint}"]')
    await expect(link).to_have_text(posted.alertname)
    await screenshot(page, request.node.originalname)

    await link.click()
    await expect(page).to_have_url(re.compile(rf"/alerts/{posted.fingerprint}$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(posted.alertname)
