"""Config analyzer: containers that cannot start, or exit at once, because of configuration.

It owns ``ConfigError``: the kubelet refusing to create a container
(``CreateContainerConfigError``: a missing ConfigMap/Secret or key), volumes of missing
ConfigMaps/Secrets (``FailedMount``), a referenced key absent from an object that was read,
a command that is not in the image, and applications that exit complaining about their
own configuration (``missing required env DATABASE_URL``, ``flag provided but not
defined``), or a server bound to a loopback address that its probes cannot reach
(:mod:`loopback`). The culprit is the ConfigMap or Secret that lacks what the pod reads,
or the workload when its own env, command or args are wrong.
What applications say about their configuration is read in :mod:`app_config`, which the
pods analyzer shares, so a crash caused by configuration is reported once, here, and not
again as a plain crash loop.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import Analyzer, app_config, config_advice, loopback
from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.taxonomy import Category

NAME = "config"

# --- what the kubelet says --------------------------------------------------------------

_KEY_MISSING = re.compile(
    r"couldn't find key (?P<key>\S+) in (?P<kind>ConfigMap|Secret) "
    r"(?P<ns>[\w.-]+)/(?P<name>[\w.-]+)"
)
_OBJECT_MISSING = re.compile(r'(?P<kind>configmap|secret)s? "(?P<name>[\w.-]+)" not found', re.I)
_VOLUME_KEY_MISSING = re.compile(r"references non-existent (?:config|secret) key: (?P<key>\S+)")
_VOLUME = re.compile(r'for volume "(?P<volume>[^"]+)"')
_EXEC = re.compile(
    r'exec: "(?P<cmd>[^"]+)": (?P<why>executable file not found in \$PATH|'
    r"stat [^:]+: no such file or directory|no such file or directory|permission denied)"
)
_NON_ROOT = re.compile(r"runAsNonRoot and image (?:will run as root|has non-numeric user[^,]*)")
# Runtime hiccups the kubelet retries past on its own; not a spec problem.
_TRANSIENT = re.compile(
    r"failed to reserve container name|context deadline exceeded|DeadlineExceeded|"
    r"failed to sync (?:configmap|secret) cache",
    re.I,
)
_NOT_CREATED = ("ContainerCreating", "CreateContainerConfigError", "CreateContainerError")
_CREATE_REASONS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")
_START_REASONS = ("StartError", "ContainerCannotRun")


@dataclass
class _Problem:
    """One configuration fault, with every pod that shows it."""

    kind: str  # missing-key | missing-object | missing-env | bad-value | bad-args | ...
    culprit: ObjectRef
    key: str | None
    via: str | None
    container: str
    workload: ObjectRef
    message: str
    confidence: float
    pods: list[KubeObject] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class _Collector:
    def __init__(self, ctx: TriageContext, ledger: EvidenceLedger) -> None:
        self.ctx, self.ledger = ctx, ledger
        self.problems: dict[tuple[str, ObjectRef, str | None], _Problem] = {}

    def add(self, problem: _Problem, pod: KubeObject, evidence: Iterable[str]) -> None:
        key = (problem.kind, problem.culprit, problem.key)
        known = self.problems.setdefault(key, problem)
        known.confidence = max(known.confidence, problem.confidence)
        if pod not in known.pods:
            known.pods.append(pod)
        known.evidence.extend(e for e in evidence if e not in known.evidence)


def _refs_to(pod_spec: Mapping[str, Any], kind: str, name: str) -> list[kube.ConfigReference]:
    return [r for r in kube.config_references(pod_spec) if r.kind == kind and r.name == name]


def _kubelet_problem(
    ctx: TriageContext, pod: KubeObject, container: str, message: str, *, status: bool = False
) -> _Problem | None:
    """A kubelet refusal (container status or event message) as a configuration problem.

    A container status that says the runtime could not create or start the container is a
    spec problem even when the message is not one we recognise (``status=True``)."""
    ns, spec, workload = kube.namespace(pod), pod.get("spec") or {}, ctx.workload_of(pod)
    if match := _KEY_MISSING.search(message):
        culprit = ObjectRef(match["kind"], match["ns"], match["name"])
        refs = [r for r in _refs_to(spec, culprit.kind, culprit.name) if r.key == match["key"]]
        via = refs[0].via if refs else None
        return _Problem(
            "missing-key", culprit, match["key"], via, container, workload, message, 0.95
        )
    if match := _VOLUME_KEY_MISSING.search(message):
        volume = _VOLUME.search(message)
        found = app_config.volume_source(spec, volume["volume"]) if volume else None
        if found is not None:
            culprit = ObjectRef(found[0], ns, found[1])
            via = f"volume {volume['volume']}" if volume else None
            return _Problem(
                "missing-key", culprit, match["key"], via, container, workload, message, 0.9
            )
    if match := _OBJECT_MISSING.search(message):
        kind = "ConfigMap" if match["kind"].lower().startswith("configmap") else "Secret"
        refs = _refs_to(spec, kind, match["name"])
        if kind == "Secret" and refs and all(r.via == "imagePullSecrets" for r in refs):
            return None  # the pods analyzer explains pull failures
        via = refs[0].via if refs else None
        confidence = 0.95 if "FailedMount" not in message else 0.9
        return _Problem(
            "missing-object",
            ObjectRef(kind, ns, match["name"]),
            None,
            via,
            container,
            workload,
            message,
            confidence,
        )
    if match := _EXEC.search(message):
        return _Problem(
            "bad-command", workload, match["cmd"], None, container, workload, message, 0.9
        )
    if _NON_ROOT.search(message):
        return _Problem("security-context", workload, None, None, container, workload, message, 0.9)
    if status and message and not _TRANSIENT.search(message):
        return _Problem("start-failure", workload, None, None, container, workload, message, 0.7)
    return None


def _static_problems(ctx: TriageContext, pod: KubeObject) -> Iterator[_Problem]:
    """References the kubelet cannot satisfy, judged from the objects that were read.

    Only for containers the kubelet has not created: a running or crash-looping container
    already resolved its references, so a gap found now is latent (or an object the
    snapshot lacks), not the cause of this alert."""
    ns, spec, workload = kube.namespace(pod), pod.get("spec") or {}, ctx.workload_of(pod)
    stuck = {c.name for c in kube.containers(pod) if c.waiting_reason in _NOT_CREATED}
    if not stuck:
        return
    gap_sources = {g.source for g in ctx.gaps}
    for ref in kube.config_references(spec):
        if ref.optional or ref.via == "imagePullSecrets":
            continue
        if ref.container is not None and ref.container not in stuck:
            continue
        culprit = ObjectRef(ref.kind, ns, ref.name)
        container = ref.container or sorted(stuck)[0]
        obj = ctx.objects.get(culprit)
        if obj is None:
            if str(culprit) not in gap_sources:  # not read because it does not exist
                yield _Problem(
                    "missing-object", culprit, None, ref.via, container, workload, "", 0.6
                )
        elif ref.key is not None and ref.key not in kube.object_keys(obj):
            yield _Problem("missing-key", culprit, ref.key, ref.via, container, workload, "", 0.85)


def _collect(ctx: TriageContext, ledger: EvidenceLedger) -> _Collector:
    found = _Collector(ctx, ledger)
    for pod in pf.live_pods(ctx):
        ref, ns, name = pf.pod_ref(pod), kube.namespace(pod), kube.name(pod)
        reported: set[str] = set()
        for c in kube.containers(pod):
            states: list[tuple[str, Mapping[str, Any] | None, tuple[str, ...]]] = [
                ("state.waiting", c.waiting, _CREATE_REASONS),
                ("state.terminated", c.terminated, _START_REASONS),
                ("lastState.terminated", c.last_terminated, _START_REASONS),
            ]
            for aspect, state, reasons in states:
                if not state or state.get("reason") not in reasons:
                    continue
                message = str(state.get("message") or "")
                problem = _kubelet_problem(ctx, pod, c.name, message, status=True)
                if problem is not None:
                    cited = ledger.cite_object(
                        ref, f"{aspect}[{c.name}]", f"{state.get('reason')}: {message}"
                    )
                    found.add(problem, pod, [cited])
                    reported.add(c.name)
                    break
        waiting = [c.name for c in kube.containers(pod) if c.waiting and not c.running]
        for event in ctx.warnings_of(ref, "Failed", "FailedMount"):
            container = waiting[0] if waiting else kube.containers(pod)[0].name
            text = f"{event.reason} {event.message}"
            problem = _kubelet_problem(ctx, pod, container, text)
            if problem is not None:
                found.add(problem, pod, [ledger.cite_event(ref, event.reason, event.describe())])
                reported.add(container)
        for problem in _static_problems(ctx, pod):
            if problem.container in reported:
                continue
            spec_id = ledger.cite_object(
                ref,
                f"spec.{problem.via or 'env'}",
                f"container {problem.container} reads "
                f"{problem.culprit} {('key ' + problem.key) if problem.key else ''}".strip(),
            )
            ids = [spec_id]
            if problem.culprit in ctx.objects:
                keys = ", ".join(sorted(kube.object_keys(ctx.objects[problem.culprit])))
                ids.append(ledger.cite_object(problem.culprit, "keys", f"keys: {keys or '-'}"))
            found.add(problem, pod, ids)
        for c in kube.containers(pod):
            if c.name in reported or not app_config.crashing(c):
                continue
            log = ctx.log(ns or "", name, c.name, True) or ctx.log(ns or "", name, c.name, False)
            line = app_config.complaint(log.lines) if log else None
            if log is None or line is None:
                continue
            blame = app_config.blame(ctx, pod, c, line)
            problem = _Problem(
                blame.kind,
                blame.culprit,
                blame.key,
                blame.via,
                c.name,
                ctx.workload_of(pod),
                line,
                blame.confidence,
            )
            if blame.args is not None:
                problem.extra["args"] = blame.args
            last = c.terminated or c.last_terminated or {}
            problem.extra.setdefault("exit_code", last.get("exitCode"))
            problem.extra.setdefault("restarts", c.restarts)
            lines = [ln for ln in log.lines if ln.strip() == line] or [line]
            found.add(problem, pod, [ledger.cite_log(ns or "", name, c.name, log.previous, lines)])
    return found


def _what(problem: _Problem) -> str:
    c = problem.culprit
    if problem.kind == "missing-key":
        return f"{c} has no key {problem.key}"
    if problem.kind == "missing-object":
        return f"{c} does not exist"
    if problem.kind == "missing-env":
        return f"env {problem.key} is not set in its spec"
    if problem.kind == "bad-value":
        where = f"{c} key {problem.key}" if c.kind in ("ConfigMap", "Secret") else problem.via
        return f"the value of {where or problem.key} is rejected"
    if problem.kind == "bad-args":
        return f"its command/args are invalid ({problem.extra.get('args') or 'none set'})"
    if problem.kind == "bad-command":
        return f"its command {problem.key} cannot be executed in the image"
    if problem.kind == "security-context":
        return "its securityContext requires runAsNonRoot but the image runs as root"
    if problem.kind == "start-failure":
        return f"the runtime cannot create it: {problem.message[:200]}"
    return "its configuration is rejected"


def _finding(ctx: TriageContext, problem: _Problem) -> Finding:
    pod = pf.first_pod(ctx, problem.pods)
    owner = pf.owner_phrase(problem.workload)
    where = f"container {problem.container} of {owner}"
    from_log = "exit_code" in problem.extra
    summary = f"{where} {'exits at start-up' if from_log else 'cannot start'}: {_what(problem)}"
    if problem.via and problem.culprit.kind in ("ConfigMap", "Secret"):
        summary += f" (read by {problem.via})"
    keys: list[str] = []
    obj = ctx.objects.get(problem.culprit)
    if obj is not None and problem.culprit.kind in ("ConfigMap", "Secret"):
        keys = sorted(kube.object_keys(obj))
        close = difflib.get_close_matches(problem.key or "", keys, n=1, cutoff=0.6)
        if problem.kind == "missing-key" and close:
            summary += f"; it has {close[0]} — a misspelt key?"
    if from_log:
        summary += f"; log: {pf.tidy(problem.message, 160)!r}"
    if len(problem.pods) > 1:
        summary += f" — {len(problem.pods)} pods affected"
    facts: dict[str, Any] = {
        "problem": problem.kind,
        "culprit_kind": problem.culprit.kind,
        "culprit_name": problem.culprit.name,
        "namespace": problem.culprit.namespace,
        "key": problem.key,
        "via": problem.via,
        "container": problem.container,
        "pod": kube.name(pod),
        "pods": sorted(kube.name(p) for p in problem.pods),
        "keys_present": keys,
        "message": problem.message,
        **pf.workload_facts(problem.workload),
        **problem.extra,
    }
    return Finding(
        category=Category.ConfigError,
        summary=summary,
        subject=pf.pod_ref(pod),
        resource=problem.culprit,
        evidence=tuple(problem.evidence),
        confidence=problem.confidence,
        analyzer=NAME,
        facts=facts,
    )


def analyze(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    for problem in _collect(ctx, ledger).problems.values():
        yield _finding(ctx, problem)
    yield from loopback.findings(ctx, ledger, NAME)


ANALYZER = Analyzer(
    name=NAME,
    categories=frozenset({Category.ConfigError}),
    analyze=analyze,
    recommend=config_advice.recommend,
)
