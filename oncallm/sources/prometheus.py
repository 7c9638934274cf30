"""Prometheus HTTP API v1 as a :class:`MetricsSource`: Prometheus, Thanos, Mimir, VictoriaMetrics.

One :class:`PrometheusSource` per configured endpoint holds one ``httpx.AsyncClient``
(timeout, auth, TLS, headers) and one circuit breaker, and is shared by every triage that
reads that endpoint; :class:`PrometheusSources` picks the endpoint for an alert's cluster.

Failure policy, because a triage must complete even when Prometheus does not answer:

* Every failure is ONE :class:`MetricsError` whose text names the endpoint and what to do
  ("prometheus http://prom:9090: connection refused — is it running?"), never a
  credential: triage shows it to the user as a gap.
* Connection errors, 5xx and 429 are retried once after a short pause; a timeout is not
  (it already cost ``timeout_seconds``), so a query never takes much more than twice the
  timeout.
* After ``breaker_failures`` consecutive queries that failed because of the *server*
  (unreachable, timing out, 5xx), the breaker opens and queries fail at once without a
  request. A query Prometheus rejects (``bad_data``), a 401 or an HTML login page is the
  query's or the configuration's fault: it is reported, but says nothing about the
  server's health.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import socket
import ssl
import time
from collections.abc import Generator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_fixed,
)

from oncallm import __version__
from oncallm.breaker import CircuitBreaker, Clock
from oncallm.config import ClusterSettings, KubernetesSettings
from oncallm.config_metrics import MetricsSettings, PrometheusSettings
from oncallm.errors import SourceError
from oncallm.sources.clusters import ClusterSources
from oncallm.sources.metrics import MetricsError, MetricsSource, Series
from oncallm.sources.snapshot_metrics import SnapshotMetrics, parse_api_data, unix_seconds

__all__ = ["PrometheusSource", "PrometheusSources"]

log = structlog.get_logger("oncallm.metrics")

# Grafana switches to POST above this length: proxies commonly cap request lines at 4-8 KiB.
LONG_QUERY_CHARS = 2000
RETRY_PAUSE_SECONDS = 0.2
_ERROR_BODY_CHARS = 300


class _ServerFailure(MetricsError):
    """The server, not the query, failed (unreachable, timeout, 5xx): counts for the breaker."""


class _Retryable(Exception):
    """One attempt failed in a way a second attempt may not (refused connection, 5xx, 429)."""

    def __init__(self, error: MetricsError) -> None:
        super().__init__(error.detail)
        self.error = error


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _without_userinfo(url: str) -> str:
    """The URL as shown in messages and links: a ``user:pass@`` part is dropped."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def link_base_from_generator(generator_url: str | None) -> str | None:
    """Where the UI that fired the alert lives: ``generatorURL`` without ``/graph?...``.

    Prometheus builds ``generatorURL`` from its ``--web.external-url``, so this is the
    address users can open, path prefix included; other generators (vmalert, Thanos
    Ruler) give at least their scheme and host.
    """
    if not generator_url:
        return None
    parts = urlsplit(generator_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    path = parts.path
    path = path[: -len("/graph")] if path.endswith("/graph") else ""
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], path, "", ""))


class _BearerAuth(httpx.Auth):
    """``Authorization: Bearer``; a token file is re-read per request (rotated SA tokens)."""

    def __init__(self, token: str | None, token_file: Path | None, label: str) -> None:
        self._token, self._token_file, self._label = token, token_file, label

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._token
        if self._token_file is not None:
            try:
                token = self._token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise MetricsError(
                    f"{self._label}: cannot read bearer_token_file {self._token_file}: "
                    f"{exc.strerror}"
                ) from None
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def _tls(settings: PrometheusSettings, label: str) -> ssl.SSLContext | bool:
    if settings.insecure_skip_verify:
        return False
    if settings.ca_file is None and settings.cert_file is None:
        return True  # httpx's default: the certifi bundle
    try:
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
        if settings.cert_file is not None and settings.key_file is not None:
            context.load_cert_chain(str(settings.cert_file), str(settings.key_file))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        files = ", ".join(
            str(p) for p in (settings.ca_file, settings.cert_file, settings.key_file) if p
        )
        raise MetricsError(f"{label}: cannot load TLS files ({files}): {reason}") from None
    return context


class PrometheusSource:
    """One Prometheus-compatible endpoint, with its HTTP client and its circuit breaker.

    ``transport`` replaces the network (tests wrap the real one to count requests); TLS
    settings then belong to that transport, as httpx applies ``verify`` only to its own;
    ``generator_url`` is an alert's ``generatorURL``, the default base of graph links
    when ``link_url`` is not configured (see :meth:`linked_to` for a per-alert view).
    ``config_key`` names the settings in messages (``metrics.clusters.eu-1``).
    """

    def __init__(
        self,
        settings: PrometheusSettings,
        *,
        breaker_failures: int,
        breaker_reset_seconds: float,
        name: str = "prometheus",
        transport: httpx.AsyncBaseTransport | None = None,
        generator_url: str | None = None,
        config_key: str = "metrics.prometheus",
        clock: Clock = time.monotonic,
    ) -> None:
        if not settings.url:
            raise MetricsError(f"{config_key}.url is not set")
        self.name = name
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self.config_key = config_key
        self.label = f"{name} {_without_userinfo(settings.url)}"
        self._generator_base = link_base_from_generator(generator_url)
        self._owns_client = True
        self.breaker = CircuitBreaker(
            self.label,
            failure_threshold=breaker_failures,
            reset_seconds=breaker_reset_seconds,
            refusal=MetricsError,
            is_failure=lambda exc: isinstance(exc, _ServerFailure),
            clock=clock,
        )
        auth: httpx.Auth | None = None
        if settings.bearer_token is not None or settings.bearer_token_file is not None:
            token = settings.bearer_token.get_secret_value() if settings.bearer_token else None
            auth = _BearerAuth(token, settings.bearer_token_file, self.label)
        elif settings.username and settings.password:
            auth = httpx.BasicAuth(settings.username, settings.password.get_secret_value())
        self._client = httpx.AsyncClient(
            auth=auth,
            verify=_tls(settings, self.label),
            timeout=httpx.Timeout(settings.timeout_seconds),
            headers={
                "User-Agent": f"oncallm/{__version__}",
                "Accept": "application/json",
                **settings.headers,
            },
            transport=transport,
            follow_redirects=False,
        )

    def linked_to(self, generator_url: str | None) -> PrometheusSource:
        """This endpoint (same client, same breaker) linking graphs to the alert's UI.

        Sources are shared per endpoint while ``generatorURL`` is per alert, so triage asks
        for a view; closing a view does nothing, the endpoint's owner closes the client.
        """
        view = copy.copy(self)
        view._generator_base = link_base_from_generator(generator_url) or self._generator_base
        view._owns_client = False
        return view

    # --- MetricsSource --------------------------------------------------------------------

    async def query_range(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        params = {
            "query": query,
            "start": _number(unix_seconds(start)),
            "end": _number(unix_seconds(end)),
            "step": _number(max(step.total_seconds(), 0.001)),
        }
        return await self._ask("query_range", params)

    async def query(self, query: str, at: datetime) -> list[Series]:
        return await self._ask("query", {"query": query, "time": _number(unix_seconds(at))})

    def graph_url(self, query: str, start: datetime, end: datetime) -> str | None:
        """The classic ``/graph?g0.expr=`` link, which Prometheus' old and new UIs and
        Thanos Query all open as the same graph."""
        base = self.settings.link_url or self._generator_base or _without_userinfo(self.url)
        seconds = max(1, round(unix_seconds(end) - unix_seconds(start)))
        end_utc = (end if end.tzinfo else end.replace(tzinfo=UTC)).astimezone(UTC)
        params = {
            "g0.expr": query,
            "g0.tab": "0",
            "g0.range_input": f"{seconds}s",
            "g0.end_input": f"{end_utc:%Y-%m-%d %H:%M:%S}",
        }
        return f"{base.rstrip('/')}/graph?{urlencode(params, quote_via=quote)}"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # --- one query --------------------------------------------------------------------

    async def _ask(self, endpoint: str, params: dict[str, str]) -> list[Series]:
        async with self.breaker.call():
            answer = await self._with_retry(endpoint, params)
        for warning in answer.get("warnings") or []:
            log.warning(
                "metrics query warning",
                endpoint=self.label,
                query=params["query"][:500],
                warning=str(warning),
            )
        try:
            return parse_api_data(answer.get("data"))
        except (ValueError, TypeError, KeyError) as exc:
            raise MetricsError(f"{self.label}: unexpected answer to {endpoint}: {exc}") from None

    async def _with_retry(self, endpoint: str, params: dict[str, str]) -> Mapping[str, Any]:
        timeout = self.settings.timeout_seconds
        retrying = AsyncRetrying(
            # Two attempts, and no second one once a timeout's worth has gone by: the whole
            # query stays within about twice the timeout.
            stop=stop_after_attempt(2) | stop_after_delay(timeout),
            wait=wait_fixed(RETRY_PAUSE_SECONDS),
            retry=retry_if_exception(lambda exc: isinstance(exc, _Retryable)),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(endpoint, params)
        except _Retryable as exc:
            raise exc.error from None
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    async def _attempt(self, endpoint: str, params: dict[str, str]) -> Mapping[str, Any]:
        url = f"{self.url}/api/v1/{endpoint}"
        timeout = self.settings.timeout_seconds
        try:
            # httpx's timeout is per phase (connect, each read); a server dripping bytes
            # could exceed it many times over, so the whole exchange is bounded too.
            async with asyncio.timeout(timeout):
                if len(params["query"]) > LONG_QUERY_CHARS:
                    response = await self._client.post(url, data=params)
                else:
                    response = await self._client.get(url, params=params)
        except (TimeoutError, httpx.TimeoutException):
            raise _ServerFailure(f"{self.label}: timed out after {timeout:g} s") from None
        except httpx.ConnectError as exc:
            error = self._connect_error(exc)
            if isinstance(error, _ServerFailure):
                raise _Retryable(error) from None
            raise error from None
        except ssl.SSLError as exc:
            # With TLS 1.3 a refused client certificate arrives as an alert on the first
            # read, after the handshake, and httpx lets the ssl error through unwrapped.
            raise self._tls_error(exc) from None
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise _Retryable(_ServerFailure(f"{self.label}: connection failed: {reason}")) from None
        return self._read(response)

    def _connect_error(self, exc: httpx.ConnectError) -> MetricsError:
        # httpx wraps the socket's own error a few levels down (anyio's "All connection
        # attempts failed" hides ConnectionRefusedError); the innermost one says what to do.
        chain: list[BaseException] = []
        link: BaseException | None = exc
        while link is not None and len(chain) < 10:
            chain.append(link)
            link = link.__cause__ or link.__context__
        verify = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
        if verify is not None or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            why = getattr(verify, "verify_message", None) or "certificate verify failed"
            return MetricsError(
                f"{self.label}: TLS certificate not trusted ({why}): set "
                f"{self.config_key}.ca_file to the CA that signed it"
            )
        tls = next((e for e in chain if isinstance(e, ssl.SSLError)), None)
        if tls is not None:
            return self._tls_error(tls)
        if any(isinstance(e, ConnectionRefusedError) for e in chain):
            return _ServerFailure(f"{self.label}: connection refused — is it running?")
        if any(isinstance(e, socket.gaierror) for e in chain):
            host = urlsplit(self.url).hostname
            return _ServerFailure(f"{self.label}: cannot resolve host {host}")
        reason = str(chain[-1]) or type(chain[-1]).__name__
        return _ServerFailure(f"{self.label}: cannot connect: {reason}")

    def _tls_error(self, exc: ssl.SSLError) -> MetricsError:
        reason = str(getattr(exc, "reason", None) or exc)
        if "CERTIFICATE_REQUIRED" in reason or "BAD_CERTIFICATE" in reason:
            return MetricsError(
                f"{self.label}: the server refused our TLS client certificate ({reason}): "
                f"check {self.config_key}.cert_file / key_file"
            )
        return MetricsError(f"{self.label}: TLS handshake failed: {reason}")

    def _read(self, response: httpx.Response) -> Mapping[str, Any]:
        status = response.status_code
        reason = response.reason_phrase or ""
        body: Any = None
        with contextlib.suppress(ValueError):
            body = response.json()
        if isinstance(body, Mapping) and body.get("status") == "error":
            # Prometheus' own error: the most precise message there is (bad_data, timeout).
            message = f"{body.get('errorType') or 'error'}: {body.get('error') or ''}".strip()
            error = f"{self.label}: {message[: _ERROR_BODY_CHARS * 2]}"
            if status >= 500:
                self._raise_server(status, error)
            raise MetricsError(error)
        if status in (401, 403):
            auth = f"{self.config_key}.bearer_token / username"
            raise MetricsError(f"{self.label}: {status} {reason}: check {auth}")
        if status == 429 or status >= 500:
            self._raise_server(status, f"{self.label}: {status} {reason}{self._excerpt(response)}")
        if status == 404:
            raise MetricsError(
                f"{self.label}: 404 Not Found at {response.request.url.path}: is "
                f"{self.config_key}.url the API root, with its path prefix?"
            )
        if not 200 <= status < 300:
            raise MetricsError(f"{self.label}: {status} {reason}{self._excerpt(response)}")
        if not isinstance(body, Mapping):
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise MetricsError(
                f"{self.label}: answered {status} with {kind}, not Prometheus JSON "
                "(a login page or proxy in front of it? check the URL and credentials)"
            )
        if body.get("status") != "success":
            raise MetricsError(f"{self.label}: answer status is {body.get('status')!r}")
        return body

    @staticmethod
    def _raise_server(status: int, message: str) -> NoReturn:
        failure: MetricsError = _ServerFailure(message) if status >= 500 else MetricsError(message)
        raise _Retryable(failure)

    @staticmethod
    def _excerpt(response: httpx.Response) -> str:
        text = " ".join(response.text.split())[:_ERROR_BODY_CHARS]
        return f": {text}" if text else ""


class PrometheusSources:
    """The metrics source for an alert's cluster, one per endpoint, built on first use.

    Order: a ``metrics.clusters`` endpoint for the cluster; else, for a cluster configured
    with ``snapshot:`` in ``kubernetes.clusters``, the snapshot's ``metrics/``; else
    ``metrics.prometheus``; else None (metrics are not gathered, which is not a gap).
    """

    def __init__(
        self,
        settings: MetricsSettings,
        kubernetes: KubernetesSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._kubernetes = kubernetes
        self._clusters = ClusterSources(kubernetes)  # only for its label → cluster rule
        self._transport = transport
        self._sources: dict[str, MetricsSource] = {}

    def source_for(
        self, cluster: str | None, generator_url: str | None = None
    ) -> MetricsSource | None:
        """The source answering for ``cluster`` (the alert's label), or None.

        ``generator_url`` (the alert's) makes graph links point at the UI that fired it.
        Raises MetricsError when the endpoint cannot be built (an unreadable CA file).
        """
        if not self._settings.enabled:
            return None
        resolved = self._resolved_cluster(cluster)
        for name in dict.fromkeys(n for n in (cluster, resolved) if n):
            endpoint = self._settings.clusters.get(name)
            if endpoint is not None and endpoint.url:
                return self._live(f"metrics.clusters.{name}", endpoint, generator_url)
        snapshot = self._snapshot_dir(resolved)
        if snapshot is not None:
            key = f"snapshot:{snapshot}"
            if key not in self._sources:
                self._sources[key] = SnapshotMetrics(snapshot / "metrics")
            return self._sources[key]
        if self._settings.prometheus.url:
            return self._live("metrics.prometheus", self._settings.prometheus, generator_url)
        return None

    def _resolved_cluster(self, cluster: str | None) -> str | None:
        try:
            return self._clusters.cluster_for(cluster)
        except SourceError:
            return None  # the cluster source reports that; metrics fall back to the default

    def _snapshot_dir(self, cluster: str | None) -> Path | None:
        settings: ClusterSettings | None = (
            self._kubernetes.clusters.get(cluster) if cluster is not None else None
        )
        return settings.snapshot if settings is not None else None

    def _live(
        self, key: str, endpoint: PrometheusSettings, generator_url: str | None
    ) -> PrometheusSource:
        source = self._sources.get(key)
        if source is None:
            source = PrometheusSource(
                endpoint,
                breaker_failures=self._settings.breaker_failures,
                breaker_reset_seconds=self._settings.breaker_reset_seconds,
                transport=self._transport,
                config_key=key,
            )
            self._sources[key] = source
        assert isinstance(source, PrometheusSource)
        return source.linked_to(generator_url) if generator_url else source

    async def aclose(self) -> None:
        """Close every source built so far (their HTTP clients)."""
        sources, self._sources = list(self._sources.values()), {}
        for source in sources:
            with contextlib.suppress(Exception):  # one failing close must not leak the rest
                await source.aclose()
