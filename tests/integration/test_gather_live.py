"""Triage through the live source, against the Kubernetes API fake: the same answer as
from the snapshot, reads that follow the alert's neighbourhood, and gaps for failed reads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oncallm.config import ClusterSettings, TriageSettings
from oncallm.sources.kubernetes import KubernetesSource
from oncallm.sources.snapshot import SnapshotSource
from oncallm.triage.oneshot import load_alerts, triage_alerts
from tests.fakes.kube_api import KubeApiFake
from tests.support.schema import assert_valid_result
from tests.support.services import REPO_ROOT, oncallm_env, run_oncallm

CASE = REPO_ROOT / "evals" / "cases" / "configmap-missing-key-behind-service"
CONFIGMAP = {"kind": "ConfigMap", "namespace": "shop", "name": "api-config"}


@pytest.fixture(scope="module")
def api() -> Iterator[KubeApiFake]:
    with KubeApiFake(CASE / "snapshot") as server:
        yield server


async def _live_triage(api: KubeApiFake, tmp_path: Path) -> dict[str, Any]:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    source = KubernetesSource(ClusterSettings(kubeconfig=kubeconfig, timeout_seconds=5))
    results = await triage_alerts(load_alerts(CASE / "alert.json"), source, TriageSettings())
    return results[0]


async def test_live_triage_matches_the_snapshot_triage(api: KubeApiFake, tmp_path: Path) -> None:
    api.clear_faults()
    live = await _live_triage(api, tmp_path)
    offline = (
        await triage_alerts(
            load_alerts(CASE / "alert.json"), SnapshotSource(CASE / "snapshot"), TriageSettings()
        )
    )[0]
    assert_valid_result(live)
    assert live["root_cause"]["category"] == "ConfigError"
    assert live["root_cause"]["resource"] == CONFIGMAP
    assert "DATABASE_URL" in live["root_cause"]["summary"]
    assert live["root_cause"] == offline["root_cause"]
    assert live["inspected"] == offline["inspected"]
    assert live["gaps"] == []


async def test_reads_follow_the_neighbourhood_not_the_namespace(
    api: KubeApiFake, tmp_path: Path
) -> None:
    api.clear_faults()
    before = len(api.requests)
    await _live_triage(api, tmp_path)
    served = api.requests[before:]
    assert 0 < len(served) <= 40
    events = [r for r in served if r.path.endswith("/events")]
    assert events, "no events were read"
    for request in events:  # one object's events each, never a namespace dump
        selector = request.params.get("fieldSelector", "")
        assert "involvedObject.kind=" in selector, request
        assert "involvedObject.name=" in selector, request
    assert all(r.method == "GET" for r in served)


async def test_a_forbidden_read_is_a_gap_and_triage_carries_on(
    api: KubeApiFake, tmp_path: Path
) -> None:
    api.clear_faults()
    api.fail(r"/namespaces/shop/events", status=403)
    api.fail(r"/namespaces/shop/limitranges", status=500)
    try:
        result = await _live_triage(api, tmp_path)
    finally:
        api.clear_faults()
    assert_valid_result(result)
    gaps = {g["source"]: g["error"] for g in result["gaps"]}
    pod_gaps = [s for s in gaps if re.fullmatch(r"events for Pod shop/api-\S+", s)]
    assert pod_gaps, gaps
    assert gaps[pod_gaps[0]].startswith("403 Forbidden")
    assert any(s == "list LimitRange in namespace shop" for s in gaps), gaps
    # The pod status alone still shows the missing key.
    assert result["root_cause"]["category"] == "ConfigError"
    assert result["root_cause"]["resource"] == CONFIGMAP


def test_the_cli_triages_a_live_cluster_by_kubeconfig_context(
    api: KubeApiFake, tmp_path: Path
) -> None:
    api.clear_faults()
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", context="prod-eu-1")
    env = oncallm_env(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    args = ["triage", "--alert", str(CASE / "alert.json"), "--kubeconfig", str(kubeconfig)]
    done = run_oncallm([*args, "--context", "prod-eu-1", "-f", "json"], env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)[0]
    assert result["root_cause"]["resource"] == CONFIGMAP
    done = run_oncallm([*args, "--context", "staging"], env)
    assert done.returncode == 2
    assert "staging" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
