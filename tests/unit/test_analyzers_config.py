"""The config analyzer: the ConfigMap or Secret (or the workload's own env/args) that stops
a container from starting, found from kubelet messages, events, objects and logs."""

from __future__ import annotations

from typing import Any

from oncallm.sources.base import ObjectRef
from oncallm.triage.analyzers import app_config, config
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.taxonomy import Category
from tests.unit import kubeobjects as k

API = ObjectRef("Deployment", "shop", "api")
RS = ObjectRef("ReplicaSet", "shop", "api-7d9f8b6c5")
POD = "api-7d9f8b6c5-x2x9k"
POD_REF = ObjectRef("Pod", "shop", POD)
CM = ObjectRef("ConfigMap", "shop", "api-config")
FROM_CM = {
    "name": "DATABASE_URL",
    "valueFrom": {"configMapKeyRef": {"name": "api-config", "key": "DATABASE_URL"}},
}


def _objects(
    status: dict[str, Any], *extra: dict[str, Any], volumes: Any = (), **ctr: Any
) -> list[dict[str, Any]]:
    spec = k.container("api", **ctr)
    return [
        k.deployment("api", containers=[spec]),
        k.replicaset(RS.name, "api", revision=4, replicas=3),
        k.pod(POD, owner=RS, containers=[spec], statuses=[status], volumes=volumes),
        *extra,
    ]


def _run(ctx: TriageContext) -> list[Finding]:
    ledger = EvidenceLedger("snapshot")
    findings = list(config.analyze(ctx, ledger))
    assert all(e in ledger for f in findings for e in f.evidence)
    return findings


def test_missing_key_blames_the_configmap_and_spots_the_misspelling() -> None:
    message = "couldn't find key DATABASE_URL in ConfigMap shop/api-config"
    status = k.waiting_status("api", "CreateContainerConfigError", restarts=0, message=message)
    cm = k.configmap("api-config", data={"DATABASE_URI": "x", "LOG_LEVEL": "info"})
    ctx = k.context(_objects(status, cm, env=[FROM_CM]), focus=[POD_REF])
    (finding,) = _run(ctx)
    assert finding.category is Category.ConfigError
    assert finding.resource == CM
    assert finding.subject == POD_REF
    assert finding.confidence >= 0.9
    assert finding.summary == (
        "container api of Deployment shop/api cannot start: ConfigMap shop/api-config has no key "
        "DATABASE_URL (read by env DATABASE_URL); it has DATABASE_URI — a misspelt key?"
    )
    (rec,) = config.ANALYZER.recommend(finding, ctx)
    assert rec.risk == "low"
    assert (
        "kubectl -n shop patch configmap api-config --type merge -p "
        '\'{"data":{"DATABASE_URL":"<value>"}}\''
    ) in rec.commands


def test_a_missing_secret_from_the_event_is_the_culprit_and_is_created() -> None:
    status = k.waiting_status("api", "CreateContainerConfigError", restarts=0)
    env = [
        {
            "name": "DB_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}},
        }
    ]
    failed = k.event(POD_REF, "Failed", 'Error: secret "db-creds" not found', count=14)
    ctx = k.context(_objects(status, env=env), events=[failed])
    (finding,) = _run(ctx)
    assert finding.resource == ObjectRef("Secret", "shop", "db-creds")
    assert "Secret shop/db-creds does not exist (read by env DB_PASSWORD)" in finding.summary
    (rec,) = config.ANALYZER.recommend(finding, ctx)
    assert any("create secret generic db-creds" in c for c in rec.commands)


def test_failed_mount_of_a_missing_configmap_volume() -> None:
    status = k.waiting_status("api", "ContainerCreating", restarts=0)
    volumes = [{"name": "config", "configMap": {"name": "api-config"}}]
    failed = k.event(
        POD_REF,
        "FailedMount",
        'MountVolume.SetUp failed for volume "config" : configmap "api-config" not found',
        count=9,
    )
    ctx = k.context(_objects(status, volumes=volumes), events=[failed])
    (finding,) = _run(ctx)
    assert finding.resource == CM
    assert "ConfigMap shop/api-config does not exist (read by volume config)" in finding.summary


def test_a_key_absent_from_a_read_configmap_is_found_without_any_message() -> None:
    status = k.waiting_status("api", "ContainerCreating", restarts=0)
    cm = k.configmap("api-config", data={"LOG_LEVEL": "info"})
    (finding,) = _run(k.context(_objects(status, cm, env=[FROM_CM])))
    assert finding.resource == CM
    assert "has no key DATABASE_URL" in finding.summary
    assert 0.7 <= finding.confidence < 0.9


def test_a_running_container_with_a_since_removed_key_is_not_this_incident() -> None:
    cm = k.configmap("api-config", data={"LOG_LEVEL": "info"})
    assert _run(k.context(_objects(k.running_status("api"), cm, env=[FROM_CM]))) == []


def test_app_exiting_on_a_missing_env_blames_the_envfrom_configmap_lacking_it() -> None:
    last = {"exitCode": 1, "reason": "Error", "finishedAt": k.ts(2)}
    status = k.waiting_status("api", last_terminated=last)
    cm = k.configmap("api-config", data={"LOG_LEVEL": "info"})
    log = "starting api\nFATAL: missing required env DATABASE_URL\n"
    ctx = k.context(
        _objects(status, cm, envFrom=[{"configMapRef": {"name": "api-config"}}]),
        logs={("shop", POD, "api", True): log},
    )
    (finding,) = _run(ctx)
    assert finding.resource == CM
    assert "exits at start-up: ConfigMap shop/api-config has no key DATABASE_URL" in (
        finding.summary
    )
    assert "log: 'FATAL: missing required env DATABASE_URL'" in finding.summary
    (rec,) = config.ANALYZER.recommend(finding, ctx)
    assert "kubectl -n shop logs api-7d9f8b6c5-x2x9k -c api --previous" in rec.commands


def test_app_exiting_on_an_env_nobody_sets_blames_the_workload() -> None:
    last = {"exitCode": 1, "reason": "Error", "finishedAt": k.ts(2)}
    log = "panic: required key DATABASE_URL missing value\n"
    ctx = k.context(
        _objects(k.waiting_status("api", last_terminated=last)),
        logs={("shop", POD, "api", True): log},
    )
    (finding,) = _run(ctx)
    assert finding.resource == API
    assert "env DATABASE_URL is not set in its spec" in finding.summary
    (rec,) = config.ANALYZER.recommend(finding, ctx)
    assert "kubectl -n shop set env deployment/api -c api DATABASE_URL=<value>" in rec.commands


def test_an_unknown_flag_blames_the_workload_args() -> None:
    last = {"exitCode": 2, "reason": "Error", "finishedAt": k.ts(2)}
    log = "flag provided but not defined: -listen-addr\nUsage of /app/api:\n"
    ctx = k.context(
        _objects(k.waiting_status("api", last_terminated=last), args=["-listen-addr=:8080"]),
        logs={("shop", POD, "api", True): log},
    )
    (finding,) = _run(ctx)
    assert finding.resource == API
    assert "its command/args are invalid (-listen-addr=:8080)" in finding.summary


def test_a_command_missing_from_the_image() -> None:
    message = (
        "failed to create containerd task: failed to create shim task: OCI runtime create "
        'failed: runc create failed: unable to start container process: exec: "/app/serve": '
        "stat /app/serve: no such file or directory: unknown"
    )
    term = {"exitCode": 128, "reason": "StartError", "message": message, "finishedAt": k.ts(1)}
    status = k.waiting_status("api", restarts=3, last_terminated=term)
    (finding,) = _run(k.context(_objects(status, command=["/app/serve"])))
    assert finding.resource == API
    assert "cannot start: its command /app/serve cannot be executed" in finding.summary


def test_complaint_finds_configuration_lines_only() -> None:
    assert (
        app_config.complaint(["ok", "Error: unknown flag: --port"]) == "Error: unknown flag: --port"
    )
    assert app_config.complaint(["KeyError: 'DATABASE_URL'"]) is not None
    assert app_config.complaint(["panic: runtime error: index out of range"]) is None
    assert app_config.complaint(["GET /config 200 12ms"]) is None
    remote = "failed to load config from consul:8500: dial tcp 10.0.0.9:8500: connection refused"
    assert app_config.complaint([remote]) is None


def test_runtime_hiccups_the_kubelet_retries_are_not_config_errors() -> None:
    message = 'failed to reserve container name "api_api-7d9f8b6c5-x2x9k_shop_0": is reserved'
    status = k.waiting_status("api", "CreateContainerError", restarts=0, message=message)
    assert _run(k.context(_objects(status))) == []


def test_a_crash_looping_container_is_not_blamed_on_an_object_the_snapshot_lacks() -> None:
    last = {"exitCode": 1, "reason": "Error", "finishedAt": k.ts(2)}
    status = k.waiting_status("api", last_terminated=last)
    ctx = k.context(_objects(status, envFrom=[{"configMapRef": {"name": "api-config"}}]))
    assert _run(ctx) == []
