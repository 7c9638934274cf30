"""Logs keep their tail, and the error lines that scrolled out of it."""

from __future__ import annotations

from datetime import UTC, datetime

from oncallm.triage.builder import ContextBuilder
from oncallm.triage.context import AlertInput
from oncallm.triage.targets import resolve_targets


def test_the_first_error_survives_a_long_tail_of_retries() -> None:
    labels = {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "api-1"}
    now = datetime(2026, 11, 26, tzinfo=UTC)
    alert = AlertInput("f", "KubePodCrashLooping", "firing", now, labels, {})
    builder = ContextBuilder(
        alert, resolve_targets(labels), cluster=None, source_name="snapshot", now=now
    )
    lines = ["starting api 1.4.2", "FATAL: password authentication failed for user app"]
    lines += [f"retrying in 1s (attempt {n})" for n in range(300)]
    builder.add_log("shop", "api-1", "api", True, "\n".join(lines), keep_last=200)
    excerpt = builder.build().log("shop", "api-1", "api", True)
    assert excerpt is not None
    assert excerpt.lines[0] == "FATAL: password authentication failed for user app"
    assert excerpt.lines[-1] == "retrying in 1s (attempt 299)"
    assert len(excerpt.lines) == 201
    assert "starting api 1.4.2" not in excerpt.lines
