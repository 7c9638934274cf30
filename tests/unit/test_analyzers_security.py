"""The security analyzer: RBAC denials, admission denials, and certificate errors."""

from __future__ import annotations

import functools
from typing import Any

from oncallm.sources.base import ObjectRef
from oncallm.triage.analyzers import security
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.rank import rank
from oncallm.triage.taxonomy import Category
from tests.unit import kubeobjects as k

OPERATOR = ObjectRef("Deployment", "shop", "operator")
OPERATOR_POD = ObjectRef("Pod", "shop", "operator-6f7d8c9b5-k2l3m")
OPERATOR_RS = ObjectRef("ReplicaSet", "shop", "operator-6f7d8c9b5")


def analyze(ctx: TriageContext) -> list[Finding]:
    return list(security.ANALYZER.analyze(ctx, EvidenceLedger("snapshot")))


commands = functools.partial(k.commands, security.ANALYZER)


only = k.only


def _operator(logs: str, *, previous: bool = True, **pod: Any) -> TriageContext:
    return k.context(
        [
            k.pod(OPERATOR_POD.name, owner=OPERATOR_RS, labels={"app": "operator"},
                  service_account="operator", containers=[k.container("manager")],
                  statuses=[k.waiting_status("manager", restarts=4)], **pod),
            k.replicaset(OPERATOR_RS.name, "operator", revision=2, replicas=1, ready=0),
            k.deployment("operator", replicas=1),
        ],
        alert={"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": OPERATOR_POD.name},
        focus=[OPERATOR_POD],
        logs={("shop", OPERATOR_POD.name, "manager", previous): logs},
    )  # fmt: skip


# --- PermissionDenied -------------------------------------------------------------------------

RBAC_LOG = (
    "E1126 03:11:02.114 reflector.go:147 failed to list *v1.ConfigMap: configmaps is "
    'forbidden: User "system:serviceaccount:shop:operator" cannot list resource "configmaps" '
    'in API group "" in the namespace "shop"\n'
    '{"level":"error","msg":"leader election lost","error":"leases.coordination.k8s.io '
    '\\"operator-lock\\" is forbidden: User \\"system:serviceaccount:shop:operator\\" cannot '
    'get resource \\"leases\\" in API group \\"coordination.k8s.io\\" in the namespace '
    '\\"shop\\""}\n'
    'E1126 03:11:03.001 nodes is forbidden: User "system:serviceaccount:shop:operator" cannot '
    'watch resource "nodes" in API group "" at the cluster scope\n'
)


def test_rbac_denials_blame_the_service_account_with_exactly_what_was_denied() -> None:
    ctx = _operator(RBAC_LOG)
    finding = only(analyze(ctx), Category.PermissionDenied)
    assert finding.resource == ObjectRef("ServiceAccount", "shop", "operator")
    assert finding.subject == OPERATOR_POD
    assert finding.confidence >= 0.9
    assert "cannot list configmaps (core API group) in namespace shop" in finding.summary
    assert "cannot get leases (coordination.k8s.io API group)" in finding.summary
    assert "cannot watch nodes (core API group) at the cluster scope" in finding.summary
    assert f"log:shop/{OPERATOR_POD.name}/manager/previous" in finding.evidence
    cmds = commands(finding, ctx)
    assert (
        "kubectl -n shop create role operator-configmaps --verb=list --resource=configmaps" in cmds
    )
    assert "--resource=leases.coordination.k8s.io" in cmds
    binding = "--role=operator-configmaps --serviceaccount=shop:operator"
    assert f"kubectl -n shop create rolebinding operator-configmaps {binding}" in cmds
    assert "kubectl create clusterrole operator-nodes --verb=watch --resource=nodes" in cmds
    assert (
        "kubectl -n shop auth can-i list configmaps --as=system:serviceaccount:shop:operator"
        in cmds
    )


def test_the_denial_outranks_the_crash_it_causes() -> None:
    ctx = _operator(RBAC_LOG)
    denial = only(analyze(ctx), Category.PermissionDenied)
    crash = Finding(Category.CrashLoop, "operator exits 1", OPERATOR_POD, OPERATOR, (), 0.85,
                    "pods")  # fmt: skip
    assert rank(ctx, [crash, denial], min_confidence=0.35).root is denial
    assert security.complaint(RBAC_LOG.splitlines()) == "rbac"


def test_a_forbidden_user_that_is_not_a_service_account_is_not_reported() -> None:
    log = 'pods is forbidden: User "jane@example.com" cannot list resource "pods" in API group ""'
    assert analyze(_operator(log + "\n")) == []


# --- admission denials ------------------------------------------------------------------------

PSA = (
    'Error creating: pods "operator-6f7d8c9b5-abcde" is forbidden: violates PodSecurity '
    '"restricted:latest": allowPrivilegeEscalation != false (container "manager" must set '
    "securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "
    '"manager" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod '
    'or container "manager" must set securityContext.runAsNonRoot=true)'
)


def _failed_create(message: str) -> TriageContext:
    return k.context(
        [k.replicaset(OPERATOR_RS.name, "operator", revision=2, replicas=1, ready=0),
         k.deployment("operator", replicas=1)],
        events=[k.event(OPERATOR_RS, "FailedCreate", message, count=14,
                        component="replicaset-controller")],
    )  # fmt: skip


def test_pod_security_denials_are_a_config_error_on_the_workload_not_rbac() -> None:
    ctx = _failed_create(PSA)
    findings = analyze(ctx)
    assert not [f for f in findings if f.category is Category.PermissionDenied]
    finding = only(findings, Category.ConfigError)
    assert finding.subject == OPERATOR_RS
    assert finding.resource == OPERATOR
    assert 'PodSecurity "restricted:latest"' in finding.summary
    assert "securityContext.runAsNonRoot=true" in finding.summary
    assert "(14 times)" in finding.summary
    cmds = commands(finding, ctx)
    assert "kubectl get namespace shop --show-labels" in cmds
    assert "pod-security.kubernetes.io/enforce=restricted" in cmds


def test_a_missing_service_account_is_the_culprit_and_quota_is_left_alone() -> None:
    missing = (
        'Error creating: pods "operator-6f7d8c9b5-" is forbidden: error looking up service '
        'account shop/operator: serviceaccount "operator" not found'
    )
    finding = only(analyze(_failed_create(missing)), Category.ConfigError)
    assert finding.resource == ObjectRef("ServiceAccount", "shop", "operator")
    quota = (
        'Error creating: pods "operator-6f7d8c9b5-x" is forbidden: exceeded quota: compute, '
        "requested: limits.memory=512Mi, used: limits.memory=4Gi, limited: limits.memory=4Gi"
    )
    assert analyze(_failed_create(quota)) == []


# --- CertificateError -------------------------------------------------------------------------

TLS_VOLUME = {"name": "tls", "secret": {"secretName": "operator-tls", "defaultMode": 420}}
X509 = (
    '2026-11-26T03:10:00Z ERROR webhook: Post "https://operator.shop.svc:443/validate": '
    "x509: certificate has expired or is not yet valid: current time 2026-11-26T03:10:00Z "
    "is after 2026-11-20T00:00:00Z\n"
)


def test_an_expired_certificate_names_the_mounted_tls_secret_and_its_not_after() -> None:
    ctx = _operator(X509, previous=False, volumes=[TLS_VOLUME])
    tls = k.secret("operator-tls", keys=("tls.crt", "tls.key", "ca.crt"),
                   type_="kubernetes.io/tls")  # fmt: skip
    cert = k.certificate("operator", secret_name="operator-tls", ready=False,
                         not_after="2026-11-20T00:00:00Z", reason="Expired",
                         message="Certificate expired on 2026-11-20")  # fmt: skip
    ctx = k.context(
        [*ctx.objects.values(), tls, cert],
        focus=[OPERATOR_POD],
        logs={("shop", OPERATOR_POD.name, "manager", False): X509},
    )
    findings = analyze(ctx)
    finding = only(findings, Category.CertificateError)  # the Certificate is folded in
    assert finding.resource == ObjectRef("Secret", "shop", "operator-tls")
    assert finding.confidence >= 0.9
    assert "certificate has expired" in finding.summary
    assert "TLS Secret shop/operator-tls" in finding.summary
    assert "notAfter 2026-11-20T00:00:00Z (expired)" in finding.summary
    assert finding.facts["not_after"] == "2026-11-20T00:00:00Z"
    cmds = commands(finding, ctx)
    assert "openssl x509 -noout -subject -issuer -dates" in cmds
    assert "cmctl renew operator -n shop" in cmds
    assert "kubectl -n shop rollout restart deployment/operator" in cmds


def test_without_a_tls_secret_the_workload_is_named_with_less_confidence() -> None:
    log = "requests.exceptions.SSLError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
    log += "failed: self signed certificate in certificate chain\n"
    finding = only(analyze(_operator(log)), Category.CertificateError)
    assert finding.resource == OPERATOR
    assert finding.confidence == 0.6
    assert "unknown authority" in finding.summary


def test_an_expired_certificate_alone_is_a_finding_and_a_valid_one_is_not() -> None:
    expired = k.certificate("shop-web", secret_name="shop-web-tls", ready=False,
                            not_after="2026-11-25T00:00:00Z", reason="Expired")  # fmt: skip
    valid = k.certificate("api", secret_name="api-tls", not_after="2027-02-01T00:00:00Z")
    finding = only(analyze(k.context([expired, valid])), Category.CertificateError)
    assert finding.resource == ObjectRef("Certificate", "shop", "shop-web")
    assert "expired at 2026-11-25T00:00:00Z" in finding.summary


def _ledger_server() -> list[dict[str, Any]]:
    owner = ObjectRef("ReplicaSet", "ledger", "ledger-664bc55877")
    return [
        k.service("ledger", "ledger", selector={"app": "ledger"}, cluster_ip="10.96.40.2"),
        k.pod("ledger-664bc55877-xgvs5", "ledger", owner=owner, labels={"app": "ledger"},
              volumes=[{"name": "tls", "secret": {"secretName": "ledger-tls"}}]),
        k.secret("ledger-tls", "ledger", keys=("tls.crt", "tls.key"), type_="kubernetes.io/tls"),
        k.replicaset("ledger-664bc55877", "ledger", "ledger", revision=3, replicas=1),
        k.deployment("ledger", "ledger", replicas=1),
    ]  # fmt: skip


def test_a_client_rejecting_its_only_dependencys_certificate_names_the_served_secret() -> None:
    from oncallm.triage.context import Dependency

    grpc = (
        '{"level":"error","msg":"ledger PostEntries failed","error":"rpc error: code = '
        'Unavailable desc = connection error: desc = \\"transport: authentication handshake '
        "failed: tls: failed to verify certificate: x509: certificate has expired or is not "
        'yet valid: current time 2026-11-26T03:10:00Z is after 2026-11-26T02:12:44Z\\""}\n'
    )
    base = _operator(grpc, previous=False)
    dep = Dependency(OPERATOR_POD, "ledger.ledger.svc", 9090,
                     ObjectRef("Service", "ledger", "ledger"), "env LEDGER_ADDR",
                     "ledger.ledger.svc:9090")  # fmt: skip
    ctx = k.context(
        [*base.objects.values(), *_ledger_server()], focus=[OPERATOR_POD], dependencies=[dep],
        logs={("shop", OPERATOR_POD.name, "manager", False): grpc},
    )  # fmt: skip
    finding = only(analyze(ctx), Category.CertificateError)
    assert finding.resource == ObjectRef("Secret", "ledger", "ledger-tls")
    assert "the Service it calls serves TLS Secret ledger/ledger-tls" in finding.summary
    assert "— tls: failed to verify certificate: x509: certificate has expired" in finding.summary
    # The pods serving the certificate restart, not the client that rejects it.
    assert "kubectl -n ledger rollout restart deployment/ledger" in commands(finding, ctx)


def test_a_webhook_whose_certificate_expired_blocks_every_pod_creation() -> None:
    message = (
        'Error creating: Internal error occurred: failed calling webhook "pod-defaults.acme.io": '
        'failed to call webhook: Post "https://ledger.ledger.svc:443/mutate?timeout=5s": tls: '
        "failed to verify certificate: x509: certificate has expired or is not yet valid: "
        "current time 2026-11-26T03:10:00Z is after 2026-11-25T21:14:03Z"
    )
    ctx = k.context(
        [*_failed_create(message).objects.values(), *_ledger_server()],
        events=[k.event(OPERATOR_RS, "FailedCreate", message, count=24)],
    )
    findings = analyze(ctx)
    assert not [f for f in findings if f.category is Category.ConfigError]
    finding = only(findings, Category.CertificateError)
    assert finding.subject == OPERATOR_RS
    assert finding.resource == ObjectRef("Secret", "ledger", "ledger-tls")
    assert 'admission webhook "pod-defaults.acme.io" at ledger.ledger.svc:443' in finding.summary
    assert "(24 times)" in finding.summary
    assert "caBundle" in " ".join(r.detail for r in security.ANALYZER.recommend(finding, ctx))


def test_errors_only_in_a_previous_instance_of_a_now_ready_pod_are_history() -> None:
    pod = k.pod(OPERATOR_POD.name, owner=OPERATOR_RS, labels={"app": "operator"},
                containers=[k.container("manager")], volumes=[TLS_VOLUME],
                statuses=[k.running_status("manager", restarts=1)])  # fmt: skip
    tls = k.secret("operator-tls", keys=("tls.crt", "tls.key"), type_="kubernetes.io/tls")
    ctx = k.context(
        [pod, tls], logs={("shop", OPERATOR_POD.name, "manager", True): RBAC_LOG + X509}
    )
    findings = analyze(ctx)
    assert not [f for f in findings if f.category is Category.CertificateError]
    assert only(findings, Category.PermissionDenied).confidence == 0.5
