"""Metric charts drawn on the server as inline SVG: the graph an SRE opens first.

A chart is one stored metric (``result["metrics"][i]``, downsampled when the triage ran):
each series a line, the limit a dashed line, the alert's start a vertical rule, and the
axis ends labelled in the metric's unit. Drawn here, without JavaScript, so the page
works where scripts are blocked, prints, and shows the same picture in every browser;
the numbers come from the same summaries the analyzers read, so the picture and the
sentence beside it cannot disagree. Colours come from CSS classes (``series-0``…), so
the page's stylesheet decides them and dark mode follows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from markupsafe import Markup

from oncallm.triage.series import format_value

WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 10, 22  # room for the axis labels


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M")


def _bounds(series: Sequence[Mapping[str, Any]], limit: float | None) -> tuple[float, ...]:
    points = [p for s in series for p in s["points"]]
    times = [t for t, _v in points]
    values = [v for _t, v in points]
    if limit is not None:
        values.append(limit)
    low, high = min(values), max(values)
    # Zoom on the data, as Grafana does: a volume creeping from 18.8 to 19.7 GiB of 20 is a
    # flat line on an axis from 0. Keep 0 when the data comes near it anyway.
    if low >= 0 and low < 0.25 * high:
        low = 0.0
    pad = (high - low) * 0.05 or abs(high) * 0.05 or 1.0
    return min(times), max(times), max(low - pad, 0.0) if low >= 0 else low - pad, high + pad


def render_chart(chart: Mapping[str, Any], alert_start: float | None = None) -> Markup:
    """The SVG of one stored metric; empty markup when it has no points."""
    series = [s for s in chart.get("series", []) if s.get("points")]
    if not series:
        return Markup("")
    limit = chart.get("limit")
    unit = str(chart.get("unit") or "")
    t0, t1, low, high = _bounds(series, limit)
    span_t = (t1 - t0) or 1.0
    span_v = (high - low) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / span_t * plot_w

    def y(v: float) -> float:
        return TOP + (1 - (v - low) / span_v) * plot_h

    summaries = [s.get("summary") for s in series if s.get("summary")]
    label = f"{chart.get('title', 'metric')}: " + ("; ".join(summaries) or "no summary")
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="none">',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">'
        f"{escape(format_value(high, unit))}</text>",
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">'
        f"{escape(format_value(low, unit))}</text>",
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 4}">{_clock(t0)} UTC</text>',
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 4}" text-anchor="end">'
        f"{_clock(t1)} UTC</text>",
    ]
    if limit is not None:
        parts.append(
            f'<line class="limit" x1="{LEFT}" y1="{y(limit):.1f}" x2="{WIDTH - RIGHT}" '
            f'y2="{y(limit):.1f}"><title>limit {escape(format_value(limit, unit))}</title></line>'
        )
    if alert_start is not None and t0 <= alert_start <= t1:
        parts.append(
            f'<line class="alert-start" x1="{x(alert_start):.1f}" y1="{TOP}" '
            f'x2="{x(alert_start):.1f}" y2="{TOP + plot_h}"><title>alert started '
            f"{_clock(alert_start)} UTC</title></line>"
        )
    for index, s in enumerate(series):
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s["points"])
        who = ", ".join(f"{k}={v}" for k, v in sorted(s.get("labels", {}).items()))
        parts.append(
            f'<polyline class="series series-{index}" points="{coords}">'
            f"<title>{escape(who or chart.get('title', ''))}</title></polyline>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def render_legend(chart: Mapping[str, Any]) -> Markup:
    """Which line is which series (by its labels), in the chart's colours."""
    series = [s for s in chart.get("series", []) if s.get("points")]
    if len(series) < 2 and not chart.get("limit"):
        return Markup("")
    items = []
    for i, one in enumerate(series):
        who = ", ".join(f"{k}={v}" for k, v in sorted(one.get("labels", {}).items()))
        items.append(f'<li><span class="swatch series-{i}"></span>{escape(who or "value")}</li>')
    if chart.get("limit") is not None:
        limit = format_value(float(chart["limit"]), str(chart.get("unit") or ""))
        items.append(f'<li><span class="swatch limit"></span>limit {escape(limit)}</li>')
    return Markup('<ul class="legend">' + "".join(items) + "</ul>")  # noqa: S704 - escaped


def charts_by_id(result: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("id")): c for c in result.get("metrics") or []}
