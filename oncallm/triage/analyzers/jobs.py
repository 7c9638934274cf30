"""``JobFailed``: Jobs whose ``Failed`` condition is True, and CronJobs whose last run failed.

Part of the ``workloads`` analyzer. A Job that completed — even after failed retries —
is fine, and so is a CronJob whose latest finished run succeeded. A failed Job is named
with its reason (``BackoffLimitExceeded``, ``DeadlineExceeded``), the exit codes of its
failed pods and the last error lines they logged; the culprit is the CronJob that owns
it, else the Job. Pods that never ran their command (pending, image or config errors) or
were OOMKilled are blamed, so the deeper finding about them ranks as the cause. Pods the
kubelet failed as a whole are named by the pod's own reason and message: an eviction for
the pod's own ephemeral-storage limit is the Job's to fix (named with the limit), one for
node pressure blames the Node. A run that hangs and blocks a Forbid CronJob's schedule is
found by :mod:`cronjobs`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import cronjobs
from oncallm.triage.analyzers import podfacts as pf
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


def _ended_phrase(ended: list[tuple[KubeObject, tuple[str, str]]]) -> str:
    """What ended the pods the kubelet failed as a whole, most common reason first:
    ``4 pods evicted for exceeding their own ephemeral-storage limit 2Gi (...)``."""
    messages = [message for _p, (_why, message) in ended]
    own = [limit for m in messages if (limit := pf.own_limit_eviction(m)) is not None]
    if own and len(own) == len(ended):
        nodes = {(p.get("spec") or {}).get("nodeName") for p, _f in ended}
        where = f" on {plural(len(nodes), 'node')}" if len(nodes) > 1 else ""
        return (
            f"{plural(len(ended), 'pod')} evicted{where} for exceeding their own {own[0]}: "
            f"{pf.tidy(messages[0])!r}"
        )
    by_reason: dict[str, list[str]] = {}
    for _p, (why, message) in ended:
        by_reason.setdefault(why, []).append(message)
    ordered = sorted(by_reason.items(), key=lambda item: -len(item[1]))
    return "; ".join(
        f"{plural(len(msgs), 'pod')} {why}" + (f": {pf.tidy(msgs[0])!r}" if msgs[0] else "")
        for why, msgs in ordered
    )


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
    # Pods the kubelet failed as a whole (evicted, past their deadline): their containers'
    # exit 137 only says they were stopped, the pod's reason and message say why.
    ended = [(p, failure) for p in pods if (failure := pf.pod_failure(p)) is not None]
    for pod, (why, message) in ended[:2]:
        evidence.append(
            ledger.cite_object(kube.ref(pod), "status", f"phase=Failed reason={why}: {message}")
        )
    for pod, _failure in ended:
        # What the pod was doing when it was stopped (a work dir growing, a loop stalling).
        ns, name = ref.namespace or "", kube.name(pod)
        logs = [ctx.log(ns, name, c.name, False) for c in kube.containers(pod)]
        log = next((x for x in logs if x is not None), None)
        if log is not None:
            evidence.append(ledger.cite_log(ns, name, log.container, False, log.last(8)))
            failed_pod, container = name, log.container
            break
    for pod in pods:
        if pf.pod_failure(pod) is not None:
            continue
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
    own_limit = None
    if ended:
        parts.append(_ended_phrase(ended))
        own_limit = next(
            (o for _p, (_w, m) in ended if (o := pf.own_limit_eviction(m)) is not None), None
        )
    if exits:
        codes = {e.split("/", 1)[1] for e in exits}  # "container exit 1 (Error)"
        if len(codes) == 1 and len(exits) > 1:
            parts.append(f"{plural(len(exits), 'failed pod')}, every one {codes.pop()}")
        else:
            parts.append(f"{plural(len(exits), 'failed pod')}: {', '.join(exits[:3])}")
    elif stuck:
        parts.append("pods: " + ", ".join(f"{kube.name(p)} {pod_state(p)}" for p in stuck[:3]))
    if log_lines:
        # A log that ends without an error is quoted as what it is, not as the error.
        said = "last error" if error_lines(log_lines) else "last log line"
        parts.append(f"{said}: {log_lines[-1][:200]}")
    if history and history[0] > 1:
        parts.append(f"{history[0]} of the last {history[1]} runs failed")
    # Pods evicted for node pressure died of their node: blame it so its finding ranks first.
    node_blames = tuple(
        dict.fromkeys(
            ObjectRef("Node", None, str(node))
            for p, (why, message) in ended
            if why == "Evicted"
            and pf.own_limit_eviction(message) is None
            and (node := (p.get("spec") or {}).get("nodeName"))
        )
    )
    return Finding(
        Category.JobFailed,
        "; ".join(parts),
        ref,
        cronjob or ref,
        tuple(evidence),
        0.6 if node_blames or (stuck and not exits) else 0.9,
        analyzer,
        blames=(*(kube.ref(p) for p in stuck), *node_blames),
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
            "own_limit": own_limit,
            "ended": [f"{kube.name(p)} {why}: {message}" for p, (why, message) in ended],
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
    yield from cronjobs.hung_runs(ctx, ledger, analyzer)


def recommend(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    facts = finding.facts
    if facts.get("rule") == cronjobs.RULE:
        return cronjobs.recommend(finding)
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
    if facts.get("own_limit"):
        # Titled as the nodes analyzer titles the same eviction, so the step is given once.
        owner = pf.owner_phrase(
            ObjectRef("CronJob", ns, facts["cronjob"])
            if facts.get("cronjob")
            else ObjectRef("Job", ns, job)
        )
        # A Job's pod template is immutable: the Job is recreated from its manifest.
        how = (
            kubectl("edit", f"cronjob/{facts['cronjob']}", namespace=ns)
            if facts.get("cronjob")
            else kubectl("get", "job", job, "-o", "yaml", namespace=ns)
            + " > job.yaml  # raise the limit, drop status/uid/selector, then replace --force"
        )
        steps.append(
            Recommendation(
                f"Give {owner} room for its local files",
                f"Its pods were evicted for exceeding their own {facts['own_limit']}, on "
                "whichever node they ran. Raise resources.limits.ephemeral-storage, or write the "
                "work files to an emptyDir with a sizeLimit (or a PVC) and delete each one once "
                "processed.",
                (how,),
                "medium",
                finding.confidence,
            )
        )
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
