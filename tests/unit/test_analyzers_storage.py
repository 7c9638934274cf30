"""The storage analyzer: claims that will not bind, volumes that will not attach or
mount, and filling volumes — the claim is the culprit, the pods waiting on it blame it."""

from __future__ import annotations

from typing import Any

from oncallm.sources.base import ObjectRef
from oncallm.triage.analyzers import storage
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.rank import rank
from oncallm.triage.taxonomy import Category
from tests.unit import kubeobjects as k

PG = ObjectRef("StatefulSet", "data", "postgres")
CLAIM = ObjectRef("PersistentVolumeClaim", "data", "data-postgres-0")
POD_REF = ObjectRef("Pod", "data", "postgres-0")
VOLUMES = [{"name": "data", "persistentVolumeClaim": {"claimName": "data-postgres-0"}}]


def _postgres(claim: dict[str, Any], *extra: dict[str, Any], **pod: Any) -> list[dict[str, Any]]:
    ctr = k.container(
        "postgres",
        image="postgres:16.4",
        volume_mounts=[{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
    )
    return [
        k.statefulset("postgres", "data", containers=[ctr]),
        k.pod("postgres-0", "data", owner=PG, containers=[ctr], volumes=VOLUMES, **pod),
        claim,
        *extra,
    ]


def _run(ctx: TriageContext) -> list[Finding]:
    ledger = EvidenceLedger("snapshot")
    findings = list(storage.analyze(ctx, ledger))
    assert all(e in ledger for f in findings for e in f.evidence)
    return findings


def test_a_claim_naming_a_missing_storage_class_is_the_culprit() -> None:
    claim = k.pvc("data-postgres-0", "data", phase="Pending", storage_class="fast-ssd")
    failed = k.event(
        CLAIM,
        "ProvisioningFailed",
        'storageclass.storage.k8s.io "fast-ssd" not found',
        count=31,
        component="persistentvolume-controller",
    )
    objs = _postgres(
        claim, k.storage_class("standard", default=True), phase="Pending", node=None, statuses=[]
    )
    ctx = k.context(objs, events=[failed], focus=[POD_REF])
    (finding,) = _run(ctx)
    assert finding.category is Category.VolumeFailure
    assert finding.resource == CLAIM
    assert finding.summary == (
        "PersistentVolumeClaim data/data-postgres-0 (10Gi ReadWriteOnce) is Pending: "
        'StorageClass "fast-ssd" does not exist; pod postgres-0 waits on it'
    )
    assert finding.facts["storage_class_exists"] is False
    (rec,) = storage.ANALYZER.recommend(finding, ctx)
    assert "kubectl -n data describe pvc data-postgres-0" in rec.commands
    assert "kubectl get storageclass" in rec.commands


def test_a_pending_claim_waiting_for_its_first_consumer_is_normal() -> None:
    claim = k.pvc("data-postgres-0", "data", phase="Pending", storage_class="standard")
    objs = _postgres(claim, k.storage_class("standard"), phase="Pending", node=None, statuses=[])
    assert _run(k.context(objs)) == []


def test_no_class_and_no_default_class() -> None:
    claim = k.pvc("data-postgres-0", "data", phase="Pending", storage_class=None)
    objs = _postgres(claim, k.storage_class("slow"), phase="Pending", node=None, statuses=[])
    (finding,) = _run(k.context(objs))
    assert "names no storageClassName and the cluster has no default class" in finding.summary


def test_multi_attach_blames_the_claim_and_names_the_pod_holding_it() -> None:
    claim = k.pvc("data-postgres-0", "data", volume="pvc-3f2a9c")
    attach = k.event(
        POD_REF,
        "FailedAttachVolume",
        'Multi-Attach error for volume "pvc-3f2a9c" Volume is already used by '
        "pod(s) postgres-0-old",
        count=8,
    )
    status = k.waiting_status("postgres", "ContainerCreating", restarts=0)
    ctx = k.context(_postgres(claim, statuses=[status]), events=[attach])
    (finding,) = _run(ctx)
    assert finding.resource == CLAIM
    assert finding.subject == POD_REF
    assert finding.blames == (CLAIM,)
    assert "Multi-Attach error" in finding.summary
    assert "(used by pod postgres-0-old)" in finding.summary
    (rec,) = storage.ANALYZER.recommend(finding, ctx)
    assert "kubectl get volumeattachment | grep pvc-3f2a9c" in rec.commands


def test_configmap_mount_failures_are_left_to_the_config_analyzer() -> None:
    claim = k.pvc("data-postgres-0", "data")
    failed = k.event(
        POD_REF,
        "FailedMount",
        'MountVolume.SetUp failed for volume "conf" : configmap "pg-conf" not found',
    )
    status = k.waiting_status("postgres", "ContainerCreating", restarts=0)
    assert _run(k.context(_postgres(claim, statuses=[status]), events=[failed])) == []


def test_filling_alert_names_the_claim_its_mounts_and_expansion() -> None:
    claim = k.pvc("data-postgres-0", "data", size="50Gi")
    alert = {
        "alertname": "KubePersistentVolumeFillingUp",
        "namespace": "data",
        "persistentvolumeclaim": "data-postgres-0",
    }
    annotations = {
        "description": "The PersistentVolume claimed by data-postgres-0 in Namespace "
        "data is only 2.8% free."
    }
    ctx = k.context(
        _postgres(claim, k.storage_class("standard")), alert=alert, annotations=annotations
    )
    (finding,) = _run(ctx)
    assert finding.resource == CLAIM
    assert finding.summary == (
        "PersistentVolumeClaim data/data-postgres-0 is running out of space: only 2.8% free of "
        "50Gi (mounted by pod postgres-0)"
    )
    (rec,) = storage.ANALYZER.recommend(finding, ctx)
    assert (
        "kubectl -n data exec postgres-0 -c postgres -- df -h /var/lib/postgresql/data"
        in rec.commands
    )
    assert any("patch pvc data-postgres-0" in c for c in rec.commands)


def test_a_released_volume_blocks_the_claim_that_names_it() -> None:
    claim = k.pvc("data-postgres-0", "data", phase="Pending", volume="pv-old")
    volume = k.pv("pv-old", phase="Released", claim=CLAIM, reclaim="Retain")
    objs = _postgres(claim, volume, phase="Pending", node=None, statuses=[])
    findings = _run(k.context(objs))
    pv = next(f for f in findings if f.subject.kind == "PersistentVolume")
    assert pv.resource == ObjectRef("PersistentVolume", None, "pv-old")
    assert "cannot bind to it" in pv.summary
    ranking = rank(k.context(objs), findings, min_confidence=0.35)
    assert ranking.root is not None


def test_no_space_left_in_the_log_makes_the_claim_the_cause_of_the_crash() -> None:
    from oncallm.triage.analyzers import pods

    claim = k.pvc("data-postgres-0", "data", size="20Gi")
    last = {"exitCode": 1, "reason": "Error", "finishedAt": k.ts(2)}
    status = k.waiting_status("postgres", restarts=8, last_terminated=last)
    log = (
        "2026-11-26 03:06:56.652 UTC [27] LOG:  checkpoint starting: end-of-recovery\n"
        '2026-11-26 03:06:57.013 UTC [27] PANIC:  could not write to file "pg_wal/xlogtemp.27":'
        " No space left on device\n"
        "2026-11-26 03:06:57.224 UTC [1] LOG:  database system is shut down\n"
    )
    ctx = k.context(
        _postgres(claim, k.storage_class("standard"), statuses=[status]),
        logs={("data", "postgres-0", "postgres", True): log},
        focus=[POD_REF],
    )
    (full,) = _run(ctx)
    assert full.resource == CLAIM
    assert full.summary == (
        "PersistentVolumeClaim data/data-postgres-0 (20Gi) is full: container postgres of "
        "StatefulSet data/postgres fails writing to it — [27] PANIC:  could not write to file "
        '"pg_wal/xlogtemp.27": No space left on device'
    )
    (crash,) = pods.analyze(ctx, EvidenceLedger("snapshot"))
    assert crash.blames == (CLAIM,)
    assert "last log: '[27] PANIC:" in crash.summary
    ranking = rank(ctx, [crash, full], min_confidence=0.35)
    assert ranking.root is full
    (rec,) = storage.ANALYZER.recommend(full, ctx)
    assert any("patch pvc data-postgres-0" in c for c in rec.commands)
