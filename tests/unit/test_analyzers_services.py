"""The services analyzer: Services without endpoints, failing dependencies, blocked traffic."""

from __future__ import annotations

import functools
from typing import Any

from oncallm.sources.base import ObjectRef
from oncallm.triage.analyzers import services
from oncallm.triage.context import Dependency, TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.rank import rank
from oncallm.triage.taxonomy import Category
from tests.unit import kubeobjects as k

CHECKOUT = ObjectRef("Deployment", "shop", "checkout")
CHECKOUT_POD = ObjectRef("Pod", "shop", "checkout-7c9d8b6f5-x2x9k")
CHECKOUT_RS = ObjectRef("ReplicaSet", "shop", "checkout-7c9d8b6f5")
POSTGRES_SVC = ObjectRef("Service", "data", "postgres")
POSTGRES_POD = ObjectRef("Pod", "data", "postgres-0")
POSTGRES = ObjectRef("StatefulSet", "data", "postgres")
DB_URL = "postgres://shop:s3cr3t@postgres.data.svc.cluster.local:5432/shop"


def analyze(ctx: TriageContext) -> tuple[list[Finding], EvidenceLedger]:
    ledger = EvidenceLedger("snapshot")
    return list(services.ANALYZER.analyze(ctx, ledger)), ledger


only = k.only


commands = functools.partial(k.commands, services.ANALYZER)


# --- ServiceNoEndpoints ---------------------------------------------------------------------


def _payments(selector: dict[str, str], *, pod_ready: bool = True) -> TriageContext:
    labels = {"app": "payments", "tier": "backend", "pod-template-hash": "5f7b9c"}
    statuses = None if pod_ready else [k.waiting_status("app", "CrashLoopBackOff")]
    return k.context(
        [
            k.service("payments", selector=selector),
            k.endpoint_slice("payments", endpoints=[]),
            k.deployment("payments", labels={"app": "payments", "tier": "backend"}),
            k.pod("payments-5f7b9c-abcde", labels=labels, statuses=statuses,
                  owner=ObjectRef("ReplicaSet", "shop", "payments-5f7b9c")),
            k.replicaset("payments-5f7b9c", "payments", revision=2, replicas=1,
                         labels={"app": "payments", "tier": "backend"}),
        ],
        alert={"alertname": "KubeServiceNoEndpoints", "namespace": "shop",
               "service": "payments"},
        focus=[ObjectRef("Service", "shop", "payments")],
    )  # fmt: skip


def test_a_typo_in_the_selector_blames_the_service_and_names_the_real_labels() -> None:
    ctx = _payments({"app": "paymnets", "tier": "backend"})
    findings, ledger = analyze(ctx)
    finding = only(findings, Category.ServiceNoEndpoints)
    assert finding.resource == ObjectRef("Service", "shop", "payments")
    assert finding.confidence >= 0.85
    assert "app=paymnets,tier=backend" in finding.summary
    assert "app=payments" in finding.summary
    assert all(e in ledger for e in finding.evidence)
    cmds = commands(finding, ctx)
    assert "kubectl -n shop patch service payments --type merge" in cmds
    assert '"app": "payments"' in cmds
    assert "kubectl -n shop get pods -l app=paymnets,tier=backend --show-labels" in cmds


def test_unready_pods_make_the_service_a_symptom_that_blames_them() -> None:
    ctx = _payments({"app": "payments"}, pod_ready=False)
    finding = only(analyze(ctx)[0], Category.ServiceNoEndpoints)
    assert finding.confidence == 0.5
    assert ObjectRef("Pod", "shop", "payments-5f7b9c-abcde") in finding.blames
    assert ObjectRef("Deployment", "shop", "payments") in finding.blames
    assert "CrashLoopBackOff" in finding.summary
    assert "kubectl -n shop describe pod payments-5f7b9c-abcde" in commands(finding, ctx)


def test_a_service_with_ready_endpoints_or_without_selector_is_no_finding() -> None:
    ctx = k.context(
        [
            k.service("api", selector={"app": "api"}),
            k.endpoint_slice("api", endpoints=[("10.42.1.17", True, "api-1")]),
            k.pod("api-1", labels={"app": "api"}),
            k.service("legacy-db", selector=None),  # endpoints maintained by hand
        ]
    )
    assert analyze(ctx)[0] == []


def test_a_selector_nothing_gathered_carries_still_blames_the_service() -> None:
    ctx = k.context(
        [k.service("search", selector={"app": "serch"}), k.endpoint_slice("search", endpoints=[])]
    )
    finding = only(analyze(ctx)[0], Category.ServiceNoEndpoints)
    assert finding.resource == ObjectRef("Service", "shop", "search")
    assert "selector app=serch matches no pod" in finding.summary
    assert finding.confidence == 0.7


def test_pods_relabelled_away_from_the_selector_are_named_with_their_new_labels() -> None:
    new_labels = {"app.kubernetes.io/name": "cart", "app.kubernetes.io/instance": "cart"}
    ctx = k.context(
        [
            k.service("cart", selector={"app": "cart"}),
            k.endpoint_slice("cart", endpoints=[]),
            k.deployment("cart", labels=new_labels),
            k.deployment("checkout"),  # someone else's pods: never named
        ]
    )
    finding = only(analyze(ctx)[0], Category.ServiceNoEndpoints)
    assert finding.confidence == 0.9
    assert "the pods of Deployment shop/cart are labelled" in finding.summary
    assert "app.kubernetes.io/instance=cart,app.kubernetes.io/name=cart" in finding.summary
    cmds = commands(finding, ctx)
    assert '"app": null' in cmds
    assert '"app.kubernetes.io/name": "cart"' in cmds


def test_a_service_selecting_only_finished_pods_is_no_finding() -> None:
    completed = k.terminated_status("app", exit_code=0, reason="Completed")
    done = k.pod("migrate-1", labels={"app": "migrate"}, phase="Succeeded", statuses=[completed])
    ctx = k.context(
        [k.service("migrate", selector={"app": "migrate"}), k.endpoint_slice("migrate"), done]
    )
    assert analyze(ctx)[0] == []


def test_a_workload_scaled_to_zero_is_the_culprit() -> None:
    ctx = k.context(
        [
            k.service("search", selector={"app": "search"}),
            k.endpoint_slice("search", endpoints=[]),
            k.deployment("search", replicas=0),
        ]
    )
    finding = only(analyze(ctx)[0], Category.ServiceNoEndpoints)
    assert finding.resource == ObjectRef("Deployment", "shop", "search")
    assert "scaled to 0" in finding.summary
    assert "kubectl -n shop scale deployment/search --replicas=1" in commands(finding, ctx)


# --- DependencyFailure ------------------------------------------------------------------------


def _checkout(logs: str, dep: Dependency, *extra: dict[str, Any]) -> TriageContext:
    env = [{"name": "DATABASE_URL", "value": DB_URL}]
    return k.context(
        [
            k.pod(CHECKOUT_POD.name, labels={"app": "checkout", "pod-template-hash": "7c9d8b6f5"},
                  owner=CHECKOUT_RS, containers=[k.container("checkout", env=env)],
                  statuses=[k.waiting_status("checkout", restarts=7)]),
            k.replicaset(CHECKOUT_RS.name, "checkout", revision=3, replicas=1, ready=0),
            k.deployment("checkout", replicas=1),
            *extra,
        ],
        alert={"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": CHECKOUT_POD.name},
        focus=[CHECKOUT_POD],
        logs={("shop", CHECKOUT_POD.name, "checkout", True): logs},
        dependencies=[dep],
    )  # fmt: skip


def _db_dep(host: str = "postgres.data.svc.cluster.local", port: int = 5432,
            service: ObjectRef | None = POSTGRES_SVC) -> Dependency:  # fmt: skip
    return Dependency(CHECKOUT_POD, host, port, service, "env DATABASE_URL", DB_URL)


def _postgres(*, ready: bool, pending: bool = False) -> list[dict[str, Any]]:
    status = {"readyReplicas": 1 if ready else 0, "availableReplicas": 1 if ready else 0}
    postgres_pod = k.pod(
        "postgres-0", "data", labels={"app": "postgres"}, owner=POSTGRES, pod_ip="10.42.2.9",
        phase="Pending" if pending else "Running",
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
        if pending else None,
    )  # fmt: skip
    return [
        k.service("postgres", "data", selector={"app": "postgres"}, cluster_ip="10.96.3.4",
                  ports=[{"name": "pg", "port": 5432, "protocol": "TCP", "targetPort": "pg"}]),
        k.endpoint_slice("postgres", "data", port=5432,
                         endpoints=[("10.42.2.9", True, "postgres-0")] if ready else []),
        k.statefulset("postgres", "data", status=status,
                      containers=[k.container("postgres", ports=[{"name": "pg",
                                                                   "containerPort": 5432}])]),
        {**postgres_pod, "spec": {**postgres_pod["spec"], "containers": [
            k.container("postgres", ports=[{"name": "pg", "containerPort": 5432}])]}},
    ]  # fmt: skip


REFUSED = """\
2026-11-26T03:10:02Z INFO starting checkout v1.4.2
2026-11-26T03:10:03Z ERROR db: dial tcp 10.96.3.4:5432: connect: connection refused
2026-11-26T03:10:04Z FATAL cannot start: failed to connect to postgres.data.svc.cluster.local:5432
"""


def test_a_refusing_dependency_without_endpoints_blames_the_pods_behind_it() -> None:
    ctx = _checkout(REFUSED, _db_dep(), *_postgres(ready=False, pending=True))
    findings, _ = analyze(ctx)
    finding = only(findings, Category.DependencyFailure)
    assert finding.subject == CHECKOUT
    assert finding.resource == POSTGRES_SVC
    assert {POSTGRES_SVC, POSTGRES_POD, POSTGRES} <= set(finding.blames)
    assert finding.confidence >= 0.75
    assert "connection refused" in finding.summary
    assert (
        "Service data/postgres has no ready endpoints: postgres-0 Pending/Unschedulable"
        in finding.summary
    )
    log_ids = [e for e in finding.evidence if e.startswith("log:")]
    assert log_ids == [f"log:shop/{CHECKOUT_POD.name}/checkout/previous"]
    assert "kubectl -n data describe pod postgres-0" in commands(finding, ctx)
    # The same context also says the Service has no endpoints, as a symptom of postgres-0.
    symptom = only(findings, Category.ServiceNoEndpoints)
    assert POSTGRES_POD in symptom.blames


def test_a_dependency_the_logs_name_by_cluster_ip_is_called_by_its_name() -> None:
    by_ip = Dependency(CHECKOUT_POD, "10.96.3.4", 5432, POSTGRES_SVC, "log", REFUSED)
    ctx = _checkout(REFUSED, by_ip, *_postgres(ready=False))
    finding = only(analyze(ctx)[0], Category.DependencyFailure)
    assert "cannot reach postgres at 10.96.3.4:5432 (connection refused" in finding.summary


def test_a_deeper_finding_on_the_database_pod_wins_the_ranking() -> None:
    ctx = _checkout(REFUSED, _db_dep(), *_postgres(ready=False, pending=True))
    findings, _ = analyze(ctx)
    pvc = ObjectRef("PersistentVolumeClaim", "data", "data-postgres-0")
    volume = Finding(Category.VolumeFailure, "PVC data-postgres-0 is Pending", POSTGRES_POD,
                     pvc, (), 0.9, "storage")  # fmt: skip
    crash = Finding(Category.CrashLoop, "checkout crashes", CHECKOUT_POD, CHECKOUT, (), 0.7,
                    "pods")  # fmt: skip
    ranking = rank(ctx, [*findings, volume, crash], min_confidence=0.35)
    assert ranking.root is volume


def test_a_service_that_does_not_exist_is_named_as_the_culprit() -> None:
    logs = (
        'psycopg2.OperationalError: could not translate host name "orders-db" to address: '
        "Name or service not known\n"
    )
    dep = Dependency(CHECKOUT_POD, "orders-db", 5432, ObjectRef("Service", "shop", "orders-db"),
                     "log", logs.strip())  # fmt: skip
    ctx = _checkout(logs, dep)
    finding = only(analyze(ctx)[0], Category.DependencyFailure)
    assert finding.resource == ObjectRef("Service", "shop", "orders-db")
    assert "Service shop/orders-db does not exist" in finding.summary
    assert "(could not translate host name; 1 log line)" in finding.summary
    assert 0.6 <= finding.confidence <= 0.75
    assert "kubectl get services -A --field-selector metadata.name=orders-db" in commands(
        finding, ctx
    )


def test_a_host_outside_the_cluster_is_the_culprit_as_named() -> None:
    logs = 'Post "https://api.stripe.com:443/v1/charges": dial tcp 54.187.1.1:443: i/o timeout\n'
    dep = Dependency(CHECKOUT_POD, "api.stripe.com", 443, None, "log", logs.strip())
    ctx = _checkout(logs, dep)
    finding = only(analyze(ctx)[0], Category.DependencyFailure)
    assert finding.resource == ObjectRef("ExternalHost", None, "api.stripe.com:443")
    assert "(i/o timeout; 1 log line)" in finding.summary
    assert "nc -zv -w 5 api.stripe.com 443" in commands(finding, ctx)


def test_the_address_an_external_name_resolved_to_is_that_dependency() -> None:
    rds = "accounts-prod.cluster-c9xk2mq7zt1p.eu-west-1.rds.amazonaws.com"
    logs = "ConnectionRefusedError: [Errno 111] Connect call failed ('10.0.131.17', 5432)\n"
    named = Dependency(CHECKOUT_POD, "accounts-db.shop.svc.cluster.local", None,
                       ObjectRef("Service", "shop", "accounts-db"), "env DB_HOST",
                       "accounts-db.shop.svc.cluster.local")  # fmt: skip
    seen = Dependency(CHECKOUT_POD, "10.0.131.17", 5432, None, "log", logs.strip())
    ctx = k.context(
        [*_checkout(logs, named).objects.values(),
         k.service("accounts-db", type_="ExternalName", external_name=rds)],
        logs={("shop", CHECKOUT_POD.name, "checkout", True): logs}, dependencies=[named, seen],
    )  # fmt: skip
    finding = only(analyze(ctx)[0], Category.DependencyFailure)
    assert finding.resource == ObjectRef("Service", "shop", "accounts-db")
    assert "at 10.0.131.17:5432 (ConnectionRefusedError; 1 log line)" in finding.summary
    assert f"is an ExternalName for {rds}" in finding.summary


def test_an_unknown_cluster_ip_is_not_called_outside_the_cluster() -> None:
    logs = "dial tcp 10.96.77.12:6379: connect: connection refused\n"
    dep = Dependency(CHECKOUT_POD, "10.96.77.12", 6379, None, "log", logs.strip())
    ctx = _checkout(logs, dep, k.service("checkout", cluster_ip="10.96.14.21"))
    finding = only(analyze(ctx)[0], Category.DependencyFailure)
    assert "in the Service IP range but no gathered Service has that address" in finding.summary
    assert finding.confidence == 0.5


def test_credentials_in_the_env_never_reach_the_evidence() -> None:
    ctx = _checkout("starting\nwaiting for database\n", _db_dep(), *_postgres(ready=False))
    findings, ledger = analyze(ctx)
    finding = only(findings, Category.DependencyFailure)
    assert finding.confidence == 0.5  # no failure line: inferred from the env and the Service
    excerpts = " ".join(item.excerpt for item in ledger.items())
    assert "s3cr3t" not in excerpts
    assert "shop:***@postgres" in excerpts


def test_a_finished_client_or_a_silent_healthy_one_is_no_finding() -> None:
    ctx = _checkout("all good\n", _db_dep(), *_postgres(ready=True))
    assert [f for f in analyze(ctx)[0] if f.category is Category.DependencyFailure] == []


# --- NetworkBlocked ---------------------------------------------------------------------------

TIMEOUT = "2026-11-26T03:10:03Z ERROR db ping: dial tcp 10.96.3.4:5432: i/o timeout\n"


def _ingress_policy(*sources: dict[str, Any]) -> dict[str, Any]:
    return k.network_policy(
        "postgres-ingress", "data", pod_selector={"matchLabels": {"app": "postgres"}},
        ingress=[{"from": list(sources), "ports": [{"protocol": "TCP", "port": 5432}]}],
    )  # fmt: skip


def test_a_policy_that_admits_no_path_from_the_client_is_the_culprit() -> None:
    billing_only = _ingress_policy({"podSelector": {"matchLabels": {"app": "billing"}}})
    ctx = _checkout(TIMEOUT, _db_dep(), *_postgres(ready=True), billing_only)
    findings, _ = analyze(ctx)
    blocked = only(findings, Category.NetworkBlocked)
    policy = ObjectRef("NetworkPolicy", "data", "postgres-ingress")
    assert blocked.resource == policy
    assert blocked.confidence >= 0.8
    assert "NetworkPolicy data/postgres-ingress" in blocked.summary
    assert "TCP 5432" in blocked.summary
    assert "app=checkout from namespace shop" in blocked.summary
    assert "object:NetworkPolicy/data/postgres-ingress#spec" in blocked.evidence
    cmds = commands(blocked, ctx)
    assert "kubectl -n data patch networkpolicy postgres-ingress --type json" in cmds
    assert '"kubernetes.io/metadata.name":"shop"' in cmds
    assert "--labels=app=checkout" in cmds
    # The dependency symptom blames the policy, so the ranking names the policy.
    symptom = only(findings, Category.DependencyFailure)
    assert policy in symptom.blames
    ranking = rank(ctx, findings, min_confidence=0.35)
    assert ranking.root is blocked


def test_a_policy_that_admits_the_client_namespace_is_not_blamed() -> None:
    from_shop = _ingress_policy(
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}}
    )
    ctx = _checkout(TIMEOUT, _db_dep(), *_postgres(ready=True), from_shop)
    findings, _ = analyze(ctx)
    assert not [f for f in findings if f.category is Category.NetworkBlocked]
    assert only(findings, Category.DependencyFailure).confidence <= 0.5


def test_a_namespace_label_we_did_not_read_is_not_held_against_the_client() -> None:
    from_team = _ingress_policy({"namespaceSelector": {"matchLabels": {"team": "shop"}}})
    base = [*_postgres(ready=True), from_team]
    unread = _checkout(TIMEOUT, _db_dep(), *base)
    assert not [f for f in analyze(unread)[0] if f.category is Category.NetworkBlocked]
    # Read, and without the label: the policy does drop the client.
    known = _checkout(TIMEOUT, _db_dep(), *base, k.namespace("shop"), k.namespace("data"))
    blocked = only(analyze(known)[0], Category.NetworkBlocked)
    assert blocked.resource == ObjectRef("NetworkPolicy", "data", "postgres-ingress")


def test_an_egress_policy_without_dns_blocks_lookups() -> None:
    logs = (
        "dial tcp: lookup postgres.data.svc.cluster.local on 10.96.0.10:53: "
        "read udp 10.42.1.17:41234->10.96.0.10:53: i/o timeout\n"
    )
    egress = k.network_policy(
        "checkout-egress", pod_selector={"matchLabels": {"app": "checkout"}},
        policy_types=["Egress"],
        egress=[{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels":
                                                                 {"app": "postgres"}}}],
                 "ports": [{"protocol": "TCP", "port": 5432}]}],
    )  # fmt: skip
    ctx = _checkout(logs, _db_dep(), *_postgres(ready=True), egress)
    findings, _ = analyze(ctx)
    blocked = only(findings, Category.NetworkBlocked)
    assert blocked.resource == ObjectRef("NetworkPolicy", "shop", "checkout-egress")
    assert "UDP 53" in blocked.summary
    assert blocked.facts["direction"] == "Egress"
