"""The gatherer: from an alert's targets, read the neighbourhood that can explain it.

It walks outward in rounds — the alerted objects; their owners and the pods they run;
what those pods use (node, volumes, ConfigMaps/Secrets, Services, policies, quota, HPA);
events and logs of the objects that matter; then the Services named as dependencies in
env and logs, and the pods behind them. Each round's reads run concurrently under a
bound. Cost follows the alert's neighbourhood, never the cluster's size: there is no
cluster-wide list, and events are read per object with field selectors.

Every failed read becomes a gap, and the triage continues with what it has.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from oncallm.sources.base import ClusterSource, KubeObject, ObjectRef
from oncallm.sources.selectors import label_selector_to_string, selector_from_match_labels
from oncallm.triage import kube
from oncallm.triage.builder import LOG_LOOKBACK, ContextBuilder
from oncallm.triage.context import AlertInput, Dependency, TriageContext
from oncallm.triage.dependencies import (
    dedupe_named,
    hosts_in_env,
    hosts_in_log_line,
    service_ref_for,
)
from oncallm.triage.reads import GatherLimits, TriageReads
from oncallm.triage.targets import AlertTargets, Target

__all__ = ["GatherLimits", "Gatherer", "gather"]

# Kinds whose events explain a triage; Endpoints and ReplicaSets of old revisions rarely do.
EVENTFUL = frozenset(
    {
        "Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob",
        "PersistentVolumeClaim", "PersistentVolume", "Node", "HorizontalPodAutoscaler",
        "Service", "ResourceQuota", "Certificate",
    }
)  # fmt: skip
MAX_DEPENDENCIES = 4
METRICS_API = "v1beta1.metrics.k8s.io"  # what HPAs read CPU and memory from


class Gatherer(TriageReads):
    """One triage's walk through the cluster; ``run`` returns the frozen context."""

    async def run(self, alert: AlertInput, targets: AlertTargets) -> TriageContext:
        self.b = ContextBuilder(
            alert,
            targets,
            cluster=targets.cluster or self.source.cluster,
            source_name=self.source_name,
            now=await self.source.now(),
            stale_after=self.limits.stale_after,
        )
        resolved = await self._all(self._resolve(t) for t in targets.targets)
        subjects = [obj for found in resolved for obj in found]
        self.b.focus.update(kube.ref(s) for s in subjects)
        pods = await self._expand_subjects(subjects)
        await self._expand_pods(pods, distance=1)
        await self._dependencies(pods)
        await self._events()
        if await self._services_in_warnings():
            await self._events()  # of the objects that round added
        return self.b.build()

    async def _resolve_workload(self, target: Target) -> list[KubeObject]:
        """A workload an alert names by convention (Istio's destination_workload, an Argo CD
        application, a Kafka consumer group): a Deployment, StatefulSet or DaemonSet."""
        kinds = ("Deployment", "StatefulSet", "DaemonSet")
        if target.selector:
            lists = [
                self._list(k, target.namespace, None, label_selector=target.selector) for k in kinds
            ]
        elif target.namespace:
            gets = [self._get(ObjectRef(k, target.namespace, target.name), 0) for k in kinds]
            found = [obj for obj in await self._all(gets) if obj is not None]
            if found:
                return found
            lists = []
        else:
            lists = [
                self._list(k, None, None, field_selector=f"metadata.name={target.name}")
                for k in kinds
            ]
        found = [obj for items in await self._all(lists) for obj in items][:3]
        if not found:
            where = f" in namespace {target.namespace}" if target.namespace else ""
            self.b.add_gap(
                f"workload {target.name} (label {target.label})",
                f"no Deployment, StatefulSet or DaemonSet found{where}",
            )
        for obj in found:
            self.b.add_object(obj, 0)
        return found

    async def _resolve(self, target: Target) -> list[KubeObject]:
        if target.kind == "Workload":
            return await self._resolve_workload(target)
        found = await self._resolve_object(target)
        return [found] if found is not None else []

    async def _resolve_object(self, target: Target) -> KubeObject | None:
        if target.kind == "Namespace":
            return await self._get(ObjectRef("Namespace", None, target.name), 0)
        if target.namespace is None and target.kind != "Node":
            # A namespaced name without a namespace label: find it by name everywhere.
            found = await self._list(
                target.kind, None, None, field_selector=f"metadata.name={target.name}"
            )
            if len(found) == 1:
                self.b.add_object(found[0], 0)
                return found[0]
            if not found:
                self.b.add_gap(f"{target.kind} {target.name}", "not found in any namespace")
            return None
        ref = ObjectRef(target.kind, target.namespace, target.name)
        obj = await self._get(ref, 0)
        if obj is None and not self.b.gaps_for(str(ref)):
            self.b.add_gap(str(ref), "not found (deleted since the alert fired, or renamed)")
        return obj

    async def _expand_subjects(self, subjects: list[KubeObject]) -> list[KubeObject]:
        """Owners up and pods down for each alerted object; returns the pods worth reading."""
        pods: list[KubeObject] = []
        for found in await self._all(self._around(s) for s in subjects):
            pods.extend(found)
        return self._key_pods(pods)

    async def _around(self, obj: KubeObject) -> list[KubeObject]:
        kind = obj["kind"]
        if kind == "Pod":
            await self._owners(obj, 1)
            workload = self._workload_ref(obj)
            siblings = await self._workload_pods(workload, 1) if workload else []
            return [obj, *siblings]
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet"):
            await self._owners(obj, 1)
            owner = kube.controller_of(obj)
            if kind == "Job" and owner is not None and owner.kind == "CronJob":
                # The CronJob's other runs tell a one-off failure from a broken schedule.
                await self._workload_pods(owner, 2)
            return await self._workload_pods(kube.ref(obj), 1)
        if kind == "Service":
            return await self._service(obj, 1)
        if kind == "Ingress":
            pods: list[KubeObject] = []
            for backend in sorted(kube.ingress_backends(obj)):
                svc = await self._get(ObjectRef("Service", kube.namespace(obj), backend), 1)
                if svc is None:
                    self.b.add_gap(
                        f"Service {kube.namespace(obj)}/{backend}",
                        f"not found (backend of Ingress {kube.name(obj)})",
                    )
                    continue
                pods += await self._service(svc, 1)
            return pods
        if kind == "PersistentVolumeClaim":
            await self._pvc_chain(obj, 1)
            users = await self._list("Pod", kube.namespace(obj), None)
            claim = kube.name(obj)
            using = [p for p in users if claim in kube.pvc_names(p.get("spec") or {})]
            for pod in using:
                self.b.add_object(pod, 1)
            return using
        if kind == "HorizontalPodAutoscaler":
            target = (obj.get("spec") or {}).get("scaleTargetRef") or {}
            if target.get("kind") and target.get("name"):
                ref = ObjectRef(str(target["kind"]), kube.namespace(obj), str(target["name"]))
                if await self._get(ref, 1) is not None:
                    return await self._workload_pods(ref, 2)
            return []
        if kind == "Node":
            on_node = await self._list(
                "Pod", None, None, field_selector=f"spec.nodeName={kube.name(obj)}"
            )
            unhealthy = [p for p in on_node if kube.pod_unhealthy(p)]
            for pod in unhealthy[: self.limits.max_pods]:
                self.b.add_object(pod, 1)
            return unhealthy[: self.limits.max_pods]
        if kind in ("Namespace", "ResourceQuota"):
            ns = kube.name(obj) if kind == "Namespace" else kube.namespace(obj)
            await self._list("ResourceQuota", ns, 1)
            pods = await self._list("Pod", ns, None)
            unhealthy = [p for p in pods if kube.pod_unhealthy(p)][: self.limits.max_pods]
            for pod in unhealthy:
                self.b.add_object(pod, 1)
            for workload in await self._all(
                self._list(k, ns, None) for k in ("ReplicaSet", "StatefulSet", "Job")
            ):
                for item in workload:  # controllers that could not create pods say so
                    if kube.condition_is(item, "ReplicaFailure", "True") or kind == "Namespace":
                        self.b.add_object(item, 2)
            return unhealthy
        return []

    def _workload_ref(self, pod: KubeObject) -> ObjectRef | None:
        owner = kube.controller_of(pod)
        while owner is not None and owner in self.b.objects:
            parent = kube.controller_of(self.b.objects[owner])
            if parent is None or parent.kind not in kube.WORKLOAD_KINDS:
                return owner
            owner = parent
        return owner

    async def _owners(self, obj: KubeObject, distance: int) -> None:
        owner = kube.controller_of(obj)
        while owner is not None and owner.kind in kube.WORKLOAD_KINDS:
            parent = await self._get(owner, distance)
            if parent is None:
                return
            owner = kube.controller_of(parent)
            distance += 1

    async def _workload_pods(self, workload: ObjectRef, distance: int) -> list[KubeObject]:
        obj = self.b.objects.get(workload)
        if obj is None:
            return []
        spec = obj.get("spec") or {}
        if workload.kind == "CronJob":
            jobs = [
                j
                for j in await self._list("Job", workload.namespace, None)
                if kube.controller_of(j) == workload
            ]
            jobs.sort(key=lambda j: kube.meta(j).get("creationTimestamp") or "")
            pods: list[KubeObject] = []
            for job in jobs[-3:]:
                self.b.add_object(job, distance)
                pods += await self._workload_pods(kube.ref(job), distance + 1)
            return pods
        selector = label_selector_to_string(spec.get("selector"))
        if workload.kind == "Job" and not selector:
            selector = f"job-name={workload.name}"
        if not selector:
            return []
        if workload.kind == "Deployment":
            replica_sets = await self._list(
                "ReplicaSet", workload.namespace, None, label_selector=selector
            )
            owned = [rs for rs in replica_sets if kube.controller_of(rs) == workload]
            owned.sort(key=kube.revision)
            for rs in owned[-2:]:  # newest and previous revision: what changed
                self.b.add_object(rs, distance)
        pods = await self._list("Pod", workload.namespace, None, label_selector=selector)
        chosen = self._key_pods(pods)
        for pod in chosen:
            self.b.add_object(pod, distance)
        return chosen

    def _key_pods(self, pods: list[KubeObject]) -> list[KubeObject]:
        """Unhealthy pods first (those explain an alert), then a few healthy ones to compare."""
        unique = {kube.ref(p): p for p in pods}
        ranked = sorted(unique.values(), key=lambda p: (not kube.pod_unhealthy(p), kube.name(p)))
        return ranked[: self.limits.max_pods]

    async def _service(self, svc: KubeObject, distance: int) -> list[KubeObject]:
        ref = kube.ref(svc)
        await self._all(
            [
                self._get(ObjectRef("Endpoints", ref.namespace, ref.name), distance),
                self._list(
                    "EndpointSlice",
                    ref.namespace,
                    distance,
                    label_selector=f"kubernetes.io/service-name={ref.name}",
                ),
            ]
        )
        selector = (svc.get("spec") or {}).get("selector")
        if not selector:
            return []
        pods = await self._list(
            "Pod", ref.namespace, None, label_selector=selector_from_match_labels(selector)
        )
        if not pods:
            # A selector that matches nothing is usually a typo or a relabelling; the
            # namespace's workloads show which labels the intended pods really carry.
            for kind in ("Deployment", "StatefulSet", "DaemonSet"):
                await self._list(kind, ref.namespace, distance + 2)
        chosen = self._key_pods(pods)
        for pod in chosen:
            self.b.add_object(pod, distance + 1)
        await self._all(self._owners(p, distance + 2) for p in chosen[:2])
        return chosen

    async def _pvc_chain(self, pvc: KubeObject, distance: int) -> None:
        spec = pvc.get("spec") or {}
        reads = []
        if spec.get("volumeName"):
            reads.append(
                self._get(ObjectRef("PersistentVolume", None, spec["volumeName"]), distance + 1)
            )
        if spec.get("storageClassName"):
            sc = ObjectRef("StorageClass", None, spec["storageClassName"])
            reads.append(self._get(sc, distance + 1))
        await self._all(reads)
        if spec.get("storageClassName") is not None and not self.b.has(
            ObjectRef("StorageClass", None, str(spec["storageClassName"]))
        ):
            return
        if "storageClassName" not in spec:  # no class named: the default class decides
            await self._list("StorageClass", None, distance + 1)

    async def _expand_pods(self, pods: list[KubeObject], distance: int) -> None:
        """What the key pods use, and the namespace rules around them."""
        fresh = [p for p in pods if kube.ref(p) not in self._expanded_pods]
        self._expanded_pods.update(kube.ref(p) for p in fresh)
        reads: list[Awaitable[Any]] = []
        for pod in fresh:
            ns, spec = kube.namespace(pod), pod.get("spec") or {}
            # A healthy sibling's node explains nothing; an unhealthy pod's node may.
            matters = kube.pod_unhealthy(pod) or kube.ref(pod) in self.b.focus
            if spec.get("nodeName") and matters:
                reads.append(self._get(ObjectRef("Node", None, spec["nodeName"]), distance + 1))
            for claim in kube.pvc_names(spec):
                reads.append(self._pvc(ObjectRef("PersistentVolumeClaim", ns, claim), distance))
            for cfg in {(c.kind, c.name) for c in kube.config_references(spec)}:
                reads.append(self._get(ObjectRef(cfg[0], ns, cfg[1]), distance + 1))
            reads.append(self._owners(pod, distance + 1))
        namespaces = {kube.namespace(p) for p in fresh}
        for ns in sorted(n for n in namespaces if n):
            reads.append(self._namespace_rules(ns, fresh, distance + 1))
        await self._all(reads)
        await self._logs(fresh)

    async def _pvc(self, ref: ObjectRef, distance: int) -> None:
        pvc = await self._get(ref, distance)
        if pvc is not None:
            await self._pvc_chain(pvc, distance)

    async def _namespace_rules(self, ns: str, pods: list[KubeObject], distance: int) -> None:
        services, _namespace, policies, hpas, *_ = await self._all(
            [
                self._list("Service", ns, None),
                # Its labels decide NetworkPolicy namespaceSelectors and Pod Security.
                self._get(ObjectRef("Namespace", None, ns), distance + 1),
                self._list("NetworkPolicy", ns, distance),
                self._list("HorizontalPodAutoscaler", ns, None),
                self._list("ResourceQuota", ns, distance),
                self._list("LimitRange", ns, distance),
            ]
        )
        del policies
        ns_pods = [p for p in pods if kube.namespace(p) == ns]
        selecting = [
            s
            for s in services
            if any(
                kube.selects((s.get("spec") or {}).get("selector"), kube.labels(p)) for p in ns_pods
            )
        ]
        for svc in selecting:
            self.b.add_object(svc, distance)
        await self._all(self._service_endpoints(s, distance) for s in selecting)
        workloads = {self._workload_ref(p) for p in ns_pods}
        for hpa in hpas:
            target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            if ObjectRef(str(target.get("kind")), ns, str(target.get("name"))) in workloads:
                self.b.add_object(hpa, distance)
                if kube.condition_is(hpa, "ScalingActive", "False"):
                    await self._metrics_api(distance + 1)

    async def _metrics_api(self, distance: int) -> None:
        """An HPA that cannot read metrics is blind because the resource metrics API is
        down: follow that APIService to the Service and pods serving it (metrics-server)."""
        api = await self._get(ObjectRef("APIService", None, METRICS_API), distance)
        service = ((api or {}).get("spec") or {}).get("service") or {}
        if not service.get("name"):
            return
        ref = ObjectRef("Service", service.get("namespace") or None, str(service["name"]))
        svc = await self._get(ref, distance + 1)
        if svc is not None:
            pods = await self._service(svc, distance + 1)
            await self._expand_pods(self._key_pods(pods)[:2], distance + 2)

    async def _service_endpoints(self, svc: KubeObject, distance: int) -> None:
        ref = kube.ref(svc)
        await self._all(
            [
                self._get(ObjectRef("Endpoints", ref.namespace, ref.name), distance + 1),
                self._list(
                    "EndpointSlice",
                    ref.namespace,
                    distance + 1,
                    label_selector=f"kubernetes.io/service-name={ref.name}",
                ),
            ]
        )

    async def _logs(self, pods: list[KubeObject]) -> None:
        reads: list[Awaitable[None]] = []
        # Unhealthy pods explain most alerts. When every pod looks healthy (an error-rate
        # alert on a Service), the errors are in the logs of healthy pods: read a few.
        candidates = [p for p in pods if kube.pod_unhealthy(p)] or pods
        for pod in candidates[: self.limits.log_pods]:
            for ctr in kube.containers(pod):
                if not ctr.status:
                    continue  # never started: no log to read
                started = ctr.running or ctr.terminated or ctr.restarts > 0
                if started and not (ctr.waiting and ctr.restarts == 0):
                    reads.append(self._log(pod, ctr.name, previous=False))
                if ctr.restarts > 0 or ctr.last_terminated:
                    reads.append(self._log(pod, ctr.name, previous=True))
        await self._all(reads)

    async def _log(self, pod: KubeObject, container: str, *, previous: bool) -> None:
        ns, name = kube.namespace(pod) or "", kube.name(pod)
        which = "previous logs" if previous else "logs"
        text = await self._read(
            f"{which} of container {container} in Pod {ns}/{name}",
            self.source.logs(
                ns,
                name,
                container,
                previous=previous,
                tail_lines=self.limits.tail_lines * LOG_LOOKBACK,
                limit_bytes=self.limits.limit_bytes,
            ),
            None,
        )
        if text:
            self.b.add_log(ns, name, container, previous, text, keep_last=self.limits.tail_lines)

    async def _dependencies(self, pods: list[KubeObject]) -> None:
        """Follow Services named in env and error logs to the pods behind them."""
        wanted: dict[ObjectRef, list[Dependency]] = {}
        for pod in pods:
            pod_ref, ns = kube.ref(pod), kube.namespace(pod)
            env = [(name, value) for _c, name, value in kube.env_values(pod.get("spec") or {})]
            named = [(f"env {name}", h) for name, h in hosts_in_env(env)]
            for excerpt in self.b.logs.values():
                if excerpt.pod == pod_ref.name and excerpt.namespace == ns:
                    named += [
                        ("log", h) for line in excerpt.error_lines for h in hosts_in_log_line(line)
                    ]
            for via, host in dedupe_named(named):
                service = service_ref_for(host.host, ns) or self._service_by_ip(host.host)
                dep = Dependency(pod_ref, host.host, host.port, service, via, host.line)
                self.b.add_dependency(dep)
                own = {
                    kube.ref(s)
                    for s in self.b.objects.values()
                    if s.get("kind") == "Service"
                    and kube.selects((s.get("spec") or {}).get("selector"), kube.labels(pod))
                }
                if service is not None and service not in own:
                    wanted.setdefault(service, []).append(dep)
        targets = list(wanted)[:MAX_DEPENDENCIES]
        services = await self._all(self._get(ref, 2) for ref in targets)
        behind: list[KubeObject] = []
        for svc in services:
            if svc is not None:
                behind += await self._service(svc, 2)
        await self._expand_pods(self._key_pods(behind)[:3], distance=3)

    def _service_by_ip(self, host: str) -> ObjectRef | None:
        """A Service by cluster IP, among those read or listed so far (the namespaces of
        the alerted pods); an IP from elsewhere stays a bare address."""
        listed = self._listed()
        for obj in [*self.b.objects.values(), *listed]:
            if obj.get("kind") == "Service" and (obj.get("spec") or {}).get("clusterIP") == host:
                return kube.ref(obj)
        return None

    async def _services_in_warnings(self) -> bool:
        """Follow in-cluster Services named by Warning events — an admission webhook that
        refuses pods (``failed calling webhook ... Post "https://hook.ns.svc:443/..."``) —
        to the pods behind them and what they mount. Returns whether anything was added."""
        named: set[ObjectRef] = set()
        for ref, events in self.b.events.items():
            for event in events:
                if not event.warning:
                    continue
                for host in hosts_in_log_line(event.message):
                    service = service_ref_for(host.host, ref.namespace)
                    if service is not None and not self.b.has(service):
                        named.add(service)
        if not named:
            return False
        services = await self._all(self._get(ref, 3) for ref in sorted(named)[:MAX_DEPENDENCIES])
        behind: list[KubeObject] = []
        for svc in services:
            if svc is not None:
                behind += await self._service(svc, 3)
        await self._expand_pods(self._key_pods(behind)[:2], distance=4)
        return True

    async def _events(self) -> None:
        """Events of the objects that matter, each read with its own field selector."""
        all_pods = {r: obj for r, obj in self.b.objects.items() if r.kind == "Pod"}
        pods = [r for r, obj in all_pods.items() if kube.pod_unhealthy(obj) or r in self.b.focus]
        if not any(kube.pod_unhealthy(obj) for obj in all_pods.values()):
            # Everything recovered (a resolved alert) or never looked broken: what happened
            # during the alert is only in the pods' events.
            pods = list(all_pods)
        pods.sort(key=lambda r: (self.b.distance.get(r, 99), r.name))
        chosen_pods = set(pods[: self.limits.event_pods])
        refs = [
            r
            for r in self.b.objects
            if r.kind in EVENTFUL
            and (r.kind != "Pod" or r in chosen_pods)
            and r not in self._events_read
        ]
        self._events_read.update(refs)
        results = await self._all(
            self._read(f"events for {r}", self.source.events_for(r), []) for r in refs
        )
        for ref, raw in zip(refs, results, strict=True):
            self.b.add_events(ref, raw)


async def gather(
    source: ClusterSource,
    alert: AlertInput,
    targets: AlertTargets,
    limits: GatherLimits,
    source_name: str = "kubernetes",
) -> TriageContext:
    return await Gatherer(source, limits, source_name).run(alert, targets)
