"""The compressed context the model reads: cited evidence always survives, compression
goes in the promised order (repeats, healthy objects, uncited logs, Normal events,
distant objects), and the same input gives the same bytes.

Golden cases (``evals/cases``) prove the promises on realistic contexts; a small
synthetic incident pins each compression level.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from oncallm.llm.digest import (
    ContextDigest,
    digest_context,
    estimate_tokens,
    event_id,
    log_id,
    summary_id,
)
from oncallm.sources.base import ObjectRef
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import MAX_EXCERPT, EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.taxonomy import Category
from tests.support.golden import case_names, golden_triage, run_golden
from tests.unit import kubeobjects as k

RS = ObjectRef("ReplicaSet", "shop", "api-7d9f8b6c5")
API_1 = ObjectRef("Pod", "shop", "api-7d9f8b6c5-x2x9k")
API_2 = ObjectRef("Pod", "shop", "api-7d9f8b6c5-q8w4n")
WORKER = ObjectRef("Pod", "shop", "worker-5c8d7f9b4-z7m2p")
CONFIG = ObjectRef("ConfigMap", "shop", "api-config")
NODE = ObjectRef("Node", None, "node-a")
DEPLOYMENT = ObjectRef("Deployment", "shop", "api")

RETRIES = [
    f"2026-11-26T03:{m:02d}:{s:02d}.{m * s:03d}Z WARN retrying connection to redis:6379 "
    f"(attempt {n}, backoff {n * 250}ms)"
    for n, (m, s) in enumerate(((m, s) for m in range(5, 8) for s in range(0, 60, 6)), 1)
]
CRASH = [
    *RETRIES,
    "2026-11-26T03:08:01Z ERROR fatal: cannot connect to redis:6379: connection refused",
    "Traceback (most recent call last):",
    '  File "/app/cache.py", line 12, in connect',
    "ConnectionRefusedError: [Errno 111] Connection refused",
]
# Distinct lines, so nothing collapses: only shortening can cut this log.
SERVING = [
    "2026-11-26T02:40:00Z ERROR failed to warm cache: redis timed out",
    *(f"2026-11-26T02:41:00Z INFO indexed shard {chr(97 + i % 26)}{chr(97 + i // 26)}"
      for i in range(60)),
]  # fmt: skip


def _pod_spec() -> dict[str, Any]:
    return k.container(
        "api",
        limits={"memory": "512Mi"},
        requests={"cpu": "250m", "memory": "256Mi"},
        env=[
            {"name": "LOG_LEVEL", "value": "debug"},
            {"name": "REDIS_URL", "value": "redis://redis.shop.svc:6379/0"},
            {
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "api-db", "key": "password"}},
            },
        ],
    )


def _incident(*, logs: bool = True) -> tuple[TriageContext, dict[str, Any]]:
    """api-1 (alerted) crash-loops on redis; api-2, the ConfigMap and the Node are healthy;
    worker-1, farther away, is broken too but no finding is about it."""
    crashed = k.waiting_status(
        "api", restarts=9, last_terminated={"reason": "Error", "exitCode": 1}
    )
    objects = [
        k.deployment("api", containers=[_pod_spec()]),
        k.replicaset(RS.name, "api", revision=4, replicas=2, ready=1),
        k.pod(API_1.name, owner=RS, containers=[_pod_spec()], statuses=[crashed],
              volumes=[{"name": "config", "configMap": {"name": "api-config"}}]),
        k.pod(API_2.name, owner=RS, containers=[_pod_spec()],
              volumes=[{"name": "config", "configMap": {"name": "api-config"}}]),
        k.pod(WORKER.name, statuses=[k.waiting_status("app", restarts=3)]),
        k.configmap("api-config", data={"REDIS_HOST": "redis.shop.svc"}),
        k.node("node-a"),
    ]  # fmt: skip
    events = [
        k.event(API_1, "BackOff", "Back-off restarting failed container api", count=37),
        k.event(API_1, "Pulled", 'Container image "app:1.4.2" already present', type_="Normal"),
        k.event(API_2, "Scheduled", "Successfully assigned shop/api-2 to node-a", type_="Normal"),
        k.event(WORKER, "BackOff", "Back-off restarting failed container app", count=4),
    ]
    logs_by_key = {
        ("shop", API_1.name, "api", True): "\n".join(CRASH),
        ("shop", API_1.name, "api", False): "\n".join(SERVING),
    }
    ctx = k.context(objects, events=events, logs=logs_by_key if logs else {}, focus=[API_1])
    distance = dict.fromkeys(ctx.objects, 1) | {API_1: 0, NODE: 2, WORKER: 3}
    ctx = dataclasses.replace(ctx, distance=distance)

    ledger = EvidenceLedger("snapshot")
    evidence = [
        ledger.cite_object(API_1, "status.containerStatuses[api]", "Error exit 1, 9 restarts"),
        ledger.cite_event(API_1, "BackOff", "Warning BackOff (x37): Back-off restarting"),
    ]
    if logs:
        evidence.append(ledger.cite_log("shop", API_1.name, "api", True, CRASH[-4:]))
    finding = Finding(
        Category.DependencyFailure, "api cannot reach redis", API_1, DEPLOYMENT,
        tuple(evidence), 0.8, "pods",
    )  # fmt: skip
    result = {
        "root_cause": {k_: v for k_, v in finding.as_dict().items() if k_ != "analyzer"},
        "findings": [finding.as_dict()],
        "evidence": [e.as_dict() for e in ledger.items()],
        "gaps": [{"source": "logs of Pod shop/worker", "error": "403 Forbidden"}],
    }
    return ctx, result


def _text(digest: ContextDigest, ref_id: str) -> str:
    item = digest.item(ref_id)
    assert item is not None, f"{ref_id} not in the digest"
    return item.text


# --- cited evidence -----------------------------------------------------------------------


@pytest.mark.parametrize("case", case_names())
def test_every_cited_evidence_item_survives_a_tiny_target(case: str) -> None:
    ctx, result = golden_triage(case)
    digest = digest_context(ctx, result, token_target=500)

    cited = [e["id"] for e in result["evidence"]]
    assert digest.cited_total == len(cited)
    assert digest.cited_kept == digest.cited_total  # 100%, at any target
    for finding in [result["root_cause"], *result["findings"]]:
        for evidence_id in finding["evidence"]:
            item = digest.item(evidence_id)
            assert item is not None, f"{case}: {evidence_id} cited by a finding was dropped"
            assert item.cited
    for ref in ctx.focus:
        if ref in ctx.objects and ref.kind not in ("Endpoints", "EndpointSlice"):
            assert summary_id(ref) in digest.ids(), f"{case}: focus {ref} was dropped"


def test_a_target_it_cannot_meet_is_reported_not_hidden() -> None:
    ctx, result = _incident()
    digest = digest_context(ctx, result, token_target=50)
    assert digest.estimated_tokens > 50
    assert digest.estimated_tokens == estimate_tokens(digest.text())
    assert digest.cited_kept == digest.cited_total == 3


# --- compression levels -------------------------------------------------------------------


def test_nothing_is_compressed_when_it_fits() -> None:
    ctx, result = _incident()
    digest = digest_context(ctx, result, token_target=100_000)
    assert dict(digest.dropped) == {}
    previous = _text(digest, log_id("shop", API_1.name, "api", True))
    assert previous.count("retrying connection to redis") == len(RETRIES)


def test_repeated_log_lines_collapse_into_one_with_a_count() -> None:
    ctx, result = _incident()
    digest = digest_context(ctx, result, token_target=1)

    previous = _text(digest, log_id("shop", API_1.name, "api", True)).splitlines()
    retries = [line for line in previous if "retrying connection to redis" in line]
    # Thirty lines that differ only in times and numbers read as the last of them, counted.
    assert retries == [f"{RETRIES[-1]} (x{len(RETRIES)})"]
    assert digest.dropped["repeated log lines"] >= len(RETRIES) - 1


def test_shortened_logs_keep_error_lines_and_the_last_lines() -> None:
    ctx, result = _incident()
    digest = digest_context(ctx, result, token_target=1)

    current = _text(digest, log_id("shop", API_1.name, "api", False)).splitlines()
    assert current[0] == SERVING[0]  # the error line, from long before the tail
    assert current[-5:] == SERVING[-5:]
    assert current[1] == f"[… {len(SERVING) - 6} lines omitted]"
    assert digest.dropped["uncited log lines"] == len(SERVING) - 6

    # The cited log keeps the lines its finding quoted, its errors and its end.
    previous = _text(digest, log_id("shop", API_1.name, "api", True))
    for line in CRASH[-4:]:
        assert line in previous


def test_healthy_objects_go_first() -> None:
    ctx, result = _incident(logs=False)
    full = digest_context(ctx, result, token_target=100_000)
    digest = digest_context(ctx, result, token_target=full.estimated_tokens - 1)

    gone = {summary_id(ref) for ref in (API_2, CONFIG, NODE)}
    assert gone <= full.ids()
    assert not gone & digest.ids()
    assert dict(digest.dropped) == {"healthy objects": 3, "events of dropped objects": 1}
    # The broken pod stays, though no finding names it; so does what the alert is about.
    for ref in (WORKER, API_1, DEPLOYMENT):
        assert summary_id(ref) in digest.ids()
    assert event_id(API_1, "Pulled") in digest.ids()  # Normal events go later


def test_then_normal_events_then_the_farthest_objects() -> None:
    ctx, result = _incident()
    digest = digest_context(ctx, result, token_target=1)

    assert event_id(API_1, "Pulled") not in digest.ids()  # Normal, uncited
    assert summary_id(WORKER) not in digest.ids()  # distance 3, uncited
    assert event_id(WORKER, "BackOff") not in digest.ids()
    assert digest.dropped["distant objects"] >= 1
    assert digest.dropped["normal events"] == 1
    assert event_id(API_1, "BackOff") in digest.ids()  # cited
    assert summary_id(API_1) in digest.ids()  # in focus
    assert summary_id(DEPLOYMENT) in digest.ids()  # the finding's culprit


# --- what the model reads -----------------------------------------------------------------


def test_a_pod_reads_as_its_essentials() -> None:
    ctx, result = _incident()
    digest = digest_context(ctx, result, token_target=100_000)

    pod = _text(digest, summary_id(API_1))
    assert pod.startswith(f"Pod shop/{API_1.name} [alerted]\n")
    for fact in (
        "phase Running",
        f"owner ReplicaSet {RS.name}",
        "container api image registry.example.com/shop/app:1.4.2 ready=false restarts=9",
        "state waiting CrashLoopBackOff",
        "last terminated Error, exit 1",
        "requests cpu=250m,memory=256Mi; limits memory=512Mi",
        "LOG_LEVEL=debug",
        "REDIS_URL=redis://redis.shop.svc:6379/0",  # values as they are: redaction is later
        "DB_PASSWORD from Secret api-db key password",
        "volumes config=ConfigMap api-config",
    ):
        assert fact in pod
    # Its healthy sibling points to the spec already shown instead of repeating it.
    sibling = _text(digest, summary_id(API_2))
    assert f"(spec as in Pod {API_1.name})" in sibling
    assert "REDIS_URL" not in sibling

    backoff = _text(digest, event_id(API_1, "BackOff"))
    assert backoff.startswith("Warning BackOff x37, first 7m before alert, last 3m after alert:")


def test_findings_and_gaps_are_in_the_digest() -> None:
    ctx, result = _incident()
    digest = digest_context(ctx, result, token_target=100_000)
    assert "1. [root cause] DependencyFailure (confidence 0.80)" in digest.findings
    assert f"culprit Deployment shop/api; seen on Pod shop/{API_1.name}" in digest.findings
    assert event_id(API_1, "BackOff") in digest.findings
    assert digest.gaps == ("logs of Pod shop/worker: 403 Forbidden",)
    assert digest.alert.startswith("KubePodNotReady (firing), started 2026-11-26 03:10:00 UTC")


# --- ids ----------------------------------------------------------------------------------


def test_ids_follow_the_evidence_ledger_scheme() -> None:
    ctx, result = _incident()
    digest = digest_context(ctx, result, token_target=100_000)
    ledger = EvidenceLedger("snapshot")
    for ref, events in ctx.events.items():
        for event in events:
            assert ledger.cite_event(ref, event.reason, "") in digest.ids()
    for ns, pod, container, previous in ctx.logs:
        assert ledger.cite_log(ns, pod, container, previous, []) in digest.ids()
    assert summary_id(NODE) == "object:Node/node-a#summary"
    assert summary_id(API_1) == f"object:Pod/shop/{API_1.name}#summary"
    assert digest.item("event:Pod/shop/nope/BackOff") is None


def test_an_item_becomes_result_evidence_when_the_model_cites_it() -> None:
    ctx, result = _incident()
    digest = digest_context(ctx, result, token_target=100_000)

    log = digest.item(log_id("shop", API_1.name, "api", False))
    assert log is not None
    assert not log.cited
    evidence = log.as_evidence("snapshot")
    assert (evidence.id, evidence.type, evidence.resource) == (log.id, "log", API_1)
    assert evidence.source == "snapshot: logs of container api"
    # Clipped like ledger excerpts; a log keeps its end, where it says how it failed.
    assert len(evidence.excerpt) == MAX_EXCERPT
    assert evidence.excerpt.endswith(SERVING[-1])

    summary = digest.item(summary_id(NODE))
    assert summary is not None
    assert summary.as_evidence("kubernetes").source == "kubernetes: Node summary"


def test_estimate_is_a_quarter_of_the_characters_rounded_up() -> None:
    assert [estimate_tokens(t) for t in ("", "abcd", "abcde", "é" * 9)] == [0, 1, 2, 3]


# --- determinism --------------------------------------------------------------------------


def test_same_context_same_bytes_whatever_the_gather_order() -> None:
    ctx, result = _incident()
    shuffled = dataclasses.replace(
        ctx,
        objects=dict(reversed(ctx.objects.items())),
        events={ref: tuple(reversed(evs)) for ref, evs in reversed(ctx.events.items())},
        logs=dict(reversed(ctx.logs.items())),
    )
    for target in (100_000, 900, 1):
        first = digest_context(ctx, result, token_target=target)
        assert first == digest_context(ctx, result, token_target=target)
        assert first == digest_context(shuffled, result, token_target=target)


@pytest.mark.parametrize("case", ["istio-proxy-sidecar-oomkilled", "oom-java-heap-over-limit"])
def test_a_golden_case_gathered_twice_digests_identically(case: str) -> None:
    # Each run gathers anew, with its reads finishing in whatever order they do.
    (ctx_a, result_a), (ctx_b, result_b) = run_golden(case), run_golden(case)
    for target in (4000, 500):
        first = digest_context(ctx_a, result_a, token_target=target)
        assert first.text() == digest_context(ctx_b, result_b, token_target=target).text()
