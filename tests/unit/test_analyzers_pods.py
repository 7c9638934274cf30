"""The pods analyzer: OOMKilled, crash loops, image pulls and probe failures, as an SRE
reads them from ``kubectl get pod -o json``, events and the previous container log."""

from __future__ import annotations

from typing import Any

from oncallm.sources.base import ObjectRef
from oncallm.triage.analyzers import crashlog, pods
from oncallm.triage.context import Dependency, TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.rank import rank
from oncallm.triage.taxonomy import Category
from tests.unit import kubeobjects as k

API = ObjectRef("Deployment", "shop", "api")
RS = ObjectRef("ReplicaSet", "shop", "api-7d9f8b6c5")
POD = "api-7d9f8b6c5-x2x9k"
POD_REF = ObjectRef("Pod", "shop", POD)
PROBE = {
    "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "failureThreshold": 3,
}


def _api(statuses: list[dict[str, Any]], name: str = POD, **ctr: Any) -> list[dict[str, Any]]:
    spec = k.container(
        "api", limits={"memory": "512Mi", "cpu": "1"}, requests={"memory": "256Mi"}, **ctr
    )
    return [
        k.deployment("api", containers=[spec]),
        k.replicaset(RS.name, "api", revision=4, replicas=3),
        k.pod(name, labels={"app": "api"}, owner=RS, containers=[spec], statuses=statuses),
    ]


def _run(ctx: TriageContext) -> tuple[list[Finding], EvidenceLedger]:
    ledger = EvidenceLedger("snapshot")
    return list(pods.analyze(ctx, ledger)), ledger


def _oom_state(minutes_ago: float = 3) -> dict[str, Any]:
    return {
        "exitCode": 137,
        "reason": "OOMKilled",
        "startedAt": k.ts(minutes_ago + 4),
        "finishedAt": k.ts(minutes_ago),
        "containerID": "containerd://9a8b",
    }


def test_oomkilled_names_the_workload_its_limit_and_how_to_raise_it() -> None:
    status = k.running_status("api", restarts=4, last_terminated=_oom_state())
    ctx = k.context(_api([status]), focus=[POD_REF])
    (finding,), ledger = _run(ctx)
    assert finding.category is Category.OOMKilled
    assert finding.resource == API
    assert finding.subject == POD_REF
    assert finding.confidence >= 0.9
    assert "container api of Deployment shop/api was OOMKilled at its 512Mi memory limit" in (
        finding.summary
    )
    assert "restarted 4 times, last kill 03:12Z" in finding.summary
    assert all(e in ledger for e in finding.evidence)
    (rec,) = pods.ANALYZER.recommend(finding, ctx)
    assert "kubectl -n shop set resources deployment/api -c api --limits=memory=768Mi" in (
        rec.commands
    )
    assert rec.risk == "medium"
    assert rec.confidence == finding.confidence


def test_an_old_oom_on_a_container_that_is_healthy_now_is_history() -> None:
    status = k.running_status("api", restarts=1, last_terminated=_oom_state(minutes_ago=600))
    findings, _ = _run(k.context(_api([status])))
    assert findings == []


def test_oom_without_a_limit_blames_the_node() -> None:
    spec = k.container("api")
    status = k.running_status("api", restarts=2, last_terminated=_oom_state())
    objs = [
        k.pod(POD, owner=RS, containers=[spec], statuses=[status]),
        k.deployment("api"),
        k.replicaset(RS.name, "api", revision=4, replicas=3),
    ]
    (finding,), _ = _run(k.context(objs))
    assert "no memory limit set" in finding.summary
    assert ObjectRef("Node", None, "node-a") in finding.blames


def test_crash_loop_quotes_the_exit_code_and_the_previous_log() -> None:
    last = {"exitCode": 1, "reason": "Error", "startedAt": k.ts(3), "finishedAt": k.ts(2)}
    status = k.waiting_status("api", restarts=12, last_terminated=last)
    log = (
        "2026-11-26T03:12:01Z INFO starting api v1.4.2\n"
        "2026-11-26T03:12:02Z INFO loaded 42 routes\n"
        "panic: runtime error: invalid memory address or nil pointer dereference\n"
        "goroutine 1 [running]:\n"
    )
    ctx = k.context(_api([status]), logs={("shop", POD, "api", True): log}, focus=[POD_REF])
    (finding,), _ledger = _run(ctx)
    assert finding.category is Category.CrashLoop
    assert finding.resource == API
    assert "exit code 1 (application error), 12 restarts" in finding.summary
    assert "panic: runtime error" in finding.summary
    assert "log:shop/api-7d9f8b6c5-x2x9k/api/previous" in finding.evidence
    recs = pods.ANALYZER.recommend(finding, ctx)
    assert "kubectl -n shop logs api-7d9f8b6c5-x2x9k -c api --previous --tail=100" in (
        recs[0].commands
    )
    assert "kubectl -n shop rollout undo deployment/api" in recs[1].commands


def test_a_crash_caused_by_configuration_is_left_to_the_config_analyzer() -> None:
    last = {"exitCode": 1, "reason": "Error", "finishedAt": k.ts(2)}
    status = k.waiting_status("api", last_terminated=last)
    log = "FATAL: missing required env DATABASE_URL\n"
    ctx = k.context(_api([status]), logs={("shop", POD, "api", True): log})
    assert _run(ctx)[0] == []


def test_a_crash_naming_a_dependency_blames_its_service_so_the_cause_can_win() -> None:
    last = {"exitCode": 1, "reason": "Error", "finishedAt": k.ts(2)}
    status = k.waiting_status("api", last_terminated=last)
    line = 'error: dial tcp 10.96.3.4:5432: connect: connection refused (host "postgres")'
    postgres = ObjectRef("Service", "data", "postgres")
    dep = Dependency(POD_REF, "postgres", 5432, postgres, "log", line)
    ctx = k.context(
        _api([status]), logs={("shop", POD, "api", True): line + "\n"}, dependencies=[dep]
    )
    (finding,), _ = _run(ctx)
    assert finding.category is Category.CrashLoop
    assert postgres in finding.blames
    assert finding.confidence <= 0.6


def test_exit_137_after_liveness_kills_is_a_probe_failure() -> None:
    last = {"exitCode": 137, "reason": "Error", "finishedAt": k.ts(1)}
    status = k.running_status("api", ready=False, restarts=5, last_terminated=last)
    events = [
        k.event(
            POD_REF,
            "Unhealthy",
            'Liveness probe failed: Get "http://10.42.1.17:8080/healthz":'
            " context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            count=15,
        ),
        k.event(
            POD_REF,
            "Killing",
            "Container api failed liveness probe, will be restarted",
            type_="Normal",
            count=5,
        ),
    ]
    ctx = k.context(_api([status], livenessProbe=PROBE), events=events, focus=[POD_REF])
    (finding,), _ = _run(ctx)
    assert finding.category is Category.ProbeFailure
    assert finding.resource == API
    assert finding.summary.startswith("liveness probe GET :8080/healthz of container api")
    assert "context deadline exceeded" in finding.summary
    assert "timeout 1s" in finding.summary
    (rec,) = pods.ANALYZER.recommend(finding, ctx)
    assert any("wget -qO- -T 1 http://localhost:8080/healthz" in c for c in rec.commands)


def test_readiness_failures_count_only_while_the_container_is_not_ready() -> None:
    failing = k.event(
        POD_REF,
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 503",
        count=40,
    )
    not_ready = k.running_status("api", ready=False)
    ctx = k.context(_api([not_ready], readinessProbe=PROBE), events=[failing])
    (finding,), _ = _run(ctx)
    assert finding.category is Category.ProbeFailure
    assert "readiness probe GET :8080/healthz" in finding.summary
    assert "statuscode: 503" in finding.summary
    ready_now = k.context(_api([k.running_status("api")], readinessProbe=PROBE), events=[failing])
    assert _run(ready_now)[0] == []


def test_image_not_found_quotes_the_registry_and_offers_a_rollback() -> None:
    image = "registry.example.com/shop/api:1.4.3"
    status = k.waiting_status(
        "api", "ImagePullBackOff", restarts=0, message=f'Back-off pulling image "{image}"'
    )
    failed = k.event(
        POD_REF,
        "Failed",
        f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and '
        f'unpack image "{image}": failed to resolve reference "{image}": {image}: not found',
    )
    ctx = k.context(_api([status], image=image), events=[failed])
    (finding,), _ = _run(ctx)
    assert finding.category is Category.ImagePull
    assert finding.resource == API
    assert f"cannot pull image {image}: the image or tag does not exist" in finding.summary
    (rec,) = pods.ANALYZER.recommend(finding, ctx)
    assert "kubectl -n shop set image deployment/api api=<image:existing-tag>" in rec.commands


def test_unauthorized_pull_with_a_missing_pull_secret_blames_the_secret() -> None:
    image = "registry.example.com/shop/api:1.4.3"
    status = k.waiting_status("api", "ErrImagePull", restarts=0)
    objs = _api([status], image=image)
    objs[-1]["spec"]["imagePullSecrets"] = [{"name": "regcred"}]
    events = [
        k.event(
            POD_REF,
            "Failed",
            f'Failed to pull image "{image}": failed to authorize: '
            "failed to fetch anonymous token: 401 Unauthorized",
        ),
        k.event(
            POD_REF,
            "FailedToRetrieveImagePullSecret",
            "Unable to retrieve some image pull secrets (regcred); attempting to pull the "
            "image may not succeed.",
        ),
    ]
    ctx = k.context(objs, events=events)
    (finding,), _ = _run(ctx)
    assert finding.resource == ObjectRef("Secret", "shop", "regcred")
    assert "refused the credentials; imagePullSecret regcred does not exist" in finding.summary
    (rec,) = pods.ANALYZER.recommend(finding, ctx)
    assert any("create secret docker-registry regcred" in c for c in rec.commands)


def test_pods_of_one_workload_make_one_finding_and_succeeded_pods_none() -> None:
    last = {"exitCode": 2, "reason": "Error", "finishedAt": k.ts(2)}
    spec = k.container("api")
    objs = [k.deployment("api"), k.replicaset(RS.name, "api", revision=4, replicas=3)]
    for suffix in ("a1", "b2", "c3"):
        objs.append(
            k.pod(
                f"api-7d9f8b6c5-{suffix}",
                owner=RS,
                containers=[spec],
                statuses=[k.waiting_status("api", last_terminated=last)],
            )
        )
    done = k.pod(
        "migrate-x",
        containers=[k.container("migrate")],
        phase="Succeeded",
        statuses=[k.terminated_status("migrate", exit_code=0, reason="Completed")],
    )
    failed_before = k.terminated_status("migrate", exit_code=1)
    done["status"]["containerStatuses"][0]["lastState"] = failed_before["state"]
    (finding,), _ = _run(k.context([*objs, done]))
    assert finding.category is Category.CrashLoop
    assert "(3 pods: api-7d9f8b6c5-a1, api-7d9f8b6c5-b2, api-7d9f8b6c5-c3)" in finding.summary
    assert "exit code 2 (usage error or Go panic)" in finding.summary


def test_the_crash_of_the_alerted_pod_beats_a_louder_one_elsewhere() -> None:
    last = {"exitCode": 1, "reason": "Error", "finishedAt": k.ts(2)}
    other = k.pod(
        "reports-1",
        containers=[k.container("reports")],
        statuses=[k.running_status("reports", restarts=3, last_terminated=_oom_state())],
    )
    ctx = k.context(
        [*_api([k.waiting_status("api", last_terminated=last)]), other], focus=[POD_REF]
    )
    findings, _ = _run(ctx)
    ranking = rank(ctx, findings, min_confidence=0.35)
    assert ranking.root is not None
    assert ranking.root.category is Category.CrashLoop


def test_a_container_the_runtime_cannot_start_is_left_to_the_config_analyzer() -> None:
    term = {
        "exitCode": 128,
        "reason": "StartError",
        "finishedAt": k.ts(1),
        "message": 'exec: "/app/serve": executable file not found in $PATH',
    }
    status = k.waiting_status("api", restarts=3, last_terminated=term)
    assert _run(k.context(_api([status])))[0] == []


def test_the_crash_headline_is_the_exception_not_the_noise_after_it() -> None:
    lines = (
        "node:internal/process/promises:394",
        "    triggerUncaughtException(err, true /* fromPromise */);",
        "    ^",
        "TypeError: fetchImpl is not a function",
        "    at CatalogClient.categories (/app/dist/clients/catalog.js:18:23)",
        "Node.js v22.14.0",
        "npm notice New major version of npm available! 10.9.2 -> 11.6.2",
    )
    assert pods.headline_at(lines) == 3
    go = ("starting", "panic: runtime error: index out of range [3] with length 3", "goroutine 1")
    assert pods.headline_at(go) == 1
    python = ("Traceback (most recent call last):", '  File "app.py", line 3', "KeyError: 'id'")
    assert pods.headline_at(python) == 2
    assert pods.headline_at(("all good", "listening on :8080")) is None


def test_a_named_probe_port_is_shown_as_its_number() -> None:
    probe = {**PROBE, "httpGet": {"path": "/live", "port": "http"}, "initialDelaySeconds": 10}
    last = {"exitCode": 143, "reason": "Error", "finishedAt": k.ts(1)}
    status = k.running_status("api", ready=False, restarts=15, last_terminated=last)
    kill = k.event(
        POD_REF,
        "Killing",
        "Container api failed liveness probe, will be restarted",
        type_="Normal",
        count=15,
    )
    ports = [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    ctx = k.context(_api([status], livenessProbe=probe, ports=ports), events=[kill])
    (finding,), _ = _run(ctx)
    assert "liveness probe GET :8080/live" in finding.summary
    assert "15 restarts; timeout 1s, initial delay 10s" in finding.summary


def test_a_pull_that_failed_until_the_tag_was_pushed_explains_a_resolved_alert() -> None:
    image = "ghcr.io/acme/api:2.8.0"
    failed = k.event(
        POD_REF,
        "Failed",
        f'Failed to pull image "{image}": rpc error: code = NotFound desc = {image}: not found',
        count=12,
        minutes_ago=40,
    )
    pulled = k.event(
        POD_REF,
        "Pulled",
        f'Successfully pulled image "{image}" in 1.8s',
        type_="Normal",
        minutes_ago=35,
    )
    ctx = k.context(_api([k.running_status("api")], image=image), events=[failed, pulled])
    (finding,), _ = _run(ctx)
    assert finding.category is Category.ImagePull
    assert finding.confidence <= 0.6
    assert f"could not pull image {image} from 02:25Z until it pulled at 02:40Z" in (
        finding.summary
    )
    (rec,) = pods.ANALYZER.recommend(finding, ctx)
    assert rec.risk == "low"
    assert not any("set image" in c for c in rec.commands)


def test_an_evicted_pod_is_the_nodes_business_not_a_crash() -> None:
    evicted = k.pod(
        POD, owner=RS, phase="Failed", statuses=[k.terminated_status("api", exit_code=137)]
    )
    evicted["status"].update(reason="Evicted", message="The node was low on resource: memory.")
    assert _run(k.context([evicted]))[0] == []


def test_a_heap_flag_as_large_as_the_limit_is_named_with_a_smaller_heap_to_use() -> None:
    env = [{"name": "JAVA_TOOL_OPTIONS", "value": "-Xmx1536m -XX:+UseG1GC"}]
    spec = k.container("api", limits={"memory": "1536Mi"}, env=env)
    status = k.running_status("api", ready=False, restarts=6, last_terminated=_oom_state())
    objs = [
        k.deployment("api", containers=[spec]),
        k.replicaset(RS.name, "api", revision=4, replicas=3),
        k.pod(POD, owner=RS, containers=[spec], statuses=[status]),
    ]
    ctx = k.context(objs)
    (finding,), _ = _run(ctx)
    assert (
        "its heap flag -Xmx1536m (env JAVA_TOOL_OPTIONS) leaves no room under the limit"
        in finding.summary
    )
    (rec,) = pods.ANALYZER.recommend(finding, ctx)
    assert "about 1152Mi" in rec.detail
    assert "kubectl -n shop set resources deployment/api -c api --limits=memory=2304Mi" in (
        rec.commands
    )


def test_a_failing_init_container_is_named_with_the_line_that_says_why() -> None:
    last = {"exitCode": 1, "reason": "Error", "startedAt": k.ts(3), "finishedAt": k.ts(2)}
    migrate = k.container("db-migrate", image="registry.example.com/shop/api-migrations:5.12.0")
    objs = _api([k.waiting_status("api", reason="PodInitializing", restarts=0)])
    objs[2]["spec"]["initContainers"] = [migrate]
    objs[2]["status"]["initContainerStatuses"] = [
        k.waiting_status("db-migrate", restarts=17, last_terminated=last)
    ]
    log = (
        "Flyway OSS Edition 10.17.3 by Redgate\n"
        "WARNING: Flyway upgrade recommended: Flyway 10.21.0 is available.\n"
        "ERROR: Validate failed: Migrations have failed validation\n"
        "Migration checksum mismatch for migration version 5.11.3\n"
        "-> Applied to database : 1827461923\n"
        "-> Resolved locally    : -903827165\n"
    )
    ctx = k.context(objs, logs={("shop", POD, "db-migrate", True): log}, focus=[POD_REF])
    (finding,), ledger = _run(ctx)
    assert finding.category is Category.CrashLoop
    assert finding.resource == API
    assert finding.summary.startswith("init container db-migrate of Deployment shop/api")
    assert "container api waits in PodInitializing" in finding.summary
    # The wrapper says only that validation failed; the next line says what failed.
    assert "'Migration checksum mismatch for migration version 5.11.3'" in finding.summary
    cited = next(i for i in ledger.items() if i.id == finding.evidence[1])
    assert "Validate failed" in cited.excerpt
    assert "checksum mismatch" in cited.excerpt
    (first, *_rest) = pods.ANALYZER.recommend(finding, ctx)
    assert first.title == "Find why init container db-migrate of Deployment shop/api exits"


def test_a_specific_error_line_is_quoted_as_it_is() -> None:
    lines = ('ERROR: relation "invoices" does not exist', "Either create it or migrate")
    assert crashlog.reason_at(lines, 0) == 0
    wrapper = ("ERROR: Application run failed", "  at Main.run", "Caused by: boom")
    assert crashlog.reason_at(wrapper, 0) == 2
    # With nothing more specific close by, the wrapper is all there is to quote.
    assert crashlog.reason_at(("ERROR: migration failed", "bye"), 0) == 0
