"""``JobFailed``: a CronJob run that hangs and, under ``concurrencyPolicy: Forbid``, blocks
every later run.

Part of the ``jobs`` rules. A run that neither succeeds nor fails never trips a failure
alert; what pages is the CronJob's staleness. The finding is: an active Job of a Forbid
CronJob that has run far longer than its earlier successful runs took (or than the
schedule interval), while the controller skips the runs that fall due — seen in its
``JobAlreadyActive`` events ("Not starting job because prior execution is running and
concurrency policy is Forbid"), or inferred from the interval when those events have aged
out. The culprit is the hung Job: deleting it lets the schedule resume. How long the
run's log has been silent, and the line it stopped at, say where it hangs.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.analyzers.phrases import plural
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl
from oncallm.triage.taxonomy import Category

RULE = "hung-run"
SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MANUAL = "cronjob.kubernetes.io/instantiate"
# A run this many times longer than the longest successful one is not just slow.
SLOWER_THAN_USUAL = 3
# Below this, a run is never called hung on duration alone (a 20 s job taking 2 min is not).
MIN_HUNG = timedelta(minutes=10)
# A timestamp near the start of a log line: ISO-8601, with ``T`` or a space.
_LINE_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
)


def _time(value: Any) -> datetime | None:
    return pf.time_of(value)


def _finished(job: Mapping[str, Any]) -> bool:
    return kube.condition_is(job, "Complete", "True") or kube.condition_is(job, "Failed", "True")


def _started(job: Mapping[str, Any]) -> datetime | None:
    status = job.get("status") or {}
    return _time(status.get("startTime")) or _time(kube.meta(job).get("creationTimestamp"))


def _scheduled(job: Mapping[str, Any]) -> datetime | None:
    annotations = kube.meta(job).get("annotations") or {}
    return _time(annotations.get(SCHEDULED)) or _started(job)


def _usual(jobs: list[KubeObject]) -> timedelta | None:
    """The longest time a successful run took: what this CronJob's runs normally need."""
    took = [
        done - start
        for j in jobs
        if kube.condition_is(j, "Complete", "True")
        and (start := _started(j)) is not None
        and (done := _time((j.get("status") or {}).get("completionTime"))) is not None
    ]
    return max(took) if took else None


def _interval(jobs: list[KubeObject]) -> timedelta | None:
    """The schedule's period, from the gap between consecutive scheduled runs (runs started
    by hand with ``kubectl create job --from=cronjob/…`` keep no schedule)."""
    times = sorted(
        t
        for j in jobs
        if (kube.meta(j).get("annotations") or {}).get(MANUAL) != "manual"
        and (t := _scheduled(j)) is not None
    )
    gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
    return min(gaps) if gaps else None


def _last_line_time(lines: tuple[str, ...]) -> tuple[datetime, str] | None:
    for line in reversed(lines):
        match = _LINE_TIME.search(line[:64])
        if match is None:
            continue
        try:
            when = datetime.fromisoformat(match[1].replace(" ", "T").replace("Z", "+00:00"))
        except ValueError:
            continue
        return (when if when.tzinfo else when.replace(tzinfo=UTC)), line
    return None


def _minutes(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    if minutes < 2:
        return f"{int(span.total_seconds())}s"
    if minutes < 120:
        return f"{round(minutes)}m"
    return f"{minutes / 60:.1f}h"


def hung_runs(ctx: TriageContext, ledger: EvidenceLedger, analyzer: str) -> Iterator[Finding]:
    runs: dict[ObjectRef, list[KubeObject]] = {}
    for job in ctx.of_kind("Job"):
        owner = kube.controller_of(job)
        if owner is not None and owner.kind == "CronJob":
            runs.setdefault(owner, []).append(job)
    for cron_ref, jobs in runs.items():
        cronjob = ctx.objects.get(cron_ref)
        if cronjob is None or (cronjob.get("spec") or {}).get("concurrencyPolicy") != "Forbid":
            continue  # Allow overlaps runs and Replace cancels the old one: nothing is blocked
        for job in jobs:
            finding = _hung(ctx, ledger, analyzer, cronjob, job, jobs)
            if finding is not None:
                yield finding


def _hung(
    ctx: TriageContext,
    ledger: EvidenceLedger,
    analyzer: str,
    cronjob: KubeObject,
    job: KubeObject,
    jobs: list[KubeObject],
) -> Finding | None:
    started = _started(job)
    if _finished(job) or started is None or not (job.get("status") or {}).get("active"):
        return None
    ran = ctx.now - started
    others = [j for j in jobs if j is not job]
    usual, interval = _usual(others), _interval(jobs)
    cron_ref = kube.ref(cronjob)
    skips = [e for e in ctx.events_of(cron_ref) if e.reason == "JobAlreadyActive"]
    skipped = sum(e.count for e in skips)
    if not skipped and interval is not None:
        # The events have aged out: count the runs that fell due while this one ran.
        skipped = math.floor(ran / interval)
    if usual is not None:
        # Judged against its own history: some CronJobs' runs always outlast the interval.
        long = ran >= max(usual * SLOWER_THAN_USUAL, MIN_HUNG)
    else:
        long = interval is not None and ran > interval and ran >= MIN_HUNG
    if not skipped or not long:
        return None
    ref = kube.ref(job)
    schedule = str((cronjob.get("spec") or {}).get("schedule") or "?")
    evidence = [
        ledger.cite_object(
            ref,
            "status",
            f"active={(job.get('status') or {}).get('active')} "
            f"startTime={started:%Y-%m-%dT%H:%M:%SZ} (running {_minutes(ran)}); "
            "no Complete/Failed condition",
        ),
        ledger.cite_object(
            cron_ref,
            "spec",
            f"schedule={schedule} concurrencyPolicy=Forbid activeDeadlineSeconds="
            f"{_deadline(cronjob) or 'none'}",
        ),
    ]
    evidence += [ledger.cite_event(cron_ref, e.reason, e.describe()) for e in skips[-1:]]
    compare = []
    if usual is not None:
        compare.append(f"earlier successful runs took at most {_minutes(usual)}")
    if interval is not None:
        compare.append(f"runs are due every {_minutes(interval)}, schedule {schedule}")
    summary = (
        f"Job {ref.namespace}/{ref.name}, a run of {cron_ref}, has been running for "
        f"{_minutes(ran)} without finishing"
        + (f" ({'; '.join(compare)})" if compare else "")
        + f"; with concurrencyPolicy Forbid, {plural(skipped, 'scheduled run')} "
        + ("was" if skipped == 1 else "were")
        + " skipped"
        + (" (JobAlreadyActive)" if skips else "")
    )
    pod, silent = _silence(ctx, ledger, ref, evidence)
    if silent is not None:
        summary += f"; its log has been silent for {_minutes(ctx.now - silent[0])}, last: "
        summary += repr(pf.tidy(silent[1], 160))
    deadline = _deadline(cronjob)
    return Finding(
        Category.JobFailed,
        summary,
        ref,
        ref,
        tuple(evidence),
        0.85 if skips else 0.75,
        analyzer,
        facts={
            "rule": RULE,
            "job": ref.name,
            "namespace": ref.namespace,
            "cronjob": cron_ref.name,
            "running": _minutes(ran),
            "skipped": skipped,
            "pod": pod,
            "deadline": deadline,
            "suggested_deadline": _suggest(usual, interval),
        },
    )


def _deadline(cronjob: Mapping[str, Any]) -> int | None:
    spec = (((cronjob.get("spec") or {}).get("jobTemplate") or {}).get("spec")) or {}
    value = spec.get("activeDeadlineSeconds")
    return int(value) if value is not None else None


def _suggest(usual: timedelta | None, interval: timedelta | None) -> int | None:
    """A deadline that ends a hung run before the next one is due, with room for slow ones."""
    if interval is not None and (usual is None or usual * 2 <= interval):
        return int(interval.total_seconds())
    if usual is not None:
        # Runs that need most of the interval (or more) get room above their usual time.
        return int(max(usual * SLOWER_THAN_USUAL, MIN_HUNG).total_seconds())
    return None


def _silence(
    ctx: TriageContext, ledger: EvidenceLedger, job: ObjectRef, evidence: list[str]
) -> tuple[str | None, tuple[datetime, str] | None]:
    """(the running pod, when and what its log said last) — a hung run stops logging."""
    pods = [
        p
        for p in ctx.of_kind("Pod", job.namespace)
        if kube.controller_of(p) == job and kube.pod_phase(p) == "Running"
    ]
    for pod in pods:
        for c in kube.containers(pod, include_init=False):
            log = ctx.log(job.namespace or "", kube.name(pod), c.name, False)
            if log is None:
                continue
            evidence.append(
                ledger.cite_log(log.namespace, log.pod, log.container, False, log.last(3))
            )
            last = _last_line_time(log.lines)
            if last is not None and ctx.now - last[0] < MIN_HUNG:
                last = None  # still talking: slow, perhaps, but not silent
            return kube.name(pod), last
    return (kube.name(pods[0]) if pods else None), None


def recommend(finding: Finding) -> list[Recommendation]:
    f = finding.facts
    ns, job, cronjob = f["namespace"], f["job"], f["cronjob"]
    steps = [
        Recommendation(
            f"Delete the hung run {job} so CronJob {cronjob} runs again",
            f"Job {job} has been running for {f['running']} and, with concurrencyPolicy "
            f"Forbid, blocks every later run ({f['skipped']} skipped so far). Read where it "
            "hangs first; deleting the Job stops its pod and the next scheduled run starts "
            "normally (or start one by hand).",
            tuple(
                c
                for c in (
                    kubectl("logs", f"job/{job}", "--tail=50", namespace=ns),
                    pf.describe_pod(f["pod"], ns) if f.get("pod") else "",
                    kubectl("delete", "job", job, namespace=ns),
                    kubectl(
                        "create",
                        "job",
                        f"--from=cronjob/{cronjob}",
                        f"{cronjob}-manual",
                        namespace=ns,
                    ),
                )
                if c
            ),
            "medium",
            finding.confidence,
        )
    ]
    if f.get("deadline") is None and f.get("suggested_deadline"):
        seconds = f["suggested_deadline"]
        patch = f'\'{{"spec":{{"jobTemplate":{{"spec":{{"activeDeadlineSeconds":{seconds}}}}}}}}}\''
        steps.append(
            Recommendation(
                f"Give CronJob {cronjob}'s runs a deadline",
                "Its jobTemplate sets no activeDeadlineSeconds, so a run that hangs (a network "
                "call without a timeout) blocks the schedule until someone notices. A deadline "
                f"of {seconds}s ends such a run before the next is due; also give the call "
                "that hung a timeout.",
                (
                    kubectl(
                        "patch", "cronjob", cronjob, "--type", "merge", "-p", patch, namespace=ns
                    ),
                ),
                "low",
                finding.confidence,
            )
        )
    return steps
