"""A server bound to a loopback address: its probes (and Services) reach the pod IP and are
refused, while its log says where it listens — the workload's own ConfigError."""

from __future__ import annotations

from oncallm.sources.base import ObjectRef
from oncallm.triage.analyzers import config, loopback, pods
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.rank import rank
from oncallm.triage.taxonomy import Category
from tests.unit import kubeobjects as k

API = ObjectRef("Deployment", "shop", "api")
RS = ObjectRef("ReplicaSet", "shop", "api-7d9f8b6c5")
POD = "api-7d9f8b6c5-x2x9k"
POD_REF = ObjectRef("Pod", "shop", POD)
REFUSED = (
    'Readiness probe failed: Get "http://10.42.1.17:8000/healthz": '
    "dial tcp 10.42.1.17:8000: connect: connection refused"
)


def _context(log: str, *, refused: str = REFUSED) -> TriageContext:
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    spec = k.container(
        "api",
        command=["uvicorn"],
        args=["app.main:app", "--port", "8000"],
        ports=[{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
        readinessProbe=probe,
    )
    objects = [
        k.deployment("api", containers=[spec]),
        k.replicaset(RS.name, "api", revision=4, replicas=3),
        k.pod(POD, owner=RS, containers=[spec], statuses=[k.running_status("api", ready=False)]),
    ]
    unhealthy = k.event(POD_REF, "Unhealthy", refused, type_="Warning", count=40)
    return k.context(
        objects,
        events=[unhealthy],
        logs={("shop", POD, "api", False): log},
        focus=[POD_REF],
    )


def _run(ctx: TriageContext) -> list[Finding]:
    ledger = EvidenceLedger("snapshot")
    findings = list(config.analyze(ctx, ledger))
    assert all(e in ledger for f in findings for e in f.evidence)
    return findings


def test_a_server_on_127_0_0_1_is_the_workloads_config_error_not_a_probe_failure() -> None:
    ctx = _context(
        "INFO:     Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)\n"
        "INFO:     Application startup complete.\n"
    )
    (finding,) = _run(ctx)
    assert finding.category is Category.ConfigError
    assert finding.resource == API
    assert "listens on 127.0.0.1:8000 only" in finding.summary
    assert "readiness probe" in finding.summary
    assert "bind 0.0.0.0:8000" in finding.summary
    (rec,) = config.ANALYZER.recommend(finding, ctx)
    assert "add --host 0.0.0.0 to the uvicorn command" in rec.detail
    assert "uvicorn app.main:app --port 8000" in rec.detail
    assert "kubectl -n shop rollout undo deployment/api" in rec.commands
    # The readiness failure it causes is a symptom: the bind is named as the root cause.
    probe_findings = list(pods.analyze(ctx, EvidenceLedger("snapshot")))
    assert [f.category for f in probe_findings] == [Category.ProbeFailure]
    ranking = rank(ctx, [*probe_findings, finding], 0.4)
    assert ranking.root is finding


def test_a_server_that_also_listens_on_all_addresses_is_fine() -> None:
    flask = (
        " * Running on all addresses (0.0.0.0)\n"
        " * Running on http://127.0.0.1:8000\n"
        " * Running on http://10.42.1.17:8000\n"
    )
    assert _run(_context(flask)) == []


def test_a_loopback_listener_on_another_port_does_not_explain_the_refusal() -> None:
    admin = "admin server listening on 127.0.0.1:9090\nhttp server listening on :8000\n"
    assert _run(_context(admin)) == []


def test_a_probe_that_fails_otherwise_is_not_blamed_on_the_bind() -> None:
    timeout = (
        'Readiness probe failed: Get "http://10.42.1.17:8000/healthz": context deadline exceeded'
    )
    log = "INFO:     Uvicorn running on http://127.0.0.1:8000\n"
    assert _run(_context(log, refused=timeout)) == []


def test_common_servers_announcing_a_loopback_bind() -> None:
    lines = {
        "[2026-11-16 10:59:55 +0000] [1] [INFO] Listening at: http://127.0.0.1:8000 (1)": "8000",
        "info: Microsoft.Hosting.Lifetime[14] Now listening on: http://localhost:5000": "5000",
        "* Listening on http://[::1]:3000": "3000",
        '{"level":"info","msg":"server listening","addr":"127.0.0.1:8080"}': "8080",
        'LOG:  listening on IPv4 address "127.0.0.1", port 5432': "5432",
        "listen tcp 127.0.0.1:80: bind: permission denied": None,
        "[GIN-debug] Listening and serving HTTP on localhost:8080": "8080",
        "Started ServerConnector@5f2afe62{HTTP/1.1, (http/1.1)}{127.0.0.1:8080}": "8080",
        "Server listening on http://localhost:3000": "3000",
    }
    for line, port in lines.items():
        binds, _wider, _everywhere = loopback.loopback_binds([line])
        assert [b.port for b in binds] == ([port] if port else []), line
    _binds, wider, _everywhere = loopback.loopback_binds(["listening on :8080"])
    assert wider == {"8080"}
