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

The mechanism is the generic ``oncallm.breaker.CircuitBreaker``; this module binds it to
the LLM error family and keeps the process-wide registry of provider breakers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from oncallm.breaker import BreakerState, Clock
from oncallm.breaker import CircuitBreaker as _CircuitBreaker
from oncallm.config_llm import LLMSettings
from oncallm.errors import LLMUnavailable
from oncallm.llm.failures import counts_against_provider

__all__ = ["BreakerState", "CircuitBreaker", "Clock", "breaker_for", "reset_breakers"]


class CircuitBreaker(_CircuitBreaker):
    """A provider breaker: refuses with ``LLMUnavailable``; counts provider failures only."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        reset_seconds: float,
        clock: Clock = time.monotonic,
        is_failure: Callable[[BaseException], bool] = counts_against_provider,
    ) -> None:
        super().__init__(
            name,
            failure_threshold=failure_threshold,
            reset_seconds=reset_seconds,
            refusal=LLMUnavailable,
            is_failure=is_failure,
            clock=clock,
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
