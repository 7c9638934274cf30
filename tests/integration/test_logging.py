"""Production logs: one JSON object per line, carrying the request id, never the body
or the credentials of a request."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx

from tests.support.payloads import am_alert, am_notification
from tests.support.services import oncallm_env, start_server

TOKEN = "s3cr3t-webhook-token-1234"


def test_json_logs_have_request_ids_and_no_secrets(tmp_path: Path) -> None:
    env = oncallm_env(
        f"sqlite+aiosqlite:///{tmp_path / 'o.db'}",
        webhook__auth="bearer",
        webhook__token=TOKEN,
    )
    server = start_server(env, tmp_path)
    note = am_notification(am_alert("5000000000000001", namespace="shop", pod="api-1"))
    note["alerts"][0]["annotations"]["description"] = "BODY-MARKER password=hunter2"
    try:
        ok = httpx.post(
            f"{server.base_url}/api/v1/alerts/alertmanager",
            json=note,
            headers={"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "req-ok-1"},
            timeout=10,
        )
        denied = httpx.post(
            f"{server.base_url}/api/v1/alerts/alertmanager",
            json=note,
            headers={"Authorization": "Bearer wrong-token-5678", "X-Request-ID": "req-denied"},
            timeout=10,
        )
        assert (ok.status_code, denied.status_code) == (202, 401)
    finally:
        # uvicorn re-raises the signal after a clean shutdown, so supervisors see SIGTERM.
        assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    text = server.log()
    assert '"event": "worker stopped"' in text
    assert '"event": "Application shutdown complete."' in text
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    received = [r for r in records if r.get("event") == "notification received"]
    assert [r["request_id"] for r in received] == ["req-ok-1"]
    assert all({"timestamp", "level", "event"} <= r.keys() for r in records)
    for secret in (TOKEN, "wrong-token-5678", "BODY-MARKER", "hunter2"):
        assert secret not in text
