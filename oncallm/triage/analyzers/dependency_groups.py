"""Who fails towards which dependency: client workloads grouped by what they call.

Part of the ``services`` analyzer. The gatherer lists a dependency per client pod and per
mention (``DB_HOST=postgres`` in env, ``10.96.3.4:5432`` in a log line); here they become
one client workload per dependency, named by its DNS name when one was given, with the
addresses the client logged for it (an outside endpoint's resolved IP) kept as aliases,
and the failure lines about it gathered from every pod of the workload.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from oncallm.sources.base import ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers.reachability import (
    Sighting,
    Target,
    is_ip,
    looks_like_service_ip,
    resolve,
    sightings,
)
from oncallm.triage.context import Dependency, TriageContext


@dataclass
class Client:
    """One client workload's failures towards one dependency."""

    workload: ObjectRef
    target: Target
    deps: list[Dependency]
    # Addresses the client logged for this dependency (the IP its name resolved to).
    aliases: set[str] = field(default_factory=set)


def _known_namespaces(ctx: TriageContext) -> set[str]:
    return {r.namespace for r in ctx.objects if r.namespace} | {
        r.name for r in ctx.objects if r.kind == "Namespace"
    }


def _better_name(known: Target, other: Target) -> Target:
    """The same dependency named twice (``postgres`` in env, ``10.96.3.4:5432`` in a log):
    say it by its DNS name, with whichever port was given."""
    if is_ip(known.host) and not is_ip(other.host):
        known, other = other, known
    if known.port is None and other.port is not None:
        return replace(known, port=other.port)
    return known


def alias_port(aliases: set[str]) -> int | None:
    ports = {int(a.rsplit(":", 1)[1]) for a in aliases if a.rsplit(":", 1)[-1].isdigit()}
    return ports.pop() if len(ports) == 1 else None


def _outside(ctx: TriageContext, target: Target) -> bool:
    if target.service is not None:
        return (target.service.get("spec") or {}).get("type") == "ExternalName"
    return target.ref is None and not looks_like_service_ip(ctx, target.host)


def _named_for(ctx: TriageContext, ip: Target, named: list[Target]) -> Target | None:
    """The named dependency an unknown IP in the logs stands for: the one on the same port,
    else the client's only dependency outside the cluster (an RDS endpoint resolves to an
    address no Service owns)."""
    same_port = [t for t in named if ip.port is not None and t.port == ip.port]
    if len(same_port) == 1:
        return same_port[0]
    outside = [t for t in named if _outside(ctx, t)]
    return outside[0] if len(outside) == 1 else None


def group_clients(ctx: TriageContext) -> tuple[list[Client], dict[ObjectRef, set[tuple[str, ...]]]]:
    """Clients by (workload, dependency), and the dependencies each client pod has."""
    namespaces = _known_namespaces(ctx)
    resolved = [(dep, resolve(ctx, dep, namespaces)) for dep in ctx.dependencies]
    named: dict[ObjectRef, dict[tuple[str, ...], Target]] = {}
    for dep, target in resolved:
        if target is not None and not is_ip(target.host):
            named.setdefault(dep.client, {})[target.key] = target
    clients: dict[tuple[ObjectRef, tuple[str, ...]], Client] = {}
    per_pod: dict[ObjectRef, set[tuple[str, ...]]] = {}
    for dep, target in resolved:
        pod = ctx.objects.get(dep.client)
        if target is None or (pod is not None and kube.pod_finished(pod)):
            continue
        alias = None
        if target.ref is None and is_ip(target.host):
            stands_for = _named_for(ctx, target, list(named.get(dep.client, {}).values()))
            if stands_for is not None:
                alias, target = target.address, stands_for
        workload = ctx.workload_of(pod) if pod is not None else dep.client
        client = clients.setdefault((workload, target.key), Client(workload, target, []))
        client.target = _better_name(client.target, target)
        client.deps.append(dep)
        if alias:
            client.aliases.add(alias)
        per_pod.setdefault(dep.client, set()).add(target.key)
    return list(clients.values()), per_pod


def client_sightings(
    ctx: TriageContext, client: Client, per_pod: dict[ObjectRef, set[tuple[str, ...]]]
) -> list[Sighting]:
    found: dict[tuple[str, str, str, bool], Sighting] = {}
    aliases = {a.rsplit(":", 1)[0] for a in client.aliases}
    for dep in client.deps:
        sole = len(per_pod.get(dep.client, ())) == 1
        for sighting in sightings(ctx, dep.client, client.target, sole, aliases):
            ex = sighting.excerpt
            found.setdefault((ex.namespace, ex.pod, ex.container, ex.previous), sighting)
    return list(found.values())
