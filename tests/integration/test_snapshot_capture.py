"""`oncallm snapshot capture` against the Kubernetes API fake.

A capture must be a faithful, safe copy: loaded back as a snapshot it answers every query
as the cluster did, it holds the logs of the pods in trouble, and no Secret value is
written to disk. Bad input fails with one readable line and exit code 2.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from oncallm.sources.base import ObjectRef
from oncallm.sources.snapshot import SnapshotSource
from tests.fakes.kube_api import KubeApiFake
from tests.support.services import REPO_ROOT, run_oncallm

SMALL = REPO_ROOT / "tests" / "fakes" / "clusters" / "small"
CRASHING = "api-7c9d8f6b5d-q8w2n"
HEALTHY = "api-7c9d8f6b5d-x2x9k"


@pytest.fixture(scope="module")
def api() -> Iterator[KubeApiFake]:
    with KubeApiFake(SMALL) as server:
        yield server


@pytest.fixture
def kubeconfig(api: KubeApiFake, tmp_path: Path) -> Iterator[Path]:
    yield api.write_kubeconfig(tmp_path / "kubeconfig", context="small")
    api.clear_faults()


def env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith("ONCALLM_") and k != "KUBECONFIG"
    }


def capture(kubeconfig: Path, output: Path, *args: str) -> tuple[int, str, str]:
    done = run_oncallm(
        ["snapshot", "capture", "--kubeconfig", str(kubeconfig), "-o", str(output), *args], env()
    )
    return done.returncode, done.stdout, done.stderr


async def test_a_capture_loads_back_as_the_same_cluster(kubeconfig: Path, tmp_path: Path) -> None:
    output = tmp_path / "captured"
    code, stdout, stderr = capture(kubeconfig, output)
    assert code == 0, stderr
    assert stdout == f"captured 12 objects, 12 events and 2 logs from cluster small into {output}\n"
    original, captured = SnapshotSource(SMALL), SnapshotSource(output)
    assert captured.cluster == "small"
    assert set(captured.index.by_ref) == set(original.index.by_ref)
    for ref, obj in original.index.by_ref.items():
        assert await captured.get(ref.kind, ref.name, ref.namespace) == obj, ref
    for ref in original.index.events:
        # Listed in name order, as the API server lists them.
        expected = sorted(await original.events_for(ref), key=lambda e: e["metadata"]["name"])
        assert await captured.events_for(ref) == expected, ref
    # Pods in trouble have their logs, current and previous; healthy pods have none.
    for previous in (False, True):
        assert await captured.logs("shop", CRASHING, "api", previous=previous) == (
            await original.logs("shop", CRASHING, "api", previous=previous)
        )
    assert await captured.logs("shop", HEALTHY, "api") is None
    assert await captured.list_objects("Pod", "shop", label_selector="app.kubernetes.io/name=api")


def test_secret_values_are_never_written(kubeconfig: Path, tmp_path: Path) -> None:
    output = tmp_path / "captured"
    assert capture(kubeconfig, output, "--namespace", "shop")[0] == 0
    (secret,) = json.loads((output / "shop" / "secrets.json").read_text())["items"]
    assert secret["data"] == {"database-url": "", "payment-api-key": ""}
    stored = json.loads((SMALL / "shop" / "secrets.json").read_text())["items"][0]["data"]
    written = "".join(p.read_text() for p in output.rglob("*") if p.is_file())
    for value in stored.values():
        assert value not in written
    assert "s3cr3t-Pa55" not in written


def test_only_the_named_namespaces_are_captured(kubeconfig: Path, tmp_path: Path) -> None:
    output = tmp_path / "captured"
    code, stdout, _ = capture(kubeconfig, output, "-n", "shop")
    assert code == 0
    assert stdout.startswith("captured 10 objects, 12 events and 2 logs")
    namespaces = SnapshotSource(output).index.by_kind_all["Namespace"]
    assert [n["metadata"]["name"] for n in namespaces] == ["shop"]
    assert sorted(p.name for p in output.iterdir()) == [
        "cluster",
        "events.json",
        "logs",
        "shop",
        "snapshot.yaml",
    ]


def test_a_forbidden_kind_is_skipped_and_reported(
    kubeconfig: Path, api: KubeApiFake, tmp_path: Path
) -> None:
    api.fail(r"/namespaces/shop/secrets", status=403)
    output = tmp_path / "captured"
    code, stdout, stderr = capture(kubeconfig, output, "-n", "shop")
    assert code == 0
    assert stdout.startswith("captured 9 objects, 12 events and 2 logs")
    assert stdout.rstrip().endswith("(1 reads skipped)")
    assert stderr.strip() == (
        'skipped Secret in shop: 403 Forbidden: secrets is forbidden: User "system:serviceaccount:'
        'oncallm:oncallm" cannot list resource "secrets" in API group "" in the namespace "shop"'
    )
    assert not (output / "shop" / "secrets.json").exists()
    assert SnapshotSource(output).index.by_ref.get(ObjectRef("Pod", "shop", CRASHING))


def test_an_unknown_context_is_one_clear_line(kubeconfig: Path, tmp_path: Path) -> None:
    output = tmp_path / "captured"
    code, stdout, stderr = capture(kubeconfig, output, "--context", "prod")
    assert (code, stdout) == (2, "")
    assert stderr == f"error: kubeconfig {kubeconfig} has no context 'prod' (contexts: small)\n"
    assert not output.exists()


def test_an_unknown_namespace_is_one_clear_line(kubeconfig: Path, tmp_path: Path) -> None:
    code, _, stderr = capture(kubeconfig, tmp_path / "captured", "-n", "shop", "-n", "checkout")
    assert code == 2
    assert stderr == "error: no namespace 'checkout' in the cluster\n"


def test_a_used_output_directory_is_refused(kubeconfig: Path, tmp_path: Path) -> None:
    output = tmp_path / "captured"
    output.mkdir()
    (output / "notes.txt").write_text("keep me")
    code, _, stderr = capture(kubeconfig, output)
    assert code == 2
    assert stderr == f"error: {output} exists and is not an empty directory\n"
    assert (output / "notes.txt").read_text() == "keep me"


def test_an_unreachable_cluster_is_one_clear_line(tmp_path: Path) -> None:
    with KubeApiFake(SMALL) as gone:
        kubeconfig = gone.write_kubeconfig(tmp_path / "kubeconfig")
        address = gone.url
    code, _, stderr = capture(kubeconfig, tmp_path / "captured")
    assert code == 2
    assert stderr.startswith(f"error: cluster fake: cannot reach the API server {address}")
    assert len(stderr.splitlines()) == 1
