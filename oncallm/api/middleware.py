"""ASGI middleware: request ids and HTTP latency metrics.

Plain ASGI rather than BaseHTTPMiddleware: it adds little to the request path, which
matters on the ingest hot path. A declared ``Content-Length`` over the body limit is
refused here with a problem document before anything is read; a chunked body is cut off
as soon as it passes the limit (an HTTP 413 raised from ``receive``, which the problem
handlers render like any other error).
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oncallm.api.problems import problem_response
from oncallm.observability import HTTP_LATENCY

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        offered = ""
        declared_length = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                offered = value.decode("latin-1")
            elif name == b"content-length":
                declared_length = value
        # A caller's id is kept only if it is safe to echo into logs and headers.
        request_id = offered if _REQUEST_ID_RE.match(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            if declared_length.isdigit() and int(declared_length) > self.max_body_bytes:
                await self._refuse_too_large(scope, receive, send_with_id)
                return
            await self.app(scope, self._limited(receive), send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            HTTP_LATENCY.labels(template, scope["method"], str(status)).observe(
                time.perf_counter() - started
            )
            structlog.contextvars.unbind_contextvars("request_id")

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit, detail = self.max_body_bytes, self._too_large()

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, detail)
            return message

        return limited_receive

    def _too_large(self) -> str:
        return f"request body exceeds the {self.max_body_bytes}-byte limit (server.max_body_bytes)"

    async def _refuse_too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The unread body is left on the socket, so the connection cannot be reused.
        response = problem_response(
            Request(scope, receive), 413, self._too_large(), headers={"connection": "close"}
        )
        await response(scope, receive, send)
