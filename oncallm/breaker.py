"""A circuit breaker for one remote dependency (an LLM provider, a Prometheus endpoint).

When a dependency is down, each caller would otherwise wait out its timeouts and retries.
After ``failure_threshold`` consecutive failed calls the breaker *opens*: calls are refused
at once (no request is made) for ``reset_seconds``. Then it is *half-open*: one call is let
through; its success closes the breaker, its failure opens it again.

The caller decides what a refusal looks like (``refusal``: the exception class of its own
error family) and which exceptions are the dependency's fault (``is_failure``): a query
rejected as malformed or a token budget running out says nothing about the service's
health and must not open the breaker.

Written here rather than taken from a library: aiobreaker, the asyncio port of pybreaker,
has been unmaintained since 2021, and pybreaker's async support goes through Tornado.
What we need is ~100 lines with an injectable clock, which keeps the tests instant.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum

__all__ = ["BreakerState", "CircuitBreaker", "Clock"]

Clock = Callable[[], float]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Closed → open after N consecutive failures → half-open after a pause → closed.

    ``refusal`` builds the exception raised while open from a readable reason (the LLM
    client passes ``LLMUnavailable``, a metrics source ``MetricsError``). ``is_failure``
    decides which exceptions count against the guarded service: only the caller knows
    which of its errors are the service's fault. ``clock`` returns monotonic seconds;
    tests pass a fake one.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        reset_seconds: float,
        refusal: Callable[[str], Exception],
        is_failure: Callable[[BaseException], bool],
        clock: Clock = time.monotonic,
    ) -> None:
        self.name = name
        self._refuse = refusal
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._is_failure = is_failure
        # Worker threads may share a breaker (sync CLI paths, thread pools); every state
        # change happens under this lock and never across an await.
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        """Guard one request; raises the ``refusal`` exception while the breaker is open."""
        trial = self._admit()
        try:
            yield
        except BaseException as exc:
            self._record(success=False if self._is_failure(exc) else None, trial=trial)
            raise
        self._record(success=True, trial=trial)

    def reset(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def _admit(self) -> bool:
        """Let a call through or refuse it; True when it is the half-open trial call."""
        with self._lock:
            state = self._state()
            if state is BreakerState.CLOSED:
                return False
            if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            raise self._refuse(self._refusal())

    def _record(self, *, success: bool | None, trial: bool) -> None:
        """``success`` None: the call ended in a way that says nothing about the service."""
        with self._lock:
            if trial:
                self._trial_in_flight = False
            if success is None:
                return
            if success:
                self._failures = 0
                self._opened_at = None
                return
            self._failures += 1
            if trial or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()

    def _refusal(self) -> str:
        assert self._opened_at is not None
        remaining = max(0.0, self._opened_at + self.reset_seconds - self._clock())
        if remaining == 0.0:  # half-open, and the one trial call has not come back yet
            return (
                f"{self.name} circuit half-open after {self._failures} failures; "
                "a trial call is in flight"
            )
        retry_at = datetime.now(UTC) + timedelta(seconds=remaining)
        return (
            f"{self.name} circuit open after {self._failures} failures; "
            f"retrying at {retry_at:%H:%M:%S} UTC"
        )
