"""Security controls that stop a workload: RBAC denials, admission denials, bad certificates.

The ``security`` analyzer owns ``PermissionDenied``: a ServiceAccount the API server
refused (``forbidden: User "system:serviceaccount:NS:SA" cannot VERB resource ...`` in
logs or events), culprit the ServiceAccount, with the Role that grants exactly what was
denied. ``forbidden`` in a controller's ``FailedCreate`` event is something else — Pod
Security Admission, an admission webhook, a missing ServiceAccount — and is reported
honestly as the ``ConfigError`` it is, on the workload whose pod spec must change.
Quota refusals are the quota rule's. ``CertificateError`` lives in :mod:`certificates`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from oncallm.sources.base import ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import Analyzer, certificates
from oncallm.triage.analyzers.phrases import history_only
from oncallm.triage.analyzers.security_advice import (
    recommend_admission,
    recommend_certificate,
    recommend_rbac,
)
from oncallm.triage.context import LogExcerpt, TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation
from oncallm.triage.taxonomy import Category

NAME = "security"
_Q = r'\\?"'  # a quote, escaped when the error was logged inside a JSON string
RBAC_DENIED = re.compile(
    rf"User {_Q}system:serviceaccount:(?P<ns>[^:\"\\]+):(?P<sa>[^\"\\]+){_Q} cannot "
    rf"(?P<verb>[\w*]+) resource {_Q}(?P<resource>[^\"\\]+){_Q}"
    rf"(?: in API group {_Q}(?P<group>[^\"\\]*){_Q})?"
    rf"(?: in the namespace {_Q}(?P<namespace>[^\"\\]+){_Q}| (?P<cluster>at the cluster scope))?"
)
_PSA = re.compile(r'violates PodSecurity "(?P<level>[^"]+)": (?P<violations>.*)')
_MUST = re.compile(r"must (?:set|not set|not include|use|not use) ([^)]+?)\)")
_WEBHOOK = re.compile(r'admission webhook "(?P<hook>[^"]+)" denied the request:?\s*(?P<why>.*)')
_NO_SA = re.compile(r'serviceaccount "(?P<sa>[^"]+)" not found')
CONTROLLER_KINDS = ("ReplicaSet", "Job", "StatefulSet", "DaemonSet")


def complaint(lines: Iterable[str]) -> str | None:
    """The security family a crashing container's log points at, for the crash rule to
    defer to: ``rbac`` or ``certificate``; None when its lines say neither."""
    for line in lines:
        if RBAC_DENIED.search(line):
            return "rbac"
        if certificates.CERT_ERROR.search(line):
            return "certificate"
    return None


# --- PermissionDenied ---------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Denial:
    verb: str
    resource: str
    group: str
    namespace: str | None  # None: at the cluster scope

    def describe(self) -> str:
        group = f"{self.group} API group" if self.group else "core API group"
        where = f"in namespace {self.namespace}" if self.namespace else "at the cluster scope"
        return f"cannot {self.verb} {self.resource} ({group}) {where}"


@dataclass
class _Denied:
    account: ObjectRef
    denials: set[Denial] = field(default_factory=set)
    subjects: list[ObjectRef] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    count: int = 0
    excerpts: list[LogExcerpt] = field(default_factory=list)
    from_events: bool = False


def _denials_in(lines: Iterable[str]) -> Iterator[tuple[ObjectRef, Denial]]:
    for line in lines:
        for m in RBAC_DENIED.finditer(line):
            account = ObjectRef("ServiceAccount", m["ns"], m["sa"])
            namespace = None if m["cluster"] else (m["namespace"] or None)
            yield account, Denial(m["verb"], m["resource"], m["group"] or "", namespace)


def _rbac(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    found: dict[ObjectRef, _Denied] = {}
    for excerpt in ctx.logs.values():
        pod_ref = ObjectRef("Pod", excerpt.namespace, excerpt.pod)
        pod = ctx.objects.get(pod_ref)
        if pod is not None and kube.pod_finished(pod):
            continue
        lines = [line for line in excerpt.lines if RBAC_DENIED.search(line)]
        if not lines:
            continue
        cited = ledger.cite_log(
            excerpt.namespace, excerpt.pod, excerpt.container, excerpt.previous, lines[-3:]
        )
        for account, denial in _denials_in(lines):
            entry = found.setdefault(account, _Denied(account))
            entry.denials.add(denial)
            entry.count += 1
            if pod_ref not in entry.subjects:
                entry.subjects.append(pod_ref)
            if cited not in entry.evidence:
                entry.evidence.append(cited)
                entry.excerpts.append(excerpt)
    for ref in ctx.objects:
        for event in ctx.events_of(ref):
            for account, denial in _denials_in([event.message]):
                entry = found.setdefault(account, _Denied(account))
                entry.denials.add(denial)
                entry.count += event.count
                entry.subjects.append(ref)
                entry.evidence.append(ledger.cite_event(ref, event.reason, event.describe()))
                entry.from_events = True
    for entry in found.values():
        yield _rbac_finding(ctx, entry)


def _rbac_finding(ctx: TriageContext, entry: _Denied) -> Finding:
    account = entry.account
    subject = min(entry.subjects, key=lambda r: (not ctx.is_focus(r), ctx.distance.get(r, 99), r))
    obj = ctx.objects.get(subject)
    where = f"pod {subject.name}"
    if obj is not None and subject.kind == "Pod":
        workload = ctx.workload_of(obj)
        if workload != subject:
            where += f" ({workload})"
    denials = sorted(entry.denials)
    shown = "; ".join(d.describe() for d in denials[:3])
    more = f"; and {len(denials) - 3} more" if len(denials) > 3 else ""
    summary = (
        f"ServiceAccount {account.namespace}/{account.name} lacks RBAC permission: {shown}{more} "
        f"— denied {entry.count} time{'s' if entry.count != 1 else ''}, seen in {where}"
    )
    return Finding(
        Category.PermissionDenied,
        summary,
        subject,
        account,
        tuple(dict.fromkeys(entry.evidence)),
        # Denied only in a previous instance of a container that is Ready now: history.
        0.5 if not entry.from_events and history_only(ctx, entry.excerpts) else 0.9,
        NAME,
        facts={
            "service_account": account.name,
            "namespace": account.namespace,
            "denials": [
                {"verb": d.verb, "resource": d.resource, "group": d.group, "namespace": d.namespace}
                for d in denials
            ],
        },
    )


# --- admission denials (FailedCreate ... forbidden) -------------------------------------------


def _top_owner(ctx: TriageContext, ref: ObjectRef) -> ObjectRef:
    """A Deployment over its ReplicaSet, a CronJob over its Job."""
    current = ref
    while (obj := ctx.objects.get(current)) is not None:
        owner = kube.controller_of(obj)
        if owner is None or owner.kind not in kube.WORKLOAD_KINDS:
            break
        current = owner
    return current


def _admission(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    for ref in ctx.objects:
        if ref.kind not in CONTROLLER_KINDS:
            continue
        denied = [
            e
            for e in ctx.warnings_of(ref, "FailedCreate")
            if "forbidden" in e.message and "exceeded quota" not in e.message
        ]
        if not denied:
            continue
        event = denied[-1]
        workload = _top_owner(ctx, ref)
        cited = ledger.cite_event(ref, event.reason, event.describe())
        facts: dict[str, object] = {
            "workload_kind": workload.kind,
            "workload_name": workload.name,
            "namespace": workload.namespace,
            "message": event.message,
        }
        psa, hook, missing = (
            _PSA.search(event.message),
            _WEBHOOK.search(event.message),
            _NO_SA.search(event.message),
        )
        culprit, confidence = workload, 0.9
        if psa:
            fields = list(dict.fromkeys(m.strip() for m in _MUST.findall(psa["violations"])))
            facts.update(rule="pod-security", level=psa["level"], fields=fields)
            why = f'its pods violate PodSecurity "{psa["level"]}" of namespace {ref.namespace}' + (
                f": must set {'; '.join(fields[:4])}" if fields else ""
            )
        elif hook:
            facts.update(rule="webhook", webhook=hook["hook"], reason=hook["why"])
            why = f'admission webhook "{hook["hook"]}" denies its pods: {hook["why"]}'
            confidence = 0.85
        elif missing:
            culprit = ObjectRef("ServiceAccount", ref.namespace, missing["sa"])
            facts.update(rule="service-account", service_account=missing["sa"])
            why = f"its pods name ServiceAccount {missing['sa']}, which does not exist"
        else:
            facts.update(rule="other")
            why = f"pod creation is forbidden: {event.message}"
            confidence = 0.6
        times = f" ({event.count} times)" if event.count > 1 else ""
        yield Finding(
            Category.ConfigError,
            f"{ref} cannot create pods{times}: {why}",
            ref,
            culprit,
            (cited,),
            confidence,
            NAME,
            facts=facts,
        )


def analyze(ctx: TriageContext, ledger: EvidenceLedger) -> Iterator[Finding]:
    yield from _rbac(ctx, ledger)
    yield from _admission(ctx, ledger)
    yield from certificates.findings(ctx, ledger, NAME)


def recommend(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    if finding.category is Category.PermissionDenied:
        return recommend_rbac(finding)
    if finding.category is Category.CertificateError:
        return recommend_certificate(finding, ctx)
    return recommend_admission(finding)


ANALYZER = Analyzer(
    name=NAME,
    categories=frozenset(
        {Category.PermissionDenied, Category.CertificateError, Category.ConfigError}
    ),
    analyze=analyze,
    recommend=recommend,
)
