"""Browser tests: Debian's Chromium driven by Playwright's async API, and a live OncallM.

What a new browser test gets (fixtures in ``tests/browser/conftest.py``, built from the
pieces below; put the test under ``tests/browser/`` so it runs on the browser's loop)::

    async def test_oom(page: Page, oncallm_server: LiveOncallm, console: ConsoleLog) -> None:
        posted = await oncallm_server.post_sample("02-oom.json")  # 202, a new fingerprint
        await page.goto(posted.page_url)                      # the link a user taps
        await expect_triage_status(page, "succeeded")         # waits while the triage runs
        await expect(page.get_by_role("heading", name="Root cause: OOMKilled")).to_be_visible()
        await page.get_by_role("button", name="Copy link").click()
        assert await page.evaluate("navigator.clipboard.readText()") == posted.url
        await screenshot(page, "oom")                         # test-artifacts/screenshots/
        await assert_accessible(page)                         # axe-core: serious+critical fail

``page`` runs each test twice, at desktop and at phone size (the ``viewport`` fixture
names which), in a fresh browser context with clipboard access, and fails the test at
teardown if the page logged a console error or threw (``console.allow(regex)`` for one
the test expects). ``assert_accessible(page, known={rule: reason})`` tolerates a
violation already reported against the page, and fails once it is gone.

Why the async API: pytest-asyncio runs in auto mode here, and Playwright's sync API marks
its own event loop as running between calls (playwright/_impl/_greenlets.py). A browser
kept open for the session by the sync API would therefore break every ``async def`` test
that runs after it ("Cannot run the event loop while another loop is running"). With the
async API, the browser lives on pytest-asyncio's *session* event loop; the conftest in
``tests/browser`` puts every test there on that loop, so tests are plain ``async def``
functions and must ``await`` every Playwright call. Chromium starts once per session
(about a second); each test gets a fresh context (milliseconds), so tests stay isolated.

Chromium is Debian's package (``make test`` installs it): Playwright's own browser download
does not work on this machine (DESIGN.md section 5). axe-core comes from the npm registry,
pinned in ``tests/browser/package-lock.json`` and installed by ``make test``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    async_playwright,
    expect,
)
from playwright.async_api import Error as PlaywrightError

from oncallm.samples import SAMPLE_CLUSTER_NAME, load_sample, sample_cluster
from tests.support.services import REPO_ROOT, OncallmProcess, oncallm_env, start_server

CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    # Without these Chromium keeps dialling Google's hosts, which this network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Browser context options per viewport; ``page`` is parametrized over the keys.
VIEWPORTS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        # An iPhone 12-14 sized screen: what the engineer holds at 3 a.m.
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 2,
    },
}

# Copy buttons are tested by reading back ``navigator.clipboard.readText()``.
PERMISSIONS = ["clipboard-read", "clipboard-write"]

# Playwright waits at most this long for an action or an ``expect``; its default of 30 s
# only delays the report of a broken page.
ACTION_TIMEOUT_MS = 10_000
# A triage of a sample alert takes well under a second; the page refreshes every 3 s.
TRIAGE_TIMEOUT_MS = 20_000

AXE_JS = REPO_ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
AXE_INSTALL = "npm ci --prefix tests/browser (make test does)"
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
# axe's impact levels that fail a test; "moderate" and "minor" are reported, not failed.
FAILING_IMPACTS = ("serious", "critical")

WEBHOOK = "/api/v1/alerts/alertmanager"


def _missing(message: str) -> None:
    """A missing tool fails in CI (``CI=true``) and skips elsewhere, as require_binary."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def chromium_path() -> str:
    """Debian's Chromium: ``chromium`` on PATH, else /usr/bin/chromium."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        _missing("chromium not found: install the Debian package chromium (make test does)")
    return path


# --- the browser ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def launch_chromium() -> AsyncIterator[Browser]:
    """Headless Debian Chromium with the flags DESIGN.md section 5 prescribes."""
    executable = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


# Errors no page of ours causes: Chromium asks every origin for /favicon.ico on its own
# and logs the 404 (OncallM serves no icon). A page's own failed requests still count.
ALWAYS_ALLOWED = [r"status of 404 .*\(\S+/favicon\.ico:\d+\)$"]


@dataclass
class ConsoleLog:
    """Console errors and uncaught exceptions of one page, checked when the test ends.

    A test that expects an error (a page that logs a failed request on purpose) calls
    ``allow(regex)``; anything else logged at level ``error`` fails the test.
    """

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(
        default_factory=lambda: [re.compile(p) for p in ALWAYS_ALLOWED]
    )

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location
            origin = f" ({where['url']}:{where['lineNumber']})" if where.get("url") else ""
            self.errors.append(f"console.error: {message.text}{origin}")

    def on_page_error(self, error: PlaywrightError) -> None:
        self.errors.append(f"uncaught {error.name}: {error.message}")

    def assert_clean(self) -> None:
        unexpected = self.unexpected()
        assert not unexpected, "the page logged errors:\n" + "\n".join(
            f"  - {e}" for e in unexpected
        )


@contextlib.asynccontextmanager
async def open_page(
    browser: Browser, viewport: str, log: ConsoleLog | None = None
) -> AsyncIterator[tuple[Page, ConsoleLog]]:
    """A page in a fresh context at ``viewport`` (a key of VIEWPORTS), recording into
    ``log`` (a new ConsoleLog if none is given).

    The context is closed afterwards; the caller decides what to do with the log (the
    ``page`` fixture asserts it is clean).
    """
    context = await browser.new_context(
        **VIEWPORTS[viewport], permissions=PERMISSIONS, locale="en-US", timezone_id="UTC"
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    log = log if log is not None else ConsoleLog()
    try:
        page = await context.new_page()
        page.on("console", log.on_console)
        page.on("pageerror", log.on_page_error)
        yield page, log
    finally:
        await context.close()


def viewport_name(page: Page) -> str:
    """The VIEWPORTS key whose width the page has, or ``<width>x<height>``."""
    size = page.viewport_size or {"width": 0, "height": 0}
    for name, options in VIEWPORTS.items():
        if options["viewport"] == size:
            return name
    return f"{size['width']}x{size['height']}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "page"


async def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG to ``test-artifacts/screenshots/<name>-<viewport>.png``.

    ``name`` is usually the test's own name (``request.node.originalname``); CI keeps
    ``test-artifacts/`` so a reviewer can look at the page as the test saw it.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{_safe(name)}-{viewport_name(page)}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


# --- accessibility ----------------------------------------------------------------------


def format_violations(violations: list[dict[str, Any]]) -> str:
    """axe violations as lines a person can act on: impact, rule, help, where."""
    lines = []
    for v in violations:
        lines.append(f"[{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:10]:
            target = " ".join(
                json.dumps(t) if not isinstance(t, str) else t for t in node["target"]
            )
            lines.append(f"    at {target}")
            summary = (node.get("failureSummary") or "").strip().replace("\n", " / ")
            if summary:
                lines.append(f"       {summary}")
        if len(v["nodes"]) > 10:
            lines.append(f"    ... and {len(v['nodes']) - 10} more elements")
    return "\n".join(lines)


async def axe_violations(page: Page, context: str | None = None) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now and return all its violations.

    ``context`` is a CSS selector to check only part of the page (default: all of it).
    """
    if not AXE_JS.exists():
        _missing(f"{AXE_JS.relative_to(REPO_ROOT)} not found: run {AXE_INSTALL}")
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE_JS))
    result: dict[str, Any] = await page.evaluate(
        """async (selector) => {
            const context = selector ? document.querySelector(selector) : document;
            return await axe.run(context, { resultTypes: ["violations"] });
        }""",
        context,
    )
    violations: list[dict[str, Any]] = result["violations"]
    return violations


async def assert_accessible(
    page: Page, context: str | None = None, *, known: dict[str, str] | None = None
) -> None:
    """Fail on any axe-core violation of impact serious or critical.

    Lesser ones (moderate, minor) are printed, so they show in the test's output, but
    do not fail. Checks what is rendered now: call it after the page has settled, and
    again after opening something (a dialog, a <details>) whose content matters.

    ``known`` maps an axe rule id to why it is tolerated for now (a violation already
    reported against the page). It must still occur: once the page is fixed the test
    fails until the entry is removed, so a tolerance cannot outlive its reason.
    """
    known = known or {}
    violations = await axe_violations(page, context)
    tolerated = [v for v in violations if v["id"] in known]
    failing = [v for v in violations if v["impact"] in FAILING_IMPACTS and v["id"] not in known]
    lesser = [v for v in violations if v["impact"] not in FAILING_IMPACTS and v["id"] not in known]
    if lesser:
        print(f"axe, not failing ({page.url}):\n{format_violations(lesser)}")
    if tolerated:
        print(f"axe, known ({page.url}):\n{format_violations(tolerated)}")
    assert not failing, (
        f"axe-core found {len(failing)} serious/critical accessibility violation(s) "
        f"on {page.url} ({viewport_name(page)}):\n{format_violations(failing)}"
    )
    gone = sorted(set(known) - {v["id"] for v in tolerated})
    assert not gone, f"axe no longer reports {gone} on {page.url}: remove them from known="


# --- the alert page ---------------------------------------------------------------------


def triage_status(page: Page) -> Locator:
    """The triage status word on the alert page (``queued``, ``running``, ``succeeded``,
    ``failed``): the one place to change when the page's markup does."""
    return page.get_by_role("status").filter(has_text="Status:").locator("strong")


async def expect_triage_status(page: Page, status: str, timeout: float = TRIAGE_TIMEOUT_MS) -> None:
    """Wait until the alert page shows the triage ``status`` (e.g. ``succeeded``).

    Auto-waits: while the triage runs the page updates itself (server-sent events or
    polling, or a refresh without JavaScript), and Playwright's ``expect`` polls through
    that; no sleeps.
    """
    await expect(triage_status(page)).to_have_text(status, timeout=timeout)


# --- a live OncallM ---------------------------------------------------------------------


@dataclass
class PostedAlert:
    """One alert of a webhook OncallM accepted: what a notification would link to."""

    fingerprint: str
    alertname: str
    url: str  # as OncallM reported it (its configured base URL)
    page_url: str  # the same page on the test server's real address
    payload: dict[str, Any]  # the whole notification, for a later resolved one


@dataclass
class LiveOncallm:
    """``oncallm serve`` on SQLite with the bundled sample cluster, for a browser to visit."""

    process: OncallmProcess

    @property
    def base_url(self) -> str:
        return self.process.base_url

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def link(self, url: str) -> str:
        """A link OncallM made (with its configured base URL) on this server's address."""
        parts = urlsplit(url)
        return self.url(parts.path + (f"?{parts.query}" if parts.query else ""))

    async def post_webhook(self, notification: dict[str, Any]) -> list[PostedAlert]:
        """POST an Alertmanager notification; assert 202; the alerts with their links."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as http:
            response = await http.post(WEBHOOK, json=notification)
        assert response.status_code == 202, f"webhook: {response.status_code} {response.text}"
        return [
            PostedAlert(
                fingerprint=a["fingerprint"],
                alertname=a["alertname"],
                url=a["url"],
                page_url=self.link(a["url"]),
                payload=notification,
            )
            for a in response.json()["alerts"]
        ]

    async def post_sample(self, name: str, *, fresh: bool = True) -> PostedAlert:
        """POST a bundled sample (``oncallm/samples/<name>``) and return its first alert.

        ``fresh`` gives each alert a new fingerprint, so tests sharing this server (and
        the two viewports of one test) each get their own alert and their own triage.
        """
        notification = load_sample(name)
        if fresh:
            for alert in notification["alerts"]:
                alert["fingerprint"] = uuid.uuid4().hex[:16]
        return (await self.post_webhook(notification))[0]


@contextlib.contextmanager
def live_oncallm(workdir: Path, **settings: str) -> Iterator[LiveOncallm]:
    """Start ``oncallm serve`` (with its worker) in ``workdir``; stop it afterwards.

    The jobs poll interval is short so a triage starts within a tenth of a second.
    The server runs as a subprocess, so its coverage is measured as the other e2e tests'.
    ``settings`` are more ``section__key`` settings (``llm__provider="openai-compatible"``).
    """
    clusters = {SAMPLE_CLUSTER_NAME: {"snapshot": str(sample_cluster())}}
    env = oncallm_env(
        f"sqlite+aiosqlite:///{workdir / 'oncallm.db'}",
        jobs__poll_interval_seconds="0.1",
        jobs__backoff_base_seconds="0.05",
        kubernetes__clusters=json.dumps(clusters),
        **settings,
    )
    process = start_server(env, workdir)
    try:
        yield LiveOncallm(process)
    finally:
        process.stop(signal.SIGTERM)
