"""Workload controllers: rollouts that stopped, Jobs that failed, limits that bind.

The ``workloads`` analyzer owns ``RolloutStuck`` (here: a Deployment past its progress
deadline or paused half-way, a StatefulSet or DaemonSet update held by a broken updated
pod), ``JobFailed`` (:mod:`jobs`), ``ScalingLimit`` (:mod:`capacity`) and
``CPUThrottling`` (:mod:`throttling`). A stuck rollout is usually a symptom: when the new
revision's pods have their own problem, the finding blames them so that problem ranks as
the cause. A rollout the controller has not observed yet, or one still progressing, is
not stuck.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.sources.snapshot import parse_time
from oncallm.triage import kube
from oncallm.triage.analyzers import Analyzer, capacity, jobs, throttling
from oncallm.triage.analyzers.phrases import plural, pod_state
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl
from oncallm.triage.taxonomy import Category

NAME = "workloads"
REVISION = "deployment.kubernetes.io/revision"
# A StatefulSet/DaemonSet has no progress deadline: a pod of the new revision that has been
# broken this long is what holds the update, not the update's normal pace.
HELD_AFTER = timedelta(minutes=10)
# Reasons a pod keeps waiting that no amount of waiting fixes.
STUCK_WAITING = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def _revision(obj: Mapping[str, Any]) -> int:
    try:
        return int((kube.meta(obj).get("annotations") or {}).get(REVISION) or 0)
    except ValueError:
        return 0


def _unobserved(obj: Mapping[str, Any]) -> bool:
    """The controller has not acted on the latest spec yet: nothing can be stuck."""
    generation = kube.meta(obj).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    return generation is not None and observed is not None and int(generation) > int(observed)


def _pods_of(ctx: TriageContext, owner: ObjectRef) -> list[KubeObject]:
    return [p for p in ctx.of_kind("Pod", owner.namespace) if kube.controller_of(p) == owner]


def _broken(ctx: TriageContext, pod: Mapping[str, Any]) -> bool:
    """A pod that is not going to become ready by itself."""
    if kube.pod_finished(pod) or kube.pod_ready(pod):
        return False
    if any(c.waiting_reason in STUCK_WAITING for c in kube.containers(pod)):
        return True
    if kube.pod_phase(pod) == "Failed":
        return True
    ready = kube.condition(pod, "Ready") or kube.condition(pod, "PodScheduled") or {}
    since = parse_time(ready.get("lastTransitionTime"))
    return since is not None and ctx.now - since >= HELD_AFTER


# --- Deployments ----------------------------------------------------------------------------


def _deployment(ctx: TriageContext, ledger: EvidenceLedger, dep: KubeObject) -> Finding | None:
    if _unobserved(dep):
        return None
    ref = kube.ref(dep)
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    progressing = kube.condition(dep, "Progressing") or {}
    deadline = (
        progressing.get("status") == "False"
        and progressing.get("reason") == "ProgressDeadlineExceeded"
    )
    paused = bool(spec.get("paused")) and updated < replicas
    if not (deadline or paused):
        return None
    owned = sorted(
        (rs for rs in ctx.of_kind("ReplicaSet", ref.namespace) if kube.controller_of(rs) == ref),
        key=_revision,
    )
    message = str(progressing.get("message") or "")
    new = next((rs for rs in owned if f'"{kube.name(rs)}"' in message), None)
    new = new or (owned[-1] if owned else None)
    older = [rs for rs in owned if new is not None and _revision(rs) < _revision(new)]
    previous = next(
        (rs for rs in reversed(older) if (rs.get("status") or {}).get("replicas")),
        older[-1] if older else None,
    )
    new_pods = _pods_of(ctx, kube.ref(new)) if new is not None else []
    troubled = [p for p in new_pods if kube.pod_unhealthy(p)]
    create_failures = ctx.warnings_of(kube.ref(new), "FailedCreate") if new is not None else []
    new_ready = int(((new or {}).get("status") or {}).get("readyReplicas") or 0)
    evidence = [
        ledger.cite_object(
            ref,
            "status",
            f"replicas={replicas} updatedReplicas={updated} "
            f"readyReplicas={status.get('readyReplicas', 0)} paused={bool(spec.get('paused'))}; "
            f"Progressing={progressing.get('status')} {progressing.get('reason', '')}: {message}",
        )
    ]
    evidence += [
        ledger.cite_event(kube.ref(new), e.reason, e.describe())
        for e in create_failures[-1:]
        if new is not None
    ]
    what = f"revision {_revision(new)} (ReplicaSet {kube.name(new)})" if new else "a new revision"
    why = (
        f"is paused with {updated} of {replicas} replicas updated"
        if paused and not deadline
        else f"exceeded its {spec.get('progressDeadlineSeconds', 600)}s progress deadline "
        f"with {updated} of {replicas} replicas updated, {new_ready} ready"
    )
    details = []
    has_cause = bool(troubled or create_failures)
    min_ready = int(spec.get("minReadySeconds") or 0)
    deadline_s = int(spec.get("progressDeadlineSeconds") or 600)
    # Healthy new pods, and a spec that makes every step slower than the deadline allows.
    slow_by_design = deadline and not has_cause and min_ready >= deadline_s
    if slow_by_design:
        details.append(
            f"minReadySeconds {min_ready} is not shorter than progressDeadlineSeconds "
            f"{deadline_s}: each new pod must stay Ready {min_ready}s before it counts as "
            "available, so every step outlasts the deadline"
        )
    if troubled:
        details.append(
            "new pods: " + ", ".join(f"{kube.name(p)} {pod_state(p)}" for p in troubled[:3])
        )
    if create_failures:
        details.append(f"ReplicaSet cannot create pods: {create_failures[-1].message}")
    if previous is not None:
        prev_ready = int((previous.get("status") or {}).get("readyReplicas") or 0)
        details.append(
            f"revision {_revision(previous)} ({kube.name(previous)}) still has "
            f"{plural(prev_ready, 'ready pod')}"
        )
    summary = f"{ref} rollout to {what} {why}" + (f"; {'; '.join(details)}" if details else "")
    blames: list[ObjectRef] = [kube.ref(p) for p in troubled]
    if new is not None:
        blames.append(kube.ref(new))
    confidence = 0.8 if paused and not deadline else (0.5 if has_cause else 0.65)
    if slow_by_design:
        confidence = 0.85
    return Finding(
        Category.RolloutStuck,
        summary,
        ref,
        ref,
        tuple(evidence),
        confidence,
        NAME,
        blames=(*blames, ref) if has_cause else tuple(blames),
        facts={
            "kind": "Deployment",
            "name": ref.name,
            "namespace": ref.namespace,
            "paused": paused and not deadline,
            "new_replicaset": kube.name(new) if new else None,
            "new_revision": _revision(new) if new else None,
            "previous_revision": _revision(previous) if previous else None,
            "new_pods": [kube.name(p) for p in troubled],
            "pod_template_hash": kube.labels(new).get("pod-template-hash") if new else None,
            "updated": updated,
            "replicas": replicas,
            "min_ready_seconds": min_ready if slow_by_design else None,
            "progress_deadline_seconds": deadline_s,
        },
    )


# --- StatefulSets and DaemonSets ------------------------------------------------------------


def _set_update(ctx: TriageContext, ledger: EvidenceLedger, obj: KubeObject) -> Finding | None:
    if _unobserved(obj):
        return None
    ref = kube.ref(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return None  # updates wait for someone to delete pods, by design
    pods = _pods_of(ctx, ref)
    if ref.kind == "StatefulSet":
        revision = status.get("updateRevision")
        if not revision or revision == status.get("currentRevision"):
            return None
        if int((strategy.get("rollingUpdate") or {}).get("partition") or 0) > 0:
            return None  # a staged (partitioned) rollout stops where it was told to
        total, updated = int(spec.get("replicas", 1)), int(status.get("updatedReplicas") or 0)
        new_pods = [p for p in pods if kube.labels(p).get("controller-revision-hash") == revision]
    else:
        total = int(status.get("desiredNumberScheduled") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        generation = str(kube.meta(obj).get("generation", ""))
        new_pods = [p for p in pods if kube.labels(p).get("pod-template-generation") == generation]
    if updated >= total:
        return None
    held = [p for p in new_pods if _broken(ctx, p)]
    if not held:
        return None  # still moving, or waiting on something we cannot see: not proven stuck
    states = ", ".join(f"{kube.name(p)} {pod_state(p)}" for p in held[:3])
    evidence = ledger.cite_object(
        ref, "status", f"updated {updated}/{total}; updated pods not ready: {states}"
    )
    return Finding(
        Category.RolloutStuck,
        f"{ref} update is held at {updated} of {total} pods updated: the updated "
        f"{'pod' if len(held) == 1 else 'pods'} {states} will not become ready",
        ref,
        ref,
        (evidence,),
        0.5,
        NAME,
        blames=(*(kube.ref(p) for p in held), ref),
        facts={
            "kind": ref.kind,
            "name": ref.name,
            "namespace": ref.namespace,
            "new_pods": [kube.name(p) for p in held],
            "updated": updated,
            "replicas": total,
            "paused": False,
        },
    )


def _rollouts(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    for dep in ctx.of_kind("Deployment"):
        finding = _deployment(ctx, ledger, dep)
        if finding is not None:
            yield finding
    for kind in ("StatefulSet", "DaemonSet"):
        for obj in ctx.of_kind(kind):
            finding = _set_update(ctx, ledger, obj)
            if finding is not None:
                yield finding


def _recommend_rollout(finding: Finding) -> list[Recommendation]:
    facts = finding.facts
    ns, kind, name = facts["namespace"], str(facts["kind"]), facts["name"]
    target = f"{kind.lower()}/{name}"
    confirm = [
        kubectl("rollout", "status", target, "--timeout=10s", namespace=ns),
        kubectl("rollout", "history", target, namespace=ns),
    ]
    confirm += [kubectl("describe", "pod", p, namespace=ns) for p in facts["new_pods"][:1]]
    if facts.get("new_replicaset"):
        confirm.append(kubectl("describe", "replicaset", facts["new_replicaset"], namespace=ns))
    if facts.get("paused"):
        return [
            Recommendation(
                f"Resume the paused rollout of {kind} {name}",
                f"{kind} {ns}/{name} was paused with {facts['updated']} of {facts['replicas']} "
                "replicas updated. Resume it once the new revision is confirmed good.",
                (*confirm, kubectl("rollout", "resume", target, namespace=ns)),
                "medium",
                finding.confidence,
            )
        ]
    if facts.get("min_ready_seconds"):
        min_ready = int(facts["min_ready_seconds"])
        patch = json.dumps({"spec": {"progressDeadlineSeconds": min_ready + 600}})
        return [
            Recommendation(
                f"Make minReadySeconds and progressDeadlineSeconds of {kind} {name} agree",
                f"minReadySeconds is {min_ready}s, progressDeadlineSeconds "
                f"{facts['progress_deadline_seconds']}s: the pods are fine, the rollout is "
                "just declared failed before any step can finish. Lower minReadySeconds if it "
                "was a typo, or give the deadline room.",
                (
                    *confirm,
                    kubectl("patch", target, "--type", "merge", "-p", f"'{patch}'", namespace=ns),
                ),
                "medium",
                finding.confidence,
            )
        ]
    undo = ["rollout", "undo", target]
    if facts.get("previous_revision"):
        undo.append(f"--to-revision={facts['previous_revision']}")
    return [
        Recommendation(
            f"Fix the new revision of {kind} {name}, or roll back",
            "The new revision's pods are not becoming ready; fix their cause and the rollout "
            "completes by itself. To restore service first, roll back to the revision that "
            "worked.",
            (*confirm, kubectl(*undo, namespace=ns)),
            "medium",
            finding.confidence,
        )
    ]


def analyze(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    yield from _rollouts(ctx, ledger)
    yield from jobs.findings(ctx, ledger, NAME)
    yield from capacity.findings(ctx, ledger, NAME)
    yield from throttling.findings(ctx, ledger, NAME)


def recommend(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    if finding.category is Category.RolloutStuck:
        return _recommend_rollout(finding)
    if finding.category is Category.JobFailed:
        return jobs.recommend(finding, ctx)
    if finding.category is Category.CPUThrottling:
        return throttling.recommend(finding, ctx)
    return capacity.recommend(finding, ctx)


ANALYZER = Analyzer(
    name=NAME,
    categories=frozenset(
        {
            Category.RolloutStuck,
            Category.JobFailed,
            Category.ScalingLimit,
            Category.DependencyFailure,  # an HPA blind for want of its metrics API
            Category.CPUThrottling,
        }
    ),
    analyze=analyze,
    recommend=recommend,
)
