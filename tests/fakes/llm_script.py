"""Scripting, recording and serving shared by the fake LLM servers (OpenAI and Anthropic).

A test says what the next requests to a fake LLM get, in two ways that combine:

* a queue: ``fake.script(Reply.text("..."), Reply.tool_call("get_object", {...}),
  Fault.status(429, retry_after=1))`` — each generation request takes the next item;
* a responder: ``fake.respond_with(fn)`` where ``fn(request) -> Reply | Fault | None``
  decides from the request (None: no opinion).

A request takes the next queued item, else asks the responder, else gets ``fake.default``;
with none of them it is answered 500 "fake LLM: no scripted reply left", so a test that
sends one request too many fails readably. ``Reply.output(obj)`` answers "the structured
output" however the client asked for it: as a call of the request's only ``final_result*``
tool (pydantic-ai's output tool, in tool output mode), else as JSON text (native and
prompted modes). Non-mapping values are wrapped as ``{"response": value}``, as pydantic-ai
expects for non-object output types.

Every request is kept as a ``RecordedRequest`` (``fake.requests``, ``fake.calls`` for
generation requests only, ``fake.bodies()`` for "no secret reached the provider"), whatever
its answer. Token counts default to estimates (prompt: ceil(len(message text) / 4)) unless
a reply gives numbers. ``LlmFake`` is the server base class: the protocol modules
(``openai_api``, ``anthropic_api``) only route, authenticate and render.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal, Self, TypedDict, Unpack
from urllib.parse import parse_qsl, urlsplit

OUTPUT_TOOL_PREFIX = "final_result"  # pydantic_ai._output.DEFAULT_OUTPUT_TOOL_NAME
HOLD_TIMEOUT = 10.0  # a held stream gives up after this, so a broken test never hangs
LATE_TEXT = "This reply comes late, or is cut off, as the test script asked."


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    text: str


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it. ``headers`` keys are lower-cased."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes
    json: Any

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def body(self) -> dict[str, Any]:
        return self.json if isinstance(self.json, dict) else {}

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [m for m in self.body.get("messages") or [] if isinstance(m, dict)]

    @property
    def deployment(self) -> str | None:
        """The Azure OpenAI deployment named in the path, if any."""
        match = re.search(r"/deployments/([^/]+)/", self.path)
        return match.group(1) if match else None

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools offered (OpenAI ``function.name`` or Anthropic ``name``)."""
        names = []
        for tool in self.body.get("tools") or []:
            function = tool.get("function") if isinstance(tool.get("function"), dict) else tool
            if isinstance(function.get("name"), str):
                names.append(function["name"])
        return names

    @property
    def tool_results(self) -> list[ToolResult]:
        """Tool results sent back: OpenAI ``tool`` messages, Anthropic ``tool_result`` blocks."""
        results = []
        for message in self.messages:
            if message.get("role") == "tool":
                results.append(ToolResult(message.get("tool_call_id", ""), _text(message)))
            content = message.get("content")
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    results.append(ToolResult(block.get("tool_use_id", ""), _text(block)))
        return results

    @property
    def prompt_text(self) -> str:
        """All the text the request carries: system prompt, message contents, tool traffic."""
        parts = [_text({"content": self.body.get("system")})]
        for message in self.messages:
            parts.append(_text(message))
            for call in message.get("tool_calls") or []:
                parts.append(str((call.get("function") or {}).get("arguments", "")))
        return "\n".join(p for p in parts if p)


def _text(message: Mapping[str, Any]) -> str:
    """The text of a message or content block: a string, or its text/tool blocks joined."""
    content = message.get("content", message.get("text"))
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict):
            if isinstance(block.get("text"), str):
                parts.append(block["text"])
            elif block.get("type") == "tool_use":
                parts.append(json.dumps(block.get("input")))
            elif block.get("type") == "tool_result":
                parts.append(_text(block))
    return "\n".join(parts)


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Mapping[str, Any]
    id: str | None = None


class ReplyOptions(TypedDict, total=False):
    prompt_tokens: int
    completion_tokens: int
    delay: float
    hold: threading.Event
    hold_after: int
    stop_reason: str
    model: str


_UNSET: Any = object()


@dataclass(frozen=True)
class Reply:
    """What the model answers. Build with the class methods; options (``ReplyOptions``):

    ``prompt_tokens``/``completion_tokens`` override the estimates; ``delay`` seconds before
    answering; ``hold`` (a ``threading.Event``) pauses a stream after ``hold_after`` deltas
    until the test sets it, to prove deltas arrive before the end; ``stop_reason`` overrides
    the protocol's finish/stop reason (e.g. "length" / "max_tokens"); ``model`` overrides
    the model named in the answer.
    """

    content: str | None = None
    calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    delay: float = 0.0
    hold: threading.Event | None = None
    hold_after: int = 1
    stop_reason: str | None = None
    model: str | None = None
    structured: Any = _UNSET
    output_tool: str | None = None

    @classmethod
    def text(cls, text: str, **options: Unpack[ReplyOptions]) -> Reply:
        return cls(content=text, **options)

    @classmethod
    def json(cls, value: Any, **options: Unpack[ReplyOptions]) -> Reply:
        """JSON text content (what ``response_format: json_schema`` asks for)."""
        return cls(content=json.dumps(_plain(value)), **options)

    @classmethod
    def tool_call(
        cls,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        text: str | None = None,
        **options: Unpack[ReplyOptions],
    ) -> Reply:
        return cls(content=text, calls=(ToolCall(name, arguments or {}, id),), **options)

    @classmethod
    def tool_calls(
        cls, *calls: ToolCall | tuple[str, Mapping[str, Any]], **options: Unpack[ReplyOptions]
    ) -> Reply:
        """Several tool calls in one answer (parallel tool calls)."""
        built = tuple(c if isinstance(c, ToolCall) else ToolCall(c[0], c[1]) for c in calls)
        return cls(calls=built, **options)

    @classmethod
    def output(
        cls, value: Any, *, tool: str | None = None, **options: Unpack[ReplyOptions]
    ) -> Reply:
        """The structured output, as a call of the output tool when the request offers one
        (exactly one tool named ``final_result*``, or ``tool``), else as JSON text."""
        return cls(structured=value, output_tool=tool, **options)

    def resolve(self, request: RecordedRequest) -> Reply:
        """This reply made concrete for ``request`` (only ``Reply.output`` depends on it)."""
        if self.structured is _UNSET:
            return self
        value = _plain(self.structured)
        if not isinstance(value, Mapping):
            value = {"response": value}
        offered = request.tool_names
        if self.output_tool is not None:
            if self.output_tool not in offered:
                raise ScriptError(f"Reply.output: the request offers no tool {self.output_tool!r}")
            names = [self.output_tool]
        else:
            names = [n for n in offered if n.startswith(OUTPUT_TOOL_PREFIX)]
        if len(names) > 1:
            raise ScriptError(f"Reply.output: several output tools {names}; pass tool=")
        if names:
            return replace(self, structured=_UNSET, calls=(ToolCall(names[0], value),))
        return replace(self, structured=_UNSET, content=json.dumps(value))

    def usage(self, request: RecordedRequest) -> tuple[int, int]:
        """(prompt tokens, completion tokens): this reply's numbers, else estimates."""
        answer = (self.content or "") + "".join(json.dumps(c.arguments) for c in self.calls)
        prompt = self.prompt_tokens
        completion = self.completion_tokens
        return (
            estimate_tokens(request.prompt_text) if prompt is None else prompt,
            max(1, estimate_tokens(answer)) if completion is None else completion,
        )


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value


@dataclass(frozen=True)
class Fault:
    """A failure instead of an answer. Build with the class methods."""

    kind: Literal["status", "delay", "disconnect"]
    code: int = 500
    retry_after: float | None = None
    message: str | None = None
    error_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    then: Reply | None = None
    after_events: int = 0

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: float | None = None,
        message: str | None = None,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """An HTTP error with the protocol's error body; ``retry_after`` sets Retry-After."""
        extra = tuple((headers or {}).items())
        return cls("status", code, retry_after, message, error_type, extra)

    @classmethod
    def overloaded(cls, *, message: str | None = None) -> Fault:
        """Anthropic's 529 ``overloaded_error``."""
        return cls.status(529, message=message or "Overloaded", error_type="overloaded_error")

    @classmethod
    def delay(cls, seconds: float, then: Reply | None = None) -> Fault:
        """Answer ``then`` (default: a short text) only after ``seconds``: for client timeouts."""
        return cls("delay", seconds=seconds, then=then)

    @classmethod
    def disconnect(cls, *, after_events: int = 0, then: Reply | None = None) -> Fault:
        """Close the connection without an answer; for a streamed request with
        ``after_events``, after that many SSE events of ``then`` (default: a short text)."""
        return cls("disconnect", then=then, after_events=after_events)


class ScriptError(Exception):
    """A script that cannot answer the request; the fake answers 500 with its message."""


Responder = Callable[[RecordedRequest], Reply | Fault | None]


@dataclass
class HttpAnswer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any, headers: Mapping[str, str] | None = None) -> HttpAnswer:
        return cls(status, json.dumps(value).encode(), headers=dict(headers or {}))


@dataclass(frozen=True)
class SseEvent:
    data: str
    event: str | None = None
    delta: bool = False  # a content delta: counted for Reply.hold_after

    def encode(self) -> bytes:
        head = f"event: {self.event}\n" if self.event else ""
        return f"{head}data: {self.data}\n\n".encode()


@dataclass
class StreamAnswer:
    events: list[SseEvent]
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None
    hold_after: int = 1
    cut_after: int | None = None  # Fault.disconnect(after_events=n)


Answer = HttpAnswer | StreamAnswer | None  # None: drop the connection without answering


def split_text(text: str, most: int = 64) -> list[str]:
    """Stream deltas for ``text``: one per word, at most ``most`` of them."""
    words = re.findall(r"\S+\s*|\s+", text) or [""]
    size = math.ceil(len(words) / most)
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def split_even(text: str, pieces: int = 3) -> list[str]:
    size = max(1, math.ceil(len(text) / pieces))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class _Default(Enum):
    KEY = "the subclass's default_key"


class LlmFake(ABC):
    """Base of the fake LLM servers: lifecycle, scripting, recording, HTTP and SSE.

    Subclasses set ``generation_path`` (the suffix of the generation endpoint) and
    implement ``authenticate``, ``route`` (other endpoints), ``render`` and ``error``.
    """

    generation_path: ClassVar[str]
    name: ClassVar[str] = "fake LLM"
    default_key: ClassVar[str]
    default_models: ClassVar[Sequence[str]]

    def __init__(
        self,
        *,
        api_key: str | _Default | None = _Default.KEY,
        models: Sequence[str] | None = None,
        latency: float = 0.0,
        stream_interval: float = 0.0,
        default: Reply | Fault | None = None,
    ) -> None:
        # None accepts any key; left out, the protocol's own fake key is required.
        self.api_key = self.default_key if isinstance(api_key, _Default) else api_key
        self.models = list(self.default_models if models is None else models)
        self.latency = latency  # seconds added before every answer
        self.stream_interval = stream_interval  # seconds between SSE events
        self.default = default
        self.errors: list[Exception] = []  # what scripts and responders raised
        self._queue: deque[Reply | Fault] = deque()
        self._responder: Responder | None = None
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        server = _HttpServer(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends delays and holds at once
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, no path."""
        if self._server is None:
            raise RuntimeError(f"the {self.name} server is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    @abstractmethod
    def base_url(self) -> str:
        """What the protocol's SDK takes as its base URL."""

    # --- scripting ---------------------------------------------------------------------

    def script(self, *items: Reply | Fault) -> None:
        """Queue answers for the next generation requests, in order."""
        with self._lock:
            self._queue.extend(items)

    def respond_with(self, responder: Responder | None) -> None:
        """Decide answers from the request once the queue is empty (None removes it).

        Called from the server's threads, maybe concurrently; what it raises is answered
        500 with the exception's repr and kept in ``fake.errors``."""
        with self._lock:
            self._responder = responder

    @property
    def pending(self) -> int:
        """Queued answers not yet taken."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Forget the queue, the responder and the recorded requests."""
        with self._lock:
            self._queue.clear()
            self._responder = None
            self._requests.clear()

    # --- recording ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def calls(self) -> list[RecordedRequest]:
        """The generation requests (chat completions / messages) only."""
        return [r for r in self.requests if r.path.endswith(self.generation_path)]

    @property
    def last(self) -> RecordedRequest:
        calls = self.calls
        if not calls:
            raise AssertionError(f"the {self.name} received no generation request")
        return calls[-1]

    def bodies(self) -> list[bytes]:
        """The raw bytes of every request body (for "no secret left" assertions)."""
        return [r.raw_body for r in self.requests]

    def count(self, path_contains: str | None = None) -> int:
        """How many requests were received (whose path contains ``path_contains``)."""
        return sum(1 for r in self.requests if path_contains is None or path_contains in r.path)

    # --- protocol hooks ----------------------------------------------------------------

    # authenticate: None lets the request through; route: answer a request that is not a
    # generation request; render: a reply in the protocol; error: a fault in the protocol.
    @abstractmethod
    def authenticate(self, request: RecordedRequest) -> HttpAnswer | None: ...
    @abstractmethod
    def route(self, request: RecordedRequest) -> HttpAnswer: ...
    @abstractmethod
    def render(self, request: RecordedRequest, reply: Reply) -> HttpAnswer | StreamAnswer: ...
    @abstractmethod
    def error(self, fault: Fault) -> HttpAnswer: ...

    # --- serving -----------------------------------------------------------------------

    def _next(self, request: RecordedRequest) -> Reply | Fault:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            responder, default, number = self._responder, self.default, len(self._requests)
        chosen = responder(request) if responder is not None else None
        if chosen is None:
            chosen = default
        if chosen is None:
            message = f"{self.name}: no scripted reply left (request {number} to {request.path})"
            return Fault.status(500, message=message)
        return chosen

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def wait_for(self, hold: threading.Event) -> None:
        """Wait until the test sets ``hold``, the fake stops, or HOLD_TIMEOUT passes."""
        deadline = time.monotonic() + HOLD_TIMEOUT
        while not hold.wait(0.02) and not self._stopping.is_set():
            if time.monotonic() > deadline:
                return

    def answer(self, request: RecordedRequest) -> Answer:
        with self._lock:
            self._requests.append(request)
        self.sleep(self.latency)
        refused = self.authenticate(request)
        if refused is not None:
            return refused
        if request.method != "POST" or not request.path.endswith(self.generation_path):
            return self.route(request)
        try:
            chosen = self._next(request)
            if isinstance(chosen, Fault):
                if chosen.kind == "status":
                    return self.error(chosen)
                if chosen.kind == "disconnect" and not (request.stream and chosen.after_events):
                    return None  # hang up without an answer
            reply = chosen if isinstance(chosen, Reply) else chosen.then or self.default
            if not isinstance(reply, Reply):
                reply = Reply.text(LATE_TEXT)
            if isinstance(chosen, Fault):
                self.sleep(chosen.seconds)
            reply = reply.resolve(request)
            self.sleep(reply.delay)
            rendered = self.render(request, reply)
        except Exception as e:  # a broken script or responder: a readable 500, not a hang-up
            with self._lock:
                self.errors.append(e)
            message = f"{self.name}: {e}" if isinstance(e, ScriptError) else f"{self.name}: {e!r}"
            return self.error(Fault.status(500, message=message))
        if isinstance(chosen, Fault) and isinstance(rendered, StreamAnswer):
            rendered.cut_after = chosen.after_events if chosen.kind == "disconnect" else None
        return rendered


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 resets connections when many arrive at once
    fake: LlmFake

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client that timed out and hung up is expected in fault tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer
    timeout = 30  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # each SSE event leaves at once

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        split = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            raw_body=raw,
            json=parsed,
        )
        answer = self.server.fake.answer(request)
        try:
            if answer is None:
                self.close_connection = True
            elif isinstance(answer, HttpAnswer):
                self._send(answer)
            else:
                self._stream(answer)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _send(self, answer: HttpAnswer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self._headers(answer.headers)
        self.end_headers()
        self.wfile.write(answer.body)

    def _stream(self, answer: StreamAnswer) -> None:
        fake = self.server.fake
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self._headers(answer.headers)
        self.end_headers()
        deltas = 0
        for number, event in enumerate(answer.events):
            if answer.cut_after is not None and number >= answer.cut_after:
                self.close_connection = True  # the chunked body never ends: a broken stream
                return
            if number:
                fake.sleep(fake.stream_interval)
            data = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            deltas += event.delta
            if answer.hold is not None and event.delta and deltas == answer.hold_after:
                fake.wait_for(answer.hold)
        self.wfile.write(b"0\r\n\r\n")

    def _headers(self, headers: Mapping[str, str]) -> None:
        for name, value in headers.items():
            self.send_header(name, value)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def retry_headers(fault: Fault) -> dict[str, str]:
    headers = dict(fault.headers)
    if fault.retry_after is not None:
        seconds = fault.retry_after
        headers["retry-after"] = str(int(seconds)) if seconds == int(seconds) else str(seconds)
    return headers


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"
