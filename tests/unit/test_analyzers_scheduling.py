"""The scheduling analyzer: pods no node takes and quotas that refuse pods — with the
culprit an SRE would fix (the workload's requests, the claim, the ResourceQuota)."""

from __future__ import annotations

from typing import Any

from oncallm.sources.base import ObjectRef
from oncallm.triage.analyzers import scheduling
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.rank import rank
from oncallm.triage.taxonomy import Category
from tests.unit import kubeobjects as k

API = ObjectRef("Deployment", "shop", "api")
RS = ObjectRef("ReplicaSet", "shop", "api-7d9f8b6c5")
POD = "api-7d9f8b6c5-x2x9k"
POD_REF = ObjectRef("Pod", "shop", POD)
QUOTA = ObjectRef("ResourceQuota", "shop", "compute-resources")
UNSCHEDULABLE = [
    {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "lastTransitionTime": k.ts(14),
        "message": "0/3 nodes are available",
    },
]


def _pending(requests: dict[str, str] | None = None, **pod: Any) -> list[dict[str, Any]]:
    spec = k.container("api", requests=requests or {"cpu": "500m", "memory": "6Gi"})
    return [
        k.deployment("api", containers=[spec]),
        k.replicaset(RS.name, "api", revision=4, replicas=3),
        k.pod(
            POD,
            owner=RS,
            containers=[spec],
            phase="Pending",
            node=None,
            conditions=UNSCHEDULABLE,
            **pod,
        ),
    ]


def _run(ctx: TriageContext) -> list[Finding]:
    ledger = EvidenceLedger("snapshot")
    findings = list(scheduling.analyze(ctx, ledger))
    assert all(e in ledger for f in findings for e in f.evidence)
    return findings


def _failed_scheduling(message: str) -> dict[str, Any]:
    return k.event(POD_REF, "FailedScheduling", message, count=12, component="default-scheduler")


def test_insufficient_memory_names_the_request_and_the_biggest_node() -> None:
    message = (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 Insufficient memory. preemption: 0/3 "
        "nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption "
        "victims found for incoming pod."
    )
    nodes = [k.node(f"node-{n}", allocatable={"cpu": "4", "memory": "3.5Gi"}) for n in "ab"]
    ctx = k.context([*_pending(), *nodes], events=[_failed_scheduling(message)], focus=[POD_REF])
    (finding,) = _run(ctx)
    assert finding.category is Category.Unschedulable
    assert finding.resource == API
    assert "2 Insufficient memory" in finding.summary
    assert "it requests 6Gi memory, more than any node offers (3.5Gi allocatable)" in (
        finding.summary
    )
    assert finding.confidence >= 0.9
    recs = scheduling.ANALYZER.recommend(finding, ctx)
    assert any(
        "kubectl -n shop set resources deployment/api -c api --requests=memory=<lower>" in c
        for r in recs
        for c in r.commands
    )


def test_an_unbound_claim_makes_only_a_symptom_blaming_the_claim() -> None:
    message = (
        "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "api-data"}}]
    claim = k.pvc("api-data", phase="Pending", storage_class="fast-ssd")
    ctx = k.context([*_pending(volumes=volumes), claim], events=[_failed_scheduling(message)])
    (finding,) = _run(ctx)
    pvc = ObjectRef("PersistentVolumeClaim", "shop", "api-data")
    assert finding.blames == (pvc,)
    assert finding.resource == pvc
    assert finding.confidence <= 0.5
    # A storage finding on the claim explains it, so the claim ranks as the cause.
    storage = Finding(Category.VolumeFailure, "claim pending", pvc, pvc, (), 0.9, "storage")
    ranking = rank(ctx, [finding, storage], min_confidence=0.35)
    assert ranking.root is storage


def test_a_scheduled_or_gated_pod_is_not_reported() -> None:
    scheduled = _pending()
    scheduled[-1]["status"]["conditions"][0]["status"] = "True"
    old = _failed_scheduling("0/3 nodes are available: 3 Insufficient cpu.")
    assert _run(k.context(scheduled, events=[old])) == []
    gated = _pending()
    gated[-1]["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
    ]
    assert _run(k.context(gated)) == []


def test_exceeded_quota_blames_the_quota_and_says_what_it_needs() -> None:
    failed = k.event(
        RS,
        "FailedCreate",
        'Error creating: pods "api-7d9f8b6c5-q8w2n" is forbidden: exceeded quota: '
        "compute-resources, requested: limits.memory=1Gi, used: limits.memory=3584Mi, "
        "limited: limits.memory=4Gi",
        count=23,
        component="replicaset-controller",
    )
    quota = k.resource_quota(
        "compute-resources",
        hard={"limits.memory": "4Gi", "pods": "20"},
        used={"limits.memory": "3584Mi", "pods": "7"},
    )
    objs = [
        k.deployment("api", status={"readyReplicas": 2, "availableReplicas": 2}),
        k.replicaset(RS.name, "api", revision=4, replicas=3, ready=2),
        quota,
    ]
    ctx = k.context(objs, events=[failed], focus=[API])
    findings = _run(ctx)
    root = next(f for f in findings if f.subject == QUOTA)
    symptom = next(f for f in findings if f.subject == API)
    assert root.resource == QUOTA
    assert root.category is Category.QuotaExceeded
    assert root.summary == (
        "ResourceQuota shop/compute-resources is exhausted (limits.memory requested 1Gi, used "
        "3584Mi of 4Gi): Deployment shop/api cannot create pods"
    )
    assert symptom.blames == (QUOTA,)
    ranking = rank(ctx, findings, min_confidence=0.35)
    assert ranking.root is root
    (rec,) = scheduling.ANALYZER.recommend(root, ctx)
    assert (
        "kubectl -n shop patch resourcequota compute-resources --type merge -p "
        '\'{"spec": {"hard": {"limits.memory": "4.5Gi"}}}\''
    ) in rec.commands


def test_a_quota_at_its_limit_is_a_weak_finding_and_zero_hard_limits_are_policy() -> None:
    full = k.resource_quota("pods-max", hard={"pods": "10"}, used={"pods": "10"})
    policy = k.resource_quota(
        "no-lb", hard={"services.loadbalancers": "0"}, used={"services.loadbalancers": "0"}
    )
    (finding,) = _run(k.context([full, policy]))
    assert finding.resource == ObjectRef("ResourceQuota", "shop", "pods-max")
    assert finding.confidence <= 0.5


def test_parse_unschedulable_reads_every_reason() -> None:
    parsed = scheduling.parse_unschedulable(
        "0/5 nodes are available: 2 Insufficient cpu, 1 node(s) were unschedulable, "
        "2 node(s) didn't match Pod's node affinity/selector. preemption: not helpful"
    )
    assert parsed == [
        ("resources", "cpu", 2),
        ("cordoned", "node(s) were unschedulable", 1),
        ("selector", "node(s) didn't match Pod's node affinity/selector", 2),
    ]


def test_a_node_selector_no_node_matches_is_named_with_the_labels_nodes_carry() -> None:
    message = (
        "0/9 nodes are available: 3 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 6 node(s) didn't match Pod's node "
        "affinity/selector. preemption: 0/9 nodes are available: 9 Preemption is not helpful."
    )
    objs = _pending({"cpu": "1"})
    objs[-1]["spec"]["nodeSelector"] = {"node.acme.io/pool": "render"}
    render = k.node("dc1-k8s-r03", labels={"node.acme.io/pool": "rendering"})
    (finding,) = _run(k.context([*objs, render], events=[_failed_scheduling(message)]))
    assert finding.resource == API
    assert "preemption" not in finding.summary
    assert (
        "its nodeSelector node.acme.io/pool=render matches no node "
        "(nodes have node.acme.io/pool=rendering)"
    ) in finding.summary
