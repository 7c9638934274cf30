"""Realistic Kubernetes objects, shaped as ``kubectl get -o json`` prints them, for the
analyzer tests — and a one-call way to build a :class:`TriageContext` around them.

Builders take only what a test varies; everything else is filled in the way a real
cluster fills it (uids, timestamps, owner references, pod-template-hash labels).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import Analyzer
from oncallm.triage.builder import ContextBuilder
from oncallm.triage.context import AlertInput, Dependency, TriageContext
from oncallm.triage.findings import Finding
from oncallm.triage.targets import resolve_targets
from oncallm.triage.taxonomy import Category

NOW = datetime(2026, 11, 26, 3, 15, tzinfo=UTC)
ALERT_START = NOW - timedelta(minutes=5)


def ts(minutes_ago: float = 0) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def metadata(
    name: str,
    namespace: str | None = "shop",
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    owner: ObjectRef | None = None,
    created_minutes_ago: float = 600,
    **extra: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{name}",
        "resourceVersion": "4711",
        "creationTimestamp": ts(created_minutes_ago),
    }
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner is not None:
        api = {"ReplicaSet": "apps/v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1",
               "DaemonSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1"}  # fmt: skip
        meta["ownerReferences"] = [
            {
                "apiVersion": api.get(owner.kind, "v1"),
                "kind": owner.kind,
                "name": owner.name,
                "uid": f"uid-{owner.name}",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    meta.update(extra)
    return meta


def container(
    name: str = "app",
    image: str = "registry.example.com/shop/app:1.4.2",
    *,
    limits: Mapping[str, str] | None = None,
    requests: Mapping[str, str] | None = None,
    env: Sequence[Mapping[str, Any]] = (),
    ports: Sequence[Mapping[str, Any]] = (),
    volume_mounts: Sequence[Mapping[str, Any]] = (),
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if limits:
        spec["resources"]["limits"] = dict(limits)
    if requests:
        spec["resources"]["requests"] = dict(requests)
    if env:
        spec["env"] = [dict(e) for e in env]
    if ports:
        spec["ports"] = [dict(p) for p in ports]
    if volume_mounts:
        spec["volumeMounts"] = [dict(v) for v in volume_mounts]
    spec.update(extra)
    return spec


def running_status(name: str = "app", *, ready: bool = True, restarts: int = 0,
                   last_terminated: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    status: dict[str, Any] = {
        "name": name,
        "ready": ready,
        "started": True,
        "restartCount": restarts,
        "image": "registry.example.com/shop/app:1.4.2",
        "imageID": "registry.example.com/shop/app@sha256:9f2c",
        "containerID": f"containerd://{name}0a1b2c",
        "state": {"running": {"startedAt": ts(30)}},
        "lastState": {},
    }
    if last_terminated:
        status["lastState"] = {"terminated": dict(last_terminated)}
    return status


def waiting_status(name: str = "app", reason: str = "CrashLoopBackOff", *, restarts: int = 5,
                   message: str = "", last_terminated: Mapping[str, Any] | None = None,
                   ) -> dict[str, Any]:  # fmt: skip
    status = running_status(name, ready=False, restarts=restarts, last_terminated=last_terminated)
    status["state"] = {"waiting": {"reason": reason, "message": message}}
    status["started"] = False
    return status


def terminated_status(name: str = "app", *, exit_code: int = 1, reason: str = "Error",
                      restarts: int = 0, message: str | None = None) -> dict[str, Any]:  # fmt: skip
    status = running_status(name, ready=False, restarts=restarts)
    state: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": ts(12),
        "finishedAt": ts(10),
        "containerID": f"containerd://{name}0a1b2c",
    }
    if message:
        state["message"] = message
    status["state"] = {"terminated": state}
    status["started"] = False
    return status


def pod(
    name: str,
    namespace: str = "shop",
    *,
    labels: Mapping[str, str] | None = None,
    owner: ObjectRef | None = None,
    containers: Sequence[Mapping[str, Any]] | None = None,
    statuses: Sequence[Mapping[str, Any]] | None = None,
    phase: str = "Running",
    ready: bool | None = None,
    volumes: Sequence[Mapping[str, Any]] = (),
    node: str | None = "node-a",
    pod_ip: str | None = "10.42.1.17",
    conditions: Sequence[Mapping[str, Any]] | None = None,
    service_account: str = "default",
    restart_policy: str = "Always",
) -> KubeObject:
    containers = list(containers or [container()])
    if statuses is None:
        statuses = [running_status(str(c["name"])) for c in containers]
    all_ready = all(s.get("ready") for s in statuses) if ready is None else ready
    if conditions is None:
        conditions = [
            {"type": "Initialized", "status": "True", "lastTransitionTime": ts(30)},
            {"type": "Ready", "status": "True" if all_ready else "False",
             "lastTransitionTime": ts(20)},
            {"type": "ContainersReady", "status": "True" if all_ready else "False",
             "lastTransitionTime": ts(20)},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(30)},
        ]  # fmt: skip
    spec: dict[str, Any] = {
        "containers": containers,
        "restartPolicy": restart_policy,
        "serviceAccountName": service_account,
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
    }
    if volumes:
        spec["volumes"] = [dict(v) for v in volumes]
    if node:
        spec["nodeName"] = node
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [dict(c) for c in conditions],
        "containerStatuses": [dict(s) for s in statuses],
        "qosClass": "Burstable",
        "startTime": ts(30),
    }
    if pod_ip and phase != "Pending":
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if phase == "Pending":
        status.pop("containerStatuses")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata(name, namespace, labels=labels, owner=owner, created_minutes_ago=30),
        "spec": spec,
        "status": status,
    }


def template(labels: Mapping[str, str], containers: Sequence[Mapping[str, Any]] | None = None,
             **pod_spec: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "metadata": {"labels": dict(labels)},
        "spec": {"containers": list(containers or [container()]), "restartPolicy": "Always",
                 **pod_spec},
    }  # fmt: skip


def deployment(
    name: str,
    namespace: str = "shop",
    *,
    labels: Mapping[str, str] | None = None,
    replicas: int = 3,
    containers: Sequence[Mapping[str, Any]] | None = None,
    status: Mapping[str, Any] | None = None,
    conditions: Sequence[Mapping[str, Any]] | None = None,
    generation: int = 4,
    observed_generation: int | None = None,
    paused: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> KubeObject:
    labels = dict(labels or {"app": name})
    if conditions is None:
        conditions = [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability.", "lastUpdateTime": ts(60),
             "lastTransitionTime": ts(60)},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": f'ReplicaSet "{name}-7d9f8b6c5" has successfully progressed.',
             "lastUpdateTime": ts(60), "lastTransitionTime": ts(600)},
        ]  # fmt: skip
    full_status: dict[str, Any] = {
        "observedGeneration": generation if observed_generation is None else observed_generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [dict(c) for c in conditions],
    }
    full_status.update(status or {})
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": template(labels, containers),
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "progressDeadlineSeconds": 600,
        "revisionHistoryLimit": 10,
    }  # fmt: skip
    if paused:
        spec["paused"] = True
    anns = {"deployment.kubernetes.io/revision": "4", **(annotations or {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, namespace, labels=labels, annotations=anns,
                             generation=generation),
        "spec": spec,
        "status": full_status,
    }  # fmt: skip


def replicaset(
    name: str,
    deployment_name: str,
    namespace: str = "shop",
    *,
    revision: int,
    replicas: int,
    ready: int | None = None,
    labels: Mapping[str, str] | None = None,
    containers: Sequence[Mapping[str, Any]] | None = None,
    conditions: Sequence[Mapping[str, Any]] = (),
) -> KubeObject:
    pod_hash = name.rsplit("-", 1)[-1]
    labels = {**(labels or {"app": deployment_name}), "pod-template-hash": pod_hash}
    ready = replicas if ready is None else ready
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": metadata(
            name, namespace, labels=labels,
            annotations={"deployment.kubernetes.io/revision": str(revision),
                         "deployment.kubernetes.io/desired-replicas": "3"},
            owner=ObjectRef("Deployment", namespace, deployment_name),
        ),
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": template(labels, containers)},
        "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready,
                   "fullyLabeledReplicas": replicas, "observedGeneration": 1,
                   "conditions": [dict(c) for c in conditions]},
    }  # fmt: skip


def statefulset(
    name: str, namespace: str = "shop", *, replicas: int = 1,
    labels: Mapping[str, str] | None = None, status: Mapping[str, Any] | None = None,
    containers: Sequence[Mapping[str, Any]] | None = None, generation: int = 2,
    update_strategy: Mapping[str, Any] | None = None,
) -> KubeObject:  # fmt: skip
    labels = dict(labels or {"app": name})
    full_status: dict[str, Any] = {
        "observedGeneration": generation, "replicas": replicas, "readyReplicas": replicas,
        "currentReplicas": replicas, "updatedReplicas": replicas,
        "currentRevision": f"{name}-5d4c7b9f8", "updateRevision": f"{name}-5d4c7b9f8",
        "availableReplicas": replicas,
    }  # fmt: skip
    full_status.update(status or {})
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(name, namespace, labels=labels, generation=generation),
        "spec": {
            "replicas": replicas, "serviceName": name, "selector": {"matchLabels": labels},
            "template": template(labels, containers),
            "updateStrategy": dict(update_strategy or {"type": "RollingUpdate",
                                                       "rollingUpdate": {"partition": 0}}),
        },
        "status": full_status,
    }  # fmt: skip


def service(
    name: str,
    namespace: str = "shop",
    *,
    selector: Mapping[str, str] | None = None,
    ports: Sequence[Mapping[str, Any]] | None = None,
    cluster_ip: str = "10.96.14.21",
    type_: str = "ClusterIP",
    external_name: str | None = None,
) -> KubeObject:
    spec: dict[str, Any] = {"type": type_}
    if type_ == "ExternalName":
        spec["externalName"] = external_name
    else:
        spec.update(clusterIP=cluster_ip, clusterIPs=[cluster_ip], sessionAffinity="None")
        spec["ports"] = [
            dict(p)
            for p in (
                ports or [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
            )
        ]
    if selector is not None:
        spec["selector"] = dict(selector)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": metadata(name, namespace, labels={"app": name}), "spec": spec}  # fmt: skip


def endpoint_slice(service_name: str, namespace: str = "shop", *,
                   endpoints: Sequence[tuple[str, bool, str | None]] = (),
                   port: int = 8080) -> KubeObject:  # fmt: skip
    """``endpoints``: (ip, ready, pod name) per address."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": metadata(
            f"{service_name}-x7k2p", namespace,
            labels={"kubernetes.io/service-name": service_name,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
            owner=ObjectRef("Service", namespace, service_name),
        ),
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": ok, "serving": ok, "terminating": False},
             **({"targetRef": {"kind": "Pod", "namespace": namespace, "name": pod_name}}
                if pod_name else {})}
            for ip, ok, pod_name in endpoints
        ],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }  # fmt: skip


def network_policy(name: str, namespace: str = "shop", *, pod_selector: Mapping[str, Any],
                   policy_types: Sequence[str] | None = ("Ingress",),
                   ingress: Sequence[Mapping[str, Any]] | None = None,
                   egress: Sequence[Mapping[str, Any]] | None = None) -> KubeObject:  # fmt: skip
    spec: dict[str, Any] = {"podSelector": dict(pod_selector)}
    if policy_types is not None:
        spec["policyTypes"] = list(policy_types)
    if ingress is not None:
        spec["ingress"] = [dict(r) for r in ingress]
    if egress is not None:
        spec["egress"] = [dict(r) for r in egress]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": metadata(name, namespace), "spec": spec}  # fmt: skip


def namespace(name: str, labels: Mapping[str, str] | None = None) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": metadata(
            name, None, labels={"kubernetes.io/metadata.name": name, **(labels or {})}
        ),
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def event(
    involved: ObjectRef,
    reason: str,
    message: str,
    *,
    type_: str = "Warning",
    count: int = 1,
    minutes_ago: float = 2,
    component: str = "kubelet",
) -> KubeObject:
    api = {"Pod": "v1", "ReplicaSet": "apps/v1", "Deployment": "apps/v1",
           "Job": "batch/v1", "CronJob": "batch/v1"}.get(involved.kind, "v1")  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": metadata(f"{involved.name}.17f3a{reason.lower()[:6]}", involved.namespace),
        "involvedObject": {"apiVersion": api, "kind": involved.kind,
                           "namespace": involved.namespace, "name": involved.name,
                           "uid": f"uid-{involved.name}"},
        "reason": reason,
        "message": message,
        "type": type_,
        "count": count,
        "firstTimestamp": ts(minutes_ago + 10),
        "lastTimestamp": ts(minutes_ago),
        "source": {"component": component},
    }  # fmt: skip


def context(
    objects: Iterable[KubeObject],
    *,
    alert: Mapping[str, str] | None = None,
    alertname: str | None = None,
    annotations: Mapping[str, str] | None = None,
    events: Iterable[KubeObject] = (),
    logs: Mapping[tuple[str, str, str, bool], str] | None = None,
    dependencies: Iterable[Dependency] = (),
    focus: Iterable[ObjectRef] = (),
    gaps: Iterable[tuple[str, str]] = (),
    now: datetime = NOW,
) -> TriageContext:
    """A context as the gatherer would leave it: every object at distance 1 except the
    ``focus`` ones (distance 0), events attached to the objects they involve."""
    labels = dict(alert or {"alertname": alertname or "KubePodNotReady", "namespace": "shop"})
    labels.setdefault("alertname", alertname or "KubePodNotReady")
    view = AlertInput("fp-test", labels["alertname"], "firing", ALERT_START, labels,
                     dict(annotations or {}))  # fmt: skip
    builder = ContextBuilder(view, resolve_targets(labels), cluster="prod-eu-1",
                             source_name="snapshot", now=now)  # fmt: skip
    focused = set(focus)
    for obj in objects:
        builder.add_object(obj, 0 if kube.ref(obj) in focused else 1)
    builder.focus.update(focused)
    by_ref: dict[ObjectRef, list[KubeObject]] = {}
    for ev in events:
        inv = ev["involvedObject"]
        by_ref.setdefault(ObjectRef(inv["kind"], inv.get("namespace"), inv["name"]), []).append(ev)
    for ref, evs in by_ref.items():
        builder.add_events(ref, evs)
    for (ns, pod_name, ctr, previous), text in (logs or {}).items():
        builder.add_log(ns, pod_name, ctr, previous, text)
    for dep in dependencies:
        builder.add_dependency(dep)
    for source, error in gaps:
        builder.add_gap(source, error)
    return builder.build()


# --- config, storage, scheduling and node objects (pods/config/scheduling/storage/nodes) ---


def configmap(
    name: str, namespace: str = "shop", data: Mapping[str, str] | None = None
) -> KubeObject:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(name, namespace),
            "data": dict(data or {})}  # fmt: skip


def secret(name: str, namespace: str = "shop", keys: Sequence[str] = ("password",),
           type_: str = "Opaque") -> KubeObject:  # fmt: skip
    """A Secret as a source hands it over: key names kept, values emptied."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata(name, namespace),
            "type": type_, "data": dict.fromkeys(keys, "")}  # fmt: skip


def node(
    name: str,
    *,
    ready: str = "True",
    ready_reason: str = "KubeletReady",
    ready_message: str = "kubelet is posting ready status",
    pressure: Mapping[str, str] | None = None,
    extra_conditions: Sequence[Mapping[str, Any]] = (),
    allocatable: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, str]] = (),
    unschedulable: bool = False,
    labels: Mapping[str, str] | None = None,
    transition_minutes_ago: float = 20,
) -> KubeObject:
    """A Node; ``pressure`` maps MemoryPressure/DiskPressure/PIDPressure/NetworkUnavailable
    to a status (False when not given)."""
    pressure = dict(pressure or {})
    conditions: list[dict[str, Any]] = []
    for kind, healthy_reason in (
        ("MemoryPressure", "KubeletHasSufficientMemory"),
        ("DiskPressure", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "KubeletHasSufficientPID"),
    ):
        status = pressure.get(kind, "False")
        conditions.append({
            "type": kind, "status": status,
            "reason": healthy_reason if status == "False" else kind.replace("Pressure", "")
            + "Pressure",
            "message": f"kubelet has {'no ' if status == 'False' else ''}{kind}",
            "lastHeartbeatTime": ts(1),
            "lastTransitionTime": ts(transition_minutes_ago if status != "False" else 900),
        })  # fmt: skip
    if "NetworkUnavailable" in pressure:
        conditions.append({"type": "NetworkUnavailable", "status": pressure["NetworkUnavailable"],
                           "reason": "NoRouteCreated", "message": "RouteController failed",
                           "lastHeartbeatTime": ts(1),
                           "lastTransitionTime": ts(transition_minutes_ago)})  # fmt: skip
    conditions.append({"type": "Ready", "status": ready, "reason": ready_reason,
                       "message": ready_message, "lastHeartbeatTime": ts(1),
                       "lastTransitionTime": ts(transition_minutes_ago)})  # fmt: skip
    conditions += [dict(c) for c in extra_conditions]
    spec: dict[str, Any] = {"podCIDR": "10.42.3.0/24", "providerID": f"aws:///eu-west-1a/{name}"}
    if taints:
        spec["taints"] = [dict(t) for t in taints]
    if unschedulable:
        spec["unschedulable"] = True
    capacity = dict(allocatable or {"cpu": "4", "memory": "16Gi", "pods": "110",
                                     "ephemeral-storage": "100Gi"})  # fmt: skip
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": metadata(name, None, labels={"kubernetes.io/hostname": name,
                                                 **(labels or {})}),
        "spec": spec,
        "status": {"conditions": conditions, "allocatable": capacity, "capacity": capacity,
                   "nodeInfo": {"kubeletVersion": "v1.30.4",
                                "containerRuntimeVersion": "containerd://1.7.20"}},
    }  # fmt: skip


def pvc(
    name: str, namespace: str = "shop", *, phase: str = "Bound",
    storage_class: str | None = "standard", volume: str | None = None, size: str = "10Gi",
    access_modes: Sequence[str] = ("ReadWriteOnce",), owner: ObjectRef | None = None,
) -> KubeObject:  # fmt: skip
    spec: dict[str, Any] = {"accessModes": list(access_modes),
                            "resources": {"requests": {"storage": size}},
                            "volumeMode": "Filesystem"}  # fmt: skip
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    if volume:
        spec["volumeName"] = volume
    status: dict[str, Any] = {"phase": phase}
    if phase == "Bound":
        status.update(accessModes=list(access_modes), capacity={"storage": size})
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": metadata(name, namespace, owner=owner), "spec": spec,
            "status": status}  # fmt: skip


def pv(name: str, *, phase: str = "Bound", claim: ObjectRef | None = None,
       storage_class: str = "standard", reclaim: str = "Delete", size: str = "10Gi",
       message: str | None = None) -> KubeObject:  # fmt: skip
    spec: dict[str, Any] = {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                            "persistentVolumeReclaimPolicy": reclaim,
                            "storageClassName": storage_class,
                            "csi": {"driver": "ebs.csi.aws.com",
                                    "volumeHandle": "vol-0abc"}}  # fmt: skip
    if claim is not None:
        spec["claimRef"] = {"kind": "PersistentVolumeClaim", "namespace": claim.namespace,
                            "name": claim.name, "uid": f"uid-{claim.name}"}  # fmt: skip
    status: dict[str, Any] = {"phase": phase}
    if message:
        status["message"] = message
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": metadata(name, None),
            "spec": spec, "status": status}  # fmt: skip


def storage_class(name: str, *, default: bool = False, expandable: bool = True,
                  binding: str = "WaitForFirstConsumer") -> KubeObject:  # fmt: skip
    anns = {"storageclass.kubernetes.io/is-default-class": "true"} if default else None
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": metadata(name, None, annotations=anns),
            "provisioner": "ebs.csi.aws.com", "reclaimPolicy": "Delete",
            "volumeBindingMode": binding, "allowVolumeExpansion": expandable}  # fmt: skip


def resource_quota(name: str, namespace: str = "shop", *, hard: Mapping[str, str],
                   used: Mapping[str, str]) -> KubeObject:  # fmt: skip
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": metadata(name, namespace),
            "spec": {"hard": dict(hard)},
            "status": {"hard": dict(hard), "used": dict(used)}}  # fmt: skip


def daemonset(
    name: str, namespace: str = "kube-system", *, labels: Mapping[str, str] | None = None,
    generation: int = 3, status: Mapping[str, Any] | None = None,
    containers: Sequence[Mapping[str, Any]] | None = None,
) -> KubeObject:  # fmt: skip
    labels = dict(labels or {"app": name})
    full_status: dict[str, Any] = {
        "observedGeneration": generation, "desiredNumberScheduled": 3,
        "currentNumberScheduled": 3, "updatedNumberScheduled": 3, "numberReady": 3,
        "numberAvailable": 3, "numberMisscheduled": 0,
    }  # fmt: skip
    full_status.update(status or {})
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata(name, namespace, labels=labels, generation=generation),
        "spec": {"selector": {"matchLabels": labels}, "template": template(labels, containers),
                 "updateStrategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}},
        "status": full_status,
    }  # fmt: skip


def job(
    name: str, namespace: str = "batch", *, owner: ObjectRef | None = None,
    failed: int = 0, succeeded: int = 0, active: int = 0,
    conditions: Sequence[Mapping[str, Any]] = (), backoff_limit: int = 6,
    started_minutes_ago: float = 30, containers: Sequence[Mapping[str, Any]] | None = None,
) -> KubeObject:  # fmt: skip
    labels = {"batch.kubernetes.io/job-name": name, "job-name": name}
    status: dict[str, Any] = {"startTime": ts(started_minutes_ago)}
    for key, value in (("failed", failed), ("succeeded", succeeded), ("active", active)):
        if value:
            status[key] = value
    if conditions:
        status["conditions"] = [dict(c) for c in conditions]
    tpl = template(labels, containers)
    tpl["spec"]["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(name, namespace, labels=labels, owner=owner,
                             created_minutes_ago=started_minutes_ago),
        "spec": {"backoffLimit": backoff_limit, "completions": 1, "parallelism": 1,
                 "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid":
                                              f"uid-{name}"}},
                 "template": tpl},
        "status": status,
    }  # fmt: skip


def job_condition(type_: str, reason: str, message: str, minutes_ago: float = 5) -> dict[str, Any]:
    return {"type": type_, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": ts(minutes_ago), "lastTransitionTime": ts(minutes_ago)}  # fmt: skip


def cronjob(name: str, namespace: str = "batch", *, schedule: str = "0 * * * *") -> KubeObject:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(name, namespace),
        "spec": {"schedule": schedule, "concurrencyPolicy": "Forbid", "suspend": False,
                 "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                 "jobTemplate": {"spec": {"backoffLimit": 2,
                                          "template": template({"app": name})}}},
        "status": {"lastScheduleTime": ts(10)},
    }  # fmt: skip


def hpa(
    name: str, namespace: str = "shop", *, target: str | None = None, min_replicas: int = 2,
    max_replicas: int = 10, current: int = 4, desired: int | None = None,
    metrics: Sequence[Mapping[str, Any]] | None = None,
    current_metrics: Sequence[Mapping[str, Any]] | None = None,
    conditions: Sequence[Mapping[str, Any]] = (),
) -> KubeObject:  # fmt: skip
    cpu = {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 70}}}  # fmt: skip
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name, namespace),
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": target or name},
                 "minReplicas": min_replicas, "maxReplicas": max_replicas,
                 "metrics": [dict(m) for m in (metrics if metrics is not None else [cpu])]},
        "status": {"currentReplicas": current,
                   "desiredReplicas": current if desired is None else desired,
                   "currentMetrics": [dict(m) for m in current_metrics or []],
                   "conditions": [dict(c) for c in conditions]},
    }  # fmt: skip


def condition(type_: str, status: str, reason: str, message: str = "",
              minutes_ago: float = 5) -> dict[str, Any]:  # fmt: skip
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": ts(minutes_ago)}  # fmt: skip


def certificate(name: str, namespace: str = "shop", *, secret_name: str, ready: bool = True,
                not_after: str | None = None, reason: str = "Ready", message: str = "",
                issuer: str = "letsencrypt-prod") -> KubeObject:  # fmt: skip
    status: dict[str, Any] = {"conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "reason": reason,
         "message": message or ("Certificate is up to date and has not expired" if ready
                                else "Certificate is not ready"),
         "lastTransitionTime": ts(60), "observedGeneration": 1}]}  # fmt: skip
    if not_after:
        status["notAfter"] = not_after
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": metadata(name, namespace, generation=1),
        "spec": {"secretName": secret_name, "dnsNames": [f"{name}.example.com"],
                 "issuerRef": {"kind": "ClusterIssuer", "name": issuer}},
        "status": status,
    }  # fmt: skip


def apiservice(group: str, *, service: ObjectRef | None, available: bool = True,
               reason: str = "Passed", message: str = "all checks passed",
               version: str = "v1beta1") -> KubeObject:  # fmt: skip
    """An aggregated API registration; ``service`` None for a local (built-in) one."""
    spec: dict[str, Any] = {"group": group, "version": version, "groupPriorityMinimum": 100,
                            "versionPriority": 100, "insecureSkipTLSVerify": True}  # fmt: skip
    if service is not None:
        spec["service"] = {"namespace": service.namespace, "name": service.name, "port": 443}
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": metadata(f"{version}.{group}", None),
        "spec": spec,
        "status": {"conditions": [{"type": "Available", "status": str(available),
                                   "reason": reason, "message": message,
                                   "lastTransitionTime": ts(40)}]},
    }  # fmt: skip


# --- assertions the analyzer tests share ----------------------------------------------------


def only(findings: list[Finding], category: Category) -> Finding:
    """The one finding of a category (fails, listing them all, when there is not one)."""
    matching = [f for f in findings if f.category is category]
    assert len(matching) == 1, [f.summary for f in findings]
    return matching[0]


def commands(analyzer: Analyzer, finding: Finding, ctx: TriageContext) -> str:
    """Every command the analyzer recommends for a finding, one per line."""
    return "\n".join(c for r in analyzer.recommend(finding, ctx) for c in r.commands)
