"""The model client against protocol-level fakes of OpenAI(-compatible), Azure OpenAI and
Anthropic: retries honour Retry-After (streamed requests too), a persistent outage ends in
one readable LLMError after max_retries+1 attempts, a slow server times out per attempt,
and an open breaker refuses without sending anything."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic_ai import Agent

from oncallm.config_llm import LLMSettings
from oncallm.errors import LLMError, LLMUnavailable
from oncallm.llm.breaker import reset_breakers
from oncallm.llm.providers import LLMClient, build_llm_client
from tests.fakes.anthropic_api import AnthropicFake
from tests.fakes.llm_script import LlmFake
from tests.fakes.openai_api import Fault, OpenAIFake, Reply


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    reset_breakers()
    yield
    reset_breakers()


@pytest.fixture(params=["openai-compatible", "anthropic"])
def fake(request: pytest.FixtureRequest) -> Iterator[LlmFake]:
    with OpenAIFake() if request.param == "openai-compatible" else AnthropicFake() as server:
        yield server


def settings_for(fake: LlmFake, **values: Any) -> LLMSettings:
    if isinstance(fake, AnthropicFake):
        values = {"provider": "anthropic", "base_url": fake.base_url, **values}
        values.setdefault("models", {"fast": "claude-haiku-4-5", "strong": "claude-haiku-4-5"})
    else:
        assert isinstance(fake, OpenAIFake)
        values = {"provider": "openai-compatible", "base_url": fake.base_url, **values}
        values.setdefault("models", {"fast": "llama3.2", "strong": "llama3.2"})
    values.setdefault("api_key", fake.api_key)
    values.setdefault("retry_max_wait_seconds", 0.2)
    return LLMSettings.model_validate(values)


def client_for(llm: LLMSettings) -> LLMClient:
    client = build_llm_client(llm)
    assert client is not None
    return client


async def ask(client: LLMClient, *, stream: bool = False) -> str:
    agent: Agent[None, str] = Agent(client.model("strong"))
    async with client.request("strong"):
        if not stream:
            return (await agent.run("Is the pod healthy?")).output
        async with agent.run_stream("Is the pod healthy?") as run:
            return await run.get_output()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_429_is_retried_after_its_retry_after(fake: LlmFake, stream: bool) -> None:
    fake.script(Fault.status(429, retry_after=1), Reply.text("The pod is healthy."))
    async with client_for(settings_for(fake, retry_max_wait_seconds=5)) as client:
        started = time.monotonic()
        assert await ask(client, stream=stream) == "The pod is healthy."
        elapsed = time.monotonic() - started
    assert len(fake.calls) == 2
    # pydantic-ai streams every Anthropic request; OpenAI ones only when asked to.
    streamed = stream or isinstance(fake, AnthropicFake)
    assert [c.stream for c in fake.calls] == [streamed, streamed]
    assert elapsed >= 1.0


async def test_retry_after_is_capped_by_retry_max_wait(oai: OpenAIFake) -> None:
    oai.script(Fault.status(429, retry_after=30), Reply.text("ok"))
    async with client_for(settings_for(oai, retry_max_wait_seconds=0.2)) as client:
        started = time.monotonic()
        assert await ask(client) == "ok"
        assert time.monotonic() - started < 5


async def test_server_error_is_retried_then_answered(fake: LlmFake) -> None:
    fake.script(Fault.status(500), Reply.text("ok"))
    async with client_for(settings_for(fake)) as client:
        assert await ask(client) == "ok"
    assert len(fake.calls) == 2


async def test_anthropic_overloaded_is_retried(ant: AnthropicFake) -> None:
    ant.script(Fault.overloaded(), Reply.text("ok"))
    async with client_for(settings_for(ant)) as client:
        assert await ask(client) == "ok"
    assert len(ant.calls) == 2


async def test_a_dropped_connection_is_retried(oai: OpenAIFake) -> None:
    oai.script(Fault.disconnect(), Reply.text("ok"))
    async with client_for(settings_for(oai)) as client:
        assert await ask(client) == "ok"
    assert len(oai.calls) == 2


async def test_persistent_server_error_is_one_llm_error_after_all_attempts(
    fake: LlmFake,
) -> None:
    fake.respond_with(lambda _request: Fault.status(500))
    llm = settings_for(fake, max_retries=2)
    async with client_for(llm) as client:
        with pytest.raises(LLMError) as failed:
            await ask(client)
    assert len(fake.calls) == 3
    assert failed.value.detail == (
        f"{llm.provider.value} at {fake.base_url}: 500 server error after 2 retries"
    )


async def test_a_slow_server_times_out_per_attempt(oai: OpenAIFake) -> None:
    oai.respond_with(lambda _request: Fault.delay(5))
    llm = settings_for(oai, timeout_seconds=0.5, max_retries=1, retry_max_wait_seconds=0.1)
    async with client_for(llm) as client:
        started = time.monotonic()
        with pytest.raises(LLMError) as failed:
            await ask(client)
        elapsed = time.monotonic() - started
    assert len(oai.calls) == 2
    assert 1.0 <= elapsed < 2.5  # two attempts of 0.5 s and a short wait between them
    assert failed.value.detail == (
        f"openai-compatible at {oai.base_url}: timed out after 0.5 s after 1 retry"
    )


async def test_the_breaker_opens_and_then_refuses_without_a_request(fake: LlmFake) -> None:
    fake.respond_with(lambda _request: Fault.status(503))
    llm = settings_for(fake, max_retries=0, breaker_failures=2, breaker_reset_seconds=60)
    async with client_for(llm) as client:
        for _ in range(2):
            with pytest.raises(LLMError, match="503 service unavailable"):
                await ask(client)
        with pytest.raises(LLMUnavailable, match="circuit open after 2 failures; retrying at"):
            await ask(client)
    assert len(fake.calls) == 2

    # Every client of this endpoint in the process shares the open breaker.
    async with client_for(llm) as another:
        with pytest.raises(LLMUnavailable):
            await ask(another)
    assert len(fake.calls) == 2


async def test_azure_calls_the_deployment_with_the_api_key_and_version(oai: OpenAIFake) -> None:
    llm = LLMSettings(
        provider="azure-openai",
        base_url=oai.url,
        api_key=oai.api_key,
        api_version="2024-10-21",
        models={"fast": "mini-prod", "strong": "reasoning-prod"},
    )
    oai.script(Reply.text("ok"))
    async with client_for(llm) as client:
        assert await ask(client) == "ok"
    call = oai.last
    assert call.path == "/openai/deployments/reasoning-prod/chat/completions"
    assert call.query["api-version"] == "2024-10-21"
    assert call.header("api-key") == oai.api_key


async def test_azure_with_a_wrong_key_says_so_without_the_key(oai: OpenAIFake) -> None:
    wrong = "azure-key-that-is-wrong-123456"
    llm = LLMSettings(
        provider="azure-openai",
        base_url=oai.url,
        api_key=wrong,
        models={"fast": "mini-prod", "strong": "reasoning-prod"},
        max_retries=3,
    )
    async with client_for(llm) as client:
        with pytest.raises(LLMError) as failed:
            await ask(client)
    assert failed.value.detail == f"azure-openai at {oai.url}: 401 unauthorized: check llm.api_key"
    assert len(oai.calls) == 1  # not retried


async def test_anthropic_sends_the_key_and_version(ant: AnthropicFake) -> None:
    ant.script(Reply.text("ok"))
    async with client_for(settings_for(ant)) as client:
        assert await ask(client) == "ok"
    call = ant.last
    # The anthropic SDK 2.x sends the key as a bearer token; 1.x sent x-api-key.
    sent = call.header("x-api-key") or (call.header("authorization") or "")[7:]
    assert sent == ant.api_key
    assert call.header("anthropic-version")


async def test_anthropic_with_a_wrong_key_says_so_without_the_key(ant: AnthropicFake) -> None:
    llm = settings_for(ant, api_key="sk-ant-wrong-0123456789")
    async with client_for(llm) as client:
        with pytest.raises(LLMError) as failed:
            await ask(client)
    assert failed.value.detail == (
        f"anthropic at {ant.base_url}: 401 unauthorized: check llm.api_key"
    )


async def test_an_unknown_local_model_is_named(oai: OpenAIFake) -> None:
    oai.script(Fault.status(404, message="model 'llama9' not found, try pulling it first"))
    llm = settings_for(oai, models={"fast": "llama9", "strong": "llama9"})
    async with client_for(llm) as client:
        with pytest.raises(LLMError) as failed:
            await ask(client)
    assert failed.value.detail == (
        f"openai-compatible at {oai.base_url}: model 'llama9' not found (404) — "
        "check llm.models and llm.base_url"
    )


async def test_a_stream_cut_off_midway_is_reported_not_replayed(oai: OpenAIFake) -> None:
    # Retrying would repeat the part already streamed to the user; the transport only
    # retries before the answer starts.
    oai.script(Fault.disconnect(after_events=2, then=Reply.text("The pod was OOMKilled twice.")))
    async with client_for(settings_for(oai)) as client:
        with pytest.raises(LLMError) as failed:
            await ask(client, stream=True)
    assert len(oai.calls) == 1
    assert failed.value.detail == (
        f"openai-compatible at {oai.base_url}: connection dropped before the answer was complete"
    )
