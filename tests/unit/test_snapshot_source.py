"""The snapshot source answers like a cluster: selectors, events by exact object, logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from oncallm.errors import BadRequest, SnapshotError
from oncallm.sources.base import ObjectRef
from oncallm.sources.snapshot import SnapshotSource


def _pod(name: str, labels: dict[str, str], node: str = "node-a") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": labels,
                     "creationTimestamp": "2026-11-26T01:00:00Z"},
        "spec": {"nodeName": node, "containers": [{"name": "api", "image": "api:1"}]},
        "status": {"phase": "Running"},
    }  # fmt: skip


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    pods = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            _pod("api-1", {"app": "api", "tier": "web"}),
            _pod("api-2", {"app": "api", "tier": "web", "canary": "true"}, node="node-b"),
            _pod("worker-1", {"app": "worker"}),
        ],
    }
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "pods.json").write_text(json.dumps(pods))
    (tmp_path / "shop" / "config.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: api-1, namespace: shop}\n"
        "data: {LOG_LEVEL: info}\n---\n"
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\n"
        '  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: \'{"data":'
        '{"password":"aHVudGVyMg=="}}\'\n'
        "data: {password: aHVudGVyMg==, username: YXBw}\n"
    )
    events = [
        {   # same name as the pod, other kind: must not be reported for the pod
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "api-1.1", "namespace": "shop"},
            "involvedObject": {"kind": "ConfigMap", "namespace": "shop", "name": "api-1"},
            "reason": "Updated", "message": "cm", "type": "Normal",
            "lastTimestamp": "2026-11-26T02:00:00Z",
        },
        {
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "api-1.2", "namespace": "shop"},
            "regarding": {"kind": "Pod", "namespace": "shop", "name": "api-1"},
            "reason": "BackOff", "note": "Back-off restarting failed container api",
            "type": "Warning", "eventTime": "2026-11-26T02:10:00.000000Z",
            "series": {"count": 7, "lastObservedTime": "2026-11-26T02:30:00.000000Z"},
        },
    ]  # fmt: skip
    (tmp_path / "events.json").write_text(json.dumps({"kind": "List", "items": events}))
    logs = tmp_path / "logs" / "shop" / "api-1"
    logs.mkdir(parents=True)
    (logs / "api.log").write_text("".join(f"line {i}\n" for i in range(500)))
    (logs / "api.previous.log").write_text("panic: boom\n")
    return tmp_path


async def test_lists_by_label_and_field_selectors(snapshot: Path) -> None:
    source = SnapshotSource(snapshot)
    names = lambda objs: sorted(o["metadata"]["name"] for o in objs)  # noqa: E731
    assert names(await source.list_objects("Pod", "shop", label_selector="app=api")) == [
        "api-1",
        "api-2",
    ]
    assert names(await source.list_objects("Pod", None, label_selector="app in (api),!canary")) == [
        "api-1"
    ]
    assert names(await source.list_objects("Pod", None, field_selector="spec.nodeName=node-b")) == [
        "api-2"
    ]
    assert names(await source.list_objects("Pod", "shop", label_selector="tier!=web")) == [
        "worker-1"
    ]
    with pytest.raises(BadRequest, match="invalid label selector"):
        await source.list_objects("Pod", "shop", label_selector="app in api")


async def test_events_match_kind_namespace_and_name_and_newer_api_is_normalised(
    snapshot: Path,
) -> None:
    source = SnapshotSource(snapshot)
    events = await source.events_for(ObjectRef("Pod", "shop", "api-1"))
    assert [(e["reason"], e["message"], e["count"]) for e in events] == [
        ("BackOff", "Back-off restarting failed container api", 7)
    ]
    assert events[0]["lastTimestamp"].startswith("2026-11-26T02:30")
    assert await source.events_for(ObjectRef("Pod", "other", "api-1")) == []


async def test_secret_values_never_leave_the_source(snapshot: Path) -> None:
    secret = await SnapshotSource(snapshot).get("Secret", "db", "shop")
    assert secret is not None
    assert secret["data"] == {"password": "", "username": ""}
    assert "aHVudGVyMg" not in json.dumps(secret)


async def test_logs_are_tail_bounded_and_previous_is_separate(snapshot: Path) -> None:
    source = SnapshotSource(snapshot)
    current = await source.logs("shop", "api-1", "api", tail_lines=3)
    assert current == "line 497\nline 498\nline 499\n"
    clipped = await source.logs("shop", "api-1", "api", tail_lines=500, limit_bytes=9)
    assert clipped == "line 499\n"
    assert await source.logs("shop", "api-1", "api", previous=True) == "panic: boom\n"
    assert await source.logs("shop", "api-2", "api", previous=True) is None


async def test_now_is_the_newest_timestamp_without_a_manifest(snapshot: Path) -> None:
    now = await SnapshotSource(snapshot).now()
    assert now.isoformat().startswith("2026-11-26T02:30")
    (snapshot / "snapshot.yaml").write_text("cluster: prod\ncaptured_at: 2026-11-26T03:00:00Z\n")
    source = SnapshotSource(snapshot)
    assert (await source.now()).isoformat().startswith("2026-11-26T03:00")
    assert source.cluster == "prod"


def test_bad_snapshots_are_refused_with_the_file_named(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="does not exist"):
        SnapshotSource(tmp_path / "missing")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(SnapshotError, match=r"broken\.json: cannot be parsed"):
        SnapshotSource(tmp_path)
    (tmp_path / "broken.json").write_text('{"apiVersion": "v1", "metadata": {"name": "x"}}')
    with pytest.raises(SnapshotError, match=r"broken\.json: not a Kubernetes object"):
        SnapshotSource(tmp_path)
    (tmp_path / "broken.json").write_text('{"apiVersion": "v1", "kind": "Pod", "metadata": {}}')
    with pytest.raises(SnapshotError, match=r"Pod without metadata\.name"):
        SnapshotSource(tmp_path)
