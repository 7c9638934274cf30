"""Metric facts the analyzers share: the shapes of a series that name a cause.

An SRE reading a graph before an OOMKill tells a *leak* (memory climbing steadily to the
limit over the life of the container) from a *spike* (flat, then one jump past it) and
from a limit that is simply too low (flat at the limit). The same reading separates a
container that is throttled now from one that was throttled once, an HPA pinned at its
maximum for an hour from one that touched it, and a volume that fills at a rate that
will end it in minutes from one that has been 91 % full for a month. Each function here
reads one such shape from the triage's metric signals, cites the series it read (with
its query, so the user can open it in Prometheus), and returns the facts and a sentence
the analyzer puts in its summary; None when the metrics were not read or say nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from statistics import median
from typing import Literal

from oncallm.sources.base import ObjectRef
from oncallm.sources.metrics import Series
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.metric_signals import MetricSignal
from oncallm.triage.series import (
    SeriesSummary,
    clock,
    format_duration,
    format_value,
    summarise,
)

RECENT_SECONDS = 15 * 60  # "now" on a graph: the last quarter hour of the window
THROTTLED = 0.25  # kube-prometheus' CPUThrottlingHigh fires above 25 % of periods
LEAK_MIN_SECONDS = 15 * 60  # a climb to the limit faster than this is what it needs, not a leak
LEAK_MIN_R2 = 0.6  # how straight the climb must be to call it steady
NEAR_LIMIT = 0.8
SPIKE_FROM = 0.7  # a jump starts from well below the limit
FILLING_HORIZON = 6 * 3600  # a volume full within this is an incident, not a ticket
FULL = 0.9


def cite(
    ledger: EvidenceLedger,
    signal: MetricSignal,
    series: Series,
    summary: SeriesSummary,
    *,
    excerpt: str | None = None,
) -> str:
    return ledger.cite_metric(
        signal.evidence_id,
        signal.query.resource,
        excerpt or signal.describe(series, summary),
        source=signal.source,
        query=signal.query.promql,
        url=signal.url,
    )


def _pick(signal: MetricSignal, pod: str | None) -> Series | None:
    if pod is not None and (series := signal.pod_series(pod)) is not None:
        return series
    worst = signal.worst()
    return worst[0] if worst else None


def recent_mean(series: Series, end: float, seconds: float = RECENT_SECONDS) -> float | None:
    values = [v for t, v in series.points if end - seconds <= t <= end]
    return sum(values) / len(values) if values else None


# --- memory before an OOM kill ----------------------------------------------------------


# "climb": up to the limit, but a heap flag or a short life explains it better than a leak.
Kind = Literal["leak", "climb", "spike", "at-limit"]


@dataclass(frozen=True)
class MemoryProfile:
    kind: Kind
    sentence: str
    evidence: str


def memory_profile(
    ctx: TriageContext,
    ledger: EvidenceLedger,
    workload: ObjectRef,
    container: str,
    pod: str | None,
    killed_at: datetime | None,
    *,
    started_at: datetime | None = None,
    heap_allows: bool = False,
) -> MemoryProfile | None:
    """How memory behaved in the life of the container instance that was killed.

    The life is ``started_at``..``killed_at`` from the pod's status when known: restarts of
    a runtime that loads a lot at start (a proxy's config, a cache) drop too little to be
    told from the graph alone.

    ``heap_allows``: the runtime's heap flag lets it grow to the limit, so a steady climb
    is the configuration doing what it says, not (necessarily) a leak.
    """
    signal = ctx.metric("memory", workload, container)
    if signal is None or signal.limit is None:
        return None
    series = _pick(signal, pod)
    if series is None:
        return None
    until = killed_at.timestamp() if killed_at is not None else None
    since = started_at.timestamp() if started_at is not None else None
    if since is not None and until is not None and since >= until:
        since = None
    life = summarise(series.points, limit=signal.limit, since=since, until=until)
    if life is None:
        return None
    verdict = _memory_verdict(life, series, signal.limit, signal.query.unit, heap_allows)
    if verdict is None:
        return None
    kind, sentence = verdict
    if life.resets:
        restarts = len(life.resets)
        sentence += f"; {restarts} restart{'s' if restarts > 1 else ''} in the window"
    # The excerpt says what OncallM read off the graph, not a second, generic summary.
    who = f" (pod={series.labels['pod']})" if series.labels.get("pod") else ""
    evidence = cite(ledger, signal, series, life, excerpt=f"{signal.query.title}{who}: {sentence}")
    return MemoryProfile(kind, sentence, evidence)


def _memory_verdict(
    life: SeriesSummary, series: Series, limit: float, unit: str, heap_allows: bool
) -> tuple[Kind, str] | None:
    span = life.segment_end - life.segment_start  # the killed instance's life in the window
    limit_text = format_value(limit, unit)
    reached = life.max >= NEAR_LIMIT * limit
    if life.trend == "rising" and life.r2 >= LEAK_MIN_R2 and reached:
        per_hour = life.slope_per_second * 3600
        climb = (
            f"memory climbed steadily from {format_value(life.segment_first, unit)} to "
            f"{format_value(life.max, unit)} over {format_duration(span)} "
            f"(+{format_value(per_hour, unit)}/h) until it hit the {limit_text} limit"
        )
        if heap_allows:
            return "climb", f"{climb}, as its heap setting allows"
        if span < LEAK_MIN_SECONDS:
            # Minutes from start to limit: what it needs, not what it loses over time.
            return "climb", f"{climb}, within minutes of starting: it needs more"
        return "leak", f"{climb} — a leak, not a spike"
    if life.mean >= NEAR_LIMIT * limit and life.trend == "flat":
        return (
            "at-limit",
            f"memory sat at {format_value(life.mean, unit)}, {life.mean / limit:.0%} of the "
            f"{limit_text} limit, for {format_duration(span)}: the limit is below what it "
            "normally needs",
        )
    jump = _jump(life, series, limit)
    if jump is None:
        return None
    at, level = jump
    return (
        "spike",
        f"memory was steady near {format_value(level, unit)} ({level / limit:.0%} of the "
        f"{limit_text} limit) and jumped at {clock(at)} — a sudden spike, not a leak",
    )


def _jump(life: SeriesSummary, series: Series, limit: float) -> tuple[float, float] | None:
    """(when, from what level) memory jumped toward the limit in the killed instance's life.

    A spike or a step the summary found; or the last points before the kill far above a
    level that was well below the limit — a burst right before a kill is too short to be
    either, and is the commonest spike of all.
    """
    low = SPIKE_FROM * limit
    for spike in life.spikes:
        if spike.baseline < low and spike.value >= NEAR_LIMIT * limit:
            return spike.at, spike.baseline
    for step in life.steps:
        if step.before < low and step.after >= NEAR_LIMIT * limit:
            return step.at, step.before
    points = [p for p in series.points if life.segment_start <= p[0] <= life.segment_end]
    if len(points) < 6:
        return None
    tail, rest = points[-2:], points[:-2]
    level = median(v for _t, v in rest)
    high = next((p for p in tail if p[1] >= NEAR_LIMIT * limit), None)
    steady = max(v for _t, v in rest) < NEAR_LIMIT * limit
    if high is not None and level < low and steady:
        return high[0], level
    return None


# --- CPU throttling ---------------------------------------------------------------------


@dataclass(frozen=True)
class Throttling:
    pod: str | None
    ratio: float  # share of CFS periods throttled, recent mean
    usage_ratio: float | None  # CPU used / CPU limit, recent mean
    since: float | None  # when it started, when a step shows it
    sentence: str
    evidence: tuple[str, ...]


def throttling(
    ctx: TriageContext, ledger: EvidenceLedger, workload: ObjectRef, container: str
) -> Throttling | None:
    signal = ctx.metric("throttling", workload, container)
    if signal is None:
        return None
    end = signal.window.end.timestamp()
    best: tuple[Series, float] | None = None
    for series in signal.series:
        ratio = recent_mean(series, end)
        if ratio is not None and (best is None or ratio > best[1]):
            best = (series, ratio)
    if best is None or best[1] < THROTTLED:
        return None
    series, ratio = best
    summary = signal.summary_of(series)
    if summary is None:
        return None
    evidence = [cite(ledger, signal, series, summary)]
    pod = series.labels.get("pod")
    since = next((s.at for s in summary.steps if s.after > s.before), None)
    sentence = f"{ratio:.0%} of its CPU periods were throttled over the last 15 min"
    if since is not None:
        sentence += f" (since {clock(since)}; before, {summary.steps[0].before:.0%})"
    usage_ratio = None
    cpu = ctx.metric("cpu", workload, container)
    if cpu is not None and cpu.limit:
        used = _pick(cpu, pod)
        mean = recent_mean(used, end) if used is not None else None
        used_summary = cpu.summary_of(used) if used is not None else None
        if mean is not None and used is not None and used_summary is not None:
            usage_ratio = mean / cpu.limit
            evidence.append(cite(ledger, cpu, used, used_summary))
            sentence += (
                f", using {format_value(mean, 'cores')} of its "
                f"{format_value(cpu.limit, 'cores')} CPU limit ({usage_ratio:.0%})"
            )
    return Throttling(pod, ratio, usage_ratio, since, sentence, tuple(evidence))


# --- HPA at max, and saturation ---------------------------------------------------------


@dataclass(frozen=True)
class Saturation:
    at_max_seconds: float | None  # how long the HPA has been at maxReplicas
    cpu_of_request: float | None  # recent CPU use of the pods / their CPU request
    sentence: str
    evidence: tuple[str, ...]


def saturation(
    ctx: TriageContext, ledger: EvidenceLedger, hpa: ObjectRef, target: ObjectRef
) -> Saturation | None:
    parts: list[str] = []
    evidence: list[str] = []
    at_max = None
    replicas = ctx.metric("hpa_replicas", hpa)
    if replicas is not None and replicas.limit:
        worst = replicas.worst()
        if worst is not None:
            series, summary = worst
            pinned = [t for t, v in series.points if v >= replicas.limit]
            if pinned and series.points[-1][1] >= replicas.limit:
                # The run at max that is still going on.
                start = pinned[-1]
                for t, v in reversed(series.points):
                    if v < replicas.limit:
                        break
                    start = t
                at_max = series.points[-1][0] - start
                parts.append(
                    f"at {replicas.limit:.0f} of {replicas.limit:.0f} replicas since "
                    f"{clock(start)} ({format_duration(at_max)})"
                )
                evidence.append(cite(ledger, replicas, series, summary))
    cpu_ratio = None
    for container_signal in (s for s in ctx.metrics.values() if s.query.signal == "cpu"):
        if container_signal.query.resource != target or not container_signal.query.request:
            continue
        end = container_signal.window.end.timestamp()
        means = [m for s in container_signal.series if (m := recent_mean(s, end)) is not None]
        worst = container_signal.worst()
        if not means or worst is None:
            continue
        cpu_ratio = (sum(means) / len(means)) / container_signal.query.request
        parts.append(
            f"its pods use {cpu_ratio:.0%} of their CPU request "
            f"({format_value(sum(means) / len(means), 'cores')} of "
            f"{format_value(container_signal.query.request, 'cores')} CPU each)"
        )
        evidence.append(cite(ledger, container_signal, worst[0], worst[1]))
        break
    if not parts:
        return None
    return Saturation(at_max, cpu_ratio, "; ".join(parts), tuple(evidence))


# --- a filling volume -------------------------------------------------------------------


@dataclass(frozen=True)
class Filling:
    ratio: float
    full_in_seconds: float | None
    sentence: str
    evidence: str

    @property
    def urgent(self) -> bool:
        soon = self.full_in_seconds is not None and self.full_in_seconds <= FILLING_HORIZON
        return self.ratio >= FULL or soon


def filling(
    ctx: TriageContext,
    ledger: EvidenceLedger,
    claim: ObjectRef,
    *,
    only_urgent: bool = False,
) -> Filling | None:
    """How full ``claim`` is and how fast it fills; cited only when returned.

    ``only_urgent``: None for a volume that is neither nearly full nor filling fast, so a
    healthy neighbour's graph is not cited as if it mattered.
    """
    signal = ctx.metric("volume_used", claim)
    if signal is None or not signal.limit:
        return None
    worst = signal.worst()
    if worst is None:
        return None
    series, summary = worst
    capacity = signal.limit
    ratio = summary.last / capacity
    rising = summary.trend == "rising" and summary.slope_per_second > 0
    per_hour = summary.slope_per_second * 3600 if rising else None
    full_in = summary.time_to_limit_seconds if rising else None
    sentence = (
        f"{ratio:.0%} full ({format_value(summary.last, 'bytes')} of "
        f"{format_value(capacity, 'bytes')})"
    )
    if per_hour is not None:
        sentence += f", filling at {format_value(per_hour, 'bytes')}/h"
        if full_in is not None:
            sentence += (
                " — full now" if full_in <= 0 else f" — full in about {format_duration(full_in)}"
            )
    found = Filling(ratio, full_in, sentence, "")
    if only_urgent and not found.urgent:
        return None
    return replace(found, evidence=cite(ledger, signal, series, summary))
