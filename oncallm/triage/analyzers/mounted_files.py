"""Applications that cannot open a file their ConfigMap or Secret volume should hold.

``open /etc/kafka/sasl/username: no such file or directory`` under a path where a Secret
is mounted means the Secret lacks the key ``username`` — often after it was re-rendered
(External Secrets, Vault, a Helm upgrade) with renamed keys. The kubelet refreshes
mounted files in place, so the pods start failing without any rollout. The culprit is the
ConfigMap or Secret; the finding names the missing key and the keys it does have.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from oncallm.sources.base import ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import Analyzer
from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.context import LogExcerpt, TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl
from oncallm.triage.taxonomy import Category

NAME = "mounted-files"
# Go, C, Node, Python and Java spellings of "that file is not there".
_MISSING_FILE = (
    re.compile(r"open (/[^\s:\"']+): no such file or directory", re.I),
    re.compile(r"ENOENT[^'\"]*['\"](/[^'\"]+)['\"]"),
    re.compile(r"No such file or directory: ['\"](/[^'\"]+)['\"]"),
    re.compile(r"NoSuchFileException:? (/\S+)"),
    re.compile(r"(/\S+) \(No such file or directory\)"),
)


@dataclass(frozen=True)
class _Mount:
    source: ObjectRef  # the ConfigMap or Secret
    path: str  # where it is mounted
    items: Mapping[str, str]  # path inside the mount -> key, when the volume lists items


def _mounts(pod: Mapping[str, Any], container: str) -> list[_Mount]:
    spec = pod.get("spec") or {}
    ns = kube.namespace(pod)
    volumes: dict[str, tuple[ObjectRef, dict[str, str]]] = {}
    for volume in spec.get("volumes") or []:
        for field, kind, key in (
            ("secret", "Secret", "secretName"),
            ("configMap", "ConfigMap", "name"),
        ):
            source = volume.get(field)
            if source and source.get(key):
                items = {str(i.get("path")): str(i.get("key")) for i in source.get("items") or []}
                volumes[str(volume.get("name"))] = (ObjectRef(kind, ns, str(source[key])), items)
    mounts = []
    for ctr in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if ctr.get("name") != container:
            continue
        for mount in ctr.get("volumeMounts") or []:
            found = volumes.get(str(mount.get("name")))
            if found and not mount.get("subPath"):
                mounts.append(
                    _Mount(found[0], str(mount.get("mountPath", "")).rstrip("/"), found[1])
                )
    return mounts


def _missing(line: str) -> str | None:
    return next((m[1] for p in _MISSING_FILE if (m := p.search(line))), None)


def _finding(
    ctx: TriageContext,
    ledger: EvidenceLedger,
    pod: Mapping[str, Any],
    log: LogExcerpt,
    line: str,
    path: str,
    mount: _Mount,
) -> Finding | None:
    inside = path[len(mount.path) + 1 :]
    key = mount.items.get(inside, inside.split("/", 1)[0])
    obj = ctx.objects.get(mount.source)
    keys = sorted(kube.object_keys(obj)) if obj is not None else None
    if keys is not None and key in keys:
        return None  # the key is there: something else is wrong
    ref = pf.pod_ref(pod)
    evidence = [ledger.cite_log(log.namespace, log.pod, log.container, log.previous, [line])]
    if keys is not None:
        evidence.append(ledger.cite_object(mount.source, "keys", ", ".join(keys) or "(none)"))
        has = f" (it has {', '.join(keys)})" if keys else " (it has no keys)"
    else:
        has = " (it could not be read)"
    return Finding(
        category=Category.ConfigError,
        summary=f"container {log.container} of {pf.owner_phrase(ctx.workload_of(pod))} cannot "
        f"open {path}: {mount.source} mounted at {mount.path} has no key {key}{has}",
        subject=ref,
        resource=mount.source,
        evidence=tuple(evidence),
        confidence=0.9 if keys is not None else 0.6,  # keys read and it is absent: certain
        analyzer=NAME,
        blames=(mount.source,),
        facts={
            "key": key,
            "keys": keys,
            "path": path,
            "pod": ref.name,
            "container": log.container,
        },
    )


def analyze(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    seen: set[tuple[ObjectRef, str]] = set()
    for pod in pf.live_pods(ctx):
        for log in ctx.logs_of_pod(pf.pod_ref(pod)):
            for line in log.error_lines:
                path = _missing(line)
                mounts = _mounts(pod, log.container) if path else []
                for mount in mounts:
                    if path is None or not path.startswith(mount.path + "/"):
                        continue
                    finding = _finding(ctx, ledger, pod, log, line, path, mount)
                    if finding is not None and (mount.source, path) not in seen:
                        seen.add((mount.source, path))
                        yield finding


def recommend(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    source, facts = finding.resource, finding.facts
    if source is None:
        return []
    kind = "secret" if source.kind == "Secret" else "configmap"
    keys = facts.get("keys") or []
    return [
        Recommendation(
            f"Restore key {facts['key']} in {source.kind} {source.namespace}/{source.name}",
            f"The application reads {facts['path']}, but {source.kind} {source.name} no longer "
            f"has the key {facts['key']}"
            + (f" (it has {', '.join(keys)})" if keys else "")
            + ". Put the key back where the object is rendered from (ExternalSecret, Helm "
            "values, GitOps), or point the application at the new name. Mounted files update "
            "in place; restart the pods if the application reads them only at start.",
            (
                kubectl(
                    "get", kind, source.name, "-o", "jsonpath={.data}", namespace=source.namespace
                )
                if kind == "configmap"
                else kubectl("describe", "secret", source.name, namespace=source.namespace),
                kubectl(
                    "logs",
                    str(facts["pod"]),
                    "-c",
                    str(facts["container"]),
                    "--previous",
                    "--tail=20",
                    namespace=source.namespace,
                ),
            ),
            "low",
            finding.confidence,
        )
    ]


ANALYZER = Analyzer(
    name=NAME,
    categories=frozenset({Category.ConfigError}),
    analyze=analyze,
    recommend=recommend,
)
