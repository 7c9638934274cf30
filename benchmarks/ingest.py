"""Ingest benchmark: concurrent Alertmanager clients against a running `oncallm serve`.

For each backend (SQLite in a temporary directory, PostgreSQL as a fresh database on a
private cluster started by ``tests.support.services``) this starts a real ``oncallm serve``
subprocess on loopback with JSON logs to a file, then runs ``--clients`` concurrent
clients (asyncio + httpx, uvloop when available, one keep-alive connection each, as
Alertmanager keeps) for a short warm-up and then ``--duration`` seconds. Every request is
one webhook notification of 1-50 alerts drawn from a seeded RNG; the mix is about 60 %
new alert groups, 25 % duplicates (an earlier body resent unchanged, or its HA twin with
another ``externalURL``) and 15 % resolved versions of earlier firing alerts. All bodies
are generated and serialised before the clock starts, so the client does little besides
sending bytes; the request count is bounded by ``--max-requests`` and the time by
``--duration`` plus the request timeout.

Reported per backend: alerts/s (alerts in notifications answered 202 / wall time of the
measured window), notifications/s, latency from send to 202 (p50/p95/p99/max, also per
kind of request), errors, CPU seconds of server, client, PostgreSQL and of everything
else on the machine (other workloads skew results on a shared 2-core box; ``--wait-idle``
waits for a quiet moment), and the triage queue left behind. Then the server is stopped
and the database opened directly: every distinct (fingerprint, startsAt) that got a 202
must be in ``occurrences`` (and nothing else), every alert accepted as resolved must be
resolved with the ``endsAt`` sent, and every distinct accepted body must be stored
exactly once (``committed_ok``).

Runs per backend, each on a fresh database: ``default`` (closed loop, default
configuration, embedded worker on — the headline numbers), ``without_embedded_worker``
(same load, ``ONCALLM_SERVER__EMBEDDED_WORKER=false``; ``--no-compare-no-worker`` skips
it) and ``at_goal_rate`` (open loop: Poisson arrivals offering ``--rate`` alerts/s,
latency counted from the scheduled send time; ``--rate 0`` skips it). ``goal_met``
evaluates the issue's goal — at least 1,000 alerts/s and p99 at most 50 ms on SQLite,
every accepted alert committed — both on the closed-loop run alone and as "capacity plus
latency at the goal rate" (see ``_goal_met``).

Usage: ``uv run python benchmarks/ingest.py [--duration S] [--clients N]
[--backend sqlite|postgresql|both]``; one JSON object on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from oncallm.config import DatabaseSettings  # noqa: E402
from oncallm.store.db import Database  # noqa: E402
from oncallm.store.models import Notification, Occurrence, TriageJob  # noqa: E402
from tests.support.services import (  # noqa: E402
    OncallmProcess,
    oncallm_env,
    postgres_server,
    start_server,
)

WEBHOOK = "/api/v1/alerts/alertmanager"
GOAL = {"backend": "sqlite", "alerts_per_s_min": 1000.0, "p99_ms_max": 50.0, "committed": True}
KINDS = ("new", "duplicate_identical", "duplicate_ha_twin", "resolved")
EXTERNAL_URLS = ("http://alertmanager-0.monitoring:9093", "http://alertmanager-1.monitoring:9093")
ZERO_TIME = "0001-01-01T00:00:00Z"
ALERTNAMES = (
    "KubePodCrashLooping",
    "KubePodNotReady",
    "KubeContainerWaiting",
    "KubeDeploymentReplicasMismatch",
    "KubePersistentVolumeFillingUp",
    "KubeNodeNotReady",
    "KubeMemoryOvercommit",
    "TargetDown",
    "CPUThrottlingHigh",
    "KubeJobFailed",
)
SEVERITIES = ("critical", "warning", "info")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- workload ------------------------------------------------------------------------


@dataclass(slots=True)
class Planned:
    """One request of the workload, serialised ahead of time."""

    kind: str
    body: bytes
    alerts: int
    # (fingerprint, startsAt) of alerts sent firing; (fingerprint, startsAt, endsAt) resolved.
    firing: tuple[tuple[str, str], ...]
    resolved: tuple[tuple[str, str, str], ...]
    external: int = 0  # index into EXTERNAL_URLS


@dataclass(slots=True)
class _Group:
    """A firing alert group that later notifications can resolve."""

    alertname: str
    alerts: list[dict[str, Any]]
    resolved: set[int] = field(default_factory=set)


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _notification(group: _Group, alerts: list[dict[str, Any]], external: int) -> dict[str, Any]:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    common = {"alertname": group.alertname}
    return {
        "receiver": "oncallm",
        "status": status,
        "alerts": alerts,
        "groupLabels": common,
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": EXTERNAL_URLS[external],
        "version": "4",
        "groupKey": f'{{}}/{{severity=~"warning|critical"}}:{{alertname="{group.alertname}"}}',
        "truncatedAlerts": 0,
    }


def build_workload(count: int, seed: int) -> list[Planned]:
    """``count`` requests: ~60 % new groups, ~25 % duplicates, ~15 % resolved versions."""
    rng = random.Random(seed)
    base = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    prefix = f"{seed & 0xFFFF:04x}"
    plan: list[Planned] = []
    open_groups: list[_Group] = []
    serial = 0

    def new_group() -> Planned:
        nonlocal serial
        alertname = rng.choice(ALERTNAMES)
        severity = rng.choice(SEVERITIES)
        cluster = f"prod-{rng.randrange(4)}"
        namespace = f"team-{rng.randrange(40)}"
        alerts = []
        for _ in range(rng.randint(1, 50)):
            serial += 1
            pod = f"api-{serial:x}-{rng.randrange(16**5):05x}"
            alerts.append(
                {
                    "status": "firing",
                    "labels": {
                        "alertname": alertname,
                        "severity": severity,
                        "cluster": cluster,
                        "namespace": namespace,
                        "pod": pod,
                        "container": "app",
                        "job": "kube-state-metrics",
                        "prometheus": "monitoring/k8s",
                    },
                    "annotations": {
                        "summary": f"{alertname} on {namespace}/{pod}",
                        "description": f"Pod {namespace}/{pod} ({cluster}) needs attention.",
                        "runbook_url": "https://runbooks.example.com/" + alertname.lower(),
                    },
                    "startsAt": _iso(base + timedelta(milliseconds=serial * 37)),
                    "endsAt": ZERO_TIME,
                    "generatorURL": "http://prometheus-0:9090/graph?g0.expr=up+%3D%3D+0",
                    "fingerprint": f"{prefix}{serial:012x}",
                }
            )
        group = _Group(alertname, alerts)
        open_groups.append(group)
        external = rng.randrange(2)
        return Planned(
            kind="new",
            body=json.dumps(_notification(group, alerts, external)).encode(),
            alerts=len(alerts),
            firing=tuple((a["fingerprint"], a["startsAt"]) for a in alerts),
            resolved=(),
            external=external,
        )

    def resolve_some() -> Planned:
        group = open_groups[rng.randrange(len(open_groups))]
        still = [i for i in range(len(group.alerts)) if i not in group.resolved]
        if rng.random() < 0.6:
            chosen = set(still)
        else:
            chosen = set(rng.sample(still, rng.randint(1, len(still))))
        group.resolved |= chosen
        if len(group.resolved) == len(group.alerts):
            open_groups.remove(group)
        ended = _iso(base + timedelta(hours=1, milliseconds=len(plan)))
        for i in chosen:
            # Resolved alerts stay in the group's later notifications with the same endsAt.
            group.alerts[i] = {**group.alerts[i], "status": "resolved", "endsAt": ended}
        alerts = list(group.alerts)
        external = rng.randrange(2)
        return Planned(
            kind="resolved",
            body=json.dumps(_notification(group, alerts, external)).encode(),
            alerts=len(alerts),
            firing=tuple(
                (a["fingerprint"], a["startsAt"]) for a in alerts if a["status"] == "firing"
            ),
            resolved=tuple(
                (a["fingerprint"], a["startsAt"], a["endsAt"])
                for a in alerts
                if a["status"] == "resolved"
            ),
            external=external,
        )

    def duplicate() -> Planned:
        # Half near-simultaneous (HA pair, retries), half repeat_interval resends of old groups.
        window = 64 if rng.random() < 0.5 else len(plan)
        original = plan[rng.randrange(max(0, len(plan) - window), len(plan))]
        if rng.random() < 0.6:
            return Planned(
                "duplicate_identical",
                original.body,
                original.alerts,
                original.firing,
                original.resolved,
                original.external,
            )
        other = 1 - original.external
        body = original.body.replace(
            f'"externalURL": "{EXTERNAL_URLS[original.external]}"'.encode(),
            f'"externalURL": "{EXTERNAL_URLS[other]}"'.encode(),
            1,
        )
        return Planned(
            "duplicate_ha_twin", body, original.alerts, original.firing, original.resolved, other
        )

    while len(plan) < count:
        roll = rng.random()
        if roll < 0.60 or not plan:
            plan.append(new_group())
        elif roll < 0.85:
            plan.append(duplicate())
        elif open_groups:
            plan.append(resolve_some())
        else:
            plan.append(new_group())
    return plan


# --- load generation -----------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    index: int
    sent: float  # perf_counter at send (open loop: when it was scheduled to be sent)
    latency: float  # seconds from `sent` until the response (or error)
    status: int  # HTTP status, 0 for a transport error
    duplicate: bool


def _proc_cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_seconds(database: str | None) -> float:
    """CPU used so far by the PostgreSQL backends serving ``database``."""
    if database is None:
        return 0.0
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"postgres: ") and f" {database} ".encode() in cmdline:
            total += _proc_cpu_seconds(int(proc.name)) or 0.0
    return total


def _machine_busy() -> tuple[int, int]:
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


@dataclass(frozen=True, slots=True)
class LoadSpec:
    clients: int
    warmup: float
    duration: float
    request_timeout: float
    # Open loop: alerts/s offered with Poisson arrivals; None for the closed loop of clients.
    rate: float | None = None
    seed: int = 0
    max_inflight: int = 64  # = the open-loop connection pool; more would queue in httpx


async def _drive(
    base_url: str,
    plan: list[Planned],
    spec: LoadSpec,
    server_pid: int,
    pg_database: str | None,
) -> dict[str, Any]:
    samples: list[Sample] = []
    errors: list[str] = []
    cursor = 0
    stop = False
    headers = {"content-type": "application/json"}

    async def send(http: httpx.AsyncClient, index: int, scheduled: float) -> None:
        item = plan[index]
        try:
            response = await http.post(WEBHOOK, content=item.body, headers=headers)
            latency = time.perf_counter() - scheduled
            status = response.status_code
            duplicate = b'"duplicate":true' in response.content
            if status != 202 and len(errors) < 10:
                errors.append(f"{status}: {response.text[:300]}")
        except httpx.HTTPError as exc:
            latency = time.perf_counter() - scheduled
            status, duplicate = 0, False
            if len(errors) < 10:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
        samples.append(Sample(index, scheduled, latency, status, duplicate))

    async def closed_loop(http: httpx.AsyncClient) -> None:
        # One Alertmanager-like sender: the next notification once the last one is answered.
        nonlocal cursor
        while not stop and cursor < len(plan):
            index = cursor
            cursor += 1
            await send(http, index, time.perf_counter())

    async def open_loop(http: httpx.AsyncClient, rate: float) -> None:
        # Notifications arrive on their own schedule (Poisson, `rate` alerts/s on average),
        # whether or not earlier ones were answered; latency counts from the scheduled time,
        # so a slow server cannot hide its queue (no coordinated omission).
        nonlocal cursor
        rng = random.Random(spec.seed + 1)
        slots = asyncio.Semaphore(spec.max_inflight)
        inflight: set[asyncio.Task[None]] = set()
        next_at = time.perf_counter()

        async def one(index: int, scheduled: float) -> None:
            async with slots:
                await send(http, index, scheduled)

        while cursor < len(plan):
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if stop:
                break
            index = cursor
            cursor += 1
            task = asyncio.create_task(one(index, next_at))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            next_at += rng.expovariate(rate / plan[index].alerts)
        if inflight:
            await asyncio.wait(set(inflight))

    if spec.rate is None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        https = [
            httpx.AsyncClient(base_url=base_url, timeout=spec.request_timeout, limits=limits)
            for _ in range(spec.clients)
        ]
    else:
        limits = httpx.Limits(
            max_connections=spec.max_inflight, max_keepalive_connections=spec.max_inflight
        )
        https = [httpx.AsyncClient(base_url=base_url, timeout=spec.request_timeout, limits=limits)]
    try:
        if spec.rate is None:
            tasks = [asyncio.create_task(closed_loop(h)) for h in https]
        else:
            tasks = [asyncio.create_task(open_loop(https[0], spec.rate))]
        await asyncio.sleep(spec.warmup)
        window_start = time.perf_counter()
        cpu_client0 = time.process_time()
        cpu_server0 = _proc_cpu_seconds(server_pid)
        cpu_pg0 = _postgres_cpu_seconds(pg_database)
        busy0 = _machine_busy()
        await asyncio.wait(tasks, timeout=spec.duration)
        stop = True
        window_end = time.perf_counter()
        # In-flight requests finish (bounded by the request timeout).
        await asyncio.wait(tasks, timeout=spec.request_timeout + 5)
        drained = time.perf_counter()
        cpu_client = time.process_time() - cpu_client0
        cpu_server1 = _proc_cpu_seconds(server_pid)
        cpu_pg = _postgres_cpu_seconds(pg_database) - cpu_pg0
        busy1 = _machine_busy()
    finally:
        for h in https:
            await h.aclose()
    ticks = os.sysconf("SC_CLK_TCK")
    return {
        "samples": samples,
        "errors": errors,
        "window": (window_start, window_end, drained),
        "sent": len(samples),
        "exhausted": cursor >= len(plan),
        "cpu_client_s": cpu_client,
        "cpu_server_s": (
            None if cpu_server0 is None or cpu_server1 is None else cpu_server1 - cpu_server0
        ),
        "machine_busy_fraction": (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
        "machine_busy_s": (busy1[0] - busy0[0]) / ticks,
        "cpu_postgres_s": cpu_pg,
        "window_s": drained - window_start,
    }


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]


def _latency_ms(values: list[float]) -> dict[str, float | int]:
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "p50": round(_pct(ordered, 0.50) * 1000, 2),
        "p95": round(_pct(ordered, 0.95) * 1000, 2),
        "p99": round(_pct(ordered, 0.99) * 1000, 2),
        "max": round(ordered[-1] * 1000, 2),
        "mean": round(sum(ordered) / len(ordered) * 1000, 2),
    }


# --- verification --------------------------------------------------------------------


def _parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


async def _verify(url: str, plan: list[Planned], samples: list[Sample]) -> dict[str, Any]:
    """Compare what got a 202 with what the database holds, after the server stopped."""
    accepted = [plan[s.index] for s in samples if s.status == 202]
    expected: dict[tuple[str, datetime], datetime | None] = {}
    for item in accepted:
        for fp, starts in item.firing:
            expected.setdefault((fp, _parse(starts)), None)
        for fp, starts, ends in item.resolved:
            expected[(fp, _parse(starts))] = _parse(ends)
    bodies = {hashlib.sha256(item.body).hexdigest() for item in accepted}

    db = Database(DatabaseSettings(url=url))
    try:
        async with db.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        Occurrence.fingerprint,
                        Occurrence.starts_at,
                        Occurrence.status,
                        Occurrence.ends_at,
                    )
                )
            ).all()
            stored_bodies = set(
                (await conn.execute(select(Notification.content_sha256))).scalars().all()
            )
            notification_rows = (
                await conn.execute(select(func.count()).select_from(Notification))
            ).scalar_one()
            jobs = dict(
                (
                    await conn.execute(
                        select(TriageJob.status, func.count()).group_by(TriageJob.status)
                    )
                ).all()
            )
    finally:
        await db.dispose()

    stored = {(fp, starts): (status, ends) for fp, starts, status, ends in rows}
    missing = [key for key in expected if key not in stored]
    not_resolved = [
        key
        for key, ends in expected.items()
        if ends is not None and stored.get(key, ("",))[0] != "resolved"
    ]
    wrong_end = [
        key
        for key, ends in expected.items()
        if ends is not None and key in stored and stored[key][1] != ends
    ]
    resolved_unexpectedly = [
        key
        for key, ends in expected.items()
        if ends is None and stored.get(key, ("",))[0] == "resolved"
    ]
    unexpected = len(set(stored) - set(expected))
    ok = (
        bool(accepted)
        and not missing
        and not not_resolved
        and not wrong_end
        and bodies <= stored_bodies
        and notification_rows == len(stored_bodies)
    )
    return {
        "committed_ok": ok,
        "accepted_requests": len(accepted),
        "accepted_alerts": sum(item.alerts for item in accepted),
        "distinct_accepted_occurrences": len(expected),
        "accepted_resolved_occurrences": sum(1 for e in expected.values() if e is not None),
        "stored_occurrences": len(stored),
        "missing_occurrences": len(missing),
        "missing_examples": [f"{fp}@{starts.isoformat()}" for fp, starts in missing[:5]],
        "not_resolved": len(not_resolved),
        "resolved_with_wrong_ends_at": len(wrong_end),
        # Not failures: a request that errored client-side may still have been committed.
        "resolved_without_accepted_resolve": len(resolved_unexpectedly),
        "stored_but_never_accepted": unexpected,
        "distinct_accepted_bodies": len(bodies),
        "stored_notifications": notification_rows,
        "accepted_bodies_missing": len(bodies - stored_bodies),
        "triage_jobs_by_status": jobs,
    }


# --- one run -------------------------------------------------------------------------


def _log_summary(path: Path) -> dict[str, Any]:
    levels: Counter[str] = Counter()
    lines = 0
    problems: list[str] = []
    with path.open(errors="replace") as handle:
        for line in handle:
            lines += 1
            try:
                level = str(json.loads(line).get("level", "?"))
            except (ValueError, AttributeError):
                level = "unparsed"
            levels[level] += 1
            if level in ("error", "critical", "exception", "unparsed") and len(problems) < 3:
                problems.append(line.strip()[:800])
    return {"lines": lines, "by_level": dict(levels), "first_problems": problems}


@dataclass(frozen=True)
class Variant:
    name: str
    embedded_worker: bool
    rate: float | None  # None: closed loop of --clients; else open loop at this alerts/s


def _background_busy(seconds: float) -> float:
    before = _machine_busy()
    time.sleep(seconds)
    after = _machine_busy()
    return (after[0] - before[0]) / max(1, after[1] - before[1])


def _wait_for_quiet(limit: float) -> float:
    """Machine busy fraction over 1 s, waiting up to ``limit`` s for it to drop below 10 %."""
    deadline = time.monotonic() + limit
    busy = _background_busy(1.0)
    while busy > 0.10 and time.monotonic() < deadline:
        busy = _background_busy(1.0)
    return busy


def run_once(
    backend: str,
    url: str,
    plan: list[Planned],
    args: argparse.Namespace,
    workdir: Path,
    variant: Variant,
    pg_database: str | None = None,
) -> dict[str, Any]:
    background = _wait_for_quiet(args.wait_idle)
    settings = {} if variant.embedded_worker else {"server__embedded_worker": "false"}
    env = oncallm_env(url, **settings)
    worker = "on" if variant.embedded_worker else "off"
    log(f"{backend}/{variant.name}: starting oncallm serve (embedded worker {worker})")
    server: OncallmProcess = start_server(env, workdir / "logs")
    load = (
        f"{args.clients} closed-loop clients"
        if variant.rate is None
        else f"open loop at {variant.rate:g} alerts/s"
    )
    spec = LoadSpec(
        clients=args.clients,
        warmup=args.warmup,
        duration=args.duration,
        request_timeout=args.timeout,
        rate=variant.rate,
        seed=args.seed,
    )
    try:
        log(f"{backend}/{variant.name}: {load}, warm-up {args.warmup}s, measuring {args.duration}s")
        loop_factory = None
        if not args.no_uvloop:
            with contextlib.suppress(ImportError):
                import uvloop

                loop_factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            driven = runner.run(
                _drive(server.base_url, plan, spec, server.process.pid, pg_database)
            )
    finally:
        stopping = time.perf_counter()
        exit_code = server.stop()
    log(
        f"{backend}/{variant.name}: server stopped in {time.perf_counter() - stopping:.1f}s "
        f"(exit {exit_code}); verifying the database"
    )
    verification = asyncio.run(_verify(url, plan, driven["samples"]))

    window_start, window_end, _drained = driven["window"]
    measured = [s for s in driven["samples"] if window_start <= s.sent < window_end]
    ok = [s for s in measured if s.status == 202]
    wall = max([s.sent + s.latency for s in measured], default=window_end) - window_start
    alerts = sum(plan[s.index].alerts for s in ok)
    by_kind: dict[str, Any] = {}
    for kind in KINDS:
        of_kind = [s for s in ok if plan[s.index].kind == kind]
        by_kind[kind] = {
            "requests": len(of_kind),
            "alerts": sum(plan[s.index].alerts for s in of_kind),
            "latency_ms": _latency_ms([s.latency for s in of_kind]),
        }
    return {
        "load": load,
        "embedded_worker": variant.embedded_worker,
        "wall_s": round(wall, 3),
        "alerts_per_s": round(alerts / wall, 1) if wall > 0 else 0.0,
        "notifications_per_s": round(len(ok) / wall, 1) if wall > 0 else 0.0,
        "alerts_accepted": alerts,
        "notifications_accepted": len(ok),
        "mean_alerts_per_notification": round(alerts / len(ok), 1) if ok else 0.0,
        "latency_ms": _latency_ms([s.latency for s in ok]),
        "errors": len(measured) - len(ok),
        "committed_ok": verification["committed_ok"],
        "errors_total_including_warmup": sum(1 for s in driven["samples"] if s.status != 202),
        "error_examples": driven["errors"],
        "duplicate_responses": sum(1 for s in ok if s.duplicate),
        "by_kind": by_kind,
        "requests_sent_total": driven["sent"],
        "workload_exhausted": driven["exhausted"],
        "cpu_seconds": _cpu_report(driven),
        "machine_busy_before_start": round(background, 3),
        "server_exit_code": exit_code,
        "server_log": _log_summary(server.log_path),
        **({"server_log_path": str(server.log_path)} if args.keep else {}),
        "verification": verification,
    }


def _cpu_report(driven: dict[str, Any]) -> dict[str, Any]:
    """CPU seconds spent in the measured window (plus drain), by whom."""
    server = driven["cpu_server_s"] or 0.0
    ours = server + driven["cpu_client_s"] + driven["cpu_postgres_s"]
    return {
        "window_s": round(driven["window_s"], 2),
        "server": round(server, 2),
        "client": round(driven["cpu_client_s"], 2),
        "postgres": round(driven["cpu_postgres_s"], 2),
        "machine_busy": round(driven["machine_busy_s"], 2),
        # Anything else on the machine (other workloads) competing for the same cores.
        "other_processes": round(max(0.0, driven["machine_busy_s"] - ours), 2),
        "machine_busy_fraction": round(driven["machine_busy_fraction"], 3),
    }


_SUMMARY_KEYS = (
    "load",
    "embedded_worker",
    "alerts_per_s",
    "notifications_per_s",
    "latency_ms",
    "errors",
    "error_examples",
    "server_exit_code",
    "committed_ok",
    "workload_exhausted",
    "cpu_seconds",
    "machine_busy_before_start",
    "server_log",
)


def run_backend(
    backend: str, plan: list[Planned], args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    variants = [Variant("default", True, None)]
    if args.compare_no_worker:
        variants.append(Variant("without_embedded_worker", False, None))
    if args.rate > 0:
        variants.append(Variant("at_goal_rate", True, args.rate))
        if args.compare_no_worker:
            variants.append(Variant("at_goal_rate_without_embedded_worker", False, args.rate))
    runs: dict[str, dict[str, Any]] = {}
    if backend == "sqlite":
        for variant in variants:
            db_dir = workdir / f"sqlite-{uuid.uuid4().hex[:8]}"
            db_dir.mkdir(parents=True)
            url = f"sqlite+aiosqlite:///{db_dir / 'oncallm.db'}"
            runs[variant.name] = run_once(backend, url, plan, args, workdir, variant)
        database = "SQLite file in a fresh temporary directory (OncallM defaults: WAL, FULL)"
    else:
        with postgres_server() as pg:
            for variant in variants:
                name = f"bench_{uuid.uuid4().hex[:10]}"
                url = pg.create_database(name)
                try:
                    runs[variant.name] = run_once(
                        backend, url, plan, args, workdir, variant, pg_database=name
                    )
                finally:
                    with contextlib.suppress(Exception):
                        pg.drop_database(name)
        database = (
            "fresh database on a private PostgreSQL 15 cluster on loopback "
            "(tests.support.services: fsync=off, shared_buffers=64MB)"
        )
    result = runs.pop("default")
    result["database"] = database
    for name, other in runs.items():
        result[name] = {key: other[key] for key in _SUMMARY_KEYS} | {
            "triage_jobs_by_status": other["verification"]["triage_jobs_by_status"]
        }
    return result


# --- main ----------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_generator": "same machine (competes with the server for the cores)",
    }


def _goal_met(result: dict[str, Any]) -> dict[str, Any]:
    """Both readings of the goal.

    With N closed-loop clients and one writer, Little's law ties the two numbers together
    (mean latency = N / notifications per second), so "1,000 alerts/s *and* p99 <= 50 ms
    in the same closed-loop run" really asks for ~N x 20 notifications/s of capacity. The
    SLO reading is capacity >= 1,000 alerts/s (closed loop) plus p99 <= 50 ms while
    1,000 alerts/s are offered (open loop, ``at_goal_rate``).
    """
    p99 = result["latency_ms"].get("p99", float("inf"))
    capacity = result["alerts_per_s"] >= GOAL["alerts_per_s_min"]
    committed = result["committed_ok"]
    same_run = {
        "alerts_per_s": capacity,
        "p99_ms": p99 <= GOAL["p99_ms_max"],
        "committed": committed,
        "no_errors": result["errors"] == 0,
    }
    out: dict[str, Any] = {"closed_loop_same_run": {"met": all(same_run.values()), **same_run}}
    at_rate = result.get("at_goal_rate")
    if at_rate is not None:
        offered = at_rate["alerts_per_s"] >= 0.9 * GOAL["alerts_per_s_min"]
        slo = {
            "capacity_alerts_per_s": capacity,
            "p99_ms_at_goal_rate": at_rate["latency_ms"].get("p99", float("inf"))
            <= GOAL["p99_ms_max"],
            "goal_rate_sustained": offered,
            "committed": committed and at_rate["committed_ok"],
            "no_errors": result["errors"] == 0 and at_rate["errors"] == 0,
        }
        out["capacity_and_latency_at_goal_rate"] = {"met": all(slo.values()), **slo}
    out["met"] = all(v["met"] for v in out.values() if isinstance(v, dict))
    return out


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql", "both"), default="both", help="database"
    )
    parser.add_argument("--seed", type=int, default=20261126, help="workload RNG seed")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=None,
        help="requests generated (bounds the run); default 250 per second of run time",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout")
    parser.add_argument(
        "--compare-no-worker",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure each backend with the embedded worker off",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=GOAL["alerts_per_s_min"],
        help="also run an open loop offering this many alerts/s (0 skips it)",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        help="before each run, wait up to this many seconds for the machine to be idle",
    )
    parser.add_argument("--no-uvloop", action="store_true", help="client on asyncio's own loop")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--clients must be >= 1, --duration > 0 and --warmup >= 0")
    if args.max_requests is None:
        args.max_requests = int(250 * (args.duration + args.warmup)) + 100
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    log(f"building a workload of {args.max_requests} notifications (seed {args.seed})")
    plan = build_workload(args.max_requests, args.seed)
    mix = Counter(item.kind for item in plan)
    workdir = Path(tempfile.mkdtemp(prefix="oncallm-bench-"))
    results: dict[str, Any] = {}
    try:
        for backend in backends:
            results[backend] = run_backend(backend, plan, args, workdir)
    finally:
        if args.keep:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    goal_met = {backend: _goal_met(result) for backend, result in results.items()}
    output = {
        "benchmark": "ingest",
        "command": "benchmarks/ingest.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": _machine(),
        "config": {
            "clients": args.clients,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "seed": args.seed,
            "workload_requests": len(plan),
            "workload_mix": {k: round(mix[k] / len(plan), 3) for k in KINDS},
            "workload_mean_alerts": round(sum(p.alerts for p in plan) / len(plan), 1),
            "alerts_per_notification": "1-50 uniform for new groups",
            "client": "asyncio + httpx, one keep-alive connection per client"
            + ("" if args.no_uvloop else ", uvloop"),
            "open_loop_rate_alerts_per_s": args.rate or None,
        },
        "results": results,
        "goal": GOAL
        | {
            "readings": "closed_loop_same_run: the default run alone; "
            "capacity_and_latency_at_goal_rate: default-run alerts/s plus p99 of the "
            "at_goal_rate open-loop run (see _goal_met)"
        },
        "goal_met": goal_met,
    }
    print(json.dumps(output, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
