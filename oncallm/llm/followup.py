"""Bounded follow-up: the few read-only facts the model may ask for after reading the context.

OncallM gathers deterministically first, so the model rarely needs more; when it does, it
gets read-only tools (an object, its events, a container's logs, and — when the triage
has a metrics source — a PromQL query around the alert) through the *same* sources and
the *same* redactor as the prompt. Limits are enforced here rather than by aborting the
run: a call beyond ``followup_max_calls``, in a round beyond ``followup_max_rounds``, or
identical to an earlier one is answered with a refusal the model can read, so it answers
with what it has instead of failing the triage. Every fact returned becomes an evidence
item with the ledger's id scheme, and every object read is recorded as inspected, so the
grounding guard can verify citations of follow-up facts exactly like gathered ones.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.toolsets import FunctionToolset

from oncallm.llm.digest import event_id, log_id, object_path, summary_id
from oncallm.llm.redaction import Redactor
from oncallm.sources.base import ClusterSource, ObjectRef, SourceError
from oncallm.sources.kinds import KINDS
from oncallm.sources.metrics import MetricsError, MetricsSource
from oncallm.triage.evidence import EvidenceItem
from oncallm.triage.metric_signals import MetricWindow
from oncallm.triage.series import describe, downsample, format_value, summarise

TOOL_NAMES = ("get_object", "get_events", "get_logs", "query_metrics")
CLUSTER_TOOLS = TOOL_NAMES[:3]
METRIC_POINTS = 12  # points per series the model sees: the shape, not the data
METRIC_SERIES = 5
MAX_METRIC_MINUTES = 24 * 60
MAX_TOOL_TEXT = 6000  # characters a tool answer may take; ~1,500 tokens
LOG_TAIL = 80
# Metadata that costs tokens and explains nothing.
NOISY_METADATA = ("managedFields", "ownerReferences", "resourceVersion", "generation")


@dataclass(frozen=True)
class ToolCall:
    """One follow-up request as the triage records it."""

    tool: str
    arguments: dict[str, Any]
    outcome: str  # "ok", "not found", "refused: …", "error: …"
    evidence: str | None = None
    round: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "arguments": self.arguments,
            "outcome": self.outcome,
            "evidence": self.evidence,
            "round": self.round,
        }


def _clip(text: str) -> str:
    if len(text) <= MAX_TOOL_TEXT:
        return text
    return text[: MAX_TOOL_TEXT - 40] + "\n… (cut to fit the follow-up budget)"


def _compact(obj: dict[str, Any]) -> dict[str, Any]:
    meta = dict(obj.get("metadata") or {})
    for key in NOISY_METADATA:
        meta.pop(key, None)
    annotations = dict(meta.get("annotations") or {})
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {**obj, "metadata": meta}


@dataclass
class FollowUp:
    """The follow-up state of one triage: limits, what was asked, what was learned."""

    source: ClusterSource
    redactor: Redactor
    max_rounds: int
    max_calls: int
    source_name: str = "kubernetes"
    metrics: MetricsSource | None = None
    alert_start: datetime | None = None  # the metrics window is taken around it
    now: datetime | None = None
    calls: list[ToolCall] = field(default_factory=list)
    evidence: dict[str, EvidenceItem] = field(default_factory=dict)
    inspected: set[ObjectRef] = field(default_factory=set)
    _seen: set[str] = field(default_factory=set)
    _rounds: dict[int, int] = field(default_factory=dict)  # run_step -> round number

    @property
    def enabled(self) -> bool:
        return self.max_rounds > 0 and self.max_calls > 0

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The tools this triage offers (the metrics one only with a metrics source)."""
        if not self.enabled:
            return ()
        return TOOL_NAMES if self._metrics_ready else CLUSTER_TOOLS

    @property
    def _metrics_ready(self) -> bool:
        return self.metrics is not None and self.alert_start is not None

    def toolset(self) -> FunctionToolset[None]:
        toolset: FunctionToolset[None] = FunctionToolset()
        toolset.add_function(self.get_object, name="get_object", takes_ctx=True)
        toolset.add_function(self.get_events, name="get_events", takes_ctx=True)
        toolset.add_function(self.get_logs, name="get_logs", takes_ctx=True)
        if self._metrics_ready:
            toolset.add_function(self.query_metrics, name="query_metrics", takes_ctx=True)
        return toolset

    # --- the tools (docstrings are what the model reads) ---------------------------

    async def get_object(
        self, ctx: RunContext[None], kind: str, name: str, namespace: str | None = None
    ) -> str:
        """Read one Kubernetes object as JSON (Secret values are never shown).

        Args:
            kind: Kind such as Pod, Deployment, ConfigMap, Service, Node.
            name: Object name, exactly as in the context.
            namespace: Namespace; omit for cluster-scoped kinds (Node, PersistentVolume).
        """
        args = {"kind": kind, "namespace": namespace, "name": name}
        refusal = self._admit(ctx, "get_object", args)
        if refusal:
            return refusal
        ref = self._ref(kind, namespace, name)
        if ref is None:
            return self._done("get_object", args, ctx, f"refused: unknown kind {kind!r}")
        try:
            obj = await self.source.get(ref.kind, ref.name, ref.namespace)
        except SourceError as exc:
            return self._done("get_object", args, ctx, f"error: {exc.detail}")
        self.inspected.add(ref)
        if obj is None:
            missing = f"not found: {object_path(ref)} does not exist"
            return self._done("get_object", args, ctx, missing)
        evidence_id = summary_id(ref)
        compact = _compact(obj)
        text = json.dumps(compact, indent=1, sort_keys=True, default=str)
        # Redacted as an object (credential keys, Secret data) before it becomes text.
        sent = json.dumps(
            self.redactor.redact_object(compact), indent=1, sort_keys=True, default=str
        )
        return self._learned("get_object", args, ctx, evidence_id, "object", ref, text, sent)

    async def get_events(
        self, ctx: RunContext[None], kind: str, name: str, namespace: str | None = None
    ) -> str:
        """Read the events about one object, grouped by reason with counts.

        Args:
            kind: Kind of the object the events are about.
            name: Object name.
            namespace: Namespace; omit for cluster-scoped kinds.
        """
        args = {"kind": kind, "namespace": namespace, "name": name}
        refusal = self._admit(ctx, "get_events", args)
        if refusal:
            return refusal
        ref = self._ref(kind, namespace, name)
        if ref is None:
            return self._done("get_events", args, ctx, f"refused: unknown kind {kind!r}")
        try:
            events = await self.source.events_for(ref)
        except SourceError as exc:
            return self._done("get_events", args, ctx, f"error: {exc.detail}")
        if not events:
            return self._done("get_events", args, ctx, f"no events: none about {object_path(ref)}")
        by_reason: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            by_reason.setdefault(str(event.get("reason") or "Unknown"), []).append(event)
        lines: list[str] = []
        first_id = None
        for reason in sorted(by_reason):
            group = by_reason[reason]
            count = sum(int(e.get("count") or 1) for e in group)
            last = max(group, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime")))
            evidence_id = event_id(ref, reason)
            first_id = first_id or evidence_id
            head = f"{last.get('type', 'Normal')} {reason} (x{count}): "
            message = str(last.get("message", ""))
            self._record_evidence(evidence_id, "event", ref, head + message, "events")
            # The message is redacted on its own, before our prefix is put in front of it.
            lines.append(f"[{evidence_id}] {head}{self.redactor.redact(message)}")
        self.calls.append(ToolCall("get_events", args, "ok", first_id, self._round(ctx)))
        return self.redactor.redact(_clip("\n".join(lines)))

    async def get_logs(
        self,
        ctx: RunContext[None],
        namespace: str,
        pod: str,
        container: str,
        previous: bool = False,
    ) -> str:
        """Read the last lines of a container's log.

        Args:
            namespace: Namespace of the pod.
            pod: Pod name.
            container: Container name.
            previous: True for the instance that ran before the last restart.
        """
        args = {"namespace": namespace, "pod": pod, "container": container, "previous": previous}
        refusal = self._admit(ctx, "get_logs", args)
        if refusal:
            return refusal
        namespace, pod, container = (self.redactor.restore(v) for v in (namespace, pod, container))
        ref = ObjectRef("Pod", namespace, pod)
        try:
            text = await self.source.logs(
                namespace, pod, container, previous=previous, tail_lines=LOG_TAIL
            )
        except SourceError as exc:
            return self._done("get_logs", args, ctx, f"error: {exc.detail}")
        self.inspected.add(ref)
        if not text or not text.strip():
            return self._done("get_logs", args, ctx, "no log lines")
        evidence_id = log_id(namespace, pod, container, previous)
        # Redacted whole, before clipping could cut a key or a header in two.
        sent = self.redactor.redact(text)
        return self._learned("get_logs", args, ctx, evidence_id, "log", ref, text, sent)

    async def query_metrics(
        self, ctx: RunContext[None], query: str, minutes_before: int = 60
    ) -> str:
        """Run a PromQL query over the time around the alert and read how each series behaved.

        Args:
            query: A PromQL expression, such as
                sum by (pod) (rate(container_cpu_usage_seconds_total[5m])).
            minutes_before: How many minutes before the alert started to look (at most 1440).
        """
        args = {"query": query, "minutes_before": minutes_before}
        refusal = self._admit(ctx, "query_metrics", args)
        if refusal:
            return refusal
        assert self.metrics is not None
        assert self.alert_start is not None
        promql = self.redactor.restore(query).strip()
        if not promql:
            return self._done("query_metrics", args, ctx, "refused: the query is empty")
        minutes = max(5, min(int(minutes_before), MAX_METRIC_MINUTES))
        window = MetricWindow.around(
            self.alert_start,
            self.now or datetime.now(self.alert_start.tzinfo),
            before=timedelta(minutes=minutes),
            after=timedelta(minutes=15),
        )
        try:
            series = await self.metrics.query_range(promql, window.start, window.end, window.step)
        except MetricsError as exc:
            return self._done("query_metrics", args, ctx, f"error: {exc.detail}")
        series = [s for s in series if s.points][:METRIC_SERIES]
        if not series:
            return self._done("query_metrics", args, ctx, "no data: the query returned no series")
        digest = hashlib.sha256(promql.encode()).hexdigest()[:10]
        evidence_id = f"metric:query/{digest}"
        lines = [f"query: {promql}"]
        for one in series:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(one.labels.items())) or "(no labels)"
            summary = summarise(one.points)
            shape = describe(summary, "") if summary is not None else "one point"
            points = ", ".join(
                f"{datetime.fromtimestamp(t, self.alert_start.tzinfo):%H:%M} {format_value(v, '')}"
                for t, v in downsample(one.points, METRIC_POINTS)
            )
            lines.append(f"{labels}: {shape}\n  {points}")
        text = "\n".join(lines)
        self.evidence[evidence_id] = EvidenceItem(
            evidence_id,
            "metric",
            None,
            text[:2000],
            f"{self.metrics.name}: metrics (follow-up asked by the model)",
            query=promql,
            url=self.metrics.graph_url(promql, window.start, window.end),
        )
        self.calls.append(ToolCall("query_metrics", args, "ok", evidence_id, self._round(ctx)))
        return self.redactor.redact(f"evidence id: {evidence_id}\n{_clip(text)}")

    # --- limits and records ---------------------------------------------------------

    def _round(self, ctx: RunContext[None]) -> int:
        # Tool calls answered in the same model response share a run step: one round.
        return self._rounds.setdefault(ctx.run_step, len(self._rounds) + 1)

    def _admit(self, ctx: RunContext[None], tool: str, args: dict[str, Any]) -> str | None:
        key = json.dumps([tool, args], sort_keys=True)
        round_no = self._round(ctx)
        if key in self._seen:
            refusal = "refused: you already made this exact call; use its earlier answer"
        elif round_no > self.max_rounds:
            refusal = (
                f"refused: the follow-up limit of {self.max_rounds} rounds is reached; "
                "answer now with the evidence you have"
            )
        elif sum(1 for c in self.calls if not c.outcome.startswith("refused")) >= self.max_calls:
            refusal = (
                f"refused: the follow-up limit of {self.max_calls} calls is reached; "
                "answer now with the evidence you have"
            )
        else:
            self._seen.add(key)
            return None
        self.calls.append(ToolCall(tool, args, refusal, None, round_no))
        return refusal

    def _ref(self, kind: str, namespace: str | None, name: str) -> ObjectRef | None:
        kind = self.redactor.restore(kind)
        info = KINDS.get(kind) or next(
            (k for k in KINDS.values() if k.kind.lower() == kind.lower()), None
        )
        if info is None:
            return None
        ns = self.redactor.restore(namespace) if namespace and info.namespaced else None
        return ObjectRef(info.kind, ns, self.redactor.restore(name))

    def _done(self, tool: str, args: dict[str, Any], ctx: RunContext[None], outcome: str) -> str:
        self.calls.append(ToolCall(tool, args, outcome, None, self._round(ctx)))
        return self.redactor.redact(outcome)

    def _record_evidence(
        self, evidence_id: str, kind: str, ref: ObjectRef, text: str, what: str
    ) -> None:
        self.evidence[evidence_id] = EvidenceItem(
            evidence_id,
            kind,  # type: ignore[arg-type]
            ref,
            text[-2000:] if kind == "log" else text[:2000],  # a log's end says how it failed
            f"{self.source_name}: {what} (follow-up asked by the model)",
        )

    def _learned(
        self,
        tool: str,
        args: dict[str, Any],
        ctx: RunContext[None],
        evidence_id: str,
        kind: str,
        ref: ObjectRef,
        text: str,
        sent: str,
    ) -> str:
        """Record the original as evidence; answer the model with the redacted form."""
        self._record_evidence(evidence_id, kind, ref, text, tool.removeprefix("get_"))
        self.calls.append(ToolCall(tool, args, "ok", evidence_id, self._round(ctx)))
        clipped = sent if kind != "log" else sent[-MAX_TOOL_TEXT:]  # a log's end matters
        return self.redactor.redact(f"evidence id: {evidence_id}\n{_clip(clipped)}")

    def summary(self) -> dict[str, Any]:
        outcomes = Counter(c.outcome.split(":")[0] for c in self.calls)
        return {
            "rounds": len(self._rounds),
            "calls": [c.as_dict() for c in self.calls],
            "outcomes": dict(outcomes),
        }
