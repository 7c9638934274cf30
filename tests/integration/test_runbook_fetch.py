"""Fetching an alert's runbook_url from a real HTTP server on loopback.

The server is the stdlib ``ThreadingHTTPServer`` in a thread; it counts requests per path
and records whether a large body was sent in full, so the tests can tell what OncallM
really asked for and read.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from oncallm.sources.runbook_fetch import RunbookFetcher, html_to_text

MARKDOWN = """# Checkout service runbook

Owned by the payments team.

## Database connections exhausted

Symptoms: `too many connections` from postgres. Restart the pgbouncer pod.

## Memory

If the pod is OOMKilled, raise the memory limit of deployment/checkout to 1Gi.
"""

HTML = """<html><head><title>t</title><style>body {color: red}</style>
<script>alert("no")</script></head><body>
<h1>Orders runbook</h1><p>Check the <b>queue depth</b> first.</p>
<h2>Certificate expired</h2><ul><li>Renew with cert-manager</li><li>Restart ingress</li></ul>
</body></html>"""

BIG_SIZE = 20 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hits: Counter[str]
    big_sent_in_full: bool | None

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client hanging up mid-body is what the size test wants


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        self.server.hits[path] += 1
        if path == "/checkout.md":
            self._send(200, MARKDOWN.encode(), "text/markdown; charset=utf-8")
        elif path == "/orders.html":
            self._send(200, HTML.encode(), "text/html; charset=utf-8")
        elif path == "/big":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(BIG_SIZE))
            self.end_headers()
            chunk = (b"## filler line of a very long runbook\n" * 1700)[: 64 * 1024]
            try:
                for _ in range(BIG_SIZE // len(chunk)):
                    self.wfile.write(chunk)
                self.server.big_sent_in_full = True
            except OSError:
                self.server.big_sent_in_full = False
                self.close_connection = True
        elif path == "/slow":
            time.sleep(3)
            self._send(200, b"# late\n", "text/plain")
        elif path == "/pdf":
            self._send(200, b"%PDF-1.4", "application/pdf")
        elif path == "/elsewhere":
            self._send(302, b"", "text/plain", Location="http://intranet.corp/secret")
        elif path == "/moved":
            self._send(301, b"", "text/plain", Location="/checkout.md")
        else:
            self._send(404, b"not found", "text/plain")


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.hits = Counter()
    srv.big_sent_in_full = None
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


def _base(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _fetcher(**kwargs: Any) -> RunbookFetcher:
    options: dict[str, Any] = {
        "allowed_hosts": ["http://127.0.0.1"],
        "timeout_seconds": 2.0,
        "max_bytes": 64 * 1024,
        "cache_ttl_seconds": 600,
    }
    options.update(kwargs)
    return RunbookFetcher(**options)


async def test_allowed_host_is_fetched_once_and_then_cached(server: _Server) -> None:
    fetcher = _fetcher()
    url = f"{_base(server)}/checkout.md"
    try:
        first = await fetcher.fetch(url, "OOMKilled memory limit")
        assert first.status == "fetched", first.reason
        assert first.match is not None
        assert first.match.why == "url"
        assert first.match.source == f"{url}#memory"
        assert "raise the memory limit" in first.match.excerpt
        second = await fetcher.fetch(url, "too many connections postgres")
        assert second.cached
        assert second.match is not None
        assert second.match.source == f"{url}#database-connections-exhausted"
        assert server.hits["/checkout.md"] == 1  # the second search made no request
    finally:
        await fetcher.aclose()


async def test_without_matching_text_the_start_of_the_document_is_the_excerpt(
    server: _Server,
) -> None:
    fetcher = _fetcher()
    try:
        outcome = await fetcher.fetch(f"{_base(server)}/checkout.md")
        assert outcome.match is not None
        assert outcome.match.title == "Checkout service runbook"
        assert outcome.match.excerpt.startswith("# Checkout service runbook")
    finally:
        await fetcher.aclose()


@pytest.mark.parametrize(
    ("allowed", "reason"),
    [
        ([], "not in runbooks.allowed_hosts"),
        (["runbooks.example.com", "*.example.com"], "not in runbooks.allowed_hosts"),
        (["127.0.0.1"], "http to 127.0.0.1 is not allowed"),  # https-only entry
    ],
)
async def test_disallowed_host_is_not_requested(
    server: _Server, allowed: list[str], reason: str
) -> None:
    fetcher = _fetcher(allowed_hosts=allowed)
    try:
        outcome = await fetcher.fetch(f"{_base(server)}/checkout.md")
        assert outcome.status == "skipped"
        assert reason in (outcome.reason or "")
        assert outcome.gap is None  # policy, not a failure
        assert server.hits["/checkout.md"] == 0
    finally:
        await fetcher.aclose()


def test_host_patterns() -> None:
    fetcher = RunbookFetcher(["*.example.com", "http://wiki.internal", "docs.corp:8443"])
    assert fetcher.allows("https://runbooks.example.com/a.md")
    assert fetcher.allows("https://a.b.example.com/a.md")
    assert not fetcher.allows("https://example.com/a.md")
    assert not fetcher.allows("https://evilexample.com/a.md")
    assert not fetcher.allows("http://runbooks.example.com/a.md")
    assert fetcher.allows("http://wiki.internal/page")
    assert fetcher.allows("https://wiki.internal/page")
    assert fetcher.allows("https://docs.corp:8443/x")
    assert not fetcher.allows("https://docs.corp/x")
    assert not fetcher.allows("https://user:pw@runbooks.example.com/a.md")
    assert not fetcher.allows("file:///etc/passwd")


async def test_too_large_body_is_cut_at_max_bytes(server: _Server) -> None:
    fetcher = _fetcher(max_bytes=100_000)
    try:
        outcome = await fetcher.fetch(f"{_base(server)}/big")
        assert outcome.status == "fetched"
        assert outcome.truncated
        assert outcome.bytes_read == 100_000
        assert outcome.match is not None
        assert len(outcome.match.excerpt) <= 1200
        deadline = time.monotonic() + 10
        while server.big_sent_in_full is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.big_sent_in_full is False  # OncallM hung up instead of reading 20 MB
    finally:
        await fetcher.aclose()


async def test_slow_server_times_out_with_a_reason(server: _Server) -> None:
    fetcher = _fetcher(timeout_seconds=0.5)
    try:
        started = time.monotonic()
        outcome = await fetcher.fetch(f"{_base(server)}/slow")
        assert time.monotonic() - started < 2
        assert outcome.status == "error"
        assert outcome.gap == "timed out after 0.5s"
    finally:
        await fetcher.aclose()


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/nope.md", "HTTP 404 Not Found"),
        ("/pdf", "unsupported content type application/pdf"),
        ("/elsewhere", "redirected: host intranet.corp is not in runbooks.allowed_hosts"),
    ],
)
async def test_failures_are_reasons_not_exceptions(server: _Server, path: str, reason: str) -> None:
    fetcher = _fetcher()
    try:
        outcome = await fetcher.fetch(f"{_base(server)}{path}")
        assert outcome.status == "error"
        assert outcome.gap == reason
        assert outcome.match is None
    finally:
        await fetcher.aclose()


async def test_redirect_within_allowed_hosts_is_followed(server: _Server) -> None:
    fetcher = _fetcher()
    try:
        outcome = await fetcher.fetch(f"{_base(server)}/moved")
        assert outcome.status == "fetched"
        assert outcome.match is not None
        assert outcome.match.source.startswith(f"{_base(server)}/checkout.md")
    finally:
        await fetcher.aclose()


async def test_html_is_reduced_to_text(server: _Server) -> None:
    fetcher = _fetcher()
    try:
        outcome = await fetcher.fetch(f"{_base(server)}/orders.html", "CertificateError expired")
        assert outcome.match is not None
        assert outcome.match.source.endswith("#certificate-expired")
        assert outcome.match.excerpt == (
            "## Certificate expired\n\n- Renew with cert-manager\n- Restart ingress"
        )
    finally:
        await fetcher.aclose()
    text = html_to_text(HTML)
    assert "alert(" not in text
    assert "color" not in text
    assert "Check the queue depth first." in text
