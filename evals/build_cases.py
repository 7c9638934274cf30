# ruff: noqa: E501
"""Build the golden triage cases under evals/cases/ (run: python evals/build_cases.py).

Each function below is one incident written from how Kubernetes behaves: the alert
Alertmanager would send, the cluster neighbourhood `oncallm snapshot capture` would save,
and the answer a senior SRE would give. The generated files are the truth; this script
only keeps them consistent (uids, owner references, endpoints, workload status counts).
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from casekit import (
    EKS_PROD,
    EKS_STAGING,
    GKE_PROD,
    ONPREM,
    Case,
    CState,
    Obj,
    container,
    culprit,
    duration,
    env,
    env_cm,
    env_field,
    env_secret,
    exec_probe,
    helm_annotations,
    helm_labels,
    hex_string,
    http_probe,
    iso,
    iso_micro,
    k8s_hash,
    mount,
    npd_conditions,
    parse_time,
    resources,
    running,
    selector_labels,
    tcp_probe,
    template,
    terminated,
    vol_cm,
    vol_empty,
    vol_pvc,
    vol_secret,
    waiting,
)

HERE = Path(__file__).resolve().parent
CASES: list[Callable[[], Case]] = []
TLS = json.loads((HERE / "tls_fixtures.json").read_text())


def case(fn: Callable[[], Case]) -> Callable[[], Case]:
    CASES.append(fn)
    return fn


# --------------------------------------------------------------------------- shared neighbourhood


def shift(rel: str, seconds: float) -> str:
    """A relative time moved by some seconds: shift('-10m', 30) == '-570s'; absolute times stay absolute."""
    if rel[:1] not in "+-":
        moment = parse_time(rel) + timedelta(seconds=seconds)
        return iso(moment) if moment.microsecond == 0 else iso_micro(moment)
    total = (duration(rel) + timedelta(seconds=seconds)).total_seconds()
    text = f"{abs(total):.3f}".rstrip("0").rstrip(".")
    return f"-{text}s" if total < 0 else f"+{text}s"


def eks_nodes(
    c: Case,
    ips: list[str],
    *,
    itype: str = "m6i.xlarge",
    pool: str = "general",
    created: str = "-9d",
) -> list[Obj]:
    return [c.node(ip, instance_type=itype, pool=pool, created=created) for ip in ips]


def gke_nodes(
    c: Case,
    ips: list[str],
    *,
    pool: str = "default-pool",
    itype: str = "e2-standard-4",
    created: str = "-16d",
    zones: str = "bcf",
) -> list[Obj]:
    return [
        c.node(
            ip,
            instance_type=itype,
            pool=pool,
            created=created,
            zone=f"us-central1-{zones[i % len(zones)]}",
        )
        for i, ip in enumerate(ips)
    ]


def onprem_nodes(
    c: Case, workers: int = 4, *, created: str = "-210d", itype: str = "onprem-16x64"
) -> list[Obj]:
    """Three tainted control-plane nodes and the requested workers; returns the workers."""
    for i in range(1, 4):
        c.node(
            f"10.20.0.{10 + i}",
            name=f"dc1-k8s-cp{i}",
            instance_type="onprem-8x32",
            created="-640d",
            role="control-plane",
            labels={"node.kubernetes.io/exclude-from-external-load-balancers": ""},
            taints=[{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}],
        )
    return [
        c.node(
            f"10.20.1.{10 + i}",
            name=f"dc1-k8s-w{i:02d}",
            instance_type=itype,
            created=created,
            labels={
                "node.acme.io/pool": "general",
                "topology.kubernetes.io/zone": f"dc1-row{1 + i % 2}",
            },
        )
        for i in range(1, workers + 1)
    ]


def namespace(
    c: Case,
    ns: str,
    *,
    labels: dict[str, str] | None = None,
    created: str = "-500d",
    sas: tuple[str, ...] = (),
) -> Obj:
    obj = c.namespace(ns, created, labels)
    c.root_ca(ns, created)
    c.service_account(ns, "default", created=created)
    for sa in sas:
        c.service_account(ns, sa, created=shift(created, 60), labels={"app.kubernetes.io/name": sa})
    return obj


def app_labels(name: str, version: str, **extra: str) -> dict[str, str]:
    labels = selector_labels(name)
    labels["app.kubernetes.io/version"] = version
    labels.update(extra)
    return labels


def web_container(
    name: str,
    image: str,
    *,
    port: int = 8080,
    env_vars: list[Obj] | None = None,
    res: Obj | None = None,
    readiness: Obj | None = None,
    liveness: Obj | None = None,
    metrics: bool = True,
    mounts: list[Obj] | None = None,
    args: list[str] | None = None,
) -> Obj:
    ports = [("http", port)] + ([("metrics", 9090)] if metrics else [])
    return container(
        name,
        image,
        ports=ports,
        env_vars=env_vars,
        res=res or resources("100m", "128Mi", None, "256Mi"),
        readiness=readiness or http_probe("/readyz", "http", period=5),
        liveness=liveness or http_probe("/livez", "http", initial=10, period=10),
        mounts=mounts,
        args=args,
        security={
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "capabilities": {"drop": ["ALL"]},
        },
    )


def healthy(
    c: Case,
    ns: str,
    name: str,
    tpl: Obj,
    nodes: list[Obj],
    *,
    replicas: int = 2,
    revision: int = 4,
    created: str = "-200d",
    rs_created: str = "-6d",
    labels: dict[str, str] | None = None,
    helm: bool = True,
    service_port: int | None = 80,
    slices: bool = False,
    restarts: int = 0,
) -> tuple[Obj, Obj, list[Obj]]:
    """A Deployment that is fine: one ReplicaSet, all pods Running and Ready, a Service."""
    version = tpl["metadata"]["labels"].get("app.kubernetes.io/version", "1.0.0")
    d = c.deployment(
        ns,
        name,
        tpl,
        replicas=replicas,
        revision=revision,
        created=created,
        labels=labels or helm_labels(name, version),
        annotations=helm_annotations(name, ns) if helm else None,
    )
    rs = c.replicaset(d, revision=revision, replicas=replicas, created=rs_created)
    pods = []
    for i in range(replicas):
        start = shift(rs_created, 2 + i * 40)
        pods.append(
            c.pod(
                rs,
                nodes[i % len(nodes)],
                start,
                [
                    running(ct["name"], shift(start, 6), restarts=restarts)
                    for ct in tpl["spec"]["containers"]
                ],
            )
        )
    if service_port:
        first = tpl["spec"]["containers"][0]
        c.service(
            ns,
            name,
            selector_labels(name),
            [("http", service_port, "http")]
            + (
                [("metrics", 9090, "metrics")]
                if any(p["name"] == "metrics" for p in first.get("ports", []))
                else []
            ),
            created=created,
            labels=labels or helm_labels(name, version),
            annotations=helm_annotations(name, ns) if helm else None,
            slices=slices,
        )
    return d, rs, pods


def deployment_conditions(d: Obj, **conds: tuple[str, str, str, str, str]) -> None:
    """Override Deployment conditions: type -> (status, reason, message, lastUpdate, lastTransition)."""
    d["status"]["_conditions"] = conds


def deploy_events_rollout(
    c: Case,
    d: Obj,
    old_rs: Obj | None,
    new_rs: Obj,
    at: str,
    *,
    old_from: int,
    new_to: int,
    old_to: int = 0,
) -> None:
    if old_rs is not None and old_from != old_to:
        c.event(
            d,
            "ScalingReplicaSet",
            f"Scaled down replica set {old_rs['metadata']['name']} from {old_from} to {old_to}",
            first=at,
            component="deployment-controller",
        )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {new_rs['metadata']['name']} from 0 to {new_to}",
        first=shift(at, 1),
        component="deployment-controller",
    )


def rs_created_pods(c: Case, rs: Obj, pods: list[Obj]) -> None:
    for p in pods:
        c.event(
            rs,
            "SuccessfulCreate",
            f"Created pod: {p['metadata']['name']}",
            first=p["metadata"]["creationTimestamp"],
            component="replicaset-controller",
        )


def http_error_alert(
    c: Case,
    ns: str,
    service: str,
    *,
    ratio: str,
    team: str,
    runbook: str,
    severity: str = "critical",
    alertname: str = "HighErrorRate",
) -> Obj:
    expr = (
        f'sum by (cluster, namespace, service) (rate(http_server_requests_total{{namespace="{ns}", service="{service}", code=~"5.."}}[5m]))\n'
        f'  /\nsum by (cluster, namespace, service) (rate(http_server_requests_total{{namespace="{ns}", service="{service}"}}[5m]))\n  > 0.05'
    )
    return c.alert(
        alertname,
        {"namespace": ns, "service": service, "team": team},
        summary=f"{service} is failing {ratio} of requests",
        description=f"More than 5% of HTTP requests to {ns}/{service} have returned 5xx for 10 minutes (currently {ratio}).",
        runbook=runbook,
        expr=expr,
        severity=severity,
        starts_ms=int(ratio.rstrip("%").replace(".", "")) % 1000,
    )


def stamper(c: Case, style: str) -> Callable[[str], str]:
    """Log timestamps in the style of a given program, relative to capture time."""

    def fmt(rel: str) -> str:
        moment = c.dt(rel)
        if "." not in rel:
            moment += timedelta(milliseconds=int.from_bytes(rel.encode()[-2:] * 2, "big") % 997)
        ms = f"{moment.microsecond // 1000:03d}"
        if style == "iso":
            return moment.strftime("%Y-%m-%dT%H:%M:%S.") + ms + "Z"
        if style == "iso_s":
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if style == "redis":
            return moment.strftime("%d %b %Y %H:%M:%S.") + ms
        if style == "fluentbit":
            return moment.strftime("%Y/%m/%d %H:%M:%S")
        if style == "klog":
            micro = int.from_bytes(rel.encode()[-3:], "big") % 1000
            return moment.strftime("%m%d %H:%M:%S.") + ms + f"{micro:03d}"
        if style == "pg":
            return moment.strftime("%Y-%m-%d %H:%M:%S.") + ms + " UTC"
        if style == "nginx":
            return moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
        if style == "python":
            return moment.strftime("%Y-%m-%d %H:%M:%S,") + ms
        if style == "epoch_ms":
            return str(int(moment.timestamp() * 1000))
        raise ValueError(style)

    return fmt


def crashing(
    name: str,
    restarts: int,
    code: int,
    reason: str,
    last_start: str,
    last_end: str,
    *,
    running_since: str | None = None,
) -> CState:
    """A container in a restart loop: waiting in CrashLoopBackOff, or briefly running again."""
    last = (code, reason, last_start, last_end)
    if running_since:
        return running(name, running_since, ready=False, restarts=restarts, last=last)
    return waiting(name, "CrashLoopBackOff", restarts=restarts, last=last)


def crash_events(
    c: Case,
    pod: Obj,
    ctr: str,
    *,
    first: str,
    restarts: int,
    last_start: str,
    backoff_last: str = "-25s",
) -> None:
    c.container_events(
        pod,
        ctr,
        first=first,
        last=last_start,
        starts=restarts + 1,
        backoffs=max(restarts * 4 - 3, 1),
        backoff_last=backoff_last,
    )


def ksm_pod_labels(pod: Obj, ctr: str | None = None, **extra: str) -> dict[str, str]:
    m = pod["metadata"]
    labels = {"namespace": m["namespace"], "pod": m["name"], "uid": m["uid"]}
    if ctr:
        labels["container"] = ctr
    labels.update(extra)
    return labels


def rollout_in_progress(
    c: Case,
    ns: str,
    name: str,
    image_old: str,
    image_new: str,
    nodes: list[Obj],
    *,
    started: str = "-40s",
    replicas: int = 2,
    revision: int = 9,
) -> Obj:
    """A Deployment caught mid-rollout: the controller has not observed the newest generation yet."""
    old_tpl = template(
        app_labels(name, image_old.rsplit(":", 1)[1]), [web_container(name, image_old)]
    )
    new_tpl = template(
        app_labels(name, image_new.rsplit(":", 1)[1]), [web_container(name, image_new)]
    )
    d = c.deployment(
        ns,
        name,
        new_tpl,
        replicas=replicas,
        revision=revision,
        created="-300d",
        labels=helm_labels(name, image_new.rsplit(":", 1)[1]),
        annotations=helm_annotations(name, ns),
    )
    old = c.replicaset(d, old_tpl, revision=revision - 1, replicas=replicas, created="-12d")
    new = c.replicaset(d, revision=revision, replicas=1, created=started)
    for i in range(replicas):
        c.pod(
            old,
            nodes[i % len(nodes)],
            shift("-12d", i * 30),
            [running(name, shift("-12d", i * 30 + 5))],
        )
    p = c.pod(new, nodes[-1], shift(started, 1), [running(name, shift(started, 4), ready=False)])
    c.scheduled(p, nodes[-1], shift(started, 1))
    c.container_events(
        p,
        name,
        first=shift(started, 3),
        last=shift(started, 4),
        starts=1,
        pulled_fresh=f'Successfully pulled image "{image_new}" in 1.92s (1.92s including waiting). Image size: 31457280 bytes.',
    )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {new['metadata']['name']} from 0 to 1",
        first=started,
        component="deployment-controller",
    )
    rs_created_pods(c, new, [p])
    d["metadata"]["generation"] += 1
    d["status"]["_override"] = {"observedGeneration": d["metadata"]["generation"] - 1}
    c.service(
        ns,
        name,
        selector_labels(name),
        [("http", 80, "http"), ("metrics", 9090, "metrics")],
        labels=helm_labels(name, image_old.rsplit(":", 1)[1]),
    )
    return d


# =========================================================================== cases


@case
def configmap_missing_key_behind_service() -> Case:
    c = Case(
        "configmap-missing-key-behind-service",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-24T14:07:31Z",
        captured_after="3m",
    )
    nodes = eks_nodes(c, ["10.0.12.34", "10.0.44.101", "10.0.71.9"])
    namespace(c, "shop", sas=("api", "storefront"), labels={"team": "shop"})
    c.configmap(
        "shop",
        "api-config",
        {
            "DB_URL": "postgres://api@shop-db.c9xk2mq7zt1p.eu-west-1.rds.amazonaws.com:5432/shop?sslmode=require",
            "FEATURE_FLAGS": "checkout_v2,wishlist",
            "LOG_LEVEL": "info",
            "REDIS_ADDR": "redis-master.shop.svc.cluster.local:6379",
            "TRACING_ENDPOINT": "otel-collector.observability.svc.cluster.local:4317",
        },
        created="-540d",
        labels={"app.kubernetes.io/part-of": "shop", "argocd.argoproj.io/instance": "shop-config"},
        annotations={"argocd.argoproj.io/tracking-id": "shop-config:/ConfigMap:shop/api-config"},
    )
    c.secret(
        "shop",
        "api-db",
        {"password": "Jx4v9Qe2rTn8LpWz"},
        created="-540d",
        labels={"app.kubernetes.io/name": "api"},
    )
    reloaded = json.dumps(
        {
            "type": "CONFIGMAP",
            "name": "api-config",
            "namespace": "shop",
            "hash": "5c1e0f7b2d9a46c38e1f0b7a9d2c4e6f8a1b3c5d",
            "containerRefs": ["api"],
            "observedAt": int(c.dt("-14m").timestamp()),
        },
        separators=(",", ":"),
    )
    api = web_container(
        "api",
        "ghcr.io/acme/shop-api:4.12.0",
        env_vars=[
            env_cm("DATABASE_URL", "api-config", "DATABASE_URL"),
            env_secret("DATABASE_PASSWORD", "api-db", "password"),
            env_cm("REDIS_ADDR", "api-config", "REDIS_ADDR"),
            env_cm("LOG_LEVEL", "api-config", "LOG_LEVEL"),
            env_cm("OTEL_EXPORTER_OTLP_ENDPOINT", "api-config", "TRACING_ENDPOINT"),
            env_field("POD_NAME", "metadata.name"),
        ],
        res=resources("250m", "384Mi", None, "512Mi"),
    )
    tpl_new = template(
        app_labels("api", "4.12.0"),
        [api],
        service_account="api",
        annotations={"reloader.stakater.com/last-reloaded-from": reloaded},
    )
    tpl_old = template(app_labels("api", "4.12.0"), [copy.deepcopy(api)], service_account="api")
    d = c.deployment(
        "shop",
        "api",
        tpl_new,
        replicas=3,
        revision=23,
        created="-540d",
        generation=31,
        strategy={"type": "Recreate"},
        labels=helm_labels("api", "4.12.0", chart="shop-api-4.12.0"),
        annotations={
            **helm_annotations("api", "shop"),
            "configmap.reloader.stakater.com/reload": "api-config",
        },
    )
    old = c.replicaset(d, tpl_old, revision=22, replicas=0, created="-9d")
    new = c.replicaset(d, revision=23, replicas=3, created="-13m58s")
    msg = "couldn't find key DATABASE_URL in ConfigMap shop/api-config"
    pods = []
    for i, node in enumerate(nodes):
        p = c.pod(
            new, node, shift("-13m57s", i), [waiting("api", "CreateContainerConfigError", msg)]
        )
        pods.append(p)
        c.scheduled(p, node, shift("-13m57s", i))
        fp = {"host": node["metadata"]["name"], "field_path": "spec.containers{api}"}
        c.event(
            p,
            "Pulled",
            'Container image "ghcr.io/acme/shop-api:4.12.0" already present on machine',
            first=shift("-13m55s", i),
            last=shift("-31s", -i * 7),
            count=63 - i,
            **fp,
        )
        c.event(
            p,
            "Failed",
            f"Error: {msg}",
            first=shift("-13m55s", i),
            last=shift("-31s", -i * 7),
            count=63 - i,
            warning=True,
            **fp,
        )
    deploy_events_rollout(c, d, old, new, "-14m", old_from=3, new_to=3)
    for n in range(3):
        c.event(
            old,
            "SuccessfulDelete",
            f"Deleted pod: api-{old['metadata']['labels']['pod-template-hash']}-{['x7k2p', 'm9qzt', 'c4wns'][n]}",
            first="-14m",
            component="replicaset-controller",
        )
    rs_created_pods(c, new, pods)
    deployment_conditions(
        d,
        Available=(
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            "-14m",
            "-14m",
        ),
        Progressing=(
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
            "-3m57s",
            "-3m57s",
        ),
    )
    c.service(
        "shop",
        "api",
        selector_labels("api"),
        [("http", 80, "http"), ("metrics", 9090, "metrics")],
        created="-540d",
        labels=helm_labels("api", "4.12.0", chart="shop-api-4.12.0"),
        annotations=helm_annotations("api", "shop"),
        slices=True,
    )
    # a healthy neighbour and a finished CronJob run
    sf = web_container("storefront", "ghcr.io/acme/storefront:2.31.4", port=3000)
    healthy(
        c,
        "shop",
        "storefront",
        template(app_labels("storefront", "2.31.4"), [sf], service_account="storefront"),
        nodes,
        replicas=2,
        revision=57,
        rs_created="-2d",
    )
    cron_tpl = template(
        app_labels("api-session-cleanup", "4.12.0"),
        [
            container(
                "cleanup",
                "ghcr.io/acme/shop-api:4.12.0",
                args=["cleanup-sessions", "--older-than=720h"],
                env_vars=[
                    env_cm("DB_URL", "api-config", "DB_URL"),
                    env_secret("DATABASE_PASSWORD", "api-db", "password"),
                ],
                res=resources("50m", "64Mi", None, "128Mi"),
            )
        ],
        restart_policy="OnFailure",
    )
    cj = cronjob(
        c,
        "shop",
        "api-session-cleanup",
        cron_tpl,
        schedule="0 * * * *",
        created="-300d",
        last_schedule="-7m31s",
        last_success="-6m58s",
    )
    run_job(c, cj, nodes[1], scheduled="-7m31s", outcome="succeeded", duration_s=33)
    c.alert(
        "ServiceEndpointsDown",
        {"namespace": "shop", "service": "api", "team": "shop"},
        summary="Service shop/api has no ready endpoints",
        description="Service shop/api has had no ready endpoints for 10 minutes; every request to it fails.",
        runbook="https://runbooks.acme.io/kubernetes/service-endpoints-down",
        expr='sum by (cluster, namespace, service) (\n  label_replace(kube_endpoint_address{job="kube-state-metrics", ready="true"}, "service", "$1", "endpoint", "(.*)")\n  or\n  label_replace(kube_endpoint_address{job="kube-state-metrics"} * 0, "service", "$1", "endpoint", "(.*)")\n) == 0',
        severity="critical",
        starts_ms=482,
    )
    c.expect(
        description="""Service shop/api has no ready endpoints because none of its pods ever started:
        a Reloader-triggered Recreate rollout of Deployment api replaced all three pods at once, and
        every new pod sits in CreateContainerConfigError ("couldn't find key DATABASE_URL in
        ConfigMap shop/api-config"). The Argo-managed ConfigMap api-config was re-synced with the
        database URL under the new key DB_URL, while the Deployment still reads DATABASE_URL via
        configMapKeyRef. Restoring the DATABASE_URL key in api-config (or pointing the env at
        DB_URL) ends the incident.""",
        category="ConfigError",
        culprit_ref=culprit("ConfigMap", "shop", "api-config"),
        mentions=["api-config", "DATABASE_URL"],
        multi_hop=True,
        distractors=[
            "Deployment api reports Progressing=False ProgressDeadlineExceeded (a symptom, not the cause)",
            "ConfigMap api-config contains a DB_URL key that looks like the database URL",
            "CronJob api-session-cleanup ran a Succeeded job pod minutes before the alert",
        ],
        acceptable=[culprit("Deployment", "shop", "api")],
    )
    return c


def cronjob(
    c: Case,
    ns: str,
    name: str,
    tpl: Obj,
    *,
    schedule: str,
    created: str,
    last_schedule: str,
    last_success: str | None,
    backoff_limit: int = 6,
    labels: dict[str, str] | None = None,
    concurrency: str = "Forbid",
) -> Obj:
    status: Obj = {"lastScheduleTime": c.t(last_schedule)}
    if last_success:
        status["lastSuccessfulTime"] = c.t(last_success)
    return c.add(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": c.meta(
                "CronJob",
                name,
                ns,
                created,
                labels=labels or {"app.kubernetes.io/name": name},
                generation=1,
            ),
            "spec": {
                "concurrencyPolicy": concurrency,
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {
                    "metadata": {"creationTimestamp": None},
                    "spec": {"backoffLimit": backoff_limit, "template": copy.deepcopy(tpl)},
                },
                "schedule": schedule,
                "successfulJobsHistoryLimit": 3,
                "suspend": False,
                "timeZone": "Etc/UTC",
            },
            "status": status,
        }
    )


def run_job(
    c: Case,
    owner: Obj | str,
    node: Obj,
    *,
    scheduled: str,
    outcome: str,
    duration_s: int,
    failures_before: int = 0,
    name: str | None = None,
    job_tpl: Obj | None = None,
    backoff_limit: int | None = None,
    fail_code: int = 1,
    events: bool = True,
) -> tuple[Obj, list[Obj]]:
    """One Job run (owned by a CronJob or standalone) with its pods; outcome succeeded|failed."""
    cron = owner if isinstance(owner, dict) else None
    ns = cron["metadata"]["namespace"] if cron else str(owner)
    if cron:
        owner = cron
        minutes = int(c.dt(scheduled).timestamp()) // 60
        name = name or f"{cron['metadata']['name']}-{minutes}"
        tpl = cron["spec"]["jobTemplate"]["spec"]["template"]
        limit = cron["spec"]["jobTemplate"]["spec"]["backoffLimit"]
        job = c.job(
            ns,
            name,
            tpl,
            created=shift(scheduled, 0),
            backoff_limit=limit,
            owner=cron,
            annotations={"batch.kubernetes.io/cronjob-scheduled-timestamp": c.t(scheduled)},
        )
    else:
        assert name
        assert job_tpl is not None
        limit = backoff_limit if backoff_limit is not None else 6
        job = c.job(ns, name, job_tpl, created=scheduled, backoff_limit=limit)
    ctr = job["spec"]["template"]["spec"]["containers"][0]["name"]
    pods = []
    t = shift(scheduled, 1)
    attempts = failures_before + 1 if outcome == "succeeded" else limit + 1
    for i in range(attempts):
        last_attempt = i == attempts - 1
        ok = outcome == "succeeded" and last_attempt
        run_s = duration_s if ok else max(4, duration_s // 3)
        start = shift(t, 3)
        end = shift(start, run_s)
        p = c.pod(
            job,
            node,
            t,
            [terminated(ctr, 0 if ok else fail_code, "Completed" if ok else "Error", start, end)],
            phase="Succeeded" if ok else "Failed",
        )
        pods.append(p)
        if events:
            c.event(
                job,
                "SuccessfulCreate",
                f"Created pod: {p['metadata']['name']}",
                first=t,
                component="job-controller",
            )
        backoff = 10 * (2**i)
        t = shift(end, backoff)
    finish = pods[-1]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    status: Obj = {
        "ready": 0,
        "startTime": job["metadata"]["creationTimestamp"],
        "terminating": 0,
        "uncountedTerminatedPods": {},
    }
    if outcome == "succeeded":
        status.update(
            completionTime=finish,
            succeeded=1,
            conditions=[
                {
                    "lastProbeTime": finish,
                    "lastTransitionTime": finish,
                    "message": "Reached expected number of succeeded pods",
                    "reason": "CompletionsReached",
                    "status": "True",
                    "type": "SuccessCriteriaMet",
                },
                {
                    "lastProbeTime": finish,
                    "lastTransitionTime": finish,
                    "message": "Reached expected number of succeeded pods",
                    "reason": "CompletionsReached",
                    "status": "True",
                    "type": "Complete",
                },
            ],
        )
        if failures_before:
            status["failed"] = failures_before
        if events:
            c.event(job, "Completed", "Job completed", first=finish, component="job-controller")
            if cron:
                c.event(
                    cron,
                    "SawCompletedJob",
                    f"Saw completed job: {name}, condition: Complete",
                    first=finish,
                    component="cronjob-controller",
                )
    else:
        status.update(
            failed=attempts,
            conditions=[
                {
                    "lastProbeTime": finish,
                    "lastTransitionTime": finish,
                    "message": "Job has reached the specified backoff limit",
                    "reason": "BackoffLimitExceeded",
                    "status": "True",
                    "type": "FailureTarget",
                },
                {
                    "lastProbeTime": finish,
                    "lastTransitionTime": finish,
                    "message": "Job has reached the specified backoff limit",
                    "reason": "BackoffLimitExceeded",
                    "status": "True",
                    "type": "Failed",
                },
            ],
        )
        if events:
            c.event(
                job,
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                first=finish,
                warning=True,
                component="job-controller",
            )
            if cron:
                c.event(
                    cron,
                    "SawCompletedJob",
                    f"Saw completed job: {name}, condition: Failed",
                    first=finish,
                    component="cronjob-controller",
                )
    job["status"] = status
    if cron and events:
        c.event(
            cron,
            "SuccessfulCreate",
            f"Created job {name}",
            first=scheduled,
            component="cronjob-controller",
        )
    return job, pods


@case
def checkout_postgres_pvc_missing_storageclass() -> Case:
    c = Case(
        "checkout-postgres-pvc-missing-storageclass",
        cluster="staging-eu-1",
        platform=EKS_STAGING,
        alert_at="2026-11-19T10:42:08Z",
        captured_after="5m",
    )
    nodes = [
        c.node(ip, instance_type="m6i.large", pool="staging-general", created="-3h")
        for ip in ("10.1.9.214", "10.1.40.77", "10.1.83.160")
    ]
    c.storage_class(
        "gp2",
        "kubernetes.io/aws-ebs",
        parameters={"fsType": "ext4", "type": "gp2"},
        created="-3h",
        expansion=False,
    )
    c.storage_class(
        "gp3",
        "ebs.csi.aws.com",
        default=True,
        parameters={"encrypted": "true", "type": "gp3"},
        created="-3h",
    )
    namespace(
        c,
        "shop",
        created="-58m",
        sas=("checkout", "postgres"),
        labels={"team": "shop", "env": "staging"},
    )
    pg_labels = app_labels("postgres", "16.3", **{"app.kubernetes.io/component": "primary"})
    pg = container(
        "postgres",
        "postgres:16.3",
        ports=[("tcp-postgresql", 5432)],
        env_vars=[
            env("POSTGRES_USER", "checkout"),
            env("POSTGRES_DB", "checkout"),
            env_secret("POSTGRES_PASSWORD", "postgres", "password"),
            env("PGDATA", "/var/lib/postgresql/data/pgdata"),
        ],
        res=resources("500m", "1Gi", None, "1Gi"),
        readiness=exec_probe(
            ["/bin/sh", "-c", "pg_isready -U checkout -d checkout -h 127.0.0.1 -p 5432"],
            initial=5,
            timeout=5,
        ),
        liveness=exec_probe(
            ["/bin/sh", "-c", "pg_isready -U checkout -d checkout -h 127.0.0.1 -p 5432"],
            initial=30,
            timeout=5,
            failure=6,
        ),
        mounts=[mount("data", "/var/lib/postgresql/data"), mount("dshm", "/dev/shm")],  # noqa: S108
    )
    pg_tpl = template(
        pg_labels,
        [pg],
        service_account="postgres",
        volumes=[{"emptyDir": {"medium": "Memory"}, "name": "dshm"}],
        security={"fsGroup": 999, "runAsUser": 999},
    )
    ss = c.statefulset(
        "shop",
        "postgres",
        pg_tpl,
        replicas=1,
        service_name="postgres-hl",
        created="-57m",
        claims=[c.claim_template("data", "20Gi", "fast-ssd")],
        labels=helm_labels("postgres", "16.3", chart="shop-postgres-0.4.2"),
        annotations=helm_annotations("postgres", "shop"),
    )
    c.secret(
        "shop",
        "postgres",
        {"password": "staging-9f3Kq2Lm"},
        created="-57m",
        labels={"app.kubernetes.io/name": "postgres"},
    )
    claim = c.pvc(
        "shop",
        "data-postgres-0",
        "20Gi",
        "fast-ssd",
        created="-57m",
        phase="Pending",
        labels=selector_labels("postgres"),
    )
    unsched = (
        "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    pod = c.pod(ss, None, "-57m", [], name="postgres-0", unschedulable=unsched, scheduled_at="-57m")
    c.scheduler_event(pod, "FailedScheduling", unsched, first="-57m", last="-2m11s", count=13)
    c.event(
        ss,
        "SuccessfulCreate",
        "create Claim data-postgres-0 Pod postgres-0 in StatefulSet postgres success",
        first="-57m",
        component="statefulset-controller",
    )
    c.event(
        ss,
        "SuccessfulCreate",
        "create Pod postgres-0 in StatefulSet postgres successful",
        first="-57m",
        component="statefulset-controller",
    )
    c.event(
        claim,
        "ProvisioningFailed",
        'storageclass.storage.k8s.io "fast-ssd" not found',
        first="-57m",
        last="-9s",
        count=229,
        warning=True,
        component="persistentvolume-controller",
    )
    pg_svc = c.service(
        "shop",
        "postgres",
        selector_labels("postgres"),
        [("tcp-postgresql", 5432, "tcp-postgresql")],
        created="-57m",
        labels=helm_labels("postgres", "16.3", chart="shop-postgres-0.4.2"),
        annotations=helm_annotations("postgres", "shop"),
    )
    c.service(
        "shop",
        "postgres-hl",
        selector_labels("postgres"),
        [("tcp-postgresql", 5432, "tcp-postgresql")],
        created="-57m",
        headless=True,
        publish_not_ready=True,
        labels=helm_labels("postgres", "16.3", chart="shop-postgres-0.4.2"),
    )
    # checkout: Running and Ready (its readiness does not touch the database), failing requests
    co = web_container(
        "checkout",
        "ghcr.io/acme/checkout:1.14.2",
        env_vars=[
            env("DB_HOST", "postgres"),
            env("DB_PORT", "5432"),
            env("DB_NAME", "checkout"),
            env("DB_USER", "checkout"),
            env_secret("DB_PASSWORD", "postgres", "password"),
            env("PAYMENTS_URL", "http://payments-stub.shop.svc.cluster.local:8080"),
        ],
        res=resources("200m", "256Mi", None, "512Mi"),
    )
    co_tpl = template(app_labels("checkout", "1.14.2"), [co], service_account="checkout")
    d, rs, pods = healthy(
        c,
        "shop",
        "checkout",
        co_tpl,
        nodes,
        replicas=2,
        revision=1,
        created="-56m",
        rs_created="-56m",
    )
    for p in pods:
        node = p["spec"]["nodeName"]
        start = p["metadata"]["creationTimestamp"]
        c.scheduled(p, c.find("Node", None, node), start)
        c.container_events(
            p,
            "checkout",
            first=start,
            last=start,
            starts=1,
            pulled_fresh='Successfully pulled image "ghcr.io/acme/checkout:1.14.2" in 2.871s (2.871s including waiting). Image size: 21844210 bytes.',
        )
    deploy_events_rollout(c, d, None, rs, "-56m", old_from=0, new_to=2)
    rs_created_pods(c, rs, pods)
    c.hpa(
        d,
        min_replicas=2,
        max_replicas=6,
        current=2,
        desired=2,
        cpu_target=70,
        cpu_current=9,
        cpu_value="18m",
        created="-56m",
        last_scale="-56m",
    )
    stub = web_container("payments-stub", "ghcr.io/acme/payments-stub:0.9.1")
    healthy(
        c,
        "shop",
        "payments-stub",
        template(app_labels("payments-stub", "0.9.1"), [stub]),
        nodes[1:],
        replicas=1,
        revision=1,
        created="-56m",
        rs_created="-56m",
        service_port=8080,
    )
    ip = pg_svc["spec"]["clusterIP"]
    err = f"failed to connect to `user=checkout database=checkout`: {ip}:5432 (postgres): dial error: dial tcp {ip}:5432: connect: connection refused"
    lines = []
    start = c.dt("-55m")
    lines.append(
        json.dumps(
            {
                "level": "info",
                "ts": (start).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z",
                "caller": "cmd/checkout/main.go:61",
                "msg": "starting checkout",
                "version": "1.14.2",
                "commit": "4be1d2a",
            }
        )
    )
    lines.append(
        json.dumps(
            {
                "level": "warn",
                "ts": (start + timedelta(milliseconds=412)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4]
                + "Z",
                "caller": "internal/db/pool.go:47",
                "msg": "database not reachable at startup, will retry lazily",
                "error": err,
            }
        )
    )
    lines.append(
        json.dumps(
            {
                "level": "info",
                "ts": (start + timedelta(milliseconds=430)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4]
                + "Z",
                "caller": "cmd/checkout/main.go:98",
                "msg": "http server listening",
                "addr": ":8080",
            }
        )
    )
    for i in range(14):
        t = c.dt("-6m") + timedelta(seconds=i * 23, milliseconds=137 * i)
        stamp = t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        lines.append(
            json.dumps(
                {
                    "level": "error",
                    "ts": stamp,
                    "caller": "internal/orders/service.go:112",
                    "msg": "create order failed",
                    "cart_id": f"c_{9120 + i * 37}",
                    "trace_id": f"{(i * 7919 + 104729) ** 3 % (1 << 64):016x}",
                    "error": err,
                }
            )
        )
        lines.append(
            json.dumps(
                {
                    "level": "info",
                    "ts": stamp,
                    "caller": "internal/httpx/log.go:28",
                    "msg": "request",
                    "method": "POST",
                    "path": "/v1/orders",
                    "status": 500,
                    "duration_ms": 3 + i % 4,
                }
            )
        )
    c.log("shop", pods[0], "checkout", "\n".join(lines))
    c.log(
        "shop",
        pods[1],
        "checkout",
        "\n".join(lines[:3] + [line.replace("c_9", "c_8") for line in lines[3:15]]),
    )
    http_error_alert(
        c,
        "shop",
        "checkout",
        ratio="41.7%",
        team="shop",
        runbook="https://runbooks.acme.io/shop/checkout#high-error-rate",
    )
    c.expect(
        description="""checkout returns 500s because every order needs postgres and its logs show
        `dial tcp …:5432: connect: connection refused` against the postgres Service, which has no
        endpoints. The only postgres pod, postgres-0, has been Pending since the staging stack was
        deployed: it waits for PVC data-postgres-0, which stays Pending because its StorageClass
        fast-ssd does not exist in this new cluster (ProvisioningFailed: storageclass.storage.k8s.io
        "fast-ssd" not found; only gp2 and gp3 exist). Fixing the claim's storage class (or creating
        fast-ssd) lets postgres start and checkout recover.""",
        category="VolumeFailure",
        culprit_ref=culprit("PersistentVolumeClaim", "shop", "data-postgres-0"),
        mentions=["data-postgres-0", "fast-ssd"],
        multi_hop=True,
        distractors=[
            "checkout pods are Running and Ready, so the alerted workload itself looks healthy",
            "HPA checkout is far from its maximum",
            "postgres-0 shows PodScheduled=False Unschedulable, which looks like a capacity problem",
        ],
        acceptable=[
            culprit("StorageClass", None, "fast-ssd"),
            culprit("StatefulSet", "shop", "postgres"),
        ],
    )
    return c


@case
def oom_java_heap_over_limit() -> Case:
    c = Case(
        "oom-java-heap-over-limit",
        cluster="prod-us-1",
        platform=GKE_PROD,
        alert_at="2026-11-21T09:58:14Z",
        captured_after="4m",
    )
    nodes = gke_nodes(c, ["10.128.0.41", "10.128.0.57", "10.128.0.63"], itype="e2-standard-8")
    namespace(c, "risk", sas=("fraud-scoring",), labels={"team": "risk"})
    S = stamper(c, "iso")

    def fs_container(xmx: str) -> Obj:
        return container(
            "fraud-scoring",
            "ghcr.io/acme/fraud-scoring:3.8.1",
            ports=[("http", 8080), ("management", 8081)],
            env_vars=[
                env(
                    "JAVA_TOOL_OPTIONS",
                    f"-Xmx{xmx} -XX:+UseG1GC -XX:MaxMetaspaceSize=256m -XX:+ExitOnOutOfMemoryError",
                ),
                env("SPRING_PROFILES_ACTIVE", "prod"),
                env("FEATURE_CACHE_MERCHANTS", "1200000"),
                env_secret("SPRING_DATASOURCE_PASSWORD", "fraud-scoring-db", "password"),
            ],
            res=resources("1", "1536Mi", None, "1536Mi"),
            readiness=http_probe("/actuator/health/readiness", "management", initial=20, period=5),
            liveness=http_probe(
                "/actuator/health/liveness", "management", initial=60, period=10, failure=5
            ),
        )

    c.secret(
        "risk",
        "fraud-scoring-db",
        {"password": "r1sk-pg-7TqW2mZx", "username": "fraud_scoring"},
        created="-400d",
    )
    tpl = template(
        app_labels("fraud-scoring", "3.8.1"),
        [fs_container("1536m")],
        service_account="fraud-scoring",
        annotations={
            "checksum/values": "9f1c52e0a8b3d47e6c2f1a0b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e"
        },
    )
    tpl_old = template(
        app_labels("fraud-scoring", "3.8.1"),
        [fs_container("1024m")],
        service_account="fraud-scoring",
        annotations={
            "checksum/values": "1b7d0c4f2e9a8b6c5d3e1f0a2b4c6d8e9f1a3b5c7d9e0f2a4b6c8d0e1f3a5b7c"
        },
    )
    d = c.deployment(
        "risk",
        "fraud-scoring",
        tpl,
        replicas=3,
        revision=31,
        created="-400d",
        labels=helm_labels("fraud-scoring", "3.8.1"),
        annotations=helm_annotations("fraud-scoring", "risk"),
    )
    old = c.replicaset(d, tpl_old, revision=30, replicas=0, created="-16d")
    new = c.replicaset(d, revision=31, replicas=3, created="-22m")
    a = c.pod(
        new,
        nodes[0],
        "-21m58s",
        [crashing("fraud-scoring", 6, 137, "OOMKilled", "-6m40s", "-4m2s")],
    )
    b = c.pod(
        new,
        nodes[1],
        "-21m58s",
        [
            running(
                "fraud-scoring", "-1m12s", restarts=6, last=(137, "OOMKilled", "-8m50s", "-6m15s")
            )
        ],
    )
    cc = c.pod(
        new,
        nodes[2],
        "-21m57s",
        [crashing("fraud-scoring", 6, 137, "OOMKilled", "-5m30s", "-2m58s")],
    )
    for p, r, ls in ((a, 6, "-6m40s"), (b, 6, "-1m12s"), (cc, 6, "-5m30s")):
        crash_events(c, p, "fraud-scoring", first="-21m55s", restarts=r, last_start=ls)
    deploy_events_rollout(c, d, old, new, "-22m", old_from=3, new_to=3)
    for i, n in enumerate(nodes):
        c.node_event(
            n,
            "SystemOOM",
            f"System OOM encountered, victim process: java, pid: {2817342 + i * 9137}",
            first="-19m",
            last=["-4m2s", "-6m15s", "-2m58s"][i],
            count=[6, 6, 6][i],
            warning=True,
        )
    c.service(
        "risk",
        "fraud-scoring",
        selector_labels("fraud-scoring"),
        [("http", 80, "http"), ("management", 8081, "management")],
        created="-400d",
        labels=helm_labels("fraud-scoring", "3.8.1"),
    )
    c.hpa(
        d,
        min_replicas=3,
        max_replicas=8,
        current=3,
        desired=3,
        cpu_target=75,
        cpu_current=41,
        cpu_value="412m",
        created="-300d",
        last_scale="-2d",
    )
    job_tpl = template(
        app_labels("model-refresh", "3.8.1"),
        [
            container(
                "refresh",
                "ghcr.io/acme/fraud-scoring:3.8.1",
                args=["--refresh-model"],
                res=resources("500m", "512Mi", None, "1Gi"),
            )
        ],
        restart_policy="Never",
        service_account="fraud-scoring",
    )
    cj = cronjob(
        c,
        "risk",
        "model-refresh",
        job_tpl,
        schedule="30 9 * * *",
        created="-200d",
        last_schedule="-32m14s",
        last_success="-30m40s",
        backoff_limit=2,
    )
    run_job(c, cj, nodes[2], scheduled="-32m14s", outcome="succeeded", duration_s=88)
    boot = """\
        Picked up JAVA_TOOL_OPTIONS: -Xmx1536m -XX:+UseG1GC -XX:MaxMetaspaceSize=256m -XX:+ExitOnOutOfMemoryError

          .   ____          _            __ _ _
         /\\\\ / ___'_ __ _ _(_)_ __  __ _ \\ \\ \\ \\
        ( ( )\\___ | '_ | '_| | '_ \\/ _` | \\ \\ \\ \\
         \\\\/  ___)| |_)| | | | | || (_| |  ) ) ) )
          '  |____| .__|_| |_|_| |_\\__, | / / / /
         =========|_|==============|___/=/_/_/_/

         :: Spring Boot ::                (v3.3.5)

        {t0}  INFO 1 --- [fraud-scoring] [           main] c.a.risk.FraudScoringApplication         : Starting FraudScoringApplication v3.8.1 using Java 21.0.5 with PID 1 (/app/app.jar started by app in /app)
        {t0}  INFO 1 --- [fraud-scoring] [           main] c.a.risk.FraudScoringApplication         : The following 1 profile is active: "prod"
        {t1}  INFO 1 --- [fraud-scoring] [           main] o.s.b.w.embedded.tomcat.TomcatWebServer  : Tomcat initialized with port 8080 (http)
        {t1}  INFO 1 --- [fraud-scoring] [           main] com.zaxxer.hikari.HikariDataSource       : HikariPool-1 - Starting...
        {t1}  INFO 1 --- [fraud-scoring] [           main] com.zaxxer.hikari.pool.HikariPool        : HikariPool-1 - Added connection org.postgresql.jdbc.PgConnection@5b6e8f77
        {t1}  INFO 1 --- [fraud-scoring] [           main] com.zaxxer.hikari.HikariDataSource       : HikariPool-1 - Start completed.
        {t2}  INFO 1 --- [fraud-scoring] [           main] o.s.b.a.e.web.EndpointLinksResolver      : Exposing 4 endpoints beneath base path '/actuator'
        {t2}  INFO 1 --- [fraud-scoring] [           main] o.s.b.w.embedded.tomcat.TomcatWebServer  : Tomcat started on port 8080 (http) with context path '/'
        {t2}  INFO 1 --- [fraud-scoring] [           main] c.a.risk.FraudScoringApplication         : Started FraudScoringApplication in 11.482 seconds (process running for 12.317)
        {t3}  INFO 1 --- [fraud-scoring] [nio-8080-exec-4] c.a.risk.features.MerchantFeatureCache   : warming merchant feature cache (target=1200000 merchants)
        {t4}  INFO 1 --- [fraud-scoring] [nio-8080-exec-4] c.a.risk.features.MerchantFeatureCache   : merchant feature cache 600000/1200000 loaded, heap used 1021 MB of 1536 MB
        {t5}  WARN 1 --- [fraud-scoring] [nio-8080-exec-9] c.a.risk.scoring.ScoringService          : scoring latency p99=834ms above budget 250ms (gc pause 412ms)
        {t6}  INFO 1 --- [fraud-scoring] [nio-8080-exec-4] c.a.risk.features.MerchantFeatureCache   : merchant feature cache 1000000/1200000 loaded, heap used 1388 MB of 1536 MB
        """

    def run_log(start: str, end: str) -> str:
        span = (c.dt(end) - c.dt(start)).total_seconds()
        marks = [
            0.412,
            3.117,
            11.902,
            19.338,
            span * 0.45 + 0.181,
            span * 0.7 + 0.644,
            span * 0.93 + 0.273,
        ]
        text = boot
        for i, m in enumerate(marks):
            for k in range(6):
                text = text.replace(f"{{t{i}}}", S(shift(start, m + k * 0.037)), 1)
        return text

    c.log("risk", a, "fraud-scoring", run_log("-6m40s", "-4m2s"), previous=True)
    c.log("risk", cc, "fraud-scoring", run_log("-5m30s", "-2m58s"), previous=True)
    c.log("risk", b, "fraud-scoring", run_log("-8m50s", "-6m15s"), previous=True)
    c.log("risk", b, "fraud-scoring", "\n".join(run_log("-1m12s", "-5s").splitlines()[:20]))
    limit = 1536 * 1024 * 1024
    series = []
    for p, phase in ((a, 0), (b, 3), (cc, 5)):
        values = []
        for i in range(31):
            cyc = (i + phase) % 8
            values.append(0.0 if cyc >= 5 else min(limit * (0.55 + 0.11 * cyc), limit * 0.998))
        series.append(
            (
                {"container": "fraud-scoring", "namespace": "risk", "pod": p["metadata"]["name"]},
                values,
            )
        )
    c.metric(
        "memory_working_set",
        'max by (namespace, pod, container) (container_memory_working_set_bytes{namespace="risk", container="fraud-scoring"})',
        series,
    )
    c.kps_alert(
        "KubePodCrashLooping",
        ksm_pod_labels(a, "fraud-scoring", reason="CrashLoopBackOff"),
        starts_ms=217,
    )
    c.expect(
        description="""Every fraud-scoring pod is OOMKilled (exit 137, reason OOMKilled) two to three minutes
        after start, as soon as the merchant feature cache warms up. The rollout 22 minutes ago raised the JVM
        heap from -Xmx1024m to -Xmx1536m but left limits.memory at 1536Mi, so heap alone can fill the
        container and metaspace, threads and GC overhead push it over the cgroup limit. Raise the memory
        limit of Deployment fraud-scoring well above the heap (or lower -Xmx).""",
        category="OOMKilled",
        culprit_ref=culprit("Deployment", "risk", "fraud-scoring"),
        mentions=["fraud-scoring", "OOMKilled"],
        multi_hop=False,
        distractors=[
            "HPA fraud-scoring runs 3 of 8 replicas, far from its maximum",
            "CronJob model-refresh left a Succeeded job pod in the namespace",
            "node-problem-detector conditions (KernelDeadlock, FrequentContainerdRestart...) on every node, all False",
            "SystemOOM warnings on the nodes look like node memory trouble but are the container cgroup kills",
        ],
    )
    return c


@case
def oom_redis_replica_full_resync() -> Case:
    c = Case(
        "oom-redis-replica-full-resync",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-17T08:58:40Z",
        captured_after="3m",
    )
    npd = [
        (k, v)
        for k, v in npd_conditions("-9d")
        if k
        in (
            "KernelDeadlock",
            "ReadonlyFilesystem",
            "FrequentContainerdRestart",
            "FrequentKubeletRestart",
        )
    ]
    nodes = [
        c.node(
            "10.0.21.87",
            instance_type="r6i.2xlarge",
            pool="memory-optimized",
            created="-23d",
            extra_conditions=npd,
        ),
        c.node(
            "10.0.50.12",
            instance_type="r6i.2xlarge",
            pool="memory-optimized",
            created="-23d",
            extra_conditions=npd,
        ),
        c.node(
            "10.0.90.203",
            instance_type="r6i.2xlarge",
            pool="memory-optimized",
            created="-22m",
            extra_conditions=[(k, (v[0], v[1], v[2], "-22m")) for k, v in npd],
        ),
    ]
    c.storage_class(
        "gp3", "ebs.csi.aws.com", default=True, parameters={"encrypted": "true", "type": "gp3"}
    )
    namespace(c, "sessions", sas=("sessions-redis",), labels={"team": "identity"})
    S = stamper(c, "redis")
    c.configmap(
        "sessions",
        "sessions-redis",
        {
            "redis.conf": 'bind 0.0.0.0\nport 6379\nprotected-mode no\ntcp-keepalive 60\nsave 900 1\nsave 300 100\nappendonly no\nrepl-diskless-sync no\nmaxmemory-policy noeviction\nrename-command FLUSHALL ""\nrename-command FLUSHDB ""\n',
        },
        created="-300d",
        labels=helm_labels("sessions-redis", "7.2.5", chart="sessions-redis-1.6.0"),
    )
    c.configmap(
        "sessions",
        "sessions-redis-scripts",
        {
            "start.sh": '#!/bin/sh\nset -e\nORDINAL=${HOSTNAME##*-}\nARGS="/etc/redis/redis.conf --replica-announce-ip ${POD_IP}"\nif [ "$ORDINAL" != "0" ]; then\n  ARGS="$ARGS --replicaof sessions-redis-0.sessions-redis-headless.sessions.svc.cluster.local 6379"\nfi\nexec redis-server $ARGS\n',
        },
        created="-300d",
        labels=helm_labels("sessions-redis", "7.2.5", chart="sessions-redis-1.6.0"),
    )
    redis = container(
        "redis",
        "redis:7.2.5",
        command=["/bin/sh", "/scripts/start.sh"],
        ports=[("redis", 6379)],
        env_vars=[env_field("POD_IP", "status.podIP")],
        res=resources("500m", "2Gi", None, "2Gi"),
        readiness=exec_probe(["redis-cli", "ping"], initial=5, period=5, timeout=2),
        liveness=tcp_probe("redis", initial=20, period=10, failure=5),
        mounts=[
            mount("data", "/data"),
            mount("config", "/etc/redis"),
            mount("scripts", "/scripts"),
        ],
    )
    exporter = container(
        "metrics",
        "oliver006/redis_exporter:v1.62.0",
        ports=[("metrics", 9121)],
        res=resources("20m", "32Mi", None, "64Mi"),
    )
    tpl = template(
        app_labels("sessions-redis", "7.2.5"),
        [redis, exporter],
        service_account="sessions-redis",
        volumes=[
            vol_cm("config", "sessions-redis"),
            {
                "configMap": {"defaultMode": 493, "name": "sessions-redis-scripts"},
                "name": "scripts",
            },
        ],
        security={"fsGroup": 999, "runAsNonRoot": True, "runAsUser": 999},
    )
    ss = c.statefulset(
        "sessions",
        "sessions-redis",
        tpl,
        replicas=3,
        service_name="sessions-redis-headless",
        created="-300d",
        claims=[c.claim_template("data", "8Gi", "gp3")],
        labels=helm_labels("sessions-redis", "7.2.5", chart="sessions-redis-1.6.0"),
        annotations=helm_annotations("sessions-redis", "sessions"),
        generation=4,
    )
    for i, n in enumerate(nodes):
        claim = c.pvc(
            "sessions",
            f"data-sessions-redis-{i}",
            "8Gi",
            "gp3",
            created="-300d",
            volume="x",
            labels=selector_labels("sessions-redis"),
            provisioner="ebs.csi.aws.com",
            selected_node=n["metadata"]["name"] if i < 2 else None,
        )
        c.pv_for(
            claim,
            driver="ebs.csi.aws.com",
            handle=f"vol-0{hex_string(f'ebs{i}', 16)}",
            zone=n["metadata"]["labels"]["topology.kubernetes.io/zone"],
        )
    p0 = c.pod(
        ss,
        nodes[0],
        "-22d",
        [running("redis", "-22d"), running("metrics", "-22d")],
        name="sessions-redis-0",
    )
    p1 = c.pod(
        ss,
        nodes[1],
        "-22d",
        [running("redis", "-22d"), running("metrics", "-22d")],
        name="sessions-redis-1",
    )
    p2 = c.pod(
        ss,
        nodes[2],
        "-19m40s",
        [crashing("redis", 7, 137, "OOMKilled", "-4m49s", "-3m58s"), running("metrics", "-19m30s")],
        name="sessions-redis-2",
    )
    c.event(
        ss,
        "SuccessfulCreate",
        "create Pod sessions-redis-2 in StatefulSet sessions-redis successful",
        first="-19m40s",
        component="statefulset-controller",
    )
    c.scheduled(p2, nodes[2], "-19m40s")
    c.event(
        p2,
        "SuccessfulAttachVolume",
        f'AttachVolume.Attach succeeded for volume "{c.find("PersistentVolumeClaim", "sessions", "data-sessions-redis-2")["spec"]["volumeName"]}" ',
        first="-19m36s",
        component="attachdetach-controller",
    )
    crash_events(c, p2, "redis", first="-19m30s", restarts=7, last_start="-4m49s")
    c.node_event(
        nodes[2],
        "SystemOOM",
        "System OOM encountered, victim process: redis-server, pid: 41877",
        first="-18m40s",
        last="-3m58s",
        count=7,
        warning=True,
    )
    c.node_event(
        nodes[2],
        "RegisteredNode",
        f"Node {nodes[2]['metadata']['name']} event: Registered Node {nodes[2]['metadata']['name']} in Controller",
        first="-22m",
        component="node-controller",
    )
    c.service(
        "sessions",
        "sessions-redis",
        selector_labels("sessions-redis"),
        [("redis", 6379, "redis")],
        created="-300d",
        labels=helm_labels("sessions-redis", "7.2.5", chart="sessions-redis-1.6.0"),
    )
    c.service(
        "sessions",
        "sessions-redis-headless",
        selector_labels("sessions-redis"),
        [("redis", 6379, "redis")],
        created="-300d",
        headless=True,
        publish_not_ready=True,
        labels=helm_labels("sessions-redis", "7.2.5", chart="sessions-redis-1.6.0"),
    )
    ip2 = p2["status"]["podIP"]
    replica = f"""\
        1:C {S("-4m48.962s")} * oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo
        1:C {S("-4m48.962s")} * Redis version=7.2.5, bits=64, commit=00000000, modified=0, pid=1, just started
        1:C {S("-4m48.962s")} * Configuration loaded
        1:S {S("-4m48.884s")} * monotonic clock: POSIX clock_gettime
        1:S {S("-4m48.884s")} * Running mode=standalone, port=6379.
        1:S {S("-4m48.861s")} * Server initialized
        1:S {S("-4m48.861s")} * Ready to accept connections tcp
        1:S {S("-4m48.861s")} * Connecting to MASTER sessions-redis-0.sessions-redis-headless.sessions.svc.cluster.local:6379
        1:S {S("-4m48.797s")} * MASTER <-> REPLICA sync started
        1:S {S("-4m48.797s")} * Non blocking connect for SYNC fired the event.
        1:S {S("-4m48.742s")} * Master replied to PING, replication can continue...
        1:S {S("-4m48.742s")} * Partial resynchronization not possible (no cached master)
        1:S {S("-4m42.063s")} * Full resync from master: 6b1f0c9e2d4a8b7c3e5f1a0d9c8b7a6e5f4d3c2b:918273645
        1:S {S("-4m19.371s")} * MASTER <-> REPLICA sync: receiving 1843912207 bytes from master to disk
        1:S {S("-4m6.218s")} * MASTER <-> REPLICA sync: Flushing old data
        1:S {S("-4m6.218s")} * MASTER <-> REPLICA sync: Loading DB in memory
        1:S {S("-4m6.094s")} * Loading RDB produced by version 7.2.5
        1:S {S("-4m6.094s")} * RDB age 36 seconds
        1:S {S("-4m6.094s")} * RDB memory usage when created 1806.27 Mb
        """
    c.log("sessions", p2, "redis", replica, previous=True)
    master_lines = []
    for k, (start, end) in enumerate((("-10m39s", "-9m48s"), ("-4m48.6s", "-3m58s"))):
        master_lines += [
            f"1:M {S(start)} * Replica {ip2}:6379 asks for synchronization",
            f"1:M {S(start)} * Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '{'0' * 40}', my replication ID is '6b1f0c9e2d4a8b7c3e5f1a0d9c8b7a6e5f4d3c2b')",
            f"1:M {S(start)} * Starting BGSAVE for SYNC with target: disk",
            f"1:M {S(start)} * Background saving started by pid {18211 + k * 457}",
            f"{18211 + k * 457}:C {S(shift(start, 28))} * DB saved on disk",
            f"{18211 + k * 457}:C {S(shift(start, 28))} * Fork CoW for RDB: current 61 MB, peak 61 MB, average 37 MB",
            f"1:M {S(shift(start, 29))} * Background saving terminated with success",
            f"1:M {S(shift(start, 42))} * Synchronization with replica {ip2}:6379 succeeded",
            f"1:M {S(end)} # Connection with replica {ip2}:6379 lost.",
        ]
    c.log("sessions", p0, "redis", "\n".join(master_lines))
    c.log(
        "sessions",
        p1,
        "redis",
        f"1:S {S('-3h12m')} * Background saving started by pid 9141\n9141:C {S('-3h11m33s')} * DB saved on disk\n1:S {S('-3h11m33s')} * Background saving terminated with success",
    )
    mem = [
        ({"container": "redis", "namespace": "sessions", "pod": n}, v)
        for n, v in (
            ("sessions-redis-0", [1.93e9] * 31),
            ("sessions-redis-1", [1.91e9] * 31),
            (
                "sessions-redis-2",
                [
                    0.0,
                    2.6e8,
                    9.1e8,
                    2.14e9,
                    0,
                    0,
                    0,
                    0,
                    0,
                    2.7e8,
                    9.3e8,
                    2.14e9,
                    0,
                    0,
                    0,
                    0,
                    0,
                    2.5e8,
                    9.0e8,
                    2.13e9,
                    0,
                    0,
                    0,
                    0,
                    0,
                    2.6e8,
                    9.2e8,
                    2.14e9,
                    0,
                    0,
                    0,
                ],
            ),
        )
    ]
    c.metric(
        "memory_working_set",
        'max by (namespace, pod, container) (container_memory_working_set_bytes{namespace="sessions", container="redis"})',
        mem,
    )
    c.kps_alert(
        "KubeStatefulSetReplicasMismatch",
        {"namespace": "sessions", "statefulset": "sessions-redis"},
        starts_ms=96,
    )
    c.expect(
        description="""StatefulSet sessions-redis has 2 of 3 replicas ready because sessions-redis-2 is OOMKilled
        (exit 137) every time it loads the master's ~1.8 GB RDB during a full resync. The pod was recreated on a
        fresh node 20 minutes ago, so it has no cached replication state and must load the whole dataset into a
        container limited to 2Gi; the master and the other replica already run at ~1.9 GB. The dataset has
        outgrown limits.memory of the StatefulSet (there is no maxmemory either); raising the limit (or capping
        the dataset) fixes it.""",
        category="OOMKilled",
        culprit_ref=culprit("StatefulSet", "sessions", "sessions-redis"),
        mentions=["sessions-redis", "OOMKilled"],
        multi_hop=False,
        distractors=[
            "the node hosting sessions-redis-2 was created 22 minutes ago, which looks like a node problem",
            "the master logs 'Connection with replica lost', which looks like a network problem",
            "node-problem-detector conditions on every node (all False)",
            "ConfigMap sessions-redis shares the StatefulSet's name",
        ],
    )
    return c


@case
def frontend_errors_recommendations_oom() -> Case:
    c = Case(
        "frontend-errors-recommendations-oom",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-13T19:26:05Z",
        captured_after="4m",
    )
    nodes = eks_nodes(
        c,
        ["10.0.7.18", "10.0.39.240", "10.0.66.131", "10.0.88.52"],
        itype="m6i.2xlarge",
        created="-6d",
    )
    namespace(c, "shop", sas=("frontend", "recommendations"), labels={"team": "shop"})
    P = stamper(c, "python")
    recs = container(
        "recommendations",
        "ghcr.io/acme/recommendations:2.4.0",
        ports=[("grpc", 8080), ("metrics", 9090)],
        env_vars=[
            env("MODEL_URI", "s3://acme-ml-models/recs/latest"),
            env("GRPC_PORT", "8080"),
            env("AWS_REGION", "eu-west-1"),
        ],
        res=resources("500m", "1536Mi", None, "2Gi"),
        readiness={
            "failureThreshold": 3,
            "grpc": {"port": 8080, "service": ""},
            "periodSeconds": 10,
            "successThreshold": 1,
            "timeoutSeconds": 1,
        },
        liveness=tcp_probe("grpc", initial=120, period=20),
    )
    tpl = template(
        app_labels("recommendations", "2.4.0"), [recs], service_account="recommendations"
    )
    d = c.deployment(
        "shop",
        "recommendations",
        tpl,
        replicas=2,
        revision=18,
        created="-140d",
        labels=helm_labels("recommendations", "2.4.0"),
        annotations=helm_annotations("recommendations", "shop"),
    )
    rs = c.replicaset(d, revision=18, replicas=2, created="-5d")
    r1 = c.pod(
        rs, nodes[1], "-5d", [crashing("recommendations", 5, 137, "OOMKilled", "-2m50s", "-2m6s")]
    )
    r2 = c.pod(
        rs, nodes[2], "-5d", [crashing("recommendations", 4, 137, "OOMKilled", "-1m50s", "-1m7s")]
    )
    for p, r, ls in ((r1, 5, "-2m50s"), (r2, 4, "-1m50s")):
        c.container_events(
            p,
            "recommendations",
            first="-16m20s",
            last=ls,
            starts=r,
            backoffs=r * 3,
            backoff_last="-31s",
        )
        c.event(
            p,
            "Unhealthy",
            'Readiness probe failed: service unhealthy (responded with "NOT_SERVING")',
            first="-16m20s",
            last=shift(ls, 30),
            count=r * 4,
            warning=True,
            host=p["spec"]["nodeName"],
            field_path="spec.containers{recommendations}",
        )
        c.node_event(
            c.find("Node", None, p["spec"]["nodeName"]),
            "SystemOOM",
            f"System OOM encountered, victim process: python, pid: {31877 + r * 311}",
            first="-16m20s",
            last="-2m6s" if r == 5 else "-1m7s",
            count=r,
            warning=True,
        )
    for p, start, end in ((r1, "-2m50s", "-2m6s"), (r2, "-1m50s", "-1m7s")):
        c.log(
            "shop",
            p,
            "recommendations",
            f"""\
            {P(start)} INFO [recs.server] starting recommendations 2.4.0 (grpc :8080, metrics :9090)
            {P(shift(start, 0))} INFO [recs.model] resolving s3://acme-ml-models/recs/latest -> s3://acme-ml-models/recs/2026-11-13T18-30-00Z/model.safetensors
            {P(shift(start, 1))} INFO [recs.model] downloading model.safetensors (2.61 GiB)
            {P(shift(end, -11))} INFO [recs.model] download complete in 31.8s
            {P(shift(end, -11))} INFO [recs.model] loading item embeddings into memory (items=48211934, dim=128, dtype=float32)
            """,
            previous=True,
        )
    c.log(
        "shop",
        r1,
        "recommendations",
        f"""\
        {P("-5d")} INFO [recs.server] starting recommendations 2.4.0 (grpc :8080, metrics :9090)
        {P("-5d")} INFO [recs.model] resolving s3://acme-ml-models/recs/latest -> s3://acme-ml-models/recs/2026-11-06T18-30-00Z/model.safetensors
        {P("-4d23h59m40s")} INFO [recs.model] loaded 1.38 GiB model in 19.2s
        {P("-4d23h59m40s")} INFO [recs.server] serving
        {P("-17m30s")} INFO [recs.model] new model version available: 2026-11-13T18-30-00Z, hot-reloading
        {P("-17m8s")} INFO [recs.model] downloading model.safetensors (2.61 GiB)
        """,
    )
    rsvc = c.service(
        "shop",
        "recommendations",
        selector_labels("recommendations"),
        [("grpc", 8080, "grpc"), ("metrics", 9090, "metrics")],
        created="-140d",
        labels=helm_labels("recommendations", "2.4.0"),
    )
    fe = web_container(
        "frontend",
        "ghcr.io/acme/frontend:7.9.3",
        port=3000,
        env_vars=[
            env("RECOMMENDATIONS_ADDR", "recommendations.shop.svc.cluster.local:8080"),
            env("NODE_ENV", "production"),
        ],
        res=resources("300m", "384Mi", None, "768Mi"),
    )
    fd, _, fpods = healthy(
        c,
        "shop",
        "frontend",
        template(app_labels("frontend", "7.9.3"), [fe], service_account="frontend"),
        nodes,
        replicas=4,
        revision=88,
        created="-600d",
        rs_created="-3d",
    )
    c.hpa(
        fd,
        min_replicas=4,
        max_replicas=12,
        current=4,
        desired=4,
        cpu_target=70,
        cpu_current=38,
        cpu_value="114m",
        last_scale="-3d",
    )
    rollout_in_progress(
        c,
        "shop",
        "email",
        "ghcr.io/acme/email:1.9.0",
        "ghcr.io/acme/email:1.9.1",
        nodes,
        started="-40s",
    )
    ip = rsvc["spec"]["clusterIP"]
    lines = []
    for i in range(12):
        t = c.dt("-5m") + timedelta(seconds=i * 17, milliseconds=211 * i)
        ms = int(t.timestamp() * 1000)
        lines.append(
            json.dumps(
                {
                    "level": 50,
                    "time": ms,
                    "pid": 1,
                    "hostname": fpods[i % 2]["metadata"]["name"],
                    "req": {
                        "id": f"req-{4711 + i}",
                        "method": "GET",
                        "url": f"/product/{88210 + i * 13}",
                    },
                    "err": {
                        "type": "Error",
                        "message": f"14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED {ip}:8080 ({(t - timedelta(seconds=2)).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z)",
                        "code": 14,
                        "details": f"No connection established. Last error: connect ECONNREFUSED {ip}:8080",
                    },
                    "msg": "recommendations.GetRecommendations failed",
                },
                separators=(",", ":"),
            )
        )
        lines.append(
            json.dumps(
                {
                    "level": 30,
                    "time": ms + 3,
                    "pid": 1,
                    "hostname": fpods[i % 2]["metadata"]["name"],
                    "req": {
                        "id": f"req-{4711 + i}",
                        "method": "GET",
                        "url": f"/product/{88210 + i * 13}",
                    },
                    "res": {"statusCode": 500},
                    "responseTime": 4 + i % 3,
                    "msg": "request completed",
                },
                separators=(",", ":"),
            )
        )
    c.log("shop", fpods[0], "frontend", "\n".join(lines))
    http_error_alert(
        c,
        "shop",
        "frontend",
        ratio="18.2%",
        team="shop",
        runbook="https://runbooks.acme.io/shop/frontend#high-error-rate",
    )
    c.expect(
        description="""frontend returns 500s because every product page calls recommendations over gRPC and
        gets ECONNREFUSED: the recommendations Service has no ready endpoints. Both recommendations pods are
        OOMKilled (exit 137) while loading the model: the ML pipeline promoted a 2.61 GiB model to
        s3://.../recs/latest 17 minutes ago, the pods hot-reloaded it and now die on every start, since the
        embeddings alone exceed the 2Gi memory limit. Fix: raise the limit of Deployment recommendations (or
        roll the model pointer back).""",
        category="OOMKilled",
        culprit_ref=culprit("Deployment", "shop", "recommendations"),
        mentions=["recommendations", "OOMKilled"],
        multi_hop=True,
        distractors=[
            "Deployment email is mid-rollout (observedGeneration < generation), with a new pod not yet ready",
            "HPA frontend is at 4 of 12 replicas",
            "frontend pods are Running and Ready",
        ],
    )
    return c


@case
def crashloop_go_nil_pointer() -> Case:
    c = Case(
        "crashloop-go-nil-pointer",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-18T16:41:52Z",
        captured_after="3m",
    )
    nodes = eks_nodes(c, ["10.0.14.203", "10.0.47.66", "10.0.79.145"], created="-11d")
    namespace(c, "orders", sas=("orders-api",), labels={"team": "orders"})
    J = stamper(c, "iso_s")
    c.secret(
        "orders",
        "orders-db",
        {"password": "Zx8rT1qLw0pY6vNe", "username": "orders_api"},
        created="-500d",
    )

    def api_container(version: str) -> Obj:
        return web_container(
            "orders-api",
            f"ghcr.io/acme/orders-api:{version}",
            env_vars=[
                env("DB_HOST", "orders-db.orders.svc.cluster.local"),
                env("DB_USER", "orders_api"),
                env_secret("DB_PASSWORD", "orders-db", "password"),
                env("PROMOTIONS_ENABLED", "true"),
            ],
            res=resources("250m", "256Mi", None, "512Mi"),
        )

    tpl = template(
        app_labels("orders-api", "3.2.0"), [api_container("3.2.0")], service_account="orders-api"
    )
    old_tpl = template(
        app_labels("orders-api", "3.1.4"), [api_container("3.1.4")], service_account="orders-api"
    )
    d = c.deployment(
        "orders",
        "orders-api",
        tpl,
        replicas=3,
        revision=42,
        created="-500d",
        labels=helm_labels("orders-api", "3.2.0"),
        annotations=helm_annotations("orders-api", "orders"),
    )
    old = c.replicaset(d, old_tpl, revision=41, replicas=3, created="-6d")
    new = c.replicaset(d, revision=42, replicas=1, created="-19m")
    for i in range(3):
        c.pod(
            old, nodes[i], shift("-6d", i * 35), [running("orders-api", shift("-6d", i * 35 + 4))]
        )
    bad = c.pod(new, nodes[1], "-19m", [crashing("orders-api", 7, 2, "Error", "-1m40s", "-1m39s")])
    c.scheduled(bad, nodes[1], "-19m")
    c.event(
        bad,
        "Pulling",
        'Pulling image "ghcr.io/acme/orders-api:3.2.0"',
        first="-18m58s",
        host=nodes[1]["metadata"]["name"],
        field_path="spec.containers{orders-api}",
    )
    c.event(
        bad,
        "Pulled",
        'Successfully pulled image "ghcr.io/acme/orders-api:3.2.0" in 1.606s (1.606s including waiting). Image size: 18233876 bytes.',
        first="-18m56s",
        host=nodes[1]["metadata"]["name"],
        field_path="spec.containers{orders-api}",
    )
    c.container_events(
        bad,
        "orders-api",
        first="-18m56s",
        last="-1m40s",
        starts=8,
        backoffs=27,
        backoff_last="-12s",
    )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {new['metadata']['name']} from 0 to 1",
        first="-19m",
        component="deployment-controller",
    )
    rs_created_pods(c, new, [bad])
    deployment_conditions(
        d,
        Progressing=(
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
            "-9m",
            "-9m",
        ),
    )
    c.service(
        "orders",
        "orders-api",
        selector_labels("orders-api"),
        [("http", 80, "http"), ("metrics", 9090, "metrics")],
        created="-500d",
        labels=helm_labels("orders-api", "3.2.0"),
        slices=True,
    )
    h = c.hpa(
        d,
        min_replicas=3,
        max_replicas=10,
        current=3,
        desired=3,
        cpu_target=70,
        cpu_current=34,
        cpu_value="86m",
        created="-400d",
        last_scale="-6d",
    )
    c.event(
        h,
        "FailedGetResourceMetric",
        "failed to get cpu utilization: did not receive metrics for targeted pods (pods might be unready)",
        first="-18m",
        last="-44s",
        count=72,
        warning=True,
        component="horizontal-pod-autoscaler",
    )
    c.event(
        h,
        "FailedComputeMetricsReplicas",
        "invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: failed to get cpu utilization: did not receive metrics for targeted pods (pods might be unready)",
        first="-18m",
        last="-44s",
        count=72,
        warning=True,
        component="horizontal-pod-autoscaler",
    )
    rollout_in_progress(
        c,
        "orders",
        "orders-worker",
        "ghcr.io/acme/orders-worker:3.1.4",
        "ghcr.io/acme/orders-worker:3.2.0",
        nodes,
        started="-25s",
        replicas=2,
        revision=40,
    )
    c.log(
        "orders",
        bad,
        "orders-api",
        f"""\
        {{"level":"info","time":"{J("-1m40s")}","message":"orders-api starting","version":"3.2.0","commit":"9c1f2e7"}}
        {{"level":"info","time":"{J("-1m40s")}","message":"connected to postgres","host":"orders-db.orders.svc.cluster.local","pool_size":20}}
        {{"level":"info","time":"{J("-1m39s")}","message":"loading promotions","count":214}}
        panic: runtime error: invalid memory address or nil pointer dereference
        [signal SIGSEGV: segmentation violation code=0x1 addr=0x30 pc=0x1a4f2c3]

        goroutine 1 [running]:
        github.com/acme/orders-api/internal/promotions.(*Rule).Applies(0x0, 0xc000a1e2d0)
        \t/src/internal/promotions/rule.go:58 +0x23
        github.com/acme/orders-api/internal/promotions.(*Catalog).Load(0xc0001b8000, {{0x2a1c3e0, 0xc00012e000}})
        \t/src/internal/promotions/catalog.go:112 +0x2f4
        main.run({{0x2a1c3e0, 0xc00012e000}})
        \t/src/cmd/orders-api/main.go:87 +0x6a5
        main.main()
        \t/src/cmd/orders-api/main.go:41 +0x65
        """,
        previous=True,
    )
    c.kps_alert(
        "KubePodCrashLooping",
        ksm_pod_labels(bad, "orders-api", reason="CrashLoopBackOff"),
        starts_ms=660,
    )
    c.expect(
        description="""The first pod of the orders-api 3.2.0 rollout crash-loops: the process panics seconds
        after start with "invalid memory address or nil pointer dereference" in promotions.(*Rule).Applies while
        loading the promotions catalog, exits with code 2, and has restarted 7 times. The three 3.1.4 pods
        still serve, so the rollout is stuck rather than down. This is an application bug in the new image of
        Deployment orders-api; roll back to 3.1.4 and fix the nil rule handling.""",
        category="CrashLoop",
        culprit_ref=culprit("Deployment", "orders", "orders-api"),
        mentions=["orders-api", "nil pointer"],
        multi_hop=False,
        distractors=[
            "HPA orders-api (same name, different kind) has Warning events FailedGetResourceMetric",
            "Deployment orders-worker is mid-rollout (observedGeneration < generation)",
            "Deployment orders-api reports Progressing=False ProgressDeadlineExceeded (a symptom)",
        ],
    )
    return c


@case
def crashloop_node_typeerror_rollout() -> Case:
    c = Case(
        "crashloop-node-typeerror-rollout",
        cluster="dc1-prod",
        platform=ONPREM,
        alert_at="2026-11-10T11:19:27Z",
        captured_after="4m",
    )
    nodes = onprem_nodes(c, 4)
    namespace(c, "web", sas=("storefront-bff",), labels={"team": "web"})
    E = stamper(c, "epoch_ms")
    c.configmap(
        "web",
        "storefront-bff-config",
        {
            "config.json": json.dumps(
                {
                    "catalogBaseUrl": "http://catalog.web.svc.cluster.local:8080",
                    "cartBaseUrl": "http://cart.shop.svc.cluster.local:8080",
                    "defaultLocale": "de-DE",
                    "cacheTtlSeconds": 60,
                },
                indent=2,
            )
        },
        created="-320d",
        labels=helm_labels("storefront-bff", "5.4.0"),
    )

    def bff(version: str) -> Obj:
        return web_container(
            "storefront-bff",
            f"registry.dc1.acme.internal/web/storefront-bff:{version}",
            port=3000,
            env_vars=[env("NODE_ENV", "production"), env("CONFIG_PATH", "/etc/bff/config.json")],
            res=resources("200m", "256Mi", None, "512Mi"),
            mounts=[mount("config", "/etc/bff", read_only=True)],
        )

    tpl = template(
        app_labels("storefront-bff", "5.4.0"),
        [bff("5.4.0")],
        service_account="storefront-bff",
        volumes=[vol_cm("config", "storefront-bff-config")],
    )
    old_tpl = template(
        app_labels("storefront-bff", "5.3.2"),
        [bff("5.3.2")],
        service_account="storefront-bff",
        volumes=[vol_cm("config", "storefront-bff-config")],
    )
    d = c.deployment(
        "web",
        "storefront-bff",
        tpl,
        replicas=4,
        revision=61,
        created="-320d",
        labels=helm_labels("storefront-bff", "5.4.0"),
        annotations=helm_annotations("storefront-bff", "web"),
    )
    old = c.replicaset(d, old_tpl, revision=60, replicas=3, created="-20h")
    new = c.replicaset(d, revision=61, replicas=2, created="-20m")
    for i in range(3):
        c.pod(
            old,
            nodes[i],
            shift("-20h", i * 25),
            [running("storefront-bff", shift("-20h", i * 25 + 5))],
        )
    bad = []
    for i, (r, ls) in enumerate(((7, "-3m12s"), (7, "-1m58s"))):
        p = c.pod(
            new,
            nodes[3 - i],
            shift("-20m", i),
            [crashing("storefront-bff", r, 1, "Error", ls, shift(ls, 2))],
        )
        bad.append(p)
        c.scheduled(p, nodes[3 - i], shift("-20m", i))
        crash_events(c, p, "storefront-bff", first=shift("-20m", 3 + i), restarts=r, last_start=ls)
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {new['metadata']['name']} from 0 to 1",
        first="-20m",
        component="deployment-controller",
    )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled down replica set {old['metadata']['name']} from 4 to 3",
        first="-20m",
        component="deployment-controller",
    )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {new['metadata']['name']} from 1 to 2",
        first="-20m",
        component="deployment-controller",
    )
    rs_created_pods(c, new, bad)
    deployment_conditions(
        d,
        Progressing=(
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
            "-10m",
            "-10m",
        ),
    )
    c.service(
        "web",
        "storefront-bff",
        selector_labels("storefront-bff"),
        [("http", 80, "http"), ("metrics", 9090, "metrics")],
        created="-320d",
        labels=helm_labels("storefront-bff", "5.4.0"),
    )
    # yesterday's deploy: a readiness blip and a scheduling hiccup, both long resolved
    gone = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "storefront-bff-5b9d7c6f48-2xq9w",
            "namespace": "web",
            "uid": c.uid("gone-pod"),
            "resourceVersion": "88123401",
        },
    }
    c.event(
        gone,
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 503",
        first="-20h2m",
        last="-20h1m",
        count=4,
        warning=True,
        host="dc1-k8s-w02",
        field_path="spec.containers{storefront-bff}",
    )
    gone2 = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "storefront-bff-5b9d7c6f48-k7tdm",
            "namespace": "web",
            "uid": c.uid("gone-pod-2"),
            "resourceVersion": "88123977",
        },
    }
    c.scheduler_event(
        gone2,
        "FailedScheduling",
        "0/7 nodes are available: 3 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 4 Insufficient cpu. preemption: 0/7 nodes are available: 3 Preemption is not helpful for scheduling, 4 No preemption victims found for incoming pod.",
        first="-20h5m",
        last="-20h3m",
        count=3,
    )
    for p, ls in zip(bad, ("-3m12s", "-1m58s"), strict=True):
        t0 = E(ls)
        name = p["metadata"]["name"]
        c.log(
            "web",
            p,
            "storefront-bff",
            f"""\

            > storefront-bff@5.4.0 start
            > node dist/server.js

            {{"level":30,"time":{t0},"pid":19,"hostname":"{name}","msg":"loading config from /etc/bff/config.json"}}
            {{"level":30,"time":{int(t0) + 41},"pid":19,"hostname":"{name}","msg":"warming navigation cache"}}
            node:internal/process/promises:394
                triggerUncaughtException(err, true /* fromPromise */);
                ^

            TypeError: fetchImpl is not a function
                at CatalogClient.categories (/app/dist/clients/catalog.js:18:23)
                at warmNavigationCache (/app/dist/cache/navigation.js:12:40)
                at bootstrap (/app/dist/server.js:57:9)

            Node.js v22.14.0
            npm notice
            npm notice New major version of npm available! 10.9.2 -> 11.6.2
            npm notice To update run: npm install -g npm@11.6.2
            npm notice
            """,
            previous=True,
        )
    c.kps_alert(
        "KubeDeploymentReplicasMismatch",
        {"deployment": "storefront-bff", "namespace": "web"},
        starts_ms=35,
    )
    c.expect(
        description="""Deployment storefront-bff has 3 of 4 replicas available because the rollout to 5.4.0 is
        stuck: both new pods crash on start (exit code 1) with an unhandled rejection "TypeError: fetchImpl is
        not a function" in CatalogClient.categories, so the controller never scales the 5.3.2 ReplicaSet
        further down. The config and the cluster are fine; the new image is broken (a fetch library upgrade).
        Roll back storefront-bff to 5.3.2 and fix the build.""",
        category="CrashLoop",
        culprit_ref=culprit("Deployment", "web", "storefront-bff"),
        mentions=["storefront-bff", "TypeError"],
        multi_hop=False,
        distractors=[
            "Progressing=False ProgressDeadlineExceeded on the Deployment (a symptom of the crashing pods)",
            "a Readiness probe failure and a FailedScheduling event from yesterday's deploy (resolved, pods gone)",
            "npm notice lines at the end of the crash log",
        ],
    )
    return c


@case
def daemonset_fluent_bit_segfault() -> Case:
    c = Case(
        "daemonset-fluent-bit-segfault",
        cluster="prod-us-1",
        platform=GKE_PROD,
        alert_at="2026-11-12T08:03:44Z",
        captured_after="4m",
    )
    nodes = gke_nodes(
        c,
        ["10.128.0.12", "10.128.0.19", "10.128.0.27", "10.128.0.33"],
        itype="e2-standard-8",
        created="-30d",
    )
    namespace(c, "logging", sas=("fluent-bit",), labels={"team": "platform"})
    F = stamper(c, "fluentbit")
    conf = (
        "[SERVICE]\n    Daemon Off\n    Flush 1\n    Log_Level info\n    Parsers_File /fluent-bit/etc/parsers.conf\n    HTTP_Server On\n    HTTP_Listen 0.0.0.0\n    HTTP_Port 2020\n    Health_Check On\n    storage.path /var/fluent-bit/state/flb-storage/\n\n"
        "[INPUT]\n    Name tail\n    Path /var/log/containers/*.log\n    multiline.parser docker, cri, java_multiline\n    Tag kube.*\n    Mem_Buf_Limit 50MB\n    Skip_Long_Lines On\n    storage.type filesystem\n\n"
        "[FILTER]\n    Name kubernetes\n    Match kube.*\n    Merge_Log On\n    Keep_Log Off\n    K8S-Logging.Parser On\n    K8S-Logging.Exclude On\n\n"
        "[OUTPUT]\n    Name loki\n    Match kube.*\n    Host loki-gateway.logging.svc.cluster.local\n    Port 80\n    Labels job=fluent-bit, cluster=prod-us-1\n    Auto_Kubernetes_Labels On\n"
    )
    c.configmap(
        "logging",
        "fluent-bit",
        {
            "fluent-bit.conf": conf,
            "custom_parsers.conf": '[MULTILINE_PARSER]\n    name java_multiline\n    type regex\n    flush_timeout 1000\n    rule "start_state" "/^\\d{4}-\\d{2}-\\d{2}T/" "cont"\n    rule "cont" "/^\\s+(at|\\.{3}|Caused by)/" "cont"\n',
        },
        created="-400d",
        labels=helm_labels("fluent-bit", "3.2.4", chart="fluent-bit-0.48.1"),
    )

    def fb(version: str) -> Obj:
        return container(
            "fluent-bit",
            f"cr.fluentbit.io/fluent/fluent-bit:{version}",
            args=["--workdir=/fluent-bit/etc", "--config=/fluent-bit/etc/conf/fluent-bit.conf"],
            ports=[("http", 2020)],
            res=resources("100m", "128Mi", None, "256Mi"),
            liveness=http_probe("/", "http"),
            readiness=http_probe("/api/v1/health", "http"),
            mounts=[
                mount("config", "/fluent-bit/etc/conf"),
                mount("varlog", "/var/log"),
                mount("state", "/var/fluent-bit/state"),
                mount("etcmachineid", "/etc/machine-id", read_only=True),
            ],
        )

    vols = [
        vol_cm("config", "fluent-bit"),
        {"hostPath": {"path": "/var/log", "type": ""}, "name": "varlog"},
        {"hostPath": {"path": "/var/fluent-bit/state", "type": ""}, "name": "state"},
        {"hostPath": {"path": "/etc/machine-id", "type": "File"}, "name": "etcmachineid"},
    ]
    tpl = template(
        app_labels("fluent-bit", "3.2.4"),
        [fb("3.2.4")],
        service_account="fluent-bit",
        volumes=vols,
        priority_class="system-node-critical",
        annotations={
            "checksum/config": "0d5e1c9f3b7a2e4d6c8b0a1f3e5d7c9b2a4e6f8d0c1b3a5e7f9d2c4b6a8e0f1d"
        },
    )
    old_tpl = template(
        app_labels("fluent-bit", "3.1.9"),
        [fb("3.1.9")],
        service_account="fluent-bit",
        volumes=vols,
        priority_class="system-node-critical",
        annotations={
            "checksum/config": "0d5e1c9f3b7a2e4d6c8b0a1f3e5d7c9b2a4e6f8d0c1b3a5e7f9d2c4b6a8e0f1d"
        },
    )
    ds = c.daemonset(
        "logging",
        "fluent-bit",
        tpl,
        generation=7,
        created="-400d",
        labels=helm_labels("fluent-bit", "3.2.4", chart="fluent-bit-0.48.1"),
        annotations=helm_annotations("fluent-bit", "logging"),
    )
    new_rev, old_rev = k8s_hash("fb-7"), k8s_hash("fb-6")
    for i, n in enumerate(nodes[1:], start=1):
        c.pod(
            ds,
            n,
            shift("-16d", i * 40),
            [running("fluent-bit", shift("-16d", i * 40 + 3))],
            tpl_override=old_tpl,
            labels_override={"pod-template-generation": "6", "controller-revision-hash": old_rev},
        )
    bad = c.pod(
        ds,
        nodes[0],
        "-21m",
        [crashing("fluent-bit", 7, 139, "Error", "-2m31s", "-2m29s")],
        labels_override={"pod-template-generation": "7", "controller-revision-hash": new_rev},
    )
    c.event(
        ds,
        "SuccessfulDelete",
        "Deleted pod: fluent-bit-q8w2z",
        first="-21m",
        component="daemonset-controller",
    )
    c.event(
        ds,
        "SuccessfulCreate",
        f"Created pod: {bad['metadata']['name']}",
        first="-21m",
        component="daemonset-controller",
    )
    c.scheduled(bad, nodes[0], "-21m")
    c.event(
        bad,
        "Pulling",
        'Pulling image "cr.fluentbit.io/fluent/fluent-bit:3.2.4"',
        first="-20m58s",
        host=nodes[0]["metadata"]["name"],
        field_path="spec.containers{fluent-bit}",
    )
    c.event(
        bad,
        "Pulled",
        'Successfully pulled image "cr.fluentbit.io/fluent/fluent-bit:3.2.4" in 3.412s (3.412s including waiting). Image size: 34211832 bytes.',
        first="-20m55s",
        host=nodes[0]["metadata"]["name"],
        field_path="spec.containers{fluent-bit}",
    )
    c.container_events(
        bad,
        "fluent-bit",
        first="-20m55s",
        last="-2m31s",
        starts=8,
        backoffs=27,
        backoff_last="-20s",
    )
    ds["status"]["_override"] = {}
    c.service(
        "logging",
        "fluent-bit",
        selector_labels("fluent-bit"),
        [("http", 2020, "http")],
        created="-400d",
        labels=helm_labels("fluent-bit", "3.2.4", chart="fluent-bit-0.48.1"),
    )
    t = "-2m31s"
    c.log(
        "logging",
        bad,
        "fluent-bit",
        f"""\
        Fluent Bit v3.2.4
        * Copyright (C) 2015-2024 The Fluent Bit Authors
        * Fluent Bit is a CNCF sub-project under the umbrella of Fluentd
        * https://fluentbit.io

        [{F(t)}] [ info] [fluent bit] version=3.2.4, commit=6a9f0c3e21, pid=1
        [{F(t)}] [ info] [storage] ver=1.5.2, type=memory+filesystem, sync=normal, checksum=off, max_chunks_up=128
        [{F(t)}] [ info] [storage] backlog input plugin: storage_backlog.1
        [{F(t)}] [ info] [simd    ] SSE2
        [{F(t)}] [ info] [cmetrics] version=0.9.9
        [{F(t)}] [ info] [ctraces ] version=0.5.7
        [{F(t)}] [ info] [input:tail:tail.0] initializing
        [{F(t)}] [ info] [input:tail:tail.0] storage_strategy='filesystem' (memory + filesystem)
        [{F(t)}] [ info] [input:tail:tail.0] multiline core started
        [{F(t)}] [ info] [input:storage_backlog:storage_backlog.1] initializing
        [{F(t)}] [ info] [input:storage_backlog:storage_backlog.1] queue memory limit: 47.7M
        [{F(t)}] [ info] [filter:kubernetes:kubernetes.0] https=1 host=kubernetes.default.svc port=443
        [{F(t)}] [ info] [filter:kubernetes:kubernetes.0]  token updated
        [{F(t)}] [ info] [filter:kubernetes:kubernetes.0] local POD info OK
        [{F(t)}] [ info] [filter:kubernetes:kubernetes.0] testing connectivity with API server...
        [{F(t)}] [ info] [filter:kubernetes:kubernetes.0] connectivity OK
        [{F(t)}] [ info] [output:loki:loki.0] configured, hostname=loki-gateway.logging.svc.cluster.local:80
        [{F(t)}] [ info] [http_server] listen iface=0.0.0.0 tcp_port=2020
        [{F(t)}] [ info] [sp] stream processor started
        [{F(shift(t, 1))}] [ info] [input:tail:tail.0] inotify_fs_add(): inode=1054722 watch_fd=1 name=/var/log/containers/checkout-6d9f7c8b5-4xkqp_shop_checkout-3be0a1f2.log
        [{F(shift(t, 1))}] [ info] [input:tail:tail.0] inotify_fs_add(): inode=1054871 watch_fd=2 name=/var/log/containers/ledger-7b4c9d8f6-q2lzx_payments_ledger-91c2d0e4.log
        [{F(shift(t, 2))}] [engine] caught signal (SIGSEGV)
        #0  0x5596f1d3a8e4      in  flb_ml_stream_id_destroy_all() at src/multiline/flb_ml_stream.c:298
        #1  0x5596f1d3b0c1      in  flb_ml_flush_stream_group() at src/multiline/flb_ml.c:187
        #2  0x5596f1d3c7aa      in  flb_ml_append_text() at src/multiline/flb_ml.c:545
        #3  0x5596f1ca2d55      in  process_content() at plugins/in_tail/tail_file.c:496
        #4  0x5596f1ca41fe      in  flb_tail_file_chunk() at plugins/in_tail/tail_file.c:1445
        #5  0x5596f1c9c5d3      in  in_tail_collect_static() at plugins/in_tail/tail.c:154
        #6  0x5596f1b8f2e0      in  flb_input_collector_fd() at src/flb_input.c:1970
        #7  0x5596f1bac91b      in  flb_engine_handle_event() at src/flb_engine.c:575
        #8  0x5596f1bac91b      in  flb_engine_start() at src/flb_engine.c:941
        #9  0x5596f1b7a1c3      in  flb_lib_worker() at src/flb_lib.c:674
        #10 0x7f3c2a6d8ea6      in  ???() at ???:0
        #11 0x7f3c2a5f8a2e      in  ???() at ???:0
        #12 0xffffffffffffffff  in  ???() at ???:0
        """,
        previous=True,
    )
    c.kps_alert(
        "KubeDaemonSetRolloutStuck",
        {"daemonset": "fluent-bit", "namespace": "logging"},
        starts_ms=503,
    )
    c.expect(
        description="""The fluent-bit DaemonSet rollout from 3.1.9 to 3.2.4 is stuck at 1 of 4 nodes: the one
        updated pod crashes (exit code 139) with "[engine] caught signal (SIGSEGV)" in the multiline parser
        (flb_ml_stream_id_destroy_all) a second after it starts tailing container logs, and maxUnavailable=1
        keeps the controller from replacing the other three 3.1.9 pods. The new fluent-bit image segfaults
        with this multiline configuration; roll the DaemonSet back to 3.1.9.""",
        category="CrashLoop",
        culprit_ref=culprit("DaemonSet", "logging", "fluent-bit"),
        mentions=["fluent-bit"],
        multi_hop=False,
        distractors=[
            "three fluent-bit pods of the previous generation are Running and Ready",
            "GKE node-problem-detector conditions on every node (all False)",
        ],
    )
    return c


def image_pull_failing(
    c: Case, pod: Obj, ctr: str, *, error: str, first: str, last: str, pulls: int, backoffs: int
) -> None:
    image = next(x["image"] for x in pod["spec"]["containers"] if x["name"] == ctr)
    kw: Obj = {"host": pod["spec"]["nodeName"], "field_path": f"spec.containers{{{ctr}}}"}
    c.event(pod, "Pulling", f'Pulling image "{image}"', first=first, last=last, count=pulls, **kw)
    c.event(
        pod,
        "Failed",
        f'Failed to pull image "{image}": {error}',
        first=shift(first, 1),
        last=shift(last, 1),
        count=pulls,
        warning=True,
        **kw,
    )
    c.event(
        pod,
        "Failed",
        "Error: ErrImagePull",
        first=shift(first, 1),
        last=shift(last, 1),
        count=pulls,
        warning=True,
        **kw,
    )
    c.event(
        pod,
        "BackOff",
        f'Back-off pulling image "{image}"',
        first=shift(first, 2),
        last="-14s",
        count=backoffs,
        **kw,
    )
    c.event(
        pod,
        "Failed",
        "Error: ImagePullBackOff",
        first=shift(first, 2),
        last="-14s",
        count=backoffs,
        warning=True,
        **kw,
    )


def pull_backoff(ctr: str, image: str, error: str) -> CState:
    return waiting(
        ctr, "ImagePullBackOff", f'Back-off pulling image "{image}": ErrImagePull: {error}'
    )


@case
def configerror_bad_flag_exit_2() -> Case:
    c = Case(
        "configerror-bad-flag-exit-2",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-05T13:22:10Z",
        captured_after="3m",
    )
    nodes = eks_nodes(c, ["10.0.3.77", "10.0.52.190", "10.0.70.14"], created="-4d")
    namespace(c, "platform", sas=("event-router",), labels={"team": "platform"})
    c.configmap(
        "platform",
        "event-router",
        {
            "config.yaml": "routes:\n  - match: {type: Warning}\n    sink: slack\n    channel: '#k8s-warnings'\n  - match: {reason: OOMKilling}\n    sink: pagerduty\nsinks:\n  slack:\n    webhookSecretRef: event-router-slack\n"
        },
        created="-250d",
        labels=helm_labels("event-router", "1.6.2"),
    )
    c.secret(
        "platform",
        "event-router-slack",
        {"webhook-url": "https://hooks.slack.com/services/T0ACME/B07QX2/9fLk2mQ8"},
        created="-250d",
    )

    def er(args: list[str]) -> Obj:
        return container(
            "event-router",
            "ghcr.io/acme/event-router:1.6.2",
            args=args,
            ports=[("http", 8080)],
            res=resources("50m", "64Mi", None, "128Mi"),
            readiness=http_probe("/readyz", "http"),
            liveness=http_probe("/healthz", "http", initial=5),
            mounts=[mount("config", "/etc/event-router", read_only=True)],
        )

    good = ["-config=/etc/event-router/config.yaml", "-log-level=info"]
    bad = ["-config=/etc/event-router/config.yaml", "-log-level=verbose"]
    vols = [vol_cm("config", "event-router")]
    tpl = template(
        app_labels("event-router", "1.6.2"), [er(bad)], service_account="event-router", volumes=vols
    )
    d = c.deployment(
        "platform",
        "event-router",
        tpl,
        replicas=1,
        revision=9,
        created="-250d",
        labels=helm_labels("event-router", "1.6.2"),
        annotations=helm_annotations("event-router", "platform"),
    )
    old = c.replicaset(
        d,
        template(
            app_labels("event-router", "1.6.2"),
            [er(good)],
            service_account="event-router",
            volumes=vols,
        ),
        revision=8,
        replicas=1,
        created="-3d",
    )
    new = c.replicaset(d, revision=9, replicas=1, created="-19m")
    c.pod(old, nodes[0], "-3d", [running("event-router", "-3d")])
    p = c.pod(new, nodes[2], "-19m", [crashing("event-router", 7, 2, "Error", "-2m2s", "-2m2s")])
    c.scheduled(p, nodes[2], "-19m")
    crash_events(c, p, "event-router", first="-18m58s", restarts=7, last_start="-2m2s")
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {new['metadata']['name']} from 0 to 1",
        first="-19m",
        component="deployment-controller",
    )
    rs_created_pods(c, new, [p])
    deployment_conditions(
        d,
        Progressing=(
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
            "-9m",
            "-9m",
        ),
    )
    c.service(
        "platform",
        "event-router",
        selector_labels("event-router"),
        [("http", 8080, "http")],
        created="-250d",
        labels=helm_labels("event-router", "1.6.2"),
    )
    c.log(
        "platform",
        p,
        "event-router",
        """\
        invalid value "verbose" for flag -log-level: unknown log level "verbose" (want debug, info, warn or error)
        Usage of /usr/local/bin/event-router:
          -config string
            \tpath to the routing configuration (default "/etc/event-router/config.yaml")
          -kubeconfig string
            \tpath to a kubeconfig; empty means in-cluster configuration
          -listen string
            \taddress for the metrics and health endpoints (default ":8080")
          -log-level value
            \tlog level: debug, info, warn or error (default info)
          -resync duration
            \tinformer resync period (default 10m0s)
        """,
        previous=True,
    )
    J = stamper(c, "iso")
    c.log(
        "platform",
        c.all("Pod", "platform")[0],
        "event-router",
        f"""\
        time={J("-3d")} level=INFO msg="starting event-router" version=1.6.2 routes=2
        time={J("-3d")} level=INFO msg="informer synced" resource=events
        time={J("-14m")} level=INFO msg="routed event" reason=BackOff object=platform/{p["metadata"]["name"]} sink=slack
        """,
    )
    c.kps_alert(
        "KubePodCrashLooping",
        ksm_pod_labels(p, "event-router", reason="CrashLoopBackOff"),
        starts_ms=731,
    )
    c.expect(
        description="""The new event-router pod exits with code 2 right after start because its own arguments
        are invalid: the Deployment was changed to pass -log-level=verbose and the Go flag parser rejects it
        ('invalid value "verbose" for flag -log-level', followed by the usage text). The previous ReplicaSet
        with -log-level=info keeps running, so only the rollout is broken. Fix the args of Deployment
        event-router (use debug).""",
        category="ConfigError",
        culprit_ref=culprit("Deployment", "platform", "event-router"),
        mentions=["event-router", "log-level"],
        multi_hop=False,
        distractors=[
            "exit code 2 is also what a Go panic returns, but there is no panic in the log",
            "the old event-router pod is Running and Ready",
            "ConfigMap event-router (same name) holds a valid routing config",
        ],
    )
    return c


@case
def secret_missing_key_after_rotation() -> Case:
    c = Case(
        "secret-missing-key-after-rotation",
        cluster="dc1-prod",
        platform=ONPREM,
        alert_at="2026-11-06T15:41:29Z",
        captured_after="4m",
    )
    nodes = onprem_nodes(c, 4)
    namespace(
        c,
        "payments",
        sas=("payments-api",),
        labels={"team": "payments", "pod-security.kubernetes.io/enforce": "baseline"},
    )
    c.secret(
        "payments",
        "payments-db",
        {
            "host": "pg-payments.dc1.acme.internal",
            "pass": "vK3p9!tR2wQz7LmN",
            "username": "payments_api",
        },
        created="-400d",
        labels={
            "reconcile.external-secrets.io/created-by": "b7d1f0e6a3c2945e8d7f1a0b3c6e9d2f",
            "reconcile.external-secrets.io/managed": "true",
        },
        annotations={"reconcile.external-secrets.io/data-hash": "f2c0d8b7e6a5948372615f4e3d2c1b0a"},
    )
    c.secret(
        "payments", "payments-api-stripe", {"api-key": "rk_live_51Hx0ACME4f9"}, created="-400d"
    )

    def api(version: str) -> Obj:
        return web_container(
            "payments-api",
            f"registry.dc1.acme.internal/payments/payments-api:{version}",
            env_vars=[
                env_secret("DB_HOST", "payments-db", "host"),
                env_secret("DB_USER", "payments-db", "username"),
                env_secret("DB_PASSWORD", "payments-db", "password"),
                env_secret("STRIPE_API_KEY", "payments-api-stripe", "api-key"),
            ],
            res=resources("250m", "256Mi", None, "512Mi"),
        )

    tpl = template(
        app_labels("payments-api", "2.8.1"), [api("2.8.1")], service_account="payments-api"
    )
    d = c.deployment(
        "payments",
        "payments-api",
        tpl,
        replicas=3,
        revision=35,
        created="-400d",
        labels=helm_labels("payments-api", "2.8.1"),
        annotations=helm_annotations("payments-api", "payments"),
    )
    old = c.replicaset(
        d,
        template(
            app_labels("payments-api", "2.8.0"), [api("2.8.0")], service_account="payments-api"
        ),
        revision=34,
        replicas=3,
        created="-8d",
    )
    new = c.replicaset(d, revision=35, replicas=1, created="-1h5m30s")
    for i in range(3):
        c.pod(
            old, nodes[i], shift("-8d", i * 30), [running("payments-api", shift("-8d", i * 30 + 4))]
        )
    msg = "couldn't find key password in Secret payments/payments-db"
    p = c.pod(
        new, nodes[3], "-1h5m30s", [waiting("payments-api", "CreateContainerConfigError", msg)]
    )
    c.scheduled(p, nodes[3], "-1h5m30s")
    kw: Obj = {"host": nodes[3]["metadata"]["name"], "field_path": "spec.containers{payments-api}"}
    c.event(
        p,
        "Pulled",
        'Container image "registry.dc1.acme.internal/payments/payments-api:2.8.1" already present on machine',
        first="-1h5m28s",
        last="-22s",
        count=301,
        **kw,
    )
    c.event(
        p, "Failed", f"Error: {msg}", first="-1h5m28s", last="-22s", count=301, warning=True, **kw
    )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {new['metadata']['name']} from 0 to 1",
        first="-1h5m30s",
        component="deployment-controller",
    )
    rs_created_pods(c, new, [p])
    deployment_conditions(
        d,
        Progressing=(
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
            "-55m30s",
            "-55m30s",
        ),
    )
    c.service(
        "payments",
        "payments-api",
        selector_labels("payments-api"),
        [("http", 80, "http"), ("metrics", 9090, "metrics")],
        created="-400d",
        labels=helm_labels("payments-api", "2.8.1"),
    )
    gone = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "payments-api-7f5d9c8b64-m2xkw",
            "namespace": "payments",
            "uid": c.uid("gone"),
            "resourceVersion": "91227310",
        },
    }
    c.event(
        gone,
        "FailedMount",
        'MountVolume.SetUp failed for volume "kube-api-access-9tq2r" : failed to sync configmap cache: timed out waiting for the condition',
        first="-19h12m",
        last="-19h12m",
        warning=True,
        host="dc1-k8s-w02",
    )
    c.event(
        gone,
        "Unhealthy",
        'Readiness probe failed: Get "http://10.244.2.87:8080/readyz": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
        first="-19h11m",
        last="-19h10m",
        count=3,
        warning=True,
        host="dc1-k8s-w02",
        field_path="spec.containers{payments-api}",
    )
    c.kps_alert(
        "KubeContainerWaiting",
        ksm_pod_labels(p, "payments-api", reason="CreateContainerConfigError"),
        starts_ms=388,
    )
    c.expect(
        description="""The new payments-api pod (rollout to 2.8.1) has been stuck in CreateContainerConfigError for
        over an hour: "couldn't find key password in Secret payments/payments-db". The Secret is owned by
        External Secrets and was re-rendered with the keys host, pass and username, so the password now lives
        under pass while the Deployment's secretKeyRef still asks for password. The running 2.8.0 pods are
        unaffected because they resolved the value when they started. Restore the password key in
        payments-db (or change the reference).""",
        category="ConfigError",
        culprit_ref=culprit("Secret", "payments", "payments-db"),
        mentions=["payments-db", "password"],
        multi_hop=True,
        distractors=[
            "FailedMount and Unhealthy warnings from yesterday about a pod that no longer exists",
            "Deployment payments-api reports ProgressDeadlineExceeded (a symptom)",
            "three payments-api pods of the previous version are Running and Ready",
        ],
        acceptable=[culprit("Deployment", "payments", "payments-api")],
    )
    return c


@case
def imagepull_tag_not_found() -> Case:
    c = Case(
        "imagepull-tag-not-found",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-20T11:03:55Z",
        captured_after="3m",
    )
    nodes = eks_nodes(c, ["10.0.19.6", "10.0.33.212", "10.0.80.45"], created="-8d")
    namespace(c, "catalog", sas=("catalog-api",), labels={"team": "catalog"})
    c.secret(
        "catalog",
        "catalog-db",
        {
            "dsn": "postgres://catalog:9b2Qw7rL@catalog-db.c9xk2mq7zt1p.eu-west-1.rds.amazonaws.com:5432/catalog"
        },
        created="-450d",
    )

    def api(version: str) -> Obj:
        return web_container(
            "catalog-api",
            f"ghcr.io/acme/catalog-api:{version}",
            env_vars=[env_secret("DATABASE_DSN", "catalog-db", "dsn")],
            res=resources("300m", "384Mi", None, "768Mi"),
        )

    tpl = template(
        app_labels("catalog-api", "2.7.0"), [api("2.7.0")], service_account="catalog-api"
    )
    d = c.deployment(
        "catalog",
        "catalog-api",
        tpl,
        replicas=4,
        revision=77,
        created="-450d",
        labels=helm_labels("catalog-api", "2.7.0"),
        annotations=helm_annotations("catalog-api", "catalog"),
    )
    old = c.replicaset(
        d,
        template(app_labels("catalog-api", "2.6.3"), [api("2.6.3")], service_account="catalog-api"),
        revision=76,
        replicas=3,
        created="-5d",
    )
    new = c.replicaset(d, revision=77, replicas=2, created="-29m")
    for i in range(3):
        c.pod(
            old, nodes[i], shift("-5d", i * 40), [running("catalog-api", shift("-5d", i * 40 + 5))]
        )
    image = "ghcr.io/acme/catalog-api:2.7.0"
    err = (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": failed to resolve reference '
        f'"{image}": {image}: not found'
    )
    pods = []
    for i in range(2):
        p = c.pod(new, nodes[i + 1], shift("-29m", i), [pull_backoff("catalog-api", image, err)])
        pods.append(p)
        c.scheduled(p, nodes[i + 1], shift("-29m", i))
        image_pull_failing(
            c,
            p,
            "catalog-api",
            error=err,
            first=shift("-28m58s", i),
            last=shift("-3m40s", -i * 50),
            pulls=9,
            backoffs=120 - i,
        )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {new['metadata']['name']} from 0 to 1",
        first="-29m",
        component="deployment-controller",
    )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled down replica set {old['metadata']['name']} from 4 to 3",
        first="-29m",
        component="deployment-controller",
    )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {new['metadata']['name']} from 1 to 2",
        first="-29m",
        component="deployment-controller",
    )
    rs_created_pods(c, new, pods)
    deployment_conditions(
        d,
        Progressing=(
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
            "-19m",
            "-19m",
        ),
    )
    c.service(
        "catalog",
        "catalog-api",
        selector_labels("catalog-api"),
        [("http", 80, "http"), ("metrics", 9090, "metrics")],
        created="-450d",
        labels=helm_labels("catalog-api", "2.7.0"),
        slices=True,
    )
    c.kps_alert(
        "KubeDeploymentRolloutStuck",
        {
            "condition": "Progressing",
            "deployment": "catalog-api",
            "namespace": "catalog",
            "status": "false",
        },
        starts_ms=12,
    )
    c.expect(
        description="""The catalog-api rollout to 2.7.0 is stuck because the image tag does not exist: both new
        pods are in ImagePullBackOff with 'ghcr.io/acme/catalog-api:2.7.0: not found' (NotFound from the
        registry). The three 2.6.3 pods keep serving, so capacity is reduced but the service is up. Point
        Deployment catalog-api at a tag that was actually published (or push 2.7.0).""",
        category="ImagePull",
        culprit_ref=culprit("Deployment", "catalog", "catalog-api"),
        mentions=["catalog-api", "2.7.0"],
        multi_hop=False,
        distractors=[
            "Progressing=False ProgressDeadlineExceeded on the Deployment (the symptom the alert reports)",
            "three old-version pods are Running and Ready",
        ],
    )
    return c


@case
def imagepull_private_registry_no_pull_secret() -> Case:
    c = Case(
        "imagepull-private-registry-no-pull-secret",
        cluster="prod-us-1",
        platform=GKE_PROD,
        alert_at="2026-11-16T17:24:03Z",
        captured_after="4m",
    )
    nodes = gke_nodes(
        c,
        ["10.128.0.71", "10.128.0.74", "10.128.0.80"],
        pool="ml-pool",
        itype="n2-highmem-4",
        created="-20d",
    )
    namespace(c, "ml", sas=(), labels={"team": "ml-platform"})
    dockercfg = json.dumps(
        {
            "auths": {
                "harbor.acme.io": {
                    "username": "robot$ml+puller",
                    "password": "eyJhbGciOiJSUzI1NiJ9.ml-puller",
                    "auth": "cm9ib3QkbWwrcHVsbGVyOmV5SmhiR2NpT2lKU1V6STFOaUo5Lm1sLXB1bGxlcg==",
                }
            }
        }
    )
    c.secret(
        "ml",
        "harbor-pull",
        {".dockerconfigjson": dockercfg},
        stype="kubernetes.io/dockerconfigjson",
        created="-90d",
    )
    gw = web_container("model-gateway", "harbor.acme.io/ml/model-gateway:1.3.0")
    healthy(
        c,
        "ml",
        "model-gateway",
        template(app_labels("model-gateway", "1.3.0"), [gw], pull_secrets=["harbor-pull"]),
        nodes,
        replicas=2,
        revision=6,
        created="-90d",
        rs_created="-9d",
    )
    image = "harbor.acme.io/ml/feature-store:0.9.3"
    fs = web_container(
        "feature-store",
        image,
        env_vars=[env("REDIS_URL", "redis://feature-store-redis.ml.svc.cluster.local:6379/0")],
        res=resources("500m", "1Gi", None, "2Gi"),
    )
    tpl = template(app_labels("feature-store", "0.9.3"), [fs])
    d = c.deployment(
        "ml",
        "feature-store",
        tpl,
        replicas=2,
        revision=1,
        created="-20m",
        labels={
            "app.kubernetes.io/name": "feature-store",
            "app.kubernetes.io/part-of": "ml-platform",
        },
        annotations={
            "argocd.argoproj.io/tracking-id": "ml-platform:apps/Deployment:ml/feature-store"
        },
    )
    rs = c.replicaset(d, revision=1, replicas=2, created="-20m")
    err = (
        f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": pull access denied, '
        "repository does not exist or may require authorization: authorization failed: no basic auth credentials"
    )
    pods = []
    for i in range(2):
        p = c.pod(rs, nodes[i], shift("-20m", i), [pull_backoff("feature-store", image, err)])
        pods.append(p)
        c.scheduled(p, nodes[i], shift("-20m", i))
        image_pull_failing(
            c,
            p,
            "feature-store",
            error="rpc error: code = Unknown desc = " + err,
            first=shift("-19m58s", i),
            last=shift("-2m51s", -i * 40),
            pulls=8,
            backoffs=80 - i,
        )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {rs['metadata']['name']} from 0 to 2",
        first="-20m",
        component="deployment-controller",
    )
    rs_created_pods(c, rs, pods)
    c.service(
        "ml",
        "feature-store",
        selector_labels("feature-store"),
        [("http", 80, "http")],
        created="-20m",
    )
    c.kps_alert(
        "KubePodNotReady",
        {"namespace": "ml", "pod": pods[0]["metadata"]["name"]},
        starts_ms=540,
        ksm=False,
    )
    c.expect(
        description="""feature-store was just deployed into the ml namespace and its pods never start:
        ImagePullBackOff with "pull access denied ... authorization failed: no basic auth credentials" for
        harbor.acme.io/ml/feature-store:0.9.3. The registry is private; the namespace has a working
        harbor-pull dockerconfigjson Secret (model-gateway uses it), but Deployment feature-store sets no
        imagePullSecrets and the default ServiceAccount has none either. Add imagePullSecrets: harbor-pull to
        the Deployment (or to the ServiceAccount).""",
        category="ImagePull",
        culprit_ref=culprit("Deployment", "ml", "feature-store"),
        mentions=["feature-store", "harbor"],
        multi_hop=False,
        distractors=[
            "model-gateway pulls from the same registry successfully (it references harbor-pull)"
        ],
        acceptable=[culprit("ServiceAccount", "ml", "default")],
    )
    return c


@case
def unschedulable_insufficient_memory() -> Case:
    c = Case(
        "unschedulable-insufficient-memory",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-10-30T22:14:48Z",
        captured_after="4m",
    )
    analytics = [
        c.node(
            ip,
            instance_type="m6i.2xlarge",
            pool="analytics",
            created="-6d",
            labels={"acme.io/pool": "analytics"},
            taints=[{"effect": "NoSchedule", "key": "dedicated", "value": "analytics"}],
        )
        for ip in ("10.0.8.140", "10.0.41.9", "10.0.61.220", "10.0.85.31")
    ]
    eks_nodes(c, ["10.0.24.77", "10.0.72.18"], created="-6d")
    c.node(
        "10.0.50.201",
        instance_type="g5.xlarge",
        pool="gpu",
        created="-30d",
        labels={"acme.io/pool": "gpu", "nvidia.com/gpu.present": "true"},
        taints=[{"effect": "NoSchedule", "key": "dedicated", "value": "gpu"}],
    )
    namespace(c, "analytics", sas=("trino",), labels={"team": "data"})
    c.configmap(
        "analytics",
        "trino-worker",
        {
            "config.properties": "coordinator=false\nhttp-server.http.port=8080\nquery.max-memory-per-node=18GB\ndiscovery.uri=http://trino-coordinator.analytics.svc.cluster.local:8080\n",
            "jvm.config": "-server\n-Xmx22G\n-XX:+UseG1GC\n-XX:G1HeapRegionSize=32M\n-XX:+ExitOnOutOfMemoryError\n",
        },
        created="-180d",
        labels=helm_labels("trino", "467", chart="trino-1.36.0"),
    )
    w = container(
        "trino-worker",
        "trinodb/trino:467",
        ports=[("http", 8080)],
        res=resources("3", "26Gi", None, "26Gi"),
        readiness=http_probe("/v1/info", "http", initial=10),
        liveness=http_probe("/v1/info", "http", initial=60),
        mounts=[mount("config", "/etc/trino")],
    )
    tpl = template(
        selector_labels("trino", **{"app.kubernetes.io/component": "worker"})
        | {"app.kubernetes.io/version": "467"},
        [w],
        service_account="trino",
        node_selector={"acme.io/pool": "analytics"},
        volumes=[vol_cm("config", "trino-worker")],
        tolerations=[
            {"effect": "NoSchedule", "key": "dedicated", "operator": "Equal", "value": "analytics"}
        ],
    )
    d = c.deployment(
        "analytics",
        "trino-worker",
        tpl,
        replicas=6,
        revision=12,
        created="-180d",
        generation=19,
        selector=selector_labels("trino", **{"app.kubernetes.io/component": "worker"}),
        labels=helm_labels(
            "trino", "467", chart="trino-1.36.0", **{"app.kubernetes.io/component": "worker"}
        ),
        annotations=helm_annotations("trino", "analytics"),
    )
    rs = c.replicaset(d, revision=12, replicas=6, created="-6d")
    for i, n in enumerate(analytics):
        c.pod(rs, n, shift("-6d", i * 20), [running("trino-worker", shift("-6d", i * 20 + 9))])
    msg = (
        "0/7 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector, "
        "4 Insufficient memory. preemption: 0/7 nodes are available: 3 Preemption is not helpful for scheduling, 4 No preemption victims found for incoming pod."
    )
    pending = []
    for i in range(2):
        p = c.pod(rs, None, shift("-20m", i), [], unschedulable=msg, scheduled_at=shift("-20m", i))
        pending.append(p)
        c.scheduler_event(
            p, "FailedScheduling", msg, first=shift("-20m", i), last=shift("-3m10s", i), count=6
        )
        c.event(
            p,
            "NotTriggerScaleUp",
            "pod didn't trigger scale-up: 1 max node group size reached, 2 node(s) didn't match Node affinity, 1 node(s) had untolerated taint {dedicated: gpu}",
            first=shift("-19m50s", i),
            last=shift("-40s", i),
            count=12,
            component="cluster-autoscaler",
        )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {rs['metadata']['name']} from 4 to 6",
        first="-20m",
        component="deployment-controller",
    )
    rs_created_pods(c, rs, pending)
    c.service(
        "analytics",
        "trino-worker",
        selector_labels("trino", **{"app.kubernetes.io/component": "worker"}),
        [("http", 8080, "http")],
        created="-180d",
    )
    c.kps_alert(
        "KubePodNotReady",
        {"namespace": "analytics", "pod": pending[0]["metadata"]["name"]},
        starts_ms=871,
        ksm=False,
    )
    c.expect(
        description="""Two trino-worker pods have been Pending for 20 minutes since the Deployment was scaled from 4 to
        6 replicas: each asks for 26Gi of memory and must run on the analytics node group (nodeSelector
        acme.io/pool=analytics), whose four m6i.2xlarge nodes (~30Gi allocatable) already hold one worker each
        ("4 Insufficient memory"). The cluster autoscaler cannot add nodes because the group is at its maximum
        size. The workload asks for more than the pool can hold: scale trino-worker back to 4 or lower its
        memory request (or raise the node group's max size).""",
        category="Unschedulable",
        culprit_ref=culprit("Deployment", "analytics", "trino-worker"),
        mentions=["trino-worker", "Insufficient memory"],
        multi_hop=False,
        distractors=[
            "a GPU node with free memory that the pods cannot use (taint dedicated=gpu)",
            "cluster-autoscaler NotTriggerScaleUp events blaming the node group's max size",
        ],
    )
    return c


@case
def unschedulable_node_selector_mismatch() -> Case:
    c = Case(
        "unschedulable-node-selector-mismatch",
        cluster="dc1-prod",
        platform=ONPREM,
        alert_at="2026-11-03T07:12:40Z",
        captured_after="5m",
    )
    workers = onprem_nodes(c, 4)
    render = [
        c.node(
            f"10.20.2.{21 + i}",
            name=f"dc1-k8s-r{i + 3:02d}",
            instance_type="onprem-16x64",
            created="-16m",
            labels={
                "node.acme.io/pool": "rendering",
                "topology.kubernetes.io/zone": f"dc1-row{1 + i}",
            },
        )
        for i in range(2)
    ]
    namespace(c, "docs", sas=("pdf-renderer",), labels={"team": "docs"})
    r = container(
        "pdf-renderer",
        "registry.dc1.acme.internal/docs/pdf-renderer:3.0.7",
        ports=[("http", 8080)],
        env_vars=[
            env("CHROME_FLAGS", "--headless=new --disable-gpu --no-sandbox"),
            env("MAX_CONCURRENT_JOBS", "4"),
        ],
        res=resources("2", "4Gi", "4", "6Gi"),
        readiness=http_probe("/health", "http"),
        liveness=http_probe("/health", "http", initial=15),
        mounts=[mount("tmp", "/tmp")],  # noqa: S108
    )
    tpl = template(
        app_labels("pdf-renderer", "3.0.7"),
        [r],
        service_account="pdf-renderer",
        node_selector={"node.acme.io/pool": "render"},
        volumes=[vol_empty("tmp", "2Gi")],
    )
    d = c.deployment(
        "docs",
        "pdf-renderer",
        tpl,
        replicas=3,
        revision=14,
        created="-330d",
        labels=helm_labels("pdf-renderer", "3.0.7"),
        annotations=helm_annotations("pdf-renderer", "docs"),
    )
    rs = c.replicaset(d, revision=14, replicas=3, created="-40d")
    msg = (
        "0/9 nodes are available: 3 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 6 node(s) didn't match "
        "Pod's node affinity/selector. preemption: 0/9 nodes are available: 9 Preemption is not helpful for scheduling."
    )
    pending = []
    for i in range(3):
        p = c.pod(
            rs,
            None,
            shift("-21m", i * 7),
            [],
            unschedulable=msg,
            scheduled_at=shift("-21m", i * 7),
        )
        pending.append(p)
        c.scheduler_event(
            p,
            "FailedScheduling",
            msg,
            first=shift("-21m", i * 7),
            last=shift("-4m2s", i),
            count=9,
        )
    rs_created_pods(c, rs, pending)
    for i, old in enumerate(("dc1-k8s-r01", "dc1-k8s-r02")):
        ghost = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": old, "uid": c.uid("old-node", old), "resourceVersion": "90112233"},
        }
        c.node_event(
            ghost,
            "NodeNotSchedulable",
            f"Node {old} status is now: NodeNotSchedulable",
            first=shift("-24m", i * 90),
        )
        c.node_event(
            ghost,
            "NodeNotReady",
            f"Node {old} status is now: NodeNotReady",
            first=shift("-23m", i * 90),
            component="node-controller",
        )
        c.node_event(
            ghost,
            "RemovingNode",
            f"Node {old} event: Removing Node {old} from Controller",
            first=shift("-22m30s", i * 90),
            component="node-controller",
        )
        gp = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"pdf-renderer-{rs['metadata']['labels']['pod-template-hash']}-{['x2kfp', 'q9wzm', 'h4nvd'][i]}",
                "namespace": "docs",
                "uid": c.uid("gone", old),
                "resourceVersion": "90112001",
            },
        }
        c.event(
            gp,
            "Killing",
            "Stopping container pdf-renderer",
            first=shift("-23m30s", i * 90),
            host=old,
            field_path="spec.containers{pdf-renderer}",
        )
    for i, n in enumerate(render):
        c.node_event(
            n,
            "NodeReady",
            f"Node {n['metadata']['name']} status is now: NodeReady",
            first=shift("-15m50s", i * 30),
        )
        c.node_event(
            n,
            "RegisteredNode",
            f"Node {n['metadata']['name']} event: Registered Node {n['metadata']['name']} in Controller",
            first=shift("-15m50s", i * 30),
            component="node-controller",
        )
    c.service(
        "docs",
        "pdf-renderer",
        selector_labels("pdf-renderer"),
        [("http", 80, "http")],
        created="-330d",
        labels=helm_labels("pdf-renderer", "3.0.7"),
    )
    api = web_container("docs-api", "registry.dc1.acme.internal/docs/docs-api:8.2.1")
    healthy(
        c,
        "docs",
        "docs-api",
        template(app_labels("docs-api", "8.2.1"), [api]),
        workers,
        replicas=2,
        revision=31,
        rs_created="-2d",
    )
    c.kps_alert(
        "KubeDeploymentReplicasMismatch",
        {"deployment": "pdf-renderer", "namespace": "docs"},
        starts_ms=202,
    )
    c.expect(
        description="""All three pdf-renderer pods have been Pending for 21 minutes: the Deployment pins them with
        nodeSelector node.acme.io/pool=render, but the render nodes were rebuilt in this morning's maintenance and the new nodes
        dc1-k8s-r03/r04 carry node.acme.io/pool=rendering, so no node matches ("6 node(s) didn't match Pod's
        node affinity/selector"). Nothing is wrong with the nodes themselves. Align the selector of Deployment
        pdf-renderer with the new label (or relabel the nodes).""",
        category="Unschedulable",
        culprit_ref=culprit("Deployment", "docs", "pdf-renderer"),
        mentions=["pdf-renderer", "node.acme.io/pool"],
        multi_hop=False,
        distractors=[
            "NodeNotReady / RemovingNode events for the old render nodes dc1-k8s-r01/r02 (planned replacement, nodes gone)",
            "control-plane taints counted in the scheduler message",
        ],
    )
    return c


@case
def probe_readiness_wrong_port() -> Case:
    c = Case(
        "probe-readiness-wrong-port",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-25T10:16:02Z",
        captured_after="3m",
    )
    nodes = eks_nodes(c, ["10.0.26.14", "10.0.58.3", "10.0.94.121"], created="-7d")
    namespace(c, "shop", sas=("cart", "loadgen"), labels={"team": "shop"})
    J = stamper(c, "iso")

    def cart(version: str, probe_port: int | str) -> Obj:
        return web_container(
            "cart",
            f"ghcr.io/acme/cart:{version}",
            env_vars=[env("REDIS_ADDR", "redis-master.shop.svc.cluster.local:6379")],
            res=resources("150m", "192Mi", None, "384Mi"),
            readiness=http_probe("/healthz", probe_port, period=5),
            liveness=tcp_probe("http", initial=10),
        )

    tpl = template(app_labels("cart", "2.3.0"), [cart("2.3.0", 8081)], service_account="cart")
    d = c.deployment(
        "shop",
        "cart",
        tpl,
        replicas=4,
        revision=26,
        created="-380d",
        labels=helm_labels("cart", "2.3.0", chart="cart-5.0.0"),
        annotations=helm_annotations("cart", "shop"),
    )
    old = c.replicaset(
        d,
        template(app_labels("cart", "2.2.9"), [cart("2.2.9", "http")], service_account="cart"),
        revision=25,
        replicas=3,
        created="-7d",
    )
    new = c.replicaset(d, revision=26, replicas=2, created="-20m")
    for i in range(3):
        c.pod(old, nodes[i], shift("-7d", i * 30), [running("cart", shift("-7d", i * 30 + 4))])
    pods = []
    for i in range(2):
        p = c.pod(
            new,
            nodes[(i + 1) % 3],
            shift("-20m", i),
            [running("cart", shift("-19m55s", i), ready=False)],
        )
        pods.append(p)
        ip = p["status"]["podIP"]
        c.scheduled(p, nodes[(i + 1) % 3], shift("-20m", i))
        c.container_events(
            p,
            "cart",
            first=shift("-19m57s", i),
            last=shift("-19m55s", i),
            starts=1,
            pulled_fresh='Successfully pulled image "ghcr.io/acme/cart:2.3.0" in 1.218s (1.218s including waiting). Image size: 14321905 bytes.',
        )
        c.event(
            p,
            "Unhealthy",
            f'Readiness probe failed: Get "http://{ip}:8081/healthz": dial tcp {ip}:8081: connect: connection refused',
            first=shift("-19m53s", i),
            last=shift("-2s", -i),
            count=238 - i,
            warning=True,
            host=p["spec"]["nodeName"],
            field_path="spec.containers{cart}",
        )
        c.log(
            "shop",
            p,
            "cart",
            f"""\
            time={J(shift("-19m55s", i + 0.041))} level=INFO msg="starting cart" version=2.3.0 commit=e1d94c0
            time={J(shift("-19m55s", i + 0.112))} level=INFO msg="connected to redis" addr=redis-master.shop.svc.cluster.local:6379
            time={J(shift("-19m55s", i + 0.118))} level=INFO msg="metrics server listening" addr=:9090
            time={J(shift("-19m55s", i + 0.119))} level=INFO msg="http server listening" addr=:8080 routes="/v1/carts,/healthz,/readyz"
            time={J(shift("-12m", i * 7))} level=INFO msg=request method=GET path=/v1/carts/9f1c status=200 duration=3.1ms
            """,
        )
    deploy_events_rollout(c, d, old, new, "-20m", old_from=4, new_to=2, old_to=3)
    rs_created_pods(c, new, pods)
    deployment_conditions(
        d,
        Progressing=(
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
            "-10m",
            "-10m",
        ),
    )
    c.service(
        "shop",
        "cart",
        selector_labels("cart"),
        [("http", 80, "http"), ("metrics", 9090, "metrics")],
        created="-380d",
        labels=helm_labels("cart", "2.3.0", chart="cart-5.0.0"),
    )
    # an unrelated broken workload in the same namespace
    lg = container(
        "loadgen",
        "locustio/locust:2.32.2",
        args=["-f", "/mnt/locust/locustfile.py", "--headless", "-u", "20", "-r", "2"],
        res=resources("100m", "128Mi", None, "256Mi"),
        mounts=[mount("locustfile", "/mnt/locust")],
    )
    lg_tpl = template(
        app_labels("loadgen", "2.32.2"),
        [lg],
        service_account="loadgen",
        volumes=[vol_cm("locustfile", "loadgen")],
    )
    lgd = c.deployment(
        "shop",
        "loadgen",
        lg_tpl,
        replicas=1,
        revision=3,
        created="-60d",
        labels={"app.kubernetes.io/name": "loadgen"},
    )
    lrs = c.replicaset(lgd, revision=3, replicas=1, created="-2d")
    lp = c.pod(lrs, nodes[0], "-2d", [crashing("loadgen", 212, 1, "Error", "-4m12s", "-4m9s")])
    c.container_events(
        lp, "loadgen", first="-2d", last="-4m12s", starts=213, backoffs=960, backoff_last="-9s"
    )
    c.configmap(
        "shop",
        "loadgen",
        {
            "locustfile.py": "from locust import HttpUser, task\n\nclass Shopper(HttpUser):\n    @task\n    def browse(self):\n        self.client.get('/')\n"
        },
        created="-60d",
    )
    P = stamper(c, "python")
    c.log(
        "shop",
        lp,
        "loadgen",
        f"""\
        [{P("-4m11s")}] {lp["metadata"]["name"]}/ERROR/locust.main: Unknown arguments: ['-u', '20', '-r', '2']. Did you mean --users/--spawn-rate? Also --host is required in headless mode.
        """,
        previous=True,
    )
    c.kps_alert(
        "KubeDeploymentReplicasMismatch", {"deployment": "cart", "namespace": "shop"}, starts_ms=455
    )
    c.expect(
        description="""Deployment cart has 3 of 4 replicas available because the two pods of the 2.3.0 rollout never
        become Ready: the new chart points the readiness probe at port 8081 (/healthz), but cart 2.3.0 only
        listens on 8080 (HTTP, with /healthz) and 9090 (metrics), so every probe fails with "dial tcp
        ...:8081: connect: connection refused". The containers run fine (liveness uses the http port, no
        restarts). Fix the readiness probe port in Deployment cart.""",
        category="ProbeFailure",
        culprit_ref=culprit("Deployment", "shop", "cart"),
        mentions=["cart", "8081"],
        multi_hop=False,
        distractors=[
            "Deployment loadgen in the same namespace is crash-looping for unrelated reasons",
            "Progressing=False ProgressDeadlineExceeded on Deployment cart",
        ],
    )
    return c


@case
def probe_liveness_kills_slow_start() -> Case:
    c = Case(
        "probe-liveness-kills-slow-start",
        cluster="prod-us-1",
        platform=GKE_PROD,
        alert_at="2026-11-09T14:31:18Z",
        captured_after="4m",
    )
    nodes = gke_nodes(
        c, ["10.128.0.90", "10.128.0.95", "10.128.0.99"], itype="e2-standard-8", created="-9d"
    )
    namespace(c, "inventory", sas=("inventory-service",), labels={"team": "supply"})
    S = stamper(c, "iso")

    def svc(version: str) -> Obj:
        return container(
            "inventory-service",
            f"us-docker.pkg.dev/acme-prod-4821/apps/inventory-service:{version}",
            command=["/bin/sh", "-c", "java $JAVA_OPTS -jar /app/inventory-service.jar"],
            ports=[("http", 8080)],
            env_vars=[
                env("JAVA_OPTS", "-XX:MaxRAMPercentage=70 -XX:+UseG1GC"),
                env("SPRING_PROFILES_ACTIVE", "prod"),
                env_secret("SPRING_DATASOURCE_PASSWORD", "inventory-db", "password"),
            ],
            res=resources("1", "1536Mi", None, "2Gi"),
            readiness=http_probe("/actuator/health/readiness", "http", initial=20, period=5),
            liveness=http_probe(
                "/actuator/health/liveness", "http", initial=30, period=10, failure=3
            ),
        )

    c.secret("inventory", "inventory-db", {"password": "inv-Qm4s8Lp2"}, created="-380d")
    tpl = template(
        app_labels("inventory-service", "4.2.0"),
        [svc("4.2.0")],
        service_account="inventory-service",
    )
    d = c.deployment(
        "inventory",
        "inventory-service",
        tpl,
        replicas=3,
        revision=52,
        created="-380d",
        labels=helm_labels("inventory-service", "4.2.0"),
        annotations=helm_annotations("inventory-service", "inventory"),
    )
    old = c.replicaset(
        d,
        template(
            app_labels("inventory-service", "4.1.3"),
            [svc("4.1.3")],
            service_account="inventory-service",
        ),
        revision=51,
        replicas=3,
        created="-6d",
    )
    new = c.replicaset(d, revision=52, replicas=1, created="-21m")
    for i in range(3):
        c.pod(
            old,
            nodes[i],
            shift("-6d", i * 60),
            [running("inventory-service", shift("-6d", i * 60 + 3))],
        )
    p = c.pod(
        new,
        nodes[1],
        "-21m",
        [crashing("inventory-service", 7, 137, "Error", "-5m51s", "-4m31s")],
    )
    ip = p["status"]["podIP"]
    c.scheduled(p, nodes[1], "-21m")
    crash_events(c, p, "inventory-service", first="-20m57s", restarts=7, last_start="-5m51s")
    kw: Obj = {
        "host": nodes[1]["metadata"]["name"],
        "field_path": "spec.containers{inventory-service}",
    }
    c.event(
        p,
        "Unhealthy",
        f'Liveness probe failed: Get "http://{ip}:8080/actuator/health/liveness": dial tcp {ip}:8080: connect: connection refused',
        first="-20m25s",
        last="-5m1s",
        count=21,
        warning=True,
        **kw,
    )
    c.event(
        p,
        "Unhealthy",
        f'Readiness probe failed: Get "http://{ip}:8080/actuator/health/readiness": dial tcp {ip}:8080: connect: connection refused',
        first="-20m35s",
        last="-4m56s",
        count=52,
        warning=True,
        **kw,
    )
    c.event(
        p,
        "Killing",
        "Container inventory-service failed liveness probe, will be restarted",
        first="-20m5s",
        last="-5m1s",
        count=7,
        **kw,
    )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {new['metadata']['name']} from 0 to 1",
        first="-21m",
        component="deployment-controller",
    )
    rs_created_pods(c, new, [p])
    deployment_conditions(
        d,
        Progressing=(
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
            "-11m",
            "-11m",
        ),
    )
    c.service(
        "inventory",
        "inventory-service",
        selector_labels("inventory-service"),
        [("http", 80, "http")],
        created="-380d",
        labels=helm_labels("inventory-service", "4.2.0"),
    )
    t = "-5m51s"
    c.log(
        "inventory",
        p,
        "inventory-service",
        f"""\
        {S(shift(t, 0.912))}  INFO 7 --- [inventory-service] [           main] c.a.inventory.InventoryApplication       : Starting InventoryApplication v4.2.0 using Java 21.0.5 with PID 7 (/app/inventory-service.jar started by app in /app)
        {S(shift(t, 0.951))}  INFO 7 --- [inventory-service] [           main] c.a.inventory.InventoryApplication       : The following 1 profile is active: "prod"
        {S(shift(t, 4.208))}  INFO 7 --- [inventory-service] [           main] o.s.b.w.embedded.tomcat.TomcatWebServer  : Tomcat initialized with port 8080 (http)
        {S(shift(t, 6.744))}  INFO 7 --- [inventory-service] [           main] com.zaxxer.hikari.HikariDataSource       : HikariPool-1 - Start completed.
        {S(shift(t, 7.102))}  INFO 7 --- [inventory-service] [           main] o.f.c.internal.license.VersionPrinter    : Flyway Community Edition 10.17.3 by Redgate
        {S(shift(t, 7.531))}  INFO 7 --- [inventory-service] [           main] o.f.core.internal.command.DbValidate     : Successfully validated 88 migrations (execution time 00:00.412s)
        {S(shift(t, 7.688))}  INFO 7 --- [inventory-service] [           main] o.f.core.internal.command.DbMigrate      : Current version of schema "public": 87
        {S(shift(t, 7.690))}  INFO 7 --- [inventory-service] [           main] o.f.core.internal.command.DbMigrate      : Migrating schema "public" to version "88 - backfill stock reservations"
        {S(shift(t, 61.327))}  WARN 7 --- [inventory-service] [           main] o.f.core.internal.command.DbMigrate      : Migration of schema "public" to version "88 - backfill stock reservations" is taking long (53.6s)
        {S(shift(t, 70.004))}  INFO 7 --- [inventory-service] [           main] c.a.inventory.cache.StockCacheWarmer     : warming stock cache for 412 warehouses
        """,
        previous=True,
    )
    mem = [
        (
            {
                "container": "inventory-service",
                "namespace": "inventory",
                "pod": p["metadata"]["name"],
            },
            [
                0,
                3.1e8,
                5.2e8,
                6.0e8,
                0,
                0,
                0,
                0,
                0,
                3.0e8,
                5.1e8,
                6.1e8,
                0,
                0,
                0,
                0,
                0,
                3.2e8,
                5.3e8,
                6.0e8,
                0,
            ],
        )
    ]
    c.metric(
        "memory_working_set",
        'max by (namespace, pod, container) (container_memory_working_set_bytes{namespace="inventory", container="inventory-service"})',
        mem,
    )
    c.kps_alert(
        "KubePodCrashLooping",
        ksm_pod_labels(p, "inventory-service", reason="CrashLoopBackOff"),
        starts_ms=904,
    )
    c.expect(
        description="""The inventory-service 4.2.0 pod is killed by its liveness probe before it can finish starting:
        4.2.0 runs a long Flyway migration and a cache warm-up at boot (still running after 70s), while the
        liveness probe starts at 30s and kills the container after three failures (connection refused on
        :8080, "failed liveness probe, will be restarted"). The shell wrapper does not forward SIGTERM, so
        the container is SIGKILLed after the grace period: exit code 137 with reason Error, not OOMKilled
        (memory stays near 600MB of 2Gi). Give Deployment inventory-service a startupProbe or a longer
        liveness delay.""",
        category="ProbeFailure",
        culprit_ref=culprit("Deployment", "inventory", "inventory-service"),
        mentions=["inventory-service", "liveness"],
        multi_hop=False,
        distractors=[
            "exit code 137 suggests OOMKilled, but the reason is Error and memory is far below the limit",
            "the Flyway migration warning looks like a database problem",
            "the three 4.1.3 pods are healthy",
        ],
    )
    return c


def unreachable(node: Obj, c: Case, since: str, heartbeat: str) -> None:
    """Turn a Node into what the node lifecycle controller leaves when its kubelet stops reporting."""
    for cond in node["status"]["conditions"]:
        if cond["type"] in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
            cond.update(
                status="Unknown",
                reason="NodeStatusUnknown",
                message="Kubelet stopped posting node status.",
                lastTransitionTime=c.t(since),
                lastHeartbeatTime=c.t(heartbeat),
            )
        else:
            cond["lastHeartbeatTime"] = c.t(heartbeat)
    node["spec"]["taints"] = [
        {"effect": "NoSchedule", "key": "node.kubernetes.io/unreachable", "timeAdded": c.t(since)},
        {
            "effect": "NoExecute",
            "key": "node.kubernetes.io/unreachable",
            "timeAdded": c.t(shift(since, 5)),
        },
    ]


def stranded(c: Case, pod: Obj, since: str, *, evicted_at: str | None) -> None:
    """A pod on an unreachable node: marked NotReady by the node controller, maybe marked for deletion."""
    for cond in pod["status"]["conditions"]:
        if cond["type"] in ("Ready", "ContainersReady") and cond["type"] == "Ready":
            cond.update(status="False", lastTransitionTime=c.t(since))
    if evicted_at:
        pod["metadata"]["deletionTimestamp"] = c.t(
            shift(evicted_at, pod["spec"].get("terminationGracePeriodSeconds", 30))
        )
        pod["metadata"]["deletionGracePeriodSeconds"] = pod["spec"].get(
            "terminationGracePeriodSeconds", 30
        )
        pod["status"]["conditions"].insert(
            0,
            {
                "lastProbeTime": None,
                "lastTransitionTime": c.t(evicted_at),
                "message": "Taint manager: deleting due to NoExecute taint",
                "reason": "DeletionByTaintManager",
                "status": "True",
                "type": "DisruptionTarget",
            },
        )
        c.event(
            pod,
            "TaintManagerEviction",
            f"Marking for deletion Pod {pod['metadata']['namespace']}/{pod['metadata']['name']}",
            first=evicted_at,
            component="taint-eviction-controller",
        )
    c.event(
        pod,
        "NodeNotReady",
        "Node is not ready",
        first=shift(since, 1),
        warning=True,
        component="node-controller",
    )


def system_daemonsets(c: Case, nodes: list[Obj], *, flavour: str = "eks") -> dict[str, list[Obj]]:
    """kube-system node agents (one pod per node), healthy."""
    out: dict[str, list[Obj]] = {}
    agents = [
        (
            "kube-proxy",
            "602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/kube-proxy:v1.33.3-minimal-eksbuild.6",
        )
    ]
    if flavour == "eks":
        agents.append(
            (
                "aws-node",
                "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.20.1-eksbuild.3",
            )
        )
    for name, image in agents:
        ctr = container(
            name,
            image,
            res=resources("25m" if name == "aws-node" else "100m", None),
            security={"privileged": True},
        )
        tpl = template(
            {"k8s-app": name}, [ctr], service_account=name, priority_class="system-node-critical"
        )
        tpl["spec"]["hostNetwork"] = True
        ds = c.daemonset("kube-system", name, tpl, created="-420d", generation=3)
        ds["spec"]["selector"] = {"matchLabels": {"k8s-app": name}}
        out[name] = [
            c.pod(
                ds,
                n,
                shift(n["metadata"]["creationTimestamp"], 20),
                [running(name, shift(n["metadata"]["creationTimestamp"], 31))],
            )
            for n in nodes
        ]
    return out


@case
def node_notready_kubelet_stopped() -> Case:
    c = Case(
        "node-notready-kubelet-stopped",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-08T03:27:45Z",
        captured_after="3m",
    )
    npd = [
        (k, v)
        for k, v in npd_conditions("-10d")
        if k
        in (
            "KernelDeadlock",
            "ReadonlyFilesystem",
            "FrequentContainerdRestart",
            "FrequentKubeletRestart",
        )
    ]
    nodes = [
        c.node(ip, instance_type="m6i.xlarge", pool="general", created="-10d", extra_conditions=npd)
        for ip in ("10.0.15.101", "10.0.47.198", "10.0.60.7", "10.0.77.250")
    ]
    bad = nodes[1]
    bad_name = bad["metadata"]["name"]
    unreachable(bad, c, "-18m40s", "-19m21s")
    namespace(c, "kube-system", created="-420d", sas=("kube-proxy", "aws-node"))
    namespace(c, "shop", sas=("checkout", "cart"), labels={"team": "shop"})
    ds_pods = system_daemonsets(c, nodes)
    for pods in ds_pods.values():
        stranded(c, pods[1], "-18m40s", evicted_at=None)
    co = web_container(
        "checkout", "ghcr.io/acme/checkout:1.14.2", res=resources("200m", "256Mi", None, "512Mi")
    )
    _, rs, pods = healthy(
        c,
        "shop",
        "checkout",
        template(app_labels("checkout", "1.14.2"), [co], service_account="checkout"),
        nodes,
        replicas=3,
        revision=40,
        created="-500d",
        rs_created="-4d",
    )
    on_bad = next(p for p in pods if p["spec"]["nodeName"] == bad_name)
    stranded(c, on_bad, "-18m40s", evicted_at="-13m35s")
    repl = c.pod(rs, nodes[3], "-13m34s", [running("checkout", "-13m30s")])
    c.scheduled(repl, nodes[3], "-13m34s")
    c.container_events(repl, "checkout", first="-13m32s", last="-13m30s", starts=1)
    rs_created_pods(c, rs, [repl])
    ct = web_container(
        "cart", "ghcr.io/acme/cart:2.2.9", res=resources("150m", "192Mi", None, "384Mi")
    )
    _, crs, cpods = healthy(
        c,
        "shop",
        "cart",
        template(app_labels("cart", "2.2.9"), [ct], service_account="cart"),
        nodes[1:],
        replicas=2,
        revision=25,
        created="-380d",
        rs_created="-7d",
    )
    cart_bad = next(p for p in cpods if p["spec"]["nodeName"] == bad_name)
    stranded(c, cart_bad, "-18m40s", evicted_at="-13m35s")
    crepl = c.pod(crs, nodes[2], "-13m34s", [running("cart", "-13m29s")])
    c.scheduled(crepl, nodes[2], "-13m34s")
    rs_created_pods(c, crs, [crepl])
    c.node_event(
        bad,
        "NodeNotReady",
        f"Node {bad_name} status is now: NodeNotReady",
        first="-18m40s",
        component="node-controller",
    )
    for n in nodes:
        if n is not bad:
            c.node_event(
                n,
                "NodeHasSufficientMemory",
                f"Node {n['metadata']['name']} status is now: NodeHasSufficientMemory",
                first="-10d",
            )
    c.kps_alert(
        "KubeNodeNotReady",
        {"condition": "Ready", "node": bad_name, "status": "true"},
        starts_ms=318,
    )
    c.expect(
        description=f"""Node {bad_name} stopped reporting 19 minutes ago: every condition is Unknown ("Kubelet stopped
        posting node status."), the node controller added the unreachable NoSchedule/NoExecute taints and marked its
        pods NotReady, and after the 300s toleration the taint manager marked the checkout and cart pods there for
        deletion (they stay Terminating because no kubelet confirms it; replacements already run elsewhere). The
        workloads recovered; the node itself is lost (instance hung or kubelet/containerd dead). Cordon and replace
        the node.""",
        category="NodeFailure",
        culprit_ref=culprit("Node", None, bad_name),
        mentions=["ip-10-0-47-198"],
        multi_hop=False,
        distractors=[
            "checkout and cart pods stuck Terminating with DisruptionTarget conditions (consequences, already replaced)",
            "node-problem-detector conditions (KernelDeadlock, ReadonlyFilesystem...) reporting False with stale heartbeats",
            "aws-node and kube-proxy pods on the node show Ready=False",
        ],
    )
    return c


@case
def node_diskpressure_eviction() -> Case:
    c = Case(
        "node-diskpressure-eviction",
        cluster="dc1-prod",
        platform=ONPREM,
        alert_at="2026-11-14T02:48:19Z",
        captured_after="4m",
    )
    npd = [
        (k, v)
        for k, v in npd_conditions("-60d")
        if k
        in (
            "KernelDeadlock",
            "ReadonlyFilesystem",
            "FrequentContainerdRestart",
            "FrequentKubeletRestart",
        )
    ]
    for i in range(1, 4):
        c.node(
            f"10.20.0.{10 + i}",
            name=f"dc1-k8s-cp{i}",
            instance_type="onprem-8x32",
            created="-640d",
            role="control-plane",
            taints=[{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}],
        )
    workers = []
    for i in range(1, 5):
        conds = None
        taints = None
        if i == 4:
            conds = {
                "DiskPressure": (
                    "True",
                    "KubeletHasDiskPressure",
                    "kubelet has disk pressure",
                    "-22m",
                )
            }
            taints = [
                {
                    "effect": "NoSchedule",
                    "key": "node.kubernetes.io/disk-pressure",
                    "timeAdded": c.t("-22m"),
                }
            ]
        workers.append(
            c.node(
                f"10.20.1.{10 + i}",
                name=f"dc1-k8s-w{i:02d}",
                instance_type="onprem-16x64",
                created="-210d",
                conditions=conds,
                taints=taints,
                extra_conditions=npd,
                labels={"node.acme.io/pool": "general"},
            )
        )
    w4 = workers[3]
    namespace(c, "search", sas=("search-indexer", "search-api"), labels={"team": "search"})
    idx = container(
        "indexer",
        "registry.dc1.acme.internal/search/indexer:6.1.0",
        ports=[("http", 8080)],
        env_vars=[
            env("OPENSEARCH_URL", "https://opensearch.search.svc.cluster.local:9200"),
            env("SPOOL_DIR", "/var/spool/indexer"),
        ],
        res=resources("500m", "1Gi", None, "2Gi"),
        readiness=http_probe("/ready", "http"),
        mounts=[mount("spool", "/var/spool/indexer")],
    )
    tpl = template(
        app_labels("search-indexer", "6.1.0"),
        [idx],
        service_account="search-indexer",
        volumes=[vol_empty("spool")],
    )
    d = c.deployment(
        "search",
        "search-indexer",
        tpl,
        replicas=2,
        revision=8,
        created="-200d",
        labels=helm_labels("search-indexer", "6.1.0"),
        annotations=helm_annotations("search-indexer", "search"),
    )
    rs = c.replicaset(d, revision=8, replicas=2, created="-9d")
    c.pod(rs, workers[0], "-9d", [running("indexer", "-9d")])
    msg = (
        "The node was low on resource: ephemeral-storage. Threshold quantity: 10729447014, available: 9836120Ki. "
        "Container indexer was using 1843212Ki, request is 0, has larger consumption of ephemeral-storage. "
    )
    ev = c.pod(
        rs,
        w4,
        "-9d",
        [terminated("indexer", 137, "ContainerStatusUnknown", "-9d", "-20m")],
        phase="Failed",
        status_reason="Evicted",
        status_message=msg,
        extra_conditions=[
            {
                "lastProbeTime": None,
                "lastTransitionTime": c.t("-20m2s"),
                "message": msg,
                "reason": "TerminationByKubelet",
                "status": "True",
                "type": "DisruptionTarget",
            }
        ],
    )
    ev["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = (
        "The container could not be located when the pod was terminated"
    )
    repl = c.pod(rs, workers[1], "-20m", [running("indexer", "-19m51s")])
    c.scheduled(repl, workers[1], "-20m")
    c.container_events(repl, "indexer", first="-19m53s", last="-19m51s", starts=1)
    rs_created_pods(c, rs, [repl])
    c.event(ev, "Evicted", msg.strip(), first="-20m2s", warning=True, host="dc1-k8s-w04")
    c.event(
        ev,
        "Killing",
        "Stopping container indexer",
        first="-20m2s",
        host="dc1-k8s-w04",
        field_path="spec.containers{indexer}",
    )
    c.service(
        "search",
        "search-indexer",
        selector_labels("search-indexer"),
        [("http", 8080, "http")],
        created="-200d",
    )
    api = web_container("search-api", "registry.dc1.acme.internal/search/search-api:6.1.0")
    healthy(
        c,
        "search",
        "search-api",
        template(app_labels("search-api", "6.1.0"), [api], service_account="search-api"),
        [workers[3], workers[2]],
        replicas=2,
        revision=19,
        created="-200d",
        rs_created="-9d",
    )
    c.node_event(
        w4,
        "NodeHasDiskPressure",
        "Node dc1-k8s-w04 status is now: NodeHasDiskPressure",
        first="-22m",
    )
    c.node_event(
        w4,
        "EvictionThresholdMet",
        "Attempting to reclaim ephemeral-storage",
        first="-22m",
        last="-1m40s",
        count=12,
        warning=True,
    )
    c.node_event(
        w4,
        "FreeDiskSpaceFailed",
        "Failed to garbage collect required amount of images. Attempted to free 14316113510 bytes, but only found 0 bytes eligible to free.",
        first="-22m",
        last="-1m40s",
        count=5,
        warning=True,
    )
    c.node_event(
        w4,
        "ImageGCFailed",
        "Failed to garbage collect required amount of images. Attempted to free 14316113510 bytes, but only found 0 bytes eligible to free.",
        first="-22m",
        last="-1m40s",
        count=5,
        warning=True,
    )
    # yesterday: an unrelated, resolved scheduling hiccup
    gone = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "search-api-6f9b7d5c48-l2pkz",
            "namespace": "search",
            "uid": c.uid("gone"),
            "resourceVersion": "91001212",
        },
    }
    c.scheduler_event(
        gone,
        "FailedScheduling",
        "0/7 nodes are available: 3 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 4 Insufficient cpu. preemption: 0/7 nodes are available: 3 Preemption is not helpful for scheduling, 4 No preemption victims found for incoming pod.",
        first="-22h41m",
        last="-22h39m",
        count=3,
    )
    c.kps_alert(
        "KubePodNotReady",
        {"namespace": "search", "pod": ev["metadata"]["name"]},
        starts_ms=70,
        ksm=False,
    )
    c.expect(
        description="""The alerted search-indexer pod is Failed/Evicted: node dc1-k8s-w04 has DiskPressure=True since 22
        minutes ago (ephemeral-storage below the 10% eviction threshold, image garbage collection finds nothing to
        free), so the kubelet evicted pods and tainted the node disk-pressure:NoSchedule. The Deployment already
        replaced the pod on dc1-k8s-w01... w02; the node's root disk is what needs attention (clean up or grow
        /var/lib on dc1-k8s-w04, then delete the evicted pod).""",
        category="NodeFailure",
        culprit_ref=culprit("Node", None, "dc1-k8s-w04"),
        mentions=["dc1-k8s-w04", "DiskPressure"],
        multi_hop=True,
        distractors=[
            "a FailedScheduling warning from yesterday for a search-api pod (resolved)",
            "node-problem-detector conditions KernelDeadlock / FrequentContainerdRestart on every node, all False",
            "the replacement search-indexer pod is Running and Ready",
        ],
    )
    return c


@case
def statefulset_pod_stuck_on_unreachable_node() -> Case:
    c = Case(
        "statefulset-pod-stuck-on-unreachable-node",
        cluster="prod-us-1",
        platform=GKE_PROD,
        alert_at="2026-11-22T05:11:30Z",
        captured_after="4m",
    )
    nodes = gke_nodes(
        c,
        ["10.128.0.110", "10.128.0.114", "10.128.0.118"],
        pool="kafka-pool",
        itype="n2-highmem-4",
        created="-25d",
    )
    gke_nodes(
        c,
        ["10.128.0.120", "10.128.0.125"],
        pool="default-pool",
        itype="e2-standard-4",
        created="-25d",
    )
    bad = nodes[2]
    bad_name = bad["metadata"]["name"]
    unreachable(bad, c, "-20m", "-20m42s")
    c.storage_class(
        "premium-rwo",
        "pd.csi.storage.gke.io",
        default=False,
        parameters={"type": "pd-ssd"},
        created="-700d",
    )
    c.storage_class(
        "standard-rwo",
        "pd.csi.storage.gke.io",
        default=True,
        parameters={"type": "pd-balanced"},
        created="-700d",
    )
    namespace(c, "kafka", sas=("kafka",), labels={"team": "data-platform"})
    k = container(
        "kafka",
        "apache/kafka:3.8.1",
        ports=[("client", 9092), ("controller", 9093), ("internal", 9094)],
        env_vars=[
            env_field("POD_NAME", "metadata.name"),
            env("KAFKA_PROCESS_ROLES", "broker,controller"),
            env(
                "KAFKA_CONTROLLER_QUORUM_VOTERS",
                "0@kafka-0.kafka-headless.kafka.svc.cluster.local:9093,1@kafka-1.kafka-headless.kafka.svc.cluster.local:9093,2@kafka-2.kafka-headless.kafka.svc.cluster.local:9093",
            ),
            env("KAFKA_LOG_DIRS", "/var/lib/kafka/data"),
        ],
        res=resources("2", "12Gi", None, "12Gi"),
        readiness=tcp_probe("client", initial=20),
        liveness=exec_probe(
            [
                "/bin/sh",
                "-c",
                "/opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server localhost:9092",
            ],
            initial=60,
            period=30,
            timeout=10,
        ),
        mounts=[mount("data", "/var/lib/kafka/data")],
    )
    tpl = template(
        app_labels("kafka", "3.8.1"),
        [k],
        service_account="kafka",
        grace=120,
        affinity={
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": selector_labels("kafka")},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        },
        node_selector={"cloud.google.com/gke-nodepool": "kafka-pool"},
    )
    ss = c.statefulset(
        "kafka",
        "kafka",
        tpl,
        replicas=3,
        service_name="kafka-headless",
        created="-600d",
        generation=11,
        claims=[c.claim_template("data", "500Gi", "premium-rwo")],
        labels=helm_labels("kafka", "3.8.1", chart="kafka-platform-2.3.0"),
    )
    pods = []
    for i, n in enumerate(nodes):
        claim = c.pvc(
            "kafka",
            f"data-kafka-{i}",
            "500Gi",
            "premium-rwo",
            created="-600d",
            volume="x",
            labels=selector_labels("kafka"),
            provisioner="pd.csi.storage.gke.io",
            selected_node=n["metadata"]["name"],
        )
        c.pv_for(
            claim,
            driver="pd.csi.storage.gke.io",
            handle=f"projects/acme-prod-4821/zones/{n['metadata']['labels']['topology.kubernetes.io/zone']}/disks/pvc-{claim['metadata']['uid']}",
            zone=n["metadata"]["labels"]["topology.kubernetes.io/zone"],
        )
        pods.append(
            c.pod(
                ss,
                n,
                shift("-21d", i * 300),
                [running("kafka", shift("-21d", i * 300 + 40))],
                name=f"kafka-{i}",
            )
        )
    stranded(c, pods[2], "-20m", evicted_at="-15m")
    c.node_event(
        bad,
        "NodeNotReady",
        f"Node {bad_name} status is now: NodeNotReady",
        first="-20m",
        component="node-controller",
    )
    c.service(
        "kafka", "kafka", selector_labels("kafka"), [("client", 9092, "client")], created="-600d"
    )
    c.service(
        "kafka",
        "kafka-headless",
        selector_labels("kafka"),
        [
            ("client", 9092, "client"),
            ("controller", 9093, "controller"),
            ("internal", 9094, "internal"),
        ],
        created="-600d",
        headless=True,
        publish_not_ready=True,
    )
    S = stamper(c, "iso")
    c.log(
        "kafka",
        pods[0],
        "kafka",
        f"""\
        [{S("-20m8s")}] WARN [RaftManager id=0] Connection to node 2 (kafka-2.kafka-headless.kafka.svc.cluster.local/10.48.3.41:9093) could not be established. Node may not be available. (org.apache.kafka.clients.NetworkClient)
        [{S("-19m41s")}] INFO [Partition orders-7 broker=0] Shrinking ISR from 0,1,2 to 0,1. Leader: (highWatermark: 88123914, endOffset: 88123920). Out of sync replicas: (brokerId: 2, endOffset: 88123903, lastCaughtUpTimeMs: 1795237849211). (kafka.cluster.Partition)
        [{S("-19m41s")}] INFO [Partition payments-3 broker=0] Shrinking ISR from 2,0,1 to 0,1. Leader: (highWatermark: 1204433, endOffset: 1204433). Out of sync replicas: (brokerId: 2, endOffset: 1204430, lastCaughtUpTimeMs: 1795237849004). (kafka.cluster.Partition)
        [{S("-2m10s")}] WARN [RaftManager id=0] Connection to node 2 (kafka-2.kafka-headless.kafka.svc.cluster.local/10.48.3.41:9093) could not be established. Node may not be available. (org.apache.kafka.clients.NetworkClient)
        """,
    )
    c.kps_alert(
        "KubeStatefulSetReplicasMismatch",
        {"namespace": "kafka", "statefulset": "kafka"},
        starts_ms=644,
    )
    c.expect(
        description=f"""StatefulSet kafka has 2 of 3 replicas ready because node {bad_name} became unreachable 20 minutes
        ago (conditions Unknown, "Kubelet stopped posting node status."). kafka-2 ran there: it was marked for
        deletion by the taint manager but stays Terminating, and a StatefulSet will not start a new kafka-2 until
        the old one is confirmed gone, so the broker stays out of the ISR. The disk (PVC data-kafka-2) is fine.
        The node is the problem: recover or delete it (which releases kafka-2 to reschedule).""",
        category="NodeFailure",
        culprit_ref=culprit("Node", None, bad_name),
        mentions=[bad_name.rsplit("-", 1)[1]],
        multi_hop=True,
        distractors=[
            "PVC data-kafka-2 and its PersistentVolume are Bound and healthy",
            "Kafka brokers log ISR shrinks and connection failures to broker 2 (consequences)",
            "GKE node-problem-detector conditions (all False, stale on the lost node)",
        ],
    )
    return c


@case
def volume_multi_attach_rwo_rollout() -> Case:
    c = Case(
        "volume-multi-attach-rwo-rollout",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-26T09:40:12Z",
        captured_after="3m",
    )
    nodes = eks_nodes(c, ["10.0.12.34", "10.0.20.9", "10.0.44.101", "10.0.71.9"], created="-5d")
    c.storage_class(
        "gp3", "ebs.csi.aws.com", default=True, parameters={"encrypted": "true", "type": "gp3"}
    )
    namespace(c, "observability", sas=("grafana",), labels={"team": "platform"})
    claim = c.pvc(
        "observability",
        "grafana",
        "10Gi",
        "gp3",
        created="-300d",
        volume="x",
        provisioner="ebs.csi.aws.com",
        selected_node=nodes[0]["metadata"]["name"],
        labels=helm_labels("grafana", "11.3.0", chart="grafana-8.6.0"),
        annotations=helm_annotations("grafana", "observability"),
    )
    pv = c.pv_for(
        claim,
        driver="ebs.csi.aws.com",
        handle="vol-0" + hex_string("grafana-vol", 16),
        zone="eu-west-1a",
    )
    c.configmap(
        "observability",
        "grafana",
        {
            "grafana.ini": "[analytics]\ncheck_for_updates = false\n[server]\nroot_url = https://grafana.acme.io\n[database]\ntype = sqlite3\n"
        },
        created="-300d",
        labels=helm_labels("grafana", "11.4.0", chart="grafana-8.8.2"),
    )
    c.secret(
        "observability",
        "grafana",
        {"admin-password": "gr4f4na-Adm1n-9x", "admin-user": "admin"},
        created="-300d",
    )

    def gtpl(version: str, chart: str) -> Obj:
        g = container(
            "grafana",
            f"docker.io/grafana/grafana:{version}",
            ports=[("grafana", 3000)],
            env_vars=[
                env_secret("GF_SECURITY_ADMIN_USER", "grafana", "admin-user"),
                env_secret("GF_SECURITY_ADMIN_PASSWORD", "grafana", "admin-password"),
            ],
            res=resources("100m", "256Mi", None, "512Mi"),
            readiness=http_probe("/api/health", 3000),
            liveness=http_probe("/api/health", 3000, initial=60, timeout=30, failure=10),
            mounts=[
                mount("config", "/etc/grafana/grafana.ini", sub_path="grafana.ini"),
                mount("storage", "/var/lib/grafana"),
            ],
        )
        init = container(
            "init-chown-data",
            "docker.io/library/busybox:1.31.1",
            command=["chown", "-R", "472:472", "/var/lib/grafana"],
            security={
                "capabilities": {"add": ["CHOWN"], "drop": ["ALL"]},
                "runAsNonRoot": False,
                "runAsUser": 0,
            },
            mounts=[mount("storage", "/var/lib/grafana")],
        )
        return template(
            selector_labels("grafana") | {"app.kubernetes.io/version": version},
            [g],
            init_containers=[init],
            service_account="grafana",
            volumes=[vol_cm("config", "grafana"), vol_pvc("storage", "grafana")],
            security={"fsGroup": 472, "runAsGroup": 472, "runAsUser": 472},
            annotations={"checksum/config": hex_string(chart, 64)},
        )

    d = c.deployment(
        "observability",
        "grafana",
        gtpl("11.4.0", "grafana-8.8.2"),
        replicas=1,
        revision=19,
        created="-300d",
        labels=helm_labels("grafana", "11.4.0", chart="grafana-8.8.2"),
        annotations=helm_annotations("grafana", "observability"),
    )
    old = c.replicaset(d, gtpl("11.3.0", "grafana-8.6.0"), revision=18, replicas=1, created="-21d")
    new = c.replicaset(d, revision=19, replicas=1, created="-27m")
    op = c.pod(
        old,
        nodes[0],
        "-4d",
        [running("grafana", "-4d")],
        init_states=[terminated("init-chown-data", 0, "Completed", "-4d", "-4d")],
    )
    np_ = c.pod(
        new,
        nodes[1],
        "-27m",
        [waiting("grafana", "PodInitializing")],
        init_states=[waiting("init-chown-data", "PodInitializing")],
        ip=False,
        patch_conditions={"PodReadyToStartContainers": {"status": "False"}},
    )
    np_["status"]["phase"] = "Pending"
    c.scheduled(np_, nodes[1], "-27m")
    c.event(
        np_,
        "FailedAttachVolume",
        f'Multi-Attach error for volume "{pv["metadata"]["name"]}" Volume is already used by pod(s) {op["metadata"]["name"]}',
        first="-26m59s",
        last="-26m59s",
        warning=True,
        component="attachdetach-controller",
    )
    c.event(
        np_,
        "FailedMount",
        "Unable to attach or mount volumes: unmounted volumes=[storage], unattached volumes=[storage], failed to process volumes=[]: context deadline exceeded",
        first="-24m57s",
        last="-48s",
        count=12,
        warning=True,
        host=nodes[1]["metadata"]["name"],
    )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {new['metadata']['name']} from 0 to 1",
        first="-27m",
        component="deployment-controller",
    )
    rs_created_pods(c, new, [np_])
    deployment_conditions(
        d,
        Progressing=(
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
            "-17m",
            "-17m",
        ),
    )
    c.service(
        "observability",
        "grafana",
        selector_labels("grafana"),
        [("service", 80, "grafana")],
        created="-300d",
        labels=helm_labels("grafana", "11.4.0", chart="grafana-8.8.2"),
    )
    c.kps_alert(
        "KubeDeploymentRolloutStuck",
        {
            "condition": "Progressing",
            "deployment": "grafana",
            "namespace": "observability",
            "status": "false",
        },
        starts_ms=88,
    )
    c.expect(
        description=f"""The grafana upgrade to 11.4.0 is stuck: the new pod was scheduled onto another node and
        cannot attach its ReadWriteOnce EBS volume because the old pod still holds it ("Multi-Attach error for
        volume {pv["metadata"]["name"]} Volume is already used by pod(s) {op["metadata"]["name"]}", then FailedMount
        timeouts). With the default RollingUpdate strategy (maxUnavailable 0) the old pod is never stopped, so the
        rollout deadlocks on PVC grafana. Switch the Deployment to strategy Recreate (or scale to 0 and back).""",
        category="VolumeFailure",
        culprit_ref=culprit("PersistentVolumeClaim", "observability", "grafana"),
        mentions=["grafana", "Multi-Attach"],
        multi_hop=True,
        distractors=[
            "Progressing=False ProgressDeadlineExceeded (the symptom the alert reports)",
            "the old grafana pod is Running and Ready",
        ],
        acceptable=[
            culprit("Deployment", "observability", "grafana"),
            culprit("PersistentVolume", None, pv["metadata"]["name"]),
        ],
    )
    return c


@case
def pvc_rwx_on_ebs_provisioning_failed() -> Case:
    c = Case(
        "pvc-rwx-on-ebs-provisioning-failed",
        cluster="staging-eu-1",
        platform=EKS_STAGING,
        alert_at="2026-11-04T12:09:51Z",
        captured_after="4m",
    )
    nodes = [
        c.node(ip, instance_type="m6i.large", pool="staging-general", created="-15d")
        for ip in ("10.1.9.214", "10.1.40.77", "10.1.83.160")
    ]
    c.storage_class(
        "gp2",
        "kubernetes.io/aws-ebs",
        parameters={"fsType": "ext4", "type": "gp2"},
        created="-500d",
        expansion=False,
    )
    c.storage_class(
        "gp3",
        "ebs.csi.aws.com",
        default=True,
        parameters={"encrypted": "true", "type": "gp3"},
        created="-500d",
    )
    c.storage_class(
        "efs-sc",
        "efs.csi.aws.com",
        binding="Immediate",
        parameters={
            "directoryPerms": "700",
            "fileSystemId": "fs-0c4f19e2a7b83d561",
            "provisioningMode": "efs-ap",
        },
        created="-200d",
        expansion=False,
    )
    namespace(c, "media", sas=("uploads-api",), labels={"team": "media", "env": "staging"})
    claim = c.pvc(
        "media",
        "uploads-shared",
        "50Gi",
        "gp3",
        created="-20m",
        phase="Pending",
        modes=["ReadWriteMany"],
        provisioner="ebs.csi.aws.com",
        selected_node=nodes[1]["metadata"]["name"],
        labels={"app.kubernetes.io/name": "uploads-api"},
    )
    up = web_container(
        "uploads-api",
        "ghcr.io/acme/uploads-api:0.4.0",
        env_vars=[env("UPLOAD_DIR", "/data/uploads")],
        mounts=[mount("uploads", "/data/uploads")],
    )
    tpl = template(
        app_labels("uploads-api", "0.4.0"),
        [up],
        service_account="uploads-api",
        volumes=[vol_pvc("uploads", "uploads-shared")],
    )
    d = c.deployment(
        "media",
        "uploads-api",
        tpl,
        replicas=2,
        revision=1,
        created="-20m",
        labels={"app.kubernetes.io/name": "uploads-api"},
    )
    rs = c.replicaset(d, revision=1, replicas=2, created="-20m")
    msg = 'running PreBind plugin "VolumeBinding": binding volumes: provisioning failed for PVC "uploads-shared"'
    pods = []
    for i in range(2):
        p = c.pod(
            rs,
            None,
            shift("-20m", i),
            [],
            unschedulable=msg,
            scheduled_at=shift("-20m", i),
            sched_reason="SchedulerError",
        )
        pods.append(p)
        c.scheduler_event(
            p,
            "FailedScheduling",
            msg,
            first=shift("-19m49s", i),
            last=shift("-2m31s", i * 3),
            count=11,
        )
    rs_created_pods(c, rs, pods)
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {rs['metadata']['name']} from 0 to 2",
        first="-20m",
        component="deployment-controller",
    )
    prov = f"ebs.csi.aws.com_ebs-csi-controller-6d9c7b8f45-w2x7q_{c.uid('csi-controller')}"
    c.event(
        claim,
        "WaitForFirstConsumer",
        "waiting for first consumer to be created before binding",
        first="-20m",
        component="persistentvolume-controller",
    )
    c.event(
        claim,
        "ExternalProvisioning",
        "Waiting for a volume to be created either by the external provisioner 'ebs.csi.aws.com' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
        first="-19m59s",
        last="-11s",
        count=80,
        component="persistentvolume-controller",
    )
    c.event(
        claim,
        "Provisioning",
        'External provisioner is provisioning volume for claim "media/uploads-shared"',
        first="-19m59s",
        last="-2m33s",
        count=11,
        component=prov,
    )
    c.event(
        claim,
        "ProvisioningFailed",
        'failed to provision volume with StorageClass "gp3": rpc error: code = InvalidArgument desc = Volume capabilities MULTI_NODE_MULTI_WRITER not supported. Only AccessModes [ReadWriteOnce] supported.',
        first="-19m58s",
        last="-2m32s",
        count=11,
        warning=True,
        component=prov,
    )
    c.service(
        "media",
        "uploads-api",
        selector_labels("uploads-api"),
        [("http", 80, "http")],
        created="-20m",
    )
    c.kps_alert(
        "KubePodNotReady",
        {"namespace": "media", "pod": pods[0]["metadata"]["name"]},
        starts_ms=412,
        ksm=False,
    )
    c.expect(
        description="""The uploads-api pods have been Pending since the app was first deployed: the scheduler cannot bind
        them because PVC uploads-shared never gets a volume. The claim asks for ReadWriteMany from StorageClass gp3,
        and the EBS CSI driver refuses ("Volume capabilities MULTI_NODE_MULTI_WRITER not supported. Only AccessModes
        [ReadWriteOnce] supported"). EBS volumes cannot be shared between nodes; recreate the claim on the efs-sc
        class (EFS supports ReadWriteMany) or make it ReadWriteOnce with a single replica.""",
        category="VolumeFailure",
        culprit_ref=culprit("PersistentVolumeClaim", "media", "uploads-shared"),
        mentions=["uploads-shared", "ReadWriteMany"],
        multi_hop=True,
        distractors=["PodScheduled=False on the pods reads like a scheduling capacity problem"],
        acceptable=[culprit("StorageClass", None, "gp3")],
    )
    return c


def mem_mi(q: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}
    for u, f in units.items():
        if q.endswith(u):
            return float(q[: -len(u)]) * f
    return float(q) / (1024 * 1024)


def cpu_m(q: str) -> float:
    return float(q[:-1]) if q.endswith("m") else float(q) * 1000


def fmt_mem(mi: float) -> str:
    if mi % 1024 == 0:
        return f"{int(mi // 1024)}Gi"
    return f"{int(mi)}Mi"


def fmt_cpu(m: float) -> str:
    return f"{int(m // 1000)}" if m % 1000 == 0 else f"{int(m)}m"


def quota_used(c: Case, ns: str, hard: dict[str, str]) -> dict[str, str]:
    """What the quota controller would report as used by the active pods of a namespace."""
    pods = [p for p in c.all("Pod", ns) if p["status"].get("phase") not in ("Succeeded", "Failed")]
    used: dict[str, str] = {}
    for key in hard:
        if key == "pods":
            used[key] = str(len(pods))
            continue
        if key in ("services", "configmaps", "secrets", "persistentvolumeclaims"):
            kind = {
                "services": "Service",
                "configmaps": "ConfigMap",
                "secrets": "Secret",
                "persistentvolumeclaims": "PersistentVolumeClaim",
            }[key]
            used[key] = str(len(c.all(kind, ns)))
            continue
        section, res = key.split(".")
        total = 0.0
        for p in pods:
            for ctr in p["spec"]["containers"]:
                q = ctr.get("resources", {}).get(section, {}).get(res)
                if q:
                    total += mem_mi(q) if res == "memory" else cpu_m(q)
        used[key] = fmt_mem(total) if res == "memory" else fmt_cpu(total)
    return used


@case
def ingress_503_service_selector_typo() -> Case:
    c = Case(
        "ingress-503-service-selector-typo",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-26T09:21:37Z",
        captured_after="3m",
    )
    nodes = eks_nodes(c, ["10.0.12.34", "10.0.44.101", "10.0.71.9"], created="-5d")
    namespace(c, "storefront", sas=("storefront-web",), labels={"team": "web"})
    namespace(c, "ingress-nginx", sas=("ingress-nginx",), created="-700d")
    labels = selector_labels("storefront-web", **{"app.kubernetes.io/component": "web"})
    labels["app.kubernetes.io/instance"] = "storefront"
    web = web_container(
        "storefront-web",
        "ghcr.io/acme/storefront-web:9.2.1",
        port=3000,
        res=resources("200m", "256Mi", None, "512Mi"),
    )
    tpl = template(
        labels | {"app.kubernetes.io/version": "9.2.1", "app.kubernetes.io/part-of": "storefront"},
        [web],
        service_account="storefront-web",
    )
    argo = {
        "argocd.argoproj.io/tracking-id": "storefront:apps/Deployment:storefront/storefront-web"
    }
    d = c.deployment(
        "storefront",
        "storefront-web",
        tpl,
        replicas=3,
        revision=44,
        created="-500d",
        selector=labels,
        labels=labels | {"app.kubernetes.io/part-of": "storefront"},
        annotations=argo,
    )
    rs = c.replicaset(d, revision=44, replicas=3, created="-2d")
    [
        c.pod(
            rs,
            nodes[i],
            shift("-2d", i * 30),
            [running("storefront-web", shift("-2d", i * 30 + 5))],
        )
        for i in range(3)
    ]
    c.hpa(
        d,
        min_replicas=3,
        max_replicas=15,
        current=3,
        desired=3,
        cpu_target=70,
        cpu_current=22,
        cpu_value="44m",
        last_scale="-2d",
    )
    svc_sel = selector_labels("storefront-web", **{"app.kubernetes.io/component": "web"})
    c.service(
        "storefront",
        "storefront-web",
        svc_sel,
        [("http", 80, "http")],
        created="-500d",
        slices=True,
        labels=svc_sel | {"app.kubernetes.io/part-of": "storefront"},
        annotations={
            "argocd.argoproj.io/tracking-id": "storefront:/Service:storefront/storefront-web"
        },
    )
    ing = c.ingress(
        "storefront",
        "storefront-web",
        "shop.acme.io",
        "storefront-web",
        "http",
        created="-500d",
        tls_name="shop-acme-io-tls",
        annotations={
            "cert-manager.io/cluster-issuer": "letsencrypt",
            "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
        },
        lb_ip="k8s-ingressn-ingressn-5f1c2e9a7b-8c1d3e5f7a9b2c4d.elb.eu-west-1.amazonaws.com",
    )
    ing["status"]["loadBalancer"]["ingress"] = [
        {
            "hostname": "k8s-ingressn-ingressn-5f1c2e9a7b-8c1d3e5f7a9b2c4d.elb.eu-west-1.amazonaws.com"
        }
    ]
    c.secret(
        "storefront",
        "shop-acme-io-tls",
        {
            "tls.crt": "-----BEGIN CERTIFICATE-----\nMIIF...\n-----END CERTIFICATE-----\n",
            "tls.key": "-----BEGIN EC PRIVATE KEY-----\nMHc...\n-----END EC PRIVATE KEY-----\n",
        },
        stype="kubernetes.io/tls",
        created="-60d",
        annotations={
            "cert-manager.io/certificate-name": "shop-acme-io-tls",
            "cert-manager.io/issuer-name": "letsencrypt",
        },
    )
    ctrl = container(
        "controller",
        "registry.k8s.io/ingress-nginx/controller:v1.12.1",
        args=[
            "/nginx-ingress-controller",
            "--publish-service=$(POD_NAMESPACE)/ingress-nginx-controller",
            "--election-id=ingress-nginx-leader",
            "--controller-class=k8s.io/ingress-nginx",
            "--ingress-class=nginx",
        ],
        ports=[("http", 80), ("https", 443), ("metrics", 10254)],
        env_vars=[
            env_field("POD_NAME", "metadata.name"),
            env_field("POD_NAMESPACE", "metadata.namespace"),
        ],
        res=resources("100m", "90Mi"),
        readiness=http_probe("/healthz", 10254),
        liveness=http_probe("/healthz", 10254, initial=10, failure=5),
    )
    ic_labels = {
        "app.kubernetes.io/component": "controller",
        "app.kubernetes.io/instance": "ingress-nginx",
        "app.kubernetes.io/name": "ingress-nginx",
    }
    ic = c.deployment(
        "ingress-nginx",
        "ingress-nginx-controller",
        template(
            ic_labels | {"app.kubernetes.io/version": "1.12.1"},
            [ctrl],
            service_account="ingress-nginx",
        ),
        replicas=2,
        revision=12,
        created="-700d",
        selector=ic_labels,
        labels=ic_labels | {"app.kubernetes.io/managed-by": "Helm"},
    )
    irs = c.replicaset(ic, revision=12, replicas=2, created="-30d")
    ipods = [
        c.pod(
            irs, nodes[i], shift("-30d", i * 60), [running("controller", shift("-30d", i * 60 + 8))]
        )
        for i in range(2)
    ]
    K = stamper(c, "klog")
    N = stamper(c, "nginx")
    lines = [
        f'I{K("-9m8s")}       7 store.go:440] "Found valid IngressClass" ingress="storefront/storefront-web" ingressclass="nginx"',
        f'W{K("-9m7s")}       7 controller.go:1216] Service "storefront/storefront-web" does not have any active Endpoint.',
    ]
    for i in range(10):
        t = shift("-4m", i * 21)
        lines.append(
            f'10.0.3.117 - - [{N(t)}] "GET /{["", "products/4412", "cart", "", "search?q=boots"][i % 5]} HTTP/2.0" 503 190 "-" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36" 64 0.000 [storefront-storefront-web-http] [] - - - - {hex_string(t, 32)}'
        )
        if i % 4 == 0:
            lines.append(
                f'W{K(shift(t, 1))}       7 controller.go:1216] Service "storefront/storefront-web" does not have any active Endpoint.'
            )
    c.log("ingress-nginx", ipods[0], "controller", "\n".join(lines))
    c.service(
        "ingress-nginx",
        "ingress-nginx-controller",
        ic_labels,
        [("http", 80, "http"), ("https", 443, "https")],
        created="-700d",
        labels=ic_labels,
    )
    expr = (
        'sum by (cluster, namespace, ingress) (rate(nginx_ingress_controller_requests{status=~"5.."}[5m]))\n  /\n'
        "sum by (cluster, namespace, ingress) (rate(nginx_ingress_controller_requests[5m]))\n  > 0.05"
    )
    c.alert(
        "NginxIngressHighErrorRate",
        {"ingress": "storefront-web", "namespace": "storefront", "team": "web"},
        summary="Ingress storefront/storefront-web is serving 100% errors",
        description="More than 5% of requests through ingress storefront/storefront-web returned 5xx over the last 5 minutes (currently 100%).",
        runbook="https://runbooks.acme.io/web/ingress-errors",
        expr=expr,
        severity="critical",
        starts_ms=905,
    )
    c.expect(
        description="""Every request through ingress storefront-web gets a 503 from ingress-nginx ("Service
        storefront/storefront-web does not have any active Endpoint"). The three storefront-web pods are Running and
        Ready, but the Service's selector was changed by the last Argo CD sync to app.kubernetes.io/instance=
        storefront-web while the pods carry app.kubernetes.io/instance=storefront, so the Service selects nothing
        and its Endpoints/EndpointSlice are empty. Fix the selector of Service storefront-web.""",
        category="ServiceNoEndpoints",
        culprit_ref=culprit("Service", "storefront", "storefront-web"),
        mentions=["storefront-web", "selector"],
        multi_hop=True,
        distractors=[
            "the storefront-web pods and Deployment are healthy",
            "HPA storefront-web is far from its maximum",
        ],
    )
    return c


@case
def checkout_errors_cart_service_selector() -> Case:
    c = Case(
        "checkout-errors-cart-service-selector",
        cluster="dc1-prod",
        platform=ONPREM,
        alert_at="2026-11-11T16:52:04Z",
        captured_after="4m",
    )
    nodes = onprem_nodes(c, 4)
    namespace(c, "shop", sas=("checkout", "cart", "newsletter"), labels={"team": "shop"})
    new_labels = {"app.kubernetes.io/name": "cart", "app.kubernetes.io/instance": "cart"}
    ct = web_container(
        "cart",
        "registry.dc1.acme.internal/shop/cart:2.2.9",
        res=resources("150m", "192Mi", None, "384Mi"),
    )
    d = c.deployment(
        "shop",
        "cart",
        template(new_labels | {"app.kubernetes.io/version": "2.2.9"}, [ct], service_account="cart"),
        replicas=3,
        revision=1,
        created="-15m",
        selector=new_labels,
        labels=new_labels | {"app.kubernetes.io/managed-by": "kustomize"},
    )
    rs = c.replicaset(d, revision=1, replicas=3, created="-15m")
    cpods = [
        c.pod(rs, nodes[i], shift("-15m", i), [running("cart", shift("-14m50s", i))])
        for i in range(3)
    ]
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {rs['metadata']['name']} from 0 to 3",
        first="-15m",
        component="deployment-controller",
    )
    rs_created_pods(c, rs, cpods)
    cart_svc = c.service(
        "shop",
        "cart",
        {"app": "cart"},
        [("http", 8080, "http")],
        created="-600d",
        labels={"app": "cart"},
    )
    co = web_container(
        "checkout",
        "registry.dc1.acme.internal/shop/checkout:1.14.2",
        env_vars=[env("CART_URL", "http://cart.shop.svc.cluster.local:8080")],
        res=resources("200m", "256Mi", None, "512Mi"),
    )
    _, _, copods = healthy(
        c,
        "shop",
        "checkout",
        template(app_labels("checkout", "1.14.2"), [co], service_account="checkout"),
        nodes,
        replicas=3,
        revision=40,
        created="-600d",
        rs_created="-4d",
    )
    ip = cart_svc["spec"]["clusterIP"]
    J = stamper(c, "iso")
    lines = []
    for i in range(12):
        t = shift("-5m", i * 23)
        lines.append(
            json.dumps(
                {
                    "level": "error",
                    "ts": J(t),
                    "caller": "cart/client.go:71",
                    "msg": "lock cart failed",
                    "cart_id": f"c_{51200 + i * 71}",
                    "error": f'Post "http://cart.shop.svc.cluster.local:8080/v1/carts/c_{51200 + i * 71}/lock": dial tcp {ip}:8080: connect: connection refused',
                }
            )
        )
        lines.append(
            json.dumps(
                {
                    "level": "info",
                    "ts": J(shift(t, 0.004)),
                    "caller": "httpx/log.go:28",
                    "msg": "request",
                    "method": "POST",
                    "path": "/v1/checkout",
                    "status": 502,
                    "duration_ms": 2,
                }
            )
        )
    c.log("shop", copods[0], "checkout", "\n".join(lines))
    # an unrelated broken workload in the same namespace
    nl = container(
        "newsletter",
        "registry.dc1.acme.internal/shop/newsletter:0.8.0",
        res=resources("50m", "64Mi", None, "128Mi"),
    )
    nd = c.deployment(
        "shop",
        "newsletter",
        template(app_labels("newsletter", "0.8.0"), [nl], service_account="newsletter"),
        replicas=1,
        revision=5,
        created="-90d",
    )
    nrs = c.replicaset(nd, revision=5, replicas=1, created="-26h")
    npod = c.pod(
        nrs, nodes[2], "-26h", [crashing("newsletter", 301, 1, "Error", "-3m50s", "-3m49s")]
    )
    c.container_events(
        npod,
        "newsletter",
        first="-26h",
        last="-3m50s",
        starts=302,
        backoffs=1390,
        backoff_last="-11s",
    )
    c.log(
        "shop",
        npod,
        "newsletter",
        "Error: SMTP_HOST is required\n    at loadConfig (/app/dist/config.js:12:11)\n    at Object.<anonymous> (/app/dist/index.js:5:16)\n",
        previous=True,
    )
    gone = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "cart-7b9f6d5c8d-tw5kz",
            "namespace": "shop",
            "uid": c.uid("gone-cart"),
            "resourceVersion": "90001123",
        },
    }
    c.event(
        gone,
        "Killing",
        "Stopping container cart",
        first="-15m10s",
        host="dc1-k8s-w02",
        field_path="spec.containers{cart}",
    )
    c.scheduler_event(
        gone,
        "FailedScheduling",
        "0/7 nodes are available: 3 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 4 Insufficient memory. preemption: 0/7 nodes are available: 3 Preemption is not helpful for scheduling, 4 No preemption victims found for incoming pod.",
        first="-21h3m",
        last="-20h58m",
        count=4,
    )
    http_error_alert(
        c,
        "shop",
        "checkout",
        ratio="96.1%",
        team="shop",
        runbook="https://runbooks.acme.io/shop/checkout#high-error-rate",
    )
    c.expect(
        description="""checkout fails almost every request because its calls to cart get "connect: connection refused" on
        the cart Service IP: Service cart selects app=cart, but cart was redeployed 15 minutes ago with the
        recommended labels (app.kubernetes.io/name=cart, app.kubernetes.io/instance=cart) and no longer carries
        app=cart. The three new cart pods are Running and Ready, yet the Service has no endpoints. Update the
        selector of Service cart (or add the old label back to the pods).""",
        category="ServiceNoEndpoints",
        culprit_ref=culprit("Service", "shop", "cart"),
        mentions=["cart"],
        multi_hop=True,
        distractors=[
            "Deployment newsletter in the same namespace is crash-looping (SMTP_HOST missing), unrelated",
            "an old FailedScheduling warning from yesterday for a cart pod that no longer exists",
        ],
        acceptable=[culprit("Deployment", "shop", "cart")],
    )
    return c


@case
def rollout_minreadyseconds_exceeds_deadline() -> Case:
    c = Case(
        "rollout-minreadyseconds-exceeds-deadline",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-19T15:05:10Z",
        captured_after="4m",
    )
    nodes = eks_nodes(c, ["10.0.9.200", "10.0.36.18", "10.0.88.7"], created="-3d")
    namespace(c, "notifications", sas=("notifications",), labels={"team": "messaging"})
    n = web_container(
        "notifications",
        "ghcr.io/acme/notifications:5.1.0",
        env_vars=[env("SMTP_RELAY", "smtp-relay.messaging.svc.cluster.local:25")],
    )
    tpl = template(app_labels("notifications", "5.1.0"), [n], service_account="notifications")
    old_tpl = template(
        app_labels("notifications", "5.0.7"),
        [
            web_container(
                "notifications",
                "ghcr.io/acme/notifications:5.0.7",
                env_vars=[env("SMTP_RELAY", "smtp-relay.messaging.svc.cluster.local:25")],
            )
        ],
        service_account="notifications",
    )
    d = c.deployment(
        "notifications",
        "notifications",
        tpl,
        replicas=4,
        revision=33,
        created="-420d",
        min_ready=1800,
        strategy={"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}, "type": "RollingUpdate"},
        labels=helm_labels("notifications", "5.1.0"),
        annotations=helm_annotations("notifications", "notifications"),
    )
    old = c.replicaset(d, old_tpl, revision=32, replicas=4, created="-9d")
    new = c.replicaset(d, revision=33, replicas=1, created="-28m")
    for i in range(4):
        c.pod(
            old,
            nodes[i % 3],
            shift("-9d", i * 40),
            [running("notifications", shift("-9d", i * 40 + 5))],
        )
    p = c.pod(new, nodes[1], "-28m", [running("notifications", "-27m54s")], ready_since="-27m31s")
    c.scheduled(p, nodes[1], "-28m")
    c.container_events(
        p,
        "notifications",
        first="-27m56s",
        last="-27m54s",
        starts=1,
        pulled_fresh='Successfully pulled image "ghcr.io/acme/notifications:5.1.0" in 1.113s (1.113s including waiting). Image size: 16502231 bytes.',
    )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {new['metadata']['name']} from 0 to 1",
        first="-28m",
        component="deployment-controller",
    )
    rs_created_pods(c, new, [p])
    deployment_conditions(
        d,
        Progressing=(
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
            "-17m30s",
            "-17m30s",
        ),
    )
    c.service(
        "notifications",
        "notifications",
        selector_labels("notifications"),
        [("http", 80, "http"), ("metrics", 9090, "metrics")],
        created="-420d",
    )
    rollout_in_progress(
        c,
        "notifications",
        "notifications-worker",
        "ghcr.io/acme/notifications-worker:5.0.7",
        "ghcr.io/acme/notifications-worker:5.1.0",
        nodes,
        started="-35s",
        replicas=2,
        revision=21,
    )
    c.kps_alert(
        "KubeDeploymentRolloutStuck",
        {
            "condition": "Progressing",
            "deployment": "notifications",
            "namespace": "notifications",
            "status": "false",
        },
        starts_ms=733,
    )
    c.expect(
        description="""The notifications rollout to 5.1.0 reports ProgressDeadlineExceeded although nothing is failing: the
        new pod has been Running and Ready for 27 minutes and no pod restarted. The Deployment was changed to
        minReadySeconds: 1800 (30 minutes) while progressDeadlineSeconds is 600, and with maxSurge 1 / maxUnavailable 0
        each new pod must stay Ready for 30 minutes before the next step, so every step outlasts the 10-minute
        deadline. Fix the Deployment's minReadySeconds (probably meant 180) or raise the deadline.""",
        category="RolloutStuck",
        culprit_ref=culprit("Deployment", "notifications", "notifications"),
        mentions=["notifications", "minReadySeconds"],
        multi_hop=False,
        distractors=[
            "all pods are Running and Ready, with no restarts and no warning events",
            "Deployment notifications-worker is mid-rollout and still progressing",
        ],
    )
    return c


@case
def rollout_podsecurity_restricted() -> Case:
    c = Case(
        "rollout-podsecurity-restricted",
        cluster="prod-us-1",
        platform=GKE_PROD,
        alert_at="2026-11-23T13:47:26Z",
        captured_after="4m",
    )
    nodes = gke_nodes(c, ["10.128.0.30", "10.128.0.31", "10.128.0.36"], created="-12d")
    namespace(
        c,
        "reports",
        sas=("reports-api",),
        labels={
            "team": "finance-eng",
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted",
        },
        created="-300d",
    )

    def api(version: str) -> Obj:
        return container(
            "reports-api",
            f"us-docker.pkg.dev/acme-prod-4821/apps/reports-api:{version}",
            ports=[("http", 8080)],
            env_vars=[env_secret("DATABASE_URL", "reports-db", "url")],
            res=resources("200m", "512Mi", None, "1Gi"),
            readiness=http_probe("/health/ready", "http"),
            liveness=http_probe("/health/live", "http", initial=15),
        )

    c.secret(
        "reports",
        "reports-db",
        {"url": "postgresql://reports:Hq7w2Lp9@10.30.0.5:5432/reports"},
        created="-300d",
    )
    tpl = template(
        app_labels("reports-api", "1.20.0"), [api("1.20.0")], service_account="reports-api"
    )
    d = c.deployment(
        "reports",
        "reports-api",
        tpl,
        replicas=2,
        revision=15,
        created="-300d",
        labels=helm_labels("reports-api", "1.20.0"),
        annotations=helm_annotations("reports-api", "reports"),
    )
    old = c.replicaset(
        d,
        template(
            app_labels("reports-api", "1.19.4"), [api("1.19.4")], service_account="reports-api"
        ),
        revision=14,
        replicas=2,
        created="-10d",
    )
    new = c.replicaset(d, revision=15, replicas=1, created="-30m")
    for i in range(2):
        c.pod(
            old,
            nodes[i],
            shift("-10d", i * 30),
            [running("reports-api", shift("-10d", i * 30 + 6))],
        )
    h = new["metadata"]["labels"]["pod-template-hash"]
    violation = (
        'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "reports-api" must set '
        'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "reports-api" must set '
        'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "reports-api" must set '
        'securityContext.runAsNonRoot=true), seccompProfile (pod or container "reports-api" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    )
    first_err = f'pods "reports-api-{h}-q2w8x" is forbidden: {violation}'
    c.event(
        new,
        "FailedCreate",
        f"Error creating: {first_err}",
        first="-30m",
        warning=True,
        component="replicaset-controller",
    )
    for suffix, at in (("b7nkc", "-29m59s"), ("x4g9r", "-29m58s"), ("m2l8t", "-29m56s")):
        c.event(
            new,
            "FailedCreate",
            f'Error creating: pods "reports-api-{h}-{suffix}" is forbidden: {violation}',
            first=at,
            warning=True,
            component="replicaset-controller",
        )
    c.event(
        new,
        "FailedCreate",
        f'(combined from similar events): Error creating: pods "reports-api-{h}-9hz2d" is forbidden: {violation}',
        first="-29m40s",
        last="-1m12s",
        count=17,
        warning=True,
        component="replicaset-controller",
    )
    new["status"]["_extra"] = {
        "conditions": [
            {
                "lastTransitionTime": c.t("-30m"),
                "message": first_err,
                "reason": "FailedCreate",
                "status": "True",
                "type": "ReplicaFailure",
            }
        ]
    }
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {new['metadata']['name']} from 0 to 1",
        first="-30m",
        component="deployment-controller",
    )
    deployment_conditions(
        d,
        Progressing=(
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
            "-20m",
            "-20m",
        ),
        ReplicaFailure=("True", "FailedCreate", first_err, "-30m", "-30m"),
    )
    c.resource_quota(
        "reports",
        "compute",
        {"limits.memory": "16Gi", "pods": "20", "requests.cpu": "8", "requests.memory": "8Gi"},
        {"limits.memory": "2Gi", "pods": "2", "requests.cpu": "400m", "requests.memory": "1Gi"},
        created="-300d",
    )
    c.service(
        "reports",
        "reports-api",
        selector_labels("reports-api"),
        [("http", 80, "http")],
        created="-300d",
    )
    c.kps_alert(
        "KubeDeploymentRolloutStuck",
        {
            "condition": "Progressing",
            "deployment": "reports-api",
            "namespace": "reports",
            "status": "false",
        },
        starts_ms=150,
    )
    c.expect(
        description="""The reports-api rollout to 1.20.0 cannot create a single pod: every attempt by the new ReplicaSet is
        rejected at admission with 'violates PodSecurity "restricted:latest"' (allowPrivilegeEscalation, capabilities,
        runAsNonRoot, seccompProfile). The reports namespace was switched to enforce the restricted Pod Security
        Standard; the two old pods predate the label and keep running, but the Deployment's pod template has no
        securityContext, so no new pod can ever be admitted. Add a compliant securityContext to Deployment
        reports-api.""",
        category="RolloutStuck",
        culprit_ref=culprit("Deployment", "reports", "reports-api"),
        mentions=["reports-api", "PodSecurity"],
        multi_hop=False,
        distractors=[
            "FailedCreate events on the ReplicaSet look like a quota problem, and a ResourceQuota exists (with plenty of room)",
            "the two 1.19.4 pods are Running and Ready",
        ],
        acceptable=[culprit("Namespace", None, "reports")],
    )
    return c


@case
def quota_exceeded_rollout_memory_limits() -> Case:
    c = Case(
        "quota-exceeded-rollout-memory-limits",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-12T10:44:20Z",
        captured_after="3m",
    )
    nodes = eks_nodes(
        c,
        ["10.0.2.55", "10.0.29.140", "10.0.37.6", "10.0.61.91", "10.0.76.204"],
        itype="m6i.2xlarge",
        created="-6d",
    )
    namespace(c, "orders", sas=("orders-worker",), labels={"team": "orders"})
    for name, replicas, req, lim in (
        ("orders-api", 3, "1Gi", "2Gi"),
        ("order-events", 4, "2Gi", "3Gi"),
        ("reporting", 2, "3Gi", "4608Mi"),
        ("invoice-renderer", 3, "2Gi", "3Gi"),
    ):
        ctr = web_container(
            name, f"ghcr.io/acme/{name}:4.3.1", res=resources("250m", req, "1", lim)
        )
        healthy(
            c,
            "orders",
            name,
            template(app_labels(name, "4.3.1"), [ctr]),
            nodes,
            replicas=replicas,
            revision=12,
            created="-400d",
            rs_created="-5d",
        )

    def worker(lim: str) -> Obj:
        return container(
            "orders-worker",
            "ghcr.io/acme/orders-worker:4.3.1",
            args=["--queue=orders", "--concurrency=8"],
            res=resources("250m", "512Mi", "1", lim),
            ports=[("metrics", 9090)],
            liveness=http_probe("/healthz", "metrics", initial=10),
        )

    tpl = template(
        app_labels("orders-worker", "4.3.1"), [worker("2Gi")], service_account="orders-worker"
    )
    d = c.deployment(
        "orders",
        "orders-worker",
        tpl,
        replicas=4,
        revision=27,
        created="-400d",
        labels=helm_labels("orders-worker", "4.3.1"),
        annotations=helm_annotations("orders-worker", "orders"),
    )
    old = c.replicaset(
        d,
        template(
            app_labels("orders-worker", "4.3.1"), [worker("1Gi")], service_account="orders-worker"
        ),
        revision=26,
        replicas=3,
        created="-5d",
    )
    new = c.replicaset(d, revision=27, replicas=1, created="-20m")
    for i in range(3):
        c.pod(
            old,
            nodes[i],
            shift("-5d", i * 30),
            [running("orders-worker", shift("-5d", i * 30 + 4))],
        )
    hard = {
        "limits.cpu": "40",
        "limits.memory": "40Gi",
        "pods": "50",
        "requests.cpu": "16",
        "requests.memory": "32Gi",
    }
    used = quota_used(c, "orders", hard)
    h = new["metadata"]["labels"]["pod-template-hash"]
    err = f"exceeded quota: compute-resources, requested: limits.memory=2Gi, used: limits.memory={used['limits.memory']}, limited: limits.memory=40Gi"
    c.resource_quota("orders", "compute-resources", hard, used, created="-400d")
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {new['metadata']['name']} from 0 to 1",
        first="-20m",
        component="deployment-controller",
    )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled down replica set {old['metadata']['name']} from 4 to 3",
        first="-20m",
        component="deployment-controller",
    )
    for suffix, at in (
        ("k2m4p", "-20m"),
        ("7xq9d", "-20m"),
        ("fz5wr", "-19m59s"),
        ("n8ct6", "-19m57s"),
    ):
        c.event(
            new,
            "FailedCreate",
            f'Error creating: pods "orders-worker-{h}-{suffix}" is forbidden: {err}',
            first=at,
            warning=True,
            component="replicaset-controller",
        )
    c.event(
        new,
        "FailedCreate",
        f'(combined from similar events): Error creating: pods "orders-worker-{h}-r4vbs" is forbidden: {err}',
        first="-19m40s",
        last="-2m5s",
        count=12,
        warning=True,
        component="replicaset-controller",
    )
    new["status"]["_extra"] = {
        "conditions": [
            {
                "lastTransitionTime": c.t("-20m"),
                "message": f'pods "orders-worker-{h}-k2m4p" is forbidden: {err}',
                "reason": "FailedCreate",
                "status": "True",
                "type": "ReplicaFailure",
            }
        ]
    }
    deployment_conditions(
        d,
        Progressing=(
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
            "-10m",
            "-10m",
        ),
        ReplicaFailure=(
            "True",
            "FailedCreate",
            f'pods "orders-worker-{h}-k2m4p" is forbidden: {err}',
            "-20m",
            "-20m",
        ),
    )
    c.kps_alert(
        "KubeDeploymentReplicasMismatch",
        {"deployment": "orders-worker", "namespace": "orders"},
        starts_ms=505,
    )
    c.expect(
        description=f"""orders-worker runs 3 of 4 replicas because its rollout cannot create pods: the new revision raises the
        container memory limit from 1Gi to 2Gi, and the namespace ResourceQuota compute-resources rejects every new
        pod ("exceeded quota: compute-resources, requested: limits.memory=2Gi, used: limits.memory={used["limits.memory"]},
        limited: limits.memory=40Gi"). The old ReplicaSet was already scaled down by one, so capacity is reduced until
        the quota is raised (or the limit lowered).""",
        category="QuotaExceeded",
        culprit_ref=culprit("ResourceQuota", "orders", "compute-resources"),
        mentions=["compute-resources", "limits.memory"],
        multi_hop=True,
        distractors=[
            "Progressing=False ProgressDeadlineExceeded and ReplicaFailure conditions on the Deployment (symptoms)",
            "four other healthy Deployments in the namespace consume most of the quota",
        ],
        acceptable=[culprit("Deployment", "orders", "orders-worker")],
    )
    return c


@case
def quota_pods_count_blocks_hpa() -> Case:
    c = Case(
        "quota-pods-count-blocks-hpa",
        cluster="prod-us-1",
        platform=GKE_PROD,
        alert_at="2026-11-24T18:32:51Z",
        captured_after="4m",
    )
    nodes = gke_nodes(
        c, [f"10.128.0.{40 + i}" for i in range(5)], itype="e2-standard-8", created="-8d"
    )
    namespace(c, "search", sas=("search-api",), labels={"team": "search"})
    for name, replicas in (
        ("search-indexer", 4),
        ("query-suggest", 3),
        ("search-admin", 1),
        ("synonyms-sync", 2),
    ):
        ctr = web_container(
            name,
            f"us-docker.pkg.dev/acme-prod-4821/apps/{name}:2.11.0",
            res=resources("200m", "256Mi", None, "512Mi"),
        )
        healthy(
            c,
            "search",
            name,
            template(app_labels(name, "2.11.0"), [ctr]),
            nodes,
            replicas=replicas,
            revision=9,
            created="-300d",
            rs_created="-3d",
        )
    api = web_container(
        "search-api",
        "us-docker.pkg.dev/acme-prod-4821/apps/search-api:2.11.0",
        res=resources("500m", "512Mi", None, "1Gi"),
    )
    d = c.deployment(
        "search",
        "search-api",
        template(app_labels("search-api", "2.11.0"), [api], service_account="search-api"),
        replicas=14,
        revision=31,
        created="-300d",
        labels=helm_labels("search-api", "2.11.0"),
        annotations=helm_annotations("search-api", "search"),
    )
    rs = c.replicaset(d, revision=31, replicas=14, created="-3d")
    for i in range(10):
        start = shift("-3d", i * 20) if i < 6 else shift("-1h05m", (i - 6) * 60)
        c.pod(rs, nodes[i % 5], start, [running("search-api", shift(start, 7))])
    hard = {"pods": "20", "services": "10"}
    c.resource_quota(
        "search", "object-counts", hard, {"pods": "20", "services": "5"}, created="-300d"
    )
    c.resource_quota(
        "search",
        "compute",
        {"limits.memory": "64Gi", "requests.cpu": "24", "requests.memory": "32Gi"},
        {"limits.memory": "15Gi", "requests.cpu": "7", "requests.memory": "7680Mi"},
        created="-300d",
    )
    hsh = rs["metadata"]["labels"]["pod-template-hash"]
    err = "exceeded quota: object-counts, requested: pods=1, used: pods=20, limited: pods=20"
    for suffix, at in (
        ("8kq2w", "-41m"),
        ("tz4mn", "-41m"),
        ("c9vxb", "-40m59s"),
        ("p2wdl", "-40m58s"),
    ):
        c.event(
            rs,
            "FailedCreate",
            f'Error creating: pods "search-api-{hsh}-{suffix}" is forbidden: {err}',
            first=at,
            warning=True,
            component="replicaset-controller",
        )
    c.event(
        rs,
        "FailedCreate",
        f'(combined from similar events): Error creating: pods "search-api-{hsh}-w7rkf" is forbidden: {err}',
        first="-40m40s",
        last="-1m3s",
        count=31,
        warning=True,
        component="replicaset-controller",
    )
    rs["status"]["_extra"] = {
        "conditions": [
            {
                "lastTransitionTime": c.t("-41m"),
                "message": f'pods "search-api-{hsh}-8kq2w" is forbidden: {err}',
                "reason": "FailedCreate",
                "status": "True",
                "type": "ReplicaFailure",
            }
        ]
    }
    h = c.hpa(
        d,
        min_replicas=6,
        max_replicas=30,
        current=10,
        desired=14,
        cpu_target=65,
        cpu_current=118,
        cpu_value="590m",
        last_scale="-41m",
    )
    c.event(
        h,
        "SuccessfulRescale",
        "New size: 14; reason: cpu resource utilization (percentage of request) above target",
        first="-41m",
        component="horizontal-pod-autoscaler",
    )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {rs['metadata']['name']} from 10 to 14",
        first="-41m",
        component="deployment-controller",
    )
    deployment_conditions(
        d,
        ReplicaFailure=(
            "True",
            "FailedCreate",
            f'pods "search-api-{hsh}-8kq2w" is forbidden: {err}',
            "-41m",
            "-41m",
        ),
    )
    c.service(
        "search",
        "search-api",
        selector_labels("search-api"),
        [("http", 80, "http"), ("metrics", 9090, "metrics")],
        created="-300d",
    )
    lat = [
        (
            {"namespace": "search", "service": "search-api"},
            [
                0.21,
                0.24,
                0.33,
                0.52,
                0.81,
                1.12,
                1.37,
                1.44,
                1.52,
                1.61,
                1.58,
                1.66,
                1.71,
                1.69,
                1.74,
                1.8,
            ],
        )
    ]
    c.metric(
        "latency_p99",
        'histogram_quantile(0.99, sum by (le, namespace, service) (rate(http_server_request_duration_seconds_bucket{namespace="search", service="search-api"}[5m])))',
        lat,
        step=180,
    )
    c.alert(
        "HighLatencyP99",
        {"namespace": "search", "service": "search-api", "team": "search"},
        summary="search-api p99 latency is 1.74s",
        description="p99 latency of search/search-api has been above 750ms for 15 minutes (currently 1.74s).",
        runbook="https://runbooks.acme.io/search/search-api#latency",
        expr='histogram_quantile(0.99, sum by (le, cluster, namespace, service) (rate(http_server_request_duration_seconds_bucket{namespace="search", service="search-api"}[5m]))) > 0.75',
        severity="warning",
        starts_ms=274,
    )
    c.expect(
        description="""search-api latency climbs because it cannot scale out: CPU is at 118% of requests, the HPA raised the
        Deployment from 10 to 14 replicas 41 minutes ago (well below its maxReplicas of 30), but the ReplicaSet's
        FailedCreate events show "exceeded quota: object-counts, requested: pods=1, used: pods=20, limited: pods=20".
        The namespace pod-count quota is exhausted, so the 10 existing pods stay overloaded. Raise the pods limit of
        ResourceQuota object-counts.""",
        category="QuotaExceeded",
        culprit_ref=culprit("ResourceQuota", "search", "object-counts"),
        mentions=["object-counts"],
        multi_hop=True,
        distractors=[
            "HPA search-api is not at its maximum (ScalingLimited=False)",
            "ResourceQuota compute has plenty of room",
            "all existing search-api pods are Running and Ready",
        ],
    )
    return c


@case
def job_failed_db_migration() -> Case:
    c = Case(
        "job-failed-db-migration",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-16T09:27:02Z",
        captured_after="3m",
    )
    nodes = eks_nodes(c, ["10.0.11.41", "10.0.46.73", "10.0.84.200"], created="-8d")
    namespace(c, "shop", sas=("checkout",), labels={"team": "shop"})
    c.secret(
        "shop",
        "checkout-db",
        {
            "url": "postgresql://checkout:Gk2m9QwT@shop-db.c9xk2mq7zt1p.eu-west-1.rds.amazonaws.com:5432/checkout"
        },
        created="-500d",
    )
    co = web_container(
        "checkout",
        "ghcr.io/acme/checkout:1.14.2",
        env_vars=[env_secret("DATABASE_URL", "checkout-db", "url")],
    )
    healthy(
        c,
        "shop",
        "checkout",
        template(app_labels("checkout", "1.14.2"), [co], service_account="checkout"),
        nodes,
        replicas=3,
        revision=41,
        created="-500d",
        rs_created="-6d",
    )

    def mig(version: str) -> Obj:
        return template(
            app_labels("checkout-db-migrate", version),
            [
                container(
                    "migrate",
                    f"ghcr.io/acme/checkout:{version}",
                    command=["alembic", "upgrade", "head"],
                    env_vars=[env_secret("DATABASE_URL", "checkout-db", "url")],
                    res=resources("100m", "128Mi", None, "256Mi"),
                )
            ],
            restart_policy="Never",
            service_account="checkout",
        )

    ann = {
        "argocd.argoproj.io/hook": "PreSync",
        "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation",
    }
    _, old_pods = run_job(
        c,
        "shop",
        nodes[0],
        scheduled="-6d",
        outcome="succeeded",
        duration_s=14,
        name="checkout-db-migrate-41",
        job_tpl=mig("1.14.2"),
        backoff_limit=2,
        events=False,
    )
    _, pods = run_job(
        c,
        "shop",
        nodes[1],
        scheduled="-19m30s",
        outcome="failed",
        duration_s=12,
        name="checkout-db-migrate-42",
        job_tpl=mig("1.15.0"),
        backoff_limit=2,
    )
    for j in c.all("Job", "shop"):
        j["metadata"]["annotations"] = dict(ann)
        j["metadata"]["labels"]["app.kubernetes.io/name"] = "checkout-db-migrate"
    P = stamper(c, "python")
    for p in pods:
        st = p["status"]["containerStatuses"][0]["state"]["terminated"]["startedAt"]
        c.log(
            "shop",
            p,
            "migrate",
            """\
            INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.
            INFO  [alembic.runtime.migration] Will assume transactional DDL.
            INFO  [alembic.runtime.migration] Running upgrade 3f9c2d1a7b84 -> 8e1b4c6d2f90, add gift card reference to orders
            Traceback (most recent call last):
              File "/usr/local/lib/python3.12/site-packages/sqlalchemy/engine/base.py", line 1967, in _exec_single_context
                self.dialect.do_execute(
              File "/usr/local/lib/python3.12/site-packages/sqlalchemy/engine/default.py", line 941, in do_execute
                cursor.execute(statement, parameters)
            psycopg2.errors.DuplicateColumn: column "gift_card_id" of relation "orders" already exists


            The above exception was the direct cause of the following exception:

            Traceback (most recent call last):
              File "/usr/local/bin/alembic", line 8, in <module>
                sys.exit(main())
                         ^^^^^^
              File "/usr/local/lib/python3.12/site-packages/alembic/config.py", line 636, in main
                CommandLine(prog=prog).main(argv=argv)
              File "/usr/local/lib/python3.12/site-packages/alembic/command.py", line 406, in upgrade
                script.run_env()
              File "/app/migrations/env.py", line 71, in <module>
                run_migrations_online()
              File "/app/migrations/versions/8e1b4c6d2f90_add_gift_card_reference.py", line 19, in upgrade
                op.add_column("orders", sa.Column("gift_card_id", sa.UUID(), nullable=True))
              File "/usr/local/lib/python3.12/site-packages/sqlalchemy/engine/default.py", line 941, in do_execute
                cursor.execute(statement, parameters)
            sqlalchemy.exc.ProgrammingError: (psycopg2.errors.DuplicateColumn) column "gift_card_id" of relation "orders" already exists

            [SQL: ALTER TABLE orders ADD COLUMN gift_card_id UUID]
            (Background on this error at: https://sqlalche.me/e/20/f405)
            """.replace("INFO  [", f"{P(st)} INFO  ["),
        )
    c.log(
        "shop",
        old_pods[0],
        "migrate",
        "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\nINFO  [alembic.runtime.migration] Will assume transactional DDL.\nINFO  [alembic.runtime.migration] Running upgrade 77ab01c9e3d2 -> 3f9c2d1a7b84, index orders by customer\n",
    )
    c.kps_alert(
        "KubeJobFailed",
        {"condition": "true", "job_name": "checkout-db-migrate-42", "namespace": "shop"},
        starts_ms=611,
    )
    c.expect(
        description="""The pre-sync migration Job checkout-db-migrate-42 (checkout 1.15.0) failed: all 3 attempts (backoffLimit 2)
        exit 1 with alembic's "psycopg2.errors.DuplicateColumn: column "gift_card_id" of relation "orders" already
        exists" while running revision 8e1b4c6d2f90. The column was evidently added out of band, so the migration
        is not idempotent against the real schema; the deploy is blocked and checkout keeps running 1.14.2. Fix the
        migration (or the schema), then delete the failed Job and re-sync.""",
        category="JobFailed",
        culprit_ref=culprit("Job", "shop", "checkout-db-migrate-42"),
        mentions=["checkout-db-migrate-42", "gift_card_id"],
        multi_hop=False,
        distractors=[
            "the previous migration Job checkout-db-migrate-41 completed and left a Succeeded pod",
            "the checkout Deployment is healthy",
        ],
    )
    return c


@case
def cronjob_report_keyerror() -> Case:
    c = Case(
        "cronjob-report-keyerror",
        cluster="dc1-prod",
        platform=ONPREM,
        alert_at="2026-11-15T02:33:40Z",
        captured_after="4m",
    )
    nodes = onprem_nodes(c, 3)
    namespace(c, "finance", sas=("fx-report",), labels={"team": "finance-eng"})
    c.secret(
        "finance",
        "fx-report",
        {
            "ledger-dsn": "postgresql://fx_report:p8Wq3zLk@pg-ledger.dc1.acme.internal:5432/ledger",
            "smtp-password": "m4il-Rly-22",
        },
        created="-500d",
    )
    job_tpl = template(
        app_labels("fx-report", "3.4.0"),
        [
            container(
                "report",
                "registry.dc1.acme.internal/finance/fx-report:3.4.0",
                args=["--date=yesterday", "--mail-to=treasury@acme.io"],
                env_vars=[
                    env("FX_API", "https://fx.acme.internal/v2"),
                    env_secret("LEDGER_DSN", "fx-report", "ledger-dsn"),
                ],
                res=resources("200m", "256Mi", None, "512Mi"),
            )
        ],
        restart_policy="Never",
        service_account="fx-report",
    )
    cj = cronjob(
        c,
        "finance",
        "fx-report",
        job_tpl,
        schedule="15 2 * * *",
        created="-500d",
        last_schedule="-22m40s",
        last_success="-23h52m",
        backoff_limit=3,
    )
    _, ypods = run_job(
        c,
        cj,
        nodes[0],
        scheduled="-24h22m40s",
        outcome="succeeded",
        duration_s=31,
        failures_before=2,
    )
    job, pods = run_job(c, cj, nodes[1], scheduled="-22m40s", outcome="failed", duration_s=12)
    P = stamper(c, "python")
    for p in pods:
        st = p["status"]["containerStatuses"][0]["state"]["terminated"]["startedAt"]
        c.log(
            "finance",
            p,
            "report",
            f"""\
            {P(shift(st, 0.118))} INFO fx_report.cli: building FX exposure report for 2026-11-14
            {P(shift(st, 0.121))} INFO fx_report.rates: fetching https://fx.acme.internal/v2/rates?base=EUR&date=2026-11-14
            {P(shift(st, 0.602))} INFO fx_report.rates: 30 currencies received
            {P(shift(st, 2.907))} INFO fx_report.ledger: 18422 open positions in 31 currencies
            Traceback (most recent call last):
              File "/usr/local/lib/python3.12/runpy.py", line 198, in _run_module_as_main
                return _run_code(code, main_globals, None,
                       ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
              File "/app/fx_report/__main__.py", line 4, in <module>
                main()
              File "/app/fx_report/cli.py", line 58, in main
                report = build_report(rates, positions)
                         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
              File "/app/fx_report/report.py", line 41, in build_report
                eur_amount = position.amount / rates[position.currency]
                                               ~~~~~^^^^^^^^^^^^^^^^^^^
            KeyError: 'HRK'
            """,
        )
    for p in ypods[:2]:
        st = p["status"]["containerStatuses"][0]["state"]["terminated"]["startedAt"]
        c.log(
            "finance",
            p,
            "report",
            f"""\
            {P(shift(st, 0.131))} INFO fx_report.cli: building FX exposure report for 2026-11-13
            {P(shift(st, 0.140))} INFO fx_report.rates: fetching https://fx.acme.internal/v2/rates?base=EUR&date=2026-11-13
            {P(shift(st, 5.162))} ERROR fx_report.ledger: could not connect to ledger database
            psycopg.OperationalError: connection failed: connection to server at "10.20.8.15", port 5432 failed: timeout expired
            """,
        )
    c.log(
        "finance",
        ypods[2],
        "report",
        f"{P(shift(ypods[2]['status']['containerStatuses'][0]['state']['terminated']['startedAt'], 0.2))} INFO fx_report.cli: building FX exposure report for 2026-11-13\n{P(shift(ypods[2]['status']['containerStatuses'][0]['state']['terminated']['startedAt'], 29.5))} INFO fx_report.mail: report sent to treasury@acme.io\n",
    )
    c.kps_alert(
        "KubeJobFailed",
        {"condition": "true", "job_name": job["metadata"]["name"], "namespace": "finance"},
        starts_ms=19,
    )
    c.expect(
        description=f"""Tonight's run of CronJob fx-report (Job {job["metadata"]["name"]}) failed after 4 attempts (backoffLimit 3):
        every pod exits 1 with a Python traceback ending in "KeyError: 'HRK'" in build_report. The FX rates API no
        longer returns the Croatian kuna (30 currencies) while the ledger still has open HRK positions, so the code
        crashes on the missing rate. This is an application bug in the report; fix the code/data, then rerun and
        delete the failed Job.""",
        category="JobFailed",
        culprit_ref=culprit("CronJob", "finance", "fx-report"),
        mentions=["fx-report", "HRK"],
        multi_hop=False,
        distractors=[
            "yesterday's run completed only after two failed attempts (a database timeout, a different and transient error)",
            "Succeeded and Failed pods from yesterday's Job are still in the namespace",
        ],
        acceptable=[culprit("Job", "finance", job["metadata"]["name"])],
    )
    return c


@case
def hpa_maxed_out_frontend() -> Case:
    c = Case(
        "hpa-maxed-out-frontend",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-20T19:08:27Z",
        captured_after="3m",
    )
    nodes = eks_nodes(
        c,
        ["10.0.6.90", "10.0.31.4", "10.0.42.250", "10.0.65.33", "10.0.93.140"],
        itype="c6i.2xlarge",
        created="-2d",
    )
    namespace(c, "shop", sas=("frontend", "cart"), labels={"team": "shop"})
    fe = web_container(
        "frontend",
        "ghcr.io/acme/frontend:7.9.3",
        port=3000,
        res=resources("300m", "384Mi", None, "768Mi"),
    )
    tpl = template(app_labels("frontend", "7.9.3"), [fe], service_account="frontend")
    d = c.deployment(
        "shop",
        "frontend",
        tpl,
        replicas=12,
        revision=88,
        created="-600d",
        labels=helm_labels("frontend", "7.9.3"),
        annotations=helm_annotations("frontend", "shop"),
    )
    rs = c.replicaset(d, revision=88, replicas=12, created="-3d")
    for i in range(12):
        start = (
            shift("-3d", i * 20)
            if i < 4
            else shift("-40m", (i - 4) * 40)
            if i < 8
            else shift("-19m", (i - 8) * 15)
        )
        c.pod(rs, nodes[i % 5], start, [running("frontend", shift(start, 6))])
    h = c.hpa(
        d,
        min_replicas=4,
        max_replicas=12,
        current=12,
        desired=12,
        cpu_target=70,
        cpu_current=168,
        cpu_value="504m",
        last_scale="-19m",
        limited=True,
    )
    c.event(
        h,
        "SuccessfulRescale",
        "New size: 12; reason: cpu resource utilization (percentage of request) above target",
        first="-19m",
        component="horizontal-pod-autoscaler",
    )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {rs['metadata']['name']} from 8 to 12",
        first="-19m",
        component="deployment-controller",
    )
    c.service(
        "shop",
        "frontend",
        selector_labels("frontend"),
        [("http", 80, "http"), ("metrics", 9090, "metrics")],
        created="-600d",
    )
    ct = web_container(
        "cart", "ghcr.io/acme/cart:2.2.9", res=resources("150m", "192Mi", None, "384Mi")
    )
    cd, _, _ = healthy(
        c,
        "shop",
        "cart",
        template(app_labels("cart", "2.2.9"), [ct], service_account="cart"),
        nodes,
        replicas=3,
        revision=25,
        created="-380d",
        rs_created="-7d",
    )
    c.hpa(
        cd,
        min_replicas=3,
        max_replicas=10,
        current=3,
        desired=3,
        cpu_target=70,
        cpu_current=48,
        cpu_value="72m",
        last_scale="-7d",
    )
    c.metric(
        "frontend_cpu_utilization",
        'sum(rate(container_cpu_usage_seconds_total{namespace="shop", container="frontend"}[5m])) / sum(kube_pod_container_resource_requests{namespace="shop", container="frontend", resource="cpu"})',
        [
            (
                {},
                [
                    0.61,
                    0.66,
                    0.74,
                    0.92,
                    1.21,
                    1.38,
                    1.52,
                    1.49,
                    1.58,
                    1.63,
                    1.66,
                    1.69,
                    1.71,
                    1.68,
                    1.7,
                    1.68,
                ],
            )
        ],
        step=300,
    )
    c.metric(
        "frontend_request_rate",
        'sum(rate(http_server_requests_total{namespace="shop", service="frontend"}[5m]))',
        [
            (
                {},
                [
                    812,
                    840,
                    1010,
                    1630,
                    2410,
                    2890,
                    3120,
                    3090,
                    3180,
                    3240,
                    3260,
                    3310,
                    3290,
                    3305,
                    3320,
                    3312,
                ],
            )
        ],
        step=300,
    )
    c.kps_alert(
        "KubeHpaMaxedOut",
        {"horizontalpodautoscaler": "frontend", "namespace": "shop"},
        starts_ms=777,
    )
    c.expect(
        description="""HPA frontend has been pinned at its maxReplicas of 12 for over 15 minutes: traffic roughly quadrupled
        (a campaign), CPU sits at 168% of requests against a 70% target, and the HPA reports ScalingLimited=True
        (TooManyReplicas, "the desired replica count is more than the maximum replica count"). The pods are healthy;
        the autoscaler's ceiling is the limit. Raise maxReplicas of HPA frontend (the nodes have room) or add
        capacity.""",
        category="ScalingLimit",
        culprit_ref=culprit("HorizontalPodAutoscaler", "shop", "frontend"),
        mentions=["frontend", "12"],
        multi_hop=False,
        distractors=[
            "HPA cart in the same namespace is at 3 of 10 (not at max)",
            "all frontend pods are Running and Ready",
        ],
    )
    return c


@case
def latency_api_gateway_hpa_at_max() -> Case:
    c = Case(
        "latency-api-gateway-hpa-at-max",
        cluster="prod-us-1",
        platform=GKE_PROD,
        alert_at="2026-11-02T20:14:55Z",
        captured_after="4m",
    )
    nodes = gke_nodes(
        c, [f"10.128.0.{150 + i}" for i in range(6)], itype="e2-standard-8", created="-5d"
    )
    namespace(c, "edge", sas=("api-gateway", "rate-limiter"), labels={"team": "edge"})
    c.configmap(
        "edge",
        "api-gateway-envoy",
        {
            "envoy.yaml": "static_resources:\n  listeners:\n  - name: public\n    address: {socket_address: {address: 0.0.0.0, port_value: 8080}}\n"
        },
        created="-300d",
    )
    gw = container(
        "envoy",
        "envoyproxy/envoy:v1.32.3",
        args=["-c", "/etc/envoy/envoy.yaml", "--concurrency", "2"],
        ports=[("http", 8080), ("admin", 9901)],
        res=resources("500m", "256Mi", None, "512Mi"),
        readiness=http_probe("/ready", "admin"),
        liveness=tcp_probe("http", initial=10),
        mounts=[mount("config", "/etc/envoy", read_only=True)],
    )
    tpl = template(
        app_labels("api-gateway", "1.32.3"),
        [gw],
        service_account="api-gateway",
        volumes=[vol_cm("config", "api-gateway-envoy")],
    )
    d = c.deployment(
        "edge",
        "api-gateway",
        tpl,
        replicas=20,
        revision=17,
        created="-300d",
        labels=helm_labels("api-gateway", "1.32.3"),
        annotations=helm_annotations("api-gateway", "edge"),
    )
    rs = c.replicaset(d, revision=17, replicas=20, created="-4d")
    for i in range(20):
        start = shift("-4d", i * 15) if i < 6 else shift("-1h12m", (i - 6) * 90)
        c.pod(rs, nodes[i % 6], start, [running("envoy", shift(start, 4))])
    h = c.hpa(
        d,
        min_replicas=6,
        max_replicas=20,
        current=20,
        desired=20,
        cpu_target=60,
        cpu_current=191,
        cpu_value="955m",
        last_scale="-51m",
        limited=True,
    )
    c.event(
        h,
        "SuccessfulRescale",
        "New size: 20; reason: cpu resource utilization (percentage of request) above target",
        first="-51m",
        component="horizontal-pod-autoscaler",
    )
    c.service(
        "edge",
        "api-gateway",
        selector_labels("api-gateway"),
        [("http", 80, "http")],
        created="-300d",
        slices=True,
    )
    rl = web_container(
        "rate-limiter",
        "envoyproxy/ratelimit:3fcc3609",
        res=resources("100m", "64Mi", None, "128Mi"),
    )
    rd, _, _ = healthy(
        c,
        "edge",
        "rate-limiter",
        template(app_labels("rate-limiter", "3fcc3609"), [rl], service_account="rate-limiter"),
        nodes,
        replicas=3,
        revision=4,
        created="-300d",
        rs_created="-4d",
    )
    c.hpa(
        rd,
        min_replicas=3,
        max_replicas=12,
        current=3,
        desired=3,
        cpu_target=70,
        cpu_current=31,
        cpu_value="31m",
        last_scale="-4d",
    )
    lat = [
        (
            {"namespace": "edge", "service": "api-gateway"},
            [
                0.08,
                0.09,
                0.12,
                0.21,
                0.36,
                0.54,
                0.71,
                0.83,
                0.92,
                0.97,
                1.04,
                1.08,
                1.11,
                1.09,
                1.12,
                1.14,
            ],
        )
    ]
    c.metric(
        "latency_p99",
        'histogram_quantile(0.99, sum by (le, namespace, service) (rate(envoy_http_downstream_rq_time_bucket{namespace="edge"}[5m]))) / 1000',
        lat,
        step=240,
    )
    c.alert(
        "HighLatencyP99",
        {"namespace": "edge", "service": "api-gateway", "team": "edge"},
        summary="api-gateway p99 latency is 1.14s",
        description="p99 latency of edge/api-gateway has been above 500ms for 15 minutes (currently 1.14s).",
        runbook="https://runbooks.acme.io/edge/api-gateway#latency",
        expr='histogram_quantile(0.99, sum by (le, cluster, namespace, service) (rate(envoy_http_downstream_rq_time_bucket{namespace="edge"}[5m]))) / 1000 > 0.5',
        severity="critical",
        starts_ms=3,
    )
    c.expect(
        description="""api-gateway latency rose because the gateway is CPU-saturated and cannot scale further: its HPA scaled
        to maxReplicas 20 fifty minutes ago and reports ScalingLimited=True (TooManyReplicas) with CPU at 191% of
        requests against a 60% target. The pods are healthy, there are no CPU limits (so no throttling) and the nodes
        have spare capacity. Raise maxReplicas of HPA api-gateway.""",
        category="ScalingLimit",
        culprit_ref=culprit("HorizontalPodAutoscaler", "edge", "api-gateway"),
        mentions=["api-gateway"],
        multi_hop=True,
        distractors=[
            "HPA rate-limiter in the same namespace is at 3 of 12 (not at max)",
            "all 20 gateway pods are Running and Ready",
        ],
    )
    return c


@case
def cpu_throttling_low_limit() -> Case:
    c = Case(
        "cpu-throttling-low-limit",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-18T10:26:40Z",
        captured_after="4m",
    )
    nodes = eks_nodes(
        c, ["10.0.22.19", "10.0.53.87", "10.0.81.212"], itype="m6i.2xlarge", created="-6d"
    )
    namespace(c, "pricing", sas=("pricing-engine",), labels={"team": "pricing"})
    pe = container(
        "pricing-engine",
        "ghcr.io/acme/pricing-engine:6.3.2",
        ports=[("http", 8080), ("management", 8081)],
        env_vars=[
            env("JAVA_TOOL_OPTIONS", "-XX:MaxRAMPercentage=75 -XX:+UseG1GC"),
            env("PRICING_RULES_REFRESH", "30s"),
        ],
        res=resources("250m", "1Gi", "500m", "2Gi"),
        readiness=http_probe("/actuator/health/readiness", "management", initial=20),
        liveness=http_probe("/actuator/health/liveness", "management", initial=60, timeout=5),
    )
    otel = container(
        "otel-agent",
        "otel/opentelemetry-collector-contrib:0.115.1",
        args=["--config=/conf/agent.yaml"],
        res=resources("20m", "64Mi", "200m", "128Mi"),
        mounts=[mount("otel-config", "/conf")],
    )
    c.configmap(
        "pricing",
        "otel-agent",
        {
            "agent.yaml": "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  otlp:\n    endpoint: otel-gateway.observability.svc.cluster.local:4317\nservice:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [otlp]}\n"
        },
        created="-200d",
    )
    tpl = template(
        app_labels("pricing-engine", "6.3.2"),
        [pe, otel],
        service_account="pricing-engine",
        volumes=[vol_cm("otel-config", "otel-agent")],
    )
    _, _, pods = healthy(
        c,
        "pricing",
        "pricing-engine",
        tpl,
        nodes,
        replicas=3,
        revision=39,
        created="-420d",
        rs_created="-4d",
        service_port=None,
    )
    c.service(
        "pricing",
        "pricing-engine",
        selector_labels("pricing-engine"),
        [("http", 80, "http")],
        created="-420d",
    )
    p = pods[1]
    S = stamper(c, "iso")
    c.log(
        "pricing",
        p,
        "pricing-engine",
        f"""\
        {S("-14m12s")}  WARN 1 --- [pricing-engine] [nio-8080-exec-31] c.a.pricing.quote.QuoteController         : quote took 1840ms (budget 300ms) sku_count=42
        {S("-11m3s")}  INFO 1 --- [pricing-engine] [   rules-refresh] c.a.pricing.rules.RulesRefresher          : refreshed 18233 pricing rules in 6.9s
        {S("-9m40s")}  WARN 1 --- [pricing-engine] [nio-8080-exec-12] c.a.pricing.quote.QuoteController         : quote took 2210ms (budget 300ms) sku_count=57
        {S("-6m2s")}  WARN 1 --- [pricing-engine] [nio-8080-exec-44] c.a.pricing.quote.QuoteController         : quote took 1975ms (budget 300ms) sku_count=38
        """,
    )
    labels = {"container": "pricing-engine", "namespace": "pricing", "pod": p["metadata"]["name"]}
    c.metric(
        "cpu_throttled_ratio",
        'sum by (namespace, pod, container) (increase(container_cpu_cfs_throttled_periods_total{namespace="pricing", container="pricing-engine"}[5m])) / sum by (namespace, pod, container) (increase(container_cpu_cfs_periods_total{namespace="pricing", container="pricing-engine"}[5m]))',
        [
            (
                {**labels, "pod": q["metadata"]["name"]},
                [(0.06 if i < 6 else 0.71) + 0.01 * ((i * 7 + k) % 9) for i in range(16)],
            )
            for k, q in enumerate(pods)
        ],
        step=120,
    )
    c.metric(
        "cpu_usage_cores",
        'sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{namespace="pricing", container="pricing-engine"}[5m]))',
        [
            (
                {**labels, "pod": q["metadata"]["name"]},
                [(0.21 if i < 6 else 0.47) + 0.003 * ((i * 5 + k) % 7) for i in range(16)],
            )
            for k, q in enumerate(pods)
        ],
        step=120,
    )
    inst = c.node_ip(c.find("Node", None, p["spec"]["nodeName"])) + ":10250"
    c.kps_alert(
        "CPUThrottlingHigh",
        {
            "container": "pricing-engine",
            "instance": inst,
            "namespace": "pricing",
            "pod": p["metadata"]["name"],
            "service": "kube-prometheus-stack-kubelet",
        },
        value="82.3%",
        starts_ms=6,
        ksm=False,
    )
    c.expect(
        description="""pricing-engine is throttled in 70-80% of CFS periods: the JVM (G1, JIT and request threads on an
        8-core node) needs more than the container's CPU limit of 500m, and usage sits flat at ~0.49 cores, i.e. at the
        limit. Quotes take 2s instead of 300ms. The limit is too low for this workload; raise (or remove) the CPU
        limit of Deployment pricing-engine and size the request to real usage.""",
        category="CPUThrottling",
        culprit_ref=culprit("Deployment", "pricing", "pricing-engine"),
        mentions=["pricing-engine", "500m"],
        multi_hop=False,
        distractors=[
            "the otel-agent sidecar in the same pod has its own (unthrottled) CPU limit",
            "pods are Running and Ready with no restarts",
        ],
    )
    return c


@case
def networkpolicy_blocks_cart_to_redis() -> Case:
    c = Case(
        "networkpolicy-blocks-cart-to-redis",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-21T13:36:18Z",
        captured_after="4m",
    )
    nodes = eks_nodes(c, ["10.0.13.131", "10.0.40.17", "10.0.73.222"], created="-5d")
    namespace(c, "shop", sas=("cart", "checkout", "redis"), labels={"team": "shop"})
    r = container(
        "redis",
        "redis:7.2.5",
        args=[
            "redis-server",
            "--appendonly",
            "no",
            "--maxmemory",
            "1gb",
            "--maxmemory-policy",
            "allkeys-lru",
        ],
        ports=[("redis", 6379)],
        res=resources("200m", "1280Mi", None, "1280Mi"),
        readiness=exec_probe(["redis-cli", "ping"], period=5),
        liveness=tcp_probe("redis", initial=15),
    )
    rl = {
        "app.kubernetes.io/component": "master",
        "app.kubernetes.io/instance": "redis",
        "app.kubernetes.io/name": "redis",
    }
    ss = c.statefulset(
        "shop",
        "redis-master",
        template(rl | {"app.kubernetes.io/version": "7.2.5"}, [r], service_account="redis"),
        replicas=1,
        service_name="redis-headless",
        created="-400d",
        labels=rl | {"app.kubernetes.io/managed-by": "Helm"},
    )
    ss["spec"]["selector"] = {"matchLabels": rl}
    rp = c.pod(ss, nodes[0], "-5d", [running("redis", "-5d")], name="redis-master-0")
    svc = c.service(
        "shop", "redis-master", rl, [("tcp-redis", 6379, "redis")], created="-400d", labels=rl
    )
    c.service(
        "shop",
        "redis-headless",
        rl,
        [("tcp-redis", 6379, "redis")],
        created="-400d",
        headless=True,
        labels=rl,
    )
    c.network_policy(
        "shop",
        "redis-ingress",
        {"matchLabels": {"app.kubernetes.io/name": "redis"}},
        policy_types=["Ingress"],
        generation=4,
        created="-200d",
        annotations={
            "argocd.argoproj.io/tracking-id": "shop-policies:networking.k8s.io/NetworkPolicy:shop/redis-ingress"
        },
        ingress=[
            {
                "from": [
                    {
                        "podSelector": {
                            "matchExpressions": [
                                {
                                    "key": "app.kubernetes.io/name",
                                    "operator": "In",
                                    "values": ["checkout", "session-api"],
                                }
                            ]
                        }
                    },
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                        }
                    },
                ],
                "ports": [{"port": 6379, "protocol": "TCP"}],
            }
        ],
    )
    c.network_policy(
        "shop",
        "payments-stub-ingress",
        {"matchLabels": {"app.kubernetes.io/name": "payments-stub"}},
        policy_types=["Ingress"],
        created="-200d",
        ingress=[
            {
                "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "checkout"}}}],
                "ports": [{"port": 8080, "protocol": "TCP"}],
            }
        ],
    )
    ct = web_container(
        "cart",
        "ghcr.io/acme/cart:2.2.9",
        env_vars=[env("REDIS_ADDR", "redis-master.shop.svc.cluster.local:6379")],
        res=resources("150m", "192Mi", None, "384Mi"),
    )
    _, _, cpods = healthy(
        c,
        "shop",
        "cart",
        template(app_labels("cart", "2.2.9"), [ct], service_account="cart"),
        nodes,
        replicas=3,
        revision=25,
        created="-380d",
        rs_created="-7d",
    )
    co = web_container(
        "checkout",
        "ghcr.io/acme/checkout:1.14.2",
        env_vars=[env("REDIS_ADDR", "redis-master.shop.svc.cluster.local:6379")],
    )
    _, _, copods = healthy(
        c,
        "shop",
        "checkout",
        template(app_labels("checkout", "1.14.2"), [co], service_account="checkout"),
        nodes,
        replicas=2,
        revision=40,
        created="-500d",
        rs_created="-4d",
    )
    ip = svc["spec"]["clusterIP"]
    J = stamper(c, "iso")
    lines = []
    for i in range(10):
        t = shift("-6m", i * 31)
        lines.append(
            f'time={J(t)} level=ERROR msg="get cart failed" cart_id=c_{77120 + i * 13} err="dial tcp {ip}:6379: i/o timeout"'
        )
        lines.append(
            f"time={J(shift(t, 0.002))} level=INFO msg=request method=GET path=/v1/carts/c_{77120 + i * 13} status=500 duration=5.001s"
        )
    c.log("shop", cpods[0], "cart", "\n".join(lines))
    c.log(
        "shop",
        copods[0],
        "checkout",
        f'{{"level":"info","ts":"{J("-2m")}","caller":"orders/service.go:140","msg":"order created","order_id":"o_99121","reserved_in":"redis"}}',
    )
    c.log(
        "shop", rp, "redis", f"1:M {stamper(c, 'redis')('-5d')} * Ready to accept connections tcp"
    )
    http_error_alert(
        c,
        "shop",
        "cart",
        ratio="63.9%",
        team="shop",
        runbook="https://runbooks.acme.io/shop/cart#high-error-rate",
    )
    c.expect(
        description="""cart fails most requests with "dial tcp <redis-master IP>:6379: i/o timeout", although redis-master-0 is
        Running and Ready and Service redis-master has a ready endpoint (checkout reaches it fine). NetworkPolicy
        redis-ingress selects the redis pod and, since its last change, only admits checkout, session-api and the
        monitoring namespace on 6379; cart is not in the list, so its packets are silently dropped. Add cart to the
        ingress rule of NetworkPolicy redis-ingress.""",
        category="NetworkBlocked",
        culprit_ref=culprit("NetworkPolicy", "shop", "redis-ingress"),
        mentions=["redis-ingress"],
        multi_hop=True,
        distractors=[
            "redis-master-0 and its Service endpoints are healthy",
            "checkout talks to the same redis successfully",
            "NetworkPolicy payments-stub-ingress exists but selects other pods",
        ],
    )
    return c


@case
def networkpolicy_egress_blocks_ledger() -> Case:
    c = Case(
        "networkpolicy-egress-blocks-ledger",
        cluster="dc1-prod",
        platform=ONPREM,
        alert_at="2026-11-09T10:58:12Z",
        captured_after="4m",
    )
    nodes = onprem_nodes(c, 4)
    namespace(c, "billing", sas=("invoice-api",), labels={"team": "billing"})
    namespace(c, "ledger", sas=("ledger",), labels={"team": "ledger"})
    namespace(c, "kube-system", created="-640d")
    lg = container(
        "ledger",
        "registry.dc1.acme.internal/ledger/ledger:12.4.0",
        ports=[("grpc", 9090), ("http", 8080)],
        res=resources("500m", "512Mi", None, "1Gi"),
        readiness=http_probe("/readyz", "http"),
        liveness=http_probe("/livez", "http", initial=10),
    )
    _, _, lpods = healthy(
        c,
        "ledger",
        "ledger",
        template(app_labels("ledger", "12.4.0"), [lg], service_account="ledger"),
        nodes,
        replicas=3,
        revision=70,
        created="-600d",
        rs_created="-5d",
        service_port=None,
    )
    lsvc = c.service(
        "ledger",
        "ledger",
        selector_labels("ledger"),
        [("grpc", 9090, "grpc"), ("http", 8080, "http")],
        created="-600d",
        slices=True,
    )
    c.network_policy(
        "ledger",
        "ledger-ingress",
        {"matchLabels": {"app.kubernetes.io/name": "ledger"}},
        policy_types=["Ingress"],
        created="-300d",
        ingress=[
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/metadata.name",
                                    "operator": "In",
                                    "values": ["billing", "payments"],
                                }
                            ]
                        }
                    }
                ],
                "ports": [{"port": 9090, "protocol": "TCP"}],
            },
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                        }
                    }
                ],
                "ports": [{"port": 8080, "protocol": "TCP"}],
            },
        ],
    )
    ia = web_container(
        "invoice-api",
        "registry.dc1.acme.internal/billing/invoice-api:3.9.1",
        env_vars=[
            env("LEDGER_ADDR", "ledger.ledger.svc.cluster.local:9090"),
            env("DB_HOST", "billing-db.billing.svc.cluster.local"),
        ],
    )
    _, _, ipods = healthy(
        c,
        "billing",
        "invoice-api",
        template(app_labels("invoice-api", "3.9.1"), [ia], service_account="invoice-api"),
        nodes,
        replicas=2,
        revision=22,
        created="-500d",
        rs_created="-6d",
    )
    pg = container(
        "postgres",
        "postgres:16.3",
        ports=[("postgres", 5432)],
        res=resources("500m", "1Gi", None, "2Gi"),
        readiness=exec_probe(["pg_isready", "-U", "billing"]),
    )
    ss = c.statefulset(
        "billing",
        "billing-db",
        template(app_labels("billing-db", "16.3"), [pg]),
        replicas=1,
        service_name="billing-db",
        created="-500d",
    )
    c.pod(ss, nodes[2], "-30d", [running("postgres", "-30d")], name="billing-db-0")
    c.service(
        "billing",
        "billing-db",
        selector_labels("billing-db"),
        [("postgres", 5432, "postgres")],
        created="-500d",
        headless=True,
    )
    path = "billing/networkpolicies.yaml"
    c.network_policy(
        "billing",
        "invoice-api-egress",
        {"matchLabels": {"app.kubernetes.io/name": "invoice-api"}},
        policy_types=["Egress"],
        created="-15m",
        path=path,
        labels={"policy.acme.io/baseline": "egress-hardening"},
        annotations={"policy.acme.io/ticket": "SEC-2291"},
        egress=[
            {
                "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                "to": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                        },
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                ],
            },
            {
                "ports": [{"port": 5432, "protocol": "TCP"}],
                "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "billing-db"}}}],
            },
            {
                "ports": [{"port": 8080, "protocol": "TCP"}],
                "to": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "payments"}
                        }
                    }
                ],
            },
        ],
    )
    c.network_policy(
        "billing",
        "billing-db-ingress",
        {"matchLabels": {"app.kubernetes.io/name": "billing-db"}},
        policy_types=["Ingress"],
        created="-300d",
        path=path,
        ingress=[
            {
                "from": [
                    {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "invoice-api"}}}
                ],
                "ports": [{"port": 5432, "protocol": "TCP"}],
            }
        ],
    )
    J = stamper(c, "iso")
    lines = []
    for i in range(9):
        t = shift("-5m40s", i * 35)
        lines.append(
            json.dumps(
                {
                    "level": "error",
                    "ts": J(t),
                    "caller": "ledgerclient/client.go:94",
                    "msg": "post ledger entries failed",
                    "invoice_id": f"inv_{300412 + i * 7}",
                    "method": "/ledger.v1.Ledger/PostEntries",
                    "target": "ledger.ledger.svc.cluster.local:9090",
                    "error": "rpc error: code = DeadlineExceeded desc = context deadline exceeded",
                }
            )
        )
        lines.append(
            json.dumps(
                {
                    "level": "info",
                    "ts": J(shift(t, 0.003)),
                    "caller": "httpx/log.go:28",
                    "msg": "request",
                    "method": "POST",
                    "path": "/v1/invoices",
                    "status": 504,
                    "duration_ms": 10002,
                }
            )
        )
    c.log("billing", ipods[0], "invoice-api", "\n".join(lines))
    c.log(
        "ledger",
        lpods[0],
        "ledger",
        f'time={J("-3m")} level=INFO msg="posted entries" source=payments count=14\ntime={J("-1m")} level=INFO msg="posted entries" source=payments count=9',
    )
    gone = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "invoice-api-5f8b7c9d64-p9wzr",
            "namespace": "billing",
            "uid": c.uid("gone"),
            "resourceVersion": "90102230",
        },
    }
    c.event(
        gone,
        "Unhealthy",
        'Readiness probe failed: Get "http://10.244.3.19:8080/readyz": dial tcp 10.244.3.19:8080: connect: connection refused',
        first="-23h20m",
        last="-23h19m",
        count=2,
        warning=True,
        host="dc1-k8s-w03",
        field_path="spec.containers{invoice-api}",
    )
    http_error_alert(
        c,
        "billing",
        "invoice-api",
        ratio="71.4%",
        team="billing",
        runbook="https://runbooks.acme.io/billing/invoice-api#errors",
    )
    _ = lsvc
    c.expect(
        description="""invoice-api fails invoice creation with gRPC "DeadlineExceeded: context deadline exceeded" when calling
        ledger.ledger.svc.cluster.local:9090, while ledger is healthy (3 ready endpoints, still serving payments) and
        its own ingress policy admits the billing namespace. The egress NetworkPolicy invoice-api-egress, added 15
        minutes ago for egress hardening (SEC-2291), allows invoice-api to reach DNS, billing-db and the payments
        namespace only, so connections to ledger on 9090 are dropped. Add an egress rule for the ledger namespace
        on 9090 to invoice-api-egress.""",
        category="NetworkBlocked",
        culprit_ref=culprit("NetworkPolicy", "billing", "invoice-api-egress"),
        mentions=["invoice-api-egress"],
        multi_hop=True,
        distractors=[
            "NetworkPolicy ledger-ingress on the destination side correctly allows billing",
            "a readiness failure from yesterday for an invoice-api pod that no longer exists",
            "the ledger pods and Service are healthy",
        ],
    )
    return c


@case
def rbac_forbidden_list_pods() -> Case:
    c = Case(
        "rbac-forbidden-list-pods",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-10T08:49:03Z",
        captured_after="3m",
    )
    nodes = eks_nodes(c, ["10.0.27.77", "10.0.58.161", "10.0.90.4"], created="-4d")
    namespace(c, "platform", sas=("job-reaper",), labels={"team": "platform"})
    jr = container(
        "job-reaper",
        "ghcr.io/acme/job-reaper:0.7.0",
        args=["--ttl=24h", "--namespaces=*"],
        ports=[("metrics", 8080)],
        res=resources("20m", "48Mi", None, "128Mi"),
        liveness=http_probe("/healthz", "metrics", initial=15),
    )
    tpl = template(app_labels("job-reaper", "0.7.0"), [jr], service_account="job-reaper")
    d = c.deployment(
        "platform",
        "job-reaper",
        tpl,
        replicas=1,
        revision=6,
        created="-200d",
        labels=helm_labels("job-reaper", "0.7.0"),
        annotations=helm_annotations("job-reaper", "platform"),
        strategy={"type": "Recreate"},
    )
    rs = c.replicaset(d, revision=6, replicas=1, created="-12d")
    p = c.pod(rs, nodes[1], "-12d", [crashing("job-reaper", 7, 1, "Error", "-2m41s", "-2m10s")])
    crash_events(c, p, "job-reaper", first="-19m", restarts=7, last_start="-2m41s")
    c.rbac(
        "ClusterRole",
        None,
        "job-reaper",
        {
            "rules": [
                {
                    "apiGroups": ["batch"],
                    "resources": ["jobs"],
                    "verbs": ["get", "list", "watch", "delete"],
                },
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "delete"]},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            ]
        },
        created="-200d",
        labels=helm_labels("job-reaper", "0.7.0") | {"rbac.acme.io/reviewed": "2026-11-10"},
    )
    c.rbac(
        "ClusterRoleBinding",
        None,
        "job-reaper",
        {
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "job-reaper",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "job-reaper", "namespace": "platform"}],
        },
        created="-200d",
        labels=helm_labels("job-reaper", "0.7.0"),
    )
    K = stamper(c, "klog")
    t = "-2m41s"
    err = 'pods is forbidden: User "system:serviceaccount:platform:job-reaper" cannot list resource "pods" in API group "" at the cluster scope'
    lines = [
        f'I{K(shift(t, 0.012))}       1 main.go:48] "Starting job-reaper" version="0.7.0" ttl="24h0m0s" namespaces="*"',
        f'I{K(shift(t, 0.019))}       1 main.go:61] "Waiting for informer caches to sync"',
    ]
    for k in range(4):
        lines.append(
            f"W{K(shift(t, 0.2 + k * 7.3))}       1 reflector.go:561] k8s.io/client-go@v0.31.2/tools/cache/reflector.go:243: failed to list *v1.Pod: {err}"
        )
        lines.append(
            f'E{K(shift(t, 0.201 + k * 7.3))}       1 reflector.go:158] "Unhandled Error" err="k8s.io/client-go@v0.31.2/tools/cache/reflector.go:243: Failed to watch *v1.Pod: failed to list *v1.Pod: {err.replace(chr(34), chr(92) + chr(34))}" logger="UnhandledError"'
        )
    lines.append(
        f'E{K(shift(t, 30.003))}       1 main.go:66] "Timed out waiting for caches to sync" err="context deadline exceeded"'
    )
    c.log("platform", p, "job-reaper", "\n".join(lines), previous=True)
    c.kps_alert(
        "KubePodCrashLooping",
        ksm_pod_labels(p, "job-reaper", reason="CrashLoopBackOff"),
        starts_ms=460,
    )
    c.expect(
        description="""job-reaper exits with code 1 after 30 seconds on every start because its pod informer can never list:
        'pods is forbidden: User "system:serviceaccount:platform:job-reaper" cannot list resource "pods" in API group ""
        at the cluster scope', so the caches never sync. The ClusterRole job-reaper bound to that ServiceAccount
        grants pods get/watch/delete but no longer list (a least-privilege review today); the crash loop started
        right after. Grant list on pods to the job-reaper ServiceAccount's ClusterRole.""",
        category="PermissionDenied",
        culprit_ref=culprit("ServiceAccount", "platform", "job-reaper"),
        mentions=["job-reaper", "list"],
        multi_hop=True,
        distractors=["the pod exits with code 1 like an application crash"],
        acceptable=[
            culprit("ClusterRole", None, "job-reaper"),
            culprit("ClusterRoleBinding", None, "job-reaper"),
        ],
    )
    return c


@case
def rbac_leases_forbidden_shard_lease() -> Case:
    c = Case(
        "rbac-leases-forbidden-shard-lease",
        cluster="prod-us-1",
        platform=GKE_PROD,
        alert_at="2026-11-17T12:40:33Z",
        captured_after="4m",
    )
    nodes = gke_nodes(c, ["10.128.0.61", "10.128.0.66", "10.128.0.68"], created="-10d")
    namespace(c, "fulfillment", sas=("fulfillment-worker",), labels={"team": "fulfillment"})

    def w(version: str) -> Obj:
        return container(
            "manager",
            f"us-docker.pkg.dev/acme-prod-4821/apps/fulfillment-worker:{version}",
            args=["--leader-elect", "--metrics-bind-address=:8080"],
            ports=[("metrics", 8080), ("probes", 8081)],
            env_vars=[env_field("POD_NAME", "metadata.name")],
            res=resources("100m", "128Mi", None, "256Mi"),
            readiness=http_probe("/readyz", "probes"),
            liveness=http_probe("/healthz", "probes", initial=15),
        )

    tpl = template(
        app_labels("fulfillment-worker", "3.0.0"),
        [w("3.0.0")],
        service_account="fulfillment-worker",
    )
    d = c.deployment(
        "fulfillment",
        "fulfillment-worker",
        tpl,
        replicas=4,
        revision=23,
        created="-250d",
        labels=helm_labels("fulfillment-worker", "3.0.0"),
        annotations=helm_annotations("fulfillment-worker", "fulfillment"),
    )
    old = c.replicaset(
        d,
        template(
            app_labels("fulfillment-worker", "2.9.4"),
            [w("2.9.4")],
            service_account="fulfillment-worker",
        ),
        revision=22,
        replicas=3,
        created="-9d",
    )
    new = c.replicaset(d, revision=23, replicas=2, created="-20m")
    for i in range(3):
        c.pod(old, nodes[i], shift("-9d", i * 20), [running("manager", shift("-9d", i * 20 + 3))])
    bad = []
    for i, ls in enumerate(("-3m2s", "-1m48s")):
        p = c.pod(
            new,
            nodes[(i + 1) % 3],
            shift("-20m", i),
            [crashing("manager", 7, 1, "Error", ls, shift(ls, 1.4))],
        )
        bad.append(p)
        c.scheduled(p, nodes[(i + 1) % 3], shift("-20m", i))
        crash_events(c, p, "manager", first=shift("-19m58s", i), restarts=7, last_start=ls)
    deploy_events_rollout(c, d, old, new, "-20m", old_from=4, new_to=2, old_to=3)
    rs_created_pods(c, new, bad)
    deployment_conditions(
        d,
        Progressing=(
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
            "-10m",
            "-10m",
        ),
    )
    c.rbac(
        "Role",
        "fulfillment",
        "fulfillment-worker",
        {
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                },
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
                {
                    "apiGroups": ["fulfillment.acme.io"],
                    "resources": ["shipments", "shipments/status"],
                    "verbs": ["get", "list", "watch", "update", "patch"],
                },
            ]
        },
        created="-250d",
        labels=helm_labels("fulfillment-worker", "2.9.4"),
    )
    c.rbac(
        "RoleBinding",
        "fulfillment",
        "fulfillment-worker",
        {
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "fulfillment-worker",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": "fulfillment-worker", "namespace": "fulfillment"}
            ],
        },
        created="-250d",
    )
    S = stamper(c, "iso")
    for p, ls in zip(bad, ("-3m2s", "-1m48s"), strict=True):
        name = p["metadata"]["name"]
        c.log(
            "fulfillment",
            p,
            "manager",
            f"""\
            {S(shift(ls, 0.31))}\tINFO\tsetup\tstarting fulfillment-worker\t{{"version": "3.0.0", "shards": 8}}
            {S(shift(ls, 0.33))}\tINFO\tsetup\tregistering shard lease\t{{"lease": "fulfillment-worker-shard-{name}"}}
            {S(shift(ls, 0.36))}\tERROR\tsetup\tunable to register shard lease\t{{"error": "leases.coordination.k8s.io is forbidden: User \\"system:serviceaccount:fulfillment:fulfillment-worker\\" cannot create resource \\"leases\\" in API group \\"coordination.k8s.io\\" in the namespace \\"fulfillment\\""}}
            main.main
            \t/workspace/cmd/main.go:112
            runtime.main
            \t/usr/local/go/src/runtime/proc.go:272
            """,
            previous=True,
        )
    c.service(
        "fulfillment",
        "fulfillment-worker-metrics",
        selector_labels("fulfillment-worker"),
        [("metrics", 8080, "metrics")],
        created="-250d",
    )
    c.kps_alert(
        "KubeDeploymentReplicasMismatch",
        {"deployment": "fulfillment-worker", "namespace": "fulfillment"},
        starts_ms=89,
    )
    c.expect(
        description="""fulfillment-worker runs 3 of 4 replicas because both pods of the 3.0.0 rollout exit 1 at startup: the new
        version registers a shard Lease and the API server answers 'leases.coordination.k8s.io is forbidden: User
        "system:serviceaccount:fulfillment:fulfillment-worker" cannot create resource "leases" in API group
        "coordination.k8s.io"'. The Role bound to the ServiceAccount only covers configmaps, events and shipments
        (written for 2.x). Grant leases (get/create/update) to the fulfillment-worker ServiceAccount's Role.""",
        category="PermissionDenied",
        culprit_ref=culprit("ServiceAccount", "fulfillment", "fulfillment-worker"),
        mentions=["fulfillment-worker", "leases"],
        multi_hop=True,
        distractors=[
            "the new pods crash-loop with exit code 1, like an application bug",
            "Progressing=False ProgressDeadlineExceeded on the Deployment",
        ],
        acceptable=[
            culprit("Role", "fulfillment", "fulfillment-worker"),
            culprit("RoleBinding", "fulfillment", "fulfillment-worker"),
        ],
    )
    return c


@case
def webhook_cert_expired_blocks_pods() -> Case:
    c = Case(
        "webhook-cert-expired-blocks-pods",
        cluster="dc1-prod",
        platform=ONPREM,
        alert_at="2026-11-26T06:58:44Z",
        captured_after="4m",
    )
    nodes = onprem_nodes(c, 4)
    namespace(c, "shop", sas=("checkout",), labels={"team": "shop"})
    namespace(c, "platform", sas=("pod-defaults-webhook",), labels={"team": "platform"})
    co = web_container(
        "checkout",
        "registry.dc1.acme.internal/shop/checkout:1.14.2",
        res=resources("200m", "256Mi", None, "512Mi"),
    )
    tpl = template(app_labels("checkout", "1.14.2"), [co], service_account="checkout")
    d = c.deployment(
        "shop",
        "checkout",
        tpl,
        replicas=6,
        revision=40,
        created="-600d",
        labels=helm_labels("checkout", "1.14.2"),
        annotations=helm_annotations("checkout", "shop"),
    )
    rs = c.replicaset(d, revision=40, replicas=6, created="-4d")
    for i in range(4):
        c.pod(rs, nodes[i], shift("-4d", i * 30), [running("checkout", shift("-4d", i * 30 + 5))])
    h = c.hpa(
        d,
        min_replicas=4,
        max_replicas=16,
        current=4,
        desired=6,
        cpu_target=70,
        cpu_current=97,
        cpu_value="194m",
        last_scale="-20m",
    )
    c.event(
        h,
        "SuccessfulRescale",
        "New size: 6; reason: cpu resource utilization (percentage of request) above target",
        first="-20m",
        component="horizontal-pod-autoscaler",
    )
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {rs['metadata']['name']} from 4 to 6",
        first="-20m",
        component="deployment-controller",
    )

    def err(at: str) -> str:
        ts = c.t(at)
        return (
            'Internal error occurred: failed calling webhook "pod-defaults.platform.acme.io": failed to call webhook: Post '
            '"https://pod-defaults-webhook.platform.svc:443/mutate?timeout=5s": tls: failed to verify certificate: x509: '
            f"certificate has expired or is not yet valid: current time {ts} is after 2026-11-25T21:14:03Z"
        )

    c.event(
        rs,
        "FailedCreate",
        f"Error creating: {err('-20m')}",
        first="-20m",
        count=2,
        warning=True,
        component="replicaset-controller",
    )
    for at in ("-19m59s", "-19m57s", "-19m53s"):
        c.event(
            rs,
            "FailedCreate",
            f"Error creating: {err(at)}",
            first=at,
            warning=True,
            component="replicaset-controller",
        )
    c.event(
        rs,
        "FailedCreate",
        f"(combined from similar events): Error creating: {err('-1m22s')}",
        first="-19m40s",
        last="-1m22s",
        count=19,
        warning=True,
        component="replicaset-controller",
    )
    rs["status"]["_extra"] = {
        "conditions": [
            {
                "lastTransitionTime": c.t("-20m"),
                "message": err("-20m"),
                "reason": "FailedCreate",
                "status": "True",
                "type": "ReplicaFailure",
            }
        ]
    }
    deployment_conditions(d, ReplicaFailure=("True", "FailedCreate", err("-20m"), "-20m", "-20m"))
    c.resource_quota(
        "shop",
        "compute",
        {"limits.memory": "64Gi", "pods": "60", "requests.cpu": "24"},
        {"limits.memory": "2Gi", "pods": "4", "requests.cpu": "800m"},
        created="-600d",
    )
    c.service(
        "shop",
        "checkout",
        selector_labels("checkout"),
        [("http", 80, "http"), ("metrics", 9090, "metrics")],
        created="-600d",
    )
    c.secret(
        "platform",
        "pod-defaults-webhook-tls",
        {
            "ca.crt": TLS["webhook"]["ca"],
            "tls.crt": TLS["webhook"]["crt"],
            "tls.key": TLS["webhook"]["key"],
        },
        stype="kubernetes.io/tls",
        created="2025-11-25T21:14:31Z",
        raw_b64=True,
        labels={"app.kubernetes.io/name": "pod-defaults-webhook"},
        annotations={
            "acme.io/generated-by": "hack/gen-webhook-cert.sh",
            "acme.io/cert-not-after": "2026-11-25T21:14:03Z",
        },
    )
    wh = container(
        "webhook",
        "registry.dc1.acme.internal/platform/pod-defaults-webhook:1.3.2",
        args=["--tls-cert-file=/tls/tls.crt", "--tls-key-file=/tls/tls.key", "--port=8443"],
        ports=[("https", 8443)],
        res=resources("50m", "64Mi", None, "128Mi"),
        readiness={
            "failureThreshold": 3,
            "httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"},
            "periodSeconds": 10,
            "successThreshold": 1,
            "timeoutSeconds": 1,
        },
        mounts=[mount("tls", "/tls", read_only=True)],
    )
    _, _, wpods = healthy(
        c,
        "platform",
        "pod-defaults-webhook",
        template(
            app_labels("pod-defaults-webhook", "1.3.2"),
            [wh],
            service_account="pod-defaults-webhook",
            volumes=[vol_secret("tls", "pod-defaults-webhook-tls")],
        ),
        nodes,
        replicas=2,
        revision=5,
        created="-366d",
        rs_created="-30d",
        service_port=None,
    )
    c.service(
        "platform",
        "pod-defaults-webhook",
        selector_labels("pod-defaults-webhook"),
        [("https", 443, "https")],
        created="-366d",
    )
    K = stamper(c, "iso")
    lines = []
    for i in range(8):
        t = shift("-20m", i * 183)
        lines.append(
            f"{K(t)} http: TLS handshake error from 10.20.0.1{1 + i % 3}:{41000 + i * 1379}: remote error: tls: bad certificate"
        )
    c.log("platform", wpods[0], "webhook", "\n".join(lines))
    c.kps_alert(
        "KubeDeploymentReplicasMismatch",
        {"deployment": "checkout", "namespace": "shop"},
        starts_ms=401,
    )
    c.expect(
        description="""checkout cannot scale from 4 to 6 pods (HPA asked 20 minutes ago) because no pod can be created in the
        cluster: every create goes through the mutating webhook pod-defaults.platform.acme.io, and the API server
        rejects the webhook's serving certificate ("x509: certificate has expired or is not yet valid: current time
        ... is after 2026-11-25T21:14:03Z"). The certificate lives in Secret platform/pod-defaults-webhook-tls,
        generated by hand a year ago; the webhook logs "tls: bad certificate" handshakes. Re-issue the certificate in
        that Secret (and the webhook's caBundle) and restart the webhook.""",
        category="CertificateError",
        culprit_ref=culprit("Secret", "platform", "pod-defaults-webhook-tls"),
        mentions=["pod-defaults-webhook", "expired"],
        multi_hop=True,
        distractors=[
            "FailedCreate events on the ReplicaSet resemble a quota problem, and ResourceQuota compute exists (with room)",
            "the webhook pods are Running and Ready",
        ],
    )
    return c


@case
def mtls_ledger_certificate_expired() -> Case:
    c = Case(
        "mtls-ledger-certificate-expired",
        cluster="prod-us-1",
        platform=GKE_PROD,
        alert_at="2026-11-26T08:24:31Z",
        captured_after="4m",
    )
    nodes = gke_nodes(c, ["10.128.0.201", "10.128.0.205", "10.128.0.209"], created="-14d")
    namespace(c, "ledger", sas=("ledger",), labels={"team": "ledger"})
    namespace(c, "payments", sas=("payments-api",), labels={"team": "payments"})
    c.secret(
        "ledger",
        "ledger-tls",
        {
            "ca.crt": TLS["ledger"]["ca"],
            "tls.crt": TLS["ledger"]["crt"],
            "tls.key": TLS["ledger"]["key"],
        },
        stype="kubernetes.io/tls",
        created="-454d",
        raw_b64=True,
        labels={"controller.cert-manager.io/fao": "true"},
        annotations={
            "cert-manager.io/alt-names": "ledger.ledger.svc,ledger.ledger.svc.cluster.local,ledger",
            "cert-manager.io/certificate-name": "ledger-tls",
            "cert-manager.io/common-name": "ledger.ledger.svc",
            "cert-manager.io/ip-sans": "",
            "cert-manager.io/issuer-group": "cert-manager.io",
            "cert-manager.io/issuer-kind": "ClusterIssuer",
            "cert-manager.io/issuer-name": "vault-internal",
            "cert-manager.io/uri-sans": "",
        },
    )
    cert = c.add(
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": c.meta(
                "Certificate",
                "ledger-tls",
                "ledger",
                "-454d",
                generation=3,
                labels={"app.kubernetes.io/name": "ledger"},
            ),
            "spec": {
                "commonName": "ledger.ledger.svc",
                "dnsNames": ["ledger.ledger.svc", "ledger.ledger.svc.cluster.local", "ledger"],
                "duration": "2160h0m0s",
                "issuerRef": {
                    "group": "cert-manager.io",
                    "kind": "ClusterIssuer",
                    "name": "vault-internal",
                },
                "privateKey": {"algorithm": "ECDSA", "rotationPolicy": "Always", "size": 256},
                "renewBefore": "720h0m0s",
                "secretName": "ledger-tls",
                "usages": ["server auth", "client auth"],
            },
            "status": {
                "conditions": [
                    {
                        "lastTransitionTime": "2026-11-26T08:12:44Z",
                        "message": "Certificate expired on Thu, 26 Nov 2026 08:12:44 UTC",
                        "observedGeneration": 3,
                        "reason": "Expired",
                        "status": "False",
                        "type": "Ready",
                    },
                    {
                        "lastTransitionTime": c.t("-2h41m"),
                        "message": "The certificate request has failed to complete and will be retried: failed to sign certificate by vault: Error making API request.\n\nURL: PUT https://vault.acme.internal:8200/v1/pki_int/sign/ledger\nCode: 403. Errors:\n\n* permission denied",
                        "observedGeneration": 3,
                        "reason": "Failed",
                        "status": "False",
                        "type": "Issuing",
                    },
                ],
                "failedIssuanceAttempts": 9,
                "lastFailureTime": c.t("-2h41m"),
                "nextPrivateKeySecretName": "ledger-tls-x7q2m",
                "notAfter": "2026-11-26T08:12:44Z",
                "notBefore": "2026-08-28T08:12:44Z",
                "renewalTime": "2026-10-27T08:12:44Z",
                "revision": 5,
            },
        }
    )
    c.event(
        cert,
        "Failed",
        "The certificate request has failed to complete and will be retried: failed to sign certificate by vault: Error making API request.\n\nURL: PUT https://vault.acme.internal:8200/v1/pki_int/sign/ledger\nCode: 403. Errors:\n\n* permission denied",
        first="-2h41m",
        warning=True,
        component="cert-manager-certificates-issuing",
    )
    c.event(
        cert,
        "Issuing",
        "Renewing certificate as renewal was scheduled at 2026-10-27 08:12:44 +0000 UTC",
        first="-37m",
        component="cert-manager-certificates-trigger",
    )
    c.event(
        cert,
        "Requested",
        'Created new CertificateRequest resource "ledger-tls-6"',
        first="-37m",
        component="cert-manager-certificates-request-manager",
    )
    lg = container(
        "ledger",
        "us-docker.pkg.dev/acme-prod-4821/apps/ledger:12.4.0",
        args=[
            "--grpc-tls-cert=/tls/tls.crt",
            "--grpc-tls-key=/tls/tls.key",
            "--client-ca=/tls/ca.crt",
        ],
        ports=[("grpc", 9090), ("http", 8080)],
        res=resources("500m", "512Mi", None, "1Gi"),
        readiness=http_probe("/readyz", "http"),
        mounts=[mount("tls", "/tls", read_only=True)],
    )
    _, _, lpods = healthy(
        c,
        "ledger",
        "ledger",
        template(
            app_labels("ledger", "12.4.0"),
            [lg],
            service_account="ledger",
            volumes=[vol_secret("tls", "ledger-tls")],
        ),
        nodes,
        replicas=3,
        revision=70,
        created="-600d",
        rs_created="-5d",
        service_port=None,
    )
    c.service(
        "ledger",
        "ledger",
        selector_labels("ledger"),
        [("grpc", 9090, "grpc"), ("http", 8080, "http")],
        created="-600d",
    )
    pa = web_container(
        "payments-api",
        "us-docker.pkg.dev/acme-prod-4821/apps/payments-api:2.8.1",
        env_vars=[env("LEDGER_ADDR", "ledger.ledger.svc:9090")],
    )
    _, _, ppods = healthy(
        c,
        "payments",
        "payments-api",
        template(app_labels("payments-api", "2.8.1"), [pa], service_account="payments-api"),
        nodes,
        replicas=3,
        revision=35,
        created="-400d",
        rs_created="-8d",
    )
    J = stamper(c, "iso")
    lines = []
    for i in range(10):
        t = shift("-6m", i * 33)
        cur = c.t(shift(t, -0.004))
        lines.append(
            json.dumps(
                {
                    "level": "error",
                    "ts": J(t),
                    "caller": "ledger/client.go:58",
                    "msg": "ledger PostEntries failed",
                    "payment_id": f"pay_{88120 + i * 17}",
                    "error": f'rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time {cur} is after 2026-11-26T08:12:44Z"',
                }
            )
        )
    c.log("payments", ppods[0], "payments-api", "\n".join(lines))
    c.log(
        "ledger",
        lpods[0],
        "ledger",
        f'time={J("-12m")} level=WARN msg="grpc: Server.Serve failed to complete security handshake" remote=10.48.1.77:50812 err="remote error: tls: bad certificate"',
    )
    http_error_alert(
        c,
        "payments",
        "payments-api",
        ratio="88.6%",
        team="payments",
        runbook="https://runbooks.acme.io/payments/payments-api#errors",
    )
    c.expect(
        description="""payments-api fails payments because every gRPC call to ledger dies in the TLS handshake: "x509: certificate
        has expired or is not yet valid: current time ... is after 2026-11-26T08:12:44Z". ledger serves the certificate
        from Secret ledger/ledger-tls, managed by cert-manager Certificate ledger-tls, which is Ready=False (Expired):
        renewal has been failing since 2026-10-27 because Vault answers 403 permission denied to the ClusterIssuer, so
        the 90-day certificate simply ran out. Fix the issuer's Vault permission and re-issue Certificate ledger-tls.""",
        category="CertificateError",
        culprit_ref=culprit("Certificate", "ledger", "ledger-tls"),
        mentions=["ledger-tls", "expired"],
        multi_hop=True,
        distractors=[
            "the ledger pods are Running and Ready (their readiness endpoint is plain HTTP)",
            "payments-api pods are healthy",
        ],
        acceptable=[culprit("Secret", "ledger", "ledger-tls")],
    )
    return c


@case
def dependency_external_rds_refused() -> Case:
    c = Case(
        "dependency-external-rds-refused",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-23T04:12:50Z",
        captured_after="4m",
    )
    nodes = eks_nodes(c, ["10.0.17.92", "10.0.52.33", "10.0.69.180"], created="-6d")
    namespace(c, "accounts", sas=("accounts-api",), labels={"team": "accounts"})
    c.service(
        "accounts",
        "accounts-db",
        None,
        [],
        created="-700d",
        external_name="accounts-prod.cluster-c9xk2mq7zt1p.eu-west-1.rds.amazonaws.com",
        labels={"app.kubernetes.io/name": "accounts-db", "app.kubernetes.io/part-of": "accounts"},
    )
    c.secret(
        "accounts",
        "accounts-db",
        {"password": "Acc0unts-Rds-7Qp", "username": "accounts_api"},
        created="-700d",
    )
    api = web_container(
        "accounts-api",
        "ghcr.io/acme/accounts-api:5.2.0",
        env_vars=[
            env("DB_HOST", "accounts-db.accounts.svc.cluster.local"),
            env("DB_PORT", "5432"),
            env_secret("DB_USER", "accounts-db", "username"),
            env_secret("DB_PASSWORD", "accounts-db", "password"),
        ],
        res=resources("250m", "384Mi", None, "768Mi"),
    )
    d, _, pods = healthy(
        c,
        "accounts",
        "accounts-api",
        template(app_labels("accounts-api", "5.2.0"), [api], service_account="accounts-api"),
        nodes,
        replicas=3,
        revision=48,
        created="-700d",
        rs_created="-5d",
    )
    c.hpa(
        d,
        min_replicas=3,
        max_replicas=9,
        current=3,
        desired=3,
        cpu_target=70,
        cpu_current=14,
        cpu_value="35m",
        last_scale="-5d",
    )
    ex_tpl = template(
        app_labels("accounts-export", "5.2.0"),
        [
            container(
                "export",
                "ghcr.io/acme/accounts-api:5.2.0",
                args=["export", "--to=s3://acme-accounts-exports/daily/"],
                res=resources("100m", "256Mi", None, "512Mi"),
            )
        ],
        restart_policy="Never",
        service_account="accounts-api",
    )
    cj = cronjob(
        c,
        "accounts",
        "accounts-export",
        ex_tpl,
        schedule="0 3 * * *",
        created="-300d",
        last_schedule="-1h16m50s",
        last_success="-1h15m",
        backoff_limit=2,
    )
    run_job(c, cj, nodes[2], scheduled="-1h16m50s", outcome="succeeded", duration_s=97)
    P = stamper(c, "python")
    lines = []
    for i in range(6):
        t = shift("-5m30s", i * 47)
        lines.append(f"""{P(t)} ERROR [accounts.api] GET /v1/accounts/{8812 + i * 31}/balance failed: cannot acquire database connection
Traceback (most recent call last):
  File "/app/accounts/db.py", line 37, in acquire
    return await self._pool.acquire(timeout=2.0)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/local/lib/python3.12/site-packages/asyncpg/pool.py", line 864, in _acquire_impl
    await ch.connect()
  File "/usr/local/lib/python3.12/site-packages/asyncpg/connect_utils.py", line 1049, in _connect_addr
    tr, pr = await connector
             ^^^^^^^^^^^^^^^
  File "/usr/local/lib/python3.12/asyncio/base_events.py", line 1122, in create_connection
    raise exceptions[0]
  File "/usr/local/lib/python3.12/asyncio/selector_events.py", line 651, in sock_connect
    return await fut
           ^^^^^^^^^
ConnectionRefusedError: [Errno 111] Connect call failed ('10.0.131.17', 5432)
{P(shift(t, 0.003))} INFO [uvicorn.access] 10.0.3.117:0 - "GET /v1/accounts/{8812 + i * 31}/balance HTTP/1.1" 503""")
    c.log("accounts", pods[0], "accounts-api", "\n".join(lines))
    http_error_alert(
        c,
        "accounts",
        "accounts-api",
        ratio="92.0%",
        team="accounts",
        runbook="https://runbooks.acme.io/accounts/accounts-api#errors",
    )
    c.expect(
        description="""accounts-api answers 503 because every database connection is refused: "[Errno 111] Connect call failed
        ('10.0.131.17', 5432)". The database is outside the cluster: Service accounts-db is an ExternalName for the RDS
        cluster endpoint accounts-prod.cluster-...rds.amazonaws.com, and the refusal (not a timeout) means the endpoint
        resolves but nothing accepts connections (failover/maintenance of the RDS writer). Nothing in the cluster is
        broken (no NetworkPolicies, pods Ready); the incident is in the external dependency behind accounts-db.""",
        category="DependencyFailure",
        culprit_ref=culprit("Service", "accounts", "accounts-db"),
        mentions=["accounts-db"],
        multi_hop=True,
        distractors=[
            "the accounts-export CronJob left a Succeeded job pod an hour ago",
            "HPA accounts-api is at 3 of 9",
            "accounts-api pods are Running and Ready",
        ],
        acceptable=[culprit("Deployment", "accounts", "accounts-api")],
    )
    return c


@case
def dependency_dns_no_such_host() -> Case:
    c = Case(
        "dependency-dns-no-such-host",
        cluster="prod-us-1",
        platform=GKE_PROD,
        alert_at="2026-11-14T16:20:09Z",
        captured_after="4m",
    )
    nodes = gke_nodes(c, ["10.128.0.170", "10.128.0.172", "10.128.0.179"], created="-7d")
    namespace(c, "shipping", sas=("shipping-quotes",), labels={"team": "logistics"})
    q = web_container(
        "shipping-quotes",
        "us-docker.pkg.dev/acme-prod-4821/apps/shipping-quotes:1.8.3",
        env_vars=[env("RATES_API_URL", "http://rates-api.shipping.svc.cluster.local:8080")],
    )
    _, _, pods = healthy(
        c,
        "shipping",
        "shipping-quotes",
        template(app_labels("shipping-quotes", "1.8.3"), [q], service_account="shipping-quotes"),
        nodes,
        replicas=2,
        revision=14,
        created="-300d",
        rs_created="-6d",
    )
    tr = web_container("tracking", "us-docker.pkg.dev/acme-prod-4821/apps/tracking:4.0.2")
    healthy(
        c,
        "shipping",
        "tracking",
        template(app_labels("tracking", "4.0.2"), [tr]),
        nodes,
        replicas=2,
        revision=9,
        created="-300d",
        rs_created="-6d",
    )
    for i, (suffix, node) in enumerate(
        (("6d8c9b7f4d-2kzqx", nodes[0]), ("6d8c9b7f4d-w9mrt", nodes[2]))
    ):
        ghost = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"rates-api-{suffix}",
                "namespace": "shipping",
                "uid": c.uid("rates", suffix),
                "resourceVersion": "401223190",
            },
        }
        c.event(
            ghost,
            "Killing",
            "Stopping container rates-api",
            first=shift("-16m12s", i),
            host=node["metadata"]["name"],
            field_path="spec.containers{rates-api}",
        )
    J = stamper(c, "iso")
    lines = []
    for i in range(10):
        t = shift("-5m", i * 29)
        lines.append(
            f'time={J(t)} level=ERROR msg="quote failed" carrier={["ups", "dhl", "fedex"][i % 3]} err="Get \\"http://rates-api.shipping.svc.cluster.local:8080/v2/rates?carrier={["ups", "dhl", "fedex"][i % 3]}&weight_g={1200 + i * 150}\\": dial tcp: lookup rates-api.shipping.svc.cluster.local on 34.118.224.10:53: no such host"'
        )
        lines.append(
            f"time={J(shift(t, 0.001))} level=INFO msg=request method=POST path=/v1/quotes status=502 duration=3.2ms"
        )
    c.log("shipping", pods[0], "shipping-quotes", "\n".join(lines))
    http_error_alert(
        c,
        "shipping",
        "shipping-quotes",
        ratio="100.0%",
        team="logistics",
        runbook="https://runbooks.acme.io/logistics/shipping-quotes#errors",
    )
    c.expect(
        description="""shipping-quotes fails every quote because its dependency is gone: calls to
        rates-api.shipping.svc.cluster.local fail with "lookup ... no such host", and there is no Service (nor any pod)
        named rates-api in the namespace any more; Killing events 16 minutes ago show the rates-api pods being
        removed (the release was uninstalled). shipping-quotes itself is healthy and correctly configured; restore
        the rates-api release (Deployment and Service).""",
        category="DependencyFailure",
        culprit_ref=culprit("Deployment", "shipping", "shipping-quotes"),
        mentions=["rates-api", "no such host"],
        multi_hop=False,
        distractors=[
            "shipping-quotes pods are Running and Ready",
            "Deployment tracking in the namespace is healthy",
        ],
        acceptable=[culprit("Service", "shipping", "rates-api")],
    )
    return c


@case
def unknown_pod_not_ready_no_evidence() -> Case:
    c = Case(
        "unknown-pod-not-ready-no-evidence",
        cluster="prod-eu-1",
        platform=EKS_PROD,
        alert_at="2026-11-25T22:03:19Z",
        captured_after="4m",
    )
    nodes = eks_nodes(c, ["10.0.18.201", "10.0.49.75", "10.0.86.12"], created="-9d")
    namespace(c, "shop", sas=("reviews",), labels={"team": "shop"})
    rv = web_container(
        "reviews",
        "ghcr.io/acme/reviews:3.3.0",
        env_vars=[env("DB_HOST", "reviews-db.c9xk2mq7zt1p.eu-west-1.rds.amazonaws.com")],
    )
    _, _, pods = healthy(
        c,
        "shop",
        "reviews",
        template(app_labels("reviews", "3.3.0"), [rv], service_account="reviews"),
        nodes,
        replicas=3,
        revision=21,
        created="-300d",
        rs_created="-6d",
    )
    J = stamper(c, "iso")
    c.log(
        "shop",
        pods[1],
        "reviews",
        "\n".join(
            f"time={J(shift('-9m', i * 41))} level=INFO msg=request method=GET path=/v1/products/{4410 + i * 9}/reviews status=200 duration={3 + i % 5}.{i}ms"
            for i in range(12)
        ),
    )
    c.kps_alert(
        "KubePodNotReady",
        {"namespace": "shop", "pod": pods[1]["metadata"]["name"]},
        starts_ms=520,
        ksm=False,
    )
    c.expect(
        description="""KubePodNotReady fired for a reviews pod, but the snapshot shows nothing wrong: the pod has been Running
        and Ready for six days with zero restarts, its node is Ready, there are no events in the namespace and its log
        shows normal 200 responses. The alert's condition (phase Pending/Unknown/Failed for 15 minutes) is not
        visible in any current object, so the cause cannot be determined from this data (possibly stale
        kube-state-metrics series). Say Unknown rather than guess.""",
        category="Unknown",
        culprit_ref=None,
        mentions=["reviews"],
        multi_hop=False,
        distractors=[],
    )
    return c


@case
def unknown_alerted_pod_absent() -> Case:
    c = Case(
        "unknown-alerted-pod-absent",
        cluster="prod-us-1",
        platform=GKE_PROD,
        alert_at="2026-11-08T11:47:02Z",
        captured_after="5m",
    )
    nodes = gke_nodes(c, ["10.128.0.220", "10.128.0.224"], created="-11d")
    namespace(c, "data", sas=("etl-runner",), labels={"team": "data"})
    etl = container(
        "etl-runner",
        "us-docker.pkg.dev/acme-prod-4821/apps/etl-runner:2.2.0",
        ports=[("metrics", 9100)],
        res=resources("500m", "1Gi", None, "2Gi"),
        liveness=http_probe("/healthz", "metrics", initial=10),
    )
    d = c.deployment(
        "data",
        "etl-runner",
        template(app_labels("etl-runner", "2.2.0"), [etl], service_account="etl-runner"),
        replicas=1,
        revision=1,
        created="-3m41s",
        labels={"app.kubernetes.io/name": "etl-runner"},
        annotations={
            "argocd.argoproj.io/tracking-id": "data-platform:apps/Deployment:data/etl-runner"
        },
    )
    rs = c.replicaset(d, revision=1, replicas=1, created="-3m41s")
    p = c.pod(rs, nodes[1], "-3m40s", [running("etl-runner", "-3m33s")])
    c.scheduled(p, nodes[1], "-3m40s")
    c.container_events(p, "etl-runner", first="-3m37s", last="-3m33s", starts=1)
    rs_created_pods(c, rs, [p])
    c.event(
        d,
        "ScalingReplicaSet",
        f"Scaled up replica set {rs['metadata']['name']} from 0 to 1",
        first="-3m41s",
        component="deployment-controller",
    )
    alerted = {
        "namespace": "data",
        "pod": "etl-runner-7d5c9b8f4-q2w8z",
        "uid": c.uid("Pod", "data", "etl-runner-7d5c9b8f4-q2w8z"),
        "container": "etl-runner",
        "reason": "CrashLoopBackOff",
    }
    c.kps_alert("KubePodCrashLooping", alerted, starts_ms=148)
    c.expect(
        description="""KubePodCrashLooping names pod data/etl-runner-7d5c9b8f4-q2w8z, which no longer exists: Deployment
        etl-runner was deleted and re-created by Argo CD less than four minutes ago, taking the old ReplicaSet and pod
        (and their logs and exit codes) with it, and the new pod has been Running cleanly since. Nothing left in the
        cluster says why the old pod crashed, so the root cause is unknown from this snapshot; check the old pod's
        logs in the log store.""",
        category="Unknown",
        culprit_ref=None,
        mentions=["etl-runner"],
        multi_hop=False,
        distractors=["the Deployment etl-runner and its new pod exist and look healthy"],
    )
    return c


# --------------------------------------------------------------------------- main


def main() -> int:
    out = HERE / "cases"
    out.mkdir(exist_ok=True)
    only = set(sys.argv[1:])
    names = []
    for fn in CASES:
        c = fn()
        if only and c.name not in only:
            continue
        c.write(out)
        names.append(c.name)
    print(f"wrote {len(names)} cases to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
