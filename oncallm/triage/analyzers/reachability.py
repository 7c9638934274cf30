"""Can a client reach a dependency: what its logs say, where the host leads, what drops it.

The matching half of the ``DependencyFailure`` and ``NetworkBlocked`` rules (the findings
are built in :mod:`traffic`). A dependency the gatherer found (a host in a client's env
or logs) is resolved to the Service it names — existing or not — or to a host outside
the cluster; the client's logs are searched for refusals, timeouts and failed lookups on
lines that name it; and NetworkPolicies on both ends are asked whether they admit the
connection at the destination pod's port.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import network_policy as netpol
from oncallm.triage.analyzers.phrases import GENERATED_LABELS
from oncallm.triage.context import Dependency, LogExcerpt, TriageContext

# Ordered: a DNS lookup that times out is a DNS problem, not the dependency's.
FAILURE_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "dns-timeout",
        re.compile(r"lookup \S+ on \S+:53\b.*(i/o timeout|timed out)", re.IGNORECASE),
    ),
    (
        "unresolved",
        re.compile(
            r"no such host|could not translate host name|name or service not known|ENOTFOUND|"
            r"EAI_AGAIN|temporary failure in name resolution|UnknownHostException|"
            r"nodename nor servname",
            re.IGNORECASE,
        ),
    ),
    (
        "refused",
        re.compile(
            r"connection refused|ECONNREFUSED|actively refused|ConnectionRefused(?:Error)?|"
            r"Connect call failed|Errno 111\b",
            re.IGNORECASE,
        ),
    ),
    (
        "timeout",
        re.compile(
            r"i/o timeout|context deadline exceeded|timed out|ETIMEDOUT|timeout expired|"
            r"connect(?:ion)? timeout",
            re.IGNORECASE,
        ),
    ),
    (
        "unreachable",
        re.compile(r"no route to host|EHOSTUNREACH|network is unreachable", re.IGNORECASE),
    ),
)
KIND_WORDS = {
    "dns-timeout": "DNS lookups time out",
    "unresolved": "the name does not resolve",
    "refused": "connection refused",
    "timeout": "connections time out",
    "unreachable": "no route to host",
}
SILENT_DROPS = frozenset({"timeout", "unreachable"})  # how a NetworkPolicy drop looks
_ADDRESS = re.compile(r"\b[\w.-]+:\d{2,5}\b")
_CREDENTIALS = (
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1***@"),
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|token)=[^\s&;]+"), r"\1=***"),
)
_RESOLVER = re.compile(r" on \[?([\d.a-f:]+?)\]?:53\b")  # "lookup db on 10.96.0.10:53: ..."
KUBE_DNS = ObjectRef("Service", "kube-system", "kube-dns")


def redact(text: str) -> str:
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    return text


def failure_kind(line: str) -> str | None:
    return next((kind for kind, pattern in FAILURE_KINDS if pattern.search(line)), None)


def failure_phrase(line: str) -> str | None:
    """The words the client used ("no such host", "ECONNREFUSED"), to quote them."""
    for _kind, pattern in FAILURE_KINDS:
        match = pattern.search(line)
        if match:
            return match.group(1) if pattern.groups and match.group(1) else match.group(0)
    return None


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _cluster_ips(svc: Mapping[str, Any]) -> set[str]:
    spec = svc.get("spec") or {}
    ips = set(spec.get("clusterIPs") or [])
    if spec.get("clusterIP"):
        ips.add(str(spec["clusterIP"]))
    return ips - {"None"}


def looks_like_service_ip(ctx: TriageContext, host: str) -> bool:
    """An IPv4 address in the same /16 as the Services we know: a cluster IP, not an
    outside host (the Service behind it was simply not gathered)."""
    if not is_ip(host) or ":" in host:
        return False
    prefix = host.split(".")[:2]
    return any(
        ip.split(".")[:2] == prefix for s in ctx.of_kind("Service") for ip in _cluster_ips(s)
    )


@dataclass(frozen=True)
class Target:
    """What a dependency's host leads to: a Service (existing or not) or an outside host."""

    host: str
    port: int | None
    ref: ObjectRef | None  # the Service, None when outside the cluster
    service: KubeObject | None = field(default=None, compare=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.port else self.host

    @property
    def key(self) -> tuple[str, ...]:
        if self.ref is not None:
            return (str(self.ref),)
        return ("ExternalHost", self.address)


def resolve(ctx: TriageContext, dep: Dependency, namespaces: set[str]) -> Target | None:
    """Where ``dep`` leads; None for the client's own loopback (a sidecar, not a service).

    ``namespaces`` are those the context knows: ``name.ns`` only means a Service when
    ``ns`` is one of them (``example.com`` is not Service ``example`` in namespace ``com``).
    """
    host = dep.host.lower().strip("[]").rstrip(".")
    if host == "localhost" or host.startswith("127.") or host == "::1":
        return None
    if host.replace(".", "").isdigit() and not is_ip(host):
        return None  # "09:52:08" read as host 52, port 8: a timestamp, not a dependency
    ref = dep.service
    parts = host.split(".")
    if is_ip(host):
        svc = next((s for s in ctx.of_kind("Service") if host in _cluster_ips(s)), None)
        ref = kube.ref(svc) if svc is not None else ref
    elif "svc" in parts[2:]:
        at = parts.index("svc", 2)
        ref = ObjectRef("Service", parts[at - 1], parts[at - 2])
    elif len(parts) == 1:
        ref = ObjectRef("Service", dep.client.namespace, host)
    elif len(parts) == 2:
        ref = ObjectRef("Service", parts[1], parts[0]) if parts[1] in namespaces else None
    else:
        ref = None
    return Target(dep.host, dep.port, ref, ctx.objects.get(ref) if ref else None)


@dataclass
class Sighting:
    """The failure lines one client container logged about one dependency."""

    excerpt: LogExcerpt
    lines: list[str]
    kinds: set[str]
    named: bool  # the lines name the dependency (not just a lone dependency's bare error)


def _tokens(target: Target) -> set[str]:
    host = target.host.lower().strip("[]")
    tokens = {host}
    short = host.split(".")[0]
    if not is_ip(host) and len(short) >= 3:
        tokens.add(short)
    if target.ref is not None:
        tokens.add(target.ref.name.lower())
    if target.service is not None:
        tokens |= _cluster_ips(target.service)
    return tokens


def _mentions(text: str, tokens: set[str]) -> bool:
    low = text.lower()
    return any(re.search(rf"(?<![\w.-]){re.escape(t)}(?![\w-])", low) for t in tokens)


def sightings(
    ctx: TriageContext,
    client: ObjectRef,
    target: Target,
    sole: bool,
    aliases: set[str] | frozenset[str] = frozenset(),
) -> list[Sighting]:
    """Failure lines about ``target`` (or one of its ``aliases``) in ``client``'s logs.
    ``sole``: the client names no other dependency, so a bare "connection refused" without
    an address is about this one."""
    tokens = _tokens(target) | set(aliases)
    found: list[Sighting] = []
    for excerpt in ctx.logs_of_pod(client):
        named: list[tuple[str, str]] = []
        bare: list[tuple[str, str]] = []
        for i, line in enumerate(excerpt.lines):
            kind = failure_kind(line)
            if kind is None:
                continue
            # Drivers split one error over lines (psql names the host on the next one).
            if _mentions(" ".join(excerpt.lines[i : i + 3]), tokens):
                named.append((line, kind))
            elif sole and not _ADDRESS.search(line):
                bare.append((line, kind))
        chosen = named or bare
        if chosen:
            found.append(
                Sighting(excerpt, [text for text, _ in chosen], {k for _, k in chosen}, bool(named))
            )
    return found


def _peer(ctx: TriageContext, pod: Mapping[str, Any]) -> netpol.Peer:
    namespace = kube.namespace(pod) or ""
    ns_obj = ctx.get("Namespace", None, namespace)
    ns_labels = dict(kube.labels(ns_obj)) if ns_obj else {}
    ns_labels.setdefault(netpol.NAME_LABEL, namespace)
    ip = (pod.get("status") or {}).get("podIP")
    return netpol.Peer(
        namespace, kube.labels(pod), ns_labels, str(ip) if ip else None, ns_obj is not None
    )


def destination_port(
    svc: Mapping[str, Any], port: int | None, pod: Mapping[str, Any]
) -> netpol.Port:
    ports = (svc.get("spec") or {}).get("ports") or []
    entry = next((p for p in ports if p.get("port") == port), ports[0] if len(ports) == 1 else None)
    if entry is None:
        return netpol.Port(port)
    target = entry.get("targetPort", entry.get("port"))
    declared = [
        p for c in kube.containers(pod, include_init=False) for p in c.spec.get("ports") or []
    ]
    protocol = str(entry.get("protocol") or "TCP")
    if isinstance(target, str) and not target.isdigit():
        number = next((p.get("containerPort") for p in declared if p.get("name") == target), None)
        return netpol.Port(int(number) if number else None, target, protocol)
    name = next((p.get("name") for p in declared if p.get("containerPort") == int(target)), None)
    return netpol.Port(int(target), str(name) if name else None, protocol)


def selector_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels that identify a workload's pods, for a policy rule."""
    stable = {k: v for k, v in labels.items() if k not in GENERATED_LABELS}
    for key in ("app.kubernetes.io/name", "app", "k8s-app", "name"):
        if key in stable:
            keep: dict[str, str] = {key: stable[key]}
            if key == "app.kubernetes.io/name" and "app.kubernetes.io/instance" in stable:
                keep["app.kubernetes.io/instance"] = stable["app.kubernetes.io/instance"]
            return keep
    return stable


@dataclass(frozen=True)
class Block:
    direction: str
    policies: list[KubeObject]
    port: netpol.Port
    client: netpol.Peer
    destination: netpol.Peer

    @property
    def culprit(self) -> KubeObject:
        # The policy with rules is where an engineer adds the missing one; a bare
        # default-deny is working as intended.
        key = "ingress" if self.direction == netpol.INGRESS else "egress"
        return sorted(
            self.policies, key=lambda p: (not (p.get("spec") or {}).get(key), kube.name(p))
        )[0]


def find_block(
    ctx: TriageContext, client: KubeObject, destination: KubeObject, port: netpol.Port
) -> Block | None:
    src, dst = _peer(ctx, client), _peer(ctx, destination)
    ingress = netpol.blocking(
        ctx.of_kind("NetworkPolicy", dst.namespace), netpol.INGRESS, dst, src, port
    )
    if ingress:
        return Block(netpol.INGRESS, ingress, port, src, dst)
    egress = netpol.blocking(
        ctx.of_kind("NetworkPolicy", src.namespace), netpol.EGRESS, src, dst, port
    )
    return Block(netpol.EGRESS, egress, port, src, dst) if egress else None


def dns_pod(ctx: TriageContext, lines: Sequence[str]) -> KubeObject:
    """A kube-dns pod as seen by policies: the real one when gathered."""
    real = next(
        (
            p
            for p in ctx.of_kind("Pod", "kube-system")
            if kube.labels(p).get("k8s-app") == "kube-dns"
        ),
        None,
    )
    if real is not None:
        return real
    resolver = next(
        (m.group(1) for text in lines if (m := re.search(r" on \[?([\d.a-f:]+?)\]?:53\b", text))),
        None,
    )
    return {
        "kind": "Pod",
        "metadata": {
            "name": "kube-dns",
            "namespace": "kube-system",
            "labels": {"k8s-app": "kube-dns"},
        },
        "status": {"podIP": resolver} if resolver else {},
    }


def patch_for(block: Block) -> str:
    """A JSON patch adding the rule that admits the client, as ``kubectl patch`` takes it."""
    policy = block.culprit
    outbound = block.direction == netpol.EGRESS
    other = block.destination if outbound else block.client
    peer: dict[str, Any] = {"podSelector": {"matchLabels": selector_labels(other.labels)}}
    if other.namespace != kube.namespace(policy):
        peer["namespaceSelector"] = {
            "matchLabels": {"kubernetes.io/metadata.name": other.namespace}
        }
    port: dict[str, Any] = {"protocol": block.port.protocol}
    if block.port.number is not None or block.port.name:
        port["port"] = block.port.number if block.port.number is not None else block.port.name
    rule = {"to" if outbound else "from": [peer], "ports": [port]}
    key = "egress" if outbound else "ingress"
    existing = (policy.get("spec") or {}).get(key)
    op = (
        {"op": "add", "path": f"/spec/{key}/-", "value": rule}
        if existing
        else {"op": "add", "path": f"/spec/{key}", "value": [rule]}
    )
    return json.dumps([op], separators=(",", ":"))
