"""Alertmanager webhook ingest: `POST /api/v1/alerts/alertmanager` (and `/webhook`).

Answers 202 once the notification is committed and before any triage work starts; the
worker is merely woken. Optional shared-secret auth matches what Alertmanager's
``http_config`` sends (``authorization`` bearer credentials or ``basic_auth``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from oncallm.api.openapi import WEBHOOK_BODY, problem_responses
from oncallm.api.schemas import AcceptedAlert, IngestAccepted
from oncallm.config import WebhookAuthMode, WebhookSettings
from oncallm.errors import MalformedJson, Unauthorized, UnsupportedMediaType
from oncallm.ingest.alertmanager import AlertmanagerWebhook, IngestLimits, normalise
from oncallm.observability import (
    DUPLICATES_ABSORBED,
    NOTIFICATIONS_RECEIVED,
    OCCURRENCES_CREATED,
)
from oncallm.state import AppState, app_state
from oncallm.store.ingest import record_notification

router = APIRouter(tags=["ingest"])
log = structlog.get_logger("oncallm.ingest")

_ERRORS = problem_responses(400, 401, 413, 415, 422, 503)


def _check_auth(request: Request, settings: WebhookSettings) -> None:
    if settings.auth is WebhookAuthMode.none:
        return
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if settings.auth is WebhookAuthMode.bearer:
        assert settings.token is not None
        expected = settings.token.get_secret_value()
        if scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), expected.encode()
        ):
            return
        raise Unauthorized("a valid bearer token is required (webhook.auth=bearer)")
    assert settings.password is not None
    assert settings.username is not None
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        user_ok = hmac.compare_digest(user.encode(), settings.username.encode())
        password_ok = hmac.compare_digest(
            password.encode(), settings.password.get_secret_value().encode()
        )
        if user_ok and password_ok:
            return
    raise Unauthorized("valid basic auth credentials are required (webhook.auth=basic)")


def webhook_auth(request: Request, state: Annotated[AppState, Depends(app_state)]) -> None:
    _check_auth(request, state.settings.webhook)


def parse_webhook(body: bytes) -> AlertmanagerWebhook:
    """Strict parse: UTF-8 JSON only (no UTF-16 guessing), errors located under ``body``."""
    try:
        return AlertmanagerWebhook.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise MalformedJson("the request body is not valid JSON (UTF-8 encoded)") from exc
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from exc


async def _ingest(request: Request, state: AppState) -> JSONResponse:
    state.ingest_in_flight += 1
    state.ingest_idle.clear()
    try:
        return await _accept(request, state)
    finally:
        state.ingest_in_flight -= 1
        if not state.ingest_in_flight:
            state.ingest_idle.set()


async def _accept(request: Request, state: AppState) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    if "json" not in content_type.lower():
        # Also keeps browsers from posting here cross-site without a CORS preflight.
        raise UnsupportedMediaType(
            "send the body as JSON with Content-Type: application/json "
            f"(got {content_type or 'no Content-Type'})"
        )
    body = await request.body()
    payload = parse_webhook(body)
    webhook = state.settings.webhook
    notification = normalise(
        payload,
        IngestLimits(webhook.max_alerts, webhook.max_labels, webhook.max_value_bytes),
    )
    outcome = await record_notification(
        state.db, notification, body, state.settings.jobs.max_attempts
    )
    NOTIFICATIONS_RECEIVED.labels(notification.source).inc()
    if outcome.duplicate_notification:
        DUPLICATES_ABSORBED.labels("notification").inc()
    else:
        OCCURRENCES_CREATED.inc(len(outcome.created))
        if outcome.unchanged:
            DUPLICATES_ABSORBED.labels("alert").inc(outcome.unchanged)
    if outcome.jobs_enqueued:
        state.worker_wakeup.set()
    log.info(
        "notification received",
        receiver=notification.receiver,
        alerts=len(notification.alerts),
        created=len(outcome.created),
        resolved=len(outcome.resolved),
        duplicate=outcome.duplicate_notification,
    )
    accepted = IngestAccepted(
        alerts=[
            AcceptedAlert(
                fingerprint=a.fingerprint,
                alertname=a.alertname,
                url=f"{state.base_url}/alerts/{a.fingerprint}",
            )
            for a in notification.alerts
        ],
        duplicate=outcome.duplicate_notification,
    )
    return JSONResponse(accepted.model_dump(), status_code=202)


async def ingest(request: Request, state: Annotated[AppState, Depends(app_state)]) -> JSONResponse:
    return await _ingest(request, state)


for _path, _summary in (
    (
        "/api/v1/alerts/alertmanager",
        "Receive an Alertmanager webhook notification (payload version 4)",
    ),
    ("/webhook", "Alias of /api/v1/alerts/alertmanager for existing OncallM setups"),
):
    router.add_api_route(
        _path,
        ingest,
        methods=["POST"],
        status_code=202,
        response_model=IngestAccepted,
        responses=_ERRORS,
        dependencies=[Depends(webhook_auth)],
        openapi_extra=WEBHOOK_BODY,
        summary=_summary,
        operation_id="ingest_alertmanager" if _path.startswith("/api") else "ingest_webhook_alias",
    )
