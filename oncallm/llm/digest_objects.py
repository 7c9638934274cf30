"""One readable summary per Kubernetes object, for the model: the fields triage turns on.

Full kubectl JSON costs thousands of tokens per object and buries what matters (managed
fields, annotations, defaults). A summary keeps, per kind, what an SRE reads first — a
Pod's phase, container states with reasons, exit codes and restarts, the last
termination, requests and limits, node, probes, env (values as they are: redaction runs
later, on the whole prompt), and the ConfigMaps, Secrets and PVCs it mounts; a workload's
replicas and conditions; a Node's conditions; and so on — one fact group a line. Kinds
without a summariser fall back to their conditions and a clipped compact spec.

Pods, workloads and Jobs are summarised here, and :func:`summarize` picks the summariser
by kind; the other kinds live in :mod:`oncallm.llm.digest_kinds`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from oncallm.llm.digest_kinds import (
    KIND_SUMMARIES,
    MAX_VALUE,
    clip,
    compact,
    conditions,
    endpoints,
    facts,
    generic,
    moment,
    pairs,
    resources,
)
from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.context import TriageContext

Summariser = Callable[[TriageContext, KubeObject], list[str]]
SeenSpecs = dict[str, str]  # a rendered pod spec -> the pod whose summary shows it


def _probe(name: str, probe: Mapping[str, Any] | None) -> str | None:
    if not probe:
        return None
    if "httpGet" in probe:
        get = probe["httpGet"]
        scheme = "https " if str(get.get("scheme", "HTTP")).upper() == "HTTPS" else ""
        how = f"http {scheme}:{get.get('port')}{get.get('path', '/')}"
    elif "tcpSocket" in probe:
        how = f"tcp :{probe['tcpSocket'].get('port')}"
    elif "grpc" in probe:
        how = f"grpc :{probe['grpc'].get('port')}"
    elif "exec" in probe:
        how = "exec " + clip(" ".join(probe["exec"].get("command") or []), 80)
    else:
        how = "?"
    knobs = [
        f"{short}={probe[key]}{'s' if key.endswith('Seconds') else ''}"
        for key, short in (
            ("initialDelaySeconds", "delay"), ("periodSeconds", "period"),
            ("timeoutSeconds", "timeout"), ("failureThreshold", "failures"),
        )
        if key in probe
    ]  # fmt: skip
    return f"{name} {how} {' '.join(knobs)}".rstrip()


def _env(spec: Mapping[str, Any]) -> str | None:
    """``NAME=value`` for literal values; a reference reads ``NAME from Secret db key
    password`` — no ``=``, so redaction (which masks ``PASSWORD=...`` values) keeps
    which Secret and key it is."""
    parts = []
    for env in spec.get("env") or []:
        name, source = env.get("name"), env.get("valueFrom") or {}
        if "value" in env:
            parts.append(f"{name}={clip(env['value'], MAX_VALUE)}")
        elif "configMapKeyRef" in source or "secretKeyRef" in source:
            kind = "ConfigMap" if "configMapKeyRef" in source else "Secret"
            key_ref = source.get("configMapKeyRef") or source.get("secretKeyRef") or {}
            parts.append(f"{name} from {kind} {key_ref.get('name')} key {key_ref.get('key')}")
        elif "fieldRef" in source or "resourceFieldRef" in source:
            key = "fieldRef" if "fieldRef" in source else "resourceFieldRef"
            field = source[key].get("fieldPath") or source[key].get("resource")
            parts.append(f"{name} from {key} {field}")
        elif source:
            parts.append(f"{name} from {compact(source, 80)}")
        else:
            parts.append(f"{name}=")
    for env_from in spec.get("envFrom") or []:
        for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            if key in env_from:
                parts.append(f"all of {kind} {env_from[key].get('name')}")
    return "env " + ", ".join(parts) if parts else None


def _state(ctx: TriageContext, name: str, state: Mapping[str, Any] | None) -> str | None:
    if not state:
        return None
    for phase, detail in state.items():
        if phase == "running":
            return f"{name} running since {moment(ctx, detail.get('startedAt')) or '?'}"
        bits = [str(detail.get("reason") or "")]
        if "exitCode" in detail:
            bits.append(f"exit {detail['exitCode']}")
        if detail.get("signal"):
            bits.append(f"signal {detail['signal']}")
        if detail.get("finishedAt"):
            bits.append(f"finished {moment(ctx, detail['finishedAt'])}")
        text = f"{name} {phase} " + ", ".join(b for b in bits if b)
        return text + (f": {clip(detail['message'])}" if detail.get("message") else "")
    return None


def _container(
    ctx: TriageContext, ctr: kube.ContainerState, seen: SeenSpecs | None, pod: str
) -> list[str]:
    spec, status = ctr.spec, ctr.status
    head = f"container {ctr.name}{' (init)' if ctr.init else ''} image {spec.get('image')}"
    if status:
        head += f" ready={str(ctr.ready).lower()} restarts={ctr.restarts}"
    probes = [_probe(n, spec.get(f"{n}Probe")) for n in ("startup", "liveness", "readiness")]
    ports = [
        f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []
    ]
    specs = [
        " ".join(
            f"{k} {clip(' '.join(str(a) for a in spec[k]), MAX_VALUE)}"
            for k in ("command", "args")
            if spec.get(k)
        ),
        resources(spec),
        ", ".join(p for p in probes if p),
        "ports " + ",".join(ports) if ports else None,
        _env(spec),
    ]
    states = [
        _state(ctx, "state", status.get("state")),
        _state(ctx, "last", status.get("lastState")),
    ]
    lines = [
        line
        for line in (*states, *_seen(seen, f"{ctr.name} {spec.get('image')} {specs}", pod, specs))
        if line
    ]
    return [head, *(f"  {line}" for line in lines)]


def _seen(
    seen: SeenSpecs | None, key: str, pod: str, lines: list[str | None], what: str = "spec"
) -> list[str | None]:
    """``lines`` the first time a spec is shown; after that, where it was shown. Sibling
    pods of a ReplicaSet share their spec, and it is most of their summary."""
    if seen is None or not any(lines):
        return lines
    first = seen.setdefault(key, pod)
    return lines if first == pod else [f"({what} as in Pod {first})"]


def _volumes(pod_spec: Mapping[str, Any]) -> str | None:
    parts = []
    for vol in pod_spec.get("volumes") or []:
        name = str(vol.get("name"))
        if name.startswith("kube-api-access-"):
            continue  # the service-account token every pod mounts: never the cause
        if "configMap" in vol:
            parts.append(f"{name}=ConfigMap {vol['configMap'].get('name')}")
        elif "secret" in vol:
            parts.append(f"{name}=Secret {vol['secret'].get('secretName')}")
        elif "persistentVolumeClaim" in vol:
            parts.append(f"{name}=PVC {vol['persistentVolumeClaim'].get('claimName')}")
        elif "projected" in vol:
            refs = [
                f"{k} {s[k].get('name')}"
                for s in vol["projected"].get("sources") or []
                for k in ("configMap", "secret")
                if k in s
            ]
            if refs:
                parts.append(f"{name}=projected " + "+".join(refs))
        elif vol.get("emptyDir"):
            parts.append(f"{name}=emptyDir {pairs(vol['emptyDir'])}")
    return "volumes " + ", ".join(parts) if parts else None


def _pod_spec_lines(
    ctx: TriageContext,
    pod_spec: Mapping[str, Any],
    status: Mapping[str, Any],
    seen: SeenSpecs | None = None,
    pod: str = "",
) -> list[str]:
    both = {"spec": pod_spec, "status": status}
    lines = [line for ctr in kube.containers(both) for line in _container(ctx, ctr, seen, pod)]
    placement: list[str | None] = [
        facts(("nodeSelector", pairs(pod_spec.get("nodeSelector")))),
        facts(("affinity", compact(pod_spec["affinity"]) if pod_spec.get("affinity") else None)),
        facts(
            (
                "topologySpread",
                compact(spread) if (spread := pod_spec.get("topologySpreadConstraints")) else None,
            )
        ),
        _volumes(pod_spec),
    ]
    return lines + [
        line
        for line in _seen(seen, str(placement), pod, placement, "placement and volumes")
        if line
    ]


def _pod(ctx: TriageContext, obj: KubeObject, seen: SeenSpecs | None = None) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    owner = kube.controller_of(obj)
    head = facts(
        ("phase", status.get("phase", "?")),
        ("ready", str(kube.pod_ready(obj)).lower()),
        (
            "reason",
            f"{status['reason']}: {clip(status.get('message', ''))}"
            if status.get("reason")
            else None,
        ),
        ("node", spec.get("nodeName") or "none"),
        ("owner", f"{owner.kind} {owner.name}" if owner else None),
        (
            "serviceAccount",
            spec.get("serviceAccountName") if spec.get("serviceAccountName") != "default" else None,
        ),
        ("created", moment(ctx, kube.meta(obj).get("creationTimestamp"))),
    )
    bad = conditions(obj, {}, only_bad=True)
    if kube.condition_is(obj, "Ready", "False"):
        # ContainersReady repeats Ready's reason and message word for word.
        bad = "; ".join(p for p in bad.split("; ") if not p.startswith("ContainersReady="))
    bad_conditions = f"conditions {bad}" if bad else ""
    return [head, bad_conditions, *_pod_spec_lines(ctx, spec, status, seen, kube.name(obj))]


def _template_lines(ctx: TriageContext, obj: KubeObject, template: Mapping[str, Any]) -> list[str]:
    """A workload's pod template: in full when no pod of it was read (then the template
    is all there is), else one line per container — the pods carry the rest."""
    pod_spec = template.get("spec") or {}
    if not ctx.pods_of(kube.ref(obj)):
        return ["template (no pods read):"] + [f"  {x}" for x in _pod_spec_lines(ctx, pod_spec, {})]
    return [
        f"template container {c.get('name')} image {c.get('image')}; {resources(c)}"
        for c in pod_spec.get("containers") or []
    ]


def _workload(ctx: TriageContext, obj: KubeObject) -> list[str]:
    spec, status, kind = obj.get("spec") or {}, obj.get("status") or {}, obj.get("kind")
    if kind == "DaemonSet":
        counts = [
            f"{label} {status.get(key, 0)}"
            for label, key in (
                ("desired", "desiredNumberScheduled"), ("current", "currentNumberScheduled"),
                ("ready", "numberReady"), ("updated", "updatedNumberScheduled"),
                ("available", "numberAvailable"), ("misscheduled", "numberMisscheduled"),
            )
        ]  # fmt: skip
    else:
        keys = [("current", "replicas"), ("ready", "readyReplicas")]
        keys += [("updated", "updatedReplicas"), ("available", "availableReplicas")]
        counts = [f"desired {spec.get('replicas', 1)}"] + [
            f"{label} {status.get(key, 0)}"
            for label, key in keys
            if key in status or kind != "ReplicaSet"  # ReplicaSets have no updated count
        ]
    lines = ["replicas " + ", ".join(counts)]
    extra = []
    strategy = spec.get("strategy") or spec.get("updateStrategy") or {}
    if strategy.get("type"):
        extra.append(f"strategy {strategy['type']}")
    revision = kube.meta(obj).get("annotations", {}).get("deployment.kubernetes.io/revision")
    if revision:
        extra.append(f"revision {revision}")
    for key in ("progressDeadlineSeconds", "minReadySeconds", "paused", "podManagementPolicy"):
        if key in spec:
            extra.append(f"{key} {spec[key]}")
    if status.get("currentRevision") != status.get("updateRevision"):
        current, update = status.get("currentRevision"), status.get("updateRevision")
        extra.append(f"revisions current {current} update {update}")
    owner = kube.controller_of(obj)
    if owner is not None:
        extra.append(f"owner {owner.kind} {owner.name}")
    if extra:
        lines.append(", ".join(extra))
    conds = conditions(obj, {"ReplicaFailure": "False"}, only_bad=False)
    if conds:
        lines.append(f"conditions {conds}")
    if kind == "ReplicaSet" and not spec.get("replicas"):
        return lines  # an old revision, scaled to zero: its template is history
    return lines + _template_lines(ctx, obj, spec.get("template") or {})


def _job(ctx: TriageContext, obj: KubeObject) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    knobs = ("completions", "parallelism", "backoffLimit", "activeDeadlineSeconds")
    owner = kube.controller_of(obj)
    conds = conditions(obj, {"Failed": "False"}, only_bad=False)
    return [
        facts(
            *((k, status.get(k, 0)) for k in ("active", "succeeded", "failed")),
            *((k, spec.get(k)) for k in knobs),
        ),
        facts(
            ("started", moment(ctx, status.get("startTime"))),
            ("completed", moment(ctx, status.get("completionTime"))),
            ("owner", f"{owner.kind} {owner.name}" if owner else None),
        ),
        f"conditions {conds}" if conds else "",
        *_template_lines(ctx, obj, spec.get("template") or {}),
    ]


def _cronjob(ctx: TriageContext, obj: KubeObject) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    knobs = ("schedule", "timeZone", "concurrencyPolicy", "suspend", "startingDeadlineSeconds")
    active = ",".join(str(a.get("name", "?")) for a in status.get("active") or [])
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = (job_spec.get("template") or {}).get("spec") or {}
    return [
        facts(*((k, spec.get(k)) for k in knobs)),
        facts(
            ("active", active or "none"),
            ("last scheduled", moment(ctx, status.get("lastScheduleTime"))),
            ("last success", moment(ctx, status.get("lastSuccessfulTime"))),
        ),
        *(
            f"template container {c.get('name')} image {c.get('image')}; {resources(c)}"
            for c in template.get("containers") or []
        ),
    ]


SUMMARISERS: dict[str, Summariser] = {
    **KIND_SUMMARIES, "Deployment": _workload, "StatefulSet": _workload,
    "DaemonSet": _workload, "ReplicaSet": _workload, "Job": _job, "CronJob": _cronjob,
}  # fmt: skip


def summarize(
    ctx: TriageContext, ref: ObjectRef, obj: KubeObject, seen: SeenSpecs | None = None
) -> str | None:
    """``Kind ns/name`` then indented fact lines; None for an object another summary
    already covers (Endpoints and EndpointSlices of a Service that was read). ``seen``
    collects pod specs already shown, so a sibling pod's points to the first one."""
    body: list[str] | None
    if ref.kind == "Pod":
        body = _pod(ctx, obj, seen)
    elif ref.kind in ("Endpoints", "EndpointSlice"):
        body = endpoints(ctx, obj)
    else:
        body = SUMMARISERS.get(ref.kind, generic)(ctx, obj)
    if body is None:
        return None
    head = str(ref) + (" [alerted]" if ctx.is_focus(ref) else "")
    return "\n".join([head, *(f"  {line}" for line in body if line)])
