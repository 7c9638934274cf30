"""What the reasoner needs from the rest of OncallM, as Protocols, plus in-memory versions.

The worker backs these with the database (``oncallm.store.llm``) so budgets, the answer
cache and the explanation stream are shared by every process; ``oncallm triage`` and unit
tests use the in-memory versions below. The reasoner imports neither store nor API.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

# Receives the explanation as it is produced, in order, already mapped back from
# placeholders. Called with small pieces of text; never with an empty string.
ExplanationSink = Callable[[str], Awaitable[None]]


async def discard_explanation(_delta: str) -> None:
    return None


@dataclass(frozen=True)
class UsageRecord:
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    triage_id: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageBook(Protocol):
    """Tokens spent, for the daily budget; one record per reasoned triage."""

    async def spent_since(self, since: datetime) -> int:
        """Total tokens recorded at or after ``since``."""
        ...

    async def record(self, usage: UsageRecord) -> None: ...


class AnswerCache(Protocol):
    """Earlier answers keyed by a hash of (provider, model, prompt version, prompt)."""

    async def get(self, key: str) -> dict[str, Any] | None:
        """The stored value, or None when absent or older than its TTL."""
        ...

    async def put(self, key: str, value: dict[str, Any], ttl_seconds: int) -> None: ...


def utc_midnight(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class MemoryUsageBook:
    def __init__(self) -> None:
        self.records: list[tuple[datetime, UsageRecord]] = []

    async def spent_since(self, since: datetime) -> int:
        return sum(r.total_tokens for at, r in self.records if at >= since)

    async def record(self, usage: UsageRecord) -> None:
        self.records.append((datetime.now(UTC), usage))


class MemoryAnswerCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._values: dict[str, tuple[float, dict[str, Any]]] = {}

    async def get(self, key: str) -> dict[str, Any] | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            del self._values[key]
            return None
        return value

    async def put(self, key: str, value: dict[str, Any], ttl_seconds: int) -> None:
        if ttl_seconds > 0:
            self._values[key] = (self._clock() + ttl_seconds, value)
