"""``DependencyFailure`` and ``NetworkBlocked`` findings (the advice is in :mod:`traffic_advice`).

Part of the ``services`` analyzer. One finding per client workload and dependency: the
subject is the client's workload (not its pod, so a crash finding on that same pod does
not swallow this one), the culprit is the dependency as far as it can be named — the
Service, a Service that does not exist, or the outside host — and ``blames`` points at
the pods and workloads behind the Service so their own findings rank as the cause. When
the dependency is serving and a NetworkPolicy drops the client's traffic, the policy is
the culprit of a ``NetworkBlocked`` finding, which the ``DependencyFailure`` blames.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import network_policy as netpol
from oncallm.triage.analyzers.dependency_groups import (
    Client,
    alias_port,
    client_sightings,
    group_clients,
)
from oncallm.triage.analyzers.phrases import history_only, plural, pod_state, selector_text
from oncallm.triage.analyzers.reachability import (
    KIND_WORDS,
    KUBE_DNS,
    SILENT_DROPS,
    Block,
    Sighting,
    destination_port,
    dns_pod,
    failure_phrase,
    find_block,
    is_ip,
    looks_like_service_ip,
    patch_for,
    redact,
    selector_labels,
)
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.taxonomy import Category


def dependency_findings(
    ctx: TriageContext, ledger: EvidenceLedger, analyzer: str
) -> Iterator[Finding]:
    clients, per_pod = group_clients(ctx)
    for client in clients:
        seen = client_sightings(ctx, client, per_pod)
        if seen:
            yield from _judge(ctx, ledger, analyzer, client, seen)
        else:
            finding = _silent_victim(ctx, ledger, analyzer, client)
            if finding is not None:
                yield finding


def _backends(ctx: TriageContext, svc: KubeObject) -> list[KubeObject]:
    return [p for p in ctx.pods_selected_by(svc) if not kube.pod_finished(p)]


def _blames(
    ctx: TriageContext, ref: ObjectRef, backends: list[KubeObject]
) -> tuple[ObjectRef, ...]:
    workloads = sorted({ctx.workload_of(p) for p in backends})
    return (ref, *(kube.ref(p) for p in backends), *workloads)


def _judge(
    ctx: TriageContext,
    ledger: EvidenceLedger,
    analyzer: str,
    client: Client,
    seen: list[Sighting],
) -> Iterator[Finding]:
    target = client.target
    kinds = set().union(*(s.kinds for s in seen))
    count = sum(len(s.lines) for s in seen)
    named = any(s.named for s in seen)
    evidence = [
        ledger.cite_log(
            s.excerpt.namespace,
            s.excerpt.pod,
            s.excerpt.container,
            s.excerpt.previous,
            [redact(line) for line in s.lines[-5:]],
        )
        for s in seen
    ]
    phrases = {p for s in seen for line in s.lines if (p := failure_phrase(line))}
    words = ", ".join(sorted(phrases, key=str.lower)) or ", ".join(KIND_WORDS[k] for k in kinds)
    at = f" at {', '.join(sorted(client.aliases))}" if client.aliases else ""
    name = target.address
    if is_ip(target.host) and target.ref is not None:
        name = f"{target.ref.name} at {target.address}"  # the logs gave its ClusterIP
    lead = f"{client.workload} cannot reach {name}{at} ({words}; {plural(count, 'log line')})"
    facts: dict[str, Any] = {
        "host": target.host,
        "port": target.port or alias_port(client.aliases),
        "kinds": sorted(kinds),
        "client": str(client.workload),
        "client_namespace": client.workload.namespace,
        "client_pods": sorted({s.excerpt.pod for s in seen}),
        "containers": sorted({s.excerpt.container for s in seen}),
        "lines": [redact(line) for line in seen[0].lines[-3:]],
    }
    penalty = 0.0 if named else 0.1
    if history_only(ctx, [s.excerpt for s in seen]):
        penalty += 0.3  # only a previous instance failed; the client is Ready now
    blames: tuple[ObjectRef, ...] = ()
    if kinds == {"dns-timeout"}:
        block = _dns_block(ctx, client, seen)
        if block is not None:
            yield _blocked(ctx, ledger, analyzer, client, block, evidence, 0.8 - penalty)
            blames = (kube.ref(block.culprit),)
        dns = ctx.get("Service", KUBE_DNS.namespace, KUBE_DNS.name)
        backends = _backends(ctx, dns) if dns else []
        yield Finding(
            Category.DependencyFailure,
            f"{lead}: the cluster DNS does not answer, so the name cannot be looked up",
            client.workload,
            KUBE_DNS,
            tuple(evidence),
            0.6 - penalty,
            analyzer,
            blames=blames + _blames(ctx, KUBE_DNS, backends),
            facts={**facts, "rule": "dns"},
        )
        return
    svc = target.service
    if target.ref is None:
        service_ip = looks_like_service_ip(ctx, target.host)
        where = (
            "is in the Service IP range but no gathered Service has that address"
            if service_ip
            else "is outside the cluster — check it is up and reachable from the cluster"
        )
        yield Finding(
            Category.DependencyFailure,
            f"{lead}: {target.host} {where}",
            client.workload,
            ObjectRef("ExternalHost", None, target.address),
            tuple(evidence),
            (0.5 if service_ip else 0.6) - penalty,
            analyzer,
            facts={**facts, "rule": "external"},
        )
        return
    ref = target.ref
    facts["service"] = f"{ref.namespace}/{ref.name}"
    if svc is None:
        unread = any(ref.name in gap.source and "not found" not in gap.error for gap in ctx.gaps)
        confidence = 0.4 if unread else (0.7 if "unresolved" in kinds else 0.6)
        why = "could not be read" if unread else "does not exist"
        yield Finding(
            Category.DependencyFailure,
            f"{lead}: Service {ref.namespace}/{ref.name} {why}",
            client.workload,
            ref,
            tuple(evidence),
            confidence - penalty,
            analyzer,
            blames=(ref,),
            facts={**facts, "rule": "missing-service"},
        )
        return
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        outside = spec.get("externalName")
        yield Finding(
            Category.DependencyFailure,
            f"{lead}: Service {ref.namespace}/{ref.name} is an ExternalName for {outside}, "
            "outside the cluster",
            client.workload,
            ref,
            tuple(evidence),
            0.6 - penalty,
            analyzer,
            blames=(ref,),
            facts={**facts, "rule": "external-name", "external_name": outside},
        )
        return
    backends = _backends(ctx, svc)
    facts["backends"] = [kube.name(p) for p in backends]
    facts["selector"] = dict(spec.get("selector") or {})
    ready = ctx.ready_endpoints(ref)
    if ready is None:
        ready = sum(1 for p in backends if kube.pod_ready(p)) if backends else None
    if ready == 0:
        states = ", ".join(f"{kube.name(p)} {pod_state(p)}" for p in backends[:3])
        behind = f": {states}" if states else " (its selector matches no pod)"
        yield Finding(
            Category.DependencyFailure,
            f"{lead}: Service {ref.namespace}/{ref.name} has no ready endpoints{behind}",
            client.workload,
            ref,
            tuple(evidence),
            0.8 - penalty,
            analyzer,
            blames=_blames(ctx, ref, backends),
            facts={**facts, "rule": "no-endpoints"},
        )
        return
    ports = [p.get("port") for p in spec.get("ports") or []]
    if target.port is not None and ports and target.port not in ports:
        yield Finding(
            Category.DependencyFailure,
            f"{lead}: Service {ref.namespace}/{ref.name} does not expose port {target.port} "
            f"(it exposes {', '.join(str(p) for p in ports)})",
            client.workload,
            ref,
            tuple(evidence),
            0.7 - penalty,
            analyzer,
            blames=(ref,),
            facts={**facts, "rule": "port-mismatch", "service_ports": ports},
        )
        return
    serving = [p for p in backends if kube.pod_ready(p)] or backends
    client_pod = next((ctx.objects[d.client] for d in client.deps if d.client in ctx.objects), None)
    if kinds <= SILENT_DROPS and serving and client_pod is not None:
        port = destination_port(svc, target.port, serving[0])
        block = find_block(ctx, client_pod, serving[0], port)
        if block is not None:
            yield _blocked(ctx, ledger, analyzer, client, block, evidence, 0.85 - penalty)
            blames = (kube.ref(block.culprit),)
    summary = (
        f"{lead}, although Service {ref.namespace}/{ref.name} has "
        f"{plural(ready or 0, 'ready endpoint')}"
    )
    yield Finding(
        Category.DependencyFailure,
        summary,
        client.workload,
        ref,
        tuple(evidence),
        0.5 - penalty,
        analyzer,
        blames=blames + _blames(ctx, ref, backends),
        facts={**facts, "rule": "blocked" if blames else "serving", "ready": ready},
    )


def _dns_block(ctx: TriageContext, client: Client, seen: list[Sighting]) -> Block | None:
    pod = next((ctx.objects[d.client] for d in client.deps if d.client in ctx.objects), None)
    if pod is None:
        return None
    lines = [line for s in seen for line in s.lines]
    return find_block(ctx, pod, dns_pod(ctx, lines), netpol.Port(53, "dns", "UDP"))


def _blocked(
    ctx: TriageContext,
    ledger: EvidenceLedger,
    analyzer: str,
    client: Client,
    block: Block,
    evidence: list[str],
    confidence: float,
) -> Finding:
    policy = block.culprit
    pref = kube.ref(policy)
    spec = policy.get("spec") or {}
    key = "ingress" if block.direction == netpol.INGRESS else "egress"
    excerpt = json.dumps(
        {
            "podSelector": spec.get("podSelector"),
            "policyTypes": sorted(netpol.policy_types(policy)),
            key: spec.get(key) or [],
        },
        separators=(",", ":"),
    )
    cited = ledger.cite_object(pref, "spec", excerpt)
    isolated = netpol.describe_selector(spec.get("podSelector") or {})
    if block.direction == netpol.INGRESS:
        peer, where = block.client, block.destination.namespace
        what = (
            f"isolates pods {isolated} in {where} for ingress and no rule admits pods "
            f"{selector_text(selector_labels(peer.labels))} from namespace {peer.namespace}"
        )
    else:
        peer, where = block.destination, block.client.namespace
        what = (
            f"limits egress of pods {isolated} in {where} and no rule admits pods "
            f"{selector_text(selector_labels(peer.labels))} in namespace {peer.namespace}"
        )
    others = [kube.name(p) for p in block.policies if p is not policy]
    also = f" (also isolating: {', '.join(others)})" if others else ""
    summary = (
        f"NetworkPolicy {pref.namespace}/{pref.name} {what} on {block.port.describe()}{also}: "
        f"{client.workload}'s connections to {client.target.address} time out"
    )
    return Finding(
        Category.NetworkBlocked,
        summary,
        client.workload,
        pref,
        (*evidence, cited),
        confidence,
        analyzer,
        facts={
            "direction": block.direction,
            "policy": pref.name,
            "namespace": pref.namespace,
            "port": block.port.number,
            "port_name": block.port.name,
            "protocol": block.port.protocol,
            "host": client.target.host,
            "service_port": client.target.port,
            "client_namespace": block.client.namespace,
            "client_labels": selector_labels(block.client.labels),
            "destination_namespace": block.destination.namespace,
            "destination_labels": selector_labels(block.destination.labels),
            "client_pod": next((d.client.name for d in client.deps), None),
            "patch": patch_for(block),
        },
    )


def _silent_victim(
    ctx: TriageContext, ledger: EvidenceLedger, analyzer: str, client: Client
) -> Finding | None:
    """A failing client whose env points at a Service with no ready endpoint, even when its
    logs do not say so in words we recognise."""
    svc = client.target.service
    ref = client.target.ref
    if svc is None or ref is None or ctx.ready_endpoints(ref) != 0:
        return None
    env_deps = [d for d in client.deps if d.via.startswith("env ")]
    pods = [ctx.objects[d.client] for d in env_deps if d.client in ctx.objects]
    if not pods or not any(kube.pod_unhealthy(p) for p in pods):
        return None
    dep = env_deps[0]
    cited = ledger.cite_object(dep.client, "env", f"{dep.via}={redact(dep.line)}")
    backends = _backends(ctx, svc)
    return Finding(
        Category.DependencyFailure,
        f"{client.workload} is unhealthy and its {dep.via} points at {client.target.address}: "
        f"Service {ref.namespace}/{ref.name} has no ready endpoints",
        client.workload,
        ref,
        (cited,),
        0.5,
        analyzer,
        blames=_blames(ctx, ref, backends),
        facts={
            "rule": "no-endpoints",
            "host": client.target.host,
            "port": client.target.port,
            "service": f"{ref.namespace}/{ref.name}",
            "client": str(client.workload),
            "client_namespace": client.workload.namespace,
            "client_pods": [kube.name(p) for p in pods],
            "containers": [],
            "backends": [kube.name(p) for p in backends],
            "selector": dict((svc.get("spec") or {}).get("selector") or {}),
            "kinds": [],
        },
    )
