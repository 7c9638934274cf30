"""The model client: from the ``llm`` settings to pydantic-ai models, with one HTTP stack.

Shaped like pydantic-ai itself: one ``Model`` class per wire API (``OpenAIChatModel`` for
OpenAI, Azure OpenAI and every OpenAI-compatible local server; ``AnthropicModel`` for
Anthropic) and a ``Provider`` object that holds the credentials. Each ``LLMClient`` owns
ONE ``httpx2.AsyncClient`` that every provider SDK call goes through:

* **Timeout** — ``llm.timeout_seconds`` per attempt (connect at most 10 s, so a dead host
  fails fast); the SDK clients get the same value, since they send their own per request.
* **Retries** — only in our transport, pydantic-ai's ``AsyncHTTPX2TenacityTransport``:
  429/500/502/503/504/529, timeouts and dropped connections are retried up to
  ``llm.max_retries`` times, waiting what ``Retry-After``/``retry-after-ms`` asks (seconds
  or an HTTP date) or else exponential backoff with jitter, never longer than
  ``llm.retry_max_wait_seconds``. The status is checked before the body is read, so a
  streamed request is retried the same way; a stream that breaks off once started is not
  (that would repeat what was already shown). The SDKs' own retries are switched off
  (``max_retries=0`` on the SDK clients we build) so an attempt happens exactly once. A
  refused connection is not retried: nothing is listening, and the breaker handles outages.
* **Breaker** — ``LLMClient.breaker`` is shared per (provider, base URL) in the process.
* **Fakeable** — ``build_llm_client(transport=...)`` puts any ``httpx2`` transport (a
  ``MockTransport`` in unit tests) under the retry layer, so the real SDK code runs.

httpx2, not legacy httpx: pydantic-ai 2.68 and the openai/anthropic SDKs it drives are
built on it (a hard dependency of all three), and their ``httpx.AsyncClient`` support (and
``AsyncTenacityTransport``) is deprecated. Because the retrying transport replaces
httpx2's default one, the ``HTTP(S)_PROXY`` environment variables are not applied to
model calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NoReturn, TypeAlias, TypeVar

import httpx2
import structlog
from pydantic_ai import NativeOutput, PromptedOutput, ToolOutput
from pydantic_ai.models import Model, create_async_httpx2_client
from pydantic_ai.profiles.openai import OpenAIModelProfile
from pydantic_ai.providers import Provider
from pydantic_ai.retries import AsyncHTTPX2TenacityTransport, RetryConfig, wait_retry_after
from tenacity import (
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from oncallm.config_llm import LLMProvider, LLMSettings, Tier
from oncallm.errors import LLMError
from oncallm.llm.breaker import CircuitBreaker, breaker_for
from oncallm.llm.failures import ATTEMPTS_ATTR, as_llm_error, is_model_failure

__all__ = [
    "RETRY_STATUSES",
    "LLMClient",
    "OutputSpec",
    "as_llm_error",
    "build_http_client",
    "build_llm_client",
    "display_base_url",
    "retry_config",
]

log = structlog.get_logger("oncallm.llm")

T = TypeVar("T")
OutputSpec: TypeAlias = ToolOutput[T] | NativeOutput[T] | PromptedOutput[T]

# 529 is Anthropic's "overloaded"; the others are the usual transient statuses.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
CONNECT_TIMEOUT_SECONDS = 10.0
OPENAI_BASE_URL = "https://api.openai.com/v1"
ANTHROPIC_BASE_URL = "https://api.anthropic.com"
# The OpenAI SDK insists on a key; local servers ignore whatever is sent.
LOCAL_PLACEHOLDER_KEY = "not-needed"

# pydantic-ai only allows NativeOutput for models whose profile claims JSON-schema output,
# and its profile for an unknown local model (``meta-llama/...``) does not. Ollama, vLLM,
# llama.cpp and LM Studio implement ``response_format: json_schema`` whatever the model,
# so we claim it; ``oncallm llm check`` shows whether a given model really complies.
_LOCAL_PROFILE = OpenAIModelProfile(
    supports_json_schema_output=True, supports_json_object_output=True
)


def _raise_for_retryable_status(response: httpx2.Response) -> None:
    if response.status_code in RETRY_STATUSES:
        raise httpx2.HTTPStatusError(
            f"{response.status_code} from {response.request.url.host}",
            request=response.request,
            response=response,
        )


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx2.HTTPStatusError):
        return exc.response.status_code in RETRY_STATUSES
    # Timeouts and connections dropped mid-answer are worth another try; a refused
    # connection (ConnectError) is not: nothing is listening.
    return isinstance(exc, httpx2.TimeoutException | httpx2.RemoteProtocolError | httpx2.ReadError)


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    reason = (
        str(exc.response.status_code)
        if isinstance(exc, httpx2.HTTPStatusError)
        else type(exc).__name__
    )
    wait = state.next_action.sleep if state.next_action else 0.0
    log.info("llm call retried", reason=reason, attempt=state.attempt_number, wait_s=round(wait, 2))


def _give_up(state: RetryCallState) -> NoReturn:
    """Re-raise the last failure, stamped with the number of attempts made."""
    assert state.outcome is not None
    exc = state.outcome.exception()
    assert exc is not None
    setattr(exc, ATTEMPTS_ATTR, state.attempt_number)
    raise exc


def retry_config(settings: LLMSettings) -> RetryConfig:
    """Tenacity arguments for the model transport, from ``llm.max_retries`` and waits."""
    cap = settings.retry_max_wait_seconds
    return RetryConfig(
        retry=retry_if_exception(_is_retryable),
        wait=wait_retry_after(
            fallback_strategy=wait_exponential_jitter(initial=1, max=cap, jitter=1),
            max_wait=cap,
        ),
        stop=stop_after_attempt(settings.max_retries + 1),
        before_sleep=_log_retry,
        retry_error_callback=_give_up,
    )


def build_http_client(
    settings: LLMSettings, transport: httpx2.AsyncBaseTransport | None = None
) -> httpx2.AsyncClient:
    """The one HTTP client of an ``LLMClient``: per-attempt timeout, retrying transport.

    ``transport`` replaces the network under the retry layer (tests pass a fake one).
    """
    timeout = settings.timeout_seconds
    retrying = AsyncHTTPX2TenacityTransport(
        retry_config(settings),
        wrapped=transport,
        validate_response=_raise_for_retryable_status,
    )
    return create_async_httpx2_client(
        timeout=httpx2.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_SECONDS)),
        transport=retrying,
    )


def _api_key(settings: LLMSettings) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key else None


def _build_provider(settings: LLMSettings, http_client: httpx2.AsyncClient) -> Provider[Any]:
    # Base URLs are passed explicitly, even the public ones, so the SDKs never fall back
    # to OPENAI_BASE_URL/ANTHROPIC_BASE_URL: configuration comes from config.py only.
    common: dict[str, Any] = {
        "http_client": http_client,
        "max_retries": 0,
        "timeout": settings.timeout_seconds,
    }
    key = _api_key(settings)
    # Each SDK is imported only for its provider: anthropic's alone takes ~3 s to import,
    # which a one-shot `oncallm triage` against a local model should not pay.
    match settings.provider:
        case LLMProvider.OPENAI_COMPATIBLE:
            from openai import AsyncOpenAI
            from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider

            local = AsyncOpenAI(
                base_url=settings.effective_base_url, api_key=key or LOCAL_PLACEHOLDER_KEY, **common
            )
            # Not OpenAIProvider: its profile would send OpenAI-only request fields
            # (allowed_tools, prompt-cache options) that local servers reject.
            return OpenAICompatibleProvider(
                settings.provider.value, openai_client=local, profile=_LOCAL_PROFILE
            )
        case LLMProvider.OPENAI:
            from openai import AsyncOpenAI
            from pydantic_ai.providers.openai import OpenAIProvider

            cloud = AsyncOpenAI(
                base_url=settings.base_url or OPENAI_BASE_URL, api_key=key, **common
            )
            return OpenAIProvider(openai_client=cloud)
        case LLMProvider.AZURE_OPENAI:
            assert settings.base_url, "validated by LLMSettings"
            from openai import AsyncAzureOpenAI
            from pydantic_ai.providers.azure import AzureProvider

            azure = AsyncAzureOpenAI(
                azure_endpoint=settings.base_url.rstrip("/"),
                api_version=settings.api_version,
                api_key=key,
                **common,
            )
            return AzureProvider(openai_client=azure)
        case LLMProvider.ANTHROPIC:
            from anthropic import AsyncAnthropic
            from pydantic_ai.providers.anthropic import AnthropicProvider

            anthropic = AsyncAnthropic(
                api_key=key, base_url=settings.base_url or ANTHROPIC_BASE_URL, **common
            )
            return AnthropicProvider(anthropic_client=anthropic)
    raise ValueError(f"llm.provider {settings.provider.value} has no model client")


def display_base_url(settings: LLMSettings) -> str:
    """Where calls go, for messages and ``llm check``."""
    if settings.effective_base_url:
        return settings.effective_base_url
    if settings.provider is LLMProvider.ANTHROPIC:
        return ANTHROPIC_BASE_URL
    return OPENAI_BASE_URL


@dataclass
class LLMClient:
    """Models of the configured provider, sharing one HTTP client and one breaker."""

    settings: LLMSettings
    provider_name: str
    breaker: CircuitBreaker
    http_client: httpx2.AsyncClient = field(repr=False)
    provider: Provider[Any] = field(repr=False)
    _models: dict[Tier, Model] = field(default_factory=dict, repr=False)

    @property
    def base_url(self) -> str:
        return display_base_url(self.settings)

    def model_name(self, tier: Tier) -> str:
        """The model (for azure-openai, the deployment) that serves ``tier``."""
        return self.settings.model_name(tier)

    def model(self, tier: Tier) -> Model:
        """The pydantic-ai model for ``tier``; one instance per tier."""
        cached = self._models.get(tier)
        if cached is not None:
            return cached
        name = self.model_name(tier)
        model: Model
        if self.settings.provider is LLMProvider.ANTHROPIC:
            from pydantic_ai.models.anthropic import AnthropicModel

            model = AnthropicModel(name, provider=self.provider)
        else:
            from pydantic_ai.models.openai import OpenAIChatModel

            model = OpenAIChatModel(name, provider=self.provider)
        self._models[tier] = model
        return model

    def output_spec(self, output_type: type[T]) -> OutputSpec[T]:
        """How to ask for ``output_type``: as a tool call, native JSON schema or prompted JSON.

        Follows ``llm.output_mode`` (``auto``: native for local servers, tool otherwise).
        """
        mode = self.settings.effective_output_mode
        if mode == "native":
            return NativeOutput(output_type)
        if mode == "prompted":
            return PromptedOutput(output_type)
        return ToolOutput(output_type)

    def as_llm_error(self, exc: BaseException, tier: Tier = "strong") -> LLMError:
        """``exc`` from a call to ``tier`` as an ``LLMError`` naming provider, URL and model."""
        return as_llm_error(
            exc,
            provider=self.provider_name,
            base_url=self.base_url,
            model=self.model_name(tier),
            timeout_seconds=self.settings.timeout_seconds,
        )

    @asynccontextmanager
    async def request(self, tier: Tier = "strong") -> AsyncIterator[None]:
        """Guard one logical model request: breaker first, failures raised as ``LLMError``.

        Errors that did not come from the model call (bugs) pass through untouched and do
        not count against the provider.
        """
        async with self.breaker.call():
            try:
                yield
            except Exception as exc:
                if isinstance(exc, LLMError) or not is_model_failure(exc):
                    raise
                raise self.as_llm_error(exc, tier) from exc

    async def aclose(self) -> None:
        """Close the HTTP client (and with it every connection to the provider)."""
        await self.http_client.aclose()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def build_llm_client(
    settings: LLMSettings,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    breaker: CircuitBreaker | None = None,
) -> LLMClient | None:
    """The client for ``settings``, or None when ``llm.provider`` is ``none``.

    ``transport`` puts a fake network under the retry layer; ``breaker`` replaces the
    process-wide one of this provider endpoint (tests).
    """
    if not settings.enabled:
        return None
    http_client = build_http_client(settings, transport)
    provider_name = settings.provider.value
    return LLMClient(
        settings=settings,
        provider_name=provider_name,
        breaker=breaker or breaker_for(provider_name, display_base_url(settings), settings),
        http_client=http_client,
        provider=_build_provider(settings, http_client),
    )
