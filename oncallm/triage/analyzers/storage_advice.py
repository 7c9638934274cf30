"""What to do about claims that will not bind, volumes that will not attach, and full disks.

Deleting a claim or forcing a volume away from a node can lose data, so those steps are
marked high risk and come after the read-only checks that confirm them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from oncallm.sources.base import ObjectRef
from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.context import TriageContext
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl


def recommend(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    f, conf = finding.facts, finding.confidence
    problem = f.get("problem")
    if problem == "claim":
        return [_claim(f, conf)]
    if problem in ("mount", "multi-attach"):
        return [_mount(f, conf)]
    if problem == "filling":
        return [_filling(f, conf)]
    if problem == "zone-conflict":
        return [_zone_conflict(f, conf)]
    if str(problem).startswith("pv-"):
        return [_volume(f, conf)]
    return []


def _claim(f: Mapping[str, Any], conf: float) -> Recommendation:
    ns, claim, sc = f["namespace"], f["claim"], f.get("storageClassName")
    confirm = [
        kubectl("describe", "pvc", claim, namespace=ns),
        pf.object_events(ObjectRef("PersistentVolumeClaim", ns, claim)),
        "kubectl get storageclass",
    ]
    if f.get("storage_class_exists") is False and sc:
        return Recommendation(
            f"Create StorageClass {sc} or move claim {ns}/{claim} to an existing class",
            f"Claim {claim} asks for StorageClass {sc!r}, which does not exist, so nothing will "
            "provision it. Create the class (from the cluster's storage add-on), or recreate the "
            "claim with an existing class — for a StatefulSet, fix its volumeClaimTemplates. "
            "storageClassName cannot be changed on an existing claim.",
            (*confirm, kubectl("get", "pvc", claim, "-o", "yaml", namespace=ns)),
            "medium",
            conf,
        )
    if f.get("storage_class_exists") is False:
        patch = json.dumps(
            {"metadata": {"annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}}
        )
        return Recommendation(
            "Mark a StorageClass as the cluster default",
            f"Claim {claim} names no storageClassName and no class is marked default, so it "
            "waits for a matching pre-created PersistentVolume that does not exist. Mark the "
            "right class as default (or set storageClassName in the claim's manifest).",
            (*confirm, f"kubectl patch storageclass <name> -p '{patch}'"),
            "medium",
            conf,
        )
    provisioner = f.get("provisioner") or "the provisioner"
    return Recommendation(
        f"Find why {provisioner} does not provision claim {ns}/{claim}",
        f"Claim {claim} is {f['why']}. Read the provisioner's events and logs (cloud quota, "
        "permissions of its IAM role, zone constraints) and fix what it reports.",
        (*confirm, f"kubectl get pods -A | grep -i {str(provisioner).split('.')[0] or 'csi'}"),
        "low",
        conf,
    )


def _mount(f: Mapping[str, Any], conf: float) -> Recommendation:
    ns, claim, pod = f["namespace"], f["claim"], f["pod"]
    workload = pf.workload_from_facts(f)
    confirm = [pf.pod_events(pod, ns), kubectl("describe", "pvc", claim, namespace=ns)]
    if f["problem"] == "multi-attach":
        volume = f.get("volume") or "<pv>"
        commands = [
            *confirm,
            f"kubectl get volumeattachment | grep {volume}",
            kubectl("get", "pods", "-o", "wide", namespace=ns),
        ]
        modes = ", ".join(f.get("access_modes") or ["ReadWriteOnce"])
        holder = f" for pod {', '.join(f['others'])}" if f.get("others") else ""
        detail = (
            f"Claim {claim} ({modes}) is still attached to another node{holder}"
            ", so the new pod cannot attach it. Let the old pod terminate (or delete it if it is "
            "stuck on a dead node). A Deployment with a ReadWriteOnce volume needs the Recreate "
            "strategy so old and new pods never overlap."
        )
        if workload.kind == "Deployment":
            patch = json.dumps({"spec": {"strategy": {"type": "Recreate", "rollingUpdate": None}}})
            commands.append(
                kubectl("patch", pf.resource_arg(workload), "-p", f"'{patch}'", namespace=ns)
            )
        return Recommendation(
            f"Release the volume of claim {ns}/{claim} from its old node",
            detail,
            pf.unique(commands),
            "medium",
            conf,
        )
    node = f.get("node") or "<node>"
    return Recommendation(
        f"Find why claim {ns}/{claim} cannot be mounted on node {node}",
        f"Pod {pod} cannot use its volume: {f['why']}. Check the CSI node plugin on {node} and "
        "the volume's state in the cloud provider.",
        (*confirm, kubectl("describe", "node", node), "kubectl get volumeattachment"),
        "low",
        conf,
    )


def _filling(f: Mapping[str, Any], conf: float) -> Recommendation:
    ns, claim = f["namespace"], f["claim"]
    commands = [kubectl("get", "pvc", claim, namespace=ns)]
    for mount in f.get("mounts") or []:
        commands += [
            kubectl(
                "exec",
                mount["pod"],
                "-c",
                mount["container"],
                "--",
                "df",
                "-h",
                mount["path"],
                namespace=ns,
            ),
            kubectl(
                "exec",
                mount["pod"],
                "-c",
                mount["container"],
                "--",
                "sh",
                "-c",
                f"'du -xsh {mount['path']}/* | sort -h | tail'",
                namespace=ns,
            ),
        ]
    what = "inodes (many small files)" if f.get("inodes") else "space"
    detail = (
        f"Claim {claim} ({f.get('size') or 'size unknown'}) is running out of {what}. Find what "
        "grows (logs, WAL, temp files) and clean it up or fix its retention."
    )
    if f.get("full_in"):
        detail += f" Metrics: it is {f['full_in']}."
    if f.get("expandable"):
        patch = json.dumps({"spec": {"resources": {"requests": {"storage": "<larger size>"}}}})
        commands.append(kubectl("patch", "pvc", claim, "-p", f"'{patch}'", namespace=ns))
        detail += f" StorageClass {f.get('storageClassName')} allows expansion: grow the claim."
    elif f.get("expandable") is False:
        detail += (
            f" StorageClass {f.get('storageClassName')} does not allow expansion: moving the "
            "data to a larger volume needs a migration."
        )
    return Recommendation(
        f"Free or grow the volume of claim {ns}/{claim}",
        detail,
        pf.unique(commands),
        "medium",
        conf,
    )


def _zone_conflict(f: Mapping[str, Any], conf: float) -> Recommendation:
    ns, claim, zones = f["namespace"], f["claim"], ", ".join(f["zones"])
    selector = ",".join(f"{k}={v}" for k, v in sorted(f.get("node_selector", {}).items()))
    nodes = "kubectl get nodes -L topology.kubernetes.io/zone" + (
        f" -l {selector}" if selector else ""
    )
    return Recommendation(
        f"Give pod {f['pod']} a node in zone {zones}, or move claim {ns}/{claim}",
        f"The data of claim {claim} lives on PersistentVolume {f['volume']} in {zones}; a "
        "volume cannot follow a pod across zones. Add (or allow, via the pod's nodeSelector "
        f"or affinity) schedulable nodes in {zones}, or restore the data from a snapshot into "
        "a new claim in a zone the pod's nodes serve.",
        (
            kubectl("get", "pv", str(f["volume"]), "-o", "jsonpath={.spec.nodeAffinity}"),
            nodes,
            kubectl("describe", "pod", str(f["pod"]), namespace=ns),
        ),
        "medium",
        conf,
    )


def _volume(f: Mapping[str, Any], conf: float) -> Recommendation:
    pv = f["pv"]
    commands = [
        kubectl("describe", "pv", pv),
        pf.object_events(ObjectRef("PersistentVolume", None, pv)),
    ]
    if f["problem"] == "pv-released":
        commands.append(
            f'kubectl patch pv {pv} --type json -p \'[{{"op":"remove","path":"/spec/claimRef"}}]\''
        )
        return Recommendation(
            f"Make PersistentVolume {pv} available again",
            f"PersistentVolume {pv} is {f['why']}. Once you are sure its data belongs to the "
            "waiting claim, remove its stale claimRef so the claim can bind.",
            tuple(commands),
            "high",
            conf,
        )
    return Recommendation(
        f"Check PersistentVolume {pv}",
        f"PersistentVolume {pv} is {f['why']} (reclaim policy {f.get('reclaim')}). Check the "
        "backing disk in the provider before deleting or recreating anything.",
        tuple(commands),
        "low",
        conf,
    )
