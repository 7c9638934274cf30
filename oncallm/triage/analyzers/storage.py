"""Storage analyzer: claims that never bind, volumes that will not attach or mount, and
volumes running out of space.

It owns ``VolumeFailure``. A PersistentVolumeClaim stuck ``Pending`` (its StorageClass
does not exist, no default class, the provisioner fails) or ``Lost``; pods whose PVC
volumes fail to attach (``Multi-Attach``) or mount; PersistentVolumes ``Failed``, or
``Released`` while a claim waits for them; and volume-filling alerts. The culprit is the
claim whose fix ends the incident; pod-level findings blame it so it ranks as the cause.
ConfigMap and Secret volumes that fail to mount belong to the config analyzer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import Analyzer, storage_advice, volumes
from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.taxonomy import Category

NAME = "storage"
# A provisioner gets a few minutes before a Pending claim counts as stuck.
PROVISIONING_GRACE = timedelta(minutes=5)
_VOLUME = re.compile(r'for volume "(?P<volume>[^"]+)"')
_UNMOUNTED = re.compile(r"unmounted volumes=\[(?P<names>[^\]]*)\]")
_USED_BY = re.compile(r"already used by pod\(s\) (?P<pods>[\w.,\s-]+)")
_CONFIG_VOLUME = re.compile(
    r'(?:configmap|secret)s? "[^"]+" not found|non-existent (?:config|secret) key', re.I
)


def _waiting_pods(ctx: TriageContext, claim: ObjectRef) -> list[KubeObject]:
    return [
        p
        for p in pf.live_pods(ctx)
        if kube.namespace(p) == claim.namespace
        and claim.name in kube.pvc_names(p.get("spec") or {})
        and (kube.pod_phase(p) == "Pending" or not kube.pod_ready(p))
    ]


def _claim_findings(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    for pvc in ctx.of_kind("PersistentVolumeClaim"):
        ref = kube.ref(pvc)
        phase = str((pvc.get("status") or {}).get("phase", "Pending"))
        if phase not in ("Pending", "Lost"):
            continue
        sc_name, sc_exists = volumes.class_state(ctx, pvc)
        events = ctx.warnings_of(ref, "ProvisioningFailed", "FailedBinding")
        evidence = [ledger.cite_event(ref, e.reason, e.describe()) for e in events[-2:]]
        created = pf.time_of(kube.meta(pvc).get("creationTimestamp"))
        age_ok = created is not None and ctx.now - created < PROVISIONING_GRACE
        sc = ctx.get("StorageClass", None, sc_name) if sc_name else None
        provisioner = str((sc or {}).get("provisioner") or "")
        if phase == "Lost":
            why, confidence = "Lost: its PersistentVolume is gone", 0.9
        elif sc_exists is False and sc_name:
            why, confidence = f'Pending: StorageClass "{sc_name}" does not exist', 0.9
        elif sc_exists is False:
            why = "Pending: it names no storageClassName and the cluster has no default class"
            confidence = 0.85
        elif events:
            why = f"Pending: {events[-1].reason}: {events[-1].message[:200]}"
            confidence = 0.85
        elif (sc or {}).get("volumeBindingMode") == "WaitForFirstConsumer":
            continue  # binds when a pod is scheduled: the pod's problem, if any, comes first
        elif age_ok or not _waiting_pods(ctx, ref):
            continue
        else:
            by = f" by {provisioner}" if provisioner else ""
            why, confidence = f"Pending: no volume has been provisioned{by}", 0.55
        if not evidence:
            spec = pvc.get("spec") or {}
            evidence.append(
                ledger.cite_object(
                    ref,
                    "status",
                    f"phase={phase} storageClassName={spec.get('storageClassName', '<unset>')}",
                )
            )
        waiting = _waiting_pods(ctx, ref)
        spec = pvc.get("spec") or {}
        asked = [((spec.get("resources") or {}).get("requests") or {}).get("storage")]
        asked += spec.get("accessModes") or []
        shown = " ".join(str(a) for a in asked if a)
        summary = f"{ref}{f' ({shown})' if shown else ''} is {why}"
        if waiting:
            verb = "waits" if len(waiting) == 1 else "wait"
            summary += f"; pod {pf.pods_phrase(waiting)} {verb} on it"
        yield Finding(
            category=Category.VolumeFailure,
            summary=summary,
            subject=ref,
            resource=ref,
            evidence=pf.unique(evidence),
            confidence=confidence,
            analyzer=NAME,
            facts=_claim_facts(pvc, sc_name, sc_exists, provisioner, waiting, why),
        )


def _claim_facts(
    pvc: KubeObject,
    sc_name: str | None,
    sc_exists: bool | None,
    provisioner: str,
    waiting: list[KubeObject],
    why: str,
) -> dict[str, Any]:
    spec = pvc.get("spec") or {}
    return {
        "problem": "claim",
        "claim": kube.name(pvc),
        "namespace": kube.namespace(pvc),
        "storageClassName": sc_name,
        "storage_class_exists": sc_exists,
        "provisioner": provisioner,
        "size": ((spec.get("resources") or {}).get("requests") or {}).get("storage"),
        "access_modes": spec.get("accessModes") or [],
        "pods": sorted(kube.name(p) for p in waiting),
        "why": why,
    }


def _claim_of_volume(ctx: TriageContext, pod: KubeObject, volume: str) -> ObjectRef | None:
    """A pod volume name or a PV name (``pvc-3f2a...``) as the claim behind it."""
    ns, spec = kube.namespace(pod), pod.get("spec") or {}
    for vol in spec.get("volumes") or []:
        claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
        if vol.get("name") == volume:
            return ObjectRef("PersistentVolumeClaim", ns, str(claim)) if claim else None
    for claim in kube.pvc_names(spec):
        pvc = ctx.get("PersistentVolumeClaim", ns, claim)
        if pvc is not None and (pvc.get("spec") or {}).get("volumeName") == volume:
            return ObjectRef("PersistentVolumeClaim", ns, claim)
    pv = ctx.get("PersistentVolume", None, volume)
    claim_ref = ((pv or {}).get("spec") or {}).get("claimRef") or {}
    if claim_ref.get("name"):
        return ObjectRef("PersistentVolumeClaim", claim_ref.get("namespace"), claim_ref["name"])
    return None


def _mount_findings(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    for pod in pf.live_pods(ctx):
        ref = pf.pod_ref(pod)
        claims = kube.pvc_names(pod.get("spec") or {})
        if not claims or kube.pod_ready(pod):
            continue
        failures = ctx.warnings_of(ref, "FailedMount", "FailedAttachVolume")
        failures = [e for e in failures if not _CONFIG_VOLUME.search(e.message)]
        found: dict[ObjectRef, list[Any]] = {}
        for event in failures:
            named = [m["volume"] for m in _VOLUME.finditer(event.message)]
            if m := _UNMOUNTED.search(event.message):
                named += m["names"].split()
            targets = {c for v in named if (c := _claim_of_volume(ctx, pod, v)) is not None}
            if not targets and not named and len(claims) == 1:
                targets = {ObjectRef("PersistentVolumeClaim", ref.namespace, claims[0])}
            for claim in targets:
                found.setdefault(claim, []).append(event)
        for claim, events in found.items():
            yield _mount_finding(ctx, ledger, pod, claim, events)


def _mount_finding(
    ctx: TriageContext, ledger: EvidenceLedger, pod: KubeObject, claim: ObjectRef, events: list[Any]
) -> Finding:
    ref = pf.pod_ref(pod)
    evidence = [ledger.cite_event(ref, e.reason, e.describe()) for e in events[-2:]]
    multi = next((e for e in events if "Multi-Attach" in e.message), None)
    workload = ctx.workload_of(pod)
    node = (pod.get("spec") or {}).get("nodeName")
    if multi is not None:
        users = _USED_BY.search(multi.message)
        others = [p.strip() for p in users["pods"].split(",")] if users else []
        why = "Multi-Attach error: the volume is still attached to another node"
        if others:
            why += f" (used by pod {', '.join(others)})"
        confidence = 0.9
    else:
        why, others = f"{events[-1].reason}: {events[-1].message[:200]}", []
        confidence = 0.8
    pvc = ctx.objects.get(claim) or {}
    return Finding(
        category=Category.VolumeFailure,
        summary=f"pod {ref.namespace}/{ref.name} of {pf.owner_phrase(workload)} cannot use "
        f"{claim}: {why}",
        subject=ref,
        resource=claim,
        evidence=pf.unique(evidence),
        confidence=confidence,
        analyzer=NAME,
        blames=(claim,),
        facts={
            "problem": "multi-attach" if multi else "mount",
            "claim": claim.name,
            "namespace": claim.namespace,
            "pod": ref.name,
            "node": node,
            "others": others,
            "volume": (pvc.get("spec") or {}).get("volumeName"),
            "why": why,
            "access_modes": (pvc.get("spec") or {}).get("accessModes") or [],
            **pf.workload_facts(workload),
        },
    )


def _volume_findings(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    for pv in ctx.of_kind("PersistentVolume"):
        ref, status, spec = kube.ref(pv), pv.get("status") or {}, pv.get("spec") or {}
        phase = status.get("phase")
        claim_ref = spec.get("claimRef") or {}
        claim = (
            ObjectRef("PersistentVolumeClaim", claim_ref.get("namespace"), claim_ref["name"])
            if claim_ref.get("name")
            else None
        )
        waiting = [
            kube.ref(c)
            for c in ctx.of_kind("PersistentVolumeClaim")
            if (c.get("spec") or {}).get("volumeName") == ref.name
            and (c.get("status") or {}).get("phase") == "Pending"
        ]
        if phase == "Failed":
            why, confidence, culprit = (
                f"Failed: {status.get('message') or 'reclaim failed'}",
                0.75,
                ref,
            )
        elif phase == "Released" and waiting:
            why = f"Released but still bound to its old claim, so {waiting[0]} cannot bind to it"
            confidence, culprit = 0.85, ref
        else:
            continue
        cited = ledger.cite_object(ref, "status", f"phase={phase} {status.get('message') or ''}")
        events = [ledger.cite_event(ref, e.reason, e.describe()) for e in ctx.warnings_of(ref)[-2:]]
        yield Finding(
            category=Category.VolumeFailure,
            summary=f"{ref} is {why}",
            subject=ref,
            resource=culprit,
            evidence=pf.unique([cited, *events]),
            confidence=confidence,
            analyzer=NAME,
            blames=tuple(c for c in [claim] if c is not None and c not in waiting),
            facts={
                "problem": f"pv-{str(phase).lower()}",
                "pv": ref.name,
                "why": why,
                "claim": claim.name if claim else None,
                "namespace": claim.namespace if claim else None,
                "reclaim": spec.get("persistentVolumeReclaimPolicy"),
            },
        )


def analyze(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    yield from _claim_findings(ctx, ledger)
    yield from _mount_findings(ctx, ledger)
    yield from _volume_findings(ctx, ledger)
    yield from volumes.write_failures(ctx, ledger)
    yield from volumes.zone_conflicts(ctx, ledger)
    yield from volumes.filling_alert(ctx, ledger)
    yield from volumes.filling_metrics(ctx, ledger)


ANALYZER = Analyzer(
    name=NAME,
    categories=frozenset({Category.VolumeFailure}),
    analyze=analyze,
    recommend=storage_advice.recommend,
)
