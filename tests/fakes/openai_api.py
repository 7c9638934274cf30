"""An OpenAI Chat Completions compatible server, scripted by the test, on loopback.

What Ollama, vLLM, llama.cpp, LM Studio and LocalAI serve at ``/v1``, and OpenAI itself:
``POST .../chat/completions`` (any prefix, so a base URL with or without ``/v1`` works),
plain and streamed (``stream: true``: ``data: {chunk}`` SSE events, then ``data: [DONE]``;
with ``stream_options.include_usage`` a last chunk with empty ``choices`` carries
``usage``), with assistant text, ``tool_calls`` (streamed arguments arrive in several
deltas) and ``usage`` on every answer; ``GET .../models``; and Azure OpenAI's
``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` with an
``api-key`` header, where the answer's ``model`` is the deployment. Errors carry OpenAI's
``{"error": {"message", "type", "param", "code"}}`` body.

Answers come from the script (see ``tests.fakes.llm_script``)::

    with OpenAIFake() as llm:
        llm.script(Reply.tool_call("get_object", {"kind": "Pod"}), Reply.output(verdict))
        provider = OpenAIProvider(base_url=llm.base_url, api_key=llm.api_key)
        result = await Agent(OpenAIChatModel("llama3.2", provider=provider), ...).run("...")
        assert llm.last.tool_results and b"hunter2" not in b"".join(llm.bodies())

For Azure: ``AzureProvider(azure_endpoint=llm.url, api_version="2024-10-21",
api_key=llm.api_key)`` and ``OpenAIChatModel("<deployment>", provider=...)``.
"""

from __future__ import annotations

import json
import time
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

__all__ = ["DEFAULT_KEY", "Fault", "OpenAIFake", "Reply"]

DEFAULT_KEY = "sk-fake-openai-key"
DEFAULT_MODELS = ("llama3.2", "qwen2.5:7b", "gpt-4o-mini")

# (error type, error code) for a status, as OpenAI sends them.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later"),
}


class OpenAIFake(LlmFake):
    """The fake OpenAI-compatible server. ``base_url`` (``url`` + ``/v1``) is what the
    ``openai`` SDK and ``OpenAIProvider`` take; ``api_key`` None accepts any key."""

    generation_path = "/chat/completions"
    name = "fake LLM"
    default_key = DEFAULT_KEY
    default_models = DEFAULT_MODELS

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def deployments(self) -> list[str]:
        """The Azure deployments named by the generation requests, in order."""
        return [r.deployment for r in self.calls if r.deployment]

    # --- protocol ----------------------------------------------------------------------

    def authenticate(self, request: RecordedRequest) -> HttpAnswer | None:
        if self.api_key is None:
            return None
        if request.path.startswith("/openai/"):  # Azure: an api-key header and an api-version
            if request.header("api-key") != self.api_key and not self._bearer_ok(request):
                return HttpAnswer.json(
                    401,
                    {
                        "error": {
                            "code": "401",
                            "message": "Access denied due to invalid subscription key or "
                            "wrong API endpoint. Make sure to provide a valid key for an "
                            "active subscription and use a correct regional API endpoint "
                            "for your resource.",
                        }
                    },
                )
            if request.deployment and "api-version" not in request.query:
                return HttpAnswer.json(
                    404, {"error": {"code": "404", "message": "Resource not found"}}
                )
            return None
        if self._bearer_ok(request):
            return None
        return self.error(Fault.status(401))

    def _bearer_ok(self, request: RecordedRequest) -> bool:
        return request.header("authorization") == f"Bearer {self.api_key}"

    def route(self, request: RecordedRequest) -> HttpAnswer:
        if request.method == "GET" and request.path.endswith("/models"):
            created = int(time.time())
            data = [
                {"id": m, "object": "model", "created": created, "owned_by": "oncallm-fake"}
                for m in self.models
            ]
            return HttpAnswer.json(200, {"object": "list", "data": data})
        message = f"Invalid URL ({request.method} {request.path})"
        return self.error(Fault.status(404, message=message, error_type="invalid_request_error"))

    def error(self, fault: Fault) -> HttpAnswer:
        kind, code, message = _ERRORS.get(
            fault.code,
            ("server_error" if fault.code >= 500 else "invalid_request_error", None, "Error."),
        )
        body = {
            "error": {
                "message": fault.message or message,
                "type": fault.error_type or kind,
                "param": None,
                "code": code,
            }
        }
        headers = {"x-request-id": new_id("req_"), **retry_headers(fault)}
        return HttpAnswer.json(fault.code, body, headers)

    def render(self, request: RecordedRequest, reply: Reply) -> HttpAnswer | StreamAnswer:
        model = reply.model or request.deployment or request.model or self.models[0]
        prompt, completion = reply.usage(request)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        finish = reply.stop_reason or ("tool_calls" if reply.calls else "stop")
        calls = [
            {
                "id": call.id or new_id("call_"),
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in reply.calls
        ]
        head = {
            "id": new_id("chatcmpl-"),
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_oncallm_fake",
        }
        headers = {"x-request-id": new_id("req_"), "openai-processing-ms": "1"}
        if not request.stream:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": reply.content,
                "refusal": None,
            }
            if calls:
                message["tool_calls"] = calls
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            body = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            return HttpAnswer.json(200, body, headers)
        return StreamAnswer(
            self._chunks(request, reply, head, calls, finish, usage),
            headers,
            hold=reply.hold,
            hold_after=reply.hold_after,
        )

    def _chunks(
        self,
        request: RecordedRequest,
        reply: Reply,
        head: dict[str, Any],
        calls: list[dict[str, Any]],
        finish: str,
        usage: dict[str, int],
    ) -> list[SseEvent]:
        include_usage = bool((request.body.get("stream_options") or {}).get("include_usage"))
        events: list[SseEvent] = []

        def chunk(
            delta: dict[str, Any], reason: str | None = None, *, is_delta: bool = False
        ) -> None:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
            body: dict[str, Any] = {**head, "object": "chat.completion.chunk", "choices": [choice]}
            if include_usage:
                body["usage"] = None
            events.append(SseEvent(json.dumps(body), delta=is_delta))

        chunk({"role": "assistant", "content": "", "refusal": None})
        if reply.content:
            for piece in split_text(reply.content):
                chunk({"content": piece}, is_delta=True)
        for index, call in enumerate(calls):
            function = call["function"]
            opening = {**call, "index": index, "function": {**function, "arguments": ""}}
            chunk({"tool_calls": [opening]})
            for piece in split_even(function["arguments"]):
                chunk(
                    {"tool_calls": [{"index": index, "function": {"arguments": piece}}]},
                    is_delta=True,
                )
        chunk({}, finish)
        if include_usage:
            body = {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            events.append(SseEvent(json.dumps(body)))
        events.append(SseEvent("[DONE]"))
        return events
