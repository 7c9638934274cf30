"""The nodes analyzer: NotReady and pressured nodes, the pods that suffer on them, and
evictions — without reporting node-problem-detector's harmless custom conditions."""

from __future__ import annotations

from oncallm.sources.base import ObjectRef
from oncallm.triage.analyzers import nodes
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.rank import rank
from oncallm.triage.taxonomy import Category
from tests.unit import kubeobjects as k

NODE = ObjectRef("Node", None, "node-c")
RS = ObjectRef("ReplicaSet", "shop", "api-7d9f8b6c5")
POD_REF = ObjectRef("Pod", "shop", "api-7d9f8b6c5-x2x9k")


def _run(ctx: TriageContext) -> list[Finding]:
    ledger = EvidenceLedger("snapshot")
    findings = list(nodes.analyze(ctx, ledger))
    assert all(e in ledger for f in findings for e in f.evidence)
    return findings


def _unknown_node() -> dict[str, object]:
    return k.node(
        "node-c",
        ready="Unknown",
        ready_reason="NodeStatusUnknown",
        ready_message="Kubelet stopped posting node status.",
        taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}],
    )


def test_a_not_ready_node_is_the_culprit_of_the_pods_on_it() -> None:
    pod = k.pod(
        POD_REF.name, owner=RS, node="node-c", statuses=[k.running_status("app", ready=False)]
    )
    evicting = k.event(
        POD_REF,
        "TaintManagerEviction",
        f"Marking for deletion Pod shop/{POD_REF.name}",
        type_="Normal",
        component="taint-eviction-controller",
    )
    ctx = k.context(
        [
            _unknown_node(),
            pod,
            k.deployment("api"),
            k.replicaset(RS.name, "api", revision=4, replicas=3),
        ],
        events=[evicting],
        focus=[NODE],
    )
    findings = _run(ctx)
    node = next(f for f in findings if f.subject == NODE)
    assert node.category is Category.NodeFailure
    assert node.resource == NODE
    assert node.summary == (
        "Node node-c is NotReady (status Unknown) since 02:55Z: NodeStatusUnknown — Kubelet "
        "stopped posting node status; 1 pod(s) on it affected (api-7d9f8b6c5-x2x9k)"
    )
    victim = next(f for f in findings if f.subject == POD_REF)
    assert victim.blames == (NODE,)
    assert "is marked for deletion on failing node node-c" in victim.summary
    ranking = rank(ctx, findings, min_confidence=0.35)
    assert ranking.root is node
    recs = nodes.ANALYZER.recommend(node, ctx)
    assert "kubectl describe node node-c" in recs[0].commands
    assert recs[-1].risk == "high"
    assert "kubectl drain node-c --ignore-daemonsets --delete-emptydir-data" in recs[-1].commands


def test_disk_pressure_is_reported_and_unknown_conditions_are_not() -> None:
    harmless = [
        {"type": "FrequentContainerdRestart", "status": "False", "reason": "NoFrequentRestart"},
        {"type": "CustomVendorCheck", "status": "True", "reason": "Whatever"},
        {"type": "KernelDeadlock", "status": "False", "reason": "KernelHasNoDeadlock"},
    ]
    healthy = k.node("node-a", extra_conditions=harmless)
    pressured = k.node("node-b", pressure={"DiskPressure": "True"})
    findings = _run(k.context([healthy, pressured]))
    assert [f.subject.name for f in findings] == ["node-b"]
    assert findings[0].summary.startswith("Node node-b has DiskPressure since 02:55Z")
    (first, _cordon) = nodes.ANALYZER.recommend(findings[0], k.context([pressured]))
    assert first.title == "Free disk space on node node-b"


def test_a_true_known_bad_detector_condition_is_reported_weakly() -> None:
    stuck = k.node(
        "node-a",
        extra_conditions=[
            {
                "type": "KernelDeadlock",
                "status": "True",
                "reason": "DockerHung",
                "message": "task docker:7 blocked for more than 120 seconds.",
            },
        ],
    )
    (finding,) = _run(k.context([stuck]))
    assert "a kernel deadlock" in finding.summary
    assert finding.confidence <= 0.6


def test_pods_evicted_for_node_memory_blame_the_node_and_old_evictions_are_history() -> None:
    evicted = k.pod(POD_REF.name, owner=RS, phase="Failed", node="node-b", statuses=[])
    evicted["status"].update(
        reason="Evicted",
        message="The node was low on resource: memory. Threshold quantity: 100Mi, available: "
        "42Mi. Container app was using 1.2Gi, request is 256Mi, has larger consumption of its "
        "request.",
    )
    ev = k.event(POD_REF, "Evicted", evicted["status"]["message"], component="kubelet")
    (finding,) = _run(k.context([evicted], events=[ev]))
    assert finding.resource == ObjectRef("Node", None, "node-b")
    assert "evicted from node node-b: the node was low on memory" in finding.summary
    assert "container app was using 1.2Gi against a 256Mi request" in finding.summary
    for cond in evicted["status"]["conditions"]:
        cond["lastTransitionTime"] = k.ts(3000)
    assert _run(k.context([evicted])) == []


def test_eviction_for_its_own_ephemeral_storage_limit_blames_the_workload() -> None:
    evicted = k.pod(POD_REF.name, owner=RS, phase="Failed", node="node-b", statuses=[])
    evicted["status"].update(
        reason="Evicted",
        message="Pod ephemeral local storage usage exceeds the total limit of containers 1Gi.",
    )
    ev = k.event(POD_REF, "Evicted", evicted["status"]["message"])
    rs = k.replicaset(RS.name, "api", revision=4, replicas=3)
    (finding,) = _run(k.context([evicted, rs, k.deployment("api")], events=[ev]))
    assert finding.resource == ObjectRef("Deployment", "shop", "api")
    assert finding.blames == ()
    assert "exceeded its own ephemeral-storage limit 1Gi" in finding.summary


def test_evictions_for_an_own_limit_on_several_nodes_are_one_finding() -> None:
    pods = []
    for name, node, message in (
        (
            "api-7d9f8b6c5-a1",
            "node-a",
            'Usage of EmptyDir volume "cache" exceeds the limit "1Gi". ',
        ),
        (
            "api-7d9f8b6c5-b2",
            "node-b",
            'Usage of EmptyDir volume "cache" exceeds the limit "1Gi". ',
        ),
    ):
        pod = k.pod(name, owner=RS, phase="Failed", node=node, statuses=[])
        pod["status"].update(reason="Evicted", message=message)
        pods.append(pod)
    events = [
        k.event(ObjectRef("Pod", "shop", p["metadata"]["name"]), "Evicted", p["status"]["message"])
        for p in pods
    ]
    rs = k.replicaset(RS.name, "api", revision=4, replicas=3)
    (finding,) = _run(k.context([*pods, rs, k.deployment("api")], events=events))
    assert finding.resource == ObjectRef("Deployment", "shop", "api")
    assert "2 pod(s) of Deployment shop/api evicted on 2 node(s)" in finding.summary
    assert "emptyDir volume cache's sizeLimit 1Gi" in finding.summary
