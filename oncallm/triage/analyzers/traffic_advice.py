"""What to do about a ``DependencyFailure`` or a ``NetworkBlocked`` finding.

Each recommendation quotes the finding's facts: the Service and the pods behind it, the
host and port the client dials, the NetworkPolicy and the JSON patch that adds the
missing rule. Probes run from a throwaway pod carrying the client's labels, so policies
treat it as they treat the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oncallm.triage.analyzers import network_policy as netpol
from oncallm.triage.analyzers.phrases import selector_text
from oncallm.triage.context import TriageContext
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl

NETCHECK_IMAGE = "busybox:1.36"


def _netcheck(
    namespace: str | None, host: str, port: Any, labels: Mapping[str, str] | None = None
) -> str:
    """A throwaway pod probing ``host``; with the client's labels, policies treat it alike."""
    probe = f"nc -zv -w 5 {host} {port}" if port else f"nslookup {host}"
    args = ["run", "oncallm-netcheck", "--rm", "-i", "--restart=Never", f"--image={NETCHECK_IMAGE}"]
    if labels:
        args.append(f"--labels={selector_text(labels)}")
    return kubectl(*args, namespace=namespace) + f" -- {probe}"


def recommend_dependency(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    facts = finding.facts
    cns = facts.get("client_namespace")
    host, port = facts.get("host", ""), facts.get("port")
    logs = tuple(
        kubectl("logs", pod, "-c", ctr, "--tail=50", namespace=cns)
        for pod in (facts.get("client_pods") or [])[:1]
        for ctr in (facts.get("containers") or [])[:1]
    )
    rule = facts.get("rule")
    svc_ns, _, svc_name = str(facts.get("service", "/")).partition("/")
    if rule == "no-endpoints":
        selector = selector_text(facts.get("selector") or {})
        backends = facts.get("backends") or []
        commands = (
            kubectl(
                "get",
                "endpointslices",
                "-l",
                f"kubernetes.io/service-name={svc_name}",
                namespace=svc_ns,
            ),
            *(
                (kubectl("get", "pods", "-l", selector, "-o", "wide", namespace=svc_ns),)
                if selector
                else ()
            ),
            *(kubectl("describe", "pod", p, namespace=svc_ns) for p in backends[:1]),
        )
        return [
            Recommendation(
                f"Bring back the pods behind Service {svc_name}",
                f"{facts.get('client')} fails because Service {svc_ns}/{svc_name} has no ready "
                "endpoints; it recovers once those pods are Ready — fix them, not the client.",
                commands,
                "low",
                finding.confidence,
            )
        ]
    if rule == "missing-service":
        return [
            Recommendation(
                f"Create Service {svc_name} or correct the host {host}",
                f"{facts.get('client')} calls {host}, but there is no Service {svc_name} in "
                f"namespace {svc_ns}. Either the Service is missing, or the client's configuration "
                "names the wrong host or namespace.",
                (
                    kubectl("get", "services", namespace=svc_ns),
                    f"kubectl get services -A --field-selector metadata.name={svc_name}",
                    *logs,
                ),
                "low",
                finding.confidence,
            )
        ]
    if rule == "dns":
        return [
            Recommendation(
                "Check the cluster DNS",
                f"{facts.get('client')} cannot look up {host}: DNS queries time out. Check the "
                "CoreDNS pods and any egress NetworkPolicy that does not allow UDP/TCP 53.",
                (
                    kubectl(
                        "get",
                        "pods",
                        "-l",
                        "k8s-app=kube-dns",
                        "-o",
                        "wide",
                        namespace="kube-system",
                    ),
                    kubectl("logs", "-l", "k8s-app=kube-dns", "--tail=50", namespace="kube-system"),
                    kubectl("get", "networkpolicy", namespace=cns),
                    _netcheck(cns, host, None),
                ),
                "low",
                finding.confidence,
            )
        ]
    if rule == "port-mismatch":
        ports = ", ".join(str(p) for p in facts.get("service_ports") or [])
        return [
            Recommendation(
                f"Align the port {port} with Service {svc_name}",
                f"{facts.get('client')} dials {host}:{port}; Service {svc_ns}/{svc_name} exposes "
                f"{ports}. Fix the port in the client's configuration or add it to the Service.",
                (
                    kubectl(
                        "get",
                        "service",
                        svc_name,
                        "-o",
                        "jsonpath='{.spec.ports}'",
                        namespace=svc_ns,
                    ),
                    *logs,
                ),
                "low",
                finding.confidence,
            )
        ]
    if rule in ("external", "external-name"):
        outside = facts.get("external_name") or host
        return [
            Recommendation(
                f"Check {outside} outside the cluster",
                f"{facts.get('client')} cannot reach {outside}{f':{port}' if port else ''}, "
                "which runs outside the cluster: check its provider's status (failover, "
                "maintenance), its security groups or firewall, and that the address and port "
                "in the client's configuration are current. A probe from inside the cluster "
                "tells a network block from a down endpoint.",
                (*logs, _netcheck(cns, host, port)),
                "low",
                finding.confidence,
            )
        ]
    return [
        Recommendation(
            f"Test the connection from {cns} to {host}",
            f"{facts.get('client')} cannot reach {host}{f':{port}' if port else ''}. "
            "Check that it is up, that its address and port are right, and that no firewall or "
            "NetworkPolicy drops the traffic.",
            (*logs, _netcheck(cns, host, port)),
            "low",
            finding.confidence,
        )
    ]


def recommend_network(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    facts = finding.facts
    ns, policy = facts["namespace"], facts["policy"]
    port = facts.get("port") or facts.get("port_name")
    source = facts["client_namespace"], facts["client_labels"]
    dest = facts["destination_namespace"], facts["destination_labels"]
    ingress = facts["direction"] == netpol.INGRESS
    admitted = source if ingress else dest
    return [
        Recommendation(
            f"Allow {selector_text(admitted[1])} ({admitted[0]}) in NetworkPolicy {policy}",
            f"NetworkPolicy {ns}/{policy} drops {facts['protocol']} {port} from pods "
            f"{selector_text(source[1])} in {source[0]} to pods {selector_text(dest[1])} in "
            f"{dest[0]}. Add a rule admitting them (or confirm the block is intended).",
            (
                kubectl("describe", "networkpolicy", policy, namespace=ns),
                kubectl("get", "networkpolicy", "-o", "wide", namespace=ns),
                kubectl(
                    "patch",
                    "networkpolicy",
                    policy,
                    "--type",
                    "json",
                    "-p",
                    f"'{facts['patch']}'",
                    namespace=ns,
                ),
                _netcheck(
                    facts["client_namespace"],
                    facts["host"],
                    facts.get("service_port"),
                    facts["client_labels"],
                ),
            ),
            "medium",
            finding.confidence,
        )
    ]
