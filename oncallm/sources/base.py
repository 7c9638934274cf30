"""The read-only contract every cluster source fulfils, live or snapshot.

Triage code talks to a cluster only through :class:`ClusterSource`. Objects come back as
the plain JSON dicts ``kubectl get -o json`` prints, so analyzers read the same fields an
SRE would, and a snapshot file and a live API response are interchangeable.

Two promises every source keeps:
- Secret ``data``/``stringData`` values are replaced by empty strings before an object
  leaves the source: key names survive (a missing key is evidence), values never do.
- A failed read raises :class:`SourceError` with a short reason ("403 Forbidden"), which
  the gatherer turns into a *gap*; an object that does not exist is ``None``, not an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from oncallm.errors import SourceError

KubeObject = dict[str, Any]

__all__ = [
    "ClusterSource",
    "KubeObject",
    "ObjectRef",
    "SourceError",
    "redact_secret",
    "ref_of",
]


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Identity of one Kubernetes object. ``namespace`` is None for cluster-scoped kinds."""

    kind: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind} {self.name}")
        )

    def as_dict(self) -> dict[str, str | None]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name}


def ref_of(obj: Mapping[str, Any]) -> ObjectRef:
    meta = obj.get("metadata") or {}
    return ObjectRef(str(obj.get("kind", "")), meta.get("namespace") or None, str(meta["name"]))


def redact_secret(obj: KubeObject) -> KubeObject:
    """Return a Secret with every value emptied and every key kept; other kinds unchanged."""
    if obj.get("kind") != "Secret":
        return obj
    clean = dict(obj)
    for field in ("data", "stringData"):
        values = obj.get(field)
        if isinstance(values, Mapping):
            clean[field] = dict.fromkeys(values, "")
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        # kubectl's last-applied annotation carries the whole Secret, values included.
        annotations = {
            k: v
            for k, v in (meta.get("annotations") or {}).items()
            if k != "kubectl.kubernetes.io/last-applied-configuration"
        }
        clean["metadata"] = {**meta, "annotations": annotations}
    return clean


@runtime_checkable
class ClusterSource(Protocol):
    """Read-only queries triage needs, answered by a live cluster or a snapshot."""

    @property
    def cluster(self) -> str | None:
        """The cluster's name, when known."""
        ...

    async def now(self) -> datetime:
        """ "Now" for age computations: wall clock live, capture time for a snapshot."""
        ...

    async def get(self, kind: str, name: str, namespace: str | None = None) -> KubeObject | None:
        """One object, or None when it does not exist."""
        ...

    async def list_objects(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[KubeObject]:
        """Objects of a kind (in one namespace, or all when None), filtered by selectors.

        Selectors use the Kubernetes syntax: ``app=api,tier in (web),!canary`` and
        ``metadata.name=x,spec.nodeName=n``.
        """
        ...

    async def events_for(self, ref: ObjectRef) -> list[KubeObject]:
        """Events whose involved object (``regarding``) is exactly ``ref`` — kind,
        namespace and name all match — in ``v1 Event`` shape."""
        ...

    async def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int = 200,
        limit_bytes: int = 256 * 1024,
    ) -> str | None:
        """The last lines of a container's log (or its previous instance's); None when
        there is no such log (the container never restarted, or logs are not kept)."""
        ...

    async def close(self) -> None: ...
