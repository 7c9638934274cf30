"""RFC 9457 problem details: every error response of the API, in one shape.

``type`` is a stable URI per problem kind, ``instance`` the request path, and every
problem carries the request id so a user's report can be matched to the log line.
Validation problems list each offending field. Stack traces never reach a client.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from oncallm.errors import OncallmError
from oncallm.ingest.alertmanager import PayloadLimitExceeded
from oncallm.observability import NOTIFICATIONS_REJECTED

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://oncallm.dev/problems/"
INGEST_PATHS = ("/api/v1/alerts/alertmanager", "/webhook")

log = structlog.get_logger("oncallm.api")

_STATUS_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Request did not validate"),
    500: ("internal-error", "Internal error"),
    503: ("storage-unavailable", "Service unavailable"),
}


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    default_slug, default_title = _STATUS_SLUGS.get(status, ("error", "Error"))
    slug = slug or default_slug
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title or default_title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request.scope.get("state", {}).get("request_id", ""),
    }
    if extra:
        body.update(extra)
    if request.url.path in INGEST_PATHS:
        NOTIFICATIONS_REJECTED.labels(slug).inc()
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    fields = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            where, path = loc[0], ".".join(loc[1:])
        else:
            where, path = "body", ".".join(loc)
        # The offending input is left out on purpose: it may be huge or carry secrets.
        fields.append(
            {"in": where, "field": path, "message": err.get("msg", ""), "type": err.get("type", "")}
        )
    return fields


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = _field_errors(exc)
    if any(f["field"] == "version" and f["in"] == "body" for f in fields):
        return problem_response(
            request,
            422,
            'unsupported Alertmanager webhook payload version; OncallM accepts version "4" '
            "(Alertmanager 0.16 and later)",
            slug="unsupported-version",
            title="Unsupported payload version",
            extra={"errors": fields},
        )
    summary = "; ".join(f"{f['field'] or f['in']}: {f['message']}" for f in fields[:5])
    return problem_response(
        request, 422, f"{len(fields)} invalid field(s): {summary}", extra={"errors": fields}
    )


async def _limit_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PayloadLimitExceeded)
    return problem_response(
        request,
        422,
        exc.message,
        slug="limit-exceeded",
        title="Payload exceeds a limit",
        extra={
            "errors": [
                {"in": "body", "field": exc.field, "message": exc.message, "type": "limit_exceeded"}
            ]
        },
    )


async def _oncallm_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OncallmError)
    headers = {"WWW-Authenticate": 'Bearer realm="oncallm"'} if exc.status == 401 else None
    if exc.status >= 500:
        log.error("request failed", error=exc.detail, slug=exc.slug)
    return problem_response(
        request, exc.status, exc.detail, slug=exc.slug, title=exc.title, headers=headers
    )


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(request, exc.status_code, detail, headers=headers)


async def _storage_handler(request: Request, exc: Exception) -> JSONResponse:
    # Alertmanager retries 5xx answers, so a notification refused here is not lost.
    log.error("database unavailable", error=f"{type(exc).__name__}: {str(exc)[:200]}")
    return problem_response(
        request,
        503,
        "the database is unavailable; nothing was stored, retry later",
        slug="storage-unavailable",
        title="Storage unavailable",
        headers={"Retry-After": "5"},
    )


async def _unhandled_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", path=request.url.path)
    return problem_response(
        request, 500, "an internal error occurred; quote the request id when reporting it"
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(PayloadLimitExceeded, _limit_handler)
    app.add_exception_handler(OncallmError, _oncallm_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    for storage_error in (
        OperationalError,
        InterfaceError,
        SQLAlchemyTimeout,
        OSError,
        TimeoutError,
    ):
        app.add_exception_handler(storage_error, _storage_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
