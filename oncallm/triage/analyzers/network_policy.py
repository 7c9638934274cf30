"""Whether NetworkPolicies let one pod reach another, decided from the raw objects.

This owns the NetworkPolicy semantics the ``services`` analyzer needs to blame a policy:
a pod is isolated in a direction only when some policy selecting it lists that policy
type, and traffic is then allowed when *any* rule of *any* such policy admits the peer
and the port. Where the objects cannot tell (a peer's IP is unknown, a port cannot be
resolved) the answer leans towards "admitted": blaming a policy that allows the traffic
would send an engineer to the wrong place.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from oncallm.sources.base import KubeObject
from oncallm.triage import kube

INGRESS = "Ingress"
NAME_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by the API server
EGRESS = "Egress"


@dataclass(frozen=True)
class Peer:
    """One end of a connection: a pod's namespace, labels, its namespace's labels, IP."""

    namespace: str
    labels: Mapping[str, str]
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None
    # False when the Namespace object was not read: only its name label is certain.
    namespace_known: bool = True


@dataclass(frozen=True)
class Port:
    """The destination pod's port: its number and/or the container port's name."""

    number: int | None
    name: str | None = None
    protocol: str = "TCP"

    def describe(self) -> str:
        if self.number is not None:
            return f"{self.protocol} {self.number}"
        return f"{self.protocol} {self.name or '?'}"


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A ``metav1.LabelSelector``: ``{}`` selects everything, None selects nothing."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key"), expr.get("operator")
        values = set(expr.get("values") or [])
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _keys(selector: Mapping[str, Any]) -> set[str]:
    return set(selector.get("matchLabels") or {}) | {
        str(e.get("key")) for e in selector.get("matchExpressions") or []
    }


def describe_selector(selector: Mapping[str, Any] | None) -> str:
    if not selector:
        return "all pods"
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        values = ",".join(expr.get("values") or [])
        parts.append(f"{expr.get('key')} {expr.get('operator')} ({values})".replace(" ()", ""))
    return ",".join(parts) or "all pods"


def policy_types(policy: Mapping[str, Any]) -> set[str]:
    spec = policy.get("spec") or {}
    declared = spec.get("policyTypes")
    if declared:
        return {str(t) for t in declared}
    # The API server's default: Ingress always, Egress when egress rules are written.
    return {INGRESS, EGRESS} if spec.get("egress") else {INGRESS}


def isolating(policies: Iterable[KubeObject], direction: str, pod: Peer) -> list[KubeObject]:
    """The policies that select ``pod`` for ``direction`` (so only their rules admit)."""
    return [
        p
        for p in policies
        if kube.namespace(p) == pod.namespace
        and direction in policy_types(p)
        and selector_matches((p.get("spec") or {}).get("podSelector") or {}, pod.labels)
    ]


def _ip_in_block(ip: str | None, block: Mapping[str, Any]) -> bool:
    if ip is None:
        return True  # unknown address: cannot rule the block out
    try:
        address = ipaddress.ip_address(ip)
        if address not in ipaddress.ip_network(str(block.get("cidr")), strict=False):
            return False
        return not any(
            address in ipaddress.ip_network(str(ex), strict=False)
            for ex in block.get("except") or []
        )
    except ValueError:
        return True


def _peer_admits(peer: Mapping[str, Any], policy_namespace: str | None, other: Peer) -> bool:
    if "ipBlock" in peer:
        return _ip_in_block(other.ip, peer["ipBlock"] or {})
    pod_selector = peer.get("podSelector")
    ns_selector = peer.get("namespaceSelector")
    if ns_selector is None:
        # A bare podSelector means pods of the policy's own namespace.
        if other.namespace != policy_namespace:
            return False
    elif not other.namespace_known and _keys(ns_selector) - {NAME_LABEL}:
        pass  # selects on namespace labels we did not read: cannot rule the peer out
    elif not selector_matches(ns_selector, other.namespace_labels):
        return False
    return pod_selector is None or selector_matches(pod_selector, other.labels)


def _port_admits(entries: Sequence[Mapping[str, Any]], port: Port) -> bool:
    if not entries:
        return True
    for entry in entries:
        if str(entry.get("protocol") or "TCP") != port.protocol:
            continue
        allowed = entry.get("port")
        if allowed is None:
            return True
        if isinstance(allowed, int) or str(allowed).isdigit():
            if port.number is None:
                return True  # cannot resolve the destination's number: do not blame
            low = int(allowed)
            high = int(entry.get("endPort") or low)
            if low <= port.number <= high:
                return True
        elif port.name is None or allowed == port.name:
            return True
    return False


def admits(policy: Mapping[str, Any], direction: str, other: Peer, port: Port) -> bool:
    spec = policy.get("spec") or {}
    rules = spec.get("ingress" if direction == INGRESS else "egress") or []
    peers_key = "from" if direction == INGRESS else "to"
    for rule in rules:
        peers = rule.get(peers_key) or []
        peer_ok = not peers or any(_peer_admits(p, kube.namespace(policy), other) for p in peers)
        if peer_ok and _port_admits(rule.get("ports") or [], port):
            return True
    return False


def blocking(
    policies: Iterable[KubeObject], direction: str, pod: Peer, other: Peer, port: Port
) -> list[KubeObject]:
    """The policies isolating ``pod`` when none of them admits ``other`` on ``port``;
    empty when the traffic is allowed (or ``pod`` is not isolated at all)."""
    selecting = isolating(policies, direction, pod)
    if not selecting or any(admits(p, direction, other, port) for p in selecting):
        return []
    return selecting
