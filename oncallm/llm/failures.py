"""Provider failures, translated into OncallM's LLM errors in one place.

Whatever fails below a model call — the HTTP transport (``httpx2``), the provider SDK
(``openai``, ``anthropic``) or pydantic-ai's mapping of both (``ModelHTTPError``,
``ModelConnectionError``, ...) — reaches the rest of OncallM as an ``LLMError`` whose
message a user can act on: what was called, what went wrong, and what to check.

Messages never carry the API key or a request body: they are built from status codes,
exception types and at most a short, scrubbed excerpt of the provider's own error text.
"""

from __future__ import annotations

import errno
import re
import socket
from collections.abc import Iterator
from typing import Any

import httpx2
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelHTTPError,
    ModelRequestTimeout,
    ModelTimeoutError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)

from oncallm.errors import LLMBudgetExceeded, LLMError, LLMInvalidAnswer

# The retrying transport stamps how many attempts it made on the exception it gives up
# with, so a message can say "after 3 retries" truthfully rather than assume it.
ATTEMPTS_ATTR = "oncallm_llm_attempts"

_STATUS_PHRASES = {
    429: "rate limited",
    500: "server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
    529: "overloaded",
}

# Shapes of credentials that a provider's error text may echo back (OpenAI quotes a
# masked key on 401s, gateways sometimes quote headers). Replaced before display.
_SECRET_PATTERNS = (
    re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-*]{6,}"),
    re.compile(r"(?i)\bbearer\s+\S+"),
    re.compile(r"(?i)\b(api[-_ ]?key|x-api-key|authorization)\b\s*[:=]\s*\S+"),
)
_EXCERPT_CHARS = 160


def as_llm_error(
    exc: BaseException,
    *,
    provider: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    timeout_seconds: float | None = None,
) -> LLMError:
    """The ``LLMError`` a user should see for ``exc`` raised by a model call.

    ``provider``/``base_url`` name where the call went ("openai-compatible at
    http://localhost:11434/v1: ..."), ``model`` the model or deployment, ``timeout_seconds``
    the per-attempt timeout, for the messages that mention them; ``LLMClient.as_llm_error``
    fills them in. An ``LLMError`` passes through unchanged.
    """
    if isinstance(exc, LLMError):
        return exc
    message = _describe(exc, model=model, timeout_seconds=timeout_seconds)
    if provider:
        message = f"{provider} at {base_url}: {message}" if base_url else f"{provider}: {message}"
    if isinstance(exc, UsageLimitExceeded):
        return LLMBudgetExceeded(message)
    if isinstance(exc, UnexpectedModelBehavior):
        return LLMInvalidAnswer(message)
    return LLMError(message)


def counts_against_provider(exc: BaseException) -> bool:
    """Whether ``exc`` says the provider failed (for the circuit breaker).

    Our own refusals (token budget) and answers that arrived but did not validate say
    nothing about the provider's health; a bug in our code (``TypeError``) neither.
    """
    if isinstance(exc, LLMBudgetExceeded | LLMInvalidAnswer | UsageLimitExceeded):
        return False
    if isinstance(exc, UnexpectedModelBehavior):
        return False
    return isinstance(exc, (LLMError, ModelAPIError, httpx2.HTTPError, *_sdk_api_errors()))


def is_model_failure(exc: BaseException) -> bool:
    """Whether ``exc`` came from a model call (and so should become an ``LLMError``).

    Anything else — a bug in our own code — is left alone so it is not mistaken for an
    outage.
    """
    return counts_against_provider(exc) or isinstance(
        exc, UnexpectedModelBehavior | UsageLimitExceeded | LLMError
    )


def attempts_made(exc: BaseException) -> int | None:
    """How many attempts the retrying transport made before giving up, if it did."""
    for link in _chain(exc):
        attempts = getattr(link, ATTEMPTS_ATTR, None)
        if isinstance(attempts, int):
            return attempts
    return None


def _describe(exc: BaseException, *, model: str | None, timeout_seconds: float | None) -> str:
    if isinstance(exc, UsageLimitExceeded):
        return f"token limit reached: {scrub(str(exc))}"
    if isinstance(exc, UnexpectedModelBehavior):
        # Its body (the raw model output) is deliberately left out: it may quote the prompt.
        return f"the model {_name(model)}gave no valid answer: {scrub(exc.message)}"
    status = _status_code(exc)
    if status is not None:
        return _describe_status(exc, status, model=model)
    if _is_timeout(exc):
        timeout = _timeout_text(exc, timeout_seconds)
        return f"timed out after {timeout}{_retries_suffix(exc)}"
    if _is_connection_refused(exc):
        return "connection refused — is the server running?"
    if _is_name_resolution_failure(exc):
        return "cannot resolve the host name — check llm.base_url"
    if _has(exc, httpx2.ConnectError) or _phase(exc) == "connect":
        return f"cannot connect: {_transport_reason(exc)}"
    if _has(exc, httpx2.RemoteProtocolError | httpx2.ReadError) or isinstance(
        exc, ModelConnectionError
    ):
        return f"connection dropped before the answer was complete{_retries_suffix(exc)}"
    if isinstance(exc, ModelAPIError):
        return scrub(exc.message)
    text = scrub(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _describe_status(exc: BaseException, status: int, *, model: str | None) -> str:
    if status in (401, 403):
        word = "unauthorized" if status == 401 else "forbidden"
        return f"{status} {word}: check llm.api_key"
    if status == 404:
        return f"model {_name(model)}not found (404) — check llm.models and llm.base_url"
    if status == 402:
        return "402 payment required: the account's quota or credit is exhausted"
    if status in _STATUS_PHRASES or status >= 500:
        phrase = _STATUS_PHRASES.get(status, "server error")
        return f"{status} {phrase}{_retries_suffix(exc)}"
    excerpt = _provider_message(exc)
    return f"{status} request rejected" + (f": {excerpt}" if excerpt else "")


def _retries_suffix(exc: BaseException) -> str:
    attempts = attempts_made(exc)
    if attempts is None or attempts <= 1:
        return ""
    retries = attempts - 1
    return f" after {retries} {'retry' if retries == 1 else 'retries'}"


def _timeout_text(exc: BaseException, timeout_seconds: float | None) -> str:
    if isinstance(exc, ModelRequestTimeout):
        return f"{exc.timeout:g} s"
    if timeout_seconds is not None:
        return f"{timeout_seconds:g} s"
    return "the configured timeout"


def _name(model: str | None) -> str:
    return f"{model!r} " if model else ""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from (``__cause__``, else ``__context__``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _has(exc: BaseException, kind: Any) -> bool:
    """Whether ``exc`` or anything it was raised from is an instance of ``kind``."""
    return any(isinstance(link, kind) for link in _chain(exc))


def _status_code(exc: BaseException) -> int | None:
    for link in _chain(exc):
        if isinstance(link, ModelHTTPError):
            return link.status_code
        if isinstance(link, httpx2.HTTPStatusError):
            return link.response.status_code
        status = getattr(link, "status_code", None)
        if isinstance(status, int) and status >= 400:
            return status  # an SDK APIStatusError that reached us unmapped
    return None


def _is_timeout(exc: BaseException) -> bool:
    if _has(exc, ModelTimeoutError | ModelRequestTimeout | httpx2.TimeoutException | TimeoutError):
        return True
    return any(type(link).__name__ == "APITimeoutError" for link in _chain(exc))


def _phase(exc: BaseException) -> str | None:
    for link in _chain(exc):
        if isinstance(link, ModelConnectionError):
            return link.phase
    return None


def _is_connection_refused(exc: BaseException) -> bool:
    for link in _chain(exc):
        if isinstance(link, ConnectionRefusedError):
            return True
        if isinstance(link, OSError) and link.errno == errno.ECONNREFUSED:
            return True
        if isinstance(link, httpx2.ConnectError) and "refused" in str(link).lower():
            return True
    return False


def _is_name_resolution_failure(exc: BaseException) -> bool:
    for link in _chain(exc):
        if isinstance(link, socket.gaierror):
            return True
        text = str(link).lower()
        if isinstance(link, httpx2.ConnectError) and (
            "name or service not known" in text or "nodename nor servname" in text
        ):
            return True
    return False


def _transport_reason(exc: BaseException) -> str:
    for link in _chain(exc):
        if isinstance(link, httpx2.TransportError | OSError) and str(link):
            return scrub(str(link))
    return type(exc).__name__


def _provider_message(exc: BaseException) -> str:
    """The provider's own error text, shortened and scrubbed, e.g. why a 400 was rejected."""
    for link in _chain(exc):
        body = getattr(link, "body", None)
        if isinstance(body, dict):
            error = body.get("error", body)
            message = error.get("message") if isinstance(error, dict) else error
            if isinstance(message, str) and message:
                return scrub(message)
    return ""


def scrub(text: str) -> str:
    """``text`` with credential-shaped substrings masked, cut to a readable length."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub("<redacted>", text)
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 1] + "…"


def _sdk_api_errors() -> tuple[type[BaseException], ...]:
    # Both SDKs are installed with the openai/anthropic extras; imported lazily so this
    # module stays cheap for callers that only translate pydantic-ai errors.
    import anthropic
    import openai

    return (openai.APIError, anthropic.APIError)
