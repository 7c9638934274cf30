"""Summaries of one Prometheus time series: what analyzers say about it, what charts draw.

Analyzers ask a few questions of a series: was memory rising towards its limit when the
container was OOMKilled, and how fast? Did latency step up at 10:12? Was that a spike or
noise? Did the container restart? :func:`summarise` answers them in a :class:`SeriesSummary`,
:func:`describe` turns that into the sentence an SRE reads at 3 a.m., and :func:`downsample`
keeps a series small enough to chart. All are pure functions over ``(unix seconds, value)``
points in time order; series hold a few thousand points at most, so plain Python is enough.

The choices, and why:

- Spikes use the median and MAD (median absolute deviation) of a rolling neighbourhood: a
  mean and a standard deviation are dragged up by the very spike we look for, the median and
  MAD of ten neighbours are not, so a lone burst stands out and ordinary noise does not. A
  spike must also be 1.5x its baseline (quantised noise has a MAD of zero) and come back
  down: a level that stays is a step.
- Steps are a change-point scan comparing the means of the windows just before and after each
  point; the shift must exceed 4 pooled standard deviations and 20 % of the level. Four, not
  three: a clean ramp scores up to 2*sqrt(3) ~ 3.46 on this statistic, and a ramp is a trend.
  Spikes are replaced by their baseline first, so one burst cannot fake a step.
- Resets are drops to under half after a rise (a restart zeroes a container's working set, a
  counter restarts from zero). The series is cut there (:func:`segments`), spikes and steps are
  searched per segment, and the fitted line describes one segment: one container's life, not
  the sawtooth across restarts.
- The trend compares the fitted change with 10 % of the mean (or 2 % of the limit, when that is
  less), not of the range: a clean ramp's fitted change *is* its range, so a range rule would
  call a 1 % creep "rising".
- :func:`downsample` is Largest-Triangle-Three-Buckets (Steinarsson, 2013): from each bucket,
  the point forming the largest triangle with its neighbours. Unlike averaging or taking every
  n-th point, it keeps spikes and the shape, and it only returns measured points.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import median
from typing import Literal

from oncallm.sources.metrics import Point

__all__ = [
    "Reset",
    "SeriesSummary",
    "Spike",
    "Step",
    "Trend",
    "describe",
    "downsample",
    "format_duration",
    "format_value",
    "segments",
    "summarise",
]

Trend = Literal["rising", "falling", "flat"]

_SPIKE_HALF_WINDOW = 5  # neighbours on each side that make a point's baseline
_SPIKE_MADS = 6.0  # how many MADs above the baseline a spike is
_SPIKE_MIN_RISE = 0.5  # and at least 1.5x the baseline, so quantised noise never qualifies
_MAX_SPIKES = 5  # the largest few; a series with dozens of spikes is noisy, not spiky
_STEP_MIN_WINDOW = 5  # fewer points make the window means as noisy as the points
_STEP_MAX_WINDOW = 20
_STEP_NOISE = 4.0  # pooled standard deviations; above the 3.46 a clean ramp scores
_STEP_MIN_SHIFT = 0.2  # of the level
_MAX_STEPS = 3
_RESET_LOOKBACK = 10  # points whose median the value after a reset must be under half of
_TREND_CHANGE = 0.1  # of the mean
_TREND_LIMIT_CHANGE = 0.02  # of the limit, when there is one
_TREND_MIN_R2 = 0.3
_STEADY_R2 = 0.8  # when describe() says "steadily"


@dataclass(frozen=True)
class Spike:
    """A point far above its neighbourhood that comes back down afterwards."""

    at: float
    value: float
    baseline: float  # median of the neighbourhood


@dataclass(frozen=True)
class Step:
    """A level shift: the mean after ``at`` differs from the mean before by far more than noise."""

    at: float  # the first point at the new level
    before: float  # mean of the window before
    after: float  # mean of the window after


@dataclass(frozen=True)
class Reset:
    """A drop to under half after a rise: a container restart, a counter reset."""

    at: float  # the first point after the drop
    before: float
    after: float


@dataclass(frozen=True)
class SeriesSummary:
    """What one series did over a window.

    ``start``..``mean`` and ``points`` describe the whole window. ``trend``, ``slope_per_second``,
    ``r2`` and ``time_to_limit_seconds`` describe the fitted segment ``segment_start`` ..
    ``segment_end``: the last segment of the window, after the last reset (see :func:`summarise`).
    """

    start: float
    end: float
    first: float
    last: float
    min: float
    max: float
    mean: float
    points: int
    trend: Trend
    slope_per_second: float
    r2: float  # of the fitted line; 0 for a constant series
    segment_start: float
    segment_end: float
    segment_first: float
    segment_last: float
    limit: float | None
    peak_ratio: float | None  # max / limit
    last_ratio: float | None  # last / limit
    time_to_limit_seconds: float | None  # 0 when already at or above the limit
    spikes: tuple[Spike, ...]  # the largest few, in time order
    steps: tuple[Step, ...]  # at most 3, strongest first, then by time
    resets: tuple[Reset, ...]


def summarise(
    points: Sequence[Point],
    *,
    limit: float | None = None,
    since: float | None = None,
    until: float | None = None,
) -> SeriesSummary | None:
    """Summarise the points between ``since`` and ``until`` (inclusive); None under 2 points.

    Non-finite values (Prometheus' ``+Inf``) are skipped. With resets, the fitted line (slope,
    r2, trend, time to limit) describes the last segment of the window: by default the current
    container instance, and with ``until`` set to the moment a container was OOMKilled, the
    instance that was killed, which is what an analyzer asks about ("how did memory behave in
    the life of the killed container?"). Should a reset be the very last point of the window,
    that one-point segment cannot be fitted, and the segment before it is described instead.
    """
    lo_t, hi_t = -math.inf if since is None else since, math.inf if until is None else until
    window = [
        (t, v) for t, v in points if lo_t <= t <= hi_t and math.isfinite(t) and math.isfinite(v)
    ]
    if len(window) < 2:
        return None
    ts = [t for t, _ in window]
    vs = [v for _, v in window]
    cuts = _reset_indices(vs)
    bounds = list(zip([0, *cuts], [*cuts, len(vs)], strict=True))

    spikes: list[Spike] = []
    steps: list[tuple[float, Step]] = []
    for lo, hi in bounds:
        found = _spikes(ts[lo:hi], vs[lo:hi])
        spikes.extend(spike for _, spike in found)
        despiked = vs[lo:hi]
        for i, spike in found:
            despiked[i] = spike.baseline
        steps.extend(_steps(ts[lo:hi], despiked))
    spikes = sorted(spikes, key=lambda s: s.value - s.baseline, reverse=True)[:_MAX_SPIKES]
    steps.sort(key=lambda s: (-s[0], s[1].at))

    # A reset needs a rise before it, so the first segment always has two points or more.
    lo, hi = next(b for b in reversed(bounds) if b[1] - b[0] >= 2)
    seg_ts, seg_vs = ts[lo:hi], vs[lo:hi]
    slope, r2 = _fit(seg_ts, seg_vs)
    change = slope * (seg_ts[-1] - seg_ts[0])
    trend: Trend = "flat"
    # Against a limit, 2 % of the limit is enough too: a volume gaining 1 GiB an hour is a
    # small change next to its 19 GiB of data, and an hour from full on a 20 GiB disk.
    enough = _TREND_CHANGE * abs(_mean(seg_vs))
    if limit:
        enough = min(enough, _TREND_LIMIT_CHANGE * abs(limit))
    if r2 >= _TREND_MIN_R2 and abs(change) > enough:
        trend = "rising" if change > 0 else "falling"

    peak_ratio: float | None = None
    last_ratio: float | None = None
    time_to_limit: float | None = None
    if limit is not None and math.isfinite(limit) and limit > 0:
        peak_ratio, last_ratio = max(vs) / limit, vs[-1] / limit
        if seg_vs[-1] >= limit:
            time_to_limit = 0.0
        elif trend == "rising":
            time_to_limit = (limit - seg_vs[-1]) / slope
    return SeriesSummary(
        start=ts[0],
        end=ts[-1],
        first=vs[0],
        last=vs[-1],
        min=min(vs),
        max=max(vs),
        mean=_mean(vs),
        points=len(vs),
        trend=trend,
        slope_per_second=slope,
        r2=r2,
        segment_start=seg_ts[0],
        segment_end=seg_ts[-1],
        segment_first=seg_vs[0],
        segment_last=seg_vs[-1],
        limit=limit,
        peak_ratio=peak_ratio,
        last_ratio=last_ratio,
        time_to_limit_seconds=time_to_limit,
        spikes=tuple(sorted(spikes, key=lambda s: s.at)),
        steps=tuple(step for _, step in steps[:_MAX_STEPS]),
        resets=tuple(Reset(ts[i], vs[i - 1], vs[i]) for i in cuts),
    )


def segments(points: Sequence[Point]) -> list[tuple[Point, ...]]:
    """Split a series at its resets; each segment starts with the first point after a drop."""
    pts = tuple(points)
    if not pts:
        return []
    cuts = _reset_indices([v for _, v in pts])
    return [pts[lo:hi] for lo, hi in zip([0, *cuts], [*cuts, len(pts)], strict=True)]


def downsample(points: Sequence[Point], max_points: int) -> tuple[Point, ...]:
    """At most ``max_points`` of ``points`` by LTTB, always keeping the first and the last."""
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2 to keep the ends, got {max_points}")
    pts = tuple(points)
    n = len(pts)
    if n <= max_points:
        return pts
    if max_points == 2:
        return (pts[0], pts[-1])
    # The inner points fall into max_points - 2 buckets; from each keep the point forming the
    # largest triangle with the point kept before it and the mean of the next bucket.
    every = (n - 2) / (max_points - 2)
    kept = [pts[0]]
    a = 0
    for i in range(max_points - 2):
        nxt = pts[int((i + 1) * every) + 1 : min(int((i + 2) * every) + 1, n)]
        nx = sum(t for t, _ in nxt) / len(nxt)
        ny = sum(v for _, v in nxt) / len(nxt)
        ax, ay = pts[a]
        best, best_area = int(i * every) + 1, -1.0
        for j in range(best, int((i + 1) * every) + 1):
            t, v = pts[j]
            area = abs((ax - nx) * (v - ay) - (ax - t) * (ny - ay))
            if area > best_area:  # NaN (from absurd magnitudes) never wins, never raises
                best, best_area = j, area
        kept.append(pts[best])
        a = best
    kept.append(pts[-1])
    return tuple(kept)


# --- detection ----------------------------------------------------------------------------


def _reset_indices(vs: Sequence[float]) -> list[int]:
    """Index of the first point after each drop to under half after a rise."""
    cuts: list[int] = []
    seg, seg_min = 0, vs[0] if vs else 0.0
    for i in range(1, len(vs)):
        prev, cur = vs[i - 1], vs[i]
        seg_min = min(seg_min, prev)
        recent = vs[max(seg, i - _RESET_LOOKBACK) : i]
        if not (prev > 0 and len(recent) >= 3):
            continue
        # Only from a climb or a calm level (point-to-point moves under 10 % of it, on
        # average: a median would call quantised noise calm), not from noise: in a noisy
        # series near zero, drops to under half are everyday.
        slope, r2 = _fit([float(j) for j in range(len(recent))], recent)
        climbing = slope > 0 and r2 >= 0.8
        calm = _mean([abs(b - a) for a, b in itertools.pairwise(recent)]) <= median(recent) / 10
        # A calm level must have been reached by a rise in this segment: a level that was
        # flat all along and halves is a step down. A climb is a rise by itself, even when
        # the window opened half-way up it.
        if not (climbing or (calm and prev > 1.2 * seg_min)):
            continue
        # A climb resets when it falls under half of where it got to (a leaking container
        # restarts near where it began, above half its median). A calm level must fall under
        # half of the level itself: the end of a spike falls back to where it came from.
        # Staying down: a restarted container or a reset counter climbs again from low, a
        # dip bounces back.
        floor = prev / 2 if climbing else min(prev / 2, median(recent) / 2)
        if cur < floor and (i + 1 == len(vs) or vs[i + 1] < floor):
            cuts.append(i)
            seg, seg_min = i, cur
    return cuts


def _spikes(ts: Sequence[float], vs: Sequence[float]) -> list[tuple[int, Spike]]:
    """Spikes of one segment, with their index: robust outliers that come back down."""
    n, h = len(vs), _SPIKE_HALF_WINDOW
    baselines: dict[int, float] = {}
    for i, v in enumerate(vs):
        lo = max(0, min(i - h, n - 1 - 2 * h))  # at the edges, the nearest 2h neighbours
        neighbours = [vs[j] for j in range(lo, min(n, lo + 2 * h + 1)) if j != i]
        if len(neighbours) < 4:
            continue
        base = median(neighbours)
        mad = median(abs(x - base) for x in neighbours)
        if v > base + _SPIKE_MADS * mad and v - base > _SPIKE_MIN_RISE * abs(base):
            baselines[i] = base
    found: list[tuple[int, Spike]] = []
    flagged = sorted(baselines)
    while flagged:
        # Adjacent flagged points are one spike, reported at its peak.
        run = [flagged.pop(0)]
        while flagged and flagged[0] == run[-1] + 1:
            run.append(flagged.pop(0))
        peak = max(run, key=lambda j: vs[j])
        base = baselines[peak]
        halfway = base + (vs[peak] - base) / 2
        if any(x <= halfway for x in vs[run[-1] + 1 : run[-1] + 1 + h]):
            found.append((peak, Spike(ts[peak], vs[peak], base)))
    return found


def _steps(ts: Sequence[float], vs: Sequence[float]) -> list[tuple[float, Step]]:
    """Level shifts of one segment, each with its strength (the absolute shift)."""
    n = len(vs)
    width = max(_STEP_MIN_WINDOW, min(_STEP_MAX_WINDOW, n // 6))
    candidates: list[tuple[float, int, Step]] = []
    for k in range(_STEP_MIN_WINDOW, n - _STEP_MIN_WINDOW + 1):
        w = min(width, k, n - k)
        before, after = vs[k - w : k], vs[k : k + w]
        mb, ma = _mean(before), _mean(after)
        shift = abs(ma - mb)
        noise = math.sqrt((_variance(before, mb) + _variance(after, ma)) / 2)
        if shift > _STEP_NOISE * noise and shift > _STEP_MIN_SHIFT * max(abs(mb), abs(ma)):
            candidates.append((shift, k, Step(ts[k], mb, ma)))
    # Around a real step many split points qualify; keep the strongest and drop its neighbours.
    chosen: list[tuple[float, int, Step]] = []
    for cand in sorted(candidates, key=lambda c: (-c[0], c[1])):
        if all(abs(cand[1] - k) >= width for _, k, _ in chosen):
            chosen.append(cand)
    return [(shift, step) for shift, _, step in chosen]


def _fit(ts: Sequence[float], vs: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope (per second) and its r2; zeros where they are undefined."""
    xs = [t - ts[0] for t in ts]  # small numbers: unix seconds squared lose precision
    mx, my = _mean(xs), _mean(vs)
    sxx = sum((x - mx) * (x - mx) for x in xs)
    syy = sum((y - my) * (y - my) for y in vs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, vs, strict=True))
    slope = sxy / sxx if sxx > 0 else 0.0
    r2 = (sxy / sxx) * (sxy / syy) if sxx > 0 and syy > 0 else 0.0
    # Absurd magnitudes overflow to inf/NaN; report "no line" rather than poison comparisons.
    if not (math.isfinite(slope) and math.isfinite(r2)):
        return 0.0, 0.0
    return slope, min(r2, 1.0)


def _mean(xs: Sequence[float]) -> float:
    # Dividing first means the sum never overflows; clamped since rounding can leave the range.
    m = sum(x / len(xs) for x in xs)
    return min(max(m, min(xs)), max(xs))


def _variance(xs: Sequence[float], mean: float) -> float:
    # Not statistics.variance: it converts every float to a Fraction, slow in a scan. d * d,
    # not d ** 2, which raises OverflowError instead of returning inf.
    return sum((x - mean) * (x - mean) for x in xs) / (len(xs) - 1)


# --- words --------------------------------------------------------------------------------

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_SI = ("", "k", "M", "G", "T", "P")


def format_value(value: float, unit: str) -> str:
    """``value`` in ``unit`` as people read it: bytes binary ("512 MiB"), cores Kubernetes
    style ("490m", "1.5"), ratio as a percentage ("71%"), count with SI suffixes ("12.3k"),
    seconds as a duration ("2h 5m"), "" plain; any other unit is appended ("3 req/s")."""
    if not math.isfinite(value):
        return f"{value} {unit}".strip()
    if unit == "bytes":
        return _scaled(value, 1024, _BINARY, " ")
    if unit == "cores":
        if value == 0 or abs(value) >= 1:
            return _num(value)
        return f"{_num(value * 1000)}m"
    if unit == "ratio":
        pct = value * 100
        return f"{pct:.0f}%" if abs(pct) >= 1 else f"{_num(pct)}%"
    if unit == "count":
        return _scaled(value, 1000, _SI, "")
    if unit == "seconds":
        return format_duration(value)
    return f"{_num(value)} {unit}".strip()


def format_duration(seconds: float) -> str:
    """As precise as a person needs at that scale: "45 s", "55 min", "2h 5m", "3d 4h"."""
    if math.isnan(seconds):
        return "? s"
    sign, s = ("-" if seconds < 0 else ""), abs(seconds)
    if math.isinf(s):
        return f"{sign}∞"
    if s < 10:
        return f"{sign}{_num(s)} s"
    if round(s) < 60:
        return f"{sign}{round(s)} s"
    minutes = round(s / 60)
    if minutes < 60:
        return f"{sign}{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{sign}{hours}h {minutes}m" if minutes else f"{sign}{hours}h"
    days, hours = divmod(hours, 24)
    return f"{sign}{days}d {hours}h" if hours else f"{sign}{days}d"


def describe(summary: SeriesSummary, unit: str, limit_name: str = "limit") -> str:
    """One sentence on what the series did, e.g. "rose steadily from 210 MiB to 508 MiB over
    55 min (+5.7 MiB/min), 99% of the 512 MiB limit; restarted 2 times". ``limit_name``
    says what the limit is ("capacity" of a volume, "maxReplicas" of an HPA)."""
    s, span = summary, summary.segment_end - summary.segment_start

    def fmt(value: float) -> str:
        return format_value(value, unit)

    limit_text = ""
    if s.limit is not None:
        # "the 1 limit" says nothing; CPU is read in cores, so say so.
        limit_text = f"{fmt(s.limit)} CPU" if unit == "cores" else fmt(s.limit)
        limit_text = (
            f"the {limit_text} {limit_name}"
            if limit_name != "maxReplicas"
            else (f"maxReplicas ({limit_text})")
        )

    if s.steps:
        # The latest shift explains the level now; say whether it held since.
        step = max(s.steps, key=lambda x: x.at)
        way = "up" if step.after > step.before else "down"
        if abs(s.last - step.after) <= 0.25 * abs(step.after - step.before):
            text = (
                f"flat at {fmt(s.last)} for {format_duration(s.end - step.at)} after a step "
                f"{way} from {fmt(step.before)} at {clock(step.at)}"
            )
        else:
            moved = "rose" if s.last > step.after else "fell"
            text = (
                f"stepped {way} from {fmt(step.before)} to {fmt(step.after)} at "
                f"{clock(step.at)}, then {moved} to {fmt(s.last)}"
            )
        if len(s.steps) > 1:
            text += f" ({len(s.steps)} level shifts)"
    elif s.trend != "flat":
        per, per_label = (3600, "h") if span >= 3 * 3600 else (60, "min")
        rate = s.slope_per_second * per
        text = (
            f"{'rose' if s.trend == 'rising' else 'fell'}"
            f"{' steadily' if s.r2 >= _STEADY_R2 else ''} from {fmt(s.segment_first)} to "
            f"{fmt(s.segment_last)} over {format_duration(span)} "
            f"({'+' if rate >= 0 else '-'}{fmt(abs(rate))}/{per_label})"
        )
    elif not s.spikes:  # flat; with resets, the level of the segment described
        level, span = (s.mean, s.end - s.start) if not s.resets else (s.segment_last, span)
        text = f"flat at ~{fmt(level)} over {format_duration(span)}"
    else:
        text = ""
    if s.spikes:
        top = max(s.spikes, key=lambda x: x.value - x.baseline)
        spiked = f"spiked from ~{fmt(top.baseline)} to {fmt(top.value)} at {clock(top.at)}"
        if len(s.spikes) > 1:
            spiked += f" ({len(s.spikes)} spikes)"
        text = f"{text}; {spiked}" if text else spiked
    if s.limit is not None and s.last_ratio is not None:
        text += f", {format_value(s.last_ratio, 'ratio')} of {limit_text}"
        if s.peak_ratio is not None and s.peak_ratio >= s.last_ratio + 0.05:
            text += f" (peak {format_value(s.peak_ratio, 'ratio')})"
        # Only after the trend was told: "flat ... after a step, reaching it in 14h" would be
        # a line fitted across the step talking.
        if s.time_to_limit_seconds and not s.steps and s.trend == "rising":
            text += f", reaching it in ~{format_duration(s.time_to_limit_seconds)} at this rate"
    if s.resets:
        n = len(s.resets)
        # A drop to near zero in memory is a container restart; in a counter, a reset.
        text += f"; {'restarted' if unit == 'bytes' else 'reset'} "
        text += "once" if n == 1 else f"{n} times"
    return text


def _num(x: float) -> str:
    """Three significant digits without an exponent for everyday magnitudes: 0.0123, 1.5, 508."""
    if x == 0:
        return "0"
    if 100 <= abs(x) < 1e6:
        return f"{x:.0f}"
    return f"{x:.3g}"


def _scaled(value: float, base: int, names: Sequence[str], sep: str) -> str:
    magnitude, i = abs(value), 0
    # Prefix by the rounded magnitude, so 1023.9 KiB is "1 MiB", not "1024 KiB".
    while float(_num(magnitude)) >= base and i < len(names) - 1:
        magnitude, i = magnitude / base, i + 1
    return f"{'-' if value < 0 else ''}{_num(magnitude)}{sep}{names[i]}".rstrip()


def clock(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%H:%M UTC")
    except (OverflowError, OSError, ValueError):  # a timestamp no calendar has
        return f"t={ts:.0f}"
