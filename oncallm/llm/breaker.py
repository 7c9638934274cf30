"""A circuit breaker per LLM provider, shared by every triage in the process.

When a provider is down, each triage would otherwise wait out its timeouts and retries
before falling back to the deterministic result. After ``breaker_failures`` consecutive
failed calls the breaker *opens*: calls are refused at once with ``LLMUnavailable`` (no
HTTP request is made) for ``breaker_reset_seconds``. Then it is *half-open*: one call is
let through; its success closes the breaker, its failure opens it again.

A *call* is one logical model request after the transport's retries, so one outage costs
``breaker_failures`` calls, not ``breaker_failures * (1 + retries)``. Only provider failures
count (see ``failures.counts_against_provider``): our own budget refusals and answers that
arrived but did not validate say nothing about the provider's health.

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

from oncallm.config_llm import LLMSettings
from oncallm.errors import LLMUnavailable
from oncallm.llm.failures import counts_against_provider

Clock = Callable[[], float]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Closed → open after N consecutive failures → half-open after a pause → closed.

    ``clock`` returns monotonic seconds; tests pass a fake one. ``is_failure`` decides
    which exceptions count against the provider.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        reset_seconds: float,
        clock: Clock = time.monotonic,
        is_failure: Callable[[BaseException], bool] = counts_against_provider,
    ) -> None:
        self.name = name
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
        """Guard one model request; raises ``LLMUnavailable`` while the breaker is open."""
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
            raise LLMUnavailable(self._refusal())

    def _record(self, *, success: bool | None, trial: bool) -> None:
        """``success`` None: the call ended in a way that says nothing about the provider."""
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


_registry: dict[tuple[str, str], CircuitBreaker] = {}
_registry_lock = threading.Lock()


def breaker_for(provider: str, base_url: str | None, settings: LLMSettings) -> CircuitBreaker:
    """The process-wide breaker of one provider endpoint, created on first use.

    Keyed by (provider, base URL) so two endpoints of one kind (two local servers) fail
    independently. Thresholds follow the latest settings, so a reloaded configuration
    applies without losing the breaker's state.
    """
    key = (provider, base_url or "")
    with _registry_lock:
        breaker = _registry.get(key)
        if breaker is None:
            breaker = CircuitBreaker(
                provider,
                failure_threshold=settings.breaker_failures,
                reset_seconds=settings.breaker_reset_seconds,
            )
            _registry[key] = breaker
        else:
            breaker.failure_threshold = settings.breaker_failures
            breaker.reset_seconds = settings.breaker_reset_seconds
        return breaker


def reset_breakers() -> None:
    """Forget every breaker (tests, or an operator who knows the provider is back)."""
    with _registry_lock:
        _registry.clear()
