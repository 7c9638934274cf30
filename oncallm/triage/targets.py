"""Resolve the Kubernetes objects an alert is about from its labels.

kube-prometheus-stack alerts name their subject with well-known labels (``pod``,
``deployment``, ``persistentvolumeclaim``...). ``instance`` is special: on
kube-state-metrics alerts it is the exporter's own address, not the subject, so it only
names a Node for node-level scrape jobs (node-exporter, kubelet) or when no other label
names anything. Likewise ``node`` names the subject only when nothing more specific is
named: on a volume alert from the kubelet it is just where the volume is mounted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

# label -> (kind, namespaced); order is the order targets are reported in.
TARGET_LABELS: tuple[tuple[str, str, bool], ...] = (
    ("pod", "Pod", True),
    ("deployment", "Deployment", True),
    ("statefulset", "StatefulSet", True),
    ("daemonset", "DaemonSet", True),
    ("job_name", "Job", True),
    ("cronjob", "CronJob", True),
    ("service", "Service", True),
    ("ingress", "Ingress", True),
    ("persistentvolumeclaim", "PersistentVolumeClaim", True),
    ("resourcequota", "ResourceQuota", True),
    ("horizontalpodautoscaler", "HorizontalPodAutoscaler", True),
    ("node", "Node", False),
)
NODE_SCRAPE_JOBS = ("node-exporter", "kubelet", "node")
# Exporters whose own Service is stamped on every series they expose as `service`
# (service="kube-prometheus-stack-kube-state-metrics"): that label names the scrape
# target, not the subject of the alert.
EXPORTER_JOBS = (
    "kube-state-metrics",
    "node-exporter",
    "kubelet",
    "apiserver",
    "coredns",
    "kube-proxy",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-etcd",
)


class Target(BaseModel):
    """One object the alert points at, and the label that said so."""

    model_config = ConfigDict(frozen=True)

    kind: str  # a Kubernetes kind, or "Workload": a Deployment/StatefulSet/DaemonSet by name
    name: str
    namespace: str | None = None
    container: str | None = None
    label: str
    selector: str | None = None  # "Workload" found by label instead of name (Argo CD apps)

    @model_serializer(mode="wrap")
    def _selector_only_when_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Stored and API form: `selector` appears only on the targets that have one.
        data: dict[str, Any] = handler(self)
        if data.get("selector") is None:
            data.pop("selector", None)
        return data

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


class AlertTargets(BaseModel):
    model_config = ConfigDict(frozen=True)

    cluster: str | None
    namespace: str | None
    targets: tuple[Target, ...]


def _host(instance: str) -> str:
    """``10.0.0.5:9100`` -> ``10.0.0.5``; ``[::1]:9100`` -> ``::1``; ``node-1`` unchanged."""
    if instance.startswith("["):
        return instance[1:].split("]", 1)[0]
    if instance.count(":") == 1:
        return instance.split(":", 1)[0]
    return instance


def _is_exporter_service(service: str, scrape_job: str) -> bool:
    return any(job in scrape_job and job in service for job in EXPORTER_JOBS)


# Scrape jobs of exporters that report on something else (Elasticsearch, Kafka, Argo CD,
# blackbox probes): without honor_labels, their series carry the *exporter's* pod,
# service, container and namespace, and the subject's own labels as exported_*.
_PROXY_EXPORTER = re.compile(r"exporter|argocd-metrics|blackbox", re.IGNORECASE)
_EXPORTER_OWN_LABELS = ("pod", "service", "container", "namespace", "instance")
# Alerts about the exporter itself: then its labels are the subject.
_SCRAPE_HEALTH_ALERTS = re.compile(r"TargetDown|TargetMissing|ExporterDown|ScrapeError", re.I)
# Labels that name a workload by convention, with the label naming its namespace.
WORKLOAD_HINTS: tuple[tuple[str, str | None], ...] = (
    ("destination_workload", "destination_workload_namespace"),  # Istio
    ("workload", "workload_namespace"),
    ("consumergroup", None),  # kafka-exporter: consumer groups are usually named after them
    ("consumer_group", None),
)


def _subject_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels that describe the alert's subject rather than the scrape target."""
    job = labels.get("job", "")
    proxy = (
        _PROXY_EXPORTER.search(job)
        and "kube-state-metrics" not in job
        and not any(node_job in job for node_job in NODE_SCRAPE_JOBS)  # reports on its node
        and not _SCRAPE_HEALTH_ALERTS.search(labels.get("alertname", ""))
    )
    if not proxy:
        return dict(labels)
    subject = {k: v for k, v in labels.items() if k not in _EXPORTER_OWN_LABELS}
    for key in _EXPORTER_OWN_LABELS:
        if labels.get(f"exported_{key}"):
            subject[key] = labels[f"exported_{key}"]
    # Without exported_namespace, the exporter usually runs beside what it watches.
    subject.setdefault("namespace", labels.get("namespace", ""))
    return subject


def _workload_hints(labels: Mapping[str, str], namespace: str | None) -> list[Target]:
    hints = []
    for label, namespace_label in WORKLOAD_HINTS:
        name = labels.get(label)
        if name:
            where = labels.get(namespace_label) if namespace_label else None
            hints.append(Target(kind="Workload", name=name, namespace=where or None, label=label))
    if "argocd" in labels.get("job", "") and labels.get("name") and labels.get("dest_namespace"):
        # Argo CD marks what an Application deploys with app.kubernetes.io/instance=<app>.
        hints.append(
            Target(
                kind="Workload",
                name=labels["name"],
                namespace=labels["dest_namespace"],
                label="name",
                selector=f"app.kubernetes.io/instance={labels['name']}",
            )
        )
    return hints


def resolve_targets(alert_labels: Mapping[str, str]) -> AlertTargets:
    labels = _subject_labels(alert_labels)
    namespace = labels.get("namespace") or None
    container = labels.get("container") or None
    targets: list[Target] = []
    scrape_job = labels.get("job", "")
    for label, kind, namespaced in TARGET_LABELS:
        name = labels.get(label)
        if not name:
            continue
        if label == "service" and _is_exporter_service(name, scrape_job):
            continue
        if namespaced and namespace is None:
            # A namespaced name without a namespace cannot be looked up unambiguously;
            # keep it so the gatherer can search, but say which namespace is unknown.
            targets.append(Target(kind=kind, name=name, label=label))
            continue
        targets.append(
            Target(
                kind=kind,
                name=name,
                namespace=namespace if namespaced else None,
                container=container if kind == "Pod" else None,
                label=label,
            )
        )
    named_objects = [t for t in targets if t.kind != "Node"]
    if named_objects:
        # `node` beside `persistentvolumeclaim` or `pod` says where the subject runs (kubelet
        # metrics carry it); the gatherer reaches that node from the pod. Taking the node as a
        # subject would make every other unhealthy pod on it look relevant.
        targets = named_objects
    instance = labels.get("instance")
    node_job = any(j in scrape_job for j in NODE_SCRAPE_JOBS)
    # With nothing else named, `instance` is the subject — unless it is an exporter that
    # reports on other objects (kube-state-metrics) or the alert is about a namespace.
    lone_instance = not targets and namespace is None and "kube-state-metrics" not in scrape_job
    has_node = any(t.kind == "Node" for t in targets)
    if instance and not has_node and not named_objects and (node_job or lone_instance):
        targets.append(Target(kind="Node", name=_host(instance), label="instance"))
    if not any(t.namespace for t in targets):
        targets += _workload_hints(labels, namespace)
    if not targets and namespace:
        targets.append(Target(kind="Namespace", name=namespace, label="namespace"))
    return AlertTargets(
        cluster=labels.get("cluster") or None, namespace=namespace, targets=tuple(targets)
    )
