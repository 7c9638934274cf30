"""Pods analyzer: containers that are killed, crash, cannot pull their image or fail probes.

It owns ``OOMKilled`` (a container ended by the kernel at its memory limit), ``CrashLoop``
(the application exits on its own — not OOM, not configuration, which the config analyzer
owns), ``ImagePull`` and ``ProbeFailure`` (a liveness probe that kills the container, or a
readiness probe that keeps it out of its Services with no deeper cause). Findings are one
per workload and container, naming the pod closest to the alert as the subject and the
workload — whose spec must change — as the culprit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import (
    Analyzer,
    app_config,
    crashlog,
    image_pulls,
    metricfacts,
    pods_advice,
)
from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.analyzers.crashlog import headline_at
from oncallm.triage.context import Event, TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.taxonomy import Category

NAME = "pods"
# The runtime could not create or start the container: a spec problem the config analyzer owns.
_CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")
_START_REASONS = ("StartError", "ContainerCannotRun")
_PROBE_FAILED = re.compile(r"^(Liveness|Readiness|Startup) probe (?:failed|errored):?\s*(.*)", re.S)
_PROBE_KILL = re.compile(r"Container (\S+) failed (liveness|startup) probe")


@dataclass
class _Hit:
    category: Category
    pod: KubeObject
    container: kube.ContainerState
    confidence: float
    evidence: list[str]
    facts: dict[str, Any]
    blames: list[ObjectRef] = field(default_factory=list)


def dependency_blames(
    ctx: TriageContext, pod: Mapping[str, Any], lines: tuple[str, ...] | None
) -> list[ObjectRef]:
    """Services of the pod's dependencies — those named in ``lines`` when lines are given."""
    text = "\n".join(lines or ())
    return [
        d.service
        for d in ctx.dependencies_of([pf.pod_ref(pod)])
        if d.service is not None and (lines is None or d.host in text or d.line in text)
    ]


def _node(pod: Mapping[str, Any]) -> list[ObjectRef]:
    name = (pod.get("spec") or {}).get("nodeName")
    return [ObjectRef("Node", None, str(name))] if name else []


def _oom(
    ctx: TriageContext, ledger: EvidenceLedger, pod: KubeObject, c: kube.ContainerState
) -> _Hit | None:
    for label, state in (("state.terminated", c.terminated), ("lastState", c.last_terminated)):
        if not state or state.get("reason") != "OOMKilled":
            continue
        finished = pf.time_of(state.get("finishedAt"))
        confidence = 0.95
        if not pf.is_recent(ctx, finished) and c.running and c.ready:
            # An old kill on a container that is healthy now is history, not this incident.
            if not ctx.is_focus(pf.pod_ref(pod)):
                return None
            confidence = 0.35
        limit = c.limit("memory")
        if limit is None:
            confidence = min(confidence, 0.8)  # killed by the node's OOM killer, not a limit
        cited = ledger.cite_object(
            pf.pod_ref(pod),
            f"status.containerStatuses[{c.name}]",
            f"{pf.state_text(label, state)} restartCount={c.restarts}; "
            f"limits.memory={limit or 'none'} requests.memory={c.request('memory') or 'none'}",
        )
        facts: dict[str, Any] = {
            "limit": limit,
            "request": c.request("memory"),
            "last": pf.stamp(finished, ctx.now),
            "restarts": c.restarts,
        }
        heap = pf.heap_setting(c.spec)
        limit_bytes = kube.parse_quantity(limit)
        if heap is not None and limit_bytes and heap[2] >= limit_bytes * Decimal("0.75"):
            # The runtime may grow its heap to (or past) the limit: the kill is configured.
            facts["heap"] = {"flag": heap[0], "where": heap[1], "above": heap[2] > limit_bytes}
        evidence = [cited]
        profile = metricfacts.memory_profile(
            ctx, ledger, ctx.workload_of(pod), c.name, kube.name(pod), finished,
            started_at=pf.time_of(state.get("startedAt")), heap_allows="heap" in facts,
        )  # fmt: skip
        if profile is not None:
            facts["memory"] = {"kind": profile.kind, "sentence": profile.sentence}
            evidence.append(profile.evidence)
        return _Hit(
            Category.OOMKilled, pod, c, confidence, evidence, facts, [] if limit else _node(pod)
        )
    return None


def _pull_hit(
    ctx: TriageContext,
    ledger: EvidenceLedger,
    pod: KubeObject,
    c: kube.ContainerState,
    events: list[Event],
) -> _Hit:
    confidence, evidence, facts = image_pulls.pull_facts(ctx, ledger, pod, c, events)
    return _Hit(Category.ImagePull, pod, c, confidence, evidence, facts)


def _probe_port(probe: Mapping[str, Any]) -> Any:
    for handler in ("httpGet", "tcpSocket", "grpc"):
        if probe.get(handler):
            return probe[handler].get("port")
    return None


def _probe_events(pod: KubeObject, events: list[Event]) -> dict[tuple[str, str], list[Event]]:
    """Unhealthy and probe-kill events by (container, probe kind)."""
    found: dict[tuple[str, str], list[Event]] = {}
    ctrs = kube.containers(pod)
    for event in events:
        if event.reason == "Killing" and (kill := _PROBE_KILL.search(event.message)):
            found.setdefault((kill[1], kill[2].capitalize() + "-kill"), []).append(event)
        if event.reason != "Unhealthy" or not (failed := _PROBE_FAILED.match(event.message)):
            continue
        kind = failed[1]
        having = [c for c in ctrs if c.spec.get(f"{kind.lower()}Probe")]
        ordered = sorted(having, key=lambda c: c.ready) or ctrs
        if ordered:
            found.setdefault((ordered[0].name, kind), []).append(event)
    return found


def _probe(
    ctx: TriageContext,
    ledger: EvidenceLedger,
    pod: KubeObject,
    c: kube.ContainerState,
    probes: dict[tuple[str, str], list[Event]],
) -> _Hit | None:
    ref = pf.pod_ref(pod)
    for kind in ("Liveness", "Startup", "Readiness"):
        failures = probes.get((c.name, kind), [])
        kills = probes.get((c.name, kind + "-kill"), [])
        if not failures and not kills:
            continue
        if kind == "Readiness" and (c.ready or not c.running):
            continue  # ready now, or not running at all: the probe is not what is wrong
        if kind != "Readiness" and not kills and c.restarts == 0 and c.ready:
            continue
        probe = c.spec.get(f"{kind.lower()}Probe") or {}
        evidence = [ledger.cite_event(ref, e.reason, e.describe()) for e in (failures + kills)[-2:]]
        last_failure = failures[-1] if failures else None
        failure_text = ""
        if last_failure is not None and (m := _PROBE_FAILED.match(last_failure.message)):
            failure_text = m[2].strip()
        facts = {
            "probe": kind.lower(),
            "probe_text": pf.probe_text(probe, c.spec),
            "port": pf.port_number(_probe_port(probe), c.spec),
            "failure": failure_text,
            "failures": sum(e.count for e in failures),
            "kills": sum(e.count for e in kills),
            "restarts": c.restarts,
            "probe_spec": probe,
            **pf.probe_timing(probe),
        }
        confidence = 0.8 if kills else 0.7
        blames = [*dependency_blames(ctx, pod, None), *_node(pod)]
        return _Hit(Category.ProbeFailure, pod, c, confidence, evidence, facts, blames)
    return None


def _crash(
    ctx: TriageContext, ledger: EvidenceLedger, pod: KubeObject, c: kube.ContainerState
) -> _Hit | None:
    term = c.terminated or c.last_terminated
    looping = c.waiting_reason == "CrashLoopBackOff"
    if term is None and not looping:
        return None
    term = term or {}
    code = term.get("exitCode")
    finished = pf.time_of(term.get("finishedAt"))
    if not looping:
        if code in (None, 0) or term.get("reason") in ("OOMKilled", "Completed"):
            return None
        if c.terminated is None and not pf.is_recent(ctx, finished) and c.ready:
            return None  # an old crash of a container that is fine now
    ref, ns, name = pf.pod_ref(pod), kube.namespace(pod) or "", kube.name(pod)
    log = ctx.log(ns, name, c.name, True) or ctx.log(ns, name, c.name, False)
    if log is not None and app_config.complaint(log.lines):
        return None  # the config analyzer names what to fix
    evidence = [
        ledger.cite_object(
            ref,
            f"status.containerStatuses[{c.name}]",
            pf.state_text("lastState.terminated", term) + f" restartCount={c.restarts}",
        )
    ]
    lines: tuple[str, ...] = ()
    message = str(term.get("message") or "").splitlines()
    at = headline_at(message)
    said = message[crashlog.reason_at(message, at)].strip() if at is not None else None
    if log is not None:
        at = headline_at(log.lines)
        if at is not None:
            why = crashlog.reason_at(log.lines, at)
            said = log.lines[why].strip()
            lines = log.lines[at : max(at + 4, why + 2)]
        else:
            lines = log.error_lines[-5:] or log.last(5)
        evidence.append(ledger.cite_log(ns, name, c.name, log.previous, lines))
    blame_lines = (*log.error_lines, *lines) if log is not None else ()
    evidence += [
        ledger.cite_event(ref, e.reason, e.describe()) for e in ctx.warnings_of(ref, "BackOff")[-1:]
    ]
    blames = dependency_blames(ctx, pod, blame_lines) if blame_lines else []
    if any(pf.NO_SPACE.search(line) for line in blame_lines):
        blames += pf.claims_of(pod, c.name)  # it dies because its volume is full
    confidence = 0.85 if lines else 0.75
    if blames:  # the app dies because something it needs is down or full: that is the cause
        confidence = 0.6
    facts = {
        "exit_code": code,
        "exit_meaning": "Go panic"
        if code == 2 and str(said).startswith("panic:")
        else pf.exit_meaning(int(code) if code is not None else None),
        "restarts": c.restarts,
        "last": pf.stamp(finished, ctx.now),
        "log_lines": list(lines),
        "headline": said or (lines[-1] if lines else None),
        "previous_log": bool(log and log.previous),
        "init": c.init,
        # An init container that keeps failing holds the app back: its containers wait.
        "held": [
            m.name
            for m in kube.containers(pod, include_init=False)
            if c.init and m.waiting_reason == "PodInitializing"
        ],
    }
    return _Hit(Category.CrashLoop, pod, c, confidence, evidence, facts, blames)


def _hits(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[_Hit]:
    for pod in pf.live_pods(ctx):
        ref = pf.pod_ref(pod)
        events = ctx.events_of(ref)
        probes = _probe_events(pod, events)
        terminating = bool(kube.meta(pod).get("deletionTimestamp"))
        for c in kube.containers(pod):
            last = c.terminated or c.last_terminated or {}
            if c.waiting_reason in _CONFIG_REASONS or last.get("reason") in _START_REASONS:
                continue  # the kubelet could not create it: the config analyzer's case
            if c.waiting_reason in image_pulls.PULL_REASONS:
                yield _pull_hit(ctx, ledger, pod, c, events)
                continue
            hit = _oom(ctx, ledger, pod, c)
            if hit is None and any(key[0] == c.name and key[1].endswith("-kill") for key in probes):
                hit = _probe(ctx, ledger, pod, c, probes)  # killed by its liveness probe
            hit = hit or _crash(ctx, ledger, pod, c)
            if hit is None and not terminating:
                hit = _probe(ctx, ledger, pod, c, probes)
            if hit is None and image_pulls.pulled_late(c, events):
                hit = _pull_hit(ctx, ledger, pod, c, events)
            if hit is not None:
                yield hit


def _summary(hit: _Hit, owner: str, pods: list[KubeObject]) -> str:
    f, c = hit.facts, hit.container.name
    where = f"container {c} of {owner}"
    if len(pods) > 1:
        where += f" ({len(pods)} pods: {pf.pods_phrase(pods)})"
    if hit.category is Category.OOMKilled:
        if f["limit"]:
            at = f"at its {f['limit']} memory limit"
        else:
            at = "with no memory limit set (the node ran out of memory)"
        times = "once" if f["restarts"] == 1 else f"{f['restarts']} times"
        text = f"{where} was OOMKilled {at}; restarted {times}, last kill {f['last']}"
        if heap := f.get("heap"):
            room = "is above" if heap["above"] else "leaves no room under"
            text += f"; its heap flag {heap['flag']} ({heap['where']}) {room} the limit"
        if memory := f.get("memory"):
            text += f"; {memory['sentence']}"
        return text
    if hit.category is Category.ImagePull:
        return image_pulls.summary(f, where)
    if hit.category is Category.ProbeFailure:
        probe = f"{f['probe']} probe {f['probe_text']}"
        failure = f": {f['failure'][:160]}" if f["failure"] else ""
        if f["kills"] or (f["probe"] != "readiness" and f["restarts"]):
            return (
                f"{probe} of {where} fails and the kubelet restarts it "
                f"({f['restarts']} restarts; timeout {f['timeoutSeconds']}s, initial delay "
                f"{f['initialDelaySeconds']}s){failure}"
            )
        return f"{probe} of {where} fails ({f['failures']}x), so it is not ready{failure}"
    looping = f"{where} is crash-looping"
    if f.get("init"):
        held = ", ".join(f.get("held") or [])
        looping = f"init {where} is crash-looping, so the pod never starts" + (
            f" (container {held} waits in PodInitializing)" if held else ""
        )
    text = (
        f"{looping}: exit code {f['exit_code']} ({f['exit_meaning']}), "
        f"{f['restarts']} restarts, last exit {f['last']}"
    )
    if f["headline"]:
        text += f"; last log: {pf.tidy(str(f['headline']))!r}"
    return text


def analyze(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    groups: dict[tuple[Category, ObjectRef, str], list[_Hit]] = {}
    for hit in _hits(ctx, ledger):
        key = (hit.category, ctx.workload_of(hit.pod), hit.container.name)
        groups.setdefault(key, []).append(hit)
    for (category, workload, container), hits in groups.items():
        pods = [h.pod for h in hits]
        subject = pf.first_pod(ctx, pods)
        primary = next(h for h in hits if h.pod is subject)
        culprit = workload
        if category is Category.ImagePull and primary.facts["cause"] == "auth":
            missing = primary.facts["missing_pull_secrets"]
            if missing:  # creating the Secret ends it
                culprit = ObjectRef("Secret", workload.namespace, missing[0])
        facts: dict[str, Any] = {
            **primary.facts,
            "container": container,
            "pod": kube.name(subject),
            "pods": sorted(kube.name(p) for p in pods),
            "node": (subject.get("spec") or {}).get("nodeName"),
            **pf.workload_facts(workload),
        }
        if category is Category.OOMKilled and primary.facts["limit"]:
            limit = kube.parse_quantity(primary.facts["limit"]) or Decimal(0)
            facts["suggested_limit"] = pf.memory_text(limit * Decimal("1.5"))
            if primary.facts.get("heap"):
                # Off-heap memory (metaspace, threads, buffers) needs about a quarter more.
                facts["suggested_heap"] = pf.memory_text(limit * Decimal("0.75"))
        yield Finding(
            category=category,
            summary=_summary(primary, pf.owner_phrase(workload), pods),
            subject=pf.pod_ref(subject),
            resource=culprit,
            evidence=pf.unique(e for h in hits for e in h.evidence),
            confidence=max(h.confidence for h in hits),
            analyzer=NAME,
            blames=tuple(dict.fromkeys(b for h in hits for b in h.blames)),
            facts=facts,
        )


ANALYZER = Analyzer(
    name=NAME,
    categories=frozenset(
        {Category.OOMKilled, Category.CrashLoop, Category.ImagePull, Category.ProbeFailure}
    ),
    analyze=analyze,
    recommend=pods_advice.recommend,
)
