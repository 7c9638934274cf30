"""Metrics benchmark: what reading Prometheus adds to one triage.

A real Prometheus (the Debian package) serves a TSDB backfilled with ``promtool`` from
the three scenario failures of ``tests.support.prometheus_tsdb`` (a memory leak, CPU
throttling, a filling volume) plus ``--noise`` unrelated containers' memory and CPU
series, so the queries' label matchers have a realistic index to search. The scenario
alerts (``tests.support.metric_scenarios``) are triaged through the production path —
snapshot cluster, ``PrometheusSources``, the metrics step, analyzers, ranking — each
``--rounds`` times, and timed.

Reported: the metrics step's wall time per triage (p50/p95/max) and its share of the
triage, queries per triage, points read, stored chart points and the result's size, and
whether each scenario was named right. Summarising cost is measured apart: ``summarise``
and ``downsample`` on a 5,000-point series. ``goal_met``: metrics step p50 below 250 ms
and every scenario named right (the self-set goal: the graph must not be what makes a
triage slow).

Usage: ``uv run python benchmarks/metrics.py [--rounds 20] [--noise 500]``; one JSON
object on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from oncallm.config import KubernetesSettings, TriageSettings  # noqa: E402
from oncallm.config_metrics import MetricsSettings, PrometheusSettings  # noqa: E402
from oncallm.sources.prometheus import PrometheusSources  # noqa: E402
from oncallm.sources.snapshot import SnapshotSource  # noqa: E402
from oncallm.triage.metrics_step import MetricsStep  # noqa: E402
from oncallm.triage.oneshot import FixedSource  # noqa: E402
from oncallm.triage.pipeline import TriagePipeline  # noqa: E402
from oncallm.triage.series import downsample, summarise  # noqa: E402
from tests.support import prometheus_tsdb as tsdb  # noqa: E402
from tests.support.metric_scenarios import ALERTS, END, write_snapshot  # noqa: E402

GOAL_P50_MS = 250.0
EXPECTED = {"memory": "OOMKilled", "cpu": "CPUThrottling", "volume": "VolumeFailure"}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _noise(count: int) -> list[tsdb.OpenMetricsSeries]:
    """Other workloads' containers: memory gauges and CPU counters, 30 s apart over 2 h."""
    times = tsdb.timestamps(END)
    series = []
    for n in range(count):
        labels = {"namespace": f"team-{n % 40}", "pod": f"svc-{n}-5d4f7b9c8-abcde",
                  "container": f"svc-{n}"}  # fmt: skip
        level = 100e6 + (n % 17) * 20e6
        series.append(
            tsdb.OpenMetricsSeries(
                "container_memory_working_set_bytes",
                labels,
                [(t, round(level * (1 + 0.05 * math.sin(t / 600 + n)))) for t in times],
            )
        )
        series.append(
            tsdb.OpenMetricsSeries(
                "container_cpu_usage_seconds_total",
                labels,
                [(t, round((t - times[0]) * 0.1, 3)) for t in times],
                type="counter",
            )
        )
    return series


async def _triage(snapshot: Path, url: str, name: str) -> dict[str, Any]:
    settings = MetricsSettings(prometheus=PrometheusSettings(url=url, timeout_seconds=10))
    step = MetricsStep(PrometheusSources(settings, KubernetesSettings()), settings)
    pipeline = TriagePipeline(FixedSource(SnapshotSource(snapshot)), TriageSettings(), metrics=step)
    try:
        return (await pipeline.run(ALERTS[name])).result
    finally:
        await pipeline.aclose()


def _summarise_cost() -> dict[str, float]:
    points = [(float(i * 15), 1e8 + i * 1e4 + 5e6 * math.sin(i / 40)) for i in range(5000)]
    started = time.perf_counter()
    summarise(points, limit=2e8)
    summarised = time.perf_counter() - started
    started = time.perf_counter()
    downsample(points, 120)
    return {
        "points": len(points),
        "summarise_ms": round(summarised * 1000, 1),
        "downsample_to_120_ms": round((time.perf_counter() - started) * 1000, 1),
    }


async def _run(rounds: int, noise: int, workdir: Path) -> dict[str, Any]:
    snapshot = write_snapshot(workdir / "snapshot")
    series = [*tsdb.all_scenarios(END), *_noise(noise)]
    _log(f"backfilling {len(series)} series with promtool…")
    with tsdb.backfilled_prometheus(workdir / "prometheus", series) as prom:
        for name in ALERTS:  # warm Prometheus' caches and our imports
            await _triage(snapshot, prom.url, name)
        step_ms: list[float] = []
        share: list[float] = []
        queries: list[int] = []
        cited: list[int] = []
        chart_points: list[int] = []
        sizes: list[int] = []
        named: dict[str, bool] = {}
        for round_ in range(rounds):
            for name in ALERTS:
                result = await _triage(snapshot, prom.url, name)
                timings = result["timings_ms"]
                step_ms.append(timings["metrics"])
                share.append(timings["metrics"] / timings["total"])
                charts = result.get("metrics") or []
                queries.append(len(charts))
                chart_points.append(sum(len(s["points"]) for c in charts for s in c["series"]))
                sizes.append(len(json.dumps(result)))
                named[name] = result["root_cause"]["category"] == EXPECTED[name]
                cited.append(sum(1 for e in result["evidence"] if e["type"] == "metric"))
            _log(
                f"round {round_ + 1}/{rounds}: metrics step p50 {statistics.median(step_ms):.0f} ms"
            )
    p50 = statistics.median(step_ms)
    return {
        "benchmark": "metrics",
        "command": "benchmarks/metrics.py",
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "prometheus": {"series": len(series), "scenarios": 3, "noise_containers": noise},
        "triages": len(step_ms),
        "metrics_step_ms": {
            "p50": round(p50, 1),
            "p95": round(_percentile(step_ms, 0.95), 1),
            "max": round(max(step_ms), 1),
        },
        "metrics_share_of_triage": round(statistics.median(share), 2),
        "signals_with_data_per_triage": {"median": statistics.median(queries), "max": max(queries)},
        "metric_evidence_per_triage": {"median": statistics.median(cited)},
        "stored_chart_points_per_triage": {
            "median": statistics.median(chart_points),
            "max": max(chart_points),
        },
        "result_bytes": {"median": statistics.median(sizes), "max": max(sizes)},
        "named_right": named,
        "summarise": _summarise_cost(),
        "goal": {"metrics_step_p50_ms": GOAL_P50_MS, "every_scenario_named": True},
        "goal_met": p50 < GOAL_P50_MS and all(named.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--noise", type=int, default=500, help="unrelated containers")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="oncallm-bench-metrics-") as workdir:
        report = asyncio.run(_run(args.rounds, args.noise, Path(workdir)))
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
