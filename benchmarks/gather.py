"""Gather benchmark: cost of one pod alert's triage against clusters of growing size.

For each cluster size (default 500, 5,000 and 20,000 pods, 10 events each) this generates
a cluster with ``tests.fakes.generate_cluster``, serves it with the Kubernetes API fake
(``tests.fakes.kube_api``; a real HTTPS server speaking the Kubernetes REST API) adding
``--latency`` seconds to every request (20 ms: a remote API server), and triages pod
alerts of the generated incidents (CrashLoop, OOMKilled, ImagePull, Unschedulable)
through the production path: ``KubernetesSource`` on lightkube, the gatherer, analyzers,
ranking and recommendations. Each triage is timed on the wall clock and the requests the
fake served for it are counted.

Reported per size: wall time p50/p95/max, API requests p50/max, and how many of the
incidents were named correctly (category of the generated fault). ``growth`` compares the
largest cluster with the smallest; ``goal_met`` checks the issue's goal: p50 < 0.5 s,
at most 40 requests per triage, and no more than 1.2x growth in time or requests from
500 to 20,000 pods (cost follows the alert's neighbourhood, not the cluster).

Usage: ``uv run python benchmarks/gather.py [--sizes 500,5000,20000] [--alerts 20]
[--latency 0.02]``; one JSON object on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from oncallm.config import ClusterSettings, TriageSettings  # noqa: E402
from oncallm.sources.kubernetes import KubernetesSource  # noqa: E402
from oncallm.triage.oneshot import FixedSource  # noqa: E402
from oncallm.triage.pipeline import AlertInput, TriagePipeline  # noqa: E402
from tests.fakes.generate_cluster import generate_cluster  # noqa: E402
from tests.fakes.kube_api import KubeApiFake  # noqa: E402

GOAL_P50_SECONDS = 0.5
GOAL_MAX_REQUESTS = 40
GOAL_GROWTH = 1.2


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _triage_all(
    api: KubeApiFake, kubeconfig: Path, alerts: list[tuple[str, dict[str, str]]], starts: Any
) -> list[dict[str, Any]]:
    # The benchmark measures the gatherer's cost, not the client's rate limit.
    settings = ClusterSettings(kubeconfig=kubeconfig, qps=1000, burst=1000, concurrency=8)
    pipeline = TriagePipeline(FixedSource(KubernetesSource(settings)), TriageSettings())
    runs = []
    try:
        for number, (problem, labels) in enumerate(alerts):
            alert = AlertInput(
                fingerprint=f"{number:016x}",
                alertname=labels.get("alertname", "KubePodCrashLooping"),
                status="firing",
                starts_at=starts,
                labels=labels,
                annotations={},
            )
            before = len(api.requests)
            started = time.perf_counter()
            result = (await pipeline.run(alert)).result
            wall = time.perf_counter() - started
            runs.append(
                {
                    "problem": problem,
                    "wall_s": wall,
                    "requests": len(api.requests) - before,
                    "category": result["root_cause"]["category"],
                    "gaps": len(result["gaps"]),
                }
            )
    finally:
        await pipeline.aclose()
    return runs


def run_size(pods: int, alerts: int, latency: float, workdir: Path) -> dict[str, Any]:
    root = workdir / f"cluster-{pods}"
    started = time.perf_counter()
    cluster = generate_cluster(root, pods)
    generated = time.perf_counter() - started
    _log(f"{pods} pods: generated in {generated:.1f}s, {cluster.events} events; serving")
    incidents = cluster.incidents[:alerts]
    chosen = [(i.problem, i.alert_labels) for i in incidents]
    started = time.perf_counter()
    with KubeApiFake(root, latency=latency) as api:
        loaded = time.perf_counter() - started
        kubeconfig = api.write_kubeconfig(workdir / f"kubeconfig-{pods}")
        starts = cluster.captured_at - timedelta(minutes=5)
        runs = asyncio.run(_triage_all(api, kubeconfig, chosen, starts))
    walls = [r["wall_s"] for r in runs]
    requests = [float(r["requests"]) for r in runs]
    correct = sum(r["category"] == r["problem"] for r in runs)
    _log(
        f"{pods} pods: p50 {statistics.median(walls) * 1000:.0f} ms, "
        f"requests p50 {statistics.median(requests):.0f}, {correct}/{len(runs)} named right"
    )
    return {
        "pods": pods,
        "events": cluster.events,
        "generate_s": round(generated, 2),
        "fake_index_s": round(loaded, 2),
        "triages": len(runs),
        "wall_ms": {
            "p50": round(statistics.median(walls) * 1000, 1),
            "p95": round(_percentile(walls, 0.95) * 1000, 1),
            "max": round(max(walls) * 1000, 1),
        },
        "requests": {"p50": statistics.median(requests), "max": max(requests)},
        "named_right": f"{correct}/{len(runs)}",
        "wrong": [
            {"problem": r["problem"], "got": r["category"]}
            for r in runs
            if r["category"] != r["problem"]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="500,5000,20000")
    parser.add_argument("--alerts", type=int, default=20, help="pod alerts triaged per size")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per API request")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="oncallm-gather-") as tmp:
        results = [run_size(size, args.alerts, args.latency, Path(tmp)) for size in sizes]
    small, large = results[0], results[-1]
    growth = {
        "wall_p50": round(large["wall_ms"]["p50"] / small["wall_ms"]["p50"], 2),
        "requests_p50": round(large["requests"]["p50"] / small["requests"]["p50"], 2),
    }
    goal_met = (
        all(r["wall_ms"]["p50"] < GOAL_P50_SECONDS * 1000 for r in results)
        and all(r["requests"]["max"] <= GOAL_MAX_REQUESTS for r in results)
        and growth["wall_p50"] <= GOAL_GROWTH
        and growth["requests_p50"] <= GOAL_GROWTH
    )
    report = {
        "benchmark": "gather",
        "latency_ms_per_request": args.latency * 1000,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "sizes": results,
        "growth_smallest_to_largest": growth,
        "goal": {
            "p50_ms_below": GOAL_P50_SECONDS * 1000,
            "max_requests": GOAL_MAX_REQUESTS,
            "max_growth": GOAL_GROWTH,
        },
        "goal_met": goal_met,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
