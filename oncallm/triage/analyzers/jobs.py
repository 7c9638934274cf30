"""``JobFailed``: Jobs whose ``Failed`` condition is True, and CronJobs whose last run failed.

Part of the ``workloads`` analyzer. A Job that completed — even after failed retries —
is fine, and so is a CronJob whose latest finished run succeeded. A failed Job is named
with its reason (``BackoffLimitExceeded``, ``DeadlineExceeded``), the exit codes of its
failed pods and the last error lines they logged; the culprit is the CronJob that owns
it, else the Job. Pods that never ran their command (pending, image or config errors) or
were OOMKilled are blamed, so the deeper finding about them ranks as the cause.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers.phrases import error_lines, headline, plural, pod_state
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl
from oncallm.triage.taxonomy import Category


def _started(job: Mapping[str, Any]) -> str:
    status = job.get("status") or {}
    return str(status.get("startTime") or kube.meta(job).get("creationTimestamp") or "")


def _failed(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if kube.condition_is(job, "Complete", "True"):
        return None
    cond = kube.condition(job, "Failed")
    return cond if cond and cond.get("status") == "True" else None


def _finished(job: Mapping[str, Any]) -> bool:
    return kube.condition_is(job, "Complete", "True") or _failed(job) is not None


def _exit(pod: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """(container, terminated state) of the pod's first failed container."""
    for ctr in kube.containers(pod):
        for term in (ctr.terminated, ctr.last_terminated):
            if term and int(term.get("exitCode") or 0) != 0:
                return ctr.name, term
    return None


def _never_ran(pod: Mapping[str, Any]) -> bool:
    """The command never got to fail: something deeper kept the pod from running it."""
    if kube.pod_phase(pod) == "Pending":
        return True
    for ctr in kube.containers(pod):
        term = ctr.terminated or ctr.last_terminated or {}
        if term.get("reason") == "OOMKilled" or (ctr.waiting_reason or "").endswith(
            ("ImagePullBackOff", "ErrImagePull", "ConfigError", "CreateContainerError")
        ):
            return True
    return False


def _job_finding(
    ctx: TriageContext,
    ledger: EvidenceLedger,
    analyzer: str,
    job: KubeObject,
    cronjob: ObjectRef | None,
    history: tuple[int, int] | None,
) -> Finding:
    ref = kube.ref(job)
    cond = _failed(job) or {}
    status = job.get("status") or {}
    reason = str(cond.get("reason") or "Failed")
    pods = [p for p in ctx.of_kind("Pod", ref.namespace) if kube.controller_of(p) == ref]
    pods.sort(key=lambda p: str(kube.meta(p).get("creationTimestamp") or ""), reverse=True)
    evidence = [
        ledger.cite_object(
            ref,
            "status",
            f"Failed=True {reason}: {cond.get('message', '')}; "
            f"failed={status.get('failed', 0)} succeeded={status.get('succeeded', 0)}",
        )
    ]
    exits: list[str] = []
    log_lines: list[str] = []
    failed_pod: str | None = None
    container: str | None = None
    for pod in pods:
        found = _exit(pod)
        if found is None:
            continue
        cname, term = found
        exits.append(f"{kube.name(pod)}/{cname} exit {term.get('exitCode')} ({term.get('reason')})")
        # Quote the newest failed pod whose log was read (the gatherer reads only a few).
        log = ctx.log(ref.namespace or "", kube.name(pod), cname, False) or ctx.log(
            ref.namespace or "", kube.name(pod), cname, True
        )
        if failed_pod is None or (log is not None and not log_lines):
            failed_pod, container = kube.name(pod), cname
        if log is not None and not log_lines:
            cited = error_lines(log.lines)[-8:] or list(log.last(8))
            evidence.append(
                ledger.cite_log(log.namespace, log.pod, log.container, log.previous, cited)
            )
            found_line = headline(log.lines)
            log_lines = [found_line] if found_line else []
        message = str(term.get("message") or "").strip()
        if message and not log_lines:
            log_lines = message.splitlines()[-3:]
    stuck = [p for p in pods if _never_ran(p)]
    subject = f"{cronjob}: its run {ref.name}" if cronjob else str(ref)
    parts = [f"{subject} failed ({reason}: {cond.get('message') or 'no message'})"]
    if exits:
        codes = {e.split("/", 1)[1] for e in exits}  # "container exit 1 (Error)"
        if len(codes) == 1 and len(exits) > 1:
            parts.append(f"{plural(len(exits), 'failed pod')}, every one {codes.pop()}")
        else:
            parts.append(f"{plural(len(exits), 'failed pod')}: {', '.join(exits[:3])}")
    elif stuck:
        parts.append("pods: " + ", ".join(f"{kube.name(p)} {pod_state(p)}" for p in stuck[:3]))
    if log_lines:
        parts.append(f"last error: {log_lines[-1][:200]}")
    if history and history[0] > 1:
        parts.append(f"{history[0]} of the last {history[1]} runs failed")
    return Finding(
        Category.JobFailed,
        "; ".join(parts),
        ref,
        cronjob or ref,
        tuple(evidence),
        0.9 if exits or not stuck else 0.6,
        analyzer,
        blames=tuple(kube.ref(p) for p in stuck),
        facts={
            "job": ref.name,
            "namespace": ref.namespace,
            "cronjob": cronjob.name if cronjob else None,
            "reason": reason,
            "failed_pod": failed_pod,
            "container": container,
            "exits": exits,
            "log_lines": log_lines,
            "backoff_limit": (job.get("spec") or {}).get("backoffLimit", 6),
        },
    )


def findings(ctx: TriageContext, ledger: EvidenceLedger, analyzer: str) -> Iterator[Finding]:
    runs: dict[ObjectRef, list[KubeObject]] = {}
    for job in ctx.of_kind("Job"):
        owner = kube.controller_of(job)
        if owner is not None and owner.kind == "CronJob":
            runs.setdefault(owner, []).append(job)
        elif _failed(job) is not None:
            yield _job_finding(ctx, ledger, analyzer, job, None, None)
    for cronjob, jobs in runs.items():
        done = sorted((j for j in jobs if _finished(j)), key=_started)
        if not done or _failed(done[-1]) is None:
            continue  # the latest finished run succeeded: older failures are history
        failures = sum(1 for j in done if _failed(j) is not None)
        yield _job_finding(ctx, ledger, analyzer, done[-1], cronjob, (failures, len(done)))


def recommend(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    facts = finding.facts
    ns, job = facts["namespace"], facts["job"]
    commands = [
        kubectl("describe", "job", job, namespace=ns),
        kubectl("get", "pods", "-l", f"job-name={job}", "-o", "wide", namespace=ns),
    ]
    if facts.get("failed_pod"):
        commands.append(
            kubectl(
                "logs",
                facts["failed_pod"],
                "-c",
                str(facts["container"]),
                "--tail=100",
                namespace=ns,
            )
        )
    steps = [
        Recommendation(
            f"Read why Job {job} failed",
            f"The Job stopped with {facts['reason']}"
            + (f"; {', '.join(facts['exits'][:2])}" if facts.get("exits") else "")
            + ". The last lines its failed pod logged say what the command hit.",
            tuple(commands),
            "low",
            finding.confidence,
        )
    ]
    if facts.get("cronjob"):
        cronjob = facts["cronjob"]
        steps.append(
            Recommendation(
                f"Re-run CronJob {cronjob} once the cause is fixed",
                "A manual run from the CronJob's template confirms the fix without waiting for "
                f"the next schedule. KubeJobFailed keeps firing while Job {job} exists: remove "
                f"it once its logs are no longer needed (kubectl -n {ns} delete job {job}).",
                (
                    kubectl(
                        "create",
                        "job",
                        f"--from=cronjob/{cronjob}",
                        f"{cronjob}-manual",
                        namespace=ns,
                    ),
                ),
                "medium",
                finding.confidence,
            )
        )
    return steps
