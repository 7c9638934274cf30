"""What to do about a failing node: confirm from the node's side, then move work off it.

Cordoning is low risk (nothing stops); draining restarts pods elsewhere and can hit
PodDisruptionBudgets, so it is marked high and comes after the checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.context import TriageContext
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl


def _node_checks(node: str) -> list[str]:
    return [
        kubectl("describe", "node", node),
        kubectl("get", "pods", "-A", "-o", "wide", f"--field-selector spec.nodeName={node}"),
        kubectl(
            "get",
            "events",
            "-A",
            f"--field-selector involvedObject.kind=Node,involvedObject.name={node}",
        ),
    ]


def recommend(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    f, conf = finding.facts, finding.confidence
    problem = f.get("problem")
    if problem == "node":
        return _node(f, conf)
    if problem == "evicted-own-limit":
        workload = pf.workload_from_facts(f)
        return [
            Recommendation(
                f"Give {pf.owner_phrase(workload)} room for its local files",
                f"Pods were evicted for writing more than their ephemeral-storage limit: "
                f"{f['message'][:200]!r}. Raise the limit, or write to a volume (emptyDir with "
                "sizeLimit, PVC) instead of the container filesystem; check for runaway logs.",
                (pf.describe_pod(f["pod"], workload.namespace), pf.edit_command(workload)),
                "medium",
                conf,
            )
        ]
    node = str(f.get("node") or "<node>")
    if problem == "evicted":
        workload = pf.workload_from_facts(f)
        detail = (
            f"The kubelet on {node} evicted pods because the node ran low on "
            f"{f.get('resource') or 'a resource'}: {f['message'][:200]!r}. Set requests close to "
            "real usage on the heaviest pods so the scheduler stops overcommitting the node."
        )
        commands = [*_node_checks(node), kubectl("top", "pods", "-A", "--sort-by=memory")]
        if f.get("container"):
            detail += f" Container {f['container']} used well over its request."
            commands.append(pf.edit_command(workload))
        return [
            Recommendation(
                f"Relieve pressure on node {node}", detail, tuple(commands), "medium", conf
            )
        ]
    return [
        Recommendation(
            f"Check node {node} and move its pods",
            f"Pod {f.get('pod')} suffers from node {node}'s failure; see the node's findings.",
            tuple(_node_checks(node)),
            "low",
            conf,
        )
    ]


def _node(f: Mapping[str, Any], conf: float) -> list[Recommendation]:
    node, conditions = str(f["node"]), list(f.get("conditions") or [])
    checks = _node_checks(node)
    debug = kubectl("debug", f"node/{node}", "-it", "--image=busybox")
    first = conditions[0] if conditions else ""
    if first == "DiskPressure":
        title = f"Free disk space on node {node}"
        detail = (
            "The kubelet evicts pods and refuses new ones under disk pressure. Find what fills "
            "/var/lib/containerd and /var/log (unused images, huge container logs, emptyDirs); "
            "prune images on the node and fix the pod that writes."
        )
        commands = [*checks, debug, "# on the node: df -h; crictl rmi --prune"]
    elif first in ("MemoryPressure", "PIDPressure"):
        title = f"Find the pods exhausting {first.replace('Pressure', '').lower()} on node {node}"
        detail = (
            f"The node {f['meaning'][:160]}. Find the heaviest pods on it, set requests "
            "and limits on them, and cordon the node if it keeps evicting."
        )
        commands = [*checks, kubectl("top", "pods", "-A", "--sort-by=memory")]
    elif first == "NetworkUnavailable":
        title = f"Repair the pod network on node {node}"
        detail = (
            "The node's network is unavailable: check the CNI agent pod on it and the route "
            "controller."
        )
        commands = [
            *checks,
            kubectl(
                "get",
                "pods",
                "-o",
                "wide",
                f"--field-selector spec.nodeName={node}",
                namespace="kube-system",
            ),
        ]
    else:
        title = f"Bring node {node} back or replace it"
        detail = (
            f"Node {node} {f['meaning'][:200]}. Check the kubelet and the "
            "container runtime on the node (journalctl -u kubelet), and the machine in the "
            "cloud console. Pods on a NotReady node are evicted after the toleration timeout "
            "(5 minutes by default); StatefulSet pods wait until the node is confirmed gone."
        )
        commands = [*checks, debug]
    steps = [Recommendation(title, detail, tuple(commands), "low", conf)]
    steps.append(
        Recommendation(
            f"Cordon node {node}, then drain it if it does not recover",
            "Cordoning stops new pods landing there; draining moves running pods elsewhere "
            "(respecting PodDisruptionBudgets).",
            (
                kubectl("cordon", node),
                kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data"),
            ),
            "high",
            round(conf * 0.8, 2),
        )
    )
    return steps
