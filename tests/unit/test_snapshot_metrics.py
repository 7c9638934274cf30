"""Snapshot metrics (``metrics/*.json``) answer PromQL as the recorded Prometheus did, and
``PrometheusSources`` picks them, a live endpoint or nothing for an alert's cluster."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from oncallm.config import ClusterSettings, KubernetesSettings
from oncallm.config_metrics import MetricsSettings, PrometheusSettings
from oncallm.errors import SnapshotError
from oncallm.sources.metrics import MetricsSource
from oncallm.sources.prometheus import PrometheusSource, PrometheusSources
from oncallm.sources.snapshot_metrics import SnapshotMetrics, normalise_promql

REPO = Path(__file__).resolve().parents[2]
THROTTLING_CASE = REPO / "evals" / "cases" / "cpu-throttling-low-limit" / "snapshot"
T0 = 1_794_996_000  # 2026-11-18T09:20:00Z
STEP = timedelta(seconds=60)


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def write_answer(directory: Path, name: str, query: str, result: list[Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    answer = {
        "query": query,
        "status": "success",
        "data": {"resultType": "matrix", "result": result},
    }
    path.write_text(json.dumps(answer))
    return path


MEMORY = 'max by (pod) (container_memory_working_set_bytes{namespace="shop", container="cart"})'


@pytest.fixture
def metrics_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "metrics"
    write_answer(
        directory,
        "memory.json",
        MEMORY,
        [
            {
                "metric": {"pod": "cart-1"},
                "values": [[T0 + 60 * i, str(100 + i)] for i in range(10)],
            },
            {"metric": {"pod": "cart-2"}, "values": [[T0 + 540, "7"]]},
        ],
    )
    write_answer(
        directory,
        "odd.json",
        "vector(1) / on() group_left kube_x",
        [
            {
                "metric": {"case": "odd"},
                "values": [[T0, "NaN"], [T0 + 60, "+Inf"], [T0 + 120, "-Inf"], [T0 + 180, "2"]],
            }
        ],
    )
    return directory


async def test_matching_ignores_whitespace_but_not_strings(metrics_dir: Path) -> None:
    source = SnapshotMetrics(metrics_dir)
    assert isinstance(source, MetricsSource)
    window = (at(T0), at(T0 + 600), STEP)
    respaced = (
        'max   by(pod)(\n  container_memory_working_set_bytes{ namespace = "shop" ,'
        'container="cart"} )'
    )
    assert normalise_promql(respaced) == normalise_promql(MEMORY)
    assert len(await source.query_range(respaced, *window)) == 2
    # Spaces inside a label value are part of the value: another query.
    other = MEMORY.replace('"shop"', '"shop "')
    assert normalise_promql(other) != normalise_promql(MEMORY)
    assert await source.query_range(other, *window) == []
    # Spaces between two words are kept: "a and b" is not "aandb".
    assert normalise_promql("a  and\tb offset 5m") == "a and b offset 5m"


async def test_range_is_clipped_not_resampled(metrics_dir: Path) -> None:
    source = SnapshotMetrics(metrics_dir)
    series = await source.query_range(MEMORY, at(T0 + 120), at(T0 + 300), timedelta(seconds=15))
    assert [s.labels for s in series] == [{"pod": "cart-1"}]  # cart-2 has no point there
    assert series[0].points == ((T0 + 120, 102), (T0 + 180, 103), (T0 + 240, 104), (T0 + 300, 105))


async def test_instant_query_is_the_last_point_at_or_before(metrics_dir: Path) -> None:
    source = SnapshotMetrics(metrics_dir)
    answer = {s.labels["pod"]: s.points for s in await source.query(MEMORY, at(T0 + 200))}
    assert answer == {"cart-1": ((T0 + 180, 103.0),)}
    answer = {s.labels["pod"]: s.points for s in await source.query(MEMORY, at(T0 + 540))}
    assert answer == {"cart-1": ((T0 + 540, 109.0),), "cart-2": ((T0 + 540, 7.0),)}
    assert await source.query(MEMORY, at(T0 - 1)) == []


async def test_nan_is_dropped_and_infinities_are_kept(metrics_dir: Path) -> None:
    source = SnapshotMetrics(metrics_dir)
    [series] = await source.query_range(
        "vector(1)/on()group_left kube_x", at(T0), at(T0 + 600), STEP
    )
    assert series.points == ((T0 + 60, float("inf")), (T0 + 120, float("-inf")), (T0 + 180, 2.0))


async def test_an_unrecorded_query_has_no_data_and_is_not_an_error(
    metrics_dir: Path, tmp_path: Path
) -> None:
    assert await SnapshotMetrics(metrics_dir).query("up", at(T0)) == []
    no_metrics = SnapshotMetrics(tmp_path / "nowhere")
    assert await no_metrics.query_range("up", at(T0), at(T0 + 60), STEP) == []
    assert no_metrics.graph_url("up", at(T0), at(T0 + 60)) is None
    assert no_metrics.name == "snapshot"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('[{"query": "up"}]', "not a Prometheus answer"),
        ('{"status": "success", "data": {"resultType": "matrix", "result": []}}', "no 'query'"),
        ('{"query": "up", "status": "success"}', "no 'data'"),
        ('{"query": "up", "data": {"resultType": "matrix", "result": [{"values": [[1]]}]}}',
         "'data' is not a Prometheus result"),
    ],
    ids=["syntax", "list", "no-query", "no-data", "bad-sample"],
)  # fmt: skip
async def test_a_broken_file_is_named(metrics_dir: Path, content: str, message: str) -> None:
    broken = metrics_dir / "zz-broken.json"
    broken.write_text(content)
    with pytest.raises(SnapshotError) as err:
        await SnapshotMetrics(metrics_dir).query(MEMORY, at(T0))
    assert str(broken) in err.value.detail
    assert message in err.value.detail


async def test_reads_the_golden_cases_recorded_answers() -> None:
    source = SnapshotMetrics(THROTTLING_CASE / "metrics")
    recorded = json.loads((THROTTLING_CASE / "metrics" / "cpu_throttled_ratio.json").read_text())
    values = recorded["data"]["result"][0]["values"]
    series = await source.query_range(
        recorded["query"], at(values[0][0]), at(values[-1][0]), timedelta(minutes=2)
    )
    assert series[0].labels["pod"].startswith("pricing-engine-")
    assert series[0].values == tuple(float(v) for _t, v in values)


# --- PrometheusSources: which source answers for an alert's cluster -----------------------


async def test_no_url_and_no_snapshot_means_no_metrics() -> None:
    sources = PrometheusSources(MetricsSettings(), KubernetesSettings())
    assert sources.source_for(None) is None
    assert sources.source_for("eu-1") is None


async def test_per_cluster_endpoint_then_the_default_and_one_source_each(tmp_path: Path) -> None:
    settings = MetricsSettings(
        prometheus=PrometheusSettings(url="http://prom.default:9090"),
        clusters={
            "eu-1": PrometheusSettings(url="http://thanos.eu-1:9090"),
            "blank": PrometheusSettings(),  # no URL: falls back to the default
        },
    )
    sources = PrometheusSources(settings, KubernetesSettings())
    try:
        eu = sources.source_for("eu-1")
        assert isinstance(eu, PrometheusSource)
        assert eu.url == "http://thanos.eu-1:9090"
        assert eu.config_key == "metrics.clusters.eu-1"
        assert sources.source_for("eu-1") is eu  # cached: one client and breaker per endpoint
        default = sources.source_for("us-2")
        assert isinstance(default, PrometheusSource)
        assert default.url == "http://prom.default:9090"
        assert sources.source_for(None) is default
        assert sources.source_for("blank") is default

        # A per-alert view shares the breaker and links to the UI that fired the alert.
        view = sources.source_for("eu-1", "http://prom.eu-1.example.com/graph?g0.expr=up")
        assert isinstance(view, PrometheusSource)
        assert view.breaker is eu.breaker
        link = view.graph_url("up", at(T0), at(T0 + 60))
        assert link is not None
        assert link.startswith("http://prom.eu-1.example.com/graph?g0.expr=up&")

        disabled = PrometheusSources(
            settings.model_copy(update={"enabled": False}), KubernetesSettings()
        )
        assert disabled.source_for("eu-1") is None
    finally:
        await sources.aclose()


async def test_a_snapshot_cluster_reads_its_recorded_metrics(tmp_path: Path) -> None:
    snapshot = tmp_path / "snap"
    shutil.copytree(THROTTLING_CASE, snapshot)
    kubernetes = KubernetesSettings(
        clusters={
            "offline": ClusterSettings(snapshot=snapshot),
            "pinned": ClusterSettings(snapshot=snapshot),
        },
        default_cluster="offline",
    )
    settings = MetricsSettings(
        prometheus=PrometheusSettings(url="http://prom.default:9090"),
        clusters={"pinned": PrometheusSettings(url="http://prom.pinned:9090")},
    )
    sources = PrometheusSources(settings, kubernetes)
    try:
        offline = sources.source_for("offline")
        assert isinstance(offline, SnapshotMetrics)
        assert offline.directory == snapshot / "metrics"
        assert sources.source_for(None) is offline  # the default cluster is the snapshot
        # A live endpoint configured for the cluster wins over its snapshot.
        pinned = sources.source_for("pinned")
        assert isinstance(pinned, PrometheusSource)
        assert pinned.url == "http://prom.pinned:9090"
    finally:
        await sources.aclose()
