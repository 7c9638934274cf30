"""Evidence: the facts a finding rests on, each with a stable, readable id.

Ids are derived from what they cite (``event:Pod/shop/api-1/BackOff``,
``log:shop/api-1/api/previous``), so citing the same fact twice yields one item, the ids
in a stored triage read naturally, and an LLM's citation can be checked against them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from oncallm.sources.base import ObjectRef

EvidenceType = Literal["event", "log", "object", "metric", "runbook", "alert"]
MAX_EXCERPT = 2000


@dataclass(frozen=True)
class EvidenceItem:
    id: str
    type: EvidenceType
    resource: ObjectRef | None
    excerpt: str
    source: str
    query: str | None = None  # metric evidence: the PromQL, so a user can run it again
    url: str | None = None  # metric evidence: the query over the window in Prometheus' UI

    def as_dict(self) -> dict[str, Any]:
        item = {
            "id": self.id,
            "type": self.type,
            "resource": self.resource.as_dict() if self.resource else None,
            "excerpt": self.excerpt,
            "source": self.source,
        }
        if self.query is not None:
            item["query"] = self.query
            item["url"] = self.url
        return item


def _path(ref: ObjectRef) -> str:
    return f"{ref.kind}/{ref.namespace}/{ref.name}" if ref.namespace else f"{ref.kind}/{ref.name}"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EXCERPT else text[: MAX_EXCERPT - 1] + "…"


class EvidenceLedger:
    """Collects cited evidence during analysis; ``cite_*`` return the item's id."""

    def __init__(self, source_name: str) -> None:
        self.source_name = source_name
        self._items: dict[str, EvidenceItem] = {}

    def _add(self, item: EvidenceItem) -> str:
        existing = self._items.get(item.id)
        if existing is None:
            self._items[item.id] = item
        return item.id

    def cite_event(self, ref: ObjectRef, reason: str, excerpt: str) -> str:
        return self._add(
            EvidenceItem(
                f"event:{_path(ref)}/{reason}",
                "event",
                ref,
                _clip(excerpt),
                f"{self.source_name}: events",
            )
        )

    def cite_log(
        self, namespace: str, pod: str, container: str, previous: bool, lines: Iterable[str]
    ) -> str:
        instance = "previous" if previous else "current"
        return self._add(
            EvidenceItem(
                f"log:{namespace}/{pod}/{container}/{instance}",
                "log",
                ObjectRef("Pod", namespace, pod),
                _clip("\n".join(lines)),
                f"{self.source_name}: logs of container {container}"
                + (" (previous instance)" if previous else ""),
            )
        )

    def cite_object(self, ref: ObjectRef, aspect: str, excerpt: str) -> str:
        return self._add(
            EvidenceItem(
                f"object:{_path(ref)}#{aspect}",
                "object",
                ref,
                _clip(excerpt),
                f"{self.source_name}: {ref.kind} {aspect}",
            )
        )

    def cite_metric(
        self,
        evidence_id: str,
        resource: ObjectRef | None,
        excerpt: str,
        *,
        source: str,
        query: str,
        url: str | None,
    ) -> str:
        return self._add(
            EvidenceItem(
                evidence_id,
                "metric",
                resource,
                _clip(excerpt),
                f"{source}: metrics",
                query=query,
                url=url,
            )
        )

    def cite_alert(self, alertname: str, excerpt: str) -> str:
        return self._add(
            EvidenceItem(f"alert:{alertname}", "alert", None, _clip(excerpt), "alertmanager")
        )

    def items(self) -> list[EvidenceItem]:
        return list(self._items.values())

    def __contains__(self, evidence_id: object) -> bool:
        return evidence_id in self._items
