"""Network dependencies a workload names, found in its env values and its error logs.

``DATABASE_URL=postgres://app@postgres:5432/shop`` or a log line ``dial tcp: lookup
payments.billing.svc.cluster.local: no such host`` both say "this workload needs that
host". Hosts are mapped to in-cluster Service references by Kubernetes DNS rules
(``name``, ``name.ns``, ``name.ns.svc[.cluster.local]``); the gatherer follows them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from oncallm.sources.base import ObjectRef

_URL = re.compile(
    r"\b[a-z][a-z0-9+.-]*://(?:[^\s/@:]+(?::[^\s/@]*)?@)?([A-Za-z0-9.-]+)(?::(\d{2,5}))?",
)
# A host is a DNS name with at least one letter (so "03:14:29" in a timestamp is not
# host "14" port 29); IP addresses are matched separately and whole.
_HOST_PORT = re.compile(
    r"(?<![\w./@:-])((?=[a-z0-9.-]*[a-z])[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)*)"
    r":(\d{2,5})\b"
)
_IP_PORT = re.compile(
    r"(?<![\w.:])((?:\d{1,3}\.){3}\d{1,3})(?::|'\s*,\s*)(\d{2,5})\b"  # also ('10.0.0.1', 5432)
)
_QUOTED_HOST = re.compile(
    r"(?:host(?: name)?|lookup)\s+\"?([a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)*)\"?",
    re.IGNORECASE,
)
_PORT_NEAR = re.compile(r"port\s+\"?(\d{2,5})\"?", re.IGNORECASE)
_NOT_HOSTS = frozenset({"localhost", "on", "the", "tcp", "udp", "a", "is", "to", "for"})
CLUSTER_SUFFIXES = (".svc.cluster.local", ".svc")
# Second labels that make "a.b" an outside name rather than Service a in namespace b.
PUBLIC_SUFFIXES = frozenset(
    [
        "com",
        "net",
        "org",
        "io",
        "dev",
        "app",
        "cloud",
        "ai",
        "co",
        "biz",
        "info",
        "me",
        "tech",
        "internal",
        "local",
        "localdomain",
        "lan",
        "corp",
        "home",
        "arpa",
        "eu",
        "uk",
        "de",
        "fr",
        "nl",
        "se",
        "no",
        "fi",
        "dk",
        "es",
        "it",
        "ch",
        "at",
        "be",
        "pl",
        "us",
        "ca",
        "au",
        "jp",
        "in",
        "br",
    ]
)
# Env names that carry a bare host (DB_HOST=postgres) and, by convention, a sibling _PORT.
_HOST_ENV_SUFFIXES = ("_HOST", "_HOSTNAME", "_ADDR", "_ADDRESS", "_SERVER", "_SERVICE")
_BARE_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)*")


@dataclass(frozen=True)
class NamedHost:
    host: str
    port: int | None
    line: str


def _plausible(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host in _NOT_HOSTS or host.startswith("127.") or host == "0.0.0.0":  # noqa: S104
        return False
    if host.replace(".", "").isdigit():
        return True  # an IP; resolved against Service cluster IPs
    # Skip file names and versions that look like hosts: "app.py:42", "v1.2:80".
    return not re.search(r"\.(py|go|js|ts|java|rb|rs|c|cc|h|log|txt|json|yaml|html)$", host)


def hosts_in_value(value: str) -> Iterator[NamedHost]:
    """Hosts named by one env value (URL, ``host:port``, or a bare service DNS name)."""
    found = False
    for match in _URL.finditer(value):
        found = True
        port = int(match.group(2)) if match.group(2) else None
        if _plausible(match.group(1)):
            yield NamedHost(match.group(1).lower(), port, value)
    if found:
        return
    for match in _HOST_PORT.finditer(value):
        if _plausible(match.group(1)):
            yield NamedHost(match.group(1).lower(), int(match.group(2)), value)
            found = True
    if not found and re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*\.svc(\.cluster\.local)?", value):
        yield NamedHost(value.lower(), None, value)


def hosts_in_log_line(line: str) -> Iterator[NamedHost]:
    seen: set[tuple[str, int | None]] = set()
    for named in hosts_in_value(line):
        seen.add((named.host, named.port))
        if named.port != 53:  # "lookup x on 10.96.0.10:53" names the DNS resolver
            yield named
    for match in _IP_PORT.finditer(line):
        key = (match.group(1), int(match.group(2)))
        if key not in seen and key[1] != 53:
            seen.add(key)
            yield NamedHost(match.group(1), int(match.group(2)), line)
    port_match = _PORT_NEAR.search(line)
    for match in _QUOTED_HOST.finditer(line):
        host = match.group(1).lower()
        if (
            any(h == host for h, _ in seen)
            or not _plausible(host)
            or (
                "." not in host
                and not re.search(r"no such host|translate host|host \"", line, re.IGNORECASE)
            )
        ):
            continue
        port = int(port_match.group(1)) if port_match else None
        seen.add((host, port))
        yield NamedHost(host, port, line)


def service_ref_for(host: str, client_namespace: str | None) -> ObjectRef | None:
    """The Service a DNS name means inside the cluster; None for IPs and outside names."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    name = host.rstrip(".")
    for suffix in CLUSTER_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            parts = name.split(".")
            return ObjectRef("Service", parts[1] if len(parts) > 1 else client_namespace, parts[0])
    parts = name.split(".")
    if len(parts) == 1:
        return ObjectRef("Service", client_namespace, parts[0]) if client_namespace else None
    if len(parts) == 2 and parts[1] not in PUBLIC_SUFFIXES:
        # "name.namespace" resolves through the pod's DNS search path
        return ObjectRef("Service", parts[1], parts[0])
    return None  # an outside name (db.example.com, example.com)


def hosts_in_env(env: Iterable[tuple[str, str]]) -> Iterator[tuple[str, NamedHost]]:
    """(env name, host) for every host an env block names: URLs and ``host:port`` values,
    and bare names in ``*_HOST``-style variables with the port of their ``*_PORT`` sibling."""
    values = dict(env)
    for name, value in values.items():
        found = list(hosts_in_value(value))
        if not found and name.upper().endswith(_HOST_ENV_SUFFIXES):
            candidate = value.strip().lower()
            if (
                _BARE_HOST.fullmatch(candidate)
                and _plausible(candidate)
                and re.search("[a-z]", candidate)
            ):
                prefix = name.rsplit("_", 1)[0]
                port_text = values.get(f"{prefix}_PORT", "")
                port = int(port_text) if port_text.isdigit() else None
                found = [NamedHost(candidate, port, f"{name}={value}")]
        for host in found:
            yield name, host


def dedupe(hosts: Iterable[NamedHost]) -> list[NamedHost]:
    by_key: dict[tuple[str, int | None], NamedHost] = {}
    for named in hosts:
        by_key.setdefault((named.host, named.port), named)
    return list(by_key.values())


def dedupe_named(named: list[tuple[str, NamedHost]]) -> list[tuple[str, NamedHost]]:
    """Hosts named several times, once each, with how they were first named."""
    hosts = dedupe(h for _v, h in named)
    first_via: dict[tuple[str, int | None], str] = {}
    for via, host in named:
        first_via.setdefault((host.host, host.port), via)
    return [(first_via[(h.host, h.port)], h) for h in hosts]
