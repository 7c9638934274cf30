"""Fixtures of the browser tests; the pieces and the reasons live in tests/support/browser.py.

- ``chromium`` (package): one headless Debian Chromium for the browser tests.
- ``viewport``: ``"desktop"`` or ``"phone"``; every test taking ``page`` runs at both.
- ``page``: a fresh page at that viewport with clipboard access; the test fails at
  teardown if the page logged a console error or threw. On failure a screenshot lands
  in ``test-artifacts/screenshots/FAILED-<test>-<viewport>.png``.
- ``console``: that page's ConsoleLog, to ``allow(regex)`` an error a test expects.
- ``oncallm_server`` (package): a running ``oncallm serve`` with the sample cluster
  (LiveOncallm: ``post_sample``, ``post_webhook``, ``url``, ``link``).

Every test here is marked ``browser`` (``pytest -m browser`` selects them) and runs on
pytest-asyncio's session event loop, the one the session's Chromium lives on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page
from playwright.async_api import Error as PlaywrightError
from pytest_asyncio import is_async_test

from tests.support.browser import (
    SCREENSHOTS,
    VIEWPORTS,
    ConsoleLog,
    LiveOncallm,
    launch_chromium,
    live_oncallm,
    open_page,
    screenshot,
)

HERE = Path(__file__).parent
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items: mark only those under tests/browser.
    session_loop = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if HERE not in Path(str(item.path)).parents:
            continue
        item.add_marker(pytest.mark.browser)
        if is_async_test(item):
            item.add_marker(session_loop, append=False)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keep each phase's report on the item, so ``page`` knows whether the test failed.
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


# Package scope: the browser and the server stop when the browser tests are done, instead
# of idling (the server polls its queue) through the rest of the suite.
@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def chromium() -> AsyncIterator[Browser]:
    async with launch_chromium() as browser:
        yield browser


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest_asyncio.fixture(loop_scope="session")
async def page(
    chromium: Browser, viewport: str, console: ConsoleLog, request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    async with open_page(chromium, viewport, console) as (page, _):
        yield page
        call = request.node.stash.get(_REPORTS, {}).get("call")
        failed_shot = f"FAILED-{request.node.originalname}"
        if call is not None and call.failed:
            with contextlib.suppress(PlaywrightError):
                await screenshot(page, failed_shot)
        else:  # not a stale one from an earlier run
            (SCREENSHOTS / f"{failed_shot}-{viewport}.png").unlink(missing_ok=True)
    console.assert_clean()


@pytest.fixture(scope="package")
def oncallm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveOncallm]:
    with live_oncallm(tmp_path_factory.mktemp("oncallm-browser")) as server:
        yield server
