"""Generate big, realistic snapshot directories (DESIGN §4.2) for benchmarks and load tests.

``generate_cluster(root, pods=5000)`` writes a cluster of Deployments (ReplicaSet, Pods,
Service, Endpoints, ConfigMap) spread over namespaces and Nodes, with ``events_per_pod``
events per Pod and a small share of broken Pods — crash-looping (with current and
previous logs), OOM-killed, failing to pull their image, unschedulable — so a gatherer
has real incidents to work on. It returns what it made, including one alert's labels per
incident. Deterministic for a given seed; about a second per 5,000 pods.

    python -m tests.fakes.generate_cluster --pods 20000 -o /tmp/cluster-20k
"""

from __future__ import annotations

import argparse
import functools
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from oncallm.sources.base import ObjectRef

PROBLEMS = ("CrashLoop", "OOMKilled", "ImagePull", "Unschedulable")
TEAMS = ("checkout", "catalog", "payments", "search", "identity", "shipping", "ads", "data")
UNSCHEDULABLE = (
    "0/60 nodes are available: 60 Insufficient memory. preemption: 0/60 nodes are available: "
    "60 No preemption victims found for incoming pod."
)
APPS = ("api", "web", "worker", "gateway", "indexer", "cache", "scheduler", "notifier")


@dataclass(frozen=True)
class Incident:
    """A broken Pod and the labels of the alert it would fire."""

    problem: str  # one of PROBLEMS
    pod: ObjectRef
    deployment: ObjectRef
    alert_labels: dict[str, str]


@dataclass
class GeneratedCluster:
    root: Path
    cluster: str
    captured_at: datetime
    pods: int = 0
    events: int = 0
    namespaces: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    deployments: list[ObjectRef] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)


@functools.lru_cache(maxsize=65536)
def _stamp(when: datetime) -> str:
    # ~20 timestamps per pod, many shared by a ReplicaSet's pods: cached and isoformat,
    # which is several times faster than strftime.
    return when.isoformat(timespec="seconds")[:19] + "Z"


def _list(items: list[dict[str, Any]]) -> str:
    # Compact JSON: the generated files are for machines, and 20,000 pods stay small.
    document = {
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }
    # msgspec (lightkube's JSON codec, so always installed) is ~10x faster than json.
    return msgspec.json.encode(document).decode()


class _Builder:
    def __init__(self, cluster: GeneratedCluster, rng: random.Random) -> None:
        self.c = cluster
        self.rng = rng
        self.now = cluster.captured_at
        self.rv = 100_000

    def uid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def version(self) -> str:
        self.rv += 1
        return str(self.rv)

    def node(self, index: int) -> dict[str, Any]:
        name = f"node-{index:04d}"
        zone = f"eu-west-1{'abc'[index % 3]}"
        created = _stamp(self.now - timedelta(days=40 + index % 30))
        heartbeat = _stamp(self.now - timedelta(seconds=self.rng.randint(5, 40)))

        def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
            return {
                "lastHeartbeatTime": heartbeat,
                "lastTransitionTime": created,
                "message": message,
                "reason": reason,
                "status": status,
                "type": kind,
            }

        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "creationTimestamp": created,
                "labels": {
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "node.kubernetes.io/instance-type": "m5.2xlarge",
                    "topology.kubernetes.io/zone": zone,
                },
                "name": name,
                "resourceVersion": self.version(),
                "uid": self.uid(),
            },
            "spec": {"podCIDR": f"10.{64 + index // 256}.{index % 256}.0/24"},
            "status": {
                "addresses": [
                    {"address": f"10.0.{index // 256}.{index % 256}", "type": "InternalIP"},
                    {"address": name, "type": "Hostname"},
                ],
                "allocatable": {"cpu": "7910m", "memory": "31369544Ki", "pods": "110"},
                "capacity": {"cpu": "8", "memory": "32408392Ki", "pods": "110"},
                "conditions": [
                    condition(
                        "MemoryPressure",
                        "False",
                        "KubeletHasSufficientMemory",
                        "kubelet has sufficient memory available",
                    ),
                    condition(
                        "DiskPressure",
                        "False",
                        "KubeletHasNoDiskPressure",
                        "kubelet has no disk pressure",
                    ),
                    condition(
                        "PIDPressure",
                        "False",
                        "KubeletHasSufficientPID",
                        "kubelet has sufficient PID available",
                    ),
                    condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                ],
                "nodeInfo": {
                    "containerRuntimeVersion": "containerd://1.7.22",
                    "kernelVersion": "6.1.0-18-cloud-amd64",
                    "kubeletVersion": "v1.30.2",
                    "operatingSystem": "linux",
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                },
            },
        }

    def namespace(self, name: str, team: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "creationTimestamp": _stamp(self.now - timedelta(days=30)),
                "labels": {"kubernetes.io/metadata.name": name, "team": team},
                "name": name,
                "resourceVersion": self.version(),
                "uid": self.uid(),
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }


def _container_spec(app: str, image: str) -> dict[str, Any]:
    return {
        "name": app,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "env": [
            {
                "name": "LOG_LEVEL",
                "valueFrom": {"configMapKeyRef": {"key": "log-level", "name": f"{app}-config"}},
            },
            {
                "name": "DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"key": "database-url", "name": "app-credentials"}},
            },
        ],
        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
            "periodSeconds": 5,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "resources": {
            "limits": {"cpu": "1", "memory": "512Mi"},
            "requests": {"cpu": "100m", "memory": "256Mi"},
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def generate_cluster(
    root: Path,
    pods: int,
    *,
    events_per_pod: int = 10,
    pods_per_deployment: int = 4,
    deployments_per_namespace: int = 25,
    pods_per_node: int = 60,
    broken_share: float = 0.02,
    seed: int = 0,
    cluster: str = "generated",
) -> GeneratedCluster:
    """Write a cluster of ``pods`` Pods into ``root`` (created; must be empty or new)."""
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"{root} is not empty")
    rng = random.Random(seed)
    result = GeneratedCluster(root, cluster, datetime(2025, 3, 14, 9, 30, tzinfo=UTC))
    b = _Builder(result, rng)
    now = result.captured_at
    node_count = max(1, -(-pods // pods_per_node))
    nodes = [b.node(i) for i in range(node_count)]
    result.nodes = [n["metadata"]["name"] for n in nodes]
    deployments = -(-pods // pods_per_deployment)
    namespace_count = max(1, -(-deployments // deployments_per_namespace))
    namespaces = [f"{TEAMS[i % len(TEAMS)]}-{i // len(TEAMS):02d}" for i in range(namespace_count)]
    result.namespaces = namespaces
    (root / "cluster").mkdir()
    (root / "cluster" / "nodes.json").write_text(_list(nodes))
    (root / "cluster" / "namespaces.json").write_text(
        _list([b.namespace(ns, ns.rsplit("-", 1)[0]) for ns in namespaces])
    )
    (root / "snapshot.yaml").write_text(f'cluster: {cluster}\ncaptured_at: "{_stamp(now)}"\n')

    pod_index = 0
    for ns in namespaces:
        per_kind: dict[str, list[dict[str, Any]]] = {
            k: []
            for k in (
                "deployments",
                "replicasets",
                "pods",
                "services",
                "endpoints",
                "configmaps",
                "secrets",
                "events",
            )
        }
        per_kind["secrets"].append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "creationTimestamp": _stamp(now - timedelta(days=30)),
                    "name": "app-credentials",
                    "namespace": ns,
                    "resourceVersion": b.version(),
                    "uid": b.uid(),
                },
                "type": "Opaque",
                "data": {
                    "database-url": "cG9zdGdyZXM6Ly9hcHA6cGFzc3dvcmRAZGI6NTQzMi9hcHA=",
                    "api-key": "c2stZ2VuZXJhdGVkLWtleQ==",
                },
            }
        )
        for d_index in range(deployments_per_namespace):
            if pod_index >= pods:
                break
            app = f"{APPS[d_index % len(APPS)]}-{d_index // len(APPS)}"
            replicas = min(pods_per_deployment, pods - pod_index)
            _deployment(
                b,
                per_kind,
                ns,
                app,
                replicas,
                pod_index,
                nodes,
                events_per_pod,
                broken_share,
                result,
            )
            result.deployments.append(ObjectRef("Deployment", ns, app))
            pod_index += replicas
        folder = root / ns
        folder.mkdir()
        for kind, items in per_kind.items():
            if items:
                (folder / f"{kind}.json").write_text(_list(items))
        result.events += len(per_kind["events"])
    result.pods = pod_index
    return result


def _deployment(
    b: _Builder,
    out: dict[str, list[dict[str, Any]]],
    ns: str,
    app: str,
    replicas: int,
    first_pod: int,
    nodes: list[dict[str, Any]],
    events_per_pod: int,
    broken_share: float,
    result: GeneratedCluster,
) -> None:
    now, rng = b.now, b.rng
    labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": ns}
    image = f"registry.example.com/{ns}/{app}:1.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
    template_hash = f"{rng.getrandbits(40):010x}"[:10]
    rs_name = f"{app}-{template_hash}"
    dep_uid, rs_uid = b.uid(), b.uid()
    created = now - timedelta(days=rng.randint(1, 20), minutes=rng.randint(0, 1440))
    rs_created = now - timedelta(hours=rng.randint(2, 48))
    spec = {
        "containers": [_container_spec(app, image)],
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
    }
    pod_labels = {**labels, "pod-template-hash": template_hash}
    ready_addresses: list[dict[str, Any]] = []
    not_ready: list[dict[str, Any]] = []
    ready_count = 0
    for i in range(replicas):
        problem = PROBLEMS[rng.randrange(len(PROBLEMS))] if rng.random() < broken_share else None
        suffix = "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        pod_name = f"{rs_name}-{suffix}"
        node_obj = nodes[(first_pod + i) % len(nodes)]
        node = node_obj["metadata"]["name"]
        node_ip = node_obj["status"]["addresses"][0]["address"]
        n = first_pod + i
        ip = f"10.{64 + n // 65536 % 64}.{n // 256 % 256}.{n % 256}"
        pod_uid = b.uid()
        pod, ready = _pod(
            b,
            ns,
            pod_name,
            pod_uid,
            pod_labels,
            spec,
            rs_name,
            rs_uid,
            (node, node_ip),
            ip,
            rs_created,
            problem,
            image,
            app,
        )
        out["pods"].append(pod)
        ready_count += ready
        address = {
            "ip": ip,
            "nodeName": node,
            "targetRef": {"kind": "Pod", "name": pod_name, "namespace": ns, "uid": pod_uid},
        }
        if problem != "Unschedulable":
            (ready_addresses if ready else not_ready).append(address)
        out["events"].extend(_pod_events(b, ns, pod, problem, events_per_pod, app, image, node))
        if problem:
            ref = ObjectRef("Pod", ns, pod_name)
            alert = {
                "CrashLoop": "KubePodCrashLooping",
                "OOMKilled": "KubePodCrashLooping",
                "ImagePull": "KubePodNotReady",
                "Unschedulable": "KubePodNotReady",
            }[problem]
            labels_for_alert = {
                "alertname": alert,
                "namespace": ns,
                "pod": pod_name,
                "severity": "warning",
                "cluster": result.cluster,
            }
            if problem in ("CrashLoop", "OOMKilled"):
                labels_for_alert["container"] = app
            result.incidents.append(
                Incident(problem, ref, ObjectRef("Deployment", ns, app), labels_for_alert)
            )
            if problem in ("CrashLoop", "OOMKilled"):
                _crash_logs(result.root, ns, pod_name, app, problem)
    status: dict[str, Any] = {
        "observedGeneration": 2,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": ready_count,
        "availableReplicas": ready_count,
    }
    if ready_count < replicas:
        status["unavailableReplicas"] = replicas - ready_count
    available = ready_count >= max(1, replicas - replicas // 4)
    status["conditions"] = [
        {
            "lastTransitionTime": _stamp(rs_created),
            "lastUpdateTime": _stamp(rs_created),
            "message": "Deployment has minimum availability."
            if available
            else "Deployment does not have minimum availability.",
            "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
            "status": "True" if available else "False",
            "type": "Available",
        },
        {
            "lastTransitionTime": _stamp(created),
            "lastUpdateTime": _stamp(rs_created),
            "message": f'ReplicaSet "{rs_name}" has successfully progressed.',
            "reason": "NewReplicaSetAvailable",
            "status": "True",
            "type": "Progressing",
        },
    ]
    out["deployments"].append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "annotations": {"deployment.kubernetes.io/revision": "2"},
                "creationTimestamp": _stamp(created),
                "generation": 2,
                "labels": labels,
                "name": app,
                "namespace": ns,
                "resourceVersion": b.version(),
                "uid": dep_uid,
            },
            "spec": {
                "progressDeadlineSeconds": 600,
                "replicas": replicas,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": labels},
                "strategy": {
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                    "type": "RollingUpdate",
                },
                "template": {"metadata": {"labels": labels}, "spec": spec},
            },
            "status": status,
        }
    )
    out["replicasets"].append(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": str(replicas),
                    "deployment.kubernetes.io/revision": "2",
                },
                "creationTimestamp": _stamp(rs_created),
                "generation": 1,
                "labels": pod_labels,
                "name": rs_name,
                "namespace": ns,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "blockOwnerDeletion": True,
                        "controller": True,
                        "kind": "Deployment",
                        "name": app,
                        "uid": dep_uid,
                    }
                ],
                "resourceVersion": b.version(),
                "uid": rs_uid,
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": pod_labels},
                "template": {"metadata": {"labels": pod_labels}, "spec": spec},
            },
            "status": {
                "availableReplicas": ready_count,
                "fullyLabeledReplicas": replicas,
                "observedGeneration": 1,
                "readyReplicas": ready_count,
                "replicas": replicas,
            },
        }
    )
    meta = {"creationTimestamp": _stamp(created), "labels": labels, "name": app, "namespace": ns}
    out["services"].append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {**meta, "resourceVersion": b.version(), "uid": b.uid()},
            "spec": {
                "clusterIP": f"10.96.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}],
                "selector": labels,
                "sessionAffinity": "None",
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        }
    )
    subset: dict[str, Any] = {"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    if ready_addresses:
        subset["addresses"] = ready_addresses
    if not_ready:
        subset["notReadyAddresses"] = not_ready
    out["endpoints"].append(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {**meta, "resourceVersion": b.version(), "uid": b.uid()},
            "subsets": [subset] if ready_addresses or not_ready else [],
        }
    )
    out["configmaps"].append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "creationTimestamp": _stamp(created),
                "name": f"{app}-config",
                "namespace": ns,
                "resourceVersion": b.version(),
                "uid": b.uid(),
            },
            "data": {"log-level": "info", "listen": ":8080"},
        }
    )


def _pod(
    b: _Builder,
    ns: str,
    name: str,
    uid: str,
    labels: dict[str, str],
    spec: dict[str, Any],
    rs_name: str,
    rs_uid: str,
    placement: tuple[str, str],
    ip: str,
    created: datetime,
    problem: str | None,
    image: str,
    app: str,
) -> tuple[dict[str, Any], bool]:
    now, rng = b.now, b.rng
    node, node_ip = placement
    started = created + timedelta(seconds=rng.randint(2, 9))
    container: dict[str, Any] = {
        "name": app,
        "image": image,
        "imageID": f"{image.split(':')[0]}@sha256:{rng.getrandbits(256):064x}",
        "containerID": f"containerd://{rng.getrandbits(256):064x}",
        "lastState": {},
        "ready": True,
        "restartCount": 0,
        "started": True,
        "state": {"running": {"startedAt": _stamp(started)}},
    }
    phase, ready, scheduled = "Running", True, True
    if problem in ("CrashLoop", "OOMKilled"):
        restarts = rng.randint(5, 40)
        finished = now - timedelta(seconds=rng.randint(20, 280))
        reason, code = ("OOMKilled", 137) if problem == "OOMKilled" else ("Error", 1)
        container.update(
            ready=False,
            started=False,
            restartCount=restarts,
            lastState={
                "terminated": {
                    "containerID": container["containerID"],
                    "exitCode": code,
                    "reason": reason,
                    "startedAt": _stamp(finished - timedelta(seconds=3)),
                    "finishedAt": _stamp(finished),
                }
            },
            state={
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off 5m0s restarting failed container={app} "
                    f"pod={name}_{ns}({uid})",
                }
            },
        )
        ready = False
    elif problem == "ImagePull":
        container.update(
            ready=False,
            started=False,
            image=image.replace(":1.", ":9."),
            state={
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": f'Back-off pulling image "{image.replace(":1.", ":9.")}"',
                }
            },
        )
        del container["containerID"]
        del container["imageID"]
        ready = False
    elif problem == "Unschedulable":
        phase, ready, scheduled = "Pending", False, False
    pod_spec = {**spec, "nodeName": node} if scheduled else dict(spec)
    if problem == "ImagePull":
        pod_spec = {
            **pod_spec,
            "containers": [{**spec["containers"][0], "image": container["image"]}],
        }
    conditions: list[dict[str, Any]] = [
        {
            "lastProbeTime": None,
            "lastTransitionTime": _stamp(created),
            "status": "True" if scheduled else "False",
            "type": "PodScheduled",
        }
    ]
    if not scheduled:
        conditions[0].update(
            reason="Unschedulable",
            message=UNSCHEDULABLE,
        )
    else:
        not_ready_reason = (
            {}
            if ready
            else {
                "reason": "ContainersNotReady",
                "message": f"containers with unready status: [{app}]",
            }
        )
        conditions += [
            {
                "lastProbeTime": None,
                "lastTransitionTime": _stamp(created),
                "status": "True",
                "type": "Initialized",
            },
            {
                "lastProbeTime": None,
                "lastTransitionTime": _stamp(started),
                "status": "True" if ready else "False",
                "type": "Ready",
                **not_ready_reason,
            },
            {
                "lastProbeTime": None,
                "lastTransitionTime": _stamp(started),
                "status": "True" if ready else "False",
                "type": "ContainersReady",
                **not_ready_reason,
            },
        ]
    status: dict[str, Any] = {"conditions": conditions, "phase": phase, "qosClass": "Burstable"}
    if scheduled:
        status.update(
            containerStatuses=[container],
            hostIP=node_ip,
            podIP=ip,
            podIPs=[{"ip": ip}],
            startTime=_stamp(created),
        )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "creationTimestamp": _stamp(created),
            "generateName": f"{rs_name}-",
            "labels": labels,
            "name": name,
            "namespace": ns,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "blockOwnerDeletion": True,
                    "controller": True,
                    "kind": "ReplicaSet",
                    "name": rs_name,
                    "uid": rs_uid,
                }
            ],
            "resourceVersion": b.version(),
            "uid": uid,
        },
        "spec": pod_spec,
        "status": status,
    }
    return pod, ready


def _pod_events(
    b: _Builder,
    ns: str,
    pod: dict[str, Any],
    problem: str | None,
    count: int,
    app: str,
    image: str,
    node: str,
) -> list[dict[str, Any]]:
    now, rng = b.now, b.rng
    meta = pod["metadata"]
    name = meta["name"]
    created = datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00"))
    field_path = f"spec.containers{{{app}}}"
    templates: list[tuple[str, str, str, str | None, int, datetime]] = [
        ("Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}", None, 1, created),
        (
            "Normal",
            "Pulling",
            f'Pulling image "{image}"',
            field_path,
            1,
            created + timedelta(seconds=1),
        ),
        (
            "Normal",
            "Pulled",
            f'Successfully pulled image "{image}" in 2.114s (2.114s including waiting)',
            field_path,
            1,
            created + timedelta(seconds=3),
        ),
        (
            "Normal",
            "Created",
            f"Created container {app}",
            field_path,
            1,
            created + timedelta(seconds=3),
        ),
        (
            "Normal",
            "Started",
            f"Started container {app}",
            field_path,
            1,
            created + timedelta(seconds=4),
        ),
        (
            "Warning",
            "Unhealthy",
            f'Readiness probe failed: Get "http://{pod["status"].get("podIP", "")}:8080/healthz": '
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            field_path,
            2,
            created + timedelta(seconds=9),
        ),
    ]
    if problem in ("CrashLoop", "OOMKilled"):
        restarts = pod["status"]["containerStatuses"][0]["restartCount"]
        templates += [
            (
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {app} in pod {name}_{ns}({meta['uid']})",
                field_path,
                restarts * 12,
                now - timedelta(seconds=rng.randint(5, 60)),
            ),
            (
                "Normal",
                "Pulled",
                f'Container image "{image}" already present on machine',
                field_path,
                restarts,
                now - timedelta(seconds=rng.randint(60, 300)),
            ),
        ]
    elif problem == "ImagePull":
        templates = [
            *templates[:2],
            (
                "Warning",
                "Failed",
                f'Failed to pull image "{image}": rpc error: code = NotFound desc = '
                f'failed to pull and unpack image "{image}": not found',
                field_path,
                14,
                now - timedelta(seconds=rng.randint(30, 300)),
            ),
            (
                "Warning",
                "Failed",
                "Error: ErrImagePull",
                field_path,
                14,
                now - timedelta(seconds=rng.randint(30, 300)),
            ),
            (
                "Normal",
                "BackOff",
                f'Back-off pulling image "{image}"',
                field_path,
                120,
                now - timedelta(seconds=rng.randint(5, 30)),
            ),
            (
                "Warning",
                "Failed",
                "Error: ImagePullBackOff",
                field_path,
                120,
                now - timedelta(seconds=rng.randint(5, 30)),
            ),
        ]
    elif problem == "Unschedulable":
        templates = [
            (
                "Warning",
                "FailedScheduling",
                UNSCHEDULABLE,
                None,
                rng.randint(10, 90),
                now - timedelta(seconds=rng.randint(10, 300)),
            ),
            (
                "Normal",
                "NotTriggerScaleUp",
                "pod didn't trigger scale-up: 3 max node group size reached",
                None,
                rng.randint(10, 90),
                now - timedelta(seconds=rng.randint(10, 300)),
            ),
        ]
    # Older, already-resolved history fills each pod up to the requested count.
    while len(templates) < count:
        when = created - timedelta(hours=len(templates))
        templates.append(
            (
                "Normal",
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.",
                None,
                1,
                when,
            )
        )
    events = []
    for index, (kind, reason, message, field_path_of, repeats, last) in enumerate(
        templates[:count]
    ):
        involved = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": name,
            "namespace": ns,
            "resourceVersion": meta["resourceVersion"],
            "uid": meta["uid"],
        }
        if field_path_of:
            involved["fieldPath"] = field_path_of
        first = min(last, created + timedelta(seconds=index))
        component = (
            "default-scheduler"
            if reason in ("Scheduled", "FailedScheduling")
            else ("cluster-autoscaler" if reason == "NotTriggerScaleUp" else "kubelet")
        )
        source = (
            {"component": component, "host": node}
            if component == "kubelet"
            else {"component": component}
        )
        events.append(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "creationTimestamp": _stamp(first),
                    "name": f"{name}.{rng.getrandbits(64):016x}",
                    "namespace": ns,
                    "resourceVersion": b.version(),
                    "uid": b.uid(),
                },
                "involvedObject": involved,
                "reason": reason,
                "message": message,
                "type": kind,
                "count": repeats,
                "firstTimestamp": _stamp(first),
                "lastTimestamp": _stamp(last),
                "eventTime": None,
                "source": source,
                "reportingComponent": "" if component == "kubelet" else component,
                "reportingInstance": "",
            }
        )
    return events


def _crash_logs(root: Path, ns: str, pod: str, app: str, problem: str) -> None:
    folder = root / "logs" / ns / pod
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f'{{"level":"info","msg":"starting {app}","version":"1.8.2"}}',
        '{"level":"info","msg":"loading configuration"}',
    ]
    if problem == "OOMKilled":
        lines += [
            f'{{"level":"info","msg":"warming cache","entries":{n * 50_000}}}' for n in range(1, 9)
        ]
    else:
        lines += [
            '{"level":"info","msg":"connecting to database","host":"db:5432"}',
            '{"level":"error","msg":"database connection failed",'
            '"error":"dial tcp 10.96.88.3:5432: connect: connection refused"}',
            '{"level":"fatal","msg":"cannot start without a database, exiting","exit_code":1}',
        ]
    text = "\n".join(lines) + "\n"
    (folder / f"{app}.log").write_text(text)
    (folder / f"{app}.previous.log").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, required=True)
    parser.add_argument("--events-per-pod", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    made = generate_cluster(
        args.output, args.pods, events_per_pod=args.events_per_pod, seed=args.seed
    )
    print(
        json.dumps(
            {
                "root": str(made.root),
                "pods": made.pods,
                "events": made.events,
                "namespaces": len(made.namespaces),
                "nodes": len(made.nodes),
                "deployments": len(made.deployments),
                "incidents": len(made.incidents),
            }
        )
    )


if __name__ == "__main__":
    main()
