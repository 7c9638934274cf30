"""What the alert page shows, prepared from the stored alert: steps, evidence, the summary.

The page template stays declarative; the decisions live here, where they are tested: which
step a triage is at in words an engineer reads, which evidence the root cause rests on
and where it sits on the page, which log lines tell the story, which recommendations come
first, and the short incident summary a resolved alert gets.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

from oncallm.triage.context import ERROR_LINE
from oncallm.web.charts import render_chart, render_legend
from oncallm.web.templating import span

# The worker's step names (pipeline progress) and the stage each belongs to.
_STAGE_OF_STEP = {
    "targets": "gather",
    "gather": "gather",
    "metrics": "metrics",
    "analyze": "analyze",
    "recommend": "analyze",
    "runbooks": "analyze",
    "reason": "reason",
}
_STAGES = (
    ("queued", "Queued"),
    ("gather", "Reading the cluster"),
    ("metrics", "Reading metrics"),
    ("analyze", "Analyzing"),
    ("reason", "Asking the model"),
    ("done", "Done"),
)


@dataclass(frozen=True)
class Step:
    label: str
    state: str  # "done" | "current" | "todo" | "failed"


def triage_steps(triage: Mapping[str, Any] | None) -> list[Step]:
    """The triage's progress as stages, for the steps list at the top of the triage."""
    if triage is None:
        return []
    status = str(triage.get("status"))
    result = triage.get("result") or {}
    with_model = bool(result.get("llm")) or triage.get("step") == "reason"
    stages = [s for s in _STAGES if s[0] != "reason" or with_model]
    keys = [key for key, _label in stages]
    if status == "succeeded":
        return [Step(label, "done") for _key, label in stages]
    step = str(triage.get("step"))
    current = "queued" if status == "queued" else _STAGE_OF_STEP.get(step, "gather")
    at = keys.index(current) if current in keys else 0
    steps = []
    for index, (key, label) in enumerate(stages):
        if index < at:
            steps.append(Step(label, "done"))
        elif index == at:
            steps.append(Step(label, "failed" if status == "failed" else "current"))
        elif key == "done" and status == "failed":
            steps.append(Step("Failed", "failed"))
        else:
            steps.append(Step(label, "todo"))
    return steps


def anchor(evidence_id: str) -> str:
    """A stable HTML id for an evidence item (ids hold ``/``, ``#``, ``:``)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", evidence_id).strip("-")[:60]
    return f"ev-{slug}-{hashlib.blake2s(evidence_id.encode(), digest_size=3).hexdigest()}"


def evidence_label(evidence_id: str) -> str:
    """``log:shop/api-1/api/previous`` → ``log shop/api-1/api/previous``: short, readable."""
    kind, _, rest = evidence_id.partition(":")
    return f"{kind} {rest}" if rest else evidence_id


def highlight(excerpt: str, kind: str) -> Markup:
    """The excerpt, escaped; in logs the lines that tell (errors, panics, refusals) marked."""
    if kind != "log":
        return escape(excerpt)
    lines = [
        Markup("<mark>{}</mark>").format(line) if ERROR_LINE.search(line) else escape(line)
        for line in excerpt.splitlines()
    ]
    return Markup("\n").join(lines)


def evidence_html(
    item: Mapping[str, Any], charts: Mapping[str, Mapping[str, Any]], alert_start: float
) -> Markup:
    """One evidence item as the page shows it: a disclosure with its source, and for a
    metric its chart, query and Prometheus link. Built here rather than in a template
    loop: a triage can cite hundreds of items, and the page must render in milliseconds."""
    evidence_id = str(item["id"])
    kind = str(item.get("type"))
    parts = [
        Markup('<details id="{}" class="evidence {}"{}><summary><code>{}</code> '
               '<span class="muted">{}</span></summary>').format(
            item.get("anchor") or anchor(evidence_id), kind,
            Markup(" open") if item.get("root") else "", evidence_id, item.get("source", ""),
        )
    ]  # fmt: skip
    if kind == "metric":
        chart = charts.get(evidence_id)
        if chart is not None:
            parts += [render_chart(chart, alert_start), render_legend(chart)]
        link = (
            Markup('<a href="{}" rel="noreferrer">Open in Prometheus</a>').format(item["url"])
            if item.get("url")
            else ""
        )
        parts.append(
            Markup('<p><code class="promql">{}</code>{}</p>').format(item.get("query", ""), link)
        )
    parts.append(
        Markup("<pre>{}</pre></details>").format(highlight(str(item.get("excerpt", "")), kind))
    )
    return Markup("").join(parts)


def ordered_evidence(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Evidence with what the root cause rests on first, then by the findings' rank."""
    items = [dict(e) for e in result.get("evidence") or []]
    rank: dict[str, int] = {}
    ranked = [result.get("root_cause") or {}, *result.get("findings", [])]
    for position, finding in enumerate(ranked):
        for evidence_id in finding.get("evidence") or []:
            rank.setdefault(str(evidence_id), position)
    for item in items:
        item["anchor"] = anchor(str(item["id"]))
        item["root"] = rank.get(str(item["id"])) == 0
    return sorted(items, key=lambda e: (rank.get(str(e["id"]), 10_000), e["type"] == "runbook"))


def ordered_recommendations(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Most confident first; ties keep the analyzers' order (the root's own steps first)."""
    recs = list(result.get("recommendations") or [])
    return sorted(recs, key=lambda r: -float(r.get("confidence") or 0))


# --- the incident summary of a resolved alert ---------------------------------------------


def _clock(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "?"


def incident_summary(alert: Mapping[str, Any]) -> list[str]:
    """A few sentences on a resolved alert, from what OncallM stored: what fired, what it
    found, what was done, how long it lasted. Empty while the alert fires."""
    if alert.get("status") != "resolved":
        return []
    where = " / ".join(str(alert[k]) for k in ("cluster", "namespace") if alert.get(k))
    start, end = alert["starts_at"], alert.get("ends_at")
    lines = [
        f"{alert['alertname']}{f' ({where})' if where else ''} fired at {_clock(start)} and "
        f"resolved at {_clock(end)}, after {span(start, end) if end else '?'}."
    ]
    triage = alert.get("triage") or {}
    root = (triage.get("result") or {}).get("root_cause")
    if root and root.get("category") != "Unknown":
        culprit = root.get("resource") or {}
        named = " ".join(
            part
            for part in (
                culprit.get("kind"),
                "/".join(str(p) for p in (culprit.get("namespace"), culprit.get("name")) if p),
            )
            if part
        )
        lines.append(
            f"OncallM found {root['category']}{f' in {named}' if named else ''} "
            f"(confidence {float(root.get('confidence') or 0):.2f}): {root.get('summary', '')}"
        )
    elif triage.get("status") == "failed":
        reason = triage.get("last_error") or "no reason recorded"
        lines.append(f"OncallM's triage failed: {reason}.")
    elif root:
        lines.append("OncallM could not name a root cause from the evidence it read.")
    notes = [e for e in alert.get("timeline") or [] if e.get("kind") == "note"]
    if notes:
        done = "; ".join(str(n["message"]) for n in notes[-3:])
        more = f" (and {len(notes) - 3} earlier notes)" if len(notes) > 3 else ""
        lines.append(f"Done: {done}{more}.")
    else:
        lines.append("No notes were added: add what was done, for the next on-call.")
    earlier = [h for h in alert.get("history") or [] if h.get("starts_at") != start]
    if earlier:
        lines.append(f"It has fired {len(earlier)} time{'s' if len(earlier) > 1 else ''} before.")
    return lines
