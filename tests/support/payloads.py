"""Alertmanager webhook payloads as Alertmanager 0.2x sends them, for tests."""

from __future__ import annotations

import copy
import json
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"


def am_alert(
    fingerprint: str,
    *,
    alertname: str = "KubePodCrashLooping",
    status: str = "firing",
    starts_at: str = "2026-11-26T03:00:00Z",
    ends_at: str = ZERO_TIME,
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": alertname, "severity": "warning", **labels},
        "annotations": {"summary": f"{alertname} on {labels.get('pod', 'something')}"},
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1",
        "fingerprint": fingerprint,
    }


def am_notification(*alerts: dict[str, Any], receiver: str = "oncallm") -> dict[str, Any]:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "receiver": receiver,
        "status": status,
        "alerts": list(alerts),
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": "{}:" + f'{{alertname="{alerts[0]["labels"]["alertname"]}"}}',
        "truncatedAlerts": 0,
    }


def resolved(notification: dict[str, Any], ends_at: str = "2026-11-26T04:00:00Z") -> dict[str, Any]:
    out = copy.deepcopy(notification)
    out["status"] = "resolved"
    for alert in out["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = ends_at
    return out


def body(notification: dict[str, Any]) -> bytes:
    return json.dumps(notification).encode()
