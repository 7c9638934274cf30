"""Fetching an alert's ``runbook_url``: only from allowed hosts, bounded, cached.

A ``runbook_url`` annotation points anywhere its author chose, and OncallM runs inside
the cluster, so fetching it blindly would let an alert make OncallM call internal
services. :class:`RunbookFetcher` therefore fetches only URLs whose host is on an
allow-list (exact host or ``*.domain``), over https unless the entry says ``http://host``,
follows redirects only to allowed hosts, stops reading at ``max_bytes`` and gives up after
``timeout_seconds``. Markdown, plain text and HTML (tags stripped with the stdlib parser)
become one excerpt, preferring the section that best matches the finding text.

Nothing here raises for a bad URL or a failed fetch: the outcome carries a short reason,
which the triage records as a gap (errors) or ignores (a host that is not allowed).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpx

from oncallm.sources.runbook_parse import excerpt, slugify, split_sections
from oncallm.sources.runbooks import RunbookMatch, query_terms

# A failed fetch is remembered briefly so an alert storm does not wait on a dead wiki
# once per alert, yet a transient error does not stick for the whole cache TTL.
ERROR_CACHE_SECONDS = 30.0
MAX_REDIRECTS = 3
CACHE_MAX_URLS = 256


@dataclass(frozen=True)
class FetchOutcome:
    """What fetching one runbook URL gave: a match, or why not."""

    url: str
    status: Literal["fetched", "skipped", "error"]
    match: RunbookMatch | None = None
    reason: str | None = None  # for skipped ("host not allowed") and error ("HTTP 404")
    truncated: bool = False  # the body was longer than max_bytes
    bytes_read: int = 0
    cached: bool = False

    @property
    def gap(self) -> str | None:
        """The reason when the fetch failed (a gap on the triage); None otherwise."""
        return self.reason if self.status == "error" else None


class _TextOfHtml(HTMLParser):
    """HTML to Markdown-ish text: headings become ``##`` lines, scripts and styles vanish."""

    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "pre", "table", "ul", "ol", "section"})
    _SKIP = frozenset({"script", "style", "head", "noscript", "svg", "nav"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * min(int(tag[1]), 2) + " ")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(self._skipping - 1, 0)
        elif re.fullmatch(r"h[1-6]", tag) or (tag in self._BLOCKS and tag != "li"):
            self.parts.append("\n")  # a list item already starts its own line

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    lines = [re.sub(r"[ \t\r\f\v]+", " ", ln).strip() for ln in "".join(parser.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _host_allowed(url: str, allowed: Sequence[str]) -> str | None:
    """None when ``url`` may be fetched, else the reason it may not."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        return f"not an http(s) URL: {url}"
    if parts.username or parts.password:
        return "URL carries credentials; not fetched"
    port = parts.port
    for entry in allowed:
        entry_scheme, _, bare = entry.lower().rpartition("://")
        entry_host, _, entry_port = bare.partition(":")
        if entry_port and str(port or (443 if scheme == "https" else 80)) != entry_port:
            continue
        if entry_host.startswith("*."):
            host_ok = host.endswith(entry_host[1:])
        else:
            host_ok = host == entry_host
        if host_ok and (scheme == "https" or entry_scheme == "http"):
            return None
        if host_ok:
            return f"http to {host} is not allowed: list it as http://{host} to allow it"
    return f"host {host} is not in runbooks.allowed_hosts"


class RunbookFetcher:
    """Fetches runbook URLs from allowed hosts into :class:`RunbookMatch` excerpts."""

    def __init__(
        self,
        allowed_hosts: Sequence[str],
        timeout_seconds: float = 5.0,
        max_bytes: int = 512 * 1024,
        cache_ttl_seconds: float = 600.0,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed_hosts = list(allowed_hosts)
        self.timeout_seconds = timeout_seconds
        self.max_bytes = max_bytes
        self.cache_ttl_seconds = cache_ttl_seconds
        self._client = client or httpx.AsyncClient(
            timeout=timeout_seconds,
            follow_redirects=False,  # each hop is checked against the allow-list below
            headers={"Accept": "text/markdown, text/plain, text/html;q=0.9"},
        )
        self._owns_client = client is None
        self._clock = clock
        self._cache: dict[str, tuple[float, FetchOutcome]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def allows(self, url: str) -> bool:
        return _host_allowed(url, self.allowed_hosts) is None

    async def fetch(self, url: str, text: str = "") -> FetchOutcome:
        """Fetch ``url`` (or reuse a cached copy); ``text`` picks the most relevant section."""
        url = url.strip()
        refused = _host_allowed(url, self.allowed_hosts)
        if refused is not None:
            return FetchOutcome(url, "skipped", reason=refused)
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:  # concurrent triages of one alert share one request
            cached = self._cache.get(url)
            if cached is not None and cached[0] > self._clock():
                outcome = replace(cached[1], cached=True)
            else:
                outcome = await self._fetch_bounded(url)
                ttl = self.cache_ttl_seconds
                if outcome.status == "error":
                    ttl = min(ttl, ERROR_CACHE_SECONDS)
                if ttl > 0:
                    self._remember(url, ttl, outcome)
        if outcome.status != "fetched" or outcome.match is None:
            return outcome
        return replace(outcome, match=_choose_section(outcome.match, text))

    def _remember(self, url: str, ttl: float, outcome: FetchOutcome) -> None:
        now = self._clock()
        if len(self._cache) >= CACHE_MAX_URLS:
            # Bounded memory: expired entries go first, then the ones expiring soonest.
            for key, (expires, _) in sorted(self._cache.items(), key=lambda kv: kv[1][0]):
                if len(self._cache) < CACHE_MAX_URLS and expires > now:
                    break
                del self._cache[key]
                lock = self._locks.get(key)
                if lock is not None and not lock.locked():
                    del self._locks[key]
        self._cache[url] = (now + ttl, outcome)

    async def _fetch_bounded(self, url: str) -> FetchOutcome:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await self._fetch(url)
        except TimeoutError:
            return FetchOutcome(url, "error", reason=f"timed out after {self.timeout_seconds:g}s")
        except httpx.TimeoutException:
            return FetchOutcome(url, "error", reason=f"timed out after {self.timeout_seconds:g}s")
        except httpx.HTTPError as exc:
            return FetchOutcome(url, "error", reason=f"{type(exc).__name__}: {exc}"[:200])

    async def _fetch(self, url: str) -> FetchOutcome:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            async with self._client.stream("GET", current) as response:
                if response.is_redirect:
                    target = urljoin(current, response.headers.get("location", ""))
                    refused = _host_allowed(target, self.allowed_hosts)
                    if refused is not None:
                        return FetchOutcome(url, "error", reason=f"redirected: {refused}")
                    current = target
                    continue
                if response.status_code != 200:
                    reason = f"HTTP {response.status_code} {response.reason_phrase}".strip()
                    return FetchOutcome(url, "error", reason=reason)
                body, truncated = bytearray(), False
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= self.max_bytes:
                        truncated = len(body) > self.max_bytes or _more_expected(response, body)
                        del body[self.max_bytes :]
                        break  # leaving the stream closes the connection unread
                content_type = response.headers.get("content-type", "").lower()
                encoding = response.encoding or "utf-8"
            return _outcome(url, current, bytes(body), content_type, encoding, truncated)
        return FetchOutcome(url, "error", reason=f"more than {MAX_REDIRECTS} redirects")


def _more_expected(response: httpx.Response, body: bytearray) -> bool:
    length = response.headers.get("content-length", "")
    return not length.isdigit() or int(length) > len(body)


def _outcome(
    url: str, final_url: str, body: bytes, content_type: str, encoding: str, truncated: bool
) -> FetchOutcome:
    try:
        decoded = body.decode(encoding, errors="replace")
    except LookupError:
        decoded = body.decode("utf-8", errors="replace")
    kind = content_type.split(";")[0].strip()
    if kind in ("text/html", "application/xhtml+xml") or (not kind and decoded.lstrip()[:1] == "<"):
        text = html_to_text(decoded)
    elif kind.startswith("text/") or kind in ("", "application/markdown"):
        text = decoded
    else:
        return FetchOutcome(url, "error", reason=f"unsupported content type {kind}")
    title_line = next((ln for ln in text.splitlines() if ln.strip()), final_url)
    title = re.sub(r"^#+\s*", "", title_line).strip()[:120] or final_url
    match = RunbookMatch(title=title, source=final_url, excerpt=text, score=0.0, why="url")
    return FetchOutcome(url, "fetched", match=match, truncated=truncated, bytes_read=len(body))


def _choose_section(whole: RunbookMatch, text: str) -> RunbookMatch:
    """The section with the most finding terms in it, else the start of the document."""
    lines = whole.excerpt.splitlines()
    sections, _ = split_sections(lines, 1, whole.title)
    terms = query_terms(text)
    best, best_hits = None, 0
    for section in sections:
        lowered = section.text.lower()
        hits = sum(1 for t in terms if t in lowered)
        if hits > best_hits:
            best, best_hits = section, hits
    base = whole.source.split("#", 1)[0]
    if best is None:
        return replace(whole, excerpt=excerpt(whole.excerpt))
    anchor = f"#{best.anchor}" if best.anchor != slugify(whole.title) else ""
    return replace(
        whole,
        source=base + anchor,
        excerpt=excerpt(best.text),
        score=float(best_hits),
        heading=best.heading,
    )
