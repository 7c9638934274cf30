"""The compressed context a model reads: readable summaries that never drop cited evidence.

A :class:`TriageContext` holds raw objects (kubectl JSON), every event and up to a few
hundred log lines per container — tens of thousands of tokens. :func:`digest_context`
turns it into :class:`DigestItem` s the model can read and cite: one line-oriented summary
per object (``object:{Kind}/{ns}/{name}#summary``), one aggregated item per (object,
event reason) and one per container log, with the same ids the evidence ledger gives
(``event:Pod/shop/api-1/BackOff``, ``log:shop/api-1/api/previous``), so a citation can be
checked against the result. Every evidence item the deterministic findings cite is an
item too, always, at any token target: compression may shorten a cited log, never drop it.

Compression levels, applied cumulatively until the estimate fits ``token_target``:
(1) collapse repeated log lines (digits, hex ids and timestamps normalised) with counts;
(2) drop healthy objects that are neither cited nor in focus, with their events and logs;
(3) shorten uncited logs to error lines and the last lines; (4) drop uncited Normal
events; (5) drop uncited objects farthest from the alert first; (6) shorten cited logs the
same way as (3), keeping the lines their findings quoted. If it still does not fit, the
digest says so through ``estimated_tokens``; the caller decides. Same input, same bytes.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, cast

from oncallm.llm.digest_kinds import alert_text, findings_text, healthy, ref_from, relative
from oncallm.llm.digest_objects import summarize
from oncallm.sources.base import ObjectRef
from oncallm.triage.context import ERROR_LINE, Event, TriageContext
from oncallm.triage.evidence import MAX_EXCERPT, EvidenceItem, EvidenceType

LAST_LINES = 5  # lines a shortened log keeps from its end: what the process said last
MAX_LINE = 300  # one minified JSON log line can hold a whole request; its ends suffice
MAX_MESSAGES = 3  # distinct messages shown per event reason (newest first)
MAX_MESSAGE = 300
FAR = 99  # distance of an object the gatherer did not place: treated as farthest


def estimate_tokens(text: str) -> int:
    """Prompt tokens ``text`` will cost, estimated without a tokenizer: ceil(chars / 4).

    Four characters a token is the usual average for English and code under BPE
    tokenizers; it is only an estimate, the provider reports the real count."""
    return math.ceil(len(text) / 4)


def object_path(ref: ObjectRef) -> str:
    """``Kind/ns/name`` (``Kind/name`` cluster-scoped): the evidence ledger's object path."""
    return f"{ref.kind}/{ref.namespace}/{ref.name}" if ref.namespace else f"{ref.kind}/{ref.name}"


def summary_id(ref: ObjectRef) -> str:
    return f"object:{object_path(ref)}#summary"


def event_id(ref: ObjectRef, reason: str) -> str:
    return f"event:{object_path(ref)}/{reason}"


def log_id(namespace: str, pod: str, container: str, previous: bool) -> str:
    return f"log:{namespace}/{pod}/{container}/{'previous' if previous else 'current'}"


@dataclass(frozen=True)
class DigestItem:
    id: str
    type: EvidenceType
    resource: ObjectRef | None
    text: str
    cited: bool  # cited by a deterministic finding (its id is in the result's evidence)

    def as_evidence(self, source_name: str) -> EvidenceItem:
        """This item as result evidence, for when the model cites what no finding did."""
        text = self.text
        if len(text) > MAX_EXCERPT:
            # A log's end says how it failed; anything else reads from its start.
            cut = MAX_EXCERPT - 1
            text = "…" + text[-cut:] if self.type == "log" else text[:cut] + "…"
        if self.type == "alert":
            return EvidenceItem(self.id, self.type, None, text, "alertmanager")
        if self.type == "log":
            _ns, _pod, container, instance = self.id.removeprefix("log:").rsplit("/", 3)
            what = f"logs of container {container}" + (
                " (previous instance)" if instance == "previous" else ""
            )
        elif self.type == "object" and self.resource is not None:
            what = f"{self.resource.kind} {self.id.rpartition('#')[2]}"
        else:
            what = f"{self.type}s"
        return EvidenceItem(self.id, self.type, self.resource, text, f"{source_name}: {what}")


@dataclass(frozen=True)
class ContextDigest:
    alert: str
    findings: str
    items: tuple[DigestItem, ...]
    gaps: tuple[str, ...]
    estimated_tokens: int
    cited_total: int
    cited_kept: int
    dropped: Mapping[str, int]  # what compression removed, by kind; empty when none

    def ids(self) -> frozenset[str]:
        return frozenset(item.id for item in self.items)

    def item(self, id: str) -> DigestItem | None:
        return next((item for item in self.items if item.id == id), None)

    def text(self) -> str:
        """Every part in one string: what ``estimated_tokens`` measures."""
        return canonical_text(self.alert, self.findings, self.gaps, self.items)


def canonical_text(
    alert: str, findings: str, gaps: Iterable[str], items: Iterable[DigestItem]
) -> str:
    parts = [alert, findings, *gaps, *(f"[{item.id}]\n{item.text}" for item in items)]
    return "\n".join(parts)


# --- logs ----------------------------------------------------------------------------------

_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b"
)
_HEX_ID = re.compile(r"\b(?=[0-9a-f-]*\d)[0-9a-f]{6,}(?:-[0-9a-f]{4,})*\b", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")


def normalise(line: str) -> str:
    """The line with what varies between repeats (times, ids, numbers) made equal."""
    return _DIGITS.sub("#", _HEX_ID.sub("<id>", _TIMESTAMP.sub("<t>", line))).strip()


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut in the middle: a log line's end often holds the
    error ("…: connection refused") and its head the time and level."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    return text[:head] + " … " + text[len(text) - (limit - head - 3) :]


@dataclass(frozen=True)
class _Line:
    text: str
    count: int  # how many lines it stands for (1 unless collapsed)
    index: int  # position of the line shown (the last of its repeats)


def collapse(lines: Iterable[str]) -> list[_Line]:
    """One entry per distinct normalised line, shown where it last occurred, with how
    many times it occurred: a retry loop reads as its last round, counted."""
    last: dict[str, int] = {}
    counts: Counter[str] = Counter()
    texts: list[str] = []
    for index, line in enumerate(lines):
        key = normalise(line)
        last[key] = index
        counts[key] += 1
        texts.append(line)
    return sorted(
        (_Line(texts[index], counts[key], index) for key, index in last.items()),
        key=lambda entry: entry.index,
    )


def _shorten(entries: list[_Line], keep: frozenset[str]) -> tuple[list[_Line | int], int]:
    """Error lines, lines in ``keep`` (normalised) and the last lines; runs left out
    become their line count so the reader sees where text was omitted."""
    tail = {entry.index for entry in entries[-LAST_LINES:]}
    out: list[_Line | int] = []
    omitted = 0
    for entry in entries:
        if entry.index in tail or ERROR_LINE.search(entry.text) or normalise(entry.text) in keep:
            out.append(entry)
        else:
            omitted += entry.count
            if out and isinstance(out[-1], int):
                out[-1] += entry.count
            else:
                out.append(entry.count)
    return out, omitted


def _log_text(entries: Iterable[_Line | int]) -> str:
    rendered = []
    for entry in entries:
        if isinstance(entry, int):
            rendered.append(f"[… {entry} lines omitted]")
        else:
            suffix = f" (x{entry.count})" if entry.count > 1 else ""
            rendered.append(_clip(entry.text, MAX_LINE) + suffix)
    return "\n".join(rendered)


# --- events --------------------------------------------------------------------------------


def _stamp(when: datetime | None) -> float:
    return when.timestamp() if when is not None else 0.0


def _event_text(ctx: TriageContext, events: Sequence[Event], cited_excerpt: str | None) -> str:
    groups: dict[str, list[Event]] = {}  # by message, numbers aside
    for event in events:
        groups.setdefault(normalise(event.message), []).append(event)

    def newest(group: list[Event]) -> tuple[float, str]:
        seen = [e.last_seen.timestamp() for e in group if e.last_seen is not None]
        return (-max(seen, default=0.0), group[-1].message)

    ordered = sorted(groups.values(), key=newest)
    kind = "Warning" if any(e.warning for e in events) else events[0].type
    total = sum(e.count for e in events)

    def line(group: list[Event]) -> str:
        count = sum(e.count for e in group)
        firsts = [e.first_seen for e in group if e.first_seen is not None]
        lasts = [e.last_seen for e in group if e.last_seen is not None]
        when = f"last {relative(max(lasts), ctx)}" if lasts else "time unknown"
        if count > 1 and firsts:
            when = f"x{count}, first {relative(min(firsts), ctx)}, {when}"
        message = _clip(max(group, key=lambda e: e.last_seen or ctx.now).message, MAX_MESSAGE)
        return f"{when}: {message}"

    reason = events[0].reason
    shown = ordered if cited_excerpt is not None else ordered[:MAX_MESSAGES]
    if len(ordered) == 1:
        text = f"{kind} {reason} {line(ordered[0])}"
    else:
        text = "\n".join(
            [f"{kind} {reason} x{total}, {len(ordered)} messages:"]
            + [f"  {line(group)}" for group in shown]
            + (
                [f"  (+{len(ordered) - len(shown)} more messages)"]
                if len(shown) < len(ordered)
                else []
            )
        )
    if cited_excerpt and not any(group[-1].message in cited_excerpt for group in shown):
        text += f"\ncited: {_clip(cited_excerpt, MAX_MESSAGE)}"  # analyzers phrase some
    return text


# --- assembling ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    collapse: bool = False
    drop_healthy: bool = False
    short_logs: bool = False
    drop_normal: bool = False
    max_distance: int | None = None
    short_cited_logs: bool = False


@dataclass(frozen=True)
class _Object:
    ref: ObjectRef
    text: str
    distance: int
    kept: bool  # in focus, cited or named by a finding: never dropped
    healthy: bool


@dataclass(frozen=True)
class _Log:
    ref: ObjectRef
    id: str
    lines: tuple[str, ...]
    cited: bool
    quoted: frozenset[str]  # normalised lines the citing finding quoted


def _order(ctx: TriageContext, ref: ObjectRef | None) -> tuple[int, int, str, str, str]:
    if ref is None:
        return (-1, -1, "", "", "")
    return (
        0 if ctx.is_focus(ref) else 1,
        ctx.distance.get(ref, FAR),
        ref.kind,
        ref.namespace or "",
        ref.name,
    )


class _Digester:
    def __init__(self, ctx: TriageContext, result: Mapping[str, Any]) -> None:
        self.ctx = ctx
        evidence = [e for e in result.get("evidence") or [] if isinstance(e, Mapping)]
        self.cited: dict[str, Mapping[str, Any]] = {str(e["id"]): e for e in evidence}
        findings = [f for f in result.get("findings") or [] if isinstance(f, Mapping)]
        named = {
            ref
            for f in [*findings, result.get("root_cause") or {}]
            for ref in (ref_from(f.get("resource")), ref_from(f.get("subject")))
            if ref is not None
        }
        named |= {r for e in evidence if (r := ref_from(e.get("resource"))) is not None}
        self.named = frozenset(named | ctx.focus)
        self.alert = alert_text(ctx)
        self.findings = findings_text(result)
        self.gaps = tuple(
            f"{g.get('source')}: {g.get('error')}"
            for g in result.get("gaps") or []
            if isinstance(g, Mapping)
        )
        self.objects = self._objects()
        self.warnings: set[str] = set()  # ids of event items with a Warning among them
        self.events = self._events()
        self.logs = self._logs()
        self.fixed = self._cited_leftovers()
        self.metrics = self._metrics()

    def _objects(self) -> list[_Object]:
        health = {ref: self._healthy(ref) for ref in self.ctx.objects}
        # Sibling pods point to the first summary showing their shared spec; that one is
        # picked among those compression drops last (kept, then unhealthy).
        seen: dict[str, str] = {}
        out = []
        for ref in sorted(
            self.ctx.objects,
            key=lambda r: (r not in self.named, health[r], _order(self.ctx, r)),
        ):
            text = summarize(self.ctx, ref, self.ctx.objects[ref], seen)
            if text is None:
                continue  # folded into another summary (Endpoints into their Service)
            distance = self.ctx.distance.get(ref, FAR)
            out.append(_Object(ref, text, distance, ref in self.named, health[ref]))
        return sorted(out, key=lambda o: _order(self.ctx, o.ref))

    def _healthy(self, ref: ObjectRef) -> bool:
        obj = self.ctx.objects[ref]
        if self.ctx.warnings_of(ref) or not healthy(self.ctx, ref, obj):
            return False
        if ref.kind == "Pod":
            return not any(log.error_lines for log in self.ctx.logs_of_pod(ref))
        return True

    def _events(self) -> list[DigestItem]:
        grouped: dict[tuple[ObjectRef, str], list[Event]] = {}
        for ref, events in self.ctx.events.items():
            for event in events:
                grouped.setdefault((ref, event.reason), []).append(event)
        items = []
        for (ref, reason), group in grouped.items():
            # Gather order is concurrent, so it varies; the text must not.
            group.sort(key=lambda e: (_stamp(e.last_seen), _stamp(e.first_seen), e.message))
            id_ = event_id(ref, reason)
            cited = self.cited.get(id_)
            excerpt = str(cited.get("excerpt") or "") if cited is not None else None
            text = _event_text(self.ctx, group, excerpt)
            items.append(DigestItem(id_, "event", ref, text, cited is not None))
            if any(e.warning for e in group):
                self.warnings.add(id_)
        return sorted(items, key=lambda i: (_order(self.ctx, i.resource), i.id))

    def _logs(self) -> list[_Log]:
        out = []
        for (ns, pod, container, previous), excerpt in self.ctx.logs.items():
            id_ = log_id(ns, pod, container, previous)
            cited = self.cited.get(id_)
            quoted = str(cited.get("excerpt") or "").splitlines() if cited is not None else []
            out.append(
                _Log(
                    ObjectRef("Pod", ns, pod),
                    id_,
                    excerpt.lines,
                    cited is not None,
                    frozenset(normalise(line) for line in quoted),
                )
            )
        return sorted(out, key=lambda lg: (_order(self.ctx, lg.ref), lg.id))

    def _metrics(self) -> list[DigestItem]:
        """One line per metric no finding cited: how the series closest to its limit went."""
        items = []
        for signal in self.ctx.metrics.values():
            worst = signal.worst()
            if signal.evidence_id in self.cited or worst is None:
                continue
            text = signal.describe(*worst)
            items.append(
                DigestItem(signal.evidence_id, "metric", signal.query.resource, text, False)
            )
        return items

    def _cited_leftovers(self) -> list[DigestItem]:
        """Cited evidence no summary, event group or log stands for: object aspects
        (``#status``, ``#endpoints``), the alert, anything the context lacks — as cited."""
        covered = {i.id for i in self.events} | {lg.id for lg in self.logs}
        covered |= {summary_id(o.ref) for o in self.objects}
        items = []
        for id_, e in self.cited.items():
            if id_ in covered:
                continue
            kind = str(e.get("type") or "object")
            type_ = cast(EvidenceType, kind) if kind in _TYPE_ORDER else "object"
            items.append(
                DigestItem(
                    id_, type_, ref_from(e.get("resource")), str(e.get("excerpt") or ""), True
                )
            )
        return items

    def assemble(self, plan: _Plan) -> ContextDigest:
        dropped: Counter[str] = Counter()
        kept_refs: set[ObjectRef] = set()
        items: list[DigestItem] = []
        for obj in self.objects:
            if not obj.kept and plan.drop_healthy and obj.healthy:
                dropped["healthy objects"] += 1
            elif (
                not obj.kept and plan.max_distance is not None and obj.distance > plan.max_distance
            ):
                dropped["distant objects"] += 1
            else:
                kept_refs.add(obj.ref)
                id_ = summary_id(obj.ref)
                items.append(DigestItem(id_, "object", obj.ref, obj.text, id_ in self.cited))
        gone = {o.ref for o in self.objects} - kept_refs
        items += self.fixed
        for event in self.events:
            if not event.cited and event.resource in gone:
                dropped["events of dropped objects"] += 1
            elif not event.cited and plan.drop_normal and event.id not in self.warnings:
                dropped["normal events"] += 1
            else:
                items.append(event)
        for log in self.logs:
            if not log.cited and log.ref in gone:
                dropped["logs of dropped objects"] += 1
                continue
            entries: list[_Line | int] = [_Line(t, 1, i) for i, t in enumerate(log.lines)]
            if plan.collapse:
                collapsed = collapse(log.lines)
                dropped["repeated log lines"] += len(log.lines) - len(collapsed)
                entries = list(collapsed)
                if plan.short_cited_logs if log.cited else plan.short_logs:
                    entries, omitted = _shorten(collapsed, log.quoted)
                    dropped["cited log lines" if log.cited else "uncited log lines"] += omitted
            items.append(DigestItem(log.id, "log", log.ref, _log_text(entries), log.cited))
        if plan.drop_normal:  # context, like Normal events: the first to go after logs
            dropped["uncited metrics"] += len(self.metrics)
        else:
            items += self.metrics
        # By type, then nearest the alert first; an object's summary before its aspects.
        items.sort(
            key=lambda i: (
                _TYPE_ORDER[i.type],
                _order(self.ctx, i.resource),
                not i.id.endswith("#summary"),
                i.id,
            )
        )
        text = canonical_text(self.alert, self.findings, self.gaps, items)
        ids = {i.id for i in items}
        return ContextDigest(
            alert=self.alert,
            findings=self.findings,
            items=tuple(items),
            gaps=self.gaps,
            estimated_tokens=estimate_tokens(text),
            cited_total=len(self.cited),
            cited_kept=sum(1 for id_ in self.cited if id_ in ids),
            dropped=MappingProxyType({k: v for k, v in sorted(dropped.items()) if v}),
        )

    def plans(self) -> list[_Plan]:
        levels = [_Plan(), _Plan(collapse=True)]
        levels.append(replace(levels[-1], drop_healthy=True))
        levels.append(replace(levels[-1], short_logs=True))
        levels.append(replace(levels[-1], drop_normal=True))
        distances = sorted({o.distance for o in self.objects if not o.kept}, reverse=True)
        levels += [replace(levels[-1], max_distance=d - 1) for d in distances]
        levels.append(replace(levels[-1], short_cited_logs=True))
        return levels


_TYPE_ORDER = {t: i for i, t in enumerate(("alert", "object", "event", "log", "metric", "runbook"))}


def digest_context(
    ctx: TriageContext, result: Mapping[str, Any], *, token_target: int
) -> ContextDigest:
    """The least-compressed digest of ``ctx`` whose estimate fits ``token_target``, or
    the most compressed one when none does (its estimate then exceeds the target)."""
    digester = _Digester(ctx, result)
    digest = None
    for plan in digester.plans():
        digest = digester.assemble(plan)
        if digest.estimated_tokens <= token_target:
            break
    assert digest is not None
    return digest
