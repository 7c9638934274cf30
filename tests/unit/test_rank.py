"""Causal ranking names the culprit to fix, not the loudest symptom or a distractor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from oncallm.sources.base import ObjectRef
from oncallm.triage.builder import ContextBuilder
from oncallm.triage.context import AlertInput, TriageContext
from oncallm.triage.findings import Finding
from oncallm.triage.rank import rank
from oncallm.triage.targets import resolve_targets
from oncallm.triage.taxonomy import Category

CHECKOUT_POD = ObjectRef("Pod", "shop", "checkout-1")
CHECKOUT = ObjectRef("Deployment", "shop", "checkout")
POSTGRES_SVC = ObjectRef("Service", "data", "postgres")
POSTGRES_POD = ObjectRef("Pod", "data", "postgres-0")
POSTGRES = ObjectRef("StatefulSet", "data", "postgres")
PVC = ObjectRef("PersistentVolumeClaim", "data", "data-postgres-0")
OTHER_POD = ObjectRef("Pod", "shop", "reports-1")


def _obj(ref: ObjectRef, owner: ObjectRef | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": ref.name, "namespace": ref.namespace}
    if owner is not None:
        meta["ownerReferences"] = [{"kind": owner.kind, "name": owner.name, "controller": True}]
    return {"apiVersion": "v1", "kind": ref.kind, "metadata": meta}


def _context() -> TriageContext:
    labels = {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "checkout-1"}
    alert = AlertInput("f", "KubePodCrashLooping", "firing", datetime(2026, 11, 26, tzinfo=UTC),
                      labels, {})  # fmt: skip
    builder = ContextBuilder(
        alert, resolve_targets(labels), cluster=None, source_name="snapshot",
        now=datetime(2026, 11, 26, 0, 5, tzinfo=UTC),
    )  # fmt: skip
    builder.add_object(_obj(CHECKOUT_POD, CHECKOUT), 0)
    builder.add_object(_obj(CHECKOUT), 1)
    builder.add_object(_obj(OTHER_POD), 1)
    builder.add_object(_obj(POSTGRES_SVC), 2)
    builder.add_object(_obj(POSTGRES_POD, POSTGRES), 3)
    builder.add_object(_obj(POSTGRES), 4)
    builder.add_object(_obj(PVC), 4)
    builder.focus.add(CHECKOUT_POD)
    return builder.build()


def _finding(category: Category, subject: ObjectRef, culprit: ObjectRef | None,
             confidence: float, blames: tuple[ObjectRef, ...] = ()) -> Finding:  # fmt: skip
    return Finding(category, f"{category} at {subject}", subject, culprit, (), confidence,
                   analyzer="test", blames=blames)  # fmt: skip


def test_the_chain_is_traced_to_the_volume_behind_the_dependency() -> None:
    findings = [
        _finding(Category.CrashLoop, CHECKOUT_POD, CHECKOUT, 0.8),
        _finding(Category.DependencyFailure, CHECKOUT_POD, POSTGRES_SVC, 0.7,
                 blames=(POSTGRES_SVC, POSTGRES_POD, POSTGRES)),
        _finding(Category.ServiceNoEndpoints, POSTGRES_SVC, POSTGRES_SVC, 0.5,
                 blames=(POSTGRES_POD, POSTGRES)),
        _finding(Category.VolumeFailure, POSTGRES_POD, PVC, 0.9),
        # A louder problem elsewhere in the namespace, unrelated to checkout.
        _finding(Category.OOMKilled, OTHER_POD, OTHER_POD, 0.95),
    ]  # fmt: skip
    ranking = rank(_context(), findings, min_confidence=0.35)
    assert ranking.root is not None
    assert (ranking.root.category, ranking.root.resource) == (Category.VolumeFailure, PVC)
    # The symptoms it explains follow it; the distractor comes last.
    order = [f.category for f in ranking.findings]
    assert order[0] == Category.VolumeFailure
    assert order[-1] == Category.OOMKilled or order.index(Category.OOMKilled) > order.index(
        Category.DependencyFailure
    )


def test_a_cause_on_the_alerted_object_beats_its_own_symptom() -> None:
    findings = [
        _finding(Category.ProbeFailure, CHECKOUT_POD, CHECKOUT, 0.7),
        _finding(Category.ConfigError, CHECKOUT_POD, ObjectRef("ConfigMap", "shop", "cfg"), 0.6),
    ]
    ranking = rank(_context(), findings, min_confidence=0.35)
    assert ranking.root is not None
    assert ranking.root.category == Category.ConfigError


def test_thin_evidence_is_unknown_rather_than_a_guess() -> None:
    weak = [_finding(Category.CrashLoop, CHECKOUT_POD, CHECKOUT, 0.3)]
    ranking = rank(_context(), weak, min_confidence=0.35)
    assert ranking.root is None
    assert ranking.findings[0].category == Category.CrashLoop  # still reported as a lead
    assert rank(_context(), [], min_confidence=0.35).root is None


def test_duplicate_findings_merge_their_evidence() -> None:
    a = Finding(Category.OOMKilled, "x", CHECKOUT_POD, CHECKOUT, ("e1",), 0.9, "pods")
    b = Finding(Category.OOMKilled, "y", CHECKOUT_POD, CHECKOUT, ("e2",), 0.6, "pods")
    ranking = rank(_context(), [a, b], min_confidence=0.35)
    assert len(ranking.findings) == 1
    assert ranking.findings[0].summary == "x"
    assert ranking.findings[0].evidence == ("e1", "e2")


def test_a_crash_that_blames_its_dependency_is_explained_by_it() -> None:
    # checkout exits because postgres refuses connections; postgres has no finding of its
    # own (an outside database), so the dependency, not the crash, is the root cause.
    findings = [
        _finding(Category.CrashLoop, CHECKOUT_POD, CHECKOUT, 0.6, blames=(POSTGRES_SVC,)),
        _finding(Category.DependencyFailure, CHECKOUT_POD, POSTGRES_SVC, 0.7),
    ]
    ranking = rank(_context(), findings, min_confidence=0.35)
    assert ranking.root is not None
    assert ranking.root.category == Category.DependencyFailure
    assert ranking.root.resource == POSTGRES_SVC


def test_the_alerted_pods_own_problem_beats_a_siblings() -> None:
    sibling = ObjectRef("Pod", "shop", "checkout-2")
    findings = [
        _finding(Category.OOMKilled, sibling, CHECKOUT, 0.95),  # another pod of checkout
        _finding(Category.Unschedulable, CHECKOUT_POD, CHECKOUT, 0.85),  # the alerted pod
    ]
    ranking = rank(_context(), findings, min_confidence=0.35)
    assert ranking.root is not None
    assert ranking.root.category == Category.Unschedulable
