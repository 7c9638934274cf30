"""What the alert page says about a triage's progress, its logs and a resolved incident."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from oncallm.web.presenters import highlight, incident_summary, triage_steps


def _steps(**triage: Any) -> list[tuple[str, str]]:
    return [(s.label, s.state) for s in triage_steps(triage)]


def test_a_queued_triage_is_at_its_first_step() -> None:
    assert _steps(status="queued", step="targets")[:2] == [
        ("Queued", "current"),
        ("Reading the cluster", "todo"),
    ]


@pytest.mark.parametrize(
    ("step", "current"),
    [("gather", "Reading the cluster"), ("metrics", "Reading metrics"),
     ("runbooks", "Analyzing"), ("reason", "Asking the model")],
)  # fmt: skip
def test_a_running_triage_names_its_stage_in_words(step: str, current: str) -> None:
    steps = _steps(status="running", step=step)
    assert (current, "current") in steps
    done = [label for label, state in steps if state == "done"]
    assert done[0] == "Queued"
    assert steps[-1] == ("Done", "todo")


def test_without_a_model_the_model_step_is_not_shown() -> None:
    labels = [label for label, _ in _steps(status="succeeded", step="recommend", result={})]
    assert "Asking the model" not in labels
    assert all(state == "done" for _, state in _steps(status="succeeded", result={}))


def test_a_failed_triage_marks_where_it_stopped() -> None:
    steps = _steps(status="failed", step="gather")
    assert ("Reading the cluster", "failed") in steps
    assert steps[-1] == ("Failed", "failed")


def test_log_lines_that_tell_are_marked_and_everything_is_escaped() -> None:
    html = str(highlight("starting\npanic: <nil> map\nok", "log"))
    assert html == "starting\n<mark>panic: &lt;nil&gt; map</mark>\nok"
    assert str(highlight("<b>x</b>", "event")) == "&lt;b&gt;x&lt;/b&gt;"


def test_a_firing_alert_has_no_summary_and_a_failed_triage_says_so() -> None:
    start = datetime(2026, 11, 26, 3, 5, tzinfo=UTC)
    alert: dict[str, Any] = {"status": "firing", "alertname": "X", "starts_at": start}
    assert incident_summary(alert) == []
    alert |= {
        "status": "resolved",
        "ends_at": datetime(2026, 11, 26, 5, 17, tzinfo=UTC),
        "triage": {"status": "failed", "last_error": "cluster unreachable", "result": None},
        "timeline": [],
        "history": [{"starts_at": start}, {"starts_at": datetime(2026, 11, 20, tzinfo=UTC)}],
    }
    lines = incident_summary(alert)
    assert (
        lines[0]
        == "X fired at 2026-11-26 03:05 UTC and resolved at 2026-11-26 05:17 UTC, after 2 h 12 min."
    )
    assert "OncallM's triage failed: cluster unreachable." in lines
    assert "No notes were added: add what was done, for the next on-call." in lines
    assert lines[-1] == "It has fired 1 time before."
