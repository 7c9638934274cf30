"""The model client from settings: which wire API, URL, credentials and model each provider
uses, how structured output is asked for, how retries behave, and what failures read like.

The provider SDKs run for real over an ``httpx2.MockTransport`` placed under our retry
layer, so what is asserted is what would go on the wire.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput, PromptedOutput, ToolOutput
from pydantic_ai.exceptions import (
    ModelHTTPError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from tenacity import RetryCallState

from oncallm.config_llm import LLMSettings
from oncallm.errors import LLMBudgetExceeded, LLMError, LLMInvalidAnswer, LLMUnavailable
from oncallm.llm.breaker import CircuitBreaker
from oncallm.llm.failures import ATTEMPTS_ATTR, as_llm_error
from oncallm.llm.providers import LLMClient, build_llm_client, retry_config

KEY = "sk-test-0123456789abcdef"

Handler = Callable[[httpx2.Request], httpx2.Response]


class Wire:
    """A fake network: records every request, answers with ``handler``."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.requests: list[httpx2.Request] = []
        self.handler = handler or answer_ok

    def transport(self) -> httpx2.MockTransport:
        def handle(request: httpx2.Request) -> httpx2.Response:
            self.requests.append(request)
            return self.handler(request)

        return httpx2.MockTransport(handle)


def anthropic_stream(text: str) -> bytes:
    """The Messages API's SSE events for a one-block text answer."""
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude",
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": 12, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def answer_ok(request: httpx2.Request) -> httpx2.Response:
    if request.url.path.endswith("/messages"):  # Anthropic: pydantic-ai always streams
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=anthropic_stream("ok")
        )
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "ok"},
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
        },
    )


def settings(**values: Any) -> LLMSettings:
    values.setdefault("provider", "openai-compatible")
    values.setdefault("retry_max_wait_seconds", 0)
    return LLMSettings.model_validate(values)


def client_for(llm: LLMSettings, wire: Wire) -> LLMClient:
    breaker = CircuitBreaker("test", failure_threshold=2, reset_seconds=60)
    client = build_llm_client(llm, transport=wire.transport(), breaker=breaker)
    assert client is not None
    return client


@pytest.fixture
def wire() -> Wire:
    return Wire()


async def ask(client: LLMClient, tier: str = "strong") -> str:
    agent: Agent[None, str] = Agent(client.model(tier))  # type: ignore[arg-type]
    async with client.request(tier):  # type: ignore[arg-type]
        return (await agent.run("hello")).output


def test_provider_none_builds_no_client() -> None:
    assert build_llm_client(LLMSettings()) is None


async def test_local_server_default_url_and_placeholder_key(wire: Wire) -> None:
    client = client_for(settings(), wire)
    assert isinstance(client.model("strong"), OpenAIChatModel)
    assert await ask(client) == "ok"
    request = wire.requests[0]
    assert str(request.url) == "http://localhost:11434/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer not-needed"
    assert b'"model":"llama3.1:8b"' in request.content
    await client.aclose()


async def test_local_server_with_its_own_url_key_and_models(wire: Wire) -> None:
    llm = settings(
        base_url="http://gpu-box:8000/v1/",
        api_key="local-token",
        models={"fast": "qwen2.5:7b", "strong": "qwen2.5:32b"},
    )
    client = client_for(llm, wire)
    await ask(client, "fast")
    await ask(client, "strong")
    assert [str(r.url) for r in wire.requests] == ["http://gpu-box:8000/v1/chat/completions"] * 2
    assert wire.requests[0].headers["authorization"] == "Bearer local-token"
    assert b'"model":"qwen2.5:7b"' in wire.requests[0].content
    assert b'"model":"qwen2.5:32b"' in wire.requests[1].content
    assert client.model("fast") is client.model("fast")
    assert client.model("fast") is not client.model("strong")


async def test_openai_uses_the_public_api_and_the_key(wire: Wire) -> None:
    client = client_for(settings(provider="openai", api_key=KEY), wire)
    await ask(client)
    request = wire.requests[0]
    assert str(request.url) == "https://api.openai.com/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert client.model_name("fast") == "gpt-4.1-mini"
    assert client.model_name("strong") == "gpt-4.1"


async def test_azure_calls_the_deployment_with_api_key_header_and_version(wire: Wire) -> None:
    llm = settings(
        provider="azure-openai",
        api_key=KEY,
        base_url="https://oncall.openai.azure.com/",
        api_version="2024-10-21",
        models={"fast": "mini-prod", "strong": "reasoning-prod"},
    )
    client = client_for(llm, wire)
    assert isinstance(client.model("strong"), OpenAIChatModel)
    await ask(client)
    request = wire.requests[0]
    assert request.url.host == "oncall.openai.azure.com"
    assert request.url.path == "/openai/deployments/reasoning-prod/chat/completions"
    assert request.url.params["api-version"] == "2024-10-21"
    assert request.headers["api-key"] == KEY


async def test_anthropic_uses_the_messages_api_and_the_key(wire: Wire) -> None:
    client = client_for(settings(provider="anthropic", api_key=KEY), wire)
    assert isinstance(client.model("strong"), AnthropicModel)
    await ask(client)
    request = wire.requests[0]
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    # anthropic SDK 2.x sends the key as a bearer token (1.x: x-api-key).
    assert KEY in (request.headers.get("x-api-key"), request.headers.get("authorization", "")[7:])
    assert b'"model":"claude-sonnet-4-6"' in request.content


class Answer(BaseModel):
    summary: str


@pytest.mark.parametrize(
    ("provider", "mode", "expected"),
    [
        ("openai-compatible", "auto", NativeOutput),
        ("openai", "auto", ToolOutput),
        ("anthropic", "auto", ToolOutput),
        ("anthropic", "native", NativeOutput),
        ("openai-compatible", "tool", ToolOutput),
        ("openai", "prompted", PromptedOutput),
    ],
)
def test_output_spec_follows_the_output_mode(provider: str, mode: str, expected: type) -> None:
    extra = {} if provider == "openai-compatible" else {"api_key": KEY}
    client = client_for(settings(provider=provider, output_mode=mode, **extra), Wire())
    spec = client.output_spec(Answer)
    assert isinstance(spec, expected)


async def test_native_output_is_allowed_for_any_local_model(wire: Wire) -> None:
    """pydantic-ai refuses NativeOutput for a model whose profile does not claim JSON-schema
    support; local servers support it whatever the model, so ours claims it."""
    client = client_for(settings(models={"strong": "meta-llama/Llama-3.1-8B-Instruct"}), wire)
    wire.handler = lambda r: answer_ok(r)
    agent = Agent(client.model("strong"), output_type=client.output_spec(Answer))
    with pytest.raises(UnexpectedModelBehavior):  # "ok" is not JSON, but it was asked for
        await agent.run("hello")
    assert b'"response_format"' in wire.requests[0].content
    assert b'"json_schema"' in wire.requests[0].content


def statuses(*codes: int, headers: dict[str, str] | None = None) -> Handler:
    """Answer with these statuses in turn, then OK."""
    remaining = list(codes)

    def handler(request: httpx2.Request) -> httpx2.Response:
        if remaining:
            code = remaining.pop(0)
            return httpx2.Response(code, headers=headers, json={"error": {"message": "no"}})
        return answer_ok(request)

    return handler


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 529])
async def test_transient_statuses_are_retried_by_our_transport_only(status: int) -> None:
    wire = Wire(statuses(status, status))
    client = client_for(settings(max_retries=2), wire)
    assert await ask(client) == "ok"
    assert len(wire.requests) == 3
    # The SDK never retried on its own: every request is its first attempt.
    assert {r.headers["x-stainless-retry-count"] for r in wire.requests} == {"0"}


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_client_errors_are_not_retried(status: int) -> None:
    wire = Wire(statuses(status))
    client = client_for(settings(max_retries=3), wire)
    with pytest.raises(LLMError):
        await ask(client)
    assert len(wire.requests) == 1


async def test_persistent_server_error_gives_up_after_max_retries() -> None:
    wire = Wire(statuses(*[500] * 10))
    client = client_for(settings(provider="anthropic", api_key=KEY, max_retries=3), wire)
    with pytest.raises(LLMError) as failed:
        await ask(client)
    assert len(wire.requests) == 4
    assert failed.value.detail == (
        "anthropic at https://api.anthropic.com: 500 server error after 3 retries"
    )


async def test_the_breaker_refuses_without_any_request_once_open() -> None:
    wire = Wire(statuses(*[503] * 10))
    client = client_for(settings(max_retries=0), wire)  # breaker opens after 2 failures
    for _ in range(2):
        with pytest.raises(LLMError, match="503 service unavailable"):
            await ask(client)
    with pytest.raises(LLMUnavailable, match="circuit open after 2 failures"):
        await ask(client)
    assert len(wire.requests) == 2


async def test_a_bug_inside_a_request_is_neither_translated_nor_counted(wire: Wire) -> None:
    client = client_for(settings(), wire)
    for _ in range(3):
        with pytest.raises(KeyError):
            async with client.request():
                raise KeyError("bug")
    assert client.breaker.consecutive_failures == 0


async def test_a_refused_connection_says_to_start_the_server() -> None:
    # A port nothing listens on: bind one, then close it.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = settings(base_url=f"http://127.0.0.1:{port}/v1", max_retries=3)
    client = build_llm_client(
        llm, breaker=CircuitBreaker("t", failure_threshold=9, reset_seconds=1)
    )
    assert client is not None
    started = time.monotonic()
    with pytest.raises(LLMError) as failed:
        await ask(client)
    assert time.monotonic() - started < 5  # refused is not retried
    assert failed.value.detail == (
        f"openai-compatible at http://127.0.0.1:{port}/v1: "
        "connection refused — is the server running?"
    )
    await client.aclose()


def wait_for(headers: dict[str, str], cap: float) -> float:
    """The wait our retry policy picks after a 429 with ``headers``."""
    wait = retry_config(settings(retry_max_wait_seconds=cap))["wait"]
    request = httpx2.Request("POST", "http://llm/v1/chat/completions")
    response = httpx2.Response(429, headers=headers, request=request)
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    error = httpx2.HTTPStatusError("429", request=request, response=response)
    state.set_exception((type(error), error, None))
    return float(wait(state))


def test_retry_after_seconds_and_http_date_are_honoured_up_to_the_cap() -> None:
    assert wait_for({"retry-after": "7"}, cap=30) == 7
    assert wait_for({"retry-after": "120"}, cap=30) == 30
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    assert 17 < wait_for({"retry-after": later}, cap=30) <= 20
    # Without Retry-After: exponential backoff with jitter, still capped.
    assert 0 < wait_for({}, cap=30) <= 2
    assert wait_for({}, cap=0.5) <= 0.5


def http_error(status: int, body: object = None, attempts: int | None = None) -> ModelHTTPError:
    exc = ModelHTTPError(status, "gpt-4.1", body)
    if attempts is not None:
        cause = httpx2.HTTPStatusError(
            str(status),
            request=httpx2.Request("POST", "https://x"),
            response=httpx2.Response(status),
        )
        setattr(cause, ATTEMPTS_ATTR, attempts)
        exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "detail"),
    [
        (http_error(429, attempts=4), "anthropic: 429 rate limited after 3 retries"),
        (http_error(529, attempts=2), "anthropic: 529 overloaded after 1 retry"),
        (http_error(503), "anthropic: 503 service unavailable"),
        (
            http_error(401, {"error": {"message": f"Incorrect API key provided: {KEY}"}}),
            "anthropic: 401 unauthorized: check llm.api_key",
        ),
        (
            http_error(404),
            "anthropic: model 'claude-x' not found (404) — check llm.models and llm.base_url",
        ),
        (
            http_error(400, {"error": {"message": f"bad header Authorization: Bearer {KEY}"}}),
            "anthropic: 400 request rejected: bad header <redacted>",
        ),
        (
            httpx2.ReadTimeout("timed out"),
            "anthropic: timed out after 60 s",
        ),
    ],
)
def test_failures_read_as_one_actionable_line(exc: BaseException, detail: str) -> None:
    error = as_llm_error(exc, provider="anthropic", model="claude-x", timeout_seconds=60)
    assert error.detail == detail
    assert KEY not in error.detail


def test_failures_keep_their_kind() -> None:
    invalid = as_llm_error(UnexpectedModelBehavior("Exceeded maximum output retries", body="x"))
    assert isinstance(invalid, LLMInvalidAnswer)
    assert "x" not in invalid.detail.split(":")[-1].strip().split()  # the body stays out
    budget = as_llm_error(UsageLimitExceeded("total_tokens_limit of 16000 exceeded"))
    assert isinstance(budget, LLMBudgetExceeded)
    original = LLMUnavailable("open")
    assert as_llm_error(original) is original
