"""The live cluster source against the Kubernetes API fake, over real HTTPS.

What triage relies on: objects exactly as kubectl prints them, selectors and event
filters applied by the API server, bounded logs that keep their newest lines, Secret
values that never leave the source, failures as one readable SourceError, and the
cluster's request limits honoured. Then: which cluster an alert's label selects.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from oncallm.config import ClusterSettings, KubernetesSettings
from oncallm.sources.base import ClusterSource, ObjectRef, SourceError
from oncallm.sources.clusters import ClusterSources
from oncallm.sources.kubernetes import KubernetesSource
from oncallm.sources.snapshot import SnapshotSource
from tests.fakes.generate_cluster import generate_cluster
from tests.fakes.kube_api import KubeApiFake, write_kubeconfig
from tests.support.services import REPO_ROOT

SMALL = REPO_ROOT / "tests" / "fakes" / "clusters" / "small"
CRASHING = "api-7c9d8f6b5d-q8w2n"
HEALTHY = "api-7c9d8f6b5d-x2x9k"
CRASH_LOG = SMALL / "logs" / "shop" / CRASHING


def snapshot_items(relative: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((SMALL / relative).read_text())["items"]
    return items


def names(objects: list[dict[str, Any]]) -> list[str]:
    return [o["metadata"]["name"] for o in objects]


@pytest.fixture(scope="module")
def api() -> Iterator[KubeApiFake]:
    with KubeApiFake(SMALL) as server:
        yield server


@pytest.fixture
def kubeconfig(api: KubeApiFake, tmp_path: Path) -> Iterator[Path]:
    yield api.write_kubeconfig(tmp_path / "kubeconfig", context="small")
    api.clear_faults()


def live(kubeconfig: Path, **settings: Any) -> KubernetesSource:
    defaults: dict[str, Any] = {"qps": 1000, "concurrency": 16, "timeout_seconds": 5}
    return KubernetesSource(ClusterSettings(kubeconfig=kubeconfig, **{**defaults, **settings}))


@pytest.fixture
async def source(kubeconfig: Path) -> AsyncIterator[KubernetesSource]:
    cluster = live(kubeconfig)
    yield cluster
    await cluster.close()


# --- objects --------------------------------------------------------------------------


async def test_objects_come_back_exactly_as_kubectl_prints_them(source: KubernetesSource) -> None:
    assert isinstance(source, ClusterSource)
    assert source.cluster == "small"  # the kubeconfig context
    assert await source.get("Pod", CRASHING, "shop") == snapshot_items("shop/pods.json")[1]
    assert await source.get("Node", "worker-1") == snapshot_items("cluster/nodes.json")[0]
    assert await source.get("Pod", "checkout-1", "shop") is None
    assert await source.get("Deployment", "api", "default") is None


async def test_list_items_carry_api_version_and_kind(source: KubernetesSource) -> None:
    # The API server leaves both off list items; analyzers and snapshot files need them.
    assert await source.list_objects("Pod", "shop") == snapshot_items("shop/pods.json")
    (replica_set,) = await source.list_objects("ReplicaSet", "shop")
    assert (replica_set["apiVersion"], replica_set["kind"]) == ("apps/v1", "ReplicaSet")
    assert names(await source.list_objects("Namespace")) == ["default", "kube-system", "shop"]
    assert names(await source.list_objects("Pod")) == [HEALTHY, CRASHING]  # all namespaces


async def test_selectors_are_applied_by_the_api_server(
    source: KubernetesSource, api: KubeApiFake
) -> None:
    async def pods(**selectors: str) -> list[str]:
        return names(await source.list_objects("Pod", "shop", **selectors))

    both = "app.kubernetes.io/name=api,pod-template-hash in (7c9d8f6b5d)"
    assert await pods(label_selector=both) == [HEALTHY, CRASHING]
    assert await pods(label_selector="!app.kubernetes.io/name") == []
    assert await pods(label_selector="app.kubernetes.io/name notin (api)") == []
    assert await pods(field_selector=f"status.phase=Running,metadata.name!={HEALTHY}") == [CRASHING]
    assert await pods(field_selector="spec.nodeName=worker-2") == []
    served = [r for r in api.requests if r.path == "/api/v1/namespaces/shop/pods"][-5:]
    assert served[0].params["labelSelector"] == (
        "app.kubernetes.io/name=api,pod-template-hash in (7c9d8f6b5d)"
    )
    assert served[3].params["fieldSelector"] == f"status.phase=Running,metadata.name!={HEALTHY}"


async def test_big_lists_arrive_in_pages(tmp_path: Path) -> None:
    cluster = generate_cluster(tmp_path / "cluster", 1200, seed=3)
    with KubeApiFake(cluster.root) as server:
        source = live(server.write_kubeconfig(tmp_path / "kubeconfig"))
        try:
            pods = await source.list_objects("Pod")
        finally:
            await source.close()
    assert len(pods) == 1200
    assert {p["kind"] for p in pods} == {"Pod"}
    pages = [r for r in server.requests if r.path == "/api/v1/pods"]
    assert [r.params.get("limit") for r in pages] == ["500", "500", "500"]


async def test_events_are_filtered_by_the_api_server_to_the_involved_object(
    source: KubernetesSource, api: KubeApiFake
) -> None:
    events = await source.events_for(ObjectRef("Pod", "shop", CRASHING))
    assert {e["involvedObject"]["name"] for e in events} == {CRASHING}
    assert {e["reason"] for e in events} >= {"BackOff", "Unhealthy"}
    assert all(e["apiVersion"] == "v1" and e["kind"] == "Event" for e in events)
    last = api.requests[-1]
    assert last.path == "/api/v1/namespaces/shop/events"  # never a namespace-wide dump:
    assert last.params["fieldSelector"] == (
        f"involvedObject.kind=Pod,involvedObject.name={CRASHING},involvedObject.namespace=shop"
    )
    (scaled,) = await source.events_for(ObjectRef("Deployment", "shop", "api"))
    assert scaled["reason"] == "ScalingReplicaSet"
    assert await source.events_for(ObjectRef("Node", None, "worker-1")) == []
    assert api.requests[-1].path == "/api/v1/events"  # node events live in any namespace


# --- logs -----------------------------------------------------------------------------


async def test_current_and_previous_logs(source: KubernetesSource) -> None:
    current = await source.logs("shop", CRASHING, "api")
    previous = await source.logs("shop", CRASHING, "api", previous=True)
    assert current == (CRASH_LOG / "api.log").read_text()
    assert previous == (CRASH_LOG / "api.previous.log").read_text()
    # No previous instance, no such pod, no such container: no log, not a failure.
    assert await source.logs("shop", HEALTHY, "api", previous=True) is None
    assert await source.logs("shop", "checkout-1", "api") is None
    assert await source.logs("shop", HEALTHY, "sidecar") is None


async def test_logs_are_bounded_and_keep_their_newest_lines(source: KubernetesSource) -> None:
    lines = (CRASH_LOG / "api.log").read_text().splitlines(keepends=True)
    assert await source.logs("shop", CRASHING, "api", tail_lines=2) == "".join(lines[-2:])
    # 150 bytes hold the last line but not the last two: the API server would cut the end
    # (the crash) off a longer tail, so the source asks again for fewer lines.
    assert len(lines[-1]) < 150 < len(lines[-1]) + len(lines[-2])
    assert await source.logs("shop", CRASHING, "api", limit_bytes=150) == lines[-1]


# --- secrets --------------------------------------------------------------------------


async def test_secret_values_never_leave_the_source(
    source: KubernetesSource, api: KubeApiFake
) -> None:
    stored = snapshot_items("shop/secrets.json")[0]
    assert all(stored["data"].values())  # the API server does send the values
    fetched = await source.get("Secret", "api-credentials", "shop")
    (listed,) = await source.list_objects("Secret", "shop")
    for secret in (fetched, listed):
        assert secret is not None
        assert secret["data"] == {"database-url": "", "payment-api-key": ""}
        assert "kubectl.kubernetes.io/last-applied-configuration" not in json.dumps(secret)
    assert api.requests[-1].status == 200


# --- failures -------------------------------------------------------------------------


async def test_a_forbidden_read_is_a_source_error_in_the_api_s_words(
    source: KubernetesSource, api: KubeApiFake
) -> None:
    api.fail(r"/namespaces/shop/secrets", status=403)
    with pytest.raises(SourceError) as denied:
        await source.list_objects("Secret", "shop")
    assert denied.value.detail == (
        '403 Forbidden: secrets is forbidden: User "system:serviceaccount:oncallm:oncallm" '
        'cannot list resource "secrets" in API group "" in the namespace "shop"'
    )
    api.fail(r"/pods/.*/log", status=403)
    with pytest.raises(
        SourceError, match=r'^403 Forbidden: pods "api-7c9d8f6b5d-q8w2n" is forbidden'
    ):
        await source.logs("shop", CRASHING, "api")


async def test_a_server_error_is_a_source_error(source: KubernetesSource, api: KubeApiFake) -> None:
    api.fail(r"/deployments/api$", status=500)
    with pytest.raises(SourceError) as failed:
        await source.get("Deployment", "api", "shop")
    assert (
        failed.value.detail == "500 Internal Server Error: Internal error occurred: injected fault"
    )


async def test_a_slow_api_server_hits_the_timeout(kubeconfig: Path, api: KubeApiFake) -> None:
    api.slow(r"/namespaces/shop/configmaps", 5)
    source = live(kubeconfig, timeout_seconds=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(
            SourceError, match=r"^cluster small: timed out after 0\.3s: list configmaps in shop$"
        ):
            await source.list_objects("ConfigMap", "shop")
    finally:
        await source.close()
    assert time.monotonic() - started < 2


async def test_an_unreachable_api_server_is_a_source_error(tmp_path: Path) -> None:
    with KubeApiFake(SMALL) as gone:
        kubeconfig = gone.write_kubeconfig(tmp_path / "kubeconfig")
        address = gone.url
    source = live(kubeconfig)
    try:
        with pytest.raises(
            SourceError, match=f"^cluster fake: cannot reach the API server {address}"
        ):
            await source.get("Pod", CRASHING, "shop")
    finally:
        await source.close()


def test_an_unknown_context_or_missing_kubeconfig_is_a_clear_error(
    kubeconfig: Path, tmp_path: Path
) -> None:
    with pytest.raises(SourceError) as unknown:
        KubernetesSource(ClusterSettings(kubeconfig=kubeconfig, context="prod"))
    assert (
        unknown.value.detail == f"kubeconfig {kubeconfig} has no context 'prod' (contexts: small)"
    )
    missing = tmp_path / "nowhere" / "config"
    with pytest.raises(
        SourceError,
        match=f"^no Kubernetes configuration found: Configuration file {missing} not found",
    ):
        KubernetesSource(ClusterSettings(kubeconfig=missing))


# --- limits ---------------------------------------------------------------------------


async def test_requests_are_spaced_to_the_qps_limit(kubeconfig: Path) -> None:
    source = live(kubeconfig, qps=10, burst=10)
    started = time.monotonic()
    try:
        found = await asyncio.gather(*(source.get("Pod", CRASHING, "shop") for _ in range(30)))
    finally:
        await source.close()
    elapsed = time.monotonic() - started
    assert all(found)
    # A burst of 10 may start at once; the other 20 follow at 10/s.
    assert elapsed >= (30 - 10) / 10 - 0.05
    assert elapsed < 6


async def test_requests_in_flight_are_bounded(tmp_path: Path) -> None:
    # A server of its own: another test's abandoned slow request must not count here.
    with KubeApiFake(SMALL) as server:
        server.slow(r"/namespaces/shop/pods/", 0.2)
        source = live(server.write_kubeconfig(tmp_path / "kubeconfig"), concurrency=2)
        started = time.monotonic()
        try:
            await asyncio.gather(*(source.get("Pod", CRASHING, "shop") for _ in range(6)))
        finally:
            await source.close()
        assert server.peak_in_flight == 2
    assert time.monotonic() - started >= 3 * 0.2


# --- which cluster --------------------------------------------------------------------


@pytest.fixture
def staging() -> Iterator[KubeApiFake]:
    with KubeApiFake(SMALL) as server:
        yield server


def served(fake: KubeApiFake) -> int:
    return len(fake.requests)


async def test_the_alert_s_cluster_label_picks_the_source(
    api: KubeApiFake, staging: KubeApiFake, tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"prod": api, "staging": staging})
    settings = KubernetesSettings(
        clusters={
            "prod": ClusterSettings(kubeconfig=kubeconfig, context="prod"),
            "staging": ClusterSettings(kubeconfig=kubeconfig, context="staging"),
            "offline": ClusterSettings(snapshot=SMALL),
        },
        default_cluster="prod",
    )
    sources = ClusterSources(settings)
    try:
        prod_before, staging_before = served(api), served(staging)
        assert await sources.source_for("staging").get("Pod", CRASHING, "shop") is not None
        assert (served(api), served(staging)) == (prod_before, staging_before + 1)
        prod = sources.source_for("prod")
        assert prod.cluster == "prod"
        # No label, or a label nobody configured: the default cluster.
        assert sources.source_for(None) is prod
        assert sources.source_for("eu-west-9") is prod
        await sources.source_for(None).get("Node", "worker-1")
        assert served(api) == prod_before + 1
        offline = sources.source_for("offline")
        assert isinstance(offline, SnapshotSource)
        assert offline is sources.source_for("offline")  # indexed once
        assert await offline.get("Pod", CRASHING, "shop") is not None
    finally:
        await sources.aclose()


def test_without_a_default_an_unknown_label_is_a_clear_error(tmp_path: Path) -> None:
    two = KubernetesSettings(
        clusters={
            "prod": ClusterSettings(snapshot=SMALL),
            "staging": ClusterSettings(snapshot=SMALL),
        }
    )
    with pytest.raises(SourceError) as unknown:
        ClusterSources(two).source_for("eu-west-9")
    assert unknown.value.detail == (
        "the alert's cluster 'eu-west-9' is not configured (clusters: prod, staging) "
        "and kubernetes.default_cluster is unset"
    )
    with pytest.raises(SourceError, match="the alert has no cluster label"):
        ClusterSources(two).source_for(None)
    only = ClusterSources(KubernetesSettings(clusters={"prod": ClusterSettings(snapshot=SMALL)}))
    assert only.source_for("anything") is only.source_for(None)


def test_a_source_that_cannot_be_built_is_retried_later(tmp_path: Path) -> None:
    folder = tmp_path / "snapshot"
    sources = ClusterSources(
        KubernetesSettings(clusters={"offline": ClusterSettings(snapshot=folder)})
    )
    with pytest.raises(SourceError) as missing:
        sources.source_for("offline")
    assert missing.value.detail == f"cluster offline: snapshot directory {folder} does not exist"
    folder.mkdir()
    (folder / "snapshot.yaml").write_text("cluster: restored\n")
    assert sources.source_for("offline").cluster == "restored"


async def test_with_no_clusters_configured_the_standard_kubeconfig_is_used(
    kubeconfig: Path, api: KubeApiFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    sources = ClusterSources(KubernetesSettings())
    try:
        source = sources.source_for("whatever-the-alert-says")
        assert source.cluster == "small"
        assert names(await source.list_objects("Node")) == ["worker-1"]
    finally:
        await sources.aclose()
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig.parent / "missing"))
    with pytest.raises(SourceError, match=r"^no Kubernetes configuration found"):
        ClusterSources(KubernetesSettings()).source_for(None)
