"""What a claim stands on, and claims that are full — for the storage analyzer.

:func:`class_state` tells whether a claim's StorageClass exists (or the default one, when
it names none). Full claims come from a volume-filling alert or from an application that
cannot write to its claim (``No space left on device``). A full claim is the culprit whose
growth ends the incident; the finding carries its size, whether its StorageClass allows
expansion and where it is mounted, so the recommendation can give ``df``/``du`` commands
on the real paths and the exact patch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import metricfacts
from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.taxonomy import Category

NAME = "storage"  # the storage analyzer recommends for these findings
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
FILLING_ALERTS = ("KubePersistentVolumeFillingUp", "KubePersistentVolumeInodesFillingUp")
_FREE = re.compile(r"(?P<free>\d+(?:\.\d+)?)% free")


def class_state(ctx: TriageContext, pvc: KubeObject) -> tuple[str | None, bool | None]:
    """(storageClassName, whether it exists): None when it cannot be told from what was read."""
    spec = pvc.get("spec") or {}
    gaps = " ".join(g.source for g in ctx.gaps)
    if "storageClassName" in spec and spec["storageClassName"] is not None:
        name = str(spec["storageClassName"])
        if name == "":
            return "", None  # static binding to a pre-created PV, no class involved
        if ctx.get("StorageClass", None, name) is not None:
            return name, True
        return name, None if f"StorageClass {name}" in gaps else False
    default = next(
        (
            sc
            for sc in ctx.of_kind("StorageClass")
            if (kube.meta(sc).get("annotations") or {}).get(DEFAULT_CLASS) == "true"
        ),
        None,
    )
    if default is not None:
        return kube.name(default), True
    return None, None if "StorageClass" in gaps else False


def write_failures(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    """A container that cannot write to its claim: 'No space left on device' in its log."""
    for pod in pf.live_pods(ctx):
        ref = pf.pod_ref(pod)
        for log in ctx.logs_of_pod(ref):
            said = log.matching(pf.NO_SPACE)
            claim = _claim_written(pod, log.container, said[-1]) if said else None
            if claim is None:
                continue
            pvc = ctx.objects.get(claim) or {}
            size = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
            workload = ctx.workload_of(pod)
            cited = ledger.cite_log(
                ref.namespace or "", ref.name, log.container, log.previous, said[-2:]
            )
            yield Finding(
                category=Category.VolumeFailure,
                summary=f"{claim}{f' ({size})' if size else ''} is full: container "
                f"{log.container} of {pf.owner_phrase(workload)} fails writing to it — "
                f"{pf.tidy(said[-1])}",
                subject=ref,
                resource=claim,
                evidence=(cited,),
                confidence=0.85,
                analyzer=NAME,
                blames=(claim,),
                facts={
                    "problem": "filling",
                    "claim": claim.name,
                    "namespace": claim.namespace,
                    "size": size,
                    "free_percent": 0,
                    "inodes": False,
                    "storageClassName": (pvc.get("spec") or {}).get("storageClassName"),
                    "expandable": _expandable(ctx, pvc),
                    "pods": [ref.name],
                    "mounts": _mounts([pod], claim.name),
                },
            )
            break


ZONE_KEYS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")


def _is_zone_key(key: Any) -> bool:
    # CSI drivers use their own: topology.ebs.csi.aws.com/zone, topology.gke.io/zone, ...
    return isinstance(key, str) and (key in ZONE_KEYS or key.endswith("/zone"))


def pv_zones(pv: Mapping[str, Any]) -> list[str]:
    """Zones a PersistentVolume is pinned to by its required node affinity."""
    required = ((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}
    return sorted(
        {
            value
            for term in required.get("nodeSelectorTerms") or []
            for expr in term.get("matchExpressions") or []
            if _is_zone_key(expr.get("key")) and expr.get("operator") == "In"
            for value in expr.get("values") or []
        }
    )


def zone_conflicts(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    """A pod the scheduler cannot place because its bound volume lives in a zone where no
    node it may use runs ("volume node affinity conflict"): the claim is the culprit — its
    data has to move, or nodes the pod may use have to exist in that zone."""
    for pod in pf.live_pods(ctx):
        ref = pf.pod_ref(pod)
        conflicts = [
            e
            for e in ctx.warnings_of(ref, "FailedScheduling")
            if "volume node affinity" in e.message
        ]
        if not conflicts:
            continue
        for claim in pf.claims_of(pod):
            pvc = ctx.objects.get(claim) or {}
            pv_name = (pvc.get("spec") or {}).get("volumeName")
            pv = ctx.get("PersistentVolume", None, str(pv_name)) if pv_name else None
            zones = pv_zones(pv) if pv else []
            if not zones:
                continue
            node_zones = sorted(
                {
                    str(kube.labels(n).get(ZONE_KEYS[0]) or kube.labels(n).get(ZONE_KEYS[1]))
                    for n in ctx.of_kind("Node")
                    if kube.labels(n).get(ZONE_KEYS[0]) or kube.labels(n).get(ZONE_KEYS[1])
                }
            )
            event = conflicts[-1]
            cited = (
                ledger.cite_event(ref, event.reason, event.describe()),
                ledger.cite_object(
                    kube.ref(pv or {}), "spec.nodeAffinity", f"zones: {', '.join(zones)}"
                ),
            )
            where = f" (nodes read are in {', '.join(node_zones)})" if node_zones else ""
            yield Finding(
                category=Category.VolumeFailure,
                summary=f"{claim} is bound to PersistentVolume {pv_name} in zone "
                f"{', '.join(zones)}, and no node pod {ref.name} may run on is in that "
                f"zone{where}: the scheduler reports a volume node affinity conflict",
                subject=ref,
                resource=claim,
                evidence=cited,
                confidence=0.85,
                analyzer=NAME,
                facts={
                    "problem": "zone-conflict",
                    "claim": claim.name,
                    "namespace": claim.namespace,
                    "volume": pv_name,
                    "zones": zones,
                    "node_zones": node_zones,
                    "pod": ref.name,
                    "node_selector": (pod.get("spec") or {}).get("nodeSelector") or {},
                },
            )


def _claim_written(pod: KubeObject, container: str, line: str) -> ObjectRef | None:
    """The claim a failed write went to: the mount the path in the line falls under, else
    the container's only claim."""
    claims = pf.claims_of(pod, container)
    spec = pod.get("spec") or {}
    volumes = {
        str(v.get("name")): str(v["persistentVolumeClaim"]["claimName"])
        for v in spec.get("volumes") or []
        if (v.get("persistentVolumeClaim") or {}).get("claimName")
    }
    for ctr in spec.get("containers") or []:
        if ctr.get("name") != container:
            continue
        for mount in ctr.get("volumeMounts") or []:
            path = str(mount.get("mountPath", "")).rstrip("/")
            if path and path in line:
                claim = volumes.get(str(mount.get("name")))
                if claim is None:
                    return None  # the full filesystem is not a claim (emptyDir, host path)
                return ObjectRef("PersistentVolumeClaim", kube.namespace(pod), claim)
    return claims[0] if len(claims) == 1 else None


def _expandable(ctx: TriageContext, pvc: KubeObject) -> bool | None:
    sc_name, _exists = class_state(ctx, pvc) if pvc else (None, None)
    sc = ctx.get("StorageClass", None, sc_name) if sc_name else None
    return bool(sc.get("allowVolumeExpansion")) if sc is not None else None


def filling_alert(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    """The alert itself is the evidence a volume is filling: name the claim and its users."""
    if ctx.alert.alertname not in FILLING_ALERTS:
        return
    name, ns = ctx.alert.labels.get("persistentvolumeclaim"), ctx.alert.labels.get("namespace")
    if not name:
        return
    claim = ObjectRef("PersistentVolumeClaim", ns, name)
    text = ctx.alert.annotations.get("description") or ctx.alert.annotations.get("summary") or ""
    evidence = [ledger.cite_alert(ctx.alert.alertname, text or ctx.alert.alertname)]
    pvc = ctx.objects.get(claim) or {}
    size = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
    free = _FREE.search(text)
    inodes = "Inodes" in ctx.alert.alertname
    what = "inodes" if inodes else "space"
    summary = f"{claim} is running out of {what}"
    if free:
        summary += f": only {free['free']}% free"
    if size:
        summary += f" of {size}"
    measured = metricfacts.filling(ctx, ledger, claim) if not inodes else None
    if measured is not None:
        evidence.append(measured.evidence)
        summary += f"; it is {measured.sentence}"
    yield _filling_finding(
        ctx, pvc, claim, summary, evidence, 0.9 if measured else 0.8,
        free_percent=free["free"] if free else None, inodes=inodes, measured=measured,
    )  # fmt: skip


def _filling_finding(
    ctx: TriageContext,
    pvc: KubeObject,
    claim: ObjectRef,
    summary: str,
    evidence: list[str],
    confidence: float,
    *,
    free_percent: str | None,
    inodes: bool,
    measured: metricfacts.Filling | None,
) -> Finding:
    users = [
        p
        for p in ctx.pods()
        if kube.namespace(p) == claim.namespace
        and claim.name in kube.pvc_names(p.get("spec") or {})
    ]
    if users:
        summary += f" (mounted by pod {pf.pods_phrase(users)})"
    size = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
    sc_name, _exists = class_state(ctx, pvc) if pvc else (None, None)
    if free_percent is None and measured is not None:
        free_percent = f"{(1 - measured.ratio) * 100:.0f}"
    return Finding(
        category=Category.VolumeFailure,
        summary=summary,
        subject=claim,
        resource=claim,
        evidence=tuple(evidence),
        confidence=confidence,
        analyzer=NAME,
        facts={
            "problem": "filling",
            "claim": claim.name,
            "namespace": claim.namespace,
            "size": size,
            "free_percent": free_percent,
            "inodes": inodes,
            "storageClassName": sc_name,
            "expandable": _expandable(ctx, pvc),
            "pods": sorted(kube.name(p) for p in users),
            "mounts": _mounts(users, claim.name),
            "full_in": measured.sentence if measured else None,
        },
    )


def filling_metrics(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    """A claim of the alerted pods that the metrics show full or filling fast, whatever the
    alert is about (a database that stalls, a queue that backs up)."""
    if ctx.alert.alertname in FILLING_ALERTS:
        return  # the alert's own finding carries the metrics
    for signal in ctx.metrics.values():
        claim = signal.query.resource
        if signal.query.signal != "volume_used" or claim is None:
            continue
        if ctx.distance.get(claim, 99) > 2:
            continue
        measured = metricfacts.filling(ctx, ledger, claim, only_urgent=True)
        if measured is None:
            continue
        pvc = ctx.objects.get(claim) or {}
        soon = measured.full_in_seconds is not None and measured.ratio < metricfacts.FULL
        yield _filling_finding(
            ctx, pvc, claim, f"{claim} is {measured.sentence}", [measured.evidence],
            0.75 if soon else 0.8, free_percent=None, inodes=False, measured=measured,
        )  # fmt: skip


def _mounts(pods: list[KubeObject], claim: str) -> list[dict[str, str]]:
    """(pod, container, mount path) where the claim is mounted, for ``df``/``du`` commands."""
    found: list[dict[str, str]] = []
    for pod in pods:
        spec: Mapping[str, Any] = pod.get("spec") or {}
        volumes = {
            str(v.get("name"))
            for v in spec.get("volumes") or []
            if (v.get("persistentVolumeClaim") or {}).get("claimName") == claim
        }
        for ctr in spec.get("containers") or []:
            for mount in ctr.get("volumeMounts") or []:
                if mount.get("name") in volumes:
                    found.append(
                        {
                            "pod": kube.name(pod),
                            "container": str(ctr.get("name")),
                            "path": str(mount.get("mountPath")),
                        }
                    )
    return found
