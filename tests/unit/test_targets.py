"""Target resolution from alert labels, as kube-prometheus-stack alerts carry them."""

from __future__ import annotations

from oncallm.triage.targets import resolve_targets

KSM = {"job": "kube-state-metrics", "instance": "10.42.0.17:8080"}


def _kinds(labels: dict[str, str]) -> list[tuple[str, str | None, str]]:
    return [(t.kind, t.namespace, t.name) for t in resolve_targets(labels).targets]


def test_pod_alert_names_the_pod_and_container_not_the_exporter() -> None:
    labels = {**KSM, "namespace": "shop", "pod": "api-1", "container": "api", "cluster": "eu"}
    resolved = resolve_targets(labels)
    assert resolved.cluster == "eu"
    assert [(t.kind, t.namespace, t.name, t.container) for t in resolved.targets] == [
        ("Pod", "shop", "api-1", "api")
    ]


def test_workload_labels_each_become_targets() -> None:
    labels = {
        **KSM,
        "namespace": "data",
        "statefulset": "postgres",
        "service": "postgres",
        "persistentvolumeclaim": "data-postgres-0",
        "horizontalpodautoscaler": "pg",
        "job_name": "backup-1",
        "cronjob": "backup",
        "daemonset": "agent",
        "deployment": "web",
    }
    assert _kinds(labels) == [
        ("Deployment", "data", "web"),
        ("StatefulSet", "data", "postgres"),
        ("DaemonSet", "data", "agent"),
        ("Job", "data", "backup-1"),
        ("CronJob", "data", "backup"),
        ("Service", "data", "postgres"),
        ("PersistentVolumeClaim", "data", "data-postgres-0"),
        ("HorizontalPodAutoscaler", "data", "pg"),
    ]


def test_node_exporter_instance_names_the_node() -> None:
    labels = {
        "job": "node-exporter",
        "instance": "node-a:9100",
        "alertname": "NodeFilesystemAlmostOutOfSpace",
    }
    assert _kinds(labels) == [("Node", None, "node-a")]


def test_node_label_wins_over_instance_and_is_cluster_scoped() -> None:
    labels = {"job": "kubelet", "instance": "10.0.0.5:10250", "node": "node-b", "namespace": "x"}
    assert _kinds(labels) == [("Node", None, "node-b")]


def test_ipv6_instance_host() -> None:
    assert _kinds({"instance": "[fd00::5]:9100"}) == [("Node", None, "fd00::5")]


def test_namespace_only_alert_targets_the_namespace() -> None:
    labels = {**KSM, "namespace": "payments", "resource": "cpu"}
    assert _kinds(labels) == [("Namespace", None, "payments")]


def test_namespaced_name_without_namespace_is_kept_unscoped() -> None:
    assert _kinds({"deployment": "web"}) == [("Deployment", None, "web")]


def test_nothing_to_resolve() -> None:
    assert resolve_targets({"alertname": "Watchdog"}).targets == ()


def test_node_beside_a_volume_is_where_it_runs_not_the_subject() -> None:
    labels = {
        "job": "kubelet",
        "instance": "10.0.0.5:10250",
        "node": "node-b",
        "namespace": "data",
        "persistentvolumeclaim": "postgres-data-postgres-0",
    }
    assert _kinds(labels) == [("PersistentVolumeClaim", "data", "postgres-data-postgres-0")]


def test_the_exporters_own_service_label_is_not_the_subject() -> None:
    labels = {
        "alertname": "KubeNodeNotReady",
        "job": "kube-state-metrics",
        "service": "kube-prometheus-stack-kube-state-metrics",
        "instance": "10.0.45.187:8080",
        "node": "ip-10-0-47-198.eu-west-1.compute.internal",
    }
    assert _kinds(labels) == [("Node", None, "ip-10-0-47-198.eu-west-1.compute.internal")]
    app = {"job": "checkout", "service": "checkout", "namespace": "shop"}
    assert _kinds(app) == [("Service", "shop", "checkout")]
    ingress = {"ingress": "storefront-web", "namespace": "storefront"}
    assert _kinds(ingress) == [("Ingress", "storefront", "storefront-web")]


def test_an_exporters_own_pod_is_not_the_subject_of_what_it_reports() -> None:
    labels = {
        "alertname": "ElasticsearchClusterYellow",
        "job": "es-exporter-prometheus-elasticsearch-exporter",
        "pod": "es-exporter-prometheus-elasticsearch-exporter-8dd89b56c-vf27q",
        "service": "es-exporter-prometheus-elasticsearch-exporter",
        "container": "exporter",
        "namespace": "logging",
        "instance": "10.0.34.34:9108",
    }
    assert _kinds(labels) == [("Namespace", None, "logging")]
    exported = {**labels, "exported_namespace": "search", "exported_pod": "es-data-2"}
    assert _kinds(exported) == [("Pod", "search", "es-data-2")]
    down = {**labels, "alertname": "TargetDown"}
    assert ("Pod", "logging", labels["pod"]) in _kinds(down)


def test_workload_labels_of_meshes_and_exporters_name_workloads() -> None:
    istio = {"destination_workload": "quote-service", "destination_workload_namespace": "pricing"}
    assert _kinds(istio) == [("Workload", "pricing", "quote-service")]
    kafka = {"consumergroup": "order-indexer", "namespace": "observability"}
    assert _kinds(kafka) == [("Workload", None, "order-indexer")]
    argo = {"job": "argocd-metrics", "name": "ledger-api", "dest_namespace": "ledger",
            "namespace": "argocd", "pod": "argocd-application-controller-0"}  # fmt: skip
    targets = resolve_targets(argo).targets
    assert [(t.kind, t.namespace, t.selector) for t in targets] == [
        ("Workload", "ledger", "app.kubernetes.io/instance=ledger-api")
    ]
