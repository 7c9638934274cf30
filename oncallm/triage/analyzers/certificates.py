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
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.sources.snapshot import parse_time
from oncallm.triage import kube
from oncallm.triage.analyzers.phrases import history_only
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
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
CONTROLLER_KINDS = ("ReplicaSet", "Job", "StatefulSet", "DaemonSet")
_WEBHOOK_CALL = re.compile(r'failed calling webhook "(?P<hook>[^"]+)".*?(?P<url>https?://[^"\s]+)')


def _kind(line: str) -> str:
    return next((kind for kind, pattern in _KINDS if pattern.search(line)), "other")


def _is_tls(secret: Mapping[str, Any]) -> bool:
    return secret.get("type") == "kubernetes.io/tls" or {"tls.crt", "tls.key"} <= kube.object_keys(
        secret
    )


def tls_secrets(ctx: TriageContext, pod: Mapping[str, Any]) -> list[KubeObject]:
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


def _service_secrets(ctx: TriageContext, svc: Mapping[str, Any]) -> list[KubeObject]:
    """The TLS Secrets the pods behind a Service mount: the certificate it serves."""
    found: dict[ObjectRef, KubeObject] = {}
    for backend in ctx.pods_selected_by(svc):
        for secret in tls_secrets(ctx, backend):
            found[kube.ref(secret)] = secret
    return list(found.values())


def _served_secrets(ctx: TriageContext, pod: Mapping[str, Any], text: str) -> list[KubeObject]:
    """TLS Secrets of the Service the pod calls: the one its failing lines name, else its
    only Service dependency (gRPC errors rarely name the host)."""
    services: dict[ObjectRef, tuple[KubeObject, bool]] = {}
    for dep in ctx.dependencies_of([kube.ref(pod)]):
        svc = ctx.objects.get(dep.service) if dep.service else None
        if svc is not None and dep.service is not None:
            named = dep.host.lower() in text.lower() or services.get(dep.service, (svc, False))[1]
            services[dep.service] = (svc, named)
    chosen = [svc for svc, named in services.values() if named]
    if not chosen and len(services) == 1:
        chosen = [svc for svc, _ in services.values()]
    found: dict[ObjectRef, KubeObject] = {}
    for svc in chosen:
        for secret in _service_secrets(ctx, svc):
            found[kube.ref(secret)] = secret
    return list(found.values())


def _quote(line: str) -> str:
    """The certificate error itself, out of a long (often JSON) log line or event."""
    match = CERT_ERROR.search(line)
    text = line[match.start() :] if match else line.strip()
    text = re.split(r'\\?"', text, maxsplit=1)[0]
    return text[:180].strip()


@dataclass
class _Blame:
    culprit: ObjectRef
    confidence: float
    detail: str
    facts: dict[str, Any] = field(default_factory=dict)


def _blame(
    ctx: TriageContext,
    secrets: list[KubeObject],
    how: str,
    fallback: ObjectRef,
    kind: str,
    covered: set[ObjectRef],
) -> _Blame:
    """The one TLS Secret, else its one Certificate, else ``fallback`` — with what the
    Certificate says (notAfter, Ready) when there is one."""
    certs = [c for s in secrets if (c := _certificate_for(ctx, s)) is not None]
    blame = _Blame(
        fallback,
        0.6,
        "",
        {"secret": None, "secret_namespace": None, "certificate": None, "not_after": None},
    )
    if len(secrets) == 1:
        secret = secrets[0]
        blame.culprit, blame.confidence = kube.ref(secret), 0.85
        blame.detail = f"; {how} TLS Secret {kube.namespace(secret)}/{kube.name(secret)}"
        blame.facts.update(secret=kube.name(secret), secret_namespace=kube.namespace(secret))
    elif len(certs) == 1:
        blame.culprit, blame.confidence = kube.ref(certs[0]), 0.75
    if len(certs) == 1:
        cert = certs[0]
        expired, not_after, ready = _cert_state(ctx, cert)
        covered.add(kube.ref(cert))
        blame.facts.update(
            certificate=kube.name(cert), not_after=not_after, secret_namespace=kube.namespace(cert)
        )
        dates = f"notAfter {not_after}" + (" (expired)" if expired else "") if not_after else ""
        state = ", ".join(x for x in (dates, ready) if x)
        blame.detail += f" (Certificate {kube.name(cert)}{': ' + state if state else ''})"
        if expired and kind == "expired":
            blame.confidence += 0.05
    return blame


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
        if not hits or workload in seen or history_only(ctx, [ex for ex, _ in hits]):
            continue
        seen.add(workload)
        lines = [line for _, found in hits for line in found]
        evidence = [
            ledger.cite_log(ex.namespace, ex.pod, ex.container, ex.previous, found[-3:])
            for ex, found in hits
        ]
        kind = _kind(lines[-1])
        secrets, how = tls_secrets(ctx, pod), "it mounts"
        if not secrets:
            secrets, how = (
                _served_secrets(ctx, pod, "\n".join(lines)),
                "the Service it calls serves",
            )
        blame = _blame(ctx, secrets, how, workload, kind, covered)
        who = workload if workload.kind != "Pod" else f"pod {workload.name}"
        yield Finding(
            Category.CertificateError,
            f"{who} fails TLS verification: {KIND_WORDS[kind]} — {_quote(lines[-1])}{blame.detail}",
            kube.ref(pod),
            blame.culprit,
            tuple(evidence),
            blame.confidence,
            analyzer,
            facts={
                "kind": kind,
                "line": _quote(lines[-1]),
                "namespace": kube.namespace(pod),
                "pod": kube.name(pod),
                "container": hits[0][0].container,
                "workload_kind": workload.kind,
                "workload_name": workload.name,
                **blame.facts,
            },
        )


def _webhook_findings(
    ctx: TriageContext, ledger: EvidenceLedger, analyzer: str, covered: set[ObjectRef]
) -> Iterator[Finding]:
    """Controllers that cannot create pods because the API server rejects the certificate
    of an admission webhook their pods pass through."""
    for ref in sorted(ctx.objects):
        if ref.kind not in CONTROLLER_KINDS:
            continue
        events = [
            e
            for e in ctx.warnings_of(ref, "FailedCreate")
            if "failed calling webhook" in e.message and CERT_ERROR.search(e.message)
        ]
        call = _WEBHOOK_CALL.search(events[-1].message) if events else None
        if call is None:
            continue
        url = urlsplit(call["url"])
        host = url.hostname or ""
        parts = host.split(".")
        svc_ref = ObjectRef("Service", parts[1], parts[0]) if "svc" in parts[2:3] else None
        svc = ctx.objects.get(svc_ref) if svc_ref else None
        secrets = _service_secrets(ctx, svc) if svc is not None else []
        where = f"webhook Service {svc_ref.namespace}/{svc_ref.name}" if svc_ref else "the webhook"
        kind = _kind(events[-1].message)
        blame = _blame(ctx, secrets, f"{where} serves", svc_ref or ref, kind, covered)
        if not secrets and svc_ref is not None:
            blame.confidence = 0.7  # the webhook's certificate, wherever it is kept
        workload = ref
        while (owner := kube.controller_of(ctx.objects.get(workload) or {})) is not None:
            workload = owner
        times = sum(e.count for e in events)
        cited = ledger.cite_event(ref, events[-1].reason, events[-1].describe())
        yield Finding(
            Category.CertificateError,
            f"{ref} cannot create pods ({times} times): the API server rejects the serving "
            f'certificate of admission webhook "{call["hook"]}" at {host}:{url.port or 443} — '
            f"{_quote(events[-1].message)}{blame.detail}",
            ref,
            blame.culprit,
            (cited,),
            blame.confidence,
            analyzer,
            facts={
                "kind": kind,
                "line": _quote(events[-1].message),
                "webhook": call["hook"],
                "namespace": ref.namespace,
                "pod": None,
                "container": None,
                "workload_kind": workload.kind,
                "workload_name": workload.name,
                "webhook_service": svc_ref.name if svc_ref else None,
                "webhook_namespace": svc_ref.namespace if svc_ref else None,
                **blame.facts,
            },
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
    yield from _webhook_findings(ctx, ledger, analyzer, covered)
    yield from _certificate_findings(ctx, ledger, analyzer, covered)
