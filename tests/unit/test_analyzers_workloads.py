"""The workloads analyzer: stuck rollouts, failed Jobs, HPAs at their limit, CPU throttling."""

from __future__ import annotations

import functools
from typing import Any

from oncallm.sources.base import ObjectRef
from oncallm.triage.analyzers import pods, workloads
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.rank import rank
from oncallm.triage.taxonomy import Category
from tests.unit import kubeobjects as k

API = ObjectRef("Deployment", "shop", "api")
NEW_RS = ObjectRef("ReplicaSet", "shop", "api-6b8f9d7c4")
NEW_POD = ObjectRef("Pod", "shop", "api-6b8f9d7c4-q8w2e")


def analyze(ctx: TriageContext) -> list[Finding]:
    return list(workloads.ANALYZER.analyze(ctx, EvidenceLedger("snapshot")))


commands = functools.partial(k.commands, workloads.ANALYZER)


only = k.only


# --- RolloutStuck -----------------------------------------------------------------------------

DEADLINE = k.condition(
    "Progressing", "False", "ProgressDeadlineExceeded",
    f'ReplicaSet "{NEW_RS.name}" has timed out progressing.',
)  # fmt: skip
AVAILABLE = k.condition("Available", "True", "MinimumReplicasAvailable")


def _rollout(progressing: dict[str, Any], *, observed: int = 5, paused: bool = False,
             new_pod_ok: bool = False) -> TriageContext:  # fmt: skip
    status = (
        [k.running_status("api")]
        if new_pod_ok
        else [
            k.waiting_status(
                "api",
                "ImagePullBackOff",
                restarts=0,
                message='Back-off pulling image "registry.example.com/shop/api:1.5.0"',
            )
        ]
    )
    return k.context(
        [
            k.deployment("api", replicas=3, generation=5, observed_generation=observed,
                         paused=paused, conditions=[AVAILABLE, progressing],
                         status={"updatedReplicas": 1, "readyReplicas": 3,
                                 "unavailableReplicas": 1}),
            k.replicaset(NEW_RS.name, "api", revision=5, replicas=1, ready=0),
            k.replicaset("api-5c6d7e8f9", "api", revision=4, replicas=3),
            k.pod(NEW_POD.name, labels={"app": "api", "pod-template-hash": "6b8f9d7c4"},
                  owner=NEW_RS, containers=[k.container("api")], statuses=status),
            k.pod("api-5c6d7e8f9-abcde", labels={"app": "api", "pod-template-hash": "5c6d7e8f9"},
                  owner=ObjectRef("ReplicaSet", "shop", "api-5c6d7e8f9"),
                  containers=[k.container("api")], statuses=[k.running_status("api")]),
        ],
        alert={"alertname": "KubeDeploymentRolloutStuck", "namespace": "shop",
               "deployment": "api"},
        focus=[API],
    )  # fmt: skip


def test_a_rollout_past_its_deadline_blames_the_new_revisions_pods() -> None:
    ctx = _rollout(DEADLINE)
    finding = only(analyze(ctx), Category.RolloutStuck)
    assert finding.resource == API
    assert finding.confidence == 0.5  # the new pods have their own problem
    assert {NEW_POD, NEW_RS} <= set(finding.blames)
    assert "revision 5 (ReplicaSet api-6b8f9d7c4)" in finding.summary
    assert "1 of 3 replicas updated" in finding.summary
    assert "api-6b8f9d7c4-q8w2e ImagePullBackOff" in finding.summary
    assert "revision 4 (api-5c6d7e8f9) still has 3 ready pods" in finding.summary
    cmds = commands(finding, ctx)
    assert "kubectl -n shop rollout undo deployment/api --to-revision=4" in cmds
    assert "kubectl -n shop describe pod api-6b8f9d7c4-q8w2e" in cmds
    # The pull failure on the new pod, found by the pods analyzer, is the root cause.
    pull = Finding(Category.ImagePull, "tag 1.5.0 not found", NEW_POD, API, (), 0.9, "pods")
    assert rank(ctx, [finding, pull], min_confidence=0.35).root is pull


def test_a_rollout_still_progressing_or_not_yet_observed_is_not_stuck() -> None:
    updating = k.condition("Progressing", "True", "ReplicaSetUpdated",
                           f'ReplicaSet "{NEW_RS.name}" is progressing.')  # fmt: skip
    assert analyze(_rollout(updating)) == []
    # The controller has not seen generation 5 yet: an old False condition means nothing.
    assert analyze(_rollout(DEADLINE, observed=4)) == []


def test_a_paused_rollout_half_way_is_named_with_the_resume_command() -> None:
    paused = k.condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
    ctx = _rollout(paused, paused=True, new_pod_ok=True)
    finding = only(analyze(ctx), Category.RolloutStuck)
    assert "is paused with 1 of 3 replicas updated" in finding.summary
    assert finding.confidence == 0.8
    assert "kubectl -n shop rollout resume deployment/api" in commands(finding, ctx)


def test_min_ready_seconds_beyond_the_deadline_is_named_when_the_pods_are_fine() -> None:
    ctx = _rollout(DEADLINE, new_pod_ok=True)
    ctx.objects[API]["spec"]["minReadySeconds"] = 1800
    finding = only(analyze(ctx), Category.RolloutStuck)
    assert finding.confidence == 0.85
    assert "minReadySeconds 1800 is not shorter than progressDeadlineSeconds 600" in (
        finding.summary
    )
    assert '"progressDeadlineSeconds": 2400' in commands(finding, ctx)


def test_a_statefulset_update_held_by_a_crashing_updated_pod() -> None:
    sts = k.statefulset("postgres", "data", replicas=3, status={
        "updateRevision": "postgres-7f8d9c6b5", "currentRevision": "postgres-5d4c7b9f8",
        "updatedReplicas": 1, "readyReplicas": 2})  # fmt: skip
    owner = ObjectRef("StatefulSet", "data", "postgres")
    crashing = k.pod("postgres-2", "data", owner=owner,
                     labels={"app": "postgres", "controller-revision-hash": "postgres-7f8d9c6b5"},
                     statuses=[k.waiting_status("app", "CrashLoopBackOff")])  # fmt: skip
    finding = only(analyze(k.context([sts, crashing])), Category.RolloutStuck)
    assert finding.resource == owner
    assert ObjectRef("Pod", "data", "postgres-2") in finding.blames
    assert "held at 1 of 3 pods updated" in finding.summary
    # A partitioned rollout stops where it was told to.
    sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 2
    assert analyze(k.context([sts, crashing])) == []


# --- JobFailed --------------------------------------------------------------------------------

BACKOFF = "Job has reached the specified backoff limit"
JOB_LOG = """\
2026-11-26T03:02:11Z INFO exporting orders for 2026-11-25
Traceback (most recent call last):
  File "/app/export.py", line 88, in <module>
    main()
psycopg2.errors.UndefinedTable: relation "orders_archive" does not exist
LINE 1: SELECT * FROM orders_archive WHERE day = '2026-11-25'
                      ^
"""


def _failed_job(name: str, *, owner: ObjectRef | None = None, minutes_ago: float = 30) -> list[Any]:
    job = k.job(name, owner=owner, failed=3, started_minutes_ago=minutes_ago, conditions=[
        k.job_condition("Failed", "BackoffLimitExceeded", BACKOFF)
    ])  # fmt: skip
    pod = k.pod(f"{name}-7xk2p", "batch", owner=ObjectRef("Job", "batch", name), phase="Failed",
                labels={"job-name": name}, containers=[k.container("export")],
                statuses=[k.terminated_status("export", exit_code=1)],
                restart_policy="Never")  # fmt: skip
    return [job, pod]


def test_a_failed_job_is_named_with_exit_codes_and_the_last_error_line() -> None:
    ctx = k.context(
        _failed_job("export-orders"),
        logs={("batch", "export-orders-7xk2p", "export", False): JOB_LOG},
        alert={"alertname": "KubeJobFailed", "namespace": "batch", "job_name": "export-orders"},
    )  # fmt: skip
    finding = only(analyze(ctx), Category.JobFailed)
    assert finding.resource == ObjectRef("Job", "batch", "export-orders")
    assert finding.confidence >= 0.9
    assert "BackoffLimitExceeded" in finding.summary
    assert "export-orders-7xk2p/export exit 1 (Error)" in finding.summary
    assert 'last error: psycopg2.errors.UndefinedTable: relation "orders_archive"' in (
        finding.summary
    )
    assert "log:batch/export-orders-7xk2p/export/current" in finding.evidence
    assert "kubectl -n batch logs export-orders-7xk2p -c export --tail=100" in commands(
        finding, ctx
    )


def _evicted_job(message: str, nodes: tuple[str, ...]) -> list[Any]:
    job = k.job("backfill", failed=len(nodes), conditions=[
        k.job_condition("Failed", "BackoffLimitExceeded", BACKOFF)])  # fmt: skip
    pods = []
    for index, node in enumerate(nodes):
        pod = k.pod(f"backfill-{index}x2p", "batch", owner=ObjectRef("Job", "batch", "backfill"),
                    phase="Failed", node=node, containers=[k.container(
                        "backfill", limits={"ephemeral-storage": "2Gi"})],
                    statuses=[k.terminated_status("backfill", exit_code=137)],
                    restart_policy="Never")  # fmt: skip
        pod["status"].update(reason="Evicted", message=message)
        pods.append(pod)
    return [job, *pods]


def test_pods_evicted_for_their_own_storage_limit_are_named_with_the_limit() -> None:
    message = "Pod ephemeral local storage usage exceeds the total limit of containers 2Gi. "
    log = "INFO progress 5001/48211, workdir 1.98 GiB\nWARNING slow download IMG_18633.CR2\n"
    ctx = k.context(
        _evicted_job(message, ("node-a", "node-b", "node-c")),
        logs={("batch", "backfill-0x2p", "backfill", False): log},
    )
    finding = only(analyze(ctx), Category.JobFailed)
    assert finding.resource == ObjectRef("Job", "batch", "backfill")
    assert finding.confidence >= 0.9
    assert (
        "3 pods evicted on 3 nodes for exceeding their own ephemeral-storage limit 2Gi"
        in finding.summary
    )
    # The containers were stopped by the eviction: their exit code and last line say nothing.
    assert "exit 137" not in finding.summary
    assert "WARNING" not in finding.summary
    assert finding.blames == ()
    assert "log:batch/backfill-0x2p/backfill/current" in finding.evidence
    steps = workloads.ANALYZER.recommend(finding, ctx)
    assert any("limits.ephemeral-storage" in s.detail for s in steps)


def test_pods_evicted_for_node_pressure_blame_their_nodes() -> None:
    message = "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi. "
    ctx = k.context(_evicted_job(message, ("node-a", "node-a")))
    finding = only(analyze(ctx), Category.JobFailed)
    assert "2 pods Evicted: 'The node was low on resource: ephemeral-storage." in finding.summary
    assert finding.blames == (ObjectRef("Node", None, "node-a"),)
    assert finding.confidence < 0.9


def test_a_job_that_completed_after_retries_is_fine() -> None:
    done = k.job("export-orders", failed=2, succeeded=1, conditions=[
        k.job_condition("Complete", "Completed", "")])  # fmt: skip
    assert analyze(k.context([done])) == []


def test_a_cronjob_whose_latest_run_failed_is_the_culprit() -> None:
    owner = ObjectRef("CronJob", "batch", "nightly-report")
    older = k.job("nightly-report-29001", owner=owner, started_minutes_ago=180, conditions=[
        k.job_condition("Failed", "BackoffLimitExceeded", BACKOFF)])  # fmt: skip
    ok = k.job("nightly-report-29002", owner=owner, started_minutes_ago=120, succeeded=1,
               conditions=[k.job_condition("Complete", "Completed", "")])  # fmt: skip
    latest = _failed_job("nightly-report-29003", owner=owner, minutes_ago=60)
    ctx = k.context([k.cronjob("nightly-report"), older, ok, *latest])
    finding = only(analyze(ctx), Category.JobFailed)
    assert finding.resource == owner
    assert finding.subject == ObjectRef("Job", "batch", "nightly-report-29003")
    assert "2 of the last 3 runs failed" in finding.summary
    assert "create job --from=cronjob/nightly-report" in commands(finding, ctx)
    # Once the latest run succeeded, the failures are history.
    ok["metadata"]["creationTimestamp"] = ok["status"]["startTime"] = k.ts(1)
    assert analyze(k.context([k.cronjob("nightly-report"), older, ok, *latest])) == []


FEED = ObjectRef("CronJob", "batch", "feed-export")
SKIPPED = "Not starting job because prior execution is running and concurrency policy is Forbid"


def _feed_runs(*, hung_minutes: float, took_minutes: float = 6, every: float = 20) -> list[Any]:
    """Two successful runs ``every`` minutes apart, then one still active."""
    runs: list[Any] = []
    for index, ago in enumerate((hung_minutes + 2 * every, hung_minutes + every)):
        done = k.job(
            f"feed-export-2991{index}",
            owner=FEED,
            succeeded=1,
            started_minutes_ago=ago,
            conditions=[k.job_condition("Complete", "Completed", "", ago - took_minutes)],
        )
        done["status"]["completionTime"] = k.ts(ago - took_minutes)
        runs.append(done)
    active = k.job("feed-export-29919", owner=FEED, active=1, started_minutes_ago=hung_minutes)
    pod = k.pod(
        "feed-export-29919-jzrqw",
        "batch",
        owner=ObjectRef("Job", "batch", active["metadata"]["name"]),
        containers=[k.container("export")],
        statuses=[k.running_status("export")],
        restart_policy="Never",
    )
    return [k.cronjob("feed-export", schedule="*/20 * * * *"), *runs, active, pod]  # fmt: skip


def test_a_hung_run_blocking_a_forbid_cronjob_is_the_culprit() -> None:
    skipped = k.event(FEED, "JobAlreadyActive", SKIPPED, type_="Normal", count=3)
    log = (
        'time=2026-11-26T02:10:38Z level=INFO msg="upload progress" sent_mib=8.0\n'
        'time=2026-11-26T02:10:43Z level=INFO msg="upload progress" sent_mib=12.0\n'
    )
    ctx = k.context(
        _feed_runs(hung_minutes=65),
        events=[skipped],
        logs={("batch", "feed-export-29919-jzrqw", "export", False): log},
        alert={"alertname": "CronJobLastSuccessTooOld", "namespace": "batch",
               "cronjob": "feed-export"},
    )  # fmt: skip
    finding = only(analyze(ctx), Category.JobFailed)
    assert finding.resource == ObjectRef("Job", "batch", "feed-export-29919")
    assert finding.confidence >= 0.85
    assert "has been running for 65m without finishing" in finding.summary
    assert "earlier successful runs took at most 6m" in finding.summary
    assert "3 scheduled runs were skipped (JobAlreadyActive)" in finding.summary
    assert "its log has been silent for 64m" in finding.summary
    assert "sent_mib=12.0" in finding.summary
    text = commands(finding, ctx)
    assert "kubectl -n batch delete job feed-export-29919" in text
    assert '"activeDeadlineSeconds":1200' in text


def test_a_hung_run_is_found_after_the_skip_events_aged_out() -> None:
    finding = only(analyze(k.context(_feed_runs(hung_minutes=65))), Category.JobFailed)
    assert "3 scheduled runs were skipped" in finding.summary
    assert "JobAlreadyActive" not in finding.summary
    assert finding.confidence < 0.85


def test_a_run_within_its_usual_time_or_not_blocking_is_no_finding() -> None:
    assert analyze(k.context(_feed_runs(hung_minutes=5))) == []
    # A CronJob whose runs take most of the interval is judged by its own history.
    assert analyze(k.context(_feed_runs(hung_minutes=35, took_minutes=25, every=30))) == []
    allow = _feed_runs(hung_minutes=65)
    allow[0]["spec"]["concurrencyPolicy"] = "Allow"
    assert analyze(k.context(allow)) == []


# --- ScalingLimit -----------------------------------------------------------------------------

CPU_NOW = [{"type": "Resource", "resource": {"name": "cpu", "current": {
    "averageUtilization": 183, "averageValue": "917m"}}}]  # fmt: skip


def test_an_hpa_at_its_maximum_names_the_metric_against_its_target() -> None:
    maxed = k.hpa("api", current=10, desired=10, max_replicas=10, current_metrics=CPU_NOW,
                  conditions=[k.condition("AbleToScale", "True", "ReadyForNewScale"),
                              k.condition("ScalingActive", "True", "ValidMetricFound"),
                              k.condition("ScalingLimited", "True", "TooManyReplicas",
                                          "the desired replica count is more than the maximum "
                                          "replica count")])  # fmt: skip
    ctx = k.context([maxed, k.deployment("api", replicas=10)])
    finding = only(analyze(ctx), Category.ScalingLimit)
    hpa_ref = ObjectRef("HorizontalPodAutoscaler", "shop", "api")
    assert finding.resource == hpa_ref
    assert "maximum of 10 replicas" in finding.summary
    assert "min 2, max 10, current 10" in finding.summary
    assert "cpu 183% (target 70%)" in finding.summary
    assert '"maxReplicas":15' in commands(finding, ctx)


def test_an_hpa_below_its_maximum_is_no_finding() -> None:
    within = k.condition("ScalingLimited", "False", "DesiredWithinRange")
    calm = k.hpa("api", current=4, max_replicas=10, current_metrics=CPU_NOW, conditions=[within])
    assert analyze(k.context([calm])) == []


def test_an_hpa_without_cpu_requests_to_scale_on_blames_the_workload() -> None:
    blind = k.hpa("api", conditions=[k.condition(
        "ScalingActive", "False", "FailedGetResourceMetric",
        "the HPA was unable to compute the replica count: failed to get cpu utilization: "
        "missing request for cpu in container api of Pod api-6b8f9d7c4-q8w2e")])  # fmt: skip
    ctx = k.context([blind, k.deployment("api")])
    finding = only(analyze(ctx), Category.ScalingLimit)
    assert finding.resource == API
    assert "FailedGetResourceMetric" in finding.summary
    assert "declares no cpu request" in finding.summary
    assert "kubectl -n shop set resources deployment/api --requests=cpu=100m" in commands(
        finding, ctx
    )


METRICS_DOWN = (
    "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to "
    "get metrics for resource cpu: unable to fetch metrics from resource metrics API: the server "
    "is currently unable to handle the request (get pods.metrics.k8s.io)"
)
METRICS_SVC = ObjectRef("Service", "kube-system", "metrics-server")
METRICS_DEPLOY = ObjectRef("Deployment", "kube-system", "metrics-server")


def _blind_hpa() -> Any:
    return k.hpa("api", current=3, min_replicas=3, max_replicas=24, conditions=[
        k.condition("AbleToScale", "True", "SucceededGetScale"),
        k.condition("ScalingActive", "False", "FailedGetResourceMetric", METRICS_DOWN),
        k.condition("ScalingLimited", "False", "DesiredWithinRange")])  # fmt: skip


def test_an_hpa_blind_for_its_metrics_api_blames_metrics_server_not_itself() -> None:
    ctx = k.context([_blind_hpa(), k.deployment("api", replicas=3)])
    finding = only(analyze(ctx), Category.DependencyFailure)
    assert finding.subject == ObjectRef("HorizontalPodAutoscaler", "shop", "api")
    assert finding.resource == METRICS_SVC
    assert finding.confidence <= 0.5
    assert set(finding.blames) >= {METRICS_SVC, METRICS_DEPLOY}
    assert "metrics.k8s.io metrics API (served by Service kube-system/metrics-server)" in (
        finding.summary
    )
    assert "stays at 3 replicas" in finding.summary
    assert "kubectl -n kube-system get endpoints metrics-server" in commands(finding, ctx)
    # Nothing deeper was read: the unavailable metrics API is the answer.
    assert rank(ctx, [finding], 0.35).root is finding


def test_an_oomkilled_metrics_server_explains_the_blind_hpa() -> None:
    spec = k.container("metrics-server", limits={"memory": "200Mi"})
    rs = ObjectRef("ReplicaSet", "kube-system", "metrics-server-7c6d6b477b")
    oom = {"exitCode": 137, "reason": "OOMKilled", "startedAt": k.ts(4), "finishedAt": k.ts(3)}
    server = [
        k.deployment("metrics-server", "kube-system", containers=[spec]),
        k.replicaset(rs.name, "metrics-server", "kube-system", revision=1, replicas=1),
        k.pod("metrics-server-7c6d6b477b-7k9k4", "kube-system", owner=rs,
              labels={"app": "metrics-server"}, containers=[spec],
              statuses=[k.waiting_status("metrics-server", restarts=11, last_terminated=oom)]),
        k.service("metrics-server", "kube-system", selector={"app": "metrics-server"}),
        k.apiservice("metrics.k8s.io", service=METRICS_SVC, available=False,
                     reason="MissingEndpoints", message="endpoints for service/metrics-server "
                     'in "kube-system" have no addresses with port name "https"'),
    ]  # fmt: skip
    ctx = k.context([_blind_hpa(), k.deployment("api", replicas=3), *server])
    blind = only(analyze(ctx), Category.DependencyFailure)
    assert "APIService v1beta1.metrics.k8s.io Available=False MissingEndpoints" in blind.summary
    oomkilled = list(pods.analyze(ctx, EvidenceLedger("snapshot")))
    ranking = rank(ctx, [blind, *oomkilled], 0.35)
    assert ranking.root is not None
    assert ranking.root.category is Category.OOMKilled
    assert ranking.root.resource == METRICS_DEPLOY
    assert blind in ranking.findings[1 : 1 + ranking.symptoms]


def test_a_custom_metrics_api_is_traced_through_its_apiservice() -> None:
    adapter = ObjectRef("Service", "monitoring", "prometheus-adapter")
    down = (
        "unable to get metric http_requests: unable to fetch metrics from custom metrics API: "
        "the server is currently unable to handle the request (get pods.custom.metrics.k8s.io *)"
    )
    hpa = k.hpa("api", conditions=[
        k.condition("ScalingActive", "False", "FailedGetPodsMetric", down)])  # fmt: skip
    registered = k.apiservice("custom.metrics.k8s.io", service=adapter, available=False)
    ctx = k.context([hpa, k.deployment("api"), registered])
    finding = only(analyze(ctx), Category.DependencyFailure)
    assert finding.resource == adapter
    assert METRICS_SVC not in finding.blames
    assert ObjectRef("APIService", None, "v1beta1.custom.metrics.k8s.io") in finding.blames
    # An adapter that answers but lacks the metric is the HPA's own ScalingLimit finding.
    lacks = "unable to fetch metrics from custom metrics API: the server could not find the metric"
    hpa["status"]["conditions"][0]["message"] = lacks + " http_requests for pods"
    assert only(analyze(ctx), Category.ScalingLimit).resource.kind == "HorizontalPodAutoscaler"


# --- CPUThrottling ----------------------------------------------------------------------------


def test_a_throttling_alert_cites_the_alert_and_the_cpu_limit() -> None:
    pod = k.pod(NEW_POD.name, owner=NEW_RS, labels={"app": "api"}, containers=[
        k.container("api", limits={"cpu": "500m", "memory": "512Mi"},
                    requests={"cpu": "250m", "memory": "256Mi"})],
        statuses=[k.running_status("api")])  # fmt: skip
    labels = {"alertname": "CPUThrottlingHigh", "namespace": "shop", "pod": NEW_POD.name,
              "container": "api"}  # fmt: skip
    ctx = k.context(
        [pod, k.replicaset(NEW_RS.name, "api", revision=5, replicas=3), k.deployment("api")],
        alert=labels, focus=[NEW_POD],
        annotations={"description": f"65.2% throttling of CPU in namespace shop for container "
                                    f"api in pod {NEW_POD.name}.",
                     "summary": "Processes experience elevated CPU throttling."},
    )  # fmt: skip
    ledger = EvidenceLedger("snapshot")
    finding = only(list(workloads.ANALYZER.analyze(ctx, ledger)), Category.CPUThrottling)
    assert finding.resource == API
    assert "alert:CPUThrottlingHigh" in finding.evidence
    assert "500m CPU limit (request 250m)" in finding.summary
    assert "65.2%" in finding.summary
    assert "kubectl -n shop set resources deployment/api -c api --limits=cpu=1" in commands(
        finding, ctx
    )


def test_other_alerts_are_not_throttling() -> None:
    ctx = k.context([k.pod("api-1")], alertname="KubePodCrashLooping")
    assert [f for f in analyze(ctx) if f.category is Category.CPUThrottling] == []
