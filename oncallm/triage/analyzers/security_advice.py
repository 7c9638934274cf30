"""What to do about a denied ServiceAccount, a refused pod spec, or a bad certificate.

RBAC advice grants exactly what the API server denied — one Role (or ClusterRole, for
cluster-scoped denials) per namespace and resource, bound to the ServiceAccount — and
checks it with ``kubectl auth can-i`` as that ServiceAccount. Admission advice names the
securityContext fields Pod Security asks for, or the webhook that refused. Certificate
advice reads the certificate's dates, renews it (through cert-manager when a Certificate
manages the Secret) and restarts the workloads that serve it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from oncallm.triage import kube
from oncallm.triage.analyzers.certificates import KIND_WORDS, tls_secrets
from oncallm.triage.context import TriageContext
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl

READ_VERBS = frozenset({"get", "list", "watch"})


def _resource_arg(resource: str, group: str) -> str:
    """``deployments.apps``, ``pods/log``, ``deployments.apps/scale`` as kubectl takes them."""
    base, _, sub = resource.partition("/")
    qualified = f"{base}.{group}" if group else base
    return f"{qualified}/{sub}" if sub else qualified


def _role_name(account: str, resource: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"{account}-{resource}".lower()).strip("-")[:63]


def recommend_rbac(finding: Finding) -> list[Recommendation]:
    facts = finding.facts
    account, sa_ns = facts["service_account"], facts["namespace"]
    identity = f"system:serviceaccount:{sa_ns}:{account}"
    grants: dict[tuple[str | None, str], set[str]] = {}
    for d in facts["denials"]:
        key = (d["namespace"], _resource_arg(d["resource"], d["group"]))
        grants.setdefault(key, set()).add(d["verb"])
    commands: list[str] = []
    checks: list[str] = []
    for (namespace, resource), verbs in sorted(
        grants.items(), key=lambda g: (g[0][0] or "", g[0][1])
    ):
        role = _role_name(account, resource.split(".")[0].replace("/", "-"))
        verb_list = ",".join(sorted(verbs))
        if namespace:
            commands += [
                kubectl(
                    "create",
                    "role",
                    role,
                    f"--verb={verb_list}",
                    f"--resource={resource}",
                    namespace=namespace,
                ),
                kubectl(
                    "create",
                    "rolebinding",
                    role,
                    f"--role={role}",
                    f"--serviceaccount={sa_ns}:{account}",
                    namespace=namespace,
                ),
            ]
        else:
            commands += [
                kubectl(
                    "create", "clusterrole", role, f"--verb={verb_list}", f"--resource={resource}"
                ),
                kubectl(
                    "create",
                    "clusterrolebinding",
                    role,
                    f"--clusterrole={role}",
                    f"--serviceaccount={sa_ns}:{account}",
                ),
            ]
        checks += [
            kubectl("auth", "can-i", verb, resource, f"--as={identity}", namespace=namespace)
            for verb in sorted(verbs)
        ]
    writes = any(d["verb"] not in READ_VERBS for d in facts["denials"])
    return [
        Recommendation(
            f"Confirm what ServiceAccount {account} may do",
            "Ask the API server as the ServiceAccount; each command answers no today.",
            (*checks, kubectl("get", "rolebindings,clusterrolebindings", "-A", "-o", "wide")),
            "low",
            finding.confidence,
        ),
        Recommendation(
            f"Grant ServiceAccount {account} only what was denied",
            "A Role and RoleBinding per denied resource (ClusterRole for cluster-scoped "
            "requests). If the workload should not need this access, fix the code instead."
            + (" The grant includes write verbs: review it." if writes else ""),
            tuple(commands),
            "medium" if writes else "low",
            finding.confidence,
        ),
    ]


def _workload_arg(facts: Mapping[str, Any]) -> str:
    return f"{str(facts['workload_kind']).lower()}/{facts['workload_name']}"


def recommend_admission(finding: Finding) -> list[Recommendation]:
    facts = finding.facts
    ns, rule = facts["namespace"], facts.get("rule")
    workload = _workload_arg(facts)
    events = kubectl(
        "get",
        "events",
        "--field-selector",
        "reason=FailedCreate",
        "--sort-by=.lastTimestamp",
        namespace=ns,
    )
    if rule == "pod-security":
        level = str(facts["level"]).split(":")[0]
        fields = facts.get("fields") or []
        return [
            Recommendation(
                f'Make {workload} comply with Pod Security "{level}"',
                f"Namespace {ns} enforces the {level} Pod Security level; set in the pod template: "
                + ("; ".join(fields) if fields else "the fields the event lists")
                + ". Relaxing the namespace label instead weakens every workload in it.",
                (
                    kubectl("get", "namespace", ns, "--show-labels"),
                    events,
                    kubectl(
                        "label",
                        "--dry-run=server",
                        "--overwrite",
                        "namespace",
                        ns,
                        f"pod-security.kubernetes.io/enforce={level}",
                    ),
                    kubectl("edit", workload, namespace=ns),
                ),
                "medium",
                finding.confidence,
            )
        ]
    if rule == "service-account":
        account = facts["service_account"]
        return [
            Recommendation(
                f"Create ServiceAccount {account} or fix serviceAccountName",
                f"The pod template of {workload} names ServiceAccount {account}, which does not "
                f"exist in namespace {ns}.",
                (
                    kubectl("get", "serviceaccounts", namespace=ns),
                    events,
                    kubectl("create", "serviceaccount", account, namespace=ns),
                ),
                "low",
                finding.confidence,
            )
        ]
    if rule == "webhook":
        hook = facts["webhook"]
        return [
            Recommendation(
                f"Satisfy admission webhook {hook}",
                f"Webhook {hook} refuses the pods of {workload}: {facts['reason']}. Change the pod "
                "template to meet its policy, or ask its owners for an exception.",
                (
                    events,
                    "kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations",
                    kubectl("edit", workload, namespace=ns),
                ),
                "medium",
                finding.confidence,
            )
        ]
    return [
        Recommendation(
            f"Find out why pods of {workload} are forbidden",
            str(facts.get("message", "")),
            (events, kubectl("describe", workload, namespace=ns)),
            "low",
            finding.confidence,
        )
    ]


def _serving_workloads(ctx: TriageContext, namespace: str, secret: str) -> list[str]:
    """``deployment/ledger`` for each workload whose pods mount the Secret."""
    found = {
        ctx.workload_of(pod)
        for pod in ctx.of_kind("Pod", namespace)
        if any(kube.name(s) == secret for s in tls_secrets(ctx, pod))
    }
    return sorted(
        f"{w.kind.lower()}/{w.name}"
        for w in found
        if w.kind in ("Deployment", "StatefulSet", "DaemonSet")
    )


def recommend_certificate(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    facts = finding.facts
    ns = facts.get("secret_namespace") or facts.get("webhook_namespace") or facts["namespace"]
    secret, cert = facts.get("secret"), facts.get("certificate")
    commands: list[str] = []
    if secret:
        commands.append(
            kubectl("get", "secret", secret, "-o", "jsonpath='{.data.tls\\.crt}'", namespace=ns)
            + " | base64 -d | openssl x509 -noout -subject -issuer -dates"
        )
    if cert:
        commands += [
            kubectl("describe", "certificate", cert, namespace=ns),
            kubectl("get", "certificaterequests,orders,challenges", namespace=ns),
        ]
    if facts.get("webhook"):
        commands.append("kubectl get mutatingwebhookconfigurations,validatingwebhookconfigurations")
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
    what = KIND_WORDS.get(str(facts.get("kind")), "the certificate is not accepted")
    steps = [
        Recommendation(
            "Check the certificate's dates, issuer and names",
            f"The TLS failure ({what}) is confirmed by the certificate itself: notAfter for "
            "expiry, the issuer for an unknown authority, the names for a host mismatch.",
            tuple(commands),
            "low",
            finding.confidence,
        )
    ]
    restarts = [
        kubectl("rollout", "restart", w, namespace=ns)
        for w in (_serving_workloads(ctx, ns, secret) if secret else [])
    ]
    webhook = (
        " and update the caBundle of the webhook configuration" if facts.get("webhook") else ""
    )
    if cert:
        steps.append(
            Recommendation(
                f"Renew Certificate {cert}",
                "Have cert-manager issue it again (fix its issuer first if the Certificate says "
                f"why it is not Ready){webhook}, then restart the pods that serve it.",
                (f"cmctl renew {cert} -n {ns}", *restarts),
                "medium",
                finding.confidence,
            )
        )
    elif secret:
        steps.append(
            Recommendation(
                f"Replace the certificate in Secret {secret}",
                "No cert-manager Certificate manages this Secret: issue a new certificate and "
                f"key, replace the Secret{webhook}, then restart the pods that serve it.",
                (
                    kubectl(
                        "create",
                        "secret",
                        "tls",
                        secret,
                        "--cert=tls.crt",
                        "--key=tls.key",
                        "--dry-run=client",
                        "-o",
                        "yaml",
                        namespace=ns,
                    )
                    + " | kubectl apply -f -",
                    *restarts,
                ),
                "medium",
                finding.confidence,
            )
        )
    return steps
