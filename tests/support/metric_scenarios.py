"""The cluster and alerts around the three failures ``prometheus_tsdb`` backfills.

A memory leak ending in an OOM kill (shop/cart), a container throttled at its CPU limit
behind a latency alert (pricing/pricing-engine) and a filling volume (data/pg-data-0): the
objects as ``kubectl get -o json`` prints them, in a snapshot directory whose "now" is the
series' end, and the alerts Alertmanager would post. The metrics end-to-end tests and
``benchmarks/metrics.py`` triage these against a real Prometheus.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from oncallm.sources.base import ObjectRef
from oncallm.triage.context import AlertInput
from tests.support import prometheus_tsdb as tsdb
from tests.unit import kubeobjects as k

END = k.NOW  # the series end "now", as the snapshot's captured_at
GENERATOR = "http://prometheus.monitoring.example:9090/graph?g0.expr=up&g0.tab=1"


def objects() -> list[dict[str, Any]]:
    cart_ctr = k.container("cart", limits={"memory": "512Mi", "cpu": "1"},
                           requests={"memory": "512Mi", "cpu": "250m"})  # fmt: skip
    killed = {"exitCode": 137, "reason": "OOMKilled", "startedAt": k.ts(120),
              "finishedAt": k.ts(30)}  # fmt: skip
    status = k.running_status("cart", restarts=1, last_terminated=killed)
    cart_pod = k.pod(tsdb.MEMORY_LABELS["pod"], labels={"app": "cart"},
                     owner=ObjectRef("ReplicaSet", "shop", "cart-7d9c6b5f4"),
                     containers=[cart_ctr], statuses=[status])  # fmt: skip
    pricing_ctr = k.container("pricing-engine", limits={"cpu": "500m", "memory": "1Gi"},
                              requests={"cpu": "500m", "memory": "1Gi"})  # fmt: skip
    pricing_pod = k.pod(tsdb.CPU_LABELS["pod"], "pricing", labels={"app": "pricing-engine"},
                        owner=ObjectRef("ReplicaSet", "pricing", "pricing-engine-769488689f"),
                        containers=[pricing_ctr])  # fmt: skip
    mount = {"name": "data", "mountPath": "/var/lib/postgresql"}
    pg_ctr = k.container("postgres", limits={"memory": "2Gi"}, volume_mounts=[mount])
    pg_pod = k.pod("pg-0", "data", labels={"app": "pg"},
                   owner=ObjectRef("StatefulSet", "data", "pg"), containers=[pg_ctr],
                   volumes=[{"name": "data",
                             "persistentVolumeClaim": {"claimName": "pg-data-0"}}])  # fmt: skip
    return [
        k.deployment("cart", containers=[cart_ctr]),
        k.replicaset("cart-7d9c6b5f4", "cart", revision=2, replicas=1, containers=[cart_ctr]),
        cart_pod,
        k.deployment("pricing-engine", "pricing", containers=[pricing_ctr]),
        k.replicaset(
            "pricing-engine-769488689f",
            "pricing-engine",
            "pricing",
            revision=5,
            replicas=1,
            containers=[pricing_ctr],
        ),
        pricing_pod,
        k.statefulset("pg", "data", containers=[pg_ctr]),
        pg_pod,
        k.pvc("pg-data-0", "data", size="10Gi", storage_class="gp3"),
        k.storage_class("gp3", expandable=True),
        k.node("node-a"),
        *(k.namespace(ns) for ns in ("shop", "pricing", "data")),
    ]


def write_snapshot(directory: Path) -> Path:
    """The scenario cluster as a snapshot directory (DESIGN.md 4.2) whose "now" is END."""
    directory.mkdir(parents=True, exist_ok=True)
    for number, obj in enumerate(objects()):
        (directory / f"{number:02d}-{obj['kind'].lower()}.json").write_text(json.dumps(obj))
    meta = {"cluster": "e2e", "captured_at": END.isoformat()}
    (directory / "snapshot.yaml").write_text(yaml.safe_dump(meta))
    return directory


ALERTS = {
    "memory": AlertInput(
        "e2e-memory", "KubePodCrashLooping", "firing", END - timedelta(minutes=29),
        {"alertname": "KubePodCrashLooping", "namespace": "shop",
         "pod": tsdb.MEMORY_LABELS["pod"], "container": "cart"},
        {"description": "Pod shop/cart is in waiting state (reason: CrashLoopBackOff)."},
        GENERATOR,
    ),
    "cpu": AlertInput(
        "e2e-cpu", "PricingLatencyHigh", "firing", END - timedelta(minutes=10),
        {"alertname": "PricingLatencyHigh", "namespace": "pricing",
         "deployment": "pricing-engine"},
        {"summary": "p99 latency of pricing-engine is above 1s"},
        GENERATOR,
    ),
    "volume": AlertInput(
        "e2e-volume", "KubePersistentVolumeFillingUp", "firing", END - timedelta(minutes=5),
        {"alertname": "KubePersistentVolumeFillingUp", "namespace": "data",
         "persistentvolumeclaim": "pg-data-0"},
        {"description": "The PersistentVolume claimed by pg-data-0 in Namespace data is only "
                        "4% free."},
        GENERATOR,
    ),
}  # fmt: skip
