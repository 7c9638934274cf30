"""An Anthropic Messages API compatible server, scripted by the test, on loopback.

``POST /v1/messages`` (the SDK's beta path ``/v1/messages?beta=true`` too), plain and
streamed with the real event sequence (``message_start``, ``content_block_start``,
``content_block_delta`` with ``text_delta`` / ``input_json_delta``,
``content_block_stop``, ``message_delta`` with ``stop_reason`` and ``usage``,
``message_stop``; each an ``event:`` and a ``data:`` line), ``text`` and ``tool_use``
content blocks, ``usage`` ``{input_tokens, output_tokens}``; ``GET /v1/models``. Requests
need the key (``x-api-key``, or ``Authorization: Bearer`` as the SDK 2.x sends it) and an
``anthropic-version`` header. Errors carry Anthropic's
``{"type": "error", "error": {"type": "rate_limit_error", "message": ...}}`` body;
``Fault.overloaded()`` is the 529 ``overloaded_error``.

Answers come from the script (see ``tests.fakes.llm_script``)::

    with AnthropicFake() as llm:
        llm.script(Fault.overloaded(), Reply.text("The pod is OOMKilled."))
        provider = AnthropicProvider(base_url=llm.base_url, api_key=llm.api_key)
        agent = Agent(AnthropicModel("claude-sonnet-4-6", provider=provider))
        ...
        assert llm.count("/v1/messages") == 2
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.llm_script import (
    Fault,
    HttpAnswer,
    LlmFake,
    RecordedRequest,
    Reply,
    SseEvent,
    StreamAnswer,
    new_id,
    retry_headers,
    split_even,
    split_text,
)

__all__ = ["DEFAULT_KEY", "AnthropicFake", "Fault", "Reply"]

DEFAULT_KEY = "sk-ant-fake-key"
DEFAULT_MODELS = ("claude-sonnet-4-6", "claude-haiku-4-5")

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


class AnthropicFake(LlmFake):
    """The fake Anthropic server. ``base_url`` (= ``url``; the SDK adds ``/v1``) is what
    ``anthropic.AsyncAnthropic`` and ``AnthropicProvider`` take; ``api_key`` None accepts
    any key."""

    generation_path = "/v1/messages"
    name = "fake Anthropic LLM"
    default_key = DEFAULT_KEY
    default_models = DEFAULT_MODELS

    @property
    def base_url(self) -> str:
        return self.url

    # --- protocol ----------------------------------------------------------------------

    def authenticate(self, request: RecordedRequest) -> HttpAnswer | None:
        # The key comes as ``x-api-key``, or, from the anthropic SDK 2.x, as a bearer token.
        keys = (request.header("x-api-key"), (request.header("authorization") or "")[7:])
        if self.api_key is not None and self.api_key not in keys:
            return self.error(Fault.status(401))
        if request.path.startswith("/v1/") and not request.header("anthropic-version"):
            message = "anthropic-version: header is required"
            return self.error(Fault.status(400, message=message))
        return None

    def route(self, request: RecordedRequest) -> HttpAnswer:
        if request.method == "GET" and request.path == "/v1/models":
            data = [
                {
                    "type": "model",
                    "id": m,
                    "display_name": m,
                    "created_at": "2025-09-29T00:00:00Z",
                }
                for m in self.models
            ]
            first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
            return HttpAnswer.json(
                200, {"data": data, "has_more": False, "first_id": first, "last_id": last}
            )
        return self.error(Fault.status(404, message=f"{request.method} {request.path} not found"))

    def error(self, fault: Fault) -> HttpAnswer:
        kind, message = _ERRORS.get(
            fault.code, ("api_error" if fault.code >= 500 else "invalid_request_error", "Error.")
        )
        body = {
            "type": "error",
            "error": {"type": fault.error_type or kind, "message": fault.message or message},
        }
        headers = {"request-id": new_id("req_"), **retry_headers(fault)}
        if fault.code == 529:
            headers.setdefault("x-should-retry", "true")
        return HttpAnswer.json(fault.code, body, headers)

    def render(self, request: RecordedRequest, reply: Reply) -> HttpAnswer | StreamAnswer:
        model = reply.model or request.model or self.models[0]
        prompt, completion = reply.usage(request)
        stop = reply.stop_reason or ("tool_use" if reply.calls else "end_turn")
        blocks: list[dict[str, Any]] = []
        if reply.content:
            blocks.append({"type": "text", "text": reply.content})
        for call in reply.calls:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": call.id or new_id("toolu_"),
                    "name": call.name,
                    "input": dict(call.arguments),
                }
            )
        usage = {
            "input_tokens": prompt,
            "output_tokens": completion,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        message: dict[str, Any] = {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        headers = {"request-id": new_id("req_")}
        if not request.stream:
            return HttpAnswer.json(200, message, headers)
        events = [
            _event(
                "message_start",
                message={
                    **message,
                    "content": [],
                    "stop_reason": None,
                    "usage": {**usage, "output_tokens": 1},
                },
            ),
            _event("ping"),
        ]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                events.append(
                    _event("content_block_start", index=index, content_block={**block, "text": ""})
                )
                for piece in split_text(block["text"]):
                    delta = {"type": "text_delta", "text": piece}
                    events.append(_event("content_block_delta", True, index=index, delta=delta))
            else:
                opening = {**block, "input": {}}
                events.append(_event("content_block_start", index=index, content_block=opening))
                for piece in split_even(json.dumps(block["input"])):
                    delta = {"type": "input_json_delta", "partial_json": piece}
                    events.append(_event("content_block_delta", True, index=index, delta=delta))
            events.append(_event("content_block_stop", index=index))
        events.append(
            _event("message_delta", delta={"stop_reason": stop, "stop_sequence": None}, usage=usage)
        )
        events.append(_event("message_stop"))
        return StreamAnswer(events, headers, hold=reply.hold, hold_after=reply.hold_after)


def _event(kind: str, is_delta: bool = False, **fields: Any) -> SseEvent:
    return SseEvent(json.dumps({"type": kind, **fields}), event=kind, delta=is_delta)
