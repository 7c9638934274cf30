"""The Kubernetes kinds OncallM reads, and where each lives in the REST API.

One table serves the live client, the snapshot index and the test API fake, so the three
agree on which kinds are namespaced and how their URLs are spelled.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindInfo:
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def collection_path(self, namespace: str | None) -> str:
        """REST path of the collection, e.g. ``/apis/apps/v1/namespaces/shop/deployments``."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


KINDS: dict[str, KindInfo] = {
    info.kind: info
    for info in (
        KindInfo("Pod", "", "v1", "pods", True),
        KindInfo("Service", "", "v1", "services", True),
        KindInfo("Endpoints", "", "v1", "endpoints", True),
        KindInfo("Node", "", "v1", "nodes", False),
        KindInfo("Namespace", "", "v1", "namespaces", False),
        KindInfo("ConfigMap", "", "v1", "configmaps", True),
        KindInfo("Secret", "", "v1", "secrets", True),
        KindInfo("ServiceAccount", "", "v1", "serviceaccounts", True),
        KindInfo("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims", True),
        KindInfo("PersistentVolume", "", "v1", "persistentvolumes", False),
        KindInfo("ResourceQuota", "", "v1", "resourcequotas", True),
        KindInfo("LimitRange", "", "v1", "limitranges", True),
        KindInfo("Event", "", "v1", "events", True),
        KindInfo("Deployment", "apps", "v1", "deployments", True),
        KindInfo("ReplicaSet", "apps", "v1", "replicasets", True),
        KindInfo("StatefulSet", "apps", "v1", "statefulsets", True),
        KindInfo("DaemonSet", "apps", "v1", "daemonsets", True),
        KindInfo("Job", "batch", "v1", "jobs", True),
        KindInfo("CronJob", "batch", "v1", "cronjobs", True),
        KindInfo("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers", True),
        KindInfo("NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies", True),
        KindInfo("Ingress", "networking.k8s.io", "v1", "ingresses", True),
        KindInfo("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices", True),
        KindInfo("StorageClass", "storage.k8s.io", "v1", "storageclasses", False),
        KindInfo("Role", "rbac.authorization.k8s.io", "v1", "roles", True),
        KindInfo("RoleBinding", "rbac.authorization.k8s.io", "v1", "rolebindings", True),
        KindInfo("ClusterRole", "rbac.authorization.k8s.io", "v1", "clusterroles", False),
        KindInfo(
            "ClusterRoleBinding", "rbac.authorization.k8s.io", "v1", "clusterrolebindings", False
        ),
        KindInfo("Certificate", "cert-manager.io", "v1", "certificates", True),
        KindInfo("APIService", "apiregistration.k8s.io", "v1", "apiservices", False),
    )
}


def kind_info(kind: str) -> KindInfo:
    try:
        return KINDS[kind]
    except KeyError:
        raise KeyError(f"OncallM does not read objects of kind {kind!r}") from None
