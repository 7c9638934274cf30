"""Image pulls: why a container's image cannot be pulled, for the pods analyzer.

The kubelet's ``Failed`` event says why (``not found``, ``unauthorized``, ``no such
host``); the cause decides the fix — a tag to correct or roll back, credentials (an
imagePullSecret that is missing becomes the culprit), or the registry's reachability. A
pull that failed for a while and then succeeded (a tag pushed after the rollout) is
reported too, weaker: it explains an alert that has since resolved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.context import Event, TriageContext
from oncallm.triage.evidence import EvidenceLedger

PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
_PULL_CAUSES = (
    (
        "invalid",
        re.compile(r"InvalidImageName|invalid reference format|couldn't parse image", re.I),
    ),
    ("not-found", re.compile(r"manifest unknown|: not found|NotFound|name unknown", re.I)),
    (
        "auth",
        re.compile(
            r"unauthorized|authentication required|pull access denied|access denied|"
            r"403 Forbidden|401|insufficient_scope|no basic auth credentials|denied:",
            re.I,
        ),
    ),
    ("rate-limit", re.compile(r"toomanyrequests|rate limit", re.I)),
    (
        "unreachable",
        re.compile(
            r"no such host|i/o timeout|connection refused|TLS handshake timeout|"
            r"context deadline exceeded|x509|network is unreachable",
            re.I,
        ),
    ),
    ("not-found", re.compile(r"not found|does not exist", re.I)),
)
PULL_MEANING = {
    "invalid": "the image reference is malformed",
    "not-found": "the image or tag does not exist in the registry",
    "auth": "the registry refused the credentials",
    "rate-limit": "the registry is rate-limiting pulls",
    "unreachable": "the registry cannot be reached from the node",
    "unknown": "the pull fails",
}


def pull_facts(
    ctx: TriageContext,
    ledger: EvidenceLedger,
    pod: KubeObject,
    c: kube.ContainerState,
    events: list[Event],
) -> tuple[float, list[str], dict[str, Any]]:
    """(confidence, evidence, facts) of a container whose image pull fails (or failed)."""
    ref, image = pf.pod_ref(pod), str(c.spec.get("image", ""))
    waiting = c.waiting or {}
    mine = [e for e in events if e.reason in ("Failed", "InspectFailed") and image in e.message]
    detailed = [e for e in mine if not e.message.startswith("Error: ")] or mine
    evidence = [ledger.cite_event(ref, e.reason, e.describe()) for e in detailed[-1:]]
    text = " ".join([str(waiting.get("reason")), str(waiting.get("message") or "")])
    text += " " + " ".join(e.message for e in detailed)
    cause = next((name for name, pattern in _PULL_CAUSES if pattern.search(text)), "unknown")
    evidence.append(
        ledger.cite_object(
            ref,
            f"status.containerStatuses[{c.name}]",
            pf.state_text("state.waiting", waiting) + f" image={image}",
        )
    )
    secrets = [str(s.get("name")) for s in (pod.get("spec") or {}).get("imagePullSecrets") or []]
    gaps = {g.source for g in ctx.gaps}
    missing = [
        s
        for s in secrets
        if ObjectRef("Secret", ref.namespace, s) not in ctx.objects
        and f"Secret {ref.namespace}/{s}" not in gaps
    ]
    for event in ctx.warnings_of(ref, "FailedToRetrieveImagePullSecret"):
        evidence.append(ledger.cite_event(ref, event.reason, event.describe()))
        missing += [s for s in secrets if s in event.message and s not in missing]
    facts = {
        "image": image,
        "cause": cause,
        "pull_message": (detailed[-1].message if detailed else str(waiting.get("message") or "")),
        "pull_secrets": secrets,
        "missing_pull_secrets": missing,
        "service_account": (pod.get("spec") or {}).get("serviceAccountName") or "default",
    }
    confidence = 0.95 if cause != "unknown" else 0.8
    if c.waiting_reason not in PULL_REASONS:
        # It pulls now: the failures explain what the alert saw, not what is wrong now.
        pulled = [e for e in events if e.reason == "Pulled" and image in e.message]
        failed = [e for e in mine if e.message.startswith("Failed to pull")]
        facts["recovered_at"] = pf.stamp(pulled[-1].last_seen if pulled else None, ctx.now)
        facts["failed_pulls"] = sum(e.count for e in failed)
        facts["failing_since"] = pf.stamp(failed[0].first_seen if failed else None, ctx.now)
        confidence = 0.6
    return confidence, evidence, facts


def pulled_late(c: kube.ContainerState, events: list[Event]) -> bool:
    """Repeated pull failures of the image this container now runs (a tag pushed late)."""
    image = str(c.spec.get("image", ""))
    failed = [
        e for e in events if e.reason == "Failed" and e.message.startswith("Failed to pull image")
    ]
    return sum(e.count for e in failed if image in e.message) >= 3


def summary(f: Mapping[str, Any], where: str) -> str:
    if "recovered_at" in f:
        return (
            f"{where} could not pull image {f['image']} from {f['failing_since']} until it "
            f"pulled at {f['recovered_at']} ({f['failed_pulls']} failed pulls): "
            f"{PULL_MEANING[f['cause']]} — {f['pull_message'][:160]}"
        )
    text = f"{where} cannot pull image {f['image']}: {PULL_MEANING[f['cause']]}"
    if f["cause"] == "auth":
        if f["missing_pull_secrets"]:
            text += f"; imagePullSecret {', '.join(f['missing_pull_secrets'])} does not exist"
        elif f["pull_secrets"]:
            text += f" (imagePullSecrets: {', '.join(f['pull_secrets'])})"
        else:
            text += "; the pod has no imagePullSecrets"
    return text + (f" — {f['pull_message'][:160]}" if f["pull_message"] else "")
