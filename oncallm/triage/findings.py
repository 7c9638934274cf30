"""A finding: one analyzer's claim about what is wrong, where, why, and how sure.

``subject`` is where the symptom shows (the pod that cannot start), ``resource`` the
culprit whose fix ends it (the ConfigMap lacking a key). ``blames`` lists objects whose
own problems would explain this finding — the ranker links findings through them to
trace a symptom back to its cause. ``facts`` carries the values recommendations quote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from oncallm.sources.base import ObjectRef
from oncallm.triage.taxonomy import Category


@dataclass(frozen=True)
class Finding:
    category: Category
    summary: str
    subject: ObjectRef
    resource: ObjectRef | None
    evidence: tuple[str, ...]
    confidence: float
    analyzer: str = ""
    blames: tuple[ObjectRef, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": str(self.category),
            "summary": self.summary,
            "resource": self.resource.as_dict() if self.resource else None,
            "subject": self.subject.as_dict(),
            "confidence": round(self.confidence, 2),
            "evidence": list(self.evidence),
            "analyzer": self.analyzer,
        }
