"""The Prometheus metrics source against a real Prometheus serving backfilled history.

Prometheus (Debian package) serves TSDB blocks that ``promtool`` built from generated
series (tests/support/prometheus_tsdb.py): a memory ramp to the limit, a throttled
container, a filling volume. The source must return exactly those points, compute what
PromQL computes, and turn every way Prometheus can fail — down, slow, rejecting the
query, refusing the credentials, an untrusted certificate, a proxy's login page — into
one readable error that names the endpoint and never a secret, with the circuit breaker
refusing at once while the endpoint is down. What Prometheus cannot show (a slow answer,
the headers a client sent, a 503) comes from a tiny HTTP server speaking its API.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from oncallm.breaker import BreakerState
from oncallm.config_metrics import PrometheusSettings
from oncallm.sources.metrics import MetricsError, MetricsSource
from oncallm.sources.prometheus import PrometheusSource
from tests.support.prometheus_tsdb import (
    CPU_LABELS,
    CPU_THROTTLED_RATIO,
    CPU_USAGE_CORES,
    MEMORY_LABELS,
    MEMORY_LIMIT_BYTES,
    SCENARIO_END,
    SPAN,
    VOLUME_CAPACITY_BYTES,
    VOLUME_END_BYTES,
    BackfilledPrometheus,
    LocalCA,
    backfilled_prometheus,
    bcrypt_hash,
    make_test_ca,
    memory_oom_time,
    memory_value,
    timestamps,
)

pytestmark = pytest.mark.services

START = SCENARIO_END - SPAN
STEP = timedelta(seconds=30)
USER, PASSWORD = "oncallm", "pr0m-s3cret-pw"
THROTTLING = (
    'sum(increase(container_cpu_cfs_throttled_periods_total{namespace="pricing"}[5m]))'
    ' / sum(increase(container_cpu_cfs_periods_total{namespace="pricing"}[5m]))'
)


# --- real Prometheus servers, one per way of reaching it ---------------------------------


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackfilledPrometheus]:
    with backfilled_prometheus(tmp_path_factory.mktemp("prom")) as server:
        yield server


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return make_test_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, test_ca: LocalCA
) -> Iterator[BackfilledPrometheus]:
    """HTTPS with a certificate from a private CA, and basic auth, via --web.config.file."""
    web_config = {
        "tls_server_config": {
            "cert_file": str(test_ca.server_cert),
            "key_file": str(test_ca.server_key),
        },
        "basic_auth_users": {USER: bcrypt_hash(PASSWORD)},
    }
    with backfilled_prometheus(
        tmp_path_factory.mktemp("secured"),
        web_config=web_config,
        tls=test_ca,
        ready_auth=(USER, PASSWORD),
    ) as server:
        yield server


class CountingTransport(httpx.AsyncBaseTransport):
    """The real network, counting the requests that reach it."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SourceFactory = Callable[..., PrometheusSource]


@pytest.fixture
async def make_source() -> AsyncIterator[SourceFactory]:
    """Build sources (settings as keywords) and close them all after the test."""
    made: list[PrometheusSource] = []

    def make(
        url: str,
        *,
        breaker_failures: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        generator_url: str | None = None,
        **settings: Any,
    ) -> PrometheusSource:
        source = PrometheusSource(
            PrometheusSettings(url=url, **settings),
            breaker_failures=breaker_failures,
            breaker_reset_seconds=30,
            transport=transport,
            clock=clock,
            generator_url=generator_url,
        )
        made.append(source)
        return source

    yield make
    for source in made:
        await source.aclose()


# --- answers -------------------------------------------------------------------------------


async def test_range_query_returns_the_backfilled_memory_ramp(
    prom: BackfilledPrometheus, make_source: SourceFactory
) -> None:
    source = make_source(prom.url)
    assert isinstance(source, MetricsSource)
    [series] = await source.query_range(
        'container_memory_working_set_bytes{namespace="shop"}', START, SCENARIO_END, STEP
    )
    assert {k: series.labels[k] for k in MEMORY_LABELS} == MEMORY_LABELS
    assert [t for t, _ in series.points] == timestamps()
    assert list(series.values) == [memory_value(t) for t in timestamps()]
    peak = max(series.points, key=lambda p: p[1])
    assert peak == (memory_oom_time(), MEMORY_LIMIT_BYTES)  # the leak reaches the limit
    after = [v for t, v in series.points if t > memory_oom_time()]
    assert after[0] < MEMORY_LIMIT_BYTES / 2  # ... and the OOM kill drops it


async def test_rate_and_ratio_queries_see_the_throttled_container(
    prom: BackfilledPrometheus, make_source: SourceFactory
) -> None:
    source = make_source(prom.url)
    window = (SCENARIO_END - timedelta(hours=1), SCENARIO_END, timedelta(minutes=1))
    [ratio] = await source.query_range(THROTTLING, *window)
    assert len(ratio.points) == 61
    assert all(v == pytest.approx(CPU_THROTTLED_RATIO, abs=0.005) for v in ratio.values)

    usage = await source.query_range(
        f'sum by (pod) (rate(container_cpu_usage_seconds_total{{pod="{CPU_LABELS["pod"]}"}}[5m]))',
        *window,
    )
    assert usage[0].labels == {"pod": CPU_LABELS["pod"]}
    assert all(v == pytest.approx(CPU_USAGE_CORES, abs=0.005) for v in usage[0].values)


async def test_instant_query_vector_scalar_and_infinity(
    prom: BackfilledPrometheus, make_source: SourceFactory
) -> None:
    source = make_source(prom.url)
    [full] = await source.query(
        "kubelet_volume_stats_used_bytes / kubelet_volume_stats_capacity_bytes", SCENARIO_END
    )
    assert full.labels["persistentvolumeclaim"] == "pg-data-0"
    assert full.points == ((SCENARIO_END.timestamp(), VOLUME_END_BYTES / VOLUME_CAPACITY_BYTES),)

    [restarts] = await source.query(
        "scalar(sum(kube_pod_container_status_restarts_total))", SCENARIO_END
    )
    assert restarts.labels == {}  # a scalar answer is one series without labels
    assert restarts.values == (1.0,)

    [infinite] = await source.query("vector(1) / 0", SCENARIO_END)
    assert math.isinf(infinite.values[0])
    [nan] = await source.query("vector(0) / 0", SCENARIO_END)
    assert nan.points == ()  # NaN is no value: the point is dropped

    assert await source.query('up{job="nothing-scraped"}', SCENARIO_END) == []


async def test_a_long_query_is_posted_and_still_answered(
    prom: BackfilledPrometheus, make_source: SourceFactory
) -> None:
    query = "vector(1)" + " + vector(0)" * 250
    assert len(query) > 2000
    [series] = await make_source(prom.url).query(query, SCENARIO_END)
    assert series.values == (1.0,)


async def test_bad_promql_is_prometheus_own_message_and_does_not_open_the_breaker(
    prom: BackfilledPrometheus, make_source: SourceFactory
) -> None:
    source = make_source(prom.url)
    for _ in range(5):
        with pytest.raises(MetricsError) as bad:
            await source.query("sum(rate(container_cpu_usage_seconds_total[5m])", SCENARIO_END)
    assert bad.value.detail.startswith(f"prometheus {prom.url}: bad_data: ")
    assert "parse error" in bad.value.detail
    assert source.breaker.state is BreakerState.CLOSED  # the query's fault, not the server's
    assert await source.query("vector(1)", SCENARIO_END)


# --- Prometheus down: gap, breaker, recovery -----------------------------------------------


async def test_prometheus_stopped_opens_the_breaker_then_recovers(
    tmp_path: Path, make_source: SourceFactory
) -> None:
    clock, wire = FakeClock(), CountingTransport()
    with backfilled_prometheus(tmp_path) as server:
        source = make_source(server.url, transport=wire, clock=clock)
        assert await source.query("vector(1)", SCENARIO_END)

        server.stop()
        for _ in range(3):
            with pytest.raises(MetricsError) as down:
                await source.query("vector(1)", SCENARIO_END)
            assert down.value.detail == (
                f"prometheus {server.url}: connection refused — is it running?"
            )
        requests = wire.requests

        with pytest.raises(MetricsError) as refused:
            await source.query("vector(1)", SCENARIO_END)
        assert re.fullmatch(
            rf"prometheus {re.escape(server.url)} circuit open after 3 failures; "
            r"retrying at \d\d:\d\d:\d\d UTC",
            refused.value.detail,
        )
        assert wire.requests == requests  # refused without touching the network

        server.start()
        clock.now += 30  # breaker_reset_seconds later: half-open, one trial goes through
        assert source.breaker.state is BreakerState.HALF_OPEN
        [series] = await source.query("vector(1)", SCENARIO_END)
        assert series.values == (1.0,)
        assert source.breaker.state is BreakerState.CLOSED


# --- auth, TLS, path prefix against real Prometheus ----------------------------------------


async def test_basic_auth_over_tls_with_the_private_ca(
    secured: BackfilledPrometheus, test_ca: LocalCA, make_source: SourceFactory
) -> None:
    assert secured.url.startswith("https://")
    good = make_source(secured.url, username=USER, password=PASSWORD, ca_file=test_ca.ca_cert)
    [series] = await good.query_range(
        "kubelet_volume_stats_used_bytes", START, SCENARIO_END, timedelta(minutes=10)
    )
    assert series.values[-1] == VOLUME_END_BYTES

    wrong = make_source(secured.url, username=USER, password="guess", ca_file=test_ca.ca_cert)
    with pytest.raises(MetricsError) as denied:
        await wrong.query("vector(1)", SCENARIO_END)
    assert denied.value.detail == (
        f"prometheus {secured.url}: 401 Unauthorized: "
        "check metrics.prometheus.bearer_token / username"
    )


async def test_an_untrusted_certificate_is_named_and_ca_file_fixes_it(
    secured: BackfilledPrometheus, test_ca: LocalCA, make_source: SourceFactory
) -> None:
    untrusted = make_source(secured.url, username=USER, password=PASSWORD)
    with pytest.raises(MetricsError) as tls:
        await untrusted.query("vector(1)", SCENARIO_END)
    assert tls.value.detail.startswith(f"prometheus {secured.url}: TLS certificate not trusted")
    assert "set metrics.prometheus.ca_file to the CA that signed it" in tls.value.detail
    assert PASSWORD not in tls.value.detail

    skip = make_source(secured.url, username=USER, password=PASSWORD, insecure_skip_verify=True)
    assert await skip.query("vector(1)", SCENARIO_END)
    trusted = make_source(secured.url, username=USER, password=PASSWORD, ca_file=test_ca.ca_cert)
    assert await trusted.query("vector(1)", SCENARIO_END)


async def test_a_route_prefix_is_part_of_the_url(
    tmp_path: Path, make_source: SourceFactory
) -> None:
    with backfilled_prometheus(tmp_path, route_prefix="/prom") as server:
        assert server.url.endswith("/prom")
        [series] = await make_source(server.url + "/").query(
            "kubelet_volume_stats_capacity_bytes", SCENARIO_END
        )
        assert series.values == (VOLUME_CAPACITY_BYTES,)

        bare = server.url.removesuffix("/prom")
        with pytest.raises(MetricsError) as missing:
            await make_source(bare).query("vector(1)", SCENARIO_END)
        assert "404 Not Found at /api/v1/query" in missing.value.detail
        assert "is metrics.prometheus.url the API root, with its path prefix?" in (
            missing.value.detail
        )


# --- what only a protocol-level fake can show ---------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]


@dataclass
class FakeApi:
    """A tiny HTTP server speaking the Prometheus API: records requests, answers as told."""

    url: str = ""
    status: int = 200
    content_type: str = "application/json"
    body: bytes = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else urlsplit(self.path).query
            api.seen.append(
                Seen(self.command, urlsplit(self.path).path, dict(self.headers), parse_qs(raw))
            )
            time.sleep(api.delay)
            self.send_response(api.status)
            self.send_header("Content-Type", api.content_type)
            self.send_header("Content-Length", str(len(api.body)))
            self.end_headers()
            self.wfile.write(api.body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # the client gave up on a slow answer: expected here

    server = Server(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}/select/0/prometheus"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


async def test_a_slow_endpoint_times_out_within_the_bound(
    fake_api: FakeApi, make_source: SourceFactory
) -> None:
    fake_api.delay = 5.0
    source = make_source(fake_api.url, timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(MetricsError) as slow:
        await source.query_range("up", START, SCENARIO_END, STEP)
    elapsed = time.monotonic() - started
    assert slow.value.detail == f"prometheus {fake_api.url}: timed out after 0.5 s"
    assert elapsed < 1.0  # one timeout, not retried
    assert source.breaker.consecutive_failures == 1


async def test_bearer_token_file_and_headers_arrive_on_the_wire(
    fake_api: FakeApi, make_source: SourceFactory, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("sa-token-1\n")
    source = make_source(fake_api.url, bearer_token_file=token, headers={"X-Scope-OrgID": "team-a"})
    await source.query_range("up", START, SCENARIO_END, STEP)
    token.write_text("sa-token-2\n")  # the kubelet rotated the projected token
    long_query = "up" + " or up" * 500
    await source.query(long_query, SCENARIO_END)

    first, second = fake_api.seen
    assert (first.method, first.path) == ("GET", "/select/0/prometheus/api/v1/query_range")
    assert first.form["start"] == [str(int(START.timestamp()))]
    assert first.form["step"] == ["30"]
    assert first.headers["Authorization"] == "Bearer sa-token-1"
    assert first.headers["X-Scope-OrgID"] == "team-a"
    assert first.headers["User-Agent"].startswith("oncallm/")
    assert (second.method, second.path) == ("POST", "/select/0/prometheus/api/v1/query")
    assert second.form["query"] == [long_query]  # form-encoded, as Grafana does
    assert second.headers["Authorization"] == "Bearer sa-token-2"


async def test_a_rejected_token_is_reported_without_the_token(
    fake_api: FakeApi, make_source: SourceFactory
) -> None:
    fake_api.status, fake_api.content_type, fake_api.body = 403, "text/plain", b"forbidden"
    source = make_source(fake_api.url, bearer_token="tok-very-secret-123")
    with pytest.raises(MetricsError) as denied:
        await source.query("up", SCENARIO_END)
    assert "403 Forbidden: check metrics.prometheus.bearer_token / username" in denied.value.detail
    assert "tok-very-secret-123" not in str(denied.value)


async def test_a_login_page_is_called_a_login_page(
    fake_api: FakeApi, make_source: SourceFactory
) -> None:
    fake_api.content_type = "text/html; charset=utf-8"
    fake_api.body = b"<html><body><form action='/oauth2/sign_in'>Sign in</form></body></html>"
    with pytest.raises(MetricsError) as html:
        await make_source(fake_api.url).query("up", SCENARIO_END)
    assert html.value.detail == (
        f"prometheus {fake_api.url}: answered 200 with text/html, not Prometheus JSON "
        "(a login page or proxy in front of it? check the URL and credentials)"
    )


async def test_a_5xx_is_retried_once_and_counts_against_the_server(
    fake_api: FakeApi, make_source: SourceFactory
) -> None:
    fake_api.status, fake_api.content_type = 503, "text/plain"
    fake_api.body = b"upstream connect error or disconnect/reset before headers"
    source = make_source(fake_api.url, breaker_failures=2)
    with pytest.raises(MetricsError) as unavailable:
        await source.query("up", SCENARIO_END)
    assert unavailable.value.detail == (
        f"prometheus {fake_api.url}: 503 Service Unavailable: "
        "upstream connect error or disconnect/reset before headers"
    )
    assert len(fake_api.seen) == 2  # one retry
    with contextlib.suppress(MetricsError):
        await source.query("up", SCENARIO_END)
    assert source.breaker.state is BreakerState.OPEN


async def test_prometheus_error_json_on_a_5xx_is_still_its_own_message(
    fake_api: FakeApi, make_source: SourceFactory
) -> None:
    fake_api.status = 503
    fake_api.body = json.dumps(
        {"status": "error", "errorType": "timeout", "error": "query timed out in query execution"}
    ).encode()
    with pytest.raises(MetricsError) as timeout:
        await make_source(fake_api.url).query("up", SCENARIO_END)
    assert timeout.value.detail == (
        f"prometheus {fake_api.url}: timeout: query timed out in query execution"
    )


# --- graph links -------------------------------------------------------------------------


async def test_graph_links_open_the_query_in_the_users_prometheus(
    prom: BackfilledPrometheus, make_source: SourceFactory
) -> None:
    query = 'max by (pod) (container_memory_working_set_bytes{namespace="shop"})'
    end = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
    expected_tail = (
        "/graph?g0.expr=max%20by%20%28pod%29%20%28container_memory_working_set_bytes"
        "%7Bnamespace%3D%22shop%22%7D%29&g0.tab=0&g0.range_input=7200s"
        "&g0.end_input=2026-11-20%2010%3A00%3A00"
    )
    plain = make_source(prom.url)
    link = plain.graph_url(query, end - SPAN, end)
    assert link == prom.url + expected_tail
    opened = httpx.get(link, timeout=5, follow_redirects=True)
    assert opened.status_code == 200  # the UI serves it (Debian's redirects to /classic)
    assert opened.url.params["g0.expr"] == query

    generated = "https://prometheus.example.com/prom/graph?g0.expr=up&g0.tab=1"
    from_alert = make_source(prom.url).linked_to(generated)
    assert from_alert.graph_url(query, end - SPAN, end) == (
        "https://prometheus.example.com/prom" + expected_tail
    )
    configured = make_source(
        prom.url, link_url="https://grafana.example.com/prom", generator_url=generated
    )
    assert configured.graph_url(query, end - SPAN, end) == (
        "https://grafana.example.com/prom" + expected_tail
    )


async def test_mutual_tls_presents_the_client_certificate(
    tmp_path: Path, test_ca: LocalCA, make_source: SourceFactory
) -> None:
    web_config = {
        "tls_server_config": {
            "cert_file": str(test_ca.server_cert),
            "key_file": str(test_ca.server_key),
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": str(test_ca.ca_cert),
        }
    }
    with backfilled_prometheus(
        tmp_path, web_config=web_config, tls=test_ca, ready_client_cert=True
    ) as server:
        with_cert = make_source(
            server.url,
            ca_file=test_ca.ca_cert,
            cert_file=test_ca.client_cert,
            key_file=test_ca.client_key,
        )
        assert await with_cert.query("vector(1)", SCENARIO_END)

        without = make_source(server.url, ca_file=test_ca.ca_cert)
        with pytest.raises(MetricsError) as refused:
            await without.query("vector(1)", SCENARIO_END)
        assert refused.value.detail.startswith(
            f"prometheus {server.url}: the server refused our TLS client certificate"
        )
        assert refused.value.detail.endswith("check metrics.prometheus.cert_file / key_file")
        assert without.breaker.consecutive_failures == 0  # our configuration, not its health


async def test_warnings_in_an_answer_are_logged_and_the_data_kept(
    fake_api: FakeApi, make_source: SourceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake_api.body = json.dumps(
        {
            "status": "success",
            "warnings": ["PromQL info: metric might not be a counter"],
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "3"]}]},
        }
    ).encode()
    [series] = await make_source(fake_api.url).query("rate(up[5m])", SCENARIO_END)
    assert series.values == (3.0,)
    [logged] = [r for r in caplog.records if r.name == "oncallm.metrics"]
    assert logged.levelname == "WARNING"
    assert "metrics query warning" in str(logged.msg)
    assert "metric might not be a counter" in str(logged.msg)


async def test_unreadable_credentials_files_are_named(
    fake_api: FakeApi, make_source: SourceFactory, tmp_path: Path
) -> None:
    missing = tmp_path / "no-token"
    with pytest.raises(MetricsError) as token:
        await make_source(fake_api.url, bearer_token_file=missing).query("up", SCENARIO_END)
    assert token.value.detail == (
        f"prometheus {fake_api.url}: cannot read bearer_token_file {missing}: "
        "No such file or directory"
    )
    assert fake_api.seen == []

    with pytest.raises(MetricsError, match=r"cannot load TLS files \(.*no-ca.pem\)"):
        make_source(fake_api.url, ca_file=tmp_path / "no-ca.pem")
