"""A server that listens on a loopback address only, so nothing outside its pod reaches it.

Part of the ``config`` analyzer. Probes and Services connect to the pod IP; a process
bound to ``127.0.0.1``/``localhost``/``::1`` refuses them while it looks healthy from
inside the pod (uvicorn, Flask, Puma and many dev-server defaults bind there unless told
otherwise). The finding needs both halves: a probe failing with ``connection refused`` on
a port, and the container's own log announcing that it listens on a loopback address on
that port with no announcement of a wider bind (Flask on ``0.0.0.0`` also prints a
``127.0.0.1`` URL). It is the workload's own ``ConfigError``: its command, args or env
must bind ``0.0.0.0`` (or ``::``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.triage import kube
from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.context import Event, LogExcerpt, TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl
from oncallm.triage.taxonomy import Category

PROBLEM = "loopback-bind"
_REFUSED = re.compile(
    r"^(?P<kind>Liveness|Readiness|Startup) probe failed:.*?"
    r"(?::(?P<port>\d{1,5}): connect: )?connection refused",
    re.S,
)
# A server announcing where it listens, in the words common servers use: uvicorn and Flask
# ("running on"), gunicorn ("Listening at:"), ASP.NET ("Now listening on:"), Puma, Quarkus,
# Go frameworks ("listening and serving HTTP on", structured ``msg=listening addr=…``),
# Node ("server listening on"), Micronaut ("Server Running:"), Jetty
# ("ServerConnector@…{…}"), PostgreSQL ("listening on IPv4 address "127.0.0.1", port 5432").
_ANNOUNCE = re.compile(
    r"\b(?:listen(?:s|ing)?|running on|running:|serving (?:\w+ )?on|started (?:\w+ )?on|"
    r"bound to|binding to|bind(?:ing)? on|ServerConnector@)",
    re.I,
)
# ...but not the error of a listen that failed ("listen tcp 127.0.0.1:80: bind: permission denied").
_FAILED = re.compile(r"\b(?:error|failed|fatal|cannot|unable|bind: )", re.I)
_ADDRESS = re.compile(
    r"(?:https?://|[{\s=(\"'])(?P<host>\[[0-9a-fA-F:]*\]|[\w.-]+|::1?):(?P<port>\d{2,5})\b"
    r"|address \"?(?P<host2>[\w.:-]+)\"?,? port (?P<port2>\d{2,5})\b"
)
# ":8080" with no host: Go's and many others' way of saying every interface.
_BARE_PORT = re.compile(r"(?:^|[\s=\"']):(?P<port>\d{2,5})\b")
_LOOPBACK = re.compile(r"^(?:127(?:\.\d{1,3}){3}|localhost|\[?::1\]?)$", re.I)
_ALL_ADDRESSES = re.compile(r"\ball (?:addresses|interfaces)\b|0\.0\.0\.0|\[::\]", re.I)
# What to change for the servers whose announcement we recognise, by a word in it.
_HOW = (
    (re.compile(r"uvicorn", re.I), "add --host 0.0.0.0 to the uvicorn command"),
    (re.compile(r"Listening at:", re.I), "pass --bind 0.0.0.0:{port} to gunicorn"),
    (re.compile(r"Now listening on", re.I), "set ASPNETCORE_URLS=http://+:{port}"),
    (re.compile(r"\* Running on", re.I), "run flask with --host=0.0.0.0 (or app.run(host=...))"),
    (
        re.compile(r"Puma|\* Listening on", re.I),
        "start the server with -b 0.0.0.0 (or tcp://0.0.0.0)",
    ),
)


@dataclass(frozen=True)
class _Bind:
    line: str
    host: str
    port: str


def loopback_binds(lines: Sequence[str]) -> tuple[list[_Bind], set[str], bool]:
    """(loopback announcements, ports announced on a wider address, an announcement of all
    addresses without a port) in a container's log."""
    loopback: list[_Bind] = []
    wider: set[str] = set()
    everywhere = False
    for line in lines:
        if not _ANNOUNCE.search(line) or _FAILED.search(line):
            continue
        found = False
        for match in _ADDRESS.finditer(line):
            found = True
            host, port = match["host"] or match["host2"], match["port"] or match["port2"]
            if _LOOPBACK.match(host):
                loopback.append(_Bind(line.strip(), host, port))
            else:
                wider.add(port)
        for match in _BARE_PORT.finditer(line):
            found = True
            wider.add(match["port"])
        if not found and _ALL_ADDRESSES.search(line):
            everywhere = True
    return loopback, wider, everywhere


def _refusals(pod: KubeObject, events: list[Event]) -> dict[str, list[tuple[Event, str | None]]]:
    """Probe events refused, by the container whose probe it is, with the refused port."""
    found: dict[str, list[tuple[Event, str | None]]] = {}
    ctrs = kube.containers(pod, include_init=False)
    for event in events:
        if event.reason != "Unhealthy" or not (refused := _REFUSED.match(event.message)):
            continue
        probe_key = f"{refused['kind'].lower()}Probe"
        having = [c for c in ctrs if c.spec.get(probe_key)]
        port = refused["port"]
        by_port = [
            c for c in having if _probe_port(c.spec[probe_key], c.spec) in (port, None)
        ] or having
        owner = sorted(by_port, key=lambda c: c.ready)
        if owner:
            found.setdefault(owner[0].name, []).append((event, port))
    return found


def _probe_port(probe: Mapping[str, Any], container: Mapping[str, Any]) -> str | None:
    for handler in ("httpGet", "tcpSocket", "grpc"):
        if probe.get(handler):
            return pf.port_number(probe[handler].get("port"), container)
    return None


def _log(ctx: TriageContext, pod: KubeObject, container: str) -> LogExcerpt | None:
    # The running instance's log says where the process that refuses now is listening.
    ns, name = kube.namespace(pod) or "", kube.name(pod)
    return ctx.log(ns, name, container, False) or ctx.log(ns, name, container, True)


def findings(ctx: TriageContext, ledger: EvidenceLedger, analyzer: str) -> Iterator[Finding]:
    seen: set[tuple[ObjectRef, str]] = set()
    # The pod the alert is about (else the closest) names the finding of its workload.
    for pod in sorted(
        pf.live_pods(ctx),
        key=lambda p: (not ctx.is_focus(pf.pod_ref(p)), ctx.distance.get(pf.pod_ref(p), 99)),
    ):
        ref, workload = pf.pod_ref(pod), ctx.workload_of(pod)
        for cname, refused in _refusals(pod, ctx.warnings_of(ref, "Unhealthy")).items():
            log = _log(ctx, pod, cname)
            if log is None or (workload, cname) in seen:
                continue
            loopback, wider, everywhere = loopback_binds(log.lines)
            ports = {port for _e, port in refused if port}
            binds = [b for b in loopback if not ports or b.port in ports]
            if not binds or everywhere or binds[-1].port in wider:
                continue
            seen.add((workload, cname))
            yield _finding(ctx, ledger, analyzer, pod, cname, binds[-1], refused[-1][0], log)


def _finding(
    ctx: TriageContext,
    ledger: EvidenceLedger,
    analyzer: str,
    pod: KubeObject,
    cname: str,
    bind: _Bind,
    event: Event,
    log: LogExcerpt,
) -> Finding:
    ref, workload = pf.pod_ref(pod), ctx.workload_of(pod)
    ctr = kube.container(pod, cname)
    spec = ctr.spec if ctr is not None else {}
    command = " ".join(str(a) for a in [*(spec.get("command") or []), *(spec.get("args") or [])])
    kind = event.message.split(" ", 1)[0].lower()
    evidence = (
        ledger.cite_event(ref, event.reason, event.describe()),
        ledger.cite_log(log.namespace, log.pod, log.container, log.previous, [bind.line]),
    )
    address = f"{bind.host}:{bind.port}"
    how = next((h for p, h in _HOW if p.search(bind.line)), "")
    summary = (
        f"container {cname} of {pf.owner_phrase(workload)} listens on {address} only "
        f"({pf.tidy(bind.line, 120)!r}), so its {kind} probe — like any Service — connects to "
        f"the pod IP and is refused; it must bind 0.0.0.0:{bind.port}"
    )
    return Finding(
        category=Category.ConfigError,
        summary=summary,
        subject=ref,
        resource=workload,
        evidence=evidence,
        confidence=0.85,
        analyzer=analyzer,
        facts={
            "problem": PROBLEM,
            "container": cname,
            "pod": kube.name(pod),
            "address": address,
            "port": bind.port,
            "line": bind.line,
            "command": command,
            "how": how.format(port=bind.port),
            **pf.workload_facts(workload),
        },
    )


def recommend(finding: Finding) -> list[Recommendation]:
    f = finding.facts
    workload = pf.workload_from_facts(f)
    ns, pod, cname, port = workload.namespace, str(f["pod"]), str(f["container"]), f["port"]
    detail = (
        f"The server in container {cname} listens on {f['address']}, which only the pod itself "
        f"can reach; the kubelet's probes and Service traffic arrive on the pod IP. Bind "
        f"0.0.0.0:{port} (or [::]:{port})"
        + (f": {f['how']}" if f.get("how") else " in its command, args or env")
        + (f". Its command today: {f['command']!r}" if f.get("command") else "")
        + ". If a recent release changed how the server starts, rolling back restores it."
    )
    commands = [
        pf.describe_pod(pod, ns),
        kubectl("logs", pod, "-c", cname, "--tail=50", namespace=ns),
        pf.edit_command(workload),
        *pf.rollout_undo(workload),
    ]
    return [
        Recommendation(
            f"Make container {cname} of {pf.owner_phrase(workload)} listen on 0.0.0.0",
            detail,
            pf.unique(commands),
            "medium",
            finding.confidence,
        )
    ]
