"""The triage pipeline entry point: one alert in, one triage result out.

Steps run in order, each taking the previous output and returning a new value; the
pipeline times every step and reports progress so the UI can show where a triage is.
Today the pipeline resolves targets; gathering, analysis and reasoning plug in behind
this same entry point.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from oncallm.triage.targets import AlertTargets, resolve_targets

RESULT_SCHEMA = "oncallm.triage/v1"

Progress = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class AlertInput:
    fingerprint: str
    alertname: str
    status: str
    starts_at: datetime
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class PipelineOutput:
    targets: AlertTargets
    result: dict[str, Any]


async def run_pipeline(alert: AlertInput, progress: Progress) -> PipelineOutput:
    started = time.perf_counter()
    timings: dict[str, float] = {}

    await progress("targets")
    step_start = time.perf_counter()
    targets = resolve_targets(alert.labels)
    timings["targets"] = round((time.perf_counter() - step_start) * 1000, 3)

    timings["total"] = round((time.perf_counter() - started) * 1000, 3)
    target_dicts = [t.model_dump() for t in targets.targets]
    result: dict[str, Any] = {
        "schema": RESULT_SCHEMA,
        "alert": {
            "fingerprint": alert.fingerprint,
            "alertname": alert.alertname,
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations),
            "startsAt": alert.starts_at.isoformat(),
            "status": alert.status,
        },
        "status": "completed",
        "cluster": targets.cluster,
        "targets": target_dicts,
        "steps": [k for k in timings if k != "total"],
        "timings_ms": timings,
    }
    return PipelineOutput(targets=targets, result=result)
