"""How the services, workloads and security analyzers put objects into words.

Summaries read like an SRE's note ("api-7f9c-x2 CrashLoopBackOff", "app=api,tier=web");
keeping the phrasing in one place keeps the three families saying it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oncallm.triage import kube

# Labels Kubernetes adds per pod or revision: noise in a summary, harmful in a selector.
GENERATED_LABELS = frozenset(
    {
        "pod-template-hash",
        "controller-revision-hash",
        "pod-template-generation",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "job-name",
        "controller-uid",
        "batch.kubernetes.io/job-name",
        "batch.kubernetes.io/controller-uid",
    }
)


def own_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels a person gave the pods, without the ones controllers stamp on them."""
    return {k: v for k, v in labels.items() if k not in GENERATED_LABELS}


def selector_text(selector: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def pod_state(pod: Mapping[str, Any]) -> str:
    """Why a pod is not serving, in the words ``kubectl get pods`` uses."""
    phase = kube.pod_phase(pod)
    for ctr in kube.containers(pod):
        if ctr.waiting_reason:
            return ctr.waiting_reason
        terminated = ctr.terminated
        if terminated and not ctr.init:
            return str(terminated.get("reason") or f"exit {terminated.get('exitCode')}")
    if phase == "Pending":
        scheduled = kube.condition(pod, "PodScheduled")
        if scheduled and scheduled.get("status") == "False":
            return f"Pending/{scheduled.get('reason') or 'Unschedulable'}"
        return "Pending"
    if phase == "Running" and not kube.pod_ready(pod):
        return "Running but not Ready"
    return phase


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
