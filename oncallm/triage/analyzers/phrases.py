"""How the services, workloads and security analyzers put objects into words.

Summaries read like an SRE's note ("api-7f9c-x2 CrashLoopBackOff", "app=api,tier=web");
keeping the phrasing in one place keeps the three families saying it the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from oncallm.triage import kube
from oncallm.triage.context import ERROR_LINE, LogExcerpt, TriageContext

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


# The line that names what went wrong: an exception with its message, a panic, a fatal.
_EXCEPTION = re.compile(
    r"^\s*(?:[\w.]+\.)?[A-Z]\w*(?:Error|Exception|Fault)\b\s*(?::|\(|$)|"
    r"^\s*(?:[a-z_]\w*\.)+[A-Z]\w*: |^\s*Caused by: |\bpanic:|\bfatal error:|"
    r"^\s*(?:Error|FATAL|CRITICAL)\b"
)
# Lines around an error that say nothing about it: traceback frames and footers.
_NOISE = re.compile(
    r"Traceback \(most recent call last\)|^\s*File \"|^\s+at \S|^\s*\.\.\. \d+ more|"
    r"Background on this error|^\s*\[SQL:|^\s*\^+\s*$|^goroutine \d+|^\s*/\S+\.go:\d+"
)


def error_lines(lines: Sequence[str]) -> list[str]:
    """The lines of a log that say what failed, without stack frames and footers."""
    return [
        line
        for line in lines
        if (ERROR_LINE.search(line) or _EXCEPTION.search(line)) and not _NOISE.search(line)
    ]


def headline(lines: Sequence[str]) -> str | None:
    """The one line a person would quote: the last exception, else the last error line."""
    exceptions = [line for line in lines if _EXCEPTION.search(line) and not _NOISE.search(line)]
    if exceptions:
        return exceptions[-1].strip()
    errors = error_lines(lines)
    if errors:
        return errors[-1].strip()
    plain = [line for line in lines if line.strip() and not _NOISE.search(line)]
    return plain[-1].strip() if plain else None


def history_only(ctx: TriageContext, excerpts: Sequence[LogExcerpt]) -> bool:
    """Every line came from a previous container instance, and the pod is Ready now: what
    those lines say is history, not the incident."""
    if not excerpts or any(not ex.previous for ex in excerpts):
        return False
    pods = [ctx.get("Pod", ex.namespace, ex.pod) for ex in excerpts]
    return all(pod is not None and kube.pod_ready(pod) for pod in pods)
