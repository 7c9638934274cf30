# ruff: noqa: E501
"""Builders for golden triage cases: Kubernetes objects shaped exactly as kubectl prints them.

A `Case` collects the objects, logs, metrics and the alert of one incident and writes the
case directory (alert.json, snapshot/, expected.yaml). Everything is deterministic: uids,
hashes, IPs and resourceVersions are derived from the case name, so rebuilding the cases
produces the same files byte for byte.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import shutil
import textwrap
import urllib.parse
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery rand.SafeEncodeString
KSM_SERVICE = "kube-prometheus-stack-kube-state-metrics"
PROMETHEUS = "monitoring/kube-prometheus-stack-prometheus"
PROM_URL = "http://kube-prometheus-stack-prometheus.monitoring:9090"
AM_URL = "http://kube-prometheus-stack-alertmanager.monitoring:9093"
RUNBOOKS = "https://runbooks.prometheus-operator.dev/runbooks/kubernetes"

# --------------------------------------------------------------------------- time


_DUR = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


def duration(text: str) -> timedelta:
    """'-2h13m', '+30s', '3d' -> timedelta."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    seconds = sum(float(n) * units[u] for n, u in _DUR.findall(text))
    return timedelta(seconds=-seconds if text.startswith("-") else seconds)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_micro(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------- hashing


def digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def safe_string(seed: str, length: int) -> str:
    raw = digest("safe", seed)
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in raw[:length])


def k8s_hash(seed: str) -> str:
    """rand.SafeEncodeString(fmt.Sprint(uint32)): how pod-template-hash and revision hashes look."""
    value = int.from_bytes(digest("k8shash", seed)[:4], "big")
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in str(value))


def hex_string(seed: str, length: int = 64) -> str:
    out = ""
    counter = 0
    while len(out) < length:
        out += digest("hex", seed, str(counter)).hex()
        counter += 1
    return out[:length]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's label-set fingerprint (prometheus/common model.LabelSet.Fingerprint)."""
    h = 14695981039346656037
    for name in sorted(labels):
        for chunk in (name.encode(), b"\xff", labels[name].encode(), b"\xff"):
            for byte in chunk:
                h ^= byte
                h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# --------------------------------------------------------------------------- platforms


@dataclass(frozen=True)
class Platform:
    """What kind of cluster a case runs on: names, IP ranges and versions follow from it."""

    flavour: str  # eks | gke | kubeadm
    kubelet: str
    runtime: str
    os_image: str
    kernel: str
    dns_ip: str
    service_prefix: str  # e.g. "172.20"
    region: str = ""
    project: str = ""
    cluster_name: str = ""
    event_ttl_hours: int = 1
    ksm_instance: str = "10.0.45.187:8080"

    @property
    def minor(self) -> int:
        return int(self.kubelet.split(".")[1])


EKS_PROD = Platform(
    flavour="eks",
    kubelet="v1.33.4-eks-e386d34",
    runtime="containerd://1.7.27",
    os_image="Amazon Linux 2023.8.20250915",
    kernel="6.1.150-174.273.amzn2023.x86_64",
    dns_ip="172.20.0.10",
    service_prefix="172.20",
    region="eu-west-1",
    ksm_instance="10.0.45.187:8080",
)
EKS_STAGING = Platform(
    flavour="eks",
    kubelet="v1.33.4-eks-e386d34",
    runtime="containerd://1.7.27",
    os_image="Amazon Linux 2023.8.20250915",
    kernel="6.1.150-174.273.amzn2023.x86_64",
    dns_ip="172.20.0.10",
    service_prefix="172.20",
    region="eu-west-1",
    ksm_instance="10.1.38.20:8080",
)
GKE_PROD = Platform(
    flavour="gke",
    kubelet="v1.33.5-gke.1201000",
    runtime="containerd://2.0.6",
    os_image="Container-Optimized OS from Google",
    kernel="6.6.97+",
    dns_ip="34.118.224.10",
    service_prefix="34.118",
    region="us-central1",
    project="acme-prod-4821",
    cluster_name="prod-us-1",
    ksm_instance="10.48.2.14:8080",
)
ONPREM = Platform(
    flavour="kubeadm",
    kubelet="v1.32.9",
    runtime="containerd://1.7.28",
    os_image="Ubuntu 24.04.3 LTS",
    kernel="6.8.0-85-generic",
    dns_ip="10.96.0.10",
    service_prefix="10.96",
    event_ttl_hours=48,
    ksm_instance="10.244.3.41:8080",
)

INSTANCE_TYPES: dict[str, tuple[str, str, str, str, str]] = {
    # capacity cpu, capacity memory, allocatable cpu, allocatable memory, pods
    "m6i.large": ("2", "7936296Ki", "1930m", "7246120Ki", "29"),
    "m6i.xlarge": ("4", "15896812Ki", "3920m", "14880556Ki", "58"),
    "m6i.2xlarge": ("8", "32408224Ki", "7910m", "31391968Ki", "58"),
    "r6i.2xlarge": ("8", "65049300Ki", "7910m", "64033044Ki", "58"),
    "c6i.2xlarge": ("8", "15896812Ki", "7910m", "14880556Ki", "58"),
    "g5.xlarge": ("4", "16106116Ki", "3920m", "15089860Ki", "58"),
    "e2-standard-4": ("4", "16374020Ki", "3920m", "13196036Ki", "110"),
    "e2-standard-8": ("8", "32863528Ki", "7910m", "28815144Ki", "110"),
    "n2-highmem-4": ("4", "32863528Ki", "3920m", "28815144Ki", "110"),
    "onprem-16x64": ("16", "65831320Ki", "16", "65728920Ki", "110"),
    "onprem-8x32": ("8", "32862052Ki", "8", "32759652Ki", "110"),
}

# --------------------------------------------------------------------------- object helpers


def owner_ref(obj: Obj) -> Obj:
    return {
        "apiVersion": obj["apiVersion"],
        "blockOwnerDeletion": True,
        "controller": True,
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
    }


def ref(obj: Obj) -> Obj:
    m = obj["metadata"]
    out = {"kind": obj["kind"], "namespace": m.get("namespace"), "name": m["name"]}
    return out


def quantity_to_milli(q: str) -> int:
    if q.endswith("m"):
        return int(q[:-1])
    return int(float(q) * 1000)


def helm_labels(name: str, version: str, chart: str | None = None, **extra: str) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/version": version,
        "helm.sh/chart": chart or f"{name}-{version}",
    }
    labels.update(extra)
    return labels


def selector_labels(name: str, **extra: str) -> dict[str, str]:
    labels = {"app.kubernetes.io/instance": name, "app.kubernetes.io/name": name}
    labels.update(extra)
    return labels


def helm_annotations(release: str, namespace: str) -> dict[str, str]:
    return {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace}


# --------------------------------------------------------------------------- pod spec pieces


def http_probe(
    path: str,
    port: int | str,
    *,
    initial: int = 0,
    period: int = 10,
    timeout: int = 1,
    failure: int = 3,
    success: int = 1,
) -> Obj:
    probe: Obj = {
        "failureThreshold": failure,
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "periodSeconds": period,
        "successThreshold": success,
        "timeoutSeconds": timeout,
    }
    if initial:
        probe["initialDelaySeconds"] = initial
    return probe


def tcp_probe(port: int | str, *, initial: int = 0, period: int = 10, failure: int = 3) -> Obj:
    probe: Obj = {
        "failureThreshold": failure,
        "periodSeconds": period,
        "successThreshold": 1,
        "tcpSocket": {"port": port},
        "timeoutSeconds": 1,
    }
    if initial:
        probe["initialDelaySeconds"] = initial
    return probe


def exec_probe(
    command: list[str], *, initial: int = 0, period: int = 10, timeout: int = 1, failure: int = 3
) -> Obj:
    probe: Obj = {
        "exec": {"command": command},
        "failureThreshold": failure,
        "periodSeconds": period,
        "successThreshold": 1,
        "timeoutSeconds": timeout,
    }
    if initial:
        probe["initialDelaySeconds"] = initial
    return probe


def resources(
    cpu_req: str | None = None,
    mem_req: str | None = None,
    cpu_lim: str | None = None,
    mem_lim: str | None = None,
) -> Obj:
    out: Obj = {}
    limits = {k: v for k, v in (("cpu", cpu_lim), ("memory", mem_lim)) if v}
    requests = {k: v for k, v in (("cpu", cpu_req), ("memory", mem_req)) if v}
    if limits:
        out["limits"] = limits
    if requests:
        out["requests"] = requests
    return out


def env(name: str, value: str) -> Obj:
    return {"name": name, "value": value}


def env_cm(name: str, configmap: str, key: str) -> Obj:
    return {"name": name, "valueFrom": {"configMapKeyRef": {"key": key, "name": configmap}}}


def env_secret(name: str, secret: str, key: str) -> Obj:
    return {"name": name, "valueFrom": {"secretKeyRef": {"key": key, "name": secret}}}


def env_field(name: str, path: str) -> Obj:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def container(
    name: str,
    image: str,
    *,
    ports: list[tuple[str, int]] | None = None,
    env_vars: list[Obj] | None = None,
    env_from: list[Obj] | None = None,
    args: list[str] | None = None,
    command: list[str] | None = None,
    res: Obj | None = None,
    liveness: Obj | None = None,
    readiness: Obj | None = None,
    startup: Obj | None = None,
    mounts: list[Obj] | None = None,
    security: Obj | None = None,
    pull_policy: str = "IfNotPresent",
) -> Obj:
    c: Obj = {
        "image": image,
        "imagePullPolicy": pull_policy,
        "name": name,
        "resources": res or {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if command:
        c["command"] = command
    if args:
        c["args"] = args
    if env_vars:
        c["env"] = env_vars
    if env_from:
        c["envFrom"] = env_from
    if ports:
        c["ports"] = [{"containerPort": p, "name": n, "protocol": "TCP"} for n, p in ports]
    if liveness:
        c["livenessProbe"] = liveness
    if readiness:
        c["readinessProbe"] = readiness
    if startup:
        c["startupProbe"] = startup
    if mounts:
        c["volumeMounts"] = mounts
    if security:
        c["securityContext"] = security
    return c


def mount(name: str, path: str, *, read_only: bool = False, sub_path: str | None = None) -> Obj:
    m: Obj = {"mountPath": path, "name": name}
    if read_only:
        m["readOnly"] = True
    if sub_path:
        m["subPath"] = sub_path
    return m


def vol_cm(name: str, configmap: str) -> Obj:
    return {"configMap": {"defaultMode": 420, "name": configmap}, "name": name}


def vol_secret(name: str, secret: str) -> Obj:
    return {"name": name, "secret": {"defaultMode": 420, "secretName": secret}}


def vol_pvc(name: str, claim: str) -> Obj:
    return {"name": name, "persistentVolumeClaim": {"claimName": claim}}


def vol_empty(name: str, size: str | None = None) -> Obj:
    return {"emptyDir": {"sizeLimit": size} if size else {}, "name": name}


def template(
    labels: dict[str, str],
    containers: list[Obj],
    *,
    annotations: dict[str, str] | None = None,
    volumes: list[Obj] | None = None,
    service_account: str | None = None,
    node_selector: dict[str, str] | None = None,
    affinity: Obj | None = None,
    tolerations: list[Obj] | None = None,
    init_containers: list[Obj] | None = None,
    security: Obj | None = None,
    grace: int = 30,
    restart_policy: str = "Always",
    pull_secrets: list[str] | None = None,
    priority_class: str | None = None,
) -> Obj:
    meta: Obj = {"creationTimestamp": None, "labels": dict(labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    spec: Obj = {
        "containers": containers,
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": restart_policy,
        "schedulerName": "default-scheduler",
        "securityContext": security or {},
        "terminationGracePeriodSeconds": grace,
    }
    if service_account:
        spec["serviceAccount"] = service_account
        spec["serviceAccountName"] = service_account
    if volumes:
        spec["volumes"] = volumes
    if node_selector:
        spec["nodeSelector"] = node_selector
    if affinity:
        spec["affinity"] = affinity
    if tolerations:
        spec["tolerations"] = tolerations
    if init_containers:
        spec["initContainers"] = init_containers
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
    if priority_class:
        spec["priorityClassName"] = priority_class
    return {"metadata": meta, "spec": spec}


def normalized_image(image: str) -> str:
    """How containerd reports an image reference in status.containerStatuses[].image."""
    name = image
    first = name.split("/")[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if ":" not in name.split("/")[-1] and "@" not in name:
        name += ":latest"
    return name


# --------------------------------------------------------------------------- container states


@dataclass
class CState:
    """The observed state of one container, turned into a containerStatus by Case.pod()."""

    name: str
    kind: str  # running | waiting | terminated
    since: str = ""
    finished: str = ""
    ready: bool = False
    restarts: int = 0
    reason: str = ""
    message: str = ""
    exit_code: int = 0
    last: tuple[int, str, str, str] | None = None  # exit code, reason, started, finished
    created: bool = True  # False: no container was ever created (image pull, config error)
    started: bool | None = None


def running(
    name: str,
    since: str,
    *,
    ready: bool = True,
    restarts: int = 0,
    last: tuple[int, str, str, str] | None = None,
    started: bool | None = None,
) -> CState:
    return CState(
        name, "running", since=since, ready=ready, restarts=restarts, last=last, started=started
    )


def waiting(
    name: str,
    reason: str,
    message: str = "",
    *,
    restarts: int = 0,
    last: tuple[int, str, str, str] | None = None,
) -> CState:
    return CState(
        name,
        "waiting",
        reason=reason,
        message=message,
        restarts=restarts,
        last=last,
        created=last is not None,
    )


def terminated(
    name: str, exit_code: int, reason: str, since: str, finished: str, *, restarts: int = 0
) -> CState:
    return CState(
        name,
        "terminated",
        since=since,
        finished=finished,
        exit_code=exit_code,
        reason=reason,
        restarts=restarts,
    )


# --------------------------------------------------------------------------- the case


@dataclass
class Expected:
    description: str
    category: str
    culprit: Obj | None
    summary_mentions: list[str]
    multi_hop: bool
    distractors: list[str] = field(default_factory=list)
    acceptable: list[Obj] = field(default_factory=list)


def culprit(kind: str, namespace: str | None, name: str) -> Obj:
    return {"kind": kind, "namespace": namespace, "name": name}


PLURALS = {
    "Pod": "pods",
    "Service": "services",
    "Endpoints": "endpoints",
    "EndpointSlice": "endpointslices",
    "Node": "nodes",
    "Namespace": "namespaces",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "ServiceAccount": "serviceaccounts",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "PersistentVolume": "persistentvolumes",
    "ResourceQuota": "resourcequotas",
    "LimitRange": "limitranges",
    "Event": "events",
    "Deployment": "deployments",
    "ReplicaSet": "replicasets",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "Job": "jobs",
    "CronJob": "cronjobs",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "NetworkPolicy": "networkpolicies",
    "Ingress": "ingresses",
    "StorageClass": "storageclasses",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Certificate": "certificates",
}


class Case:
    def __init__(
        self,
        name: str,
        *,
        cluster: str,
        platform: Platform,
        alert_at: str,
        captured_after: str = "4m",
    ) -> None:
        self.name = name
        self.cluster = cluster
        self.p = platform
        self.alert_at = parse_time(alert_at)
        self.now = self.alert_at + duration(captured_after)
        self.objects: list[tuple[str, Obj]] = []
        self.yaml_files: set[str] = set()
        self.logs: dict[str, str] = {}
        self.metrics: dict[str, Obj] = {}
        self.payload: Obj | None = None
        self.expected: Expected | None = None
        self._rv = 40_000_000 + int.from_bytes(digest("rv", name)[:4], "big") % 50_000_000
        self._nodes: dict[str, Obj] = {}
        self._node_index = 0
        self.services_with_slices: set[tuple[str, str]] = set()
        self.skip_endpoints: set[tuple[str, str]] = set()
        self.status_overrides: dict[int, Obj] = {}

    # ----------------------------------------------------------------- basics
    def t(self, rel: str) -> str:
        """A timestamp relative to capture time ("now"): t('-5m'); absolute times pass through."""
        return iso(self.dt(rel))

    def dt(self, rel: str) -> datetime:
        if rel[:1] in "+-":
            return self.now + duration(rel)
        return parse_time(rel)

    def rv(self) -> str:
        self._rv += 1 + int.from_bytes(digest("rvstep", str(self._rv))[:2], "big") % 900
        return str(self._rv)

    def uid(self, *parts: str) -> str:
        return str(uuid.UUID(bytes=digest("uid", self.name, *parts)[:16], version=4))

    def add(self, obj: Obj, path: str | None = None) -> Obj:
        if path is None:
            kind = obj["kind"]
            ns = obj["metadata"].get("namespace")
            if kind == "Event":
                path = "events.json"
            elif ns:
                path = f"{ns}/{PLURALS[kind]}.json"
            else:
                path = f"cluster/{PLURALS[kind]}.json"
        self.objects.append((path, obj))
        return obj

    def find(self, kind: str, namespace: str | None, name: str) -> Obj:
        for _, obj in self.objects:
            m = obj["metadata"]
            if obj["kind"] == kind and m.get("namespace") == namespace and m["name"] == name:
                return obj
        raise KeyError(f"{kind} {namespace}/{name} not in case {self.name}")

    def all(self, kind: str, namespace: str | None = None) -> list[Obj]:
        return [
            o
            for _, o in self.objects
            if o["kind"] == kind
            and (namespace is None or o["metadata"].get("namespace") == namespace)
        ]

    def meta(
        self,
        kind: str,
        name: str,
        namespace: str | None,
        created: str,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        owner: Obj | None = None,
        generate_name: str | None = None,
        generation: int | None = None,
        finalizers: list[str] | None = None,
    ) -> Obj:
        m: Obj = {
            "creationTimestamp": self.t(created),
            "name": name,
            "resourceVersion": self.rv(),
            "uid": self.uid(kind, namespace or "", name),
        }
        if namespace:
            m["namespace"] = namespace
        if labels:
            m["labels"] = dict(labels)
        if annotations:
            m["annotations"] = dict(annotations)
        if owner is not None:
            m["ownerReferences"] = [owner_ref(owner)]
        if generate_name:
            m["generateName"] = generate_name
        if generation is not None:
            m["generation"] = generation
        if finalizers:
            m["finalizers"] = finalizers
        return m

    # ----------------------------------------------------------------- cluster scope
    def namespace(
        self, name: str, created: str = "-400d", labels: dict[str, str] | None = None
    ) -> Obj:
        all_labels = {"kubernetes.io/metadata.name": name}
        all_labels.update(labels or {})
        return self.add(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": self.meta("Namespace", name, None, created, labels=all_labels),
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
        )

    def node(
        self,
        ip: str,
        *,
        instance_type: str,
        created: str = "-12d",
        pool: str = "general",
        zone: str | None = None,
        name: str | None = None,
        conditions: dict[str, tuple[str, str, str, str]] | None = None,
        extra_conditions: list[tuple[str, str, str, str]] | None = None,
        heartbeat: str = "-35s",
        taints: list[Obj] | None = None,
        unschedulable: bool = False,
        labels: dict[str, str] | None = None,
        role: str | None = None,
    ) -> Obj:
        """A Node. conditions: type -> (status, reason, message, lastTransition rel)."""
        p = self.p
        idx = self._node_index
        self._node_index += 1
        cpu, mem, acpu, amem, pods = INSTANCE_TYPES[instance_type]
        octets = ip.split(".")
        node_labels: dict[str, str] = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/os": "linux",
        }
        annotations: dict[str, str] = {
            "node.alpha.kubernetes.io/ttl": "0",
            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
        }
        spec: Obj = {}
        addresses: list[Obj]
        if p.flavour == "eks":
            if zone is None:
                third = int(octets[2])
                zone = p.region + "abc"[min(third // 32, 2)]
            name = name or f"ip-{ip.replace('.', '-')}.{p.region}.compute.internal"
            instance_id = "i-0" + hex_string(f"instance-{name}", 16)
            node_labels.update(
                {
                    "beta.kubernetes.io/instance-type": instance_type,
                    "eks.amazonaws.com/capacityType": "ON_DEMAND",
                    "eks.amazonaws.com/nodegroup": pool,
                    "eks.amazonaws.com/nodegroup-image": "ami-0" + hex_string(pool + "ami", 16),
                    "eks.amazonaws.com/sourceLaunchTemplateId": "lt-0"
                    + hex_string(pool + "lt", 16),
                    "eks.amazonaws.com/sourceLaunchTemplateVersion": "3",
                    "failure-domain.beta.kubernetes.io/region": p.region,
                    "failure-domain.beta.kubernetes.io/zone": zone,
                    "k8s.io/cloud-provider-aws": hex_string(self.cluster, 32),
                    "kubernetes.io/hostname": name,
                    "node.kubernetes.io/instance-type": instance_type,
                    "topology.ebs.csi.aws.com/zone": zone,
                    "topology.k8s.aws/zone-id": "euw1-az" + str("abc".index(zone[-1]) + 1),
                    "topology.kubernetes.io/region": p.region,
                    "topology.kubernetes.io/zone": zone,
                }
            )
            annotations["alpha.kubernetes.io/provided-node-ip"] = ip
            annotations["csi.volume.kubernetes.io/nodeid"] = json.dumps(
                {"ebs.csi.aws.com": instance_id}, separators=(",", ":")
            )
            spec["providerID"] = f"aws:///{zone}/{instance_id}"
            addresses = [
                {"address": ip, "type": "InternalIP"},
                {"address": name, "type": "InternalDNS"},
                {"address": name, "type": "Hostname"},
            ]
        elif p.flavour == "gke":
            zone = zone or f"{p.region}-b"
            suffix = safe_string(f"gke-{ip}", 4)
            group = hex_string(f"mig-{pool}-{zone}", 8)
            name = name or f"gke-{p.cluster_name}-{pool}-{group}-{suffix}"
            node_labels.update(
                {
                    "beta.kubernetes.io/instance-type": instance_type,
                    "cloud.google.com/gke-boot-disk": "pd-balanced",
                    "cloud.google.com/gke-container-runtime": "containerd",
                    "cloud.google.com/gke-cpu-scaling-level": cpu,
                    "cloud.google.com/gke-logging-variant": "DEFAULT",
                    "cloud.google.com/gke-max-pods-per-node": pods,
                    "cloud.google.com/gke-nodepool": pool,
                    "cloud.google.com/gke-os-distribution": "cos",
                    "cloud.google.com/gke-provisioning": "standard",
                    "cloud.google.com/gke-stack-type": "IPV4",
                    "cloud.google.com/machine-family": instance_type.split("-")[0],
                    "cloud.google.com/private-node": "true",
                    "failure-domain.beta.kubernetes.io/region": p.region,
                    "failure-domain.beta.kubernetes.io/zone": zone,
                    "kubernetes.io/hostname": name,
                    "node.kubernetes.io/instance-type": instance_type,
                    "topology.gke.io/zone": zone,
                    "topology.kubernetes.io/region": p.region,
                    "topology.kubernetes.io/zone": zone,
                }
            )
            annotations["container.googleapis.com/instance_id"] = str(
                int.from_bytes(digest("gce", name)[:7], "big")
            )
            annotations["csi.volume.kubernetes.io/nodeid"] = json.dumps(
                {"pd.csi.storage.gke.io": f"projects/{p.project}/zones/{zone}/instances/{name}"},
                separators=(",", ":"),
            )
            spec["podCIDR"] = f"10.48.{idx + 1}.0/24"
            spec["podCIDRs"] = [spec["podCIDR"]]
            spec["providerID"] = f"gce://{p.project}/{zone}/{name}"
            addresses = [
                {"address": ip, "type": "InternalIP"},
                {"address": "", "type": "ExternalIP"},
                {"address": name, "type": "Hostname"},
            ]
            addresses = [a for a in addresses if a["address"]]
        else:
            assert name, "kubeadm nodes need a name"
            node_labels["kubernetes.io/hostname"] = name
            annotations["kubeadm.alpha.kubernetes.io/cri-socket"] = (
                "unix:///var/run/containerd/containerd.sock"
            )
            spec["podCIDR"] = f"10.244.{idx}.0/24"
            spec["podCIDRs"] = [spec["podCIDR"]]
            addresses = [
                {"address": ip, "type": "InternalIP"},
                {"address": name, "type": "Hostname"},
            ]
        if role:
            node_labels[f"node-role.kubernetes.io/{role}"] = ""
        node_labels.update(labels or {})
        if taints:
            spec["taints"] = taints
        if unschedulable:
            spec["unschedulable"] = True
        conds = {
            "MemoryPressure": (
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                created,
            ),
            "DiskPressure": (
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                created,
            ),
            "PIDPressure": (
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                created,
            ),
            "Ready": ("True", "KubeletReady", "kubelet is posting ready status", created),
        }
        conds.update(conditions or {})
        cond_list: list[Obj] = []
        extra = list(extra_conditions or [])
        if p.flavour == "gke" and extra_conditions is None:
            extra = npd_conditions(created)
        for ctype, (status, reason, message, since) in [
            *extra,
            *conds.items(),
        ]:
            since_abs = self.t(since) if since.startswith(("-", "+")) else since
            created_abs = self.t(created)
            cond_list.append(
                {
                    "lastHeartbeatTime": self.t(heartbeat),
                    "lastTransitionTime": max(since_abs, created_abs),
                    "message": message,
                    "reason": reason,
                    "status": status,
                    "type": ctype,
                }
            )
        allocatable = {
            "cpu": acpu,
            "ephemeral-storage": "95491281146",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
            "memory": amem,
            "pods": pods,
        }
        capacity = {
            "cpu": cpu,
            "ephemeral-storage": "104779756Ki",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
            "memory": mem,
            "pods": pods,
        }
        boot = str(uuid.UUID(bytes=digest("boot", self.name, ip)[:16], version=4))
        obj = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": self.meta(
                "Node", name, None, created, labels=node_labels, annotations=annotations
            ),
            "spec": spec,
            "status": {
                "addresses": addresses,
                "allocatable": allocatable,
                "capacity": capacity,
                "conditions": cond_list,
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": boot,
                    "containerRuntimeVersion": p.runtime,
                    "kernelVersion": p.kernel,
                    "kubeProxyVersion": "" if p.minor >= 31 else p.kubelet,
                    "kubeletVersion": p.kubelet,
                    "machineID": hex_string("machine" + name, 32),
                    "operatingSystem": "linux",
                    "osImage": p.os_image,
                    "systemUUID": str(uuid.UUID(bytes=digest("sysuuid", name)[:16])).upper()
                    if p.flavour != "eks"
                    else "ec2" + hex_string("sysuuid" + name, 29),
                },
            },
        }
        if p.minor >= 32:
            obj["status"]["features"] = {"supplementalGroupsPolicy": True}
            obj["status"]["runtimeHandlers"] = [
                {"features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}, "name": ""},
                {
                    "features": {"recursiveReadOnlyMounts": True, "userNamespaces": True},
                    "name": "runc",
                },
            ]
        self._nodes[name] = obj
        return self.add(obj)

    def node_ip(self, node: Obj) -> str:
        for a in node["status"]["addresses"]:
            if a["type"] == "InternalIP":
                return str(a["address"])
        raise ValueError("node without InternalIP")

    def pod_ip(self, node: Obj, seed: str) -> str:
        h = digest("podip", self.name, seed)
        if "podCIDR" in node["spec"]:
            base = node["spec"]["podCIDR"].rsplit(".", 2)[0]
            third = node["spec"]["podCIDR"].split(".")[2]
            return f"{base}.{third}.{2 + h[0] % 250}"
        a, b, c, _ = self.node_ip(node).split(".")
        block = int(c) // 32 * 32
        return f"{a}.{b}.{block + h[1] % 32}.{2 + h[0] % 250}"

    def service_ip(self, seed: str) -> str:
        h = digest("svcip", self.name, seed)
        if self.p.flavour == "gke":
            return f"34.118.{224 + h[0] % 16}.{1 + h[1] % 254}"
        if self.p.flavour == "kubeadm":
            return f"10.{96 + h[0] % 8}.{h[1]}.{1 + h[2] % 254}"
        return f"172.20.{h[0]}.{1 + h[1] % 254}"

    def storage_class(
        self,
        name: str,
        provisioner: str,
        *,
        default: bool = False,
        binding: str = "WaitForFirstConsumer",
        parameters: dict[str, str] | None = None,
        created: str = "-400d",
        expansion: bool = True,
        reclaim: str = "Delete",
    ) -> Obj:
        annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else None
        obj: Obj = {
            "allowVolumeExpansion": expansion,
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": self.meta("StorageClass", name, None, created, annotations=annotations),
            "provisioner": provisioner,
            "reclaimPolicy": reclaim,
            "volumeBindingMode": binding,
        }
        if parameters:
            obj["parameters"] = parameters
        return self.add(obj)

    # ----------------------------------------------------------------- workloads
    def deployment(
        self,
        namespace: str,
        name: str,
        tpl: Obj,
        *,
        replicas: int,
        created: str = "-200d",
        revision: int = 1,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        generation: int | None = None,
        strategy: Obj | None = None,
        min_ready: int = 0,
        progress_deadline: int = 600,
        paused: bool = False,
        selector: dict[str, str] | None = None,
    ) -> Obj:
        ann = {"deployment.kubernetes.io/revision": str(revision)}
        ann.update(annotations or {})
        spec: Obj = {
            "progressDeadlineSeconds": progress_deadline,
            "replicas": replicas,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": selector or selector_labels(name)},
            "strategy": strategy
            or {
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                "type": "RollingUpdate",
            },
            "template": copy.deepcopy(tpl),
        }
        if min_ready:
            spec["minReadySeconds"] = min_ready
        if paused:
            spec["paused"] = True
        obj = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.meta(
                "Deployment",
                name,
                namespace,
                created,
                labels=labels,
                annotations=ann,
                generation=generation or revision + 2,
            ),
            "spec": spec,
            "status": {},
        }
        return self.add(obj)

    def template_hash(self, tpl: Obj, owner: str) -> str:
        return k8s_hash(json.dumps(tpl, sort_keys=True) + owner + self.name)

    def replicaset(
        self,
        deployment: Obj,
        tpl: Obj | None = None,
        *,
        revision: int,
        replicas: int,
        created: str,
        pod_hash: str | None = None,
    ) -> Obj:
        tpl = copy.deepcopy(tpl or deployment["spec"]["template"])
        d_name = deployment["metadata"]["name"]
        ns = deployment["metadata"]["namespace"]
        h = pod_hash or self.template_hash(tpl, d_name)
        tpl["metadata"]["labels"]["pod-template-hash"] = h
        selector = dict(deployment["spec"]["selector"]["matchLabels"])
        selector["pod-template-hash"] = h
        max_surge = deployment["spec"]["strategy"].get("rollingUpdate", {}).get("maxSurge", 0)
        d_replicas = deployment["spec"]["replicas"]
        surge = _resolve_percent(max_surge, d_replicas, up=True)
        ann = {
            "deployment.kubernetes.io/desired-replicas": str(d_replicas),
            "deployment.kubernetes.io/max-replicas": str(d_replicas + surge),
            "deployment.kubernetes.io/revision": str(revision),
        }
        for k, v in deployment["metadata"].get("annotations", {}).items():
            if k.startswith("meta.helm.sh"):
                ann[k] = v
        labels = dict(tpl["metadata"]["labels"])
        obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": self.meta(
                "ReplicaSet",
                f"{d_name}-{h}",
                ns,
                created,
                labels=labels,
                annotations=ann,
                owner=deployment,
                generation=1 if replicas else 2,
            ),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector},
                "template": tpl,
            },
            "status": {},
        }
        if deployment["spec"].get("minReadySeconds"):
            obj["spec"]["minReadySeconds"] = deployment["spec"]["minReadySeconds"]
        return self.add(obj)

    def statefulset(
        self,
        namespace: str,
        name: str,
        tpl: Obj,
        *,
        replicas: int,
        service_name: str,
        created: str = "-300d",
        claims: list[Obj] | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        generation: int = 1,
        revision_hash: str | None = None,
    ) -> Obj:
        rev = revision_hash or k8s_hash(self.name + name + json.dumps(tpl, sort_keys=True))
        spec: Obj = {
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Retain",
                "whenScaled": "Retain",
            },
            "podManagementPolicy": "OrderedReady",
            "replicas": replicas,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": selector_labels(name)},
            "serviceName": service_name,
            "template": copy.deepcopy(tpl),
            "updateStrategy": {"rollingUpdate": {"partition": 0}, "type": "RollingUpdate"},
        }
        if claims:
            spec["volumeClaimTemplates"] = claims
        obj = {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": self.meta(
                "StatefulSet",
                name,
                namespace,
                created,
                labels=labels,
                annotations=annotations,
                generation=generation,
            ),
            "spec": spec,
            "status": {"_revision": f"{name}-{rev}"},
        }
        return self.add(obj)

    def claim_template(
        self, name: str, size: str, storage_class: str | None, modes: list[str] | None = None
    ) -> Obj:
        spec: Obj = {
            "accessModes": modes or ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
            "volumeMode": "Filesystem",
        }
        if storage_class:
            spec["storageClassName"] = storage_class
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"creationTimestamp": None, "name": name},
            "spec": spec,
            "status": {"phase": "Pending"},
        }

    def daemonset(
        self,
        namespace: str,
        name: str,
        tpl: Obj,
        *,
        created: str = "-300d",
        generation: int = 1,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        max_unavailable: int | str = 1,
    ) -> Obj:
        ann = {"deprecated.daemonset.template.generation": str(generation)}
        ann.update(annotations or {})
        obj = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": self.meta(
                "DaemonSet",
                name,
                namespace,
                created,
                labels=labels,
                annotations=ann,
                generation=generation,
            ),
            "spec": {
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": selector_labels(name)},
                "template": copy.deepcopy(tpl),
                "updateStrategy": {
                    "rollingUpdate": {"maxSurge": 0, "maxUnavailable": max_unavailable},
                    "type": "RollingUpdate",
                },
            },
            "status": {},
        }
        return self.add(obj)

    def job(
        self,
        namespace: str,
        name: str,
        tpl: Obj,
        *,
        created: str,
        backoff_limit: int = 6,
        owner: Obj | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        active_deadline: int | None = None,
        ttl: int | None = None,
    ) -> Obj:
        uid = self.uid("Job", namespace, name)
        tpl = copy.deepcopy(tpl)
        job_labels = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        tpl["metadata"]["labels"].update(job_labels)
        meta_labels = dict(labels or {})
        meta_labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
        spec: Obj = {
            "backoffLimit": backoff_limit,
            "completionMode": "NonIndexed",
            "completions": 1,
            "manualSelector": False,
            "parallelism": 1,
            "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
            "suspend": False,
            "template": tpl,
        }
        if active_deadline:
            spec["activeDeadlineSeconds"] = active_deadline
        if ttl is not None:
            spec["ttlSecondsAfterFinished"] = ttl
        obj = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": self.meta(
                "Job",
                name,
                namespace,
                created,
                labels=meta_labels,
                annotations=annotations,
                owner=owner,
                generation=1,
            ),
            "spec": spec,
            "status": {},
        }
        return self.add(obj)

    # ----------------------------------------------------------------- pods
    def pod(
        self,
        owner: Obj,
        node: Obj | None,
        created: str,
        states: list[CState],
        *,
        name: str | None = None,
        init_states: list[CState] | None = None,
        phase: str | None = None,
        unschedulable: str | None = None,
        scheduled_at: str | None = None,
        ready_since: str | None = None,
        deleting: str | None = None,
        status_reason: str | None = None,
        status_message: str | None = None,
        extra_conditions: list[Obj] | None = None,
        ip: bool = True,
        annotations: dict[str, str] | None = None,
        pvc_names: dict[str, str] | None = None,
        tpl_override: Obj | None = None,
        labels_override: dict[str, str] | None = None,
        patch_conditions: dict[str, Obj] | None = None,
        sched_reason: str = "Unschedulable",
    ) -> Obj:
        kind = owner["kind"]
        ns = owner["metadata"]["namespace"]
        owner_name = owner["metadata"]["name"]
        tpl = copy.deepcopy(tpl_override or owner["spec"]["template"])
        labels = dict(tpl["metadata"]["labels"])
        spec = tpl["spec"]
        pod_annotations = dict(tpl["metadata"].get("annotations", {}))
        pod_annotations.update(annotations or {})
        generate_name: str | None = f"{owner_name}-"
        if kind == "StatefulSet":
            assert name is not None
            generate_name = owner_name + "-"
            ordinal = name.rsplit("-", 1)[1]
            labels["apps.kubernetes.io/pod-index"] = ordinal
            labels["controller-revision-hash"] = owner["status"]["_revision"]
            labels["statefulset.kubernetes.io/pod-name"] = name
            spec["hostname"] = name
            spec["subdomain"] = owner["spec"]["serviceName"]
            claim_vols = [
                vol_pvc(ct["metadata"]["name"], f"{ct['metadata']['name']}-{name}")
                for ct in owner["spec"].get("volumeClaimTemplates", [])
            ]
            spec["volumes"] = claim_vols + spec.get("volumes", [])
        elif kind == "DaemonSet":
            node_seed = node["metadata"]["name"] if node else ""
            name = (
                name
                or f"{owner_name}-{safe_string(self.name + owner_name + created + node_seed, 5)}"
            )
            labels["controller-revision-hash"] = owner["status"].get(
                "_revision", k8s_hash(self.name + owner_name + str(owner["metadata"]["generation"]))
            )
            labels["pod-template-generation"] = str(owner["metadata"]["generation"])
            assert node is not None
            spec["affinity"] = {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchFields": [
                                    {
                                        "key": "metadata.name",
                                        "operator": "In",
                                        "values": [node["metadata"]["name"]],
                                    }
                                ]
                            }
                        ]
                    }
                }
            }
        else:
            seed = f"{owner_name}|{created}|{len(self.objects)}"
            name = name or f"{owner_name}-{safe_string(self.name + seed, 5)}"
        labels.update(labels_override or {})
        if pvc_names:
            for v in spec.get("volumes", []):
                if v["name"] in pvc_names:
                    v["persistentVolumeClaim"] = {"claimName": pvc_names[v["name"]]}
        finalizers = None
        if kind == "Job" and any(s.kind != "terminated" for s in states):
            finalizers = ["batch.kubernetes.io/job-tracking"]
        meta = self.meta(
            "Pod",
            name,
            ns,
            created,
            labels=labels,
            annotations=pod_annotations or None,
            owner=owner,
            generate_name=generate_name,
            finalizers=finalizers,
        )
        if deleting:
            meta["deletionTimestamp"] = self.t(deleting)
            meta["deletionGracePeriodSeconds"] = spec.get("terminationGracePeriodSeconds", 30)
        token_vol = f"kube-api-access-{safe_string(self.name + name, 5)}"
        sa = spec.get("serviceAccountName", "default")
        spec["serviceAccount"] = sa
        spec["serviceAccountName"] = sa
        spec["enableServiceLinks"] = True
        spec["preemptionPolicy"] = "PreemptLowerPriority"
        spec["priority"] = 0
        if spec.get("priorityClassName") == "system-node-critical":
            spec["priority"] = 2000001000
        elif spec.get("priorityClassName") == "system-cluster-critical":
            spec["priority"] = 2000000000
        tolerations = list(spec.get("tolerations", []))
        if kind == "DaemonSet":
            for key, effect in (
                ("node.kubernetes.io/not-ready", "NoExecute"),
                ("node.kubernetes.io/unreachable", "NoExecute"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ):
                tolerations.append({"effect": effect, "key": key, "operator": "Exists"})
        else:
            for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
                tolerations.append(
                    {
                        "effect": "NoExecute",
                        "key": key,
                        "operator": "Exists",
                        "tolerationSeconds": 300,
                    }
                )
        spec["tolerations"] = tolerations
        spec.setdefault("volumes", []).append(
            {
                "name": token_vol,
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                "name": "kube-root-ca.crt",
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "fieldRef": {
                                            "apiVersion": "v1",
                                            "fieldPath": "metadata.namespace",
                                        },
                                        "path": "namespace",
                                    }
                                ]
                            }
                        },
                    ],
                },
            }
        )
        for c in spec["containers"] + spec.get("initContainers", []):
            c.setdefault("volumeMounts", []).append(
                {
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    "name": token_vol,
                    "readOnly": True,
                }
            )
        if node is not None:
            spec["nodeName"] = node["metadata"]["name"]
        obj: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        obj["status"] = self._pod_status(
            obj,
            node,
            created,
            states,
            init_states=init_states,
            phase=phase,
            unschedulable=unschedulable,
            scheduled_at=scheduled_at,
            ready_since=ready_since,
            status_reason=status_reason,
            status_message=status_message,
            extra_conditions=extra_conditions,
            ip=ip,
        )
        if unschedulable is not None:
            obj["status"]["conditions"][0]["reason"] = sched_reason
        for cond in obj["status"].get("conditions", []):
            if patch_conditions and cond["type"] in patch_conditions:
                cond.update(patch_conditions[cond["type"]])
                for k in [k for k, v in cond.items() if v is None and k != "lastProbeTime"]:
                    cond.pop(k)
        return self.add(obj)

    def _container_status(
        self, c: Obj, s: CState, pod_name: str, init: bool = False, pod_meta: Obj | None = None
    ) -> Obj:
        image = c["image"]
        cs: Obj = {
            "image": image,
            "imageID": "",
            "lastState": {},
            "name": c["name"],
            "ready": s.ready,
            "restartCount": s.restarts,
            "started": s.started if s.started is not None else s.kind == "running",
        }
        if init:
            cs.pop("started")
            cs["started"] = s.kind == "running"
        seed = f"{pod_name}/{c['name']}"
        if s.created:
            norm = normalized_image(image)
            repo = norm.rsplit(":", 1)[0] if "@" not in norm else norm.split("@")[0]
            cs["image"] = norm
            cs["imageID"] = f"{repo}@sha256:{hex_string('img' + image)}"
            cs["containerID"] = f"containerd://{hex_string(seed + str(s.restarts))}"
        if s.kind == "running":
            cs["state"] = {"running": {"startedAt": self.t(s.since)}}
        elif s.kind == "waiting":
            w: Obj = {"reason": s.reason}
            if s.reason == "CrashLoopBackOff" and not s.message and pod_meta is not None:
                backoff = min(10 * 2 ** max(s.restarts - 1, 0), 300)
                text = f"{backoff // 60}m{backoff % 60}s" if backoff >= 60 else f"{backoff}s"
                s.message = (
                    f"back-off {text} restarting failed container={c['name']} "
                    f"pod={pod_name}_{pod_meta['namespace']}({pod_meta['uid']})"
                )
            if s.message:
                w["message"] = s.message
            cs["state"] = {"waiting": w}
        else:
            t: Obj = {
                "containerID": cs["containerID"],
                "exitCode": s.exit_code,
                "finishedAt": self.t(s.finished),
                "reason": s.reason,
                "startedAt": self.t(s.since),
            }
            cs["state"] = {"terminated": t}
        if s.last:
            code, reason, started, finished = s.last
            cs["lastState"] = {
                "terminated": {
                    "containerID": f"containerd://{hex_string(seed + str(s.restarts - 1))}",
                    "exitCode": code,
                    "finishedAt": self.t(finished),
                    "reason": reason,
                    "startedAt": self.t(started),
                }
            }
        if s.created:
            mounts = []
            for m in c.get("volumeMounts", []):
                sm = {"mountPath": m["mountPath"], "name": m["name"]}
                if m.get("readOnly"):
                    sm["readOnly"] = True
                    sm["recursiveReadOnly"] = "Disabled"
                mounts.append(sm)
            cs["volumeMounts"] = mounts
            if self.p.minor >= 33 and c.get("resources"):
                cs["resources"] = copy.deepcopy(c["resources"])
                cs["allocatedResources"] = copy.deepcopy(c["resources"].get("requests", {}))
                if not cs["allocatedResources"]:
                    cs.pop("allocatedResources")
            if self.p.minor >= 33:
                cs["user"] = {"linux": {"gid": 0, "supplementalGroups": [0], "uid": 0}}
        return cs

    def _pod_status(
        self,
        pod: Obj,
        node: Obj | None,
        created: str,
        states: list[CState],
        *,
        init_states: list[CState] | None,
        phase: str | None,
        unschedulable: str | None,
        scheduled_at: str | None,
        ready_since: str | None,
        status_reason: str | None,
        status_message: str | None,
        extra_conditions: list[Obj] | None,
        ip: bool,
    ) -> Obj:
        spec = pod["spec"]
        name = pod["metadata"]["name"]
        created_dt = self.dt(created)
        sched = scheduled_at or created
        if unschedulable is not None:
            return {
                "conditions": [
                    {
                        "lastProbeTime": None,
                        "lastTransitionTime": self.t(sched),
                        "message": unschedulable,
                        "reason": "Unschedulable",
                        "status": "False",
                        "type": "PodScheduled",
                    }
                ],
                "phase": "Pending",
                "qosClass": qos_class(spec["containers"]),
            }
        assert node is not None
        by_name = {s.name: s for s in states}
        statuses = [
            self._container_status(c, by_name[c["name"]], name, pod_meta=pod["metadata"])
            for c in spec["containers"]
        ]
        statuses.sort(key=lambda s: s["name"])
        sched_dt = self.dt(sched)
        t_sched = iso(sched_dt + timedelta(seconds=1))
        t_sandbox = iso(sched_dt + timedelta(seconds=3))
        all_ready = all(s.ready for s in states)
        all_terminated = all(s.kind == "terminated" for s in states)
        unready = sorted(s.name for s in states if not s.ready)
        if ready_since is None:
            latest = max(
                (self.dt(s.since) for s in states if s.kind == "running"),
                default=created_dt + timedelta(seconds=5),
            )
            for s in states:
                if s.last and not s.ready:
                    latest = max(latest, self.dt(s.last[3]))
                if s.kind == "terminated":
                    latest = max(latest, self.dt(s.finished))
            ready_t = iso(latest + timedelta(seconds=8 if all_ready else 0))
        else:
            ready_t = self.t(ready_since)
        ready_cond: Obj = {
            "lastProbeTime": None,
            "lastTransitionTime": ready_t,
            "status": "True" if all_ready else "False",
            "type": "Ready",
        }
        cready = dict(ready_cond, type="ContainersReady")
        if not all_ready:
            reason = "PodCompleted" if all_terminated else "ContainersNotReady"
            ready_cond["reason"] = reason
            cready["reason"] = reason
            if not all_terminated:
                msg = f"containers with unready status: [{' '.join(unready)}]"
                ready_cond["message"] = msg
                cready["message"] = msg
        initialized: Obj = {
            "lastProbeTime": None,
            "lastTransitionTime": t_sandbox,
            "status": "True",
            "type": "Initialized",
        }
        init_statuses: list[Obj] = []
        if init_states:
            by_init = {s.name: s for s in init_states}
            init_statuses = [
                self._container_status(c, by_init[c["name"]], name, init=True)
                for c in spec.get("initContainers", [])
            ]
            pending_init = [s.name for s in init_states if s.kind != "terminated"]
            if pending_init:
                initialized.update(
                    status="False",
                    reason="ContainersNotInitialized",
                    message=f"containers with incomplete status: [{' '.join(pending_init)}]",
                )
            else:
                initialized["lastTransitionTime"] = self.t(init_states[-1].finished)
        if all_terminated and phase in ("Succeeded", "Failed"):
            sandbox_ready = {"status": "False", "lastTransitionTime": ready_t}
        else:
            sandbox_ready = {"status": "True", "lastTransitionTime": t_sandbox}
        conditions = [
            {"lastProbeTime": None, "type": "PodReadyToStartContainers", **sandbox_ready},
            initialized,
            ready_cond,
            cready,
            {
                "lastProbeTime": None,
                "lastTransitionTime": t_sched,
                "status": "True",
                "type": "PodScheduled",
            },
        ]
        conditions = [{k: c[k] for k in sorted(c)} for c in conditions]
        if extra_conditions:
            conditions = extra_conditions + conditions
        if phase is None:
            if all(s.kind == "waiting" and not s.created for s in states) or (
                init_states and any(s.kind != "terminated" for s in init_states)
            ):
                phase = "Pending"
            else:
                phase = "Running"
        host_ip = self.node_ip(node)
        status: Obj = {
            "conditions": conditions,
            "containerStatuses": statuses,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "phase": phase,
            "qosClass": qos_class(spec["containers"]),
            "startTime": iso(sched_dt + timedelta(seconds=1)),
        }
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        if ip:
            pod_ip = (
                self.node_ip(node)
                if spec.get("hostNetwork")
                else self.pod_ip(node, pod["metadata"]["namespace"] + "/" + name)
            )
            status["podIP"] = pod_ip
            status["podIPs"] = [{"ip": pod_ip}]
        if status_reason:
            status["reason"] = status_reason
        if status_message:
            status["message"] = status_message
        return status

    # ----------------------------------------------------------------- networking
    def service(
        self,
        namespace: str,
        name: str,
        selector: dict[str, str] | None,
        ports: list[tuple[str, int, int | str]],
        *,
        created: str = "-200d",
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        headless: bool = False,
        external_name: str | None = None,
        slices: bool = False,
        publish_not_ready: bool = False,
    ) -> Obj:
        spec: Obj = {"sessionAffinity": "None"}
        if external_name:
            spec.update({"externalName": external_name, "type": "ExternalName"})
        else:
            ip = "None" if headless else self.service_ip(f"{namespace}/{name}")
            spec.update(
                {
                    "clusterIP": ip,
                    "clusterIPs": [ip],
                    "internalTrafficPolicy": "Cluster",
                    "ipFamilies": ["IPv4"],
                    "ipFamilyPolicy": "SingleStack",
                    "ports": [
                        {"name": n, "port": p, "protocol": "TCP", "targetPort": tp}
                        for n, p, tp in ports
                    ],
                    "type": "ClusterIP",
                }
            )
            if selector:
                spec["selector"] = dict(selector)
            if publish_not_ready:
                spec["publishNotReadyAddresses"] = True
        obj = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.meta(
                "Service", name, namespace, created, labels=labels, annotations=annotations
            ),
            "spec": spec,
            "status": {"loadBalancer": {}},
        }
        if slices:
            self.services_with_slices.add((namespace, name))
        return self.add(obj)

    def _build_endpoints(self) -> None:
        for svc in self.all("Service"):
            ns = svc["metadata"]["namespace"]
            name = svc["metadata"]["name"]
            selector = svc["spec"].get("selector")
            if not selector or (ns, name) in self.skip_endpoints:
                continue
            pods = [
                p
                for p in self.all("Pod", ns)
                if all(p["metadata"]["labels"].get(k) == v for k, v in selector.items())
                and p["status"].get("podIP")
                and p["status"]["phase"] not in ("Succeeded", "Failed")
                and "deletionTimestamp" not in p["metadata"]
            ]
            ports = []
            for sp in svc["spec"]["ports"]:
                target = sp["targetPort"]
                number = target
                if isinstance(target, str) and pods:
                    for c in pods[0]["spec"]["containers"]:
                        for cp in c.get("ports", []):
                            if cp.get("name") == target:
                                number = cp["containerPort"]
                if isinstance(number, str):
                    continue
                ports.append({"name": sp["name"], "port": number, "protocol": "TCP"})
            ready_pods = []
            unready_pods = []
            for p in sorted(pods, key=lambda p: p["status"]["podIP"]):
                ready = any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"]["conditions"]
                )
                if ready or svc["spec"].get("publishNotReadyAddresses"):
                    ready_pods.append(p)
                else:
                    unready_pods.append(p)

            def addr(p: Obj, ns: str = ns, svc: Obj = svc) -> Obj:
                a: Obj = {
                    "ip": p["status"]["podIP"],
                    "nodeName": p["spec"]["nodeName"],
                    "targetRef": {
                        "kind": "Pod",
                        "name": p["metadata"]["name"],
                        "namespace": ns,
                        "uid": p["metadata"]["uid"],
                    },
                }
                if svc["spec"].get("clusterIP") == "None" and p["spec"].get("hostname"):
                    a["hostname"] = p["spec"]["hostname"]
                return a

            labels = dict(svc["metadata"].get("labels", {}))
            ep_meta = self.meta("Endpoints", name, ns, svc["metadata"]["creationTimestamp"])
            if labels:
                ep_meta["labels"] = labels
            trigger = max(
                [svc["metadata"]["creationTimestamp"]]
                + [
                    c["lastTransitionTime"]
                    for p in pods
                    for c in p["status"]["conditions"]
                    if c["type"] == "Ready"
                ]
            )
            ep_meta["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": trigger}
            ep: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": ep_meta}
            if pods and ports:
                subset: Obj = {"ports": ports}
                if ready_pods:
                    subset["addresses"] = [addr(p) for p in ready_pods]
                if unready_pods:
                    subset["notReadyAddresses"] = [addr(p) for p in unready_pods]
                ep["subsets"] = [subset]
            self.add(ep)
            if (ns, name) in self.services_with_slices:
                slice_name = f"{name}-{safe_string(self.name + ns + name, 5)}"
                s_labels = dict(labels)
                s_labels.update(
                    {
                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                        "kubernetes.io/service-name": name,
                    }
                )
                s_meta = self.meta(
                    "EndpointSlice",
                    slice_name,
                    ns,
                    svc["metadata"]["creationTimestamp"],
                    labels=s_labels,
                    owner=svc,
                    generate_name=f"{name}-",
                    generation=3 + len(pods),
                )
                s_meta["annotations"] = {
                    "endpoints.kubernetes.io/last-change-trigger-time": trigger
                }
                endpoints = []
                for p in sorted(pods, key=lambda p: p["status"]["podIP"]):
                    ready = p in ready_pods
                    e: Obj = {
                        "addresses": [p["status"]["podIP"]],
                        "conditions": {"ready": ready, "serving": ready, "terminating": False},
                        "nodeName": p["spec"]["nodeName"],
                        "targetRef": addr(p)["targetRef"],
                    }
                    zone = (
                        self._nodes[p["spec"]["nodeName"]]["metadata"]["labels"].get(
                            "topology.kubernetes.io/zone"
                        )
                        if p["spec"]["nodeName"] in self._nodes
                        else None
                    )
                    if zone:
                        e["zone"] = zone
                    endpoints.append(e)
                self.add(
                    {
                        "addressType": "IPv4",
                        "apiVersion": "discovery.k8s.io/v1",
                        "endpoints": endpoints or None,
                        "kind": "EndpointSlice",
                        "metadata": s_meta,
                        "ports": ports or None,
                    }
                )

    def ingress(
        self,
        namespace: str,
        name: str,
        host: str,
        service: str,
        port: str,
        *,
        created: str = "-200d",
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        tls_name: str | None = None,
        lb_ip: str = "10.0.3.117",
    ) -> Obj:
        spec: Obj = {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "backend": {"service": {"name": service, "port": {"name": port}}},
                                "path": "/",
                                "pathType": "Prefix",
                            }
                        ]
                    },
                }
            ],
        }
        if tls_name:
            spec["tls"] = [{"hosts": [host], "secretName": tls_name}]
        obj = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": self.meta(
                "Ingress",
                name,
                namespace,
                created,
                labels=labels,
                annotations=annotations,
                generation=1,
            ),
            "spec": spec,
            "status": {"loadBalancer": {"ingress": [{"ip": lb_ip}]}},
        }
        return self.add(obj)

    def network_policy(
        self,
        namespace: str,
        name: str,
        pod_selector: Obj,
        *,
        ingress: list[Obj] | None = None,
        egress: list[Obj] | None = None,
        policy_types: list[str],
        created: str = "-90d",
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        generation: int = 1,
        path: str | None = None,
    ) -> Obj:
        spec: Obj = {"podSelector": pod_selector, "policyTypes": policy_types}
        if ingress is not None:
            spec["ingress"] = ingress
        if egress is not None:
            spec["egress"] = egress
        obj = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": self.meta(
                "NetworkPolicy",
                name,
                namespace,
                created,
                labels=labels,
                annotations=annotations,
                generation=generation,
            ),
            "spec": spec,
        }
        return self.add(obj, path)

    # ----------------------------------------------------------------- config & storage
    def configmap(
        self,
        namespace: str,
        name: str,
        data: dict[str, str],
        *,
        created: str = "-200d",
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        path: str | None = None,
    ) -> Obj:
        return self.add(
            {
                "apiVersion": "v1",
                "data": data,
                "kind": "ConfigMap",
                "metadata": self.meta(
                    "ConfigMap", name, namespace, created, labels=labels, annotations=annotations
                ),
            },
            path,
        )

    def root_ca(self, namespace: str, created: str = "-400d") -> Obj:
        body = base64.b64encode(digest("rootca", self.cluster) * 24).decode()
        pem = "\n".join(textwrap.wrap(body, 64))
        cert = f"-----BEGIN CERTIFICATE-----\n{pem}\n-----END CERTIFICATE-----\n"
        return self.configmap(
            namespace,
            "kube-root-ca.crt",
            {"ca.crt": cert},
            created=created,
            annotations={
                "kubernetes.io/description": "Contains a CA bundle that can be used to verify the "
                "kube-apiserver when using internal endpoints such as the internal service IP or "
                "kubernetes.default.svc. No other usage is guaranteed across distributions of "
                "Kubernetes clusters."
            },
        )

    def secret(
        self,
        namespace: str,
        name: str,
        data: dict[str, str],
        *,
        stype: str = "Opaque",
        created: str = "-200d",
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        raw_b64: bool = False,
    ) -> Obj:
        return self.add(
            {
                "apiVersion": "v1",
                "data": {k: v if raw_b64 else b64(v) for k, v in data.items()},
                "kind": "Secret",
                "metadata": self.meta(
                    "Secret", name, namespace, created, labels=labels, annotations=annotations
                ),
                "type": stype,
            }
        )

    def service_account(
        self,
        namespace: str,
        name: str,
        *,
        created: str = "-400d",
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        pull_secrets: list[str] | None = None,
    ) -> Obj:
        obj: Obj = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": self.meta(
                "ServiceAccount", name, namespace, created, labels=labels, annotations=annotations
            ),
        }
        if pull_secrets:
            obj["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
        return self.add(obj)

    def pvc(
        self,
        namespace: str,
        name: str,
        size: str,
        storage_class: str | None,
        *,
        created: str,
        phase: str = "Bound",
        volume: str | None = None,
        modes: list[str] | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        provisioner: str | None = None,
        selected_node: str | None = None,
    ) -> Obj:
        ann: dict[str, str] = {}
        if phase == "Bound":
            ann["pv.kubernetes.io/bind-completed"] = "yes"
            ann["pv.kubernetes.io/bound-by-controller"] = "yes"
        if provisioner:
            ann["volume.beta.kubernetes.io/storage-provisioner"] = provisioner
            ann["volume.kubernetes.io/storage-provisioner"] = provisioner
        if selected_node:
            ann["volume.kubernetes.io/selected-node"] = selected_node
        ann.update(annotations or {})
        spec: Obj = {
            "accessModes": modes or ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
            "volumeMode": "Filesystem",
        }
        if storage_class:
            spec["storageClassName"] = storage_class
        status: Obj = {"phase": phase}
        if phase == "Bound":
            assert volume
            spec["volumeName"] = volume
            status["accessModes"] = spec["accessModes"]
            status["capacity"] = {"storage": size}
        return self.add(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": self.meta(
                    "PersistentVolumeClaim",
                    name,
                    namespace,
                    created,
                    labels=labels,
                    annotations=ann or None,
                    finalizers=["kubernetes.io/pvc-protection"],
                ),
                "spec": spec,
                "status": status,
            }
        )

    def pv_for(
        self,
        claim: Obj,
        *,
        driver: str,
        handle: str,
        zone: str | None = None,
        fs_type: str = "ext4",
        created: str | None = None,
    ) -> Obj:
        name = f"pvc-{claim['metadata']['uid']}"
        spec = claim["spec"]
        pv_spec: Obj = {
            "accessModes": spec["accessModes"],
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "name": claim["metadata"]["name"],
                "namespace": claim["metadata"]["namespace"],
                "resourceVersion": claim["metadata"]["resourceVersion"],
                "uid": claim["metadata"]["uid"],
            },
            "csi": {
                "driver": driver,
                "fsType": fs_type,
                "volumeAttributes": {
                    "storage.kubernetes.io/csiProvisionerIdentity": f"17{int.from_bytes(digest(driver)[:5], 'big') % 10**11:011d}"
                    f"-{int.from_bytes(digest(driver)[:2], 'big') % 9000 + 1000}-{driver}"
                },
                "volumeHandle": handle,
            },
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": spec.get("storageClassName", ""),
            "volumeMode": "Filesystem",
        }
        if zone:
            key = (
                "topology.ebs.csi.aws.com/zone"
                if driver == "ebs.csi.aws.com"
                else "topology.gke.io/zone"
            )
            pv_spec["nodeAffinity"] = {
                "required": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": key, "operator": "In", "values": [zone]}]}
                    ]
                }
            }
        claim["spec"]["volumeName"] = name
        obj = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": self.meta(
                "PersistentVolume",
                name,
                None,
                created or claim["metadata"]["creationTimestamp"],
                annotations={
                    "pv.kubernetes.io/provisioned-by": driver,
                    "volume.kubernetes.io/provisioner-deletion-secret-name": "",
                    "volume.kubernetes.io/provisioner-deletion-secret-namespace": "",
                },
                finalizers=[
                    "external-provisioner.volume.kubernetes.io/finalizer",
                    "kubernetes.io/pv-protection",
                ],
            ),
            "spec": pv_spec,
            "status": {
                "lastPhaseTransitionTime": claim["metadata"]["creationTimestamp"],
                "phase": "Bound",
            },
        }
        return self.add(obj)

    def resource_quota(
        self,
        namespace: str,
        name: str,
        hard: dict[str, str],
        used: dict[str, str],
        *,
        created: str = "-300d",
        labels: dict[str, str] | None = None,
    ) -> Obj:
        return self.add(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": self.meta("ResourceQuota", name, namespace, created, labels=labels),
                "spec": {"hard": hard},
                "status": {"hard": hard, "used": used},
            }
        )

    def limit_range(self, namespace: str, name: str, default: Obj, default_request: Obj) -> Obj:
        return self.add(
            {
                "apiVersion": "v1",
                "kind": "LimitRange",
                "metadata": self.meta("LimitRange", name, namespace, "-300d"),
                "spec": {
                    "limits": [
                        {"default": default, "defaultRequest": default_request, "type": "Container"}
                    ]
                },
            }
        )

    def hpa(
        self,
        target: Obj,
        *,
        min_replicas: int,
        max_replicas: int,
        current: int,
        desired: int,
        cpu_target: int,
        cpu_current: int,
        cpu_value: str,
        created: str = "-200d",
        last_scale: str = "-3h",
        limited: bool = False,
        name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> Obj:
        ns = target["metadata"]["namespace"]
        hname = name or target["metadata"]["name"]
        if limited:
            limited_cond = (
                "True",
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        else:
            limited_cond = (
                "False",
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            )
        conditions = [
            {
                "lastTransitionTime": self.t(created),
                "message": "recommended size matches current size"
                if current == desired
                else f"the HPA controller was able to update the target scale to {desired}",
                "reason": "ReadyForNewScale" if current == desired else "SucceededRescale",
                "status": "True",
                "type": "AbleToScale",
            },
            {
                "lastTransitionTime": self.t(created),
                "message": "the HPA was able to successfully calculate a replica count from cpu "
                "resource utilization (percentage of request)",
                "reason": "ValidMetricFound",
                "status": "True",
                "type": "ScalingActive",
            },
            {
                "lastTransitionTime": self.t(last_scale),
                "message": limited_cond[2],
                "reason": limited_cond[1],
                "status": limited_cond[0],
                "type": "ScalingLimited",
            },
        ]
        return self.add(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": self.meta("HorizontalPodAutoscaler", hname, ns, created, labels=labels),
                "spec": {
                    "maxReplicas": max_replicas,
                    "metrics": [
                        {
                            "resource": {
                                "name": "cpu",
                                "target": {"averageUtilization": cpu_target, "type": "Utilization"},
                            },
                            "type": "Resource",
                        }
                    ],
                    "minReplicas": min_replicas,
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1",
                        "kind": target["kind"],
                        "name": target["metadata"]["name"],
                    },
                },
                "status": {
                    "conditions": conditions,
                    "currentMetrics": [
                        {
                            "resource": {
                                "current": {
                                    "averageUtilization": cpu_current,
                                    "averageValue": cpu_value,
                                },
                                "name": "cpu",
                            },
                            "type": "Resource",
                        }
                    ],
                    "currentReplicas": current,
                    "desiredReplicas": desired,
                    "lastScaleTime": self.t(last_scale),
                },
            }
        )

    def rbac(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        body: Obj,
        created: str = "-120d",
        labels: dict[str, str] | None = None,
    ) -> Obj:
        obj: Obj = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": kind,
            "metadata": self.meta(kind, name, namespace, created, labels=labels),
        }
        obj.update(body)
        return self.add(obj)

    # ----------------------------------------------------------------- events
    def event(
        self,
        obj: Obj,
        reason: str,
        message: str,
        *,
        first: str,
        last: str | None = None,
        count: int = 1,
        warning: bool = False,
        component: str = "kubelet",
        host: str | None = None,
        field_path: str | None = None,
        instance: str | None = None,
        involved_uid: str | None = None,
    ) -> Obj:
        """A core/v1 Event recorded with the legacy recorder (count, first/lastTimestamp)."""
        m = obj["metadata"]
        ns = m.get("namespace")
        first_dt = self.dt(first)
        involved: Obj = {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": m["name"],
            "resourceVersion": m["resourceVersion"],
            "uid": involved_uid or m["uid"],
        }
        if ns:
            involved["namespace"] = ns
        if field_path:
            involved["fieldPath"] = field_path
        ev_ns = ns or "default"
        nanos = (
            int(first_dt.timestamp()) * 1_000_000_000
            + int.from_bytes(digest("evn", self.name, m["name"], reason, message)[:4], "big")
            % 1_000_000_000
        )
        source: Obj = {"component": component}
        if host:
            source["host"] = host
        ev: Obj = {
            "apiVersion": "v1",
            "count": count,
            "eventTime": None,
            "firstTimestamp": iso(first_dt),
            "involvedObject": involved,
            "kind": "Event",
            "lastTimestamp": self.t(last or first),
            "message": message,
            "metadata": {
                "creationTimestamp": iso(first_dt),
                "name": f"{m['name']}.{nanos:x}",
                "namespace": ev_ns,
                "resourceVersion": self.rv(),
                "uid": self.uid("Event", ev_ns, m["name"], reason, message),
            },
            "reason": reason,
            "reportingComponent": component,
            "reportingInstance": instance if instance is not None else (host or ""),
            "source": source,
            "type": "Warning" if warning else "Normal",
        }
        return self.add(ev)

    def node_event(
        self,
        node: Obj,
        reason: str,
        message: str,
        *,
        first: str,
        last: str | None = None,
        count: int = 1,
        warning: bool = False,
        component: str = "kubelet",
    ) -> Obj:
        """Kubelet events about its Node carry the node name as uid (a long-standing quirk)."""
        name = node["metadata"]["name"]
        if component == "kubelet":
            return self.event(
                node,
                reason,
                message,
                first=first,
                last=last,
                count=count,
                warning=warning,
                host=name,
                involved_uid=name,
            )
        return self.event(
            node,
            reason,
            message,
            first=first,
            last=last,
            count=count,
            warning=warning,
            component=component,
        )

    def scheduler_event(
        self,
        pod: Obj,
        reason: str,
        message: str,
        *,
        first: str,
        last: str | None = None,
        count: int = 1,
        warning: bool = True,
    ) -> Obj:
        """An event the scheduler wrote through events.k8s.io/v1, as `kubectl get events` shows it
        in core/v1: no count/firstTimestamp/lastTimestamp, eventTime and series instead."""
        m = pod["metadata"]
        first_dt = self.dt(first) + timedelta(
            microseconds=int.from_bytes(digest(reason, m["name"])[:3], "big") % 999999
        )
        nanos = int(first_dt.timestamp() * 1e6) * 1000
        ev: Obj = {
            "action": "Scheduling" if reason == "FailedScheduling" else "Binding",
            "apiVersion": "v1",
            "eventTime": iso_micro(first_dt),
            "firstTimestamp": None,
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": m["name"],
                "namespace": m["namespace"],
                "resourceVersion": m["resourceVersion"],
                "uid": m["uid"],
            },
            "kind": "Event",
            "lastTimestamp": None,
            "message": message,
            "metadata": {
                "creationTimestamp": iso(first_dt),
                "name": f"{m['name']}.{nanos:x}",
                "namespace": m["namespace"],
                "resourceVersion": self.rv(),
                "uid": self.uid("Event", m["namespace"], m["name"], reason, message),
            },
            "reason": reason,
            "reportingComponent": "default-scheduler",
            "reportingInstance": "default-scheduler-" + self.control_plane_host(),
            "source": {},
            "type": "Warning" if warning else "Normal",
        }
        if count > 1:
            last_dt = self.dt(last or first) + timedelta(microseconds=123456)
            ev["series"] = {"count": count, "lastObservedTime": iso_micro(last_dt)}
        return self.add(ev)

    def control_plane_host(self) -> str:
        if self.p.flavour == "kubeadm":
            return "dc1-k8s-cp2"
        if self.p.flavour == "gke":
            return "gke-" + hex_string(self.cluster + "cp", 8) + "-" + hex_string("cpvm", 4)
        return "ip-172-16-" + str(digest(self.cluster)[0] % 200) + "-14.ec2.internal"

    def scheduled(self, pod: Obj, node: Obj, at: str) -> Obj:
        m = pod["metadata"]
        return self.scheduler_event(
            pod,
            "Scheduled",
            f"Successfully assigned {m['namespace']}/{m['name']} to {node['metadata']['name']}",
            first=at,
            warning=False,
        )

    def container_events(
        self,
        pod: Obj,
        container_name: str,
        *,
        first: str,
        last: str,
        starts: int,
        backoffs: int = 0,
        backoff_last: str | None = None,
        pulled_fresh: str | None = None,
    ) -> None:
        """Pulled/Created/Started (x starts) and BackOff (x backoffs) for one container."""
        node = pod["spec"]["nodeName"]
        c = next(c for c in pod["spec"]["containers"] if c["name"] == container_name)
        fp = f"spec.containers{{{container_name}}}"
        kw: Obj = {"host": node, "field_path": fp}
        if pulled_fresh:
            self.event(pod, "Pulling", f'Pulling image "{c["image"]}"', first=first, **kw)
            self.event(pod, "Pulled", pulled_fresh, first=first, **kw)
            if starts > 1:
                self.event(
                    pod,
                    "Pulled",
                    f'Container image "{c["image"]}" already present on machine',
                    first=first,
                    last=last,
                    count=starts - 1,
                    **kw,
                )
        else:
            self.event(
                pod,
                "Pulled",
                f'Container image "{c["image"]}" already present on machine',
                first=first,
                last=last,
                count=starts,
                **kw,
            )
        self.event(
            pod,
            "Created",
            f"Created container: {container_name}",
            first=first,
            last=last,
            count=starts,
            **kw,
        )
        self.event(
            pod,
            "Started",
            f"Started container {container_name}",
            first=first,
            last=last,
            count=starts,
            **kw,
        )
        if backoffs:
            m = pod["metadata"]
            self.event(
                pod,
                "BackOff",
                f"Back-off restarting failed container {container_name} in pod "
                f"{m['name']}_{m['namespace']}({m['uid']})",
                first=first,
                last=backoff_last or last,
                count=backoffs,
                warning=True,
                **kw,
            )

    # ----------------------------------------------------------------- logs & metrics
    def log(
        self, namespace: str, pod: str | Obj, container_name: str, text: str, previous: bool = False
    ) -> None:
        pod_name = pod if isinstance(pod, str) else pod["metadata"]["name"]
        suffix = ".previous.log" if previous else ".log"
        body = textwrap.dedent(text).strip("\n") + "\n"
        self.logs[f"{namespace}/{pod_name}/{container_name}{suffix}"] = body

    def metric(
        self,
        name: str,
        query: str,
        series: list[tuple[dict[str, str], list[float]]],
        *,
        step: int = 60,
    ) -> None:
        """A query_range response; values are spread evenly, ending at the alert's start + 4m."""
        end = int(self.now.timestamp()) // step * step
        result = []
        for labels, values in series:
            start = end - step * (len(values) - 1)
            result.append(
                {
                    "metric": labels,
                    "values": [[start + i * step, _fmt_value(v)] for i, v in enumerate(values)],
                }
            )
        self.metrics[name] = {
            "query": query,
            "status": "success",
            "data": {"resultType": "matrix", "result": result},
        }

    # ----------------------------------------------------------------- alert
    def alert(
        self,
        alertname: str,
        labels: dict[str, str],
        *,
        summary: str,
        description: str,
        runbook: str,
        expr: str,
        severity: str,
        group_by: Iterable[str] = ("alertname", "namespace"),
        starts_ms: int = 0,
    ) -> Obj:
        all_labels = {"alertname": alertname, "cluster": self.cluster, "prometheus": PROMETHEUS}
        all_labels.update(labels)
        all_labels["severity"] = severity
        all_labels = {k: all_labels[k] for k in sorted(all_labels)}
        annotations = {"description": description, "runbook_url": runbook, "summary": summary}
        starts = self.alert_at.replace(microsecond=starts_ms * 1000)
        starts_text = iso(starts) if not starts_ms else starts.strftime("%Y-%m-%dT%H:%M:%S.%f")
        if starts_ms:
            starts_text = starts_text.rstrip("0") + "Z"
        group_labels = {k: all_labels[k] for k in sorted(group_by) if k in all_labels}
        group_key = "{}/{}:{" + ", ".join(f'{k}="{v}"' for k, v in group_labels.items()) + "}"
        generator = f"{PROM_URL}/graph?g0.expr={urllib.parse.quote_plus(expr)}&g0.tab=1"
        self.payload = {
            "receiver": "oncallm",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": all_labels,
                    "annotations": annotations,
                    "startsAt": starts_text,
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": generator,
                    "fingerprint": fingerprint(all_labels),
                }
            ],
            "groupLabels": group_labels,
            "commonLabels": all_labels,
            "commonAnnotations": annotations,
            "externalURL": AM_URL,
            "version": "4",
            "groupKey": group_key,
            "truncatedAlerts": 0,
        }
        return self.payload

    def kps_alert(
        self,
        alertname: str,
        labels: dict[str, str],
        *,
        value: str = "",
        starts_ms: int = 0,
        ksm: bool = True,
    ) -> Obj:
        """A kube-prometheus-stack alert, with the labels and annotations its rule produces."""
        rule = KPS_RULES[alertname]
        full: dict[str, str] = {}
        if ksm:
            full.update(
                {
                    "endpoint": "http",
                    "instance": self.p.ksm_instance,
                    "job": "kube-state-metrics",
                    "service": KSM_SERVICE,
                }
            )
        full.update(labels)
        fmt_labels = dict(full, cluster=self.cluster, value=value)
        return self.alert(
            alertname,
            full,
            summary=rule["summary"],
            description=rule["description"].format(**fmt_labels),
            runbook=f"{RUNBOOKS}/{alertname.lower()}",
            expr=rule["expr"],
            severity=rule["severity"],
            starts_ms=starts_ms,
        )

    def expect(
        self,
        *,
        description: str,
        category: str,
        culprit_ref: Obj | None,
        mentions: list[str],
        multi_hop: bool,
        distractors: list[str] | None = None,
        acceptable: list[Obj] | None = None,
    ) -> None:
        self.expected = Expected(
            description=" ".join(description.split()),
            category=category,
            culprit=culprit_ref,
            summary_mentions=mentions,
            multi_hop=multi_hop,
            distractors=distractors or [],
            acceptable=acceptable or [],
        )

    # ----------------------------------------------------------------- status fill-in
    def _finish_workloads(self) -> None:
        for rs in self.all("ReplicaSet"):
            if "replicas" in rs["status"] and rs["status"].get("_fixed"):
                continue
            pods = self._owned_pods(rs)
            active = [p for p in pods if _active(p)]
            ready = [p for p in active if _ready(p)]
            min_ready = rs["spec"].get("minReadySeconds", 0)
            available = [p for p in ready if _ready_for(self, p) >= min_ready]
            status: Obj = {
                "observedGeneration": rs["metadata"]["generation"],
                "replicas": len(active),
            }
            if active:
                status["fullyLabeledReplicas"] = len(active)
            if ready:
                status["readyReplicas"] = len(ready)
            if available:
                status["availableReplicas"] = len(available)
            status.update(rs["status"].get("_extra", {}))
            rs["status"] = status
        for d in self.all("Deployment"):
            self._finish_deployment(d)
        for ss in self.all("StatefulSet"):
            self._finish_statefulset(ss)
        for ds in self.all("DaemonSet"):
            self._finish_daemonset(ds)
        for job in self.all("Job"):
            if job["status"].get("_manual"):
                job["status"].pop("_manual")

    def _owned_pods(self, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [
            p
            for p in self.all("Pod", owner["metadata"]["namespace"])
            if any(r["uid"] == uid for r in p["metadata"].get("ownerReferences", []))
        ]

    def _finish_deployment(self, d: Obj) -> None:
        override = d["status"].pop("_override", {})
        conditions_override = d["status"].pop("_conditions", None)
        rss = [
            rs
            for rs in self.all("ReplicaSet", d["metadata"]["namespace"])
            if rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
        ]
        rss.sort(
            key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
        )
        if not rss:
            d["status"] = override
            return
        new = rss[-1]
        replicas = sum(rs["status"].get("replicas", 0) for rs in rss)
        ready = sum(rs["status"].get("readyReplicas", 0) for rs in rss)
        available = sum(rs["status"].get("availableReplicas", 0) for rs in rss)
        spec_replicas = d["spec"]["replicas"]
        status: Obj = {
            "observedGeneration": d["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": new["status"].get("replicas", 0),
        }
        if ready:
            status["readyReplicas"] = ready
        if available:
            status["availableReplicas"] = available
        if spec_replicas - available > 0:
            status["unavailableReplicas"] = spec_replicas - available
        max_unavail = _resolve_percent(
            d["spec"]["strategy"].get("rollingUpdate", {}).get("maxUnavailable", 0),
            spec_replicas,
            up=False,
        )
        if d["spec"]["strategy"]["type"] == "Recreate":
            max_unavail = 0
        is_available = available >= spec_replicas - max_unavail
        created = d["metadata"]["creationTimestamp"]
        new_name = new["metadata"]["name"]
        conditions = conditions_override or {}
        avail = conditions.get(
            "Available",
            (
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                created,
                created,
            )
            if is_available
            else (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                new["metadata"]["creationTimestamp"],
                new["metadata"]["creationTimestamp"],
            ),
        )
        complete = (
            replicas == spec_replicas == status["updatedReplicas"] == available
            and len([rs for rs in rss if rs["status"].get("replicas")]) <= 1
        )
        prog = conditions.get(
            "Progressing",
            (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{new_name}" has successfully progressed.',
                new["metadata"]["creationTimestamp"],
                created,
            )
            if complete
            else (
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{new_name}" is progressing.',
                new["metadata"]["creationTimestamp"],
                new["metadata"]["creationTimestamp"],
            ),
        )
        cond_list = []
        for ctype, spec in (
            ("Available", avail),
            ("Progressing", prog),
            *[(k, v) for k, v in conditions.items() if k not in ("Available", "Progressing")],
        ):
            status_v, reason, message, last_update, last_transition = spec
            cond_list.append(
                {
                    "lastTransitionTime": self._abs(last_transition),
                    "lastUpdateTime": self._abs(last_update),
                    "message": message,
                    "reason": reason,
                    "status": status_v,
                    "type": ctype,
                }
            )
        status["conditions"] = cond_list
        status.update(override)
        d["status"] = status

    def _abs(self, t: str) -> str:
        return self.t(t) if t.startswith(("-", "+")) else t

    def _finish_statefulset(self, ss: Obj) -> None:
        override = ss["status"].pop("_override", {})
        rev = ss["status"].pop("_revision")
        pods = self._owned_pods(ss)
        active = [p for p in pods if _active(p) or "deletionTimestamp" in p["metadata"]]
        ready = [p for p in active if _ready(p)]
        status: Obj = {
            "availableReplicas": len(ready),
            "collisionCount": 0,
            "currentReplicas": len(active),
            "currentRevision": rev,
            "observedGeneration": ss["metadata"]["generation"],
            "readyReplicas": len(ready),
            "replicas": len(active),
            "updateRevision": rev,
            "updatedReplicas": len(active),
        }
        if not ready:
            status.pop("readyReplicas")
        status.update(override)
        ss["status"] = status

    def _finish_daemonset(self, ds: Obj) -> None:
        override = ds["status"].pop("_override", {})
        ds["status"].pop("_revision", None)
        pods = self._owned_pods(ds)
        ready = [p for p in pods if _ready(p)]
        current_gen = str(ds["metadata"]["generation"])
        updated = [
            p for p in pods if p["metadata"]["labels"].get("pod-template-generation") == current_gen
        ]
        status: Obj = {
            "currentNumberScheduled": len(pods),
            "desiredNumberScheduled": len(pods),
            "numberAvailable": len(ready),
            "numberMisscheduled": 0,
            "numberReady": len(ready),
            "observedGeneration": ds["metadata"]["generation"],
            "updatedNumberScheduled": len(updated),
        }
        if len(pods) - len(ready):
            status["numberUnavailable"] = len(pods) - len(ready)
        status.update(override)
        ds["status"] = status

    # ----------------------------------------------------------------- writing
    def write(self, root: Path) -> None:
        assert self.payload is not None, self.name
        assert self.expected is not None, self.name
        self._build_endpoints()
        self._finish_workloads()
        case_dir = root / self.name
        if case_dir.exists():
            shutil.rmtree(case_dir)
        snap = case_dir / "snapshot"
        snap.mkdir(parents=True)
        (case_dir / "alert.json").write_text(json.dumps(self.payload, indent=2) + "\n")
        ttl = timedelta(hours=self.p.event_ttl_hours)
        files: dict[str, list[Obj]] = {}
        for path, obj in self.objects:
            if obj["kind"] == "Event" and self.now - _event_last_seen(obj) > ttl:
                continue  # the API server has already garbage-collected it (--event-ttl)
            files.setdefault(path, []).append(obj)
        for path, objs in sorted(files.items()):
            objs.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            target = snap / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.endswith(".single.json"):
                assert len(objs) == 1
                target = target.with_name(target.name.replace(".single.json", ".json"))
                body: Obj = objs[0]
            else:
                body = {
                    "apiVersion": "v1",
                    "items": objs,
                    "kind": "List",
                    "metadata": {"resourceVersion": ""},
                }
            if path.endswith(".yaml"):
                target.write_text(_to_yaml(body))
            else:
                target.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        for rel, text in sorted(self.logs.items()):
            target = snap / "logs" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        for name, body in sorted(self.metrics.items()):
            target = snap / "metrics" / f"{name}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(body, indent=2) + "\n")
        (snap / "snapshot.yaml").write_text(
            f"cluster: {self.cluster}\ncaptured_at: {iso(self.now)}\n"
        )
        (case_dir / "expected.yaml").write_text(_expected_yaml(self.expected))


# --------------------------------------------------------------------------- module helpers


def _event_last_seen(ev: Obj) -> datetime:
    if ev.get("series"):
        return parse_time(ev["series"]["lastObservedTime"])
    return parse_time(ev.get("lastTimestamp") or ev["eventTime"])


def _fmt_value(v: float) -> str:
    text = f"{v:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _resolve_percent(value: int | str, total: int, *, up: bool) -> int:
    if isinstance(value, int):
        return value
    pct = int(value.rstrip("%"))
    raw = total * pct / 100
    return int(-(-raw // 1)) if up else int(raw // 1)


def _active(p: Obj) -> bool:
    return (
        p["status"].get("phase") not in ("Succeeded", "Failed")
        and "deletionTimestamp" not in p["metadata"]
    )


def _ready(p: Obj) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", [])
    )


def _ready_for(case: Case, p: Obj) -> float:
    for c in p["status"].get("conditions", []):
        if c["type"] == "Ready" and c["status"] == "True":
            return (case.now - parse_time(c["lastTransitionTime"])).total_seconds()
    return 0.0


def qos_class(containers: list[Obj]) -> str:
    any_set = False
    guaranteed = True
    for c in containers:
        r = c.get("resources", {})
        req, lim = r.get("requests", {}), r.get("limits", {})
        if req or lim:
            any_set = True
        for res in ("cpu", "memory"):
            if res not in lim or req.get(res, lim.get(res)) != lim.get(res):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def npd_conditions(since: str) -> list[tuple[str, tuple[str, str, str, str]]]:
    """node-problem-detector conditions (GKE ships it; others install it)."""
    return [
        (
            "FrequentUnregisterNetDevice",
            ("False", "NoFrequentUnregisterNetDevice", "node is functioning properly", since),
        ),
        (
            "FrequentKubeletRestart",
            ("False", "NoFrequentKubeletRestart", "kubelet is functioning properly", since),
        ),
        (
            "FrequentDockerRestart",
            ("False", "NoFrequentDockerRestart", "docker is functioning properly", since),
        ),
        (
            "FrequentContainerdRestart",
            ("False", "NoFrequentContainerdRestart", "containerd is functioning properly", since),
        ),
        ("KernelDeadlock", ("False", "KernelHasNoDeadlock", "kernel has no deadlock", since)),
        (
            "ReadonlyFilesystem",
            ("False", "FilesystemIsNotReadOnly", "Filesystem is not read-only", since),
        ),
        (
            "CorruptDockerOverlay2",
            ("False", "NoCorruptDockerOverlay2", "docker overlay2 is functioning properly", since),
        ),
    ]


def _to_yaml(body: Obj) -> str:
    import yaml

    return str(yaml.safe_dump(body, sort_keys=True, default_flow_style=False, width=1000))


def _flow(ref_obj: Obj) -> str:
    ns = "null" if ref_obj["namespace"] is None else ref_obj["namespace"]
    return f"{{kind: {ref_obj['kind']}, namespace: {ns}, name: {ref_obj['name']}}}"


def _expected_yaml(e: Expected) -> str:
    lines = ["description: >-"]
    wrapped = textwrap.wrap(e.description, 92, break_on_hyphens=False, break_long_words=False)
    lines += ["  " + line for line in wrapped]
    lines.append(f"category: {e.category}")
    lines.append(f"culprit: {_flow(e.culprit) if e.culprit else 'null'}")
    if e.acceptable:
        lines.append("acceptable_culprits:")
        lines += [f"  - {_flow(a)}" for a in e.acceptable]
    lines.append("summary_mentions: [" + ", ".join(json.dumps(m) for m in e.summary_mentions) + "]")
    lines.append(f"multi_hop: {'true' if e.multi_hop else 'false'}")
    if e.distractors:
        lines.append("distractors:")
        lines += ["  - " + json.dumps(d) for d in e.distractors]
    else:
        lines.append("distractors: []")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- kube-prometheus-stack


KPS_RULES: dict[str, dict[str, str]] = {
    "KubePodCrashLooping": {
        "severity": "warning",
        "summary": "Pod is crash looping.",
        "description": 'Pod {namespace}/{pod} ({container}) is in waiting state (reason: "CrashLoopBackOff") on cluster {cluster}.',
        "expr": 'max_over_time(kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff", job="kube-state-metrics", namespace=~".*"}[5m]) >= 1',
    },
    "KubePodNotReady": {
        "severity": "warning",
        "summary": "Pod has been in a non-ready state for more than 15 minutes.",
        "description": "Pod {namespace}/{pod} has been in a non-ready state for longer than 15 minutes on cluster {cluster}.",
        "expr": 'sum by (namespace, pod, cluster) (\n  max by (namespace, pod, cluster) (\n    kube_pod_status_phase{job="kube-state-metrics", namespace=~".*", phase=~"Pending|Unknown|Failed"}\n  ) * on (namespace, pod, cluster) group_left(owner_kind) topk by (namespace, pod, cluster) (\n    1, max by (namespace, pod, owner_kind, cluster) (kube_pod_owner{owner_kind!="Job"})\n  )\n) > 0',
    },
    "KubeDeploymentReplicasMismatch": {
        "severity": "warning",
        "summary": "Deployment has not matched the expected number of replicas.",
        "description": "Deployment {namespace}/{deployment} has not matched the expected number of replicas for longer than 15 minutes on cluster {cluster}.",
        "expr": '(\n  kube_deployment_spec_replicas{job="kube-state-metrics", namespace=~".*"}\n    >\n  kube_deployment_status_replicas_available{job="kube-state-metrics", namespace=~".*"}\n) and (\n  changed(kube_deployment_status_replicas_updated{job="kube-state-metrics", namespace=~".*"}[10m])\n    ==\n  0\n)',
    },
    "KubeDeploymentRolloutStuck": {
        "severity": "warning",
        "summary": "Deployment rollout is not progressing.",
        "description": "Rollout of deployment {namespace}/{deployment} is not progressing for longer than 15 minutes on cluster {cluster}.",
        "expr": 'kube_deployment_status_condition{condition="Progressing", status="false",job="kube-state-metrics", namespace=~".*"}\n!= 0',
    },
    "KubeStatefulSetReplicasMismatch": {
        "severity": "warning",
        "summary": "StatefulSet has not matched the expected number of replicas.",
        "description": "StatefulSet {namespace}/{statefulset} has not matched the expected number of replicas for longer than 15 minutes on cluster {cluster}.",
        "expr": '(\n  kube_statefulset_status_replicas_ready{job="kube-state-metrics", namespace=~".*"}\n    !=\n  kube_statefulset_status_replicas{job="kube-state-metrics", namespace=~".*"}\n) and (\n  changed(kube_statefulset_status_replicas_updated{job="kube-state-metrics", namespace=~".*"}[10m])\n    ==\n  0\n)',
    },
    "KubeDaemonSetRolloutStuck": {
        "severity": "warning",
        "summary": "DaemonSet rollout is stuck.",
        "description": "DaemonSet {namespace}/{daemonset} has not finished or progressed for at least 15m on cluster {cluster}.",
        "expr": '(\n  (\n    kube_daemonset_status_current_number_scheduled{job="kube-state-metrics", namespace=~".*"}\n     !=\n    kube_daemonset_status_desired_number_scheduled{job="kube-state-metrics", namespace=~".*"}\n  ) or (\n    kube_daemonset_status_number_misscheduled{job="kube-state-metrics", namespace=~".*"}\n     !=\n    0\n  ) or (\n    kube_daemonset_status_updated_number_scheduled{job="kube-state-metrics", namespace=~".*"}\n     !=\n    kube_daemonset_status_desired_number_scheduled{job="kube-state-metrics", namespace=~".*"}\n  ) or (\n    kube_daemonset_status_number_available{job="kube-state-metrics", namespace=~".*"}\n     !=\n    kube_daemonset_status_desired_number_scheduled{job="kube-state-metrics", namespace=~".*"}\n  )\n) and (\n  changed(kube_daemonset_status_updated_number_scheduled{job="kube-state-metrics", namespace=~".*"}[5m])\n    ==\n  0\n)',
    },
    "KubeContainerWaiting": {
        "severity": "warning",
        "summary": "Pod container waiting longer than 1 hour",
        "description": 'pod/{pod} in namespace {namespace} on container {container} has been in waiting state for longer than 1 hour. (reason: "{reason}") on cluster {cluster}.',
        "expr": 'kube_pod_container_status_waiting_reason{reason!="CrashLoopBackOff", job="kube-state-metrics", namespace=~".*"} > 0',
    },
    "KubeJobFailed": {
        "severity": "warning",
        "summary": "Job failed to complete.",
        "description": "Job {namespace}/{job_name} failed to complete. Removing failed job after investigation should clear this alert on cluster {cluster}.",
        "expr": 'kube_job_failed{job="kube-state-metrics", namespace=~".*"}  > 0',
    },
    "KubeHpaMaxedOut": {
        "severity": "warning",
        "summary": "HPA is running at max replicas",
        "description": "HPA {namespace}/{horizontalpodautoscaler} has been running at max replicas for longer than 15 minutes on cluster {cluster}.",
        "expr": 'kube_horizontalpodautoscaler_status_current_replicas{job="kube-state-metrics", namespace=~".*"}\n  ==\nkube_horizontalpodautoscaler_spec_max_replicas{job="kube-state-metrics", namespace=~".*"}',
    },
    "CPUThrottlingHigh": {
        "severity": "info",
        "summary": "Processes experience elevated CPU throttling.",
        "description": "{value} throttling of CPU in namespace {namespace} for container {container} in pod {pod} on cluster {cluster}.",
        "expr": 'sum(increase(container_cpu_cfs_throttled_periods_total{container!="", job="kubelet", metrics_path="/metrics/cadvisor", }[5m])) without (id, metrics_path, name, image, endpoint, job, node)\n  / on (cluster, namespace, pod, container, instance) group_left\nsum(increase(container_cpu_cfs_periods_total{job="kubelet", metrics_path="/metrics/cadvisor", }[5m])) without (id, metrics_path, name, image, endpoint, job, node)\n  > ( 25 / 100 )',
    },
    "KubeNodeNotReady": {
        "severity": "warning",
        "summary": "Node is not ready.",
        "description": "{node} has been unready for more than 15 minutes on cluster {cluster}.",
        "expr": 'kube_node_status_condition{job="kube-state-metrics",condition="Ready",status="true"} == 0\nand on (cluster, node)\nkube_node_spec_unschedulable{job="kube-state-metrics"} == 0',
    },
    "KubeNodeUnreachable": {
        "severity": "warning",
        "summary": "Node is unreachable.",
        "description": "{node} is unreachable and some workloads may be rescheduled on cluster {cluster}.",
        "expr": '(kube_node_spec_taint{job="kube-state-metrics",key="node.kubernetes.io/unreachable",effect="NoSchedule"} unless ignoring(key,value) kube_node_spec_taint{job="kube-state-metrics",key=~"ToBeDeletedByClusterAutoscaler|cloud.google.com/impending-node-termination|aws-node-termination-handler/spot-itn"}) == 1',
    },
    "KubeQuotaFullyUsed": {
        "severity": "info",
        "summary": "Namespace quota is fully used.",
        "description": "Namespace {namespace} is using {value} of its {resource} quota on cluster {cluster}.",
        "expr": 'kube_resourcequota{job="kube-state-metrics", type="used"}\n  / ignoring(instance, job, type)\n(kube_resourcequota{job="kube-state-metrics", type="hard"} > 0)\n  == 1',
    },
}
