"""``CertificateError``: TLS verification failing in logs, and cert-manager Certificates
that expired or are not ready.

Part of the ``security`` analyzer. A workload whose logs show ``x509: certificate has
expired``, an unknown authority, or a failed verification is matched to the certificate
behind it: the one ``kubernetes.io/tls`` Secret its pods mount (or, when it mounts none,
the one the Service it calls serves), else that Secret's Certificate, else the workload.
The Certificate's ``notAfter`` is quoted when known. A Certificate past its ``notAfter``
or not Ready is a finding of its own unless a log finding already names it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.sources.snapshot import parse_time
from oncallm.triage import kube
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl
from oncallm.triage.taxonomy import Category

CERT_ERROR = re.compile(
    r"x509: certificate|certificate has expired|certificate is not yet valid|"
    r"certificate signed by unknown authority|tls: failed to verify certificate|"
    r"certificate verify failed|CERT_HAS_EXPIRED|UNABLE_TO_VERIFY_LEAF_SIGNATURE|"
    r"SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|unable to get local issuer|"
    r"PKIX path building failed|certificate_expired|ERR_TLS_CERT_ALTNAME_INVALID",
    re.IGNORECASE,
)
_KINDS = (
    ("expired", re.compile(r"expired|not yet valid|CERT_HAS_EXPIRED", re.IGNORECASE)),
    (
        "authority",
        re.compile(r"unknown authority|self.signed|local issuer|PKIX|UNABLE_TO_VERIFY", re.I),
    ),
    ("hostname", re.compile(r"is valid for|not valid for|ALTNAME|hostname mismatch", re.I)),
)
KIND_WORDS = {
    "expired": "a certificate has expired or is not yet valid",
    "authority": "a certificate is signed by an unknown authority",
    "hostname": "a certificate does not match the host name",
    "other": "certificate verification fails",
}
CERT_NAME_ANNOTATION = "cert-manager.io/certificate-name"


def _kind(line: str) -> str:
    return next((kind for kind, pattern in _KINDS if pattern.search(line)), "other")


def _is_tls(secret: Mapping[str, Any]) -> bool:
    return secret.get("type") == "kubernetes.io/tls" or {"tls.crt", "tls.key"} <= kube.object_keys(
        secret
    )


def _tls_secrets(ctx: TriageContext, pod: Mapping[str, Any]) -> list[KubeObject]:
    ns = kube.namespace(pod)
    names = sorted(
        {
            r.name
            for r in kube.config_references(pod.get("spec") or {})
            if r.kind == "Secret" and r.via.startswith("volume")
        }
    )
    return [s for n in names if (s := ctx.get("Secret", ns, n)) is not None and _is_tls(s)]


def _certificate_for(ctx: TriageContext, secret: Mapping[str, Any]) -> KubeObject | None:
    ns, name = kube.namespace(secret), kube.name(secret)
    named = (kube.meta(secret).get("annotations") or {}).get(CERT_NAME_ANNOTATION)
    return next(
        (
            c
            for c in ctx.of_kind("Certificate", ns)
            if (c.get("spec") or {}).get("secretName") == name or kube.name(c) == named
        ),
        None,
    )


def _cert_state(ctx: TriageContext, cert: Mapping[str, Any]) -> tuple[bool, str | None, str]:
    """(expired, notAfter, ``Ready=False reason: message`` or "")."""
    not_after = (cert.get("status") or {}).get("notAfter")
    when = parse_time(not_after)
    ready = kube.condition(cert, "Ready") or {}
    text = ""
    if ready.get("status") == "False":
        text = f"Ready=False {ready.get('reason', '')}: {ready.get('message', '')}".strip()
    return (when is not None and when < ctx.now), (str(not_after) if not_after else None), text


def _served_secrets(ctx: TriageContext, pod: Mapping[str, Any], text: str) -> list[KubeObject]:
    """TLS Secrets of the Services the pod calls on the failing lines."""
    found: dict[ObjectRef, KubeObject] = {}
    for dep in ctx.dependencies_of([kube.ref(pod)]):
        svc = ctx.objects.get(dep.service) if dep.service else None
        if svc is None or dep.host.lower() not in text.lower():
            continue
        for backend in ctx.pods_selected_by(svc):
            for secret in _tls_secrets(ctx, backend):
                found[kube.ref(secret)] = secret
    return list(found.values())


def _log_findings(
    ctx: TriageContext, ledger: EvidenceLedger, analyzer: str, covered: set[ObjectRef]
) -> Iterator[Finding]:
    seen: set[ObjectRef] = set()
    pods = sorted(ctx.pods(), key=lambda p: (not ctx.is_focus(kube.ref(p)), kube.name(p)))
    for pod in pods:
        if kube.pod_finished(pod):
            continue
        workload = ctx.workload_of(pod)
        hits = [(ex, ex.matching(CERT_ERROR)) for ex in ctx.logs_of_pod(kube.ref(pod))]
        hits = [(ex, lines) for ex, lines in hits if lines]
        if not hits or workload in seen:
            continue
        seen.add(workload)
        lines = [line for _, found in hits for line in found]
        evidence = [
            ledger.cite_log(ex.namespace, ex.pod, ex.container, ex.previous, found[-3:])
            for ex, found in hits
        ]
        kind = _kind(lines[-1])
        secrets = _tls_secrets(ctx, pod)
        served = not secrets
        if served:
            secrets = _served_secrets(ctx, pod, "\n".join(lines))
        certs = [c for s in secrets if (c := _certificate_for(ctx, s)) is not None]
        if len(secrets) == 1:
            culprit, confidence = kube.ref(secrets[0]), 0.85
        elif len(certs) == 1:
            culprit, confidence = kube.ref(certs[0]), 0.75
        else:
            culprit, confidence = workload, 0.6
        facts: dict[str, Any] = {
            "kind": kind,
            "line": lines[-1][:300],
            "namespace": kube.namespace(pod),
            "pod": kube.name(pod),
            "container": hits[0][0].container,
            "workload_kind": workload.kind,
            "workload_name": workload.name,
            "secret": kube.name(secrets[0]) if len(secrets) == 1 else None,
            "secret_namespace": kube.namespace(secrets[0]) if len(secrets) == 1 else None,
            "certificate": None,
            "not_after": None,
        }
        detail = ""
        if len(secrets) == 1:
            how = "the Service it calls serves" if served else "it mounts"
            detail = f"; {how} TLS Secret {kube.namespace(secrets[0])}/{kube.name(secrets[0])}"
        cert = certs[0] if len(certs) == 1 else None
        if cert is not None:
            expired, not_after, ready = _cert_state(ctx, cert)
            covered.add(kube.ref(cert))
            facts.update(certificate=kube.name(cert), not_after=not_after)
            state = ", ".join(
                x
                for x in (
                    f"notAfter {not_after}" + (" (expired)" if expired else "")
                    if not_after
                    else "",
                    ready,
                )
                if x
            )
            detail += f" (Certificate {kube.name(cert)}{': ' + state if state else ''})"
            if expired and kind == "expired":
                confidence += 0.05
        summary = (
            f"{workload if workload.kind != 'Pod' else f'pod {workload.name}'} fails TLS "
            f"verification: {KIND_WORDS[kind]} — {lines[-1].strip()[:200]}{detail}"
        )
        yield Finding(
            Category.CertificateError,
            summary,
            kube.ref(pod),
            culprit,
            tuple(evidence),
            confidence,
            analyzer,
            facts=facts,
        )


def _certificate_findings(
    ctx: TriageContext, ledger: EvidenceLedger, analyzer: str, covered: set[ObjectRef]
) -> Iterator[Finding]:
    for cert in ctx.of_kind("Certificate"):
        ref = kube.ref(cert)
        if ref in covered:
            continue
        expired, not_after, ready = _cert_state(ctx, cert)
        if not expired and not ready:
            continue
        issuing = kube.condition_is(cert, "Issuing", "True")
        confidence = 0.85 if expired else (0.5 if issuing else 0.6)
        secret = str((cert.get("spec") or {}).get("secretName") or "")
        state = (f"expired at {not_after}" if expired else "is not Ready") + (
            f" ({ready})" if ready else ""
        )
        cited = ledger.cite_object(ref, "status", f"notAfter={not_after}; {ready or 'Ready=True'}")
        yield Finding(
            Category.CertificateError,
            f"Certificate {ref.namespace}/{ref.name} (Secret {secret}) {state}"
            + ("; a renewal is in progress" if issuing else ""),
            ref,
            ref,
            (cited,),
            confidence,
            analyzer,
            facts={
                "certificate": ref.name,
                "namespace": ref.namespace,
                "secret": secret,
                "secret_namespace": ref.namespace,
                "not_after": not_after,
                "kind": "expired" if expired else "not-ready",
            },
        )


def findings(ctx: TriageContext, ledger: EvidenceLedger, analyzer: str) -> Iterator[Finding]:
    covered: set[ObjectRef] = set()
    yield from _log_findings(ctx, ledger, analyzer, covered)
    yield from _certificate_findings(ctx, ledger, analyzer, covered)


def recommend(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    facts = finding.facts
    ns = facts.get("secret_namespace") or facts["namespace"]
    commands: list[str] = []
    if facts.get("secret"):
        commands.append(
            kubectl(
                "get", "secret", facts["secret"], "-o", "jsonpath='{.data.tls\\.crt}'", namespace=ns
            )
            + " | base64 -d | openssl x509 -noout -subject -issuer -dates"
        )
    cert = facts.get("certificate")
    steps: list[Recommendation] = []
    if cert:
        commands += [
            kubectl("describe", "certificate", cert, namespace=ns),
            kubectl("get", "certificaterequests,orders,challenges", namespace=ns),
        ]
    if facts.get("pod"):
        commands.append(
            kubectl(
                "logs",
                facts["pod"],
                "-c",
                str(facts["container"]),
                "--tail=50",
                namespace=facts["namespace"],
            )
        )
    steps.append(
        Recommendation(
            "Check the certificate's dates, issuer and names",
            f"The TLS failure ({KIND_WORDS.get(facts.get('kind', ''), 'certificate problem')}) "
            "is confirmed by the certificate itself: notAfter for expiry, issuer for an "
            "unknown authority, the subject alternative names for a host mismatch.",
            tuple(commands),
            "low",
            finding.confidence,
        )
    )
    if cert:
        fix = [f"cmctl renew {cert} -n {ns}"]
        if facts.get("workload_kind") in ("Deployment", "StatefulSet", "DaemonSet"):
            target = f"{str(facts['workload_kind']).lower()}/{facts['workload_name']}"
            fix.append(kubectl("rollout", "restart", target, namespace=facts["namespace"]))
        steps.append(
            Recommendation(
                f"Renew Certificate {cert}",
                "Have cert-manager issue it again (fix the issuer first if the Certificate "
                "says why it is not Ready), then restart the pods that read it at start-up.",
                tuple(fix),
                "medium",
                finding.confidence,
            )
        )
    elif facts.get("secret"):
        steps.append(
            Recommendation(
                f"Replace the certificate in Secret {facts['secret']}",
                "No cert-manager Certificate manages this Secret: issue a new certificate and "
                "key, replace the Secret, then restart the pods that mount it.",
                (
                    kubectl(
                        "create",
                        "secret",
                        "tls",
                        facts["secret"],
                        "--cert=tls.crt",
                        "--key=tls.key",
                        "--dry-run=client",
                        "-o",
                        "yaml",
                        namespace=ns,
                    )
                    + " | kubectl apply -f -",
                ),
                "medium",
                finding.confidence,
            )
        )
    return steps
