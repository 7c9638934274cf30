"""The provider circuit breaker: opens on consecutive failures, refuses without calling,
lets one trial through after the pause, and ignores what is not the provider's fault."""

from __future__ import annotations

import asyncio
import re

import pytest

from oncallm.config_llm import LLMSettings
from oncallm.errors import LLMBudgetExceeded, LLMError, LLMInvalidAnswer, LLMUnavailable
from oncallm.llm.breaker import BreakerState, CircuitBreaker, breaker_for, reset_breakers


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("anthropic", failure_threshold=3, reset_seconds=60, clock=clock)


async def fail(breaker: CircuitBreaker, exc: BaseException | None = None) -> None:
    with pytest.raises(type(exc) if exc else LLMError):
        async with breaker.call():
            raise exc or LLMError("503 service unavailable")


async def succeed(breaker: CircuitBreaker) -> None:
    async with breaker.call():
        pass


async def test_opens_after_consecutive_failures_and_refuses_without_calling(
    breaker: CircuitBreaker,
) -> None:
    for _ in range(2):
        await fail(breaker)
    assert breaker.state is BreakerState.CLOSED
    await fail(breaker)
    assert breaker.state is BreakerState.OPEN

    called = False
    with pytest.raises(LLMUnavailable) as refused:
        async with breaker.call():
            called = True
    assert not called
    assert re.fullmatch(
        r"anthropic circuit open after 3 failures; retrying at \d\d:\d\d:\d\d UTC",
        refused.value.detail,
    )


async def test_a_success_between_failures_keeps_it_closed(breaker: CircuitBreaker) -> None:
    for _ in range(5):
        await fail(breaker)
        await fail(breaker)
        await succeed(breaker)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0


async def test_half_open_lets_one_trial_through_and_success_closes(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(3):
        await fail(breaker)
    clock.advance(59)
    with pytest.raises(LLMUnavailable):
        await succeed(breaker)
    clock.advance(1)
    assert breaker.state is BreakerState.HALF_OPEN

    trial_started = asyncio.Event()
    release = asyncio.Event()

    async def trial() -> None:
        async with breaker.call():
            trial_started.set()
            await release.wait()

    task = asyncio.create_task(trial())
    await trial_started.wait()
    with pytest.raises(LLMUnavailable, match="trial call is in flight"):
        await succeed(breaker)  # a second caller while the trial is out is refused
    release.set()
    await task
    assert breaker.state is BreakerState.CLOSED
    await succeed(breaker)


async def test_a_failed_trial_opens_it_again_for_a_full_pause(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(3):
        await fail(breaker)
    clock.advance(60)
    await fail(breaker)  # the trial
    assert breaker.state is BreakerState.OPEN
    clock.advance(59)
    with pytest.raises(LLMUnavailable, match="after 4 failures"):
        await succeed(breaker)
    clock.advance(1)
    await succeed(breaker)
    assert breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    "exc",
    [
        LLMBudgetExceeded("daily token budget reached"),
        LLMInvalidAnswer("model gave no valid answer"),
        ValueError("a bug in our own code"),
    ],
    ids=["budget", "invalid-answer", "bug"],
)
async def test_what_is_not_the_providers_fault_does_not_count(
    breaker: CircuitBreaker, exc: BaseException
) -> None:
    for _ in range(10):
        await fail(breaker, exc)
    assert breaker.state is BreakerState.CLOSED


async def test_a_cancelled_trial_leaves_room_for_the_next_one(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(3):
        await fail(breaker)
    clock.advance(60)
    with pytest.raises(asyncio.CancelledError):
        async with breaker.call():
            raise asyncio.CancelledError
    assert breaker.state is BreakerState.HALF_OPEN
    await succeed(breaker)
    assert breaker.state is BreakerState.CLOSED


def test_one_breaker_per_provider_endpoint_in_the_process() -> None:
    reset_breakers()
    settings = LLMSettings(provider="openai-compatible", breaker_failures=2)
    local = breaker_for("openai-compatible", "http://localhost:11434/v1", settings)
    assert breaker_for("openai-compatible", "http://localhost:11434/v1", settings) is local
    other = breaker_for("openai-compatible", "http://gpu-box:8000/v1", settings)
    assert other is not local
    assert local.failure_threshold == 2

    # A reloaded configuration changes the thresholds, not the shared breaker.
    reloaded = settings.model_copy(update={"breaker_failures": 7, "breaker_reset_seconds": 5})
    assert breaker_for("openai-compatible", "http://localhost:11434/v1", reloaded) is local
    assert (local.failure_threshold, local.reset_seconds) == (7, 5)
    reset_breakers()
