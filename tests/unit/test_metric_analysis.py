"""Metrics in the analysis: which queries a triage asks, and what the answers make it say.

Metrics are served by the real snapshot reader (``metrics/*.json``, DESIGN.md §4.2) from
files each test writes, so the step, the summaries and the analyzers run unchanged; the
failure test points the real Prometheus client at a closed port.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from oncallm.config_metrics import MetricsSettings, PrometheusSettings
from oncallm.sources.base import ObjectRef
from oncallm.sources.prometheus import PrometheusSource
from oncallm.sources.snapshot_metrics import SnapshotMetrics
from oncallm.triage.analyze import run_analyzers
from oncallm.triage.analyzers import registered
from oncallm.triage.context import TriageContext
from oncallm.triage.metric_queries import MetricQuery, alert_expression, plan, pod_pattern
from oncallm.triage.metrics_step import FixedMetrics, MetricsStep
from oncallm.triage.rank import rank
from oncallm.triage.taxonomy import Category
from tests.support.services import free_port
from tests.unit import kubeobjects as k

MiB = 1024 * 1024
GiB = 1024 * MiB
START = k.ALERT_START.timestamp()
DEPLOY = ObjectRef("Deployment", "shop", "cart")
POD = "cart-7d9f8b6c5-x2x9q"
Series = Mapping[str, Any]  # {"labels": {...}, "values": [(ts, value), ...]}


def _cart(
    *,
    memory: str = "512Mi",
    cpu: str | None = "500m",
    request_cpu: str = "250m",
    last_terminated: Mapping[str, Any] | None = None,
    volumes: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    limits = {"memory": memory, **({"cpu": cpu} if cpu else {})}
    ctr = k.container("cart", limits=limits, requests={"memory": memory, "cpu": request_cpu})
    rs = k.replicaset("cart-7d9f8b6c5", "cart", revision=3, replicas=3, containers=[ctr])
    status = k.running_status("cart", restarts=4 if last_terminated else 0,
                              last_terminated=last_terminated)  # fmt: skip
    pod = k.pod(POD, labels={"app": "cart", "pod-template-hash": "7d9f8b6c5"},
                owner=ObjectRef("ReplicaSet", "shop", "cart-7d9f8b6c5"), containers=[ctr],
                statuses=[status], volumes=volumes)  # fmt: skip
    return [k.deployment("cart", containers=[ctr]), rs, pod, k.node("node-a")]


def _oom_killed() -> dict[str, Any]:
    return {"exitCode": 137, "reason": "OOMKilled", "startedAt": k.ts(60), "finishedAt": k.ts(5)}


def _ramp(
    t0: float, t1: float, v0: float, v1: float, step: float = 30
) -> list[tuple[float, float]]:
    n = int((t1 - t0) // step)
    return [(t0 + i * step, v0 + (v1 - v0) * i / n) for i in range(n + 1)]


def _flat(t0: float, t1: float, level: float, step: float = 30) -> list[tuple[float, float]]:
    n = int((t1 - t0) // step)
    # A little deterministic wobble, as real usage has.
    return [(t0 + i * step, level * (1 + 0.02 * math.sin(i))) for i in range(n + 1)]


def _write(directory: Path, query: MetricQuery | str, series: Sequence[Series]) -> None:
    promql = query.promql if isinstance(query, MetricQuery) else query
    name = f"m{len(list(directory.glob('*.json')))}.json"
    answer = {
        "query": promql,
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": dict(s["labels"]), "values": [[t, str(v)] for t, v in s["values"]]}
                for s in series
            ],
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(json.dumps(answer))


def _query(ctx: TriageContext, key_prefix: str) -> MetricQuery:
    return next(q for q in plan(ctx) if q.key.startswith(key_prefix))


async def _with_metrics(ctx: TriageContext, directory: Path) -> TriageContext:
    step = MetricsStep(FixedMetrics(SnapshotMetrics(directory)), MetricsSettings())
    return await step.read(ctx)


def _root(ctx: TriageContext) -> tuple[Any, dict[str, Any]]:
    analysis = run_analyzers(ctx, registered())
    ranking = rank(ctx, analysis.findings, 0.35)
    assert ranking.root is not None, [f.summary for f in analysis.findings]
    evidence = {e.id: e.as_dict() for e in analysis.ledger.items()}
    return ranking.root, evidence


# --- the plan -------------------------------------------------------------------------


def test_the_plan_asks_the_standard_series_of_the_alerted_workload_node_and_volume() -> None:
    claim = {"name": "data", "persistentVolumeClaim": {"claimName": "cart-data"}}
    objects = [*_cart(volumes=[claim]), k.pvc("cart-data", size="10Gi"),
               k.hpa("cart", max_replicas=6, current=6)]  # fmt: skip
    generator = (
        "http://prometheus.example:9090/graph?g0.expr=histogram_quantile%280.99%2C+sum+by+"
        "%28le%29+%28rate%28http_request_duration_seconds_bucket%5B5m%5D%29%29%29+%3E+0.5&g0.tab=1"
    )
    ctx = k.context(objects, alert={"alertname": "CartSlow", "namespace": "shop", "pod": POD},
                    focus=[ObjectRef("Pod", "shop", POD)])  # fmt: skip
    ctx = replace(ctx, alert=replace(ctx.alert, generator_url=generator))
    queries = {q.key: q for q in plan(ctx)}

    assert queries["alert/CartSlow"].promql == (
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) "
        "> 0.5"
    )
    selector = '{namespace="shop", pod=~"cart-[a-z0-9]{1,10}-[a-z0-9]{5}", container="cart"}'
    memory = queries["memory/shop/cart/cart"]
    assert memory.promql == f"max by (pod) (container_memory_working_set_bytes{selector})"
    assert memory.limit == 512 * MiB
    assert queries["cpu/shop/cart/cart"].limit == 0.5
    assert queries["cpu/shop/cart/cart"].request == 0.25
    assert (
        "container_cpu_cfs_throttled_periods_total" in queries["throttling/shop/cart/cart"].promql
    )
    assert queries["restarts/shop/cart/cart"].unit == "count"
    assert set(queries) >= {"node_pressure/node-a", "node_memory/node-a"}
    volume = queries["volume_used/shop/cart-data"]
    assert volume.limit == 10 * GiB
    assert volume.limit_promql == (
        'max(kubelet_volume_stats_capacity_bytes{namespace="shop", '
        'persistentvolumeclaim="cart-data"})'
    )
    assert queries["hpa_replicas/shop/cart"].limit == 6
    assert all(q.evidence_id.startswith("metric:") for q in queries.values())


def test_an_alert_on_a_service_asks_about_the_containers_behind_it() -> None:
    ctx = k.context([*_cart(), k.service("cart", selector={"app": "cart"})],
                    alert={"alertname": "CartLatencyHigh", "namespace": "shop", "service": "cart"},
                    focus=[ObjectRef("Service", "shop", "cart")])  # fmt: skip
    keys = {q.key for q in plan(ctx)}
    assert {"memory/shop/cart/cart", "throttling/shop/cart/cart"} <= keys


def test_a_container_without_a_cpu_limit_is_not_asked_about_throttling() -> None:
    ctx = k.context(_cart(cpu=None), alert={"alertname": "X", "namespace": "shop", "pod": POD},
                    focus=[ObjectRef("Pod", "shop", POD)])  # fmt: skip
    assert not [q for q in plan(ctx) if q.signal == "throttling"]


@pytest.mark.parametrize(
    ("kind", "matches", "not_matches"),
    [
        (
            "Deployment",
            ["cart-7d9f8b6c5-x2x9q", "cart-5c7b9-abcde"],
            ["cart-db-0", "cartx-1-abcde"],
        ),
        ("StatefulSet", ["cart-0", "cart-12"], ["cart-7d9f8b6c5-x2x9q", "cart-db-0"]),
        ("DaemonSet", ["cart-x2x9q"], ["cart-7d9f8b6c5-x2x9q"]),
        ("Job", ["cart-x2x9q", "cart-3-x2x9q"], ["cart"]),
        ("CronJob", ["cart-29123456-x2x9q"], ["cart-x2x9q"]),
        ("Pod", ["cart"], ["cart-0"]),
    ],
)
def test_pod_patterns_match_the_pods_a_controller_names_and_not_its_neighbours(
    kind: str, matches: list[str], not_matches: list[str]
) -> None:
    pattern = re.compile(pod_pattern(ObjectRef(kind, "shop", "cart")))
    assert all(pattern.fullmatch(name) for name in matches)
    assert not any(pattern.fullmatch(name) for name in not_matches)


def test_alert_expression_is_read_from_generator_url_and_absent_otherwise() -> None:
    assert alert_expression("http://p:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1") == "up == 0"
    assert alert_expression("") is None
    assert alert_expression("http://p:9090/graph?g0.tab=1") is None


# --- memory before an OOM kill ------------------------------------------------------------


def _oom_ctx(tmp_path: Path, values: Callable[[], list[tuple[float, float]]]) -> TriageContext:
    ctx = k.context(_cart(last_terminated=_oom_killed()),
                    alert={"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": POD,
                           "container": "cart"},
                    focus=[ObjectRef("Pod", "shop", POD)])  # fmt: skip
    _write(tmp_path, _query(ctx, "memory/"), [{"labels": {"pod": POD}, "values": values()}])
    return ctx


async def test_memory_climbing_steadily_to_the_limit_before_the_kill_is_called_a_leak(
    tmp_path: Path,
) -> None:
    def sawtooth() -> list[tuple[float, float]]:
        # Two lives of the container, each climbing from ~150 MiB to the 512 MiB limit.
        first = _ramp(START - 3600, START - 1830, 150 * MiB, 508 * MiB)
        second = _ramp(START - 1800, START - 30, 150 * MiB, 509 * MiB)
        after = _ramp(START, START + 600, 60 * MiB, 140 * MiB)
        return first + second + after

    ctx = await _with_metrics(_oom_ctx(tmp_path, sawtooth), tmp_path)
    root, evidence = _root(ctx)

    assert root.category is Category.OOMKilled
    assert "a leak, not a spike" in root.summary
    assert "climbed steadily from 150 MiB" in root.summary
    cited = evidence["metric:memory/shop/cart/cart"]
    assert cited["type"] == "metric"
    assert cited["query"].startswith("max by (pod) (container_memory_working_set_bytes{")
    assert root.facts["memory"]["kind"] == "leak"


async def test_a_flat_line_and_one_jump_before_the_kill_is_called_a_spike(tmp_path: Path) -> None:
    def spike() -> list[tuple[float, float]]:
        return [*_flat(START - 3600, START - 90, 180 * MiB), (START - 60, 200 * MiB),
                (START - 30, 505 * MiB), *_flat(START + 30, START + 600, 170 * MiB)]  # fmt: skip

    ctx = await _with_metrics(_oom_ctx(tmp_path, spike), tmp_path)
    root, _evidence = _root(ctx)

    assert root.category is Category.OOMKilled
    assert "a sudden spike, not a leak" in root.summary
    assert re.search(r"steady near 18\d MiB \(3\d% of the 512 MiB limit\)", root.summary)
    assert root.facts["memory"]["kind"] == "spike"


async def test_without_metrics_the_oom_finding_makes_no_claim_about_its_shape(
    tmp_path: Path,
) -> None:
    ctx = k.context(_cart(last_terminated=_oom_killed()),
                    alert={"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": POD},
                    focus=[ObjectRef("Pod", "shop", POD)])  # fmt: skip
    root, evidence = _root(await _with_metrics(ctx, tmp_path / "empty"))
    assert root.category is Category.OOMKilled
    assert "leak" not in root.summary
    assert "spike" not in root.summary
    assert not [e for e in evidence.values() if e["type"] == "metric"]


# --- throttling behind a latency alert ----------------------------------------------------


async def test_throttling_the_metrics_show_is_named_behind_a_latency_alert(tmp_path: Path) -> None:
    ctx = k.context(_cart(), alert={"alertname": "CartLatencyHigh", "namespace": "shop",
                                    "deployment": "cart"},
                    focus=[DEPLOY])  # fmt: skip
    ratio = [*_flat(START - 3600, START - 1830, 0.05), *_flat(START - 1800, START + 600, 0.72)]
    usage = _flat(START - 3600, START + 600, 0.49)
    _write(tmp_path, _query(ctx, "throttling/"), [{"labels": {"pod": POD}, "values": ratio}])
    _write(tmp_path, _query(ctx, "cpu/"), [{"labels": {"pod": POD}, "values": usage}])

    root, evidence = _root(await _with_metrics(ctx, tmp_path))

    assert root.category is Category.CPUThrottling
    assert root.resource == DEPLOY
    assert "72% of its CPU periods were throttled" in root.summary
    assert "of its 500m CPU limit" in root.summary
    assert {"metric:throttling/shop/cart/cart", "metric:cpu/shop/cart/cart"} <= set(root.evidence)
    assert evidence["metric:throttling/shop/cart/cart"]["query"].startswith("sum by (pod)")


async def test_throttling_that_ended_before_the_alert_is_no_finding(tmp_path: Path) -> None:
    ctx = k.context(_cart(), alert={"alertname": "CartLatencyHigh", "namespace": "shop",
                                    "deployment": "cart"}, focus=[DEPLOY])  # fmt: skip
    ratio = [*_flat(START - 3600, START - 1800, 0.6), *_flat(START - 1770, START + 600, 0.02)]
    _write(tmp_path, _query(ctx, "throttling/"), [{"labels": {"pod": POD}, "values": ratio}])
    analysis = run_analyzers(await _with_metrics(ctx, tmp_path), registered())
    assert not [f for f in analysis.findings if f.category is Category.CPUThrottling]


# --- HPA pinned at max, and a filling volume ----------------------------------------------


async def test_an_hpa_pinned_at_max_without_its_condition_is_a_scaling_limit(
    tmp_path: Path,
) -> None:
    hpa = k.hpa("cart", max_replicas=6, current=6)  # no ScalingLimited condition at all
    ctx = k.context([*_cart(), hpa], alert={"alertname": "CartLatencyHigh", "namespace": "shop",
                                            "horizontalpodautoscaler": "cart"},
                    focus=[ObjectRef("HorizontalPodAutoscaler", "shop", "cart")])  # fmt: skip
    replicas = [*_flat(START - 3600, START - 2430, 3), *[(t, 6.0) for t, _ in
                _flat(START - 2400, START + 600, 1)]]  # fmt: skip
    _write(tmp_path, _query(ctx, "hpa_replicas/"), [{"labels": {}, "values": replicas}])
    _write(tmp_path, _query(ctx, "cpu/"), [{"labels": {"pod": POD}, "values": _flat(
        START - 3600, START + 600, 0.24)}])  # fmt: skip

    root, _evidence = _root(await _with_metrics(ctx, tmp_path))

    assert root.category is Category.ScalingLimit
    assert "at 6 of 6 replicas since" in root.summary
    assert "96% of their CPU request" in root.summary
    assert root.confidence >= 0.85


async def test_a_volume_filling_fast_is_the_cause_whatever_the_alert_says(tmp_path: Path) -> None:
    claim = {"name": "data", "persistentVolumeClaim": {"claimName": "cart-data"}}
    ctx = k.context([*_cart(volumes=[claim]), k.pvc("cart-data", size="10Gi")],
                    alert={"alertname": "CartLatencyHigh", "namespace": "shop", "pod": POD},
                    focus=[ObjectRef("Pod", "shop", POD)])  # fmt: skip
    used = _ramp(START - 3600, k.NOW.timestamp(), 7 * GiB, 9.3 * GiB)  # ends "now"
    query = _query(ctx, "volume_used/")
    _write(tmp_path, query, [{"labels": {}, "values": used}])
    assert query.limit_promql is not None
    _write(tmp_path, query.limit_promql, [{"labels": {}, "values": [(START, 10 * GiB)]}])

    root, evidence = _root(await _with_metrics(ctx, tmp_path))

    assert root.category is Category.VolumeFailure
    assert root.resource == ObjectRef("PersistentVolumeClaim", "shop", "cart-data")
    assert "93% full (9.3 GiB of 10 GiB)" in root.summary
    assert "full in about" in root.summary
    assert evidence["metric:volume_used/shop/cart-data"]["excerpt"]


# --- charts and failures ------------------------------------------------------------------


async def test_charts_keep_at_most_max_points_per_series(tmp_path: Path) -> None:
    ctx = _oom_ctx(tmp_path, lambda: _ramp(START - 3600, START + 600, 150 * MiB, 500 * MiB, 5))
    step = MetricsStep(FixedMetrics(SnapshotMetrics(tmp_path)), MetricsSettings(max_points=50))
    charts = step.charts(await step.read(ctx))
    memory = next(c for c in charts if c["id"] == "metric:memory/shop/cart/cart")
    assert len(memory["series"][0]["points"]) == 50
    assert memory["limit"] == 512 * MiB
    assert memory["series"][0]["summary"].startswith("rose")


async def test_an_unreachable_prometheus_is_a_gap_and_the_triage_goes_on() -> None:
    ctx = k.context(_cart(last_terminated=_oom_killed()),
                    alert={"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": POD},
                    focus=[ObjectRef("Pod", "shop", POD)])  # fmt: skip
    url = f"http://127.0.0.1:{free_port()}"
    source = PrometheusSource(PrometheusSettings(url=url, timeout_seconds=2),
                              breaker_failures=3, breaker_reset_seconds=60)  # fmt: skip
    step = MetricsStep(FixedMetrics(source), MetricsSettings())
    try:
        read = await step.read(ctx)
    finally:
        await step.aclose()
    assert read.metrics == {}
    gaps = [g for g in read.gaps if g.source.startswith("metrics")]
    assert gaps
    assert any("connection refused" in g.error for g in gaps), gaps
    queries = len(plan(ctx))
    assert sum(int(re.search(r"\((\d+) of", g.error)[1]) for g in gaps) == queries  # type: ignore[index]
    root, _ = _root(read)
    assert root.category is Category.OOMKilled


def test_the_window_never_reaches_past_now_and_is_at_least_five_minutes() -> None:
    from oncallm.triage.metric_signals import MetricWindow

    window = MetricWindow.around(k.ALERT_START, k.NOW, before=timedelta(minutes=60),
                                 after=timedelta(minutes=15))  # fmt: skip
    assert window.end == k.NOW
    assert window.start == k.ALERT_START - timedelta(minutes=60)
    assert window.step.total_seconds() >= 15
    future = MetricWindow.around(k.NOW, k.ALERT_START, before=timedelta(0), after=timedelta(0))
    assert future.end - future.start == timedelta(minutes=5)
