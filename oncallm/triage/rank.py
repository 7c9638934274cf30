"""Causal ranking: trace symptoms back to the cause, and name the culprit to fix.

Findings form a graph: finding *g* explains finding *f* when g's subject or culprit (or
the workload running g's subject) is among the objects f blames, or when both are about
the same object and f is only a symptom. A root is a finding nothing else explains. The
root cause is the best root, scored by the analyzer's confidence and by how close the
finding sits to what the alert is about — so a broken workload elsewhere in the
namespace (a distractor) loses to the chain that starts at the alerted object, while a
deep cause that explains the alerted symptom inherits its relevance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from oncallm.sources.base import ObjectRef
from oncallm.triage import kube
from oncallm.triage.context import TriageContext
from oncallm.triage.findings import Finding
from oncallm.triage.taxonomy import SYMPTOMS

SYMPTOM_WEIGHT = 0.85
# Relevance by distance (hops from the alerted objects) for findings not otherwise tied in.
DISTANCE_RELEVANCE = {0: 1.0, 1: 0.85, 2: 0.7}
FAR_RELEVANCE = 0.45
NEAR_RELEVANCE = 0.85


@dataclass(frozen=True)
class Ranking:
    root: Finding | None  # None: nothing certain enough — the root cause is Unknown
    findings: tuple[Finding, ...]  # ranked; the root first when there is one
    scores: dict[int, float]  # id(finding) -> score, for explanations and tests
    symptoms: int = 0  # how many findings after the root are symptoms it explains


def merge_duplicates(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per (category, subject, culprit); the surest wins, evidence is pooled."""
    merged: dict[tuple[object, ...], Finding] = {}
    for finding in findings:
        key = (finding.category, finding.subject, finding.resource)
        seen = merged.get(key)
        if seen is None:
            merged[key] = finding
            continue
        best, other = (finding, seen) if finding.confidence > seen.confidence else (seen, finding)
        evidence = tuple(dict.fromkeys(best.evidence + other.evidence))
        blames = tuple(dict.fromkeys(best.blames + other.blames))
        merged[key] = replace(best, evidence=evidence, blames=blames)
    return list(merged.values())


class _Graph:
    def __init__(self, ctx: TriageContext, findings: list[Finding]) -> None:
        self.ctx = ctx
        self.findings = findings
        self.explains: dict[int, set[int]] = {i: set() for i in range(len(findings))}
        # Edges an analyzer declared (f blames g's object), as opposed to the implicit
        # "a cause on the same object explains its symptom" edges.
        self.declared: set[tuple[int, int]] = set()
        for gi, g in enumerate(findings):
            anchors = self._anchors(g)
            for fi, f in enumerate(findings):
                if gi == fi:
                    continue
                if anchors & set(f.blames):
                    self.explains[gi].add(fi)
                    self.declared.add((gi, fi))
                elif self._same_object_symptom(g, f):
                    self.explains[gi].add(fi)
        self._break_cycles()

    def _anchors(self, finding: Finding) -> set[ObjectRef]:
        anchors = {finding.subject}
        if finding.resource is not None:
            anchors.add(finding.resource)
        subject = self.ctx.objects.get(finding.subject)
        if subject is not None and finding.subject.kind == "Pod":
            anchors.add(self.ctx.workload_of(subject))
        return anchors

    @staticmethod
    def _same_object_symptom(g: Finding, f: Finding) -> bool:
        same_object = g.subject == f.subject or (
            g.resource is not None and g.resource == f.resource
        )
        return same_object and f.category in SYMPTOMS and g.category not in SYMPTOMS

    def _break_cycles(self) -> None:
        """Mutual explanations: an analyzer's explicit blame wins over the implicit
        same-object edge (a crash loop that blames the database it cannot reach is
        explained by that dependency); otherwise the non-symptom, else the surer one."""
        for gi, targets in self.explains.items():
            for fi in list(targets):
                if gi not in self.explains[fi]:
                    continue
                mine, theirs = (gi, fi) in self.declared, (fi, gi) in self.declared
                if mine != theirs:
                    if theirs:
                        targets.discard(fi)
                elif self._weaker(gi, fi):
                    targets.discard(fi)

    def _weaker(self, a: int, b: int) -> bool:
        fa, fb = self.findings[a], self.findings[b]
        a_symptom, b_symptom = fa.category in SYMPTOMS, fb.category in SYMPTOMS
        if a_symptom != b_symptom:
            return a_symptom
        return (fa.confidence, -a) < (fb.confidence, -b)

    def explained(self) -> set[int]:
        return {fi for targets in self.explains.values() for fi in targets}

    def descendants(self, index: int) -> list[int]:
        seen: list[int] = []
        stack = [index]
        while stack:
            for nxt in sorted(self.explains[stack.pop()]):
                if nxt not in seen and nxt != index:
                    seen.append(nxt)
                    stack.append(nxt)
        return seen


def near_focus(ctx: TriageContext) -> set[ObjectRef]:
    """The alerted objects and what they stand for: an alerted Service's (or Ingress's)
    pods, an alerted workload's pods, and the workloads of all those pods."""
    near = set(ctx.focus)
    pods: list[dict[str, object]] = []
    for ref in ctx.focus:
        obj = ctx.objects.get(ref)
        if obj is None:
            continue
        if ref.kind == "Pod":
            pods.append(obj)
        elif ref.kind == "Service":
            pods += ctx.pods_selected_by(obj)
        elif ref.kind == "Ingress":
            for svc in ctx.of_kind("Service", ref.namespace):
                if ctx.distance.get(kube.ref(svc)) == 1:
                    near.add(kube.ref(svc))
                    pods += ctx.pods_selected_by(svc)
        else:
            pods += ctx.pods_of(ref)
    for pod in pods:
        near.add(kube.ref(pod))
        near.add(ctx.workload_of(pod))
    return near


def _own_relevance(ctx: TriageContext, finding: Finding, near: set[ObjectRef]) -> float:
    refs = {finding.subject, *([finding.resource] if finding.resource else [])}
    if refs & ctx.focus:
        return 1.0
    if refs & near:
        # A sibling pod's trouble matters, but the alerted pod's own problem is the answer
        # to the alert about it.
        return NEAR_RELEVANCE
    distance = min((ctx.distance.get(r, 99) for r in refs), default=99)
    return DISTANCE_RELEVANCE.get(distance, FAR_RELEVANCE)


def rank(ctx: TriageContext, findings: Iterable[Finding], min_confidence: float) -> Ranking:
    pool = merge_duplicates(findings)
    if not pool:
        return Ranking(None, (), {})
    graph = _Graph(ctx, pool)
    near = near_focus(ctx)
    relevance = [_own_relevance(ctx, f, near) for f in pool]
    # A cause inherits the relevance of the symptoms it explains (transitively).
    for index in range(len(pool)):
        for below in graph.descendants(index):
            relevance[index] = max(relevance[index], relevance[below])
    scores = {}
    for index, finding in enumerate(pool):
        weight = SYMPTOM_WEIGHT if finding.category in SYMPTOMS else 1.0
        # Explaining more of what is wrong is a mark of the true cause.
        reach = 1.0 + 0.03 * min(len(graph.descendants(index)), 5)
        scores[index] = finding.confidence * relevance[index] * weight * reach
    explained = graph.explained()
    roots = [i for i in range(len(pool)) if i not in explained] or list(range(len(pool)))
    best = max(roots, key=lambda i: (scores[i], -i))
    order = [best, *graph.descendants(best)]
    order += sorted((i for i in range(len(pool)) if i not in order), key=lambda i: -scores[i])
    ranked = tuple(pool[i] for i in order)
    by_id = {id(pool[i]): scores[i] for i in range(len(pool))}
    root_confidence = pool[best].confidence * relevance[best]
    root = pool[best] if root_confidence >= min_confidence else None
    symptoms = len(graph.descendants(best)) if root is not None else 0
    return Ranking(root, ranked, by_id, symptoms)
