"""What to do about pods that cannot be scheduled and quotas that refuse pods.

Every step quotes the finding's values: the scheduler's reasons, the pod's requests, the
quota's used and hard amounts and what this pod would need.
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
from oncallm.triage.taxonomy import Category

_NODES_CAPACITY = (
    "kubectl get nodes -o custom-columns=NAME:.metadata.name,CPU:.status.allocatable.cpu,"
    "MEMORY:.status.allocatable.memory,TAINTS:.spec.taints[*].key"
)


def recommend(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    if finding.category is Category.QuotaExceeded:
        return _quota(finding)
    if finding.category is Category.Unschedulable:
        return _unschedulable(finding)
    return []


def _unschedulable(finding: Finding) -> list[Recommendation]:
    f, conf = finding.facts, finding.confidence
    workload = pf.workload_from_facts(f)
    ns, pod = workload.namespace, str(f["pod"])
    owner = pf.owner_phrase(workload)
    confirm = [pf.pod_events(pod, ns), pf.describe_pod(pod, ns), _NODES_CAPACITY]
    kinds = {r["reason"] for r in f["reasons"]}
    if finding.resource is not None and finding.resource.kind == "PersistentVolumeClaim":
        claim = finding.resource
        return [
            Recommendation(
                f"Get PersistentVolumeClaim {claim.namespace}/{claim.name} bound",
                f"Pod {pod} waits for its volume: {f['message'][:200]!r}. The claim must bind "
                "before the pod can be placed; see why it is Pending.",
                (kubectl("describe", "pvc", claim.name, namespace=claim.namespace), *confirm),
                "low",
                conf,
            )
        ]
    steps: list[Recommendation] = []
    if "resources" in kinds:
        short = sorted({r["detail"] for r in f["reasons"] if r["reason"] == "resources"})
        wanted = ", ".join(f"{r} {f['requests'].get(r, '?')}" for r in short)
        commands = [*confirm, kubectl("top", "nodes")]
        container = (f.get("containers") or ["<container>"])[0]
        if workload.kind in pf.SETTABLE_KINDS:
            lower = ",".join(f"{r}=<lower>" for r in short if r in ("cpu", "memory"))
            if lower:
                commands.append(
                    kubectl(
                        "set",
                        "resources",
                        pf.resource_arg(workload),
                        "-c",
                        container,
                        f"--requests={lower}",
                        namespace=ns,
                    )
                )
        too_big = f.get("largest_allocatable") or {}
        if too_big:
            offered = ", ".join(f"{r} {v}" for r, v in too_big.items())
            detail = (
                f"The pods ask for {wanted}, more than the largest node can give ({offered}). "
                "Lower the request or add a larger node pool."
            )
        else:
            detail = (
                f"The pods ask for {wanted}, and no node has that much unreserved. Lower the "
                "requests to real usage, free capacity (scale down idle workloads) or add "
                "nodes; check the cluster autoscaler if it should have added one."
            )
        steps.append(
            Recommendation(
                f"Make room for {owner}: insufficient {', '.join(short)}",
                detail,
                pf.unique(commands),
                "medium",
                conf,
            )
        )
    if kinds & {"taint", "selector", "affinity", "topology"}:
        selector = json.dumps(f.get("node_selector") or {})
        steps.append(
            Recommendation(
                f"Check where {owner} may run (taints, node selector, affinity)",
                f"No node matches the pod's placement rules: {f['message'][:200]!r}. Its "
                f"nodeSelector is {selector}. Add a toleration or fix the selector/affinity, "
                "or bring back the node pool it targets.",
                (*confirm, "kubectl get nodes --show-labels", pf.edit_command(workload)),
                "medium",
                conf,
            )
        )
    if "cordoned" in kinds:
        cordoned = f.get("cordoned") or ["<node>"]
        steps.append(
            Recommendation(
                "Uncordon nodes once their maintenance is over",
                f"Nodes are cordoned ({', '.join(cordoned)}); pods cannot land on them.",
                (*confirm, *(kubectl("uncordon", n) for n in cordoned)),
                "medium",
                conf,
            )
        )
    if not steps:
        steps.append(
            Recommendation(
                f"Read why the scheduler rejects pod {pod}",
                f"The scheduler says: {f['message'][:300]!r}.",
                tuple(confirm),
                "low",
                conf,
            )
        )
    return steps


def _quota(finding: Finding) -> list[Recommendation]:
    f, conf = finding.facts, finding.confidence
    ns, quota = f["namespace"], f["quota"]
    if "must_specify" in f:
        workload = pf.workload_from_facts(f)
        return [
            Recommendation(
                f"Set {f['must_specify']} on every container of {pf.owner_phrase(workload)}",
                f"ResourceQuota {ns}/{quota} only admits pods whose containers declare "
                f"{f['must_specify']}. Add them to the pod template, or add a LimitRange with "
                "defaults to the namespace.",
                (
                    kubectl("describe", "resourcequota", quota, namespace=ns),
                    kubectl("get", "limitrange", namespace=ns),
                    pf.edit_command(workload),
                ),
                "medium",
                conf,
            )
        ]
    needed: Mapping[str, Any] = f.get("needed") or {}
    patch = json.dumps({"spec": {"hard": dict(needed) or {"<resource>": "<higher>"}}})
    workloads = [ObjectRef(**w) for w in f.get("workloads") or []]
    names = ", ".join(str(w) for w in workloads) or f"pods in {ns}"
    usage = ", ".join(f"{r} {f['used'].get(r, '?')} of {v}" for r, v in f["limited"].items())
    target = ", ".join(f"{k}={v}" for k, v in needed.items()) or "what the pod needs"
    return [
        Recommendation(
            f"Free or raise ResourceQuota {ns}/{quota}",
            f"{names} cannot create pods: the quota is used up ({usage}). Either raise the "
            f"quota (to at least {target}), "
            "lower what the pods request, or scale down something else in the namespace.",
            (
                kubectl("describe", "resourcequota", quota, namespace=ns),
                kubectl("get", "events", "--field-selector", "reason=FailedCreate", namespace=ns),
                kubectl("top", "pods", namespace=ns),
                kubectl(
                    "patch",
                    "resourcequota",
                    quota,
                    "--type",
                    "merge",
                    "-p",
                    f"'{patch}'",
                    namespace=ns,
                ),
            ),
            "medium",
            conf,
        )
    ]
