"""The fake LLM servers speak the real protocols: the official ``openai`` and ``anthropic``
SDKs and pydantic-ai's models run against them unchanged, so tests of OncallM's LLM path
exercise the real client code (tool calls, structured output in every mode, streaming,
rate limits, server errors, timeouts, token usage)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import openai
import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, ModelSettings, NativeOutput, PromptedOutput, ToolOutput
from pydantic_ai.exceptions import (
    ModelConnectionError,
    ModelHTTPError,
    ModelOverloadedError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.azure import AzureProvider
from pydantic_ai.providers.openai import OpenAIProvider

from tests.fakes.anthropic_api import AnthropicFake
from tests.fakes.llm_script import LlmFake, RecordedRequest, ScriptError, estimate_tokens
from tests.fakes.openai_api import Fault, OpenAIFake, Reply

NO_RETRIES = ModelSettings(max_retries=0)


class Verdict(BaseModel):
    category: str
    culprit: str
    confidence: float


VERDICT = Verdict(category="ResourceExhaustion", culprit="Pod/shop/api-7d9", confidence=0.8)


@pytest.fixture(params=["openai", "anthropic"])
def fake(request: pytest.FixtureRequest) -> Iterator[LlmFake]:
    with OpenAIFake() if request.param == "openai" else AnthropicFake() as server:
        yield server


def model_for(fake: LlmFake) -> Model:
    if isinstance(fake, OpenAIFake):
        provider = OpenAIProvider(base_url=fake.base_url, api_key=fake.api_key)
        return OpenAIChatModel("llama3.2", provider=provider)
    provider_a = AnthropicProvider(base_url=fake.base_url, api_key=fake.api_key)
    return AnthropicModel("claude-sonnet-4-6", provider=provider_a)


@pytest.fixture
async def oai_client(oai: OpenAIFake) -> AsyncIterator[openai.AsyncOpenAI]:
    # Closed at the end: an SDK client left to the garbage collector closes its
    # connections from a task that can race new sockets reusing the same descriptors
    # (seen with openai 3.57 / anthropic 2.14 on httpx2: answers left unread until timeout).
    async with openai.AsyncOpenAI(
        base_url=oai.base_url, api_key=oai.api_key, max_retries=0
    ) as client:
        yield client


@pytest.fixture
async def ant_client(ant: AnthropicFake) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=ant.base_url, api_key=ant.api_key, max_retries=0
    ) as client:
        yield client


HELLO: Any = [{"role": "user", "content": "Why is the api pod restarting?"}]


# --- OpenAI SDK ----------------------------------------------------------------------------


async def test_openai_sdk_text_usage_and_models(
    oai: OpenAIFake, oai_client: openai.AsyncOpenAI
) -> None:
    oai.script(Reply.text("It is OOMKilled."))
    answer = await oai_client.chat.completions.create(model="qwen2.5:7b", messages=HELLO)
    assert answer.choices[0].message.content == "It is OOMKilled."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == "qwen2.5:7b"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == estimate_tokens("Why is the api pod restarting?") == 8
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert oai.last.header("authorization") == f"Bearer {oai.api_key}"
    assert oai.last.json["messages"] == HELLO
    assert [m.id async for m in oai_client.models.list()] == oai.models
    unprefixed = oai_client.with_options(base_url=oai.url)  # a base URL without /v1
    oai.script(Reply.json({"ok": True}))
    answer = await unprefixed.chat.completions.create(model="llama3.2", messages=HELLO)
    assert json.loads(answer.choices[0].message.content or "") == {"ok": True}
    assert oai.last.path == "/chat/completions"


async def test_openai_sdk_streams_deltas_before_the_end(
    oai: OpenAIFake, oai_client: openai.AsyncOpenAI
) -> None:
    hold = threading.Event()
    oai.script(Reply.text("The pod ran out of memory at 10:02.", hold=hold, hold_after=1))
    stream = await oai_client.chat.completions.create(
        model="llama3.2", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    deltas: list[str] = []
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            assert chunk.choices == []
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                deltas.append(choice.delta.content)
                # The server sends nothing more until the hold is released: this delta
                # reached the client while the rest of the answer was still unsent.
                if len(deltas) == 1:
                    assert not hold.is_set()
                    hold.set()
    assert len(deltas) > 3
    assert "".join(deltas) == "The pod ran out of memory at 10:02."
    assert usage is not None
    assert usage.prompt_tokens == 8


async def test_openai_sdk_streams_tool_call_arguments_in_pieces(
    oai: OpenAIFake, oai_client: openai.AsyncOpenAI
) -> None:
    args = {"kind": "Pod", "namespace": "shop", "name": "api-7d9"}
    oai.script(Reply.tool_call("get_object", args, id="call_1"))
    stream = await oai_client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
    pieces, names, finish = [], [], None
    async for chunk in stream:
        assert chunk.usage is None  # only sent when stream_options.include_usage asks
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names.append((call.id, call.function.name))
                if call.function and call.function.arguments:
                    pieces.append(call.function.arguments)
    assert names == [("call_1", "get_object")]
    assert len(pieces) >= 3
    assert json.loads("".join(pieces)) == args
    assert finish == "tool_calls"


async def test_openai_sdk_errors_keep_openai_shape(
    oai: OpenAIFake, oai_client: openai.AsyncOpenAI
) -> None:
    oai.script(Fault.status(429, retry_after=1), Fault.status(500), Reply.text("recovered"))
    with pytest.raises(openai.RateLimitError) as limited:
        await oai_client.chat.completions.create(model="llama3.2", messages=HELLO)
    assert limited.value.response.headers["retry-after"] == "1"
    assert limited.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError) as failed:
        await oai_client.chat.completions.create(model="llama3.2", messages=HELLO)
    assert (failed.value.status_code, failed.value.type) == (500, "server_error")
    answer = await oai_client.chat.completions.create(model="llama3.2", messages=HELLO)
    assert answer.choices[0].message.content == "recovered"
    with pytest.raises(openai.AuthenticationError) as refused:
        await oai_client.with_options(api_key="sk-wrong").models.list()
    assert refused.value.code == "invalid_api_key"


async def test_openai_sdk_timeout_disconnect_and_exhausted_script(
    oai: OpenAIFake, oai_client: openai.AsyncOpenAI
) -> None:
    oai.script(Fault.delay(5.0), Fault.disconnect())
    client = oai_client.with_options(timeout=0.3)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="llama3.2", messages=HELLO)
    assert time.monotonic() - started < 3
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="llama3.2", messages=HELLO)
    with pytest.raises(openai.InternalServerError, match="fake LLM: no scripted reply left"):
        await client.chat.completions.create(model="llama3.2", messages=HELLO)
    assert oai.pending == 0
    assert len(oai.calls) == 3


async def test_openai_stream_cut_off_midway_is_a_connection_error(
    oai: OpenAIFake, oai_client: openai.AsyncOpenAI
) -> None:
    oai.script(Fault.disconnect(after_events=3))
    stream = await oai_client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
    received: list[Any] = []

    async def read_all() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises(openai.APIConnectionError):
        await read_all()
    assert len(received) == 3


async def test_concurrent_requests_each_take_one_scripted_reply(
    oai: OpenAIFake, oai_client: openai.AsyncOpenAI
) -> None:
    oai.script(*(Reply.text(f"answer {n}") for n in range(20)))
    oai.latency = 0.05
    answers = await asyncio.gather(
        *(oai_client.chat.completions.create(model="llama3.2", messages=HELLO) for _ in range(20))
    )
    texts = sorted(a.choices[0].message.content or "" for a in answers)
    assert texts == sorted(f"answer {n}" for n in range(20))
    assert oai.pending == 0
    assert len(oai.calls) == 20


# --- Anthropic SDK -------------------------------------------------------------------------


async def test_anthropic_sdk_text_tool_use_and_usage(
    ant: AnthropicFake, ant_client: anthropic.AsyncAnthropic
) -> None:
    ant.script(
        Reply.text("It is OOMKilled.", prompt_tokens=321, completion_tokens=12),
        Reply.tool_call("get_events", {"namespace": "shop"}, text="Checking events."),
    )
    answer = await ant_client.messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=HELLO
    )
    assert answer.content[0].type == "text"
    assert answer.content[0].text == "It is OOMKilled."
    assert (answer.stop_reason, answer.model) == ("end_turn", "claude-haiku-4-5")
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (321, 12)
    assert ant.last.header("anthropic-version")
    assert [m.id async for m in ant_client.models.list()] == ant.models
    answer = await ant_client.messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=HELLO
    )
    assert answer.stop_reason == "tool_use"
    tool_use = answer.content[1]
    assert tool_use.type == "tool_use"
    assert (tool_use.name, tool_use.input) == ("get_events", {"namespace": "shop"})


async def test_anthropic_sdk_streams_the_real_event_sequence(
    ant: AnthropicFake, ant_client: anthropic.AsyncAnthropic
) -> None:
    hold = threading.Event()
    args = {"pod": "api-7d9", "tail": 50}
    ant.script(Reply.tool_call("get_logs", args, text="Let me read the logs.", hold=hold))
    kinds: list[str] = []
    text: list[str] = []
    async with ant_client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=100, messages=HELLO
    ) as stream:
        async for event in stream:
            kinds.append(event.type)
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text.append(event.delta.text)
                if len(text) == 1:
                    # The server holds the rest until this is set: the first delta
                    # reached the client while the rest of the answer was unsent.
                    assert not hold.is_set()
                    hold.set()
        message = await stream.get_final_message()
    raw = [k for k in kinds if k not in ("text", "input_json")]  # the SDK's derived events
    assert raw[0] == "message_start"
    assert raw[-2:] == ["message_delta", "message_stop"]
    assert raw.count("content_block_start") == raw.count("content_block_stop") == 2
    assert kinds.count("input_json") >= 3
    assert len(text) >= 3
    assert "".join(text) == "Let me read the logs."
    assert message.content[1].type == "tool_use"
    assert message.content[1].input == args
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == 8


async def test_anthropic_sdk_errors_keep_anthropic_shape(
    ant: AnthropicFake, ant_client: anthropic.AsyncAnthropic
) -> None:
    ant.script(Fault.status(429, retry_after=2), Fault.overloaded(), Fault.delay(5.0))
    client = ant_client.with_options(timeout=0.3)
    with pytest.raises(anthropic.RateLimitError) as limited:
        await client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=HELLO)
    assert limited.value.response.headers["retry-after"] == "2"
    assert limited.value.body == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "Number of request tokens has exceeded your rate limit.",
        },
    }
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        await client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=HELLO)
    assert overloaded.value.status_code == 529
    with pytest.raises(anthropic.APITimeoutError):
        await client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=HELLO)
    with pytest.raises(anthropic.AuthenticationError):
        await ant_client.with_options(api_key="sk-ant-wrong").messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=HELLO
        )


# --- pydantic-ai, both protocols -----------------------------------------------------------


async def test_agent_text_and_usage_as_the_fake_reported(fake: LlmFake) -> None:
    fake.script(Reply.text("The api pod is OOMKilled.", prompt_tokens=1234, completion_tokens=56))
    fake.script(Reply.text("Still OOMKilled."))
    agent = Agent(model_for(fake), instructions="You are an SRE.")
    result = await agent.run("Why is the api pod restarting?", model_settings=NO_RETRIES)
    assert result.output == "The api pod is OOMKilled."
    assert (result.usage.input_tokens, result.usage.output_tokens) == (1234, 56)
    result = await agent.run("And now?", model_settings=NO_RETRIES)
    estimated = estimate_tokens(fake.last.prompt_text)
    assert result.usage.input_tokens == estimated > 0
    assert "You are an SRE." in fake.last.prompt_text
    assert b"And now?" in fake.bodies()[-1]


async def test_agent_tool_call_round_trip(fake: LlmFake) -> None:
    fake.script(
        Reply.tool_call("get_object", {"kind": "Pod", "name": "api-7d9"}, id="call_42"),
        Reply.text("The pod was OOMKilled: its limit is 128Mi."),
    )
    agent = Agent(model_for(fake))
    looked_up: list[tuple[str, str]] = []

    @agent.tool_plain
    def get_object(kind: str, name: str) -> str:
        """Read one Kubernetes object."""
        looked_up.append((kind, name))
        return "lastState: OOMKilled, limits.memory: 128Mi"

    result = await agent.run("Why is api-7d9 restarting?", model_settings=NO_RETRIES)
    assert result.output == "The pod was OOMKilled: its limit is 128Mi."
    assert looked_up == [("Pod", "api-7d9")]
    first, second = fake.calls
    assert "get_object" in first.tool_names
    assert not first.tool_results
    [tool_result] = second.tool_results
    assert tool_result.call_id == "call_42"
    assert "limits.memory: 128Mi" in tool_result.text


@pytest.mark.parametrize("mode", ["tool", "native", "prompted"])
async def test_agent_structured_output_in_every_mode(fake: LlmFake, mode: str) -> None:
    output: Any = {
        "tool": ToolOutput(Verdict),
        "native": NativeOutput(Verdict),
        "prompted": PromptedOutput(Verdict),
    }[mode]
    fake.script(Reply.output(VERDICT))
    result = await Agent(model_for(fake), output_type=output).run(
        "Triage this alert.", model_settings=NO_RETRIES
    )
    assert result.output == VERDICT
    request = fake.last
    if mode == "tool":
        assert request.tool_names == ["final_result"]
    else:
        assert request.tool_names == []
    if mode == "native" and isinstance(fake, OpenAIFake):
        assert request.body["response_format"]["type"] == "json_schema"
    if mode == "native" and isinstance(fake, AnthropicFake):
        assert request.body["output_config"]["format"]["type"] == "json_schema"


async def test_agent_responder_answers_from_the_request(fake: LlmFake) -> None:
    def responder(request: RecordedRequest) -> Reply:
        if not request.tool_results:
            return Reply.tool_call("get_events", {"namespace": "shop"})
        return Reply.output(VERDICT)

    fake.respond_with(responder)
    agent = Agent(model_for(fake), output_type=Verdict)

    @agent.tool_plain
    def get_events(namespace: str) -> list[str]:
        """Recent events in a namespace."""
        return [f"{namespace}: Back-off restarting failed container"]

    result = await agent.run("Triage this alert.", model_settings=NO_RETRIES)
    assert result.output == VERDICT
    assert len(fake.calls) == 2
    assert "Back-off restarting" in fake.calls[1].tool_results[0].text


async def test_a_broken_script_fails_readably(
    oai: OpenAIFake, oai_client: openai.AsyncOpenAI
) -> None:
    def responder(request: RecordedRequest) -> Reply:
        raise KeyError("severity")

    oai.script(Reply.output(VERDICT, tool="final_result_Verdict"))
    oai.respond_with(responder)
    with pytest.raises(openai.InternalServerError, match="offers no tool 'final_result_Verdict'"):
        await oai_client.chat.completions.create(model="llama3.2", messages=HELLO)
    with pytest.raises(openai.InternalServerError, match="fake LLM: KeyError\\('severity'\\)"):
        await oai_client.chat.completions.create(model="llama3.2", messages=HELLO)
    assert [type(e) for e in oai.errors] == [ScriptError, KeyError]


async def test_agent_streams_text_deltas(fake: LlmFake) -> None:
    text = "The api pod restarts because its memory limit is too low for the cache."
    fake.script(Reply.text(text, prompt_tokens=77, completion_tokens=15))
    agent = Agent(model_for(fake))
    async with agent.run_stream("Explain.", model_settings=NO_RETRIES) as run:
        deltas = [d async for d in run.stream_text(delta=True, debounce_by=None)]
    assert len(deltas) >= 5
    assert "".join(deltas) == text
    assert fake.last.stream
    assert (run.usage.input_tokens, run.usage.output_tokens) == (77, 15)


async def test_agent_sees_rate_limit_with_retry_after_and_server_errors(fake: LlmFake) -> None:
    fake.script(Fault.status(429, retry_after=1), Fault.status(500), Fault.overloaded())
    agent = Agent(model_for(fake))
    with pytest.raises(ModelRateLimitError) as limited:
        await agent.run("Triage.", model_settings=NO_RETRIES)
    assert limited.value.retry_after == 1
    assert isinstance(limited.value, ModelHTTPError)
    assert limited.value.status_code == 429
    assert limited.value.headers is not None
    assert limited.value.headers["retry-after"] == "1"
    with pytest.raises(ModelHTTPError) as failed:
        await agent.run("Triage.", model_settings=NO_RETRIES)
    assert failed.value.status_code == 500
    with pytest.raises(ModelOverloadedError):
        await agent.run("Triage.", model_settings=NO_RETRIES)


async def test_agent_client_timeout_and_dropped_connection(fake: LlmFake) -> None:
    fake.script(Fault.delay(5.0), Fault.disconnect(), Fault.disconnect(after_events=4))
    agent = Agent(model_for(fake))
    settings = ModelSettings(max_retries=0, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(ModelTimeoutError):
        await agent.run("Triage.", model_settings=settings)
    assert time.monotonic() - started < 3
    with pytest.raises(ModelConnectionError):
        await agent.run("Triage.", model_settings=settings)
    with pytest.raises(ModelConnectionError):
        async with agent.run_stream("Triage.", model_settings=settings) as run:
            await run.get_output()


# --- Azure OpenAI --------------------------------------------------------------------------


async def test_azure_provider_reaches_the_deployment(oai: OpenAIFake) -> None:
    oai.script(Reply.output(VERDICT))
    provider = AzureProvider(azure_endpoint=oai.url, api_version="2024-10-21", api_key=oai.api_key)
    agent = Agent(OpenAIChatModel("oncallm-strong", provider=provider), output_type=Verdict)
    result = await agent.run("Triage this alert.", model_settings=NO_RETRIES)
    assert result.output == VERDICT
    assert oai.deployments() == ["oncallm-strong"]
    request = oai.last
    assert request.path == "/openai/deployments/oncallm-strong/chat/completions"
    assert request.query["api-version"] == "2024-10-21"
    assert request.header("api-key") == oai.api_key
    assert result.response.model_name == "oncallm-strong"
