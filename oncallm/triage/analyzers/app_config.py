"""What applications say when their configuration is wrong, and who must change for it.

A container that exits at start-up with ``missing required env DATABASE_URL``, ``flag
provided but not defined: -listen`` or ``failed to load config: open
/etc/app/config.yaml`` names its own cause. :func:`complaint` finds such a line (the pods
analyzer uses it to leave these crashes to the config analyzer); :func:`blame` follows it
to the culprit: the ConfigMap/Secret the env var or file should come from and lacks it, or
the workload whose own env, args or command are wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.context import TriageContext

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


# "failed to load config from consul: connection refused" is a dependency down, not bad config.
_NETWORK = re.compile(
    r"connection refused|timed? ?out|no such host|dial tcp|unreachable|connection reset", re.I
)


def complaint(lines: Sequence[str]) -> str | None:
    """The last log line in which an application rejects its own configuration or args."""
    for line in reversed(lines):
        if (_APP_CONFIG.search(line) or _BAD_ARGS.search(line)) and not _NETWORK.search(line):
            return line.strip()
    return None


@dataclass(frozen=True)
class Blame:
    """The culprit of an application's complaint, and how the config analyzer names it."""

    kind: str  # missing-key | missing-object | missing-env | bad-value | bad-args | app-config
    culprit: ObjectRef
    key: str | None
    via: str | None
    confidence: float
    args: str | None = None


def volume_source(pod_spec: Mapping[str, Any], volume: str) -> tuple[str, str] | None:
    for vol in pod_spec.get("volumes") or []:
        if vol.get("name") != volume:
            continue
        if vol.get("configMap"):
            return "ConfigMap", str(vol["configMap"].get("name"))
        if vol.get("secret"):
            return "Secret", str(vol["secret"].get("secretName"))
    return None


def crashing(c: kube.ContainerState) -> bool:
    last = c.terminated or c.last_terminated or {}
    if last.get("reason") == "OOMKilled":
        return False
    return c.waiting_reason == "CrashLoopBackOff" or int(last.get("exitCode") or 0) != 0


def blame(ctx: TriageContext, pod: KubeObject, c: kube.ContainerState, line: str) -> Blame:
    """Who must change for the application's complaint (``line``) to go away."""
    workload = ctx.workload_of(pod)
    if _BAD_ARGS.search(line):
        args = [*(c.spec.get("command") or []), *(c.spec.get("args") or [])]
        return Blame("bad-args", workload, None, None, 0.85, " ".join(str(a) for a in args))
    env_match = _ENV_NAME.search(line)
    if env_match:
        env_name = env_match[1] or env_match[2]
        return _env_blame(ctx, pod, c, env_name)
    path = _PATH.search(line)
    if path:
        mounted = _mounted_blame(ctx, pod, c, path[1])
        if mounted is not None:
            return mounted
    return Blame("app-config", workload, None, None, 0.75)


def _env_blame(ctx: TriageContext, pod: KubeObject, c: kube.ContainerState, env_name: str) -> Blame:
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
                return Blame(kind_name, culprit, key, via, 0.8)
        via = f"env {env_name}"
        return Blame("bad-value", workload, env_name, via, 0.75)
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
        return Blame(kind_name, culprit, key, "envFrom", 0.75)
    return Blame("missing-env", workload, env_name, None, 0.8)


def _mounted_blame(
    ctx: TriageContext, pod: KubeObject, c: kube.ContainerState, path: str
) -> Blame | None:
    """A config file path the app could not use, traced to the ConfigMap/Secret mounted there."""
    spec, ns = pod.get("spec") or {}, kube.namespace(pod)
    for mount in c.spec.get("volumeMounts") or []:
        mount_path = str(mount.get("mountPath", "")).rstrip("/")
        if not mount_path or not (path == mount_path or path.startswith(mount_path + "/")):
            continue
        source = volume_source(spec, str(mount.get("name")))
        if source is None:
            continue
        culprit = ObjectRef(source[0], ns, source[1])
        key = mount.get("subPath") or path[len(mount_path) + 1 :].split("/")[0] or None
        obj = ctx.objects.get(culprit)
        missing = obj is None or (key is not None and key not in kube.object_keys(obj))
        kind_name = "missing-key" if missing else "bad-value"
        via = f"volume {mount.get('name')} at {mount_path}"
        return Blame(kind_name, culprit, key, via, 0.7)
    return None
