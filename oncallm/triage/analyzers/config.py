"""Config analyzer: containers that cannot start, or exit at once, because of configuration.

It owns ``ConfigError``: the kubelet refusing to create a container
(``CreateContainerConfigError``: a missing ConfigMap/Secret or key), volumes of missing
ConfigMaps/Secrets (``FailedMount``), a referenced key absent from an object that was read,
a command that is not in the image, and applications that exit complaining about their
own configuration (``missing required env DATABASE_URL``, ``flag provided but not
defined``). The culprit is the ConfigMap or Secret that lacks what the pod reads, or the
workload when its own env, command or args are wrong.

:func:`complaint` is shared with the pods analyzer, so a crash caused by configuration is
reported once, here, and not again as a plain crash loop.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import Analyzer, config_advice
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
_CREATE_REASONS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")
_START_REASONS = ("StartError", "ContainerCannotRun")

# --- what applications say when their configuration is wrong ----------------------------

_APP_CONFIG = re.compile(
    r"missing (?:required )?(?:env(?:ironment)?(?: var(?:iable)?)?|config(?:uration)?|setting|"
    r"option|parameter|variable)s?\b"
    r"|required (?:env(?:ironment)?(?: var(?:iable)?)?|config(?:uration)?(?: key| value)?|"
    r"setting|variable|parameter) "
    r"|\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b['\"`]?,? (?:is )?(?:not set|unset|required|missing|"
    r"undefined|empty|must be set)"
    r"|\b(?:env(?:ironment)?(?: var(?:iable)?)?|setting|variable) ['\"`]?\w+['\"`]? (?:is )?"
    r"(?:not set|unset|required|missing|undefined|empty|must be set)"
    r"|required key \S+ missing value|KeyError: '[A-Z][A-Z0-9_]+'|could not resolve placeholder"
    r"|failed to bind properties|validation errors? for \w*(?:settings|config)"
    r"|(?:invalid|malformed|bad) (?:config|configuration|settings)\b"
    r"|(?:failed|unable|cannot|could not)(?: to)? (?:load|parse|read|decode) (?:the )?"
    r"(?:config|configuration|settings)"
    r"|(?:error|failed) (?:loading|parsing|reading|decoding) (?:the )?(?:config|configuration)"
    r"|config(?:uration)? file \S* ?(?:not found|does not exist|is missing)",
    re.IGNORECASE,
)
_BAD_ARGS = re.compile(
    r"flag provided but not defined|unknown (?:flag|shorthand flag|option|command)\b|"
    r"unrecognized (?:option|arguments?)|invalid (?:argument|value) .{0,60} for (?:flag|option)|"
    r"no such option|required flag\(s\) .{0,80} not set|error: (?:argument|option) --?\w",
    re.IGNORECASE,
)
_ENV_NAME = re.compile(r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b|['\"`]([A-Z][A-Z0-9_]{2,})['\"`]")
_PATH = re.compile(r"(/[\w.@-]+(?:/[\w.@-]+)+)")
_SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY|CREDENTIAL|DSN|DATABASE_URL", re.I)


def complaint(lines: Sequence[str]) -> str | None:
    """The last log line in which an application rejects its own configuration or args."""
    for line in reversed(lines):
        if _APP_CONFIG.search(line) or _BAD_ARGS.search(line):
            return line.strip()
    return None


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
        found = _volume_source(spec, volume["volume"]) if volume else None
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
    if status and message:
        return _Problem("start-failure", workload, None, None, container, workload, message, 0.7)
    return None


def _volume_source(pod_spec: Mapping[str, Any], volume: str) -> tuple[str, str] | None:
    for vol in pod_spec.get("volumes") or []:
        if vol.get("name") != volume:
            continue
        if vol.get("configMap"):
            return "ConfigMap", str(vol["configMap"].get("name"))
        if vol.get("secret"):
            return "Secret", str(vol["secret"].get("secretName"))
    return None


def _static_problems(ctx: TriageContext, pod: KubeObject) -> Iterator[_Problem]:
    """References the kubelet cannot satisfy, judged from the objects that were read.

    Only for containers that are not running: a running container already resolved its
    references, so a gap found now is latent, not the cause of this alert."""
    ns, spec, workload = kube.namespace(pod), pod.get("spec") or {}, ctx.workload_of(pod)
    stuck = {c.name for c in kube.containers(pod) if not c.running and c.waiting}
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


def _crashing(c: kube.ContainerState) -> bool:
    last = c.terminated or c.last_terminated or {}
    if last.get("reason") == "OOMKilled":
        return False
    return c.waiting_reason == "CrashLoopBackOff" or int(last.get("exitCode") or 0) != 0


def _app_problem(
    ctx: TriageContext, pod: KubeObject, c: kube.ContainerState, line: str
) -> _Problem:
    """Who must change for the application's complaint to go away."""
    workload = ctx.workload_of(pod)
    if _BAD_ARGS.search(line):
        args = [*(c.spec.get("command") or []), *(c.spec.get("args") or [])]
        problem = _Problem("bad-args", workload, None, None, c.name, workload, line, 0.85)
        problem.extra["args"] = " ".join(str(a) for a in args)
        return problem
    env_match = _ENV_NAME.search(line)
    if env_match:
        env_name = env_match[1] or env_match[2]
        return _env_problem(ctx, pod, c, env_name, line)
    path = _PATH.search(line)
    if path:
        mounted = _mounted_config(ctx, pod, c, path[1])
        if mounted is not None:
            return mounted
    return _Problem("app-config", workload, None, None, c.name, workload, line, 0.75)


def _env_problem(
    ctx: TriageContext, pod: KubeObject, c: kube.ContainerState, env_name: str, line: str
) -> _Problem:
    ns, workload = kube.namespace(pod), ctx.workload_of(pod)
    env = {str(e.get("name")): e for e in c.spec.get("env") or []}
    if env_name in env:
        source = env[env_name].get("valueFrom") or {}
        for field_name, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
            key_ref = source.get(field_name)
            if key_ref:
                culprit = ObjectRef(kind, ns, str(key_ref.get("name")))
                obj = ctx.objects.get(culprit)
                key = str(key_ref.get("key"))
                missing = obj is None or key not in kube.object_keys(obj)
                kind_name = "missing-key" if missing else "bad-value"
                via = f"env {env_name}"
                return _Problem(kind_name, culprit, key, via, c.name, workload, line, 0.8)
        via = f"env {env_name}"
        return _Problem("bad-value", workload, env_name, via, c.name, workload, line, 0.75)
    # Not set inline: it was expected from an envFrom source that lacks it.
    candidates: list[tuple[bool, ObjectRef, str]] = []
    for env_from in c.spec.get("envFrom") or []:
        prefix = str(env_from.get("prefix") or "")
        if prefix and not env_name.startswith(prefix):
            continue
        for field_name, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            whole = env_from.get(field_name)
            if whole:
                culprit = ObjectRef(kind, ns, str(whole.get("name")))
                obj = ctx.objects.get(culprit)
                key = env_name[len(prefix) :]
                if obj is None or key not in kube.object_keys(obj):
                    prefer = (kind == "Secret") == bool(_SECRETISH.search(env_name))
                    candidates.append((not prefer, culprit, key))
    if candidates:
        _rank, culprit, key = sorted(candidates, key=lambda t: t[0])[0]
        kind_name = "missing-key" if culprit in ctx.objects else "missing-object"
        return _Problem(kind_name, culprit, key, "envFrom", c.name, workload, line, 0.75)
    return _Problem("missing-env", workload, env_name, None, c.name, workload, line, 0.8)


def _mounted_config(
    ctx: TriageContext, pod: KubeObject, c: kube.ContainerState, path: str
) -> _Problem | None:
    """A config file path the app could not use, traced to the ConfigMap/Secret mounted there."""
    spec, ns, workload = pod.get("spec") or {}, kube.namespace(pod), ctx.workload_of(pod)
    for mount in c.spec.get("volumeMounts") or []:
        mount_path = str(mount.get("mountPath", "")).rstrip("/")
        if not mount_path or not (path == mount_path or path.startswith(mount_path + "/")):
            continue
        source = _volume_source(spec, str(mount.get("name")))
        if source is None:
            continue
        culprit = ObjectRef(source[0], ns, source[1])
        key = mount.get("subPath") or path[len(mount_path) + 1 :].split("/")[0] or None
        obj = ctx.objects.get(culprit)
        missing = obj is None or (key is not None and key not in kube.object_keys(obj))
        kind_name = "missing-key" if missing else "bad-value"
        via = f"volume {mount.get('name')} at {mount_path}"
        return _Problem(kind_name, culprit, key, via, c.name, workload, path, 0.7)
    return None


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
            if c.name in reported or not _crashing(c):
                continue
            log = ctx.log(ns or "", name, c.name, True) or ctx.log(ns or "", name, c.name, False)
            line = complaint(log.lines) if log else None
            if log is None or line is None:
                continue
            problem = _app_problem(ctx, pod, c, line)
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


ANALYZER = Analyzer(
    name=NAME,
    categories=frozenset({Category.ConfigError}),
    analyze=analyze,
    recommend=config_advice.recommend,
)
