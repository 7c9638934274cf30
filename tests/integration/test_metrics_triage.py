"""Triage with a real Prometheus: the metrics around an alert decide what OncallM says.

Prometheus (Debian package) serves a TSDB backfilled by ``promtool tsdb
create-blocks-from openmetrics`` with the history kube-prometheus-stack would hold for
three failures: a container's memory climbing to its limit before an OOM kill, a
container throttled at its CPU limit, a volume filling up. The cluster around them is a
snapshot directory written here. Each triage must name the category the metrics support
and cite the series with its query and a link a user can open. Stopping Prometheus
mid-suite must cost a gap, not the triage.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from oncallm.config import KubernetesSettings, TriageSettings
from oncallm.config_llm import LLMSettings
from oncallm.config_metrics import MetricsSettings, PrometheusSettings
from oncallm.llm.reasoner import Reasoner
from oncallm.sources.prometheus import PrometheusSources
from oncallm.sources.snapshot import SnapshotSource
from oncallm.triage.context import AlertInput
from oncallm.triage.metrics_step import MetricsStep, snapshot_metrics
from oncallm.triage.oneshot import FixedSource
from oncallm.triage.pipeline import TriagePipeline
from tests.fakes.llm_script import Reply
from tests.fakes.openai_api import OpenAIFake
from tests.support import prometheus_tsdb as tsdb
from tests.support.llm_cases import llm_settings
from tests.support.metric_scenarios import ALERTS, END, write_snapshot
from tests.support.payloads import am_alert, am_notification
from tests.support.schema import assert_valid_result

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_snapshot(tmp_path_factory.mktemp("snapshot"))


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tsdb.BackfilledPrometheus]:
    workdir = tmp_path_factory.mktemp("prometheus")
    with tsdb.backfilled_prometheus(workdir, tsdb.all_scenarios(END)) as prom:
        yield prom


async def _triage(
    snapshot: Path, url: str, alert: AlertInput, llm: LLMSettings | None = None
) -> dict[str, Any]:
    settings = MetricsSettings(prometheus=PrometheusSettings(url=url, timeout_seconds=5))
    metrics = MetricsStep(PrometheusSources(settings, KubernetesSettings()), settings)
    reasoner = Reasoner.from_settings(llm) if llm is not None else None
    pipeline = TriagePipeline(
        FixedSource(SnapshotSource(snapshot)), TriageSettings(), reasoner=reasoner, metrics=metrics
    )
    try:
        output = await pipeline.run(alert)
    finally:
        await pipeline.aclose()
    assert_valid_result(output.result)
    return output.result


def _metric(result: dict[str, Any], evidence_id: str) -> dict[str, Any]:
    found = {e["id"]: e for e in result["evidence"]}
    assert evidence_id in found, sorted(found)
    item = found[evidence_id]
    assert item["type"] == "metric"
    # The link opens the query in the Prometheus that fired the alert, over the window.
    assert item["url"].startswith("http://prometheus.monitoring.example:9090/graph?g0.expr=")
    return item


async def test_memory_climbing_to_the_limit_is_named_a_leak(
    snapshot: Path, prometheus: tsdb.BackfilledPrometheus
) -> None:
    result = await _triage(snapshot, prometheus.url, ALERTS["memory"])
    root = result["root_cause"]
    assert root["category"] == "OOMKilled"
    assert root["resource"] == {"kind": "Deployment", "namespace": "shop", "name": "cart"}
    assert "a leak, not a spike" in root["summary"], root["summary"]
    assert "512 MiB limit" in root["summary"]
    item = _metric(result, "metric:memory/shop/cart/cart")
    assert "container_memory_working_set_bytes" in item["query"]
    assert item["id"] in root["evidence"]
    chart = next(c for c in result["metrics"] if c["id"] == item["id"])
    assert chart["limit"] == tsdb.MEMORY_LIMIT_BYTES
    peak = max(v for _t, v in chart["series"][0]["points"])
    assert peak >= 0.97 * tsdb.MEMORY_LIMIT_BYTES  # the climb to the limit is on the chart
    assert not [g for g in result["gaps"] if g["source"].startswith("metrics")]


async def test_throttling_at_the_cpu_limit_explains_a_latency_alert(
    snapshot: Path, prometheus: tsdb.BackfilledPrometheus
) -> None:
    result = await _triage(snapshot, prometheus.url, ALERTS["cpu"])
    root = result["root_cause"]
    assert root["category"] == "CPUThrottling"
    assert root["resource"] == {
        "kind": "Deployment", "namespace": "pricing", "name": "pricing-engine"
    }  # fmt: skip
    assert "70% of its CPU periods were throttled" in root["summary"], root["summary"]
    assert "490m of its 500m CPU limit" in root["summary"]
    throttling = _metric(result, "metric:throttling/pricing/pricing-engine/pricing-engine")
    assert "container_cpu_cfs_throttled_periods_total" in throttling["query"]


async def test_a_filling_volume_says_when_it_will_be_full(
    snapshot: Path, prometheus: tsdb.BackfilledPrometheus
) -> None:
    result = await _triage(snapshot, prometheus.url, ALERTS["volume"])
    root = result["root_cause"]
    assert root["category"] == "VolumeFailure"
    assert root["resource"]["name"] == "pg-data-0"
    assert re.search(r"96% full \(9\.\d+ GiB of 10 GiB\)", root["summary"]), root["summary"]
    assert "full in about" in root["summary"]
    _metric(result, "metric:volume_used/data/pg-data-0")
    grow = next(r for r in result["recommendations"] if "pg-data-0" in r["title"] + r["detail"])
    assert "full in about" in grow["detail"]


async def test_prometheus_stopped_mid_suite_is_a_gap_and_the_triage_completes(
    snapshot: Path, prometheus: tsdb.BackfilledPrometheus
) -> None:
    prometheus.stop()
    try:
        result = await _triage(snapshot, prometheus.url, ALERTS["memory"])
    finally:
        prometheus.start()
    assert result["status"] == "completed"
    assert result["root_cause"]["category"] == "OOMKilled"  # from the pod's status alone
    assert "leak" not in result["root_cause"]["summary"]
    gaps = [g for g in result["gaps"] if g["source"] == "metrics (prometheus)"]
    assert gaps, result["gaps"]
    assert any("connection refused" in g["error"] for g in gaps), gaps
    assert not [e for e in result["evidence"] if e["type"] == "metric"]
    assert "metrics" not in result
    # Back up: the next triage reads the metrics again.
    again = await _triage(snapshot, prometheus.url, ALERTS["memory"])
    assert "a leak, not a spike" in again["root_cause"]["summary"]


async def test_the_model_may_query_prometheus_and_cite_what_it_read(
    snapshot: Path, prometheus: tsdb.BackfilledPrometheus
) -> None:
    deterministic = await _triage(snapshot, prometheus.url, ALERTS["cpu"])
    query = 'sum by (pod) (rate(container_cpu_usage_seconds_total{namespace="pricing"}[5m]))'
    evidence_id = "metric:query/" + hashlib.sha256(query.encode()).hexdigest()[:10]
    cited = [*deterministic["root_cause"]["evidence"], evidence_id]
    verdict = {
        "explanation": f"pricing-engine runs at its CPU limit and is throttled [{evidence_id}].",
        "root_cause": {
            "category": "CPUThrottling",
            "culprit": {"kind": "Deployment", "namespace": "pricing", "name": "pricing-engine"},
            "summary": "pricing-engine is throttled at its 500m CPU limit.",
            "confidence": 0.9,
            "evidence": cited,
        },
        "alternatives": [],
        "recommendations": [],
    }
    with OpenAIFake() as fake:
        fake.script(
            Reply.tool_call("query_metrics", {"query": query, "minutes_before": 30}),
            Reply.output(verdict),
        )
        result = await _triage(
            snapshot, prometheus.url, ALERTS["cpu"], llm=llm_settings(fake, "tool")
        )
        calls = fake.calls
    llm = result["llm"]
    assert llm["error"] is None, llm["error"]
    assert "query_metrics" in calls[0].tool_names  # offered: this triage has a Prometheus
    answer = calls[1].tool_results[0].text
    assert answer.startswith(f"evidence id: {evidence_id}")
    assert "pod=pricing-engine-769488689f-6vmzk" in answer
    assert "0.49" in answer  # the usage Prometheus computed, as the model reads it
    assert llm["followup"]["calls"][0] == {
        "tool": "query_metrics",
        "arguments": {"query": query, "minutes_before": 30},
        "outcome": "ok",
        "evidence": evidence_id,
        "round": 1,
    }
    assert llm["root_cause"]["verified"] is True
    item = _metric(result, evidence_id)
    assert item["query"] == query
    assert "follow-up asked by the model" in item["source"]


async def test_without_a_metrics_source_the_model_is_not_offered_the_metrics_tool(
    snapshot: Path,
) -> None:
    with OpenAIFake() as fake:
        fake.script(Reply.output({"explanation": "x", "root_cause": {
            "category": "Unknown", "culprit": None, "summary": "x", "confidence": 0.1,
            "evidence": []}, "alternatives": [], "recommendations": []}))  # fmt: skip
        pipeline = TriagePipeline(
            FixedSource(SnapshotSource(snapshot)),
            TriageSettings(),
            reasoner=Reasoner.from_settings(llm_settings(fake, "tool")),
        )
        try:
            await pipeline.run(ALERTS["cpu"])
        finally:
            await pipeline.aclose()
        calls = fake.calls
    assert "get_object" in calls[0].tool_names
    assert "query_metrics" not in calls[0].tool_names


async def test_metrics_captured_into_a_snapshot_replay_the_same_triage_offline(
    snapshot: Path, prometheus: tsdb.BackfilledPrometheus, tmp_path: Path
) -> None:
    live = await _triage(snapshot, prometheus.url, ALERTS["memory"])
    copy = tmp_path / "incident"
    shutil.copytree(snapshot, copy)

    done = _snapshot_metrics(copy, tmp_path, "--prometheus", prometheus.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote ")
    files = sorted(p.name for p in (copy / "metrics").glob("*.json"))
    assert "memory-shop-cart-cart.json" in files, files
    stored = json.loads((copy / "metrics" / "memory-shop-cart-cart.json").read_text())
    assert stored["query"].startswith("max by (pod) (container_memory_working_set_bytes{")
    assert stored["data"]["resultType"] == "matrix"

    offline = await _offline_triage(copy, ALERTS["memory"])
    assert offline["root_cause"]["summary"] == live["root_cause"]["summary"]
    assert "a leak, not a spike" in offline["root_cause"]["summary"]
    offline_metric = next(e for e in offline["evidence"] if e["type"] == "metric")
    assert offline_metric["source"] == "snapshot: metrics"
    assert offline_metric["url"] is None  # nothing to open offline


def test_snapshot_metrics_without_a_prometheus_says_so(snapshot: Path, tmp_path: Path) -> None:
    done = _snapshot_metrics(snapshot, tmp_path)
    assert done.returncode == 2
    assert "pass --prometheus or set metrics.prometheus.url" in done.stderr


def _snapshot_metrics(
    snapshot: Path, workdir: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    """``oncallm snapshot metrics`` for the memory alert, with no ONCALLM_* configuration."""
    payload = workdir / "alert.json"
    payload.write_text(json.dumps(am_notification(_webhook_alert(ALERTS["memory"]))))
    return subprocess.run(
        [sys.executable, "-m", "oncallm", "snapshot", "metrics", str(snapshot),
         "--alert", str(payload), *options],
        capture_output=True, text=True, timeout=120, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("ONCALLM_")},
    )  # fmt: skip


def _webhook_alert(alert: AlertInput) -> dict[str, Any]:
    """``alert`` as Alertmanager posts it (what ``--alert`` files hold)."""
    posted = am_alert(
        "0e2e000000000001",
        alertname=alert.alertname,
        starts_at=alert.starts_at.isoformat().replace("+00:00", "Z"),
        **{k: v for k, v in alert.labels.items() if k != "alertname"},
    )
    posted["generatorURL"] = alert.generator_url
    posted["annotations"] = dict(alert.annotations)
    return posted


async def _offline_triage(snapshot: Path, alert: AlertInput) -> dict[str, Any]:
    pipeline = TriagePipeline(
        FixedSource(SnapshotSource(snapshot)),
        TriageSettings(),
        metrics=snapshot_metrics(snapshot),
    )
    try:
        return (await pipeline.run(alert)).result
    finally:
        await pipeline.aclose()


def test_the_window_is_around_the_alert_start() -> None:
    # A guard on the scenario itself: the kill is inside the lookback of the memory alert.
    oom = datetime.fromtimestamp(tsdb.memory_oom_time(END), tz=END.tzinfo)
    assert ALERTS["memory"].starts_at - timedelta(minutes=60) < oom < ALERTS["memory"].starts_at
