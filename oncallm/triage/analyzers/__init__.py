"""Analyzers: small rule modules, one per family, all behind one interface.

An analyzer reads a :class:`~oncallm.triage.context.TriageContext`, cites the evidence
it relies on in the ledger, and yields :class:`~oncallm.triage.findings.Finding` values.
It also turns its own findings into recommendations, because the rule that knows why a
container was OOMKilled knows which limit to raise. Built-in analyzers register through
the same :func:`registered` list third-party ones will use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation
from oncallm.triage.taxonomy import Category

AnalyzeFn = Callable[[TriageContext, EvidenceLedger], Iterable[Finding]]
RecommendFn = Callable[[Finding, TriageContext], list[Recommendation]]


@dataclass(frozen=True)
class Analyzer:
    name: str
    categories: frozenset[Category]
    analyze: AnalyzeFn
    recommend: RecommendFn


def registered() -> tuple[Analyzer, ...]:
    """Every analyzer, in a stable order (the order only breaks exact score ties)."""
    from oncallm.triage.analyzers import (  # imported lazily: each module registers one
        config,
        mounted_files,
        nodes,
        pods,
        scheduling,
        security,
        services,
        storage,
        workloads,
    )

    return tuple(
        module.ANALYZER
        for module in (
            config,
            mounted_files,
            pods,
            scheduling,
            storage,
            nodes,
            services,
            workloads,
            security,
        )
    )
