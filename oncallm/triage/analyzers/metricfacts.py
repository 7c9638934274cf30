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

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from oncallm.sources.base import ObjectRef
from oncallm.sources.metrics import Series
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.metric_signals import MetricSignal
from oncallm.triage.series import SeriesSummary, format_duration, format_value, summarise

RECENT_SECONDS = 15 * 60  # "now" on a graph: the last quarter hour of the window
THROTTLED = 0.25  # kube-prometheus' CPUThrottlingHigh fires above 25 % of periods
LEAK_MIN_SECONDS = 5 * 60  # a climb shorter than this is a burst, not a leak
LEAK_MIN_R2 = 0.6  # how straight the climb must be to call it steady
NEAR_LIMIT = 0.8
FILLING_HORIZON = 6 * 3600  # a volume full within this is an incident, not a ticket
FULL = 0.9


def cite(
    ledger: EvidenceLedger, signal: MetricSignal, series: Series, summary: SeriesSummary
) -> str:
    return ledger.cite_metric(
        signal.evidence_id,
        signal.query.resource,
        signal.describe(series, summary),
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


@dataclass(frozen=True)
class MemoryProfile:
    # "climb": the shape of a leak, but a runtime heap setting above the limit explains it.
    kind: Literal["leak", "climb", "spike", "at-limit"]
    sentence: str
    evidence: str
    growth_per_hour: float | None = None


def memory_profile(
    ctx: TriageContext,
    ledger: EvidenceLedger,
    workload: ObjectRef,
    container: str,
    pod: str | None,
    killed_at: datetime | None,
    *,
    heap_allows: bool = False,
) -> MemoryProfile | None:
    """How memory behaved in the life of the container instance that was killed.

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
    life = summarise(series.points, limit=signal.limit, until=until)
    if life is None:
        return None
    limit = signal.limit
    unit = signal.query.unit
    span = life.segment_end - life.segment_start  # the killed instance's life in the window
    limit_text = format_value(limit, unit)
    evidence = cite(ledger, signal, series, life)
    kills = f"; {len(life.resets)} restarts in the window" if life.resets else ""
    if (
        life.trend == "rising"
        and life.r2 >= LEAK_MIN_R2
        and span >= LEAK_MIN_SECONDS
        and life.max >= NEAR_LIMIT * limit
    ):
        per_hour = life.slope_per_second * 3600
        climb = (
            f"memory climbed steadily from {format_value(life.segment_first, unit)} to "
            f"{format_value(life.max, unit)} over {format_duration(span)} "
            f"(+{format_value(per_hour, unit)}/h) until it hit the {limit_text} limit"
        )
        if heap_allows:
            return MemoryProfile(
                "climb", f"{climb}, as its heap setting allows{kills}", evidence, per_hour
            )
        return MemoryProfile("leak", f"{climb} — a leak, not a spike{kills}", evidence, per_hour)
    baseline = life.min if not life.steps else life.steps[0].before
    if life.mean >= NEAR_LIMIT * limit and life.trend == "flat":
        return MemoryProfile(
            "at-limit",
            f"memory sat at {format_value(life.mean, unit)}, {life.mean / limit:.0%} of the "
            f"{limit_text} limit, for {format_duration(span)}: the limit is below what it "
            f"normally needs{kills}",
            evidence,
        )
    jump = next((s for s in life.spikes if s.baseline < 0.7 * limit), None)
    step = next((s for s in life.steps if s.after > s.before and s.before < 0.7 * limit), None)
    if jump is not None or step is not None or baseline < 0.7 * limit:
        at = jump.at if jump is not None else step.at if step is not None else life.end
        level = jump.baseline if jump is not None else step.before if step else life.mean
        return MemoryProfile(
            "spike",
            f"memory was steady near {format_value(level, unit)} ({level / limit:.0%} of the "
            f"{limit_text} limit) and jumped at {_clock(at)} — a sudden spike, not a leak{kills}",
            evidence,
        )
    return None


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M UTC")


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
        sentence += f" (since {_clock(since)}; before, {summary.steps[0].before:.0%})"
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
                    f"{_clock(start)} ({format_duration(at_max)})"
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
            f"{format_value(container_signal.query.request, 'cores')} each)"
        )
        evidence.append(cite(ledger, container_signal, worst[0], worst[1]))
        break
    if not parts:
        return None
    return Saturation(at_max, cpu_ratio, "; ".join(parts), tuple(evidence))


# --- a filling volume -------------------------------------------------------------------


@dataclass(frozen=True)
class Filling:
    used: float
    capacity: float
    ratio: float
    per_hour: float | None
    full_in_seconds: float | None
    sentence: str
    evidence: str

    @property
    def urgent(self) -> bool:
        soon = self.full_in_seconds is not None and self.full_in_seconds <= FILLING_HORIZON
        return self.ratio >= FULL or soon


def filling(ctx: TriageContext, ledger: EvidenceLedger, claim: ObjectRef) -> Filling | None:
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
    evidence = cite(ledger, signal, series, summary)
    return Filling(summary.last, capacity, ratio, per_hour, full_in, sentence, evidence)
