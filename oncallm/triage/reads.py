"""Reads of one triage: bounded, shared, and never fatal.

Every read the gatherer makes goes through here: at most ``concurrency`` at once, one
request per object or list however many pods ask for it in the same round, and a failed
read recorded as a gap ("events for Pod shop/api-1: 403 Forbidden") instead of raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from oncallm.sources.base import ClusterSource, KubeObject, ObjectRef, SourceError
from oncallm.triage.builder import ContextBuilder

T = TypeVar("T")


@dataclass(frozen=True)
class GatherLimits:
    concurrency: int = 8
    max_pods: int = 10
    log_pods: int = 3
    event_pods: int = 5
    tail_lines: int = 200
    limit_bytes: int = 256 * 1024
    stale_after: timedelta = timedelta(minutes=60)


class TriageReads:
    """The read primitives the gatherer walks with; results land in ``self.b``."""

    def __init__(self, source: ClusterSource, limits: GatherLimits, source_name: str) -> None:
        self.source = source
        self.limits = limits
        self.source_name = source_name
        self._bound = asyncio.Semaphore(limits.concurrency)
        self.b: ContextBuilder  # set by run()
        self._events_read: set[ObjectRef] = set()
        self._lists: dict[tuple[str, str | None], asyncio.Future[list[KubeObject]]] = {}
        self._gets: dict[ObjectRef, asyncio.Future[KubeObject | None]] = {}
        self._expanded_pods: set[ObjectRef] = set()

    # --- reads: every one bounded, every failure a gap -------------------------------------

    async def _read(self, what: str, call: Awaitable[T], default: T) -> T:
        async with self._bound:
            try:
                return await call
            except SourceError as exc:
                self.b.add_gap(what, exc.detail)
                return default

    async def _get(self, ref: ObjectRef, distance: int) -> KubeObject | None:
        if self.b.has(ref):
            self.b.add_object(self.b.objects[ref], distance)  # may be closer this time
            return self.b.objects[ref]
        # Several pods of one workload name the same ConfigMap, node or Secret in the
        # same round: one read serves them all.
        pending = self._gets.get(ref)
        if pending is None:
            pending = asyncio.ensure_future(
                self._read(str(ref), self.source.get(ref.kind, ref.name, ref.namespace), None)
            )
            self._gets[ref] = pending
        obj = await pending
        if obj is not None:
            self.b.add_object(obj, distance)
        return obj

    async def _list(
        self, kind: str, namespace: str | None, distance: int | None, **selectors: str
    ) -> list[KubeObject]:
        key_selectors = ",".join(f"{k}={v}" for k, v in sorted(selectors.items()))
        cache_key = (f"{kind}?{key_selectors}", namespace)
        pending = self._lists.get(cache_key)
        if pending is None:
            where = f"{kind} in namespace {namespace}" if namespace else f"{kind} (all namespaces)"
            pending = asyncio.ensure_future(
                self._read(
                    f"list {where}", self.source.list_objects(kind, namespace, **selectors), []
                )
            )
            self._lists[cache_key] = pending
        items = await pending
        for item in items:
            item.setdefault("kind", kind)
        if distance is not None:
            for item in items:
                self.b.add_object(item, distance)
        return items

    async def _all(self, calls: Iterable[Awaitable[Any]]) -> list[Any]:
        return list(await asyncio.gather(*calls))

    def _listed(self) -> list[KubeObject]:
        """Every object of every list read so far (kept or not by the walk)."""
        return [
            obj for pending in self._lists.values() if pending.done() for obj in pending.result()
        ]
