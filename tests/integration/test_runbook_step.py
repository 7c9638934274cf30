"""The runbook step of a triage: guidance attached as evidence, fetched URLs, the LLM's view."""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from oncallm.config import Settings, TriageSettings
from oncallm.config_runbooks import RunbooksSettings
from oncallm.samples import sample_cluster
from oncallm.sources.snapshot import SnapshotSource
from oncallm.triage.context import AlertInput
from oncallm.triage.guidance import RunbookGuide
from oncallm.triage.oneshot import load_alerts, triage_alerts
from tests.fakes.llm_script import Reply
from tests.fakes.openai_api import OpenAIFake
from tests.support.schema import assert_valid_result

SAMPLES = sample_cluster().parent
TEAM_RUNBOOK = b"""<html><body><h1>Checkout runbook</h1>
<h2>Database connection refused</h2><p>Page the data team (#data-oncall) when postgres
is down; never restart checkout in a loop.</p></body></html>"""


@pytest.fixture
def team_site() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/runbooks/checkout":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(TEAM_RUNBOOK)))
            self.end_headers()
            self.wfile.write(TEAM_RUNBOOK)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def crashloop_alert(runbook_url: str | None = None) -> AlertInput:
    alert = load_alerts(SAMPLES / "01-crashloop.json")[0]
    if runbook_url is None:
        return alert
    return AlertInput(
        fingerprint=alert.fingerprint,
        alertname=alert.alertname,
        status=alert.status,
        starts_at=alert.starts_at,
        labels=alert.labels,
        annotations={**alert.annotations, "runbook_url": runbook_url},
    )


def triage(alert: AlertInput, settings: RunbooksSettings) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        guide = RunbookGuide(settings)
        source = SnapshotSource(sample_cluster())
        results = await triage_alerts([alert], source, TriageSettings(), runbooks=guide)
        return results[0]

    return asyncio.run(go())


def runbook_items(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in result["evidence"] if e["type"] == "runbook"]


def test_the_shipped_runbook_for_the_alert_is_attached_as_evidence() -> None:
    result = triage(crashloop_alert(), RunbooksSettings())
    items = runbook_items(result)
    assert items, "KubePodCrashLooping has a shipped runbook"
    assert all(i["id"].startswith("runbook:kube-pod-crash-looping.md#") for i in items[:2])
    assert "/work/" not in items[0]["id"], "ids carry no host paths"
    assert "Pod is crash looping" in items[0]["source"]
    # guidance, not proof: no finding cites a runbook
    cited = {e for f in result["findings"] for e in f["evidence"]}
    assert not cited & {i["id"] for i in items}
    assert_valid_result(result)


def test_no_runbooks_when_the_shipped_set_is_off_and_none_configured() -> None:
    result = triage(crashloop_alert(), RunbooksSettings(include_shipped=False))
    assert runbook_items(result) == []


def test_an_allowed_runbook_url_is_fetched_first_and_a_dead_one_is_a_gap(team_site: str) -> None:
    allowed = RunbooksSettings(allowed_hosts=[f"http://{team_site}"])
    result = triage(crashloop_alert(f"http://{team_site}/runbooks/checkout"), allowed)
    first = runbook_items(result)[0]
    assert first["id"] == f"runbook:http://{team_site}/runbooks/checkout" or first["id"].startswith(
        f"runbook:http://{team_site}/runbooks/checkout"
    )
    assert "Page the data team" in first["excerpt"]

    missing = triage(crashloop_alert(f"http://{team_site}/runbooks/nope"), allowed)
    assert any(g["source"].startswith("runbook http://") for g in missing["gaps"])
    assert runbook_items(missing), "the shipped runbook still helps"
    assert missing["root_cause"] == result["root_cause"]

    not_allowed = triage(
        crashloop_alert(f"http://{team_site}/runbooks/checkout"), RunbooksSettings()
    )
    assert all("Page the data team" not in i["excerpt"] for i in runbook_items(not_allowed))
    assert not any(g["source"].startswith("runbook") for g in not_allowed["gaps"])


def test_the_model_reads_runbook_excerpts_and_may_cite_them() -> None:
    baseline = triage(crashloop_alert(), RunbooksSettings())
    runbook_id = runbook_items(baseline)[0]["id"]
    root = baseline["root_cause"]
    verdict = {
        "explanation": f"The disk is full; the runbook says what to do [{runbook_id}].",
        "root_cause": {
            "category": root["category"],
            "culprit": root["resource"],
            "summary": root["summary"],
            "confidence": 0.9,
            "evidence": [*root["evidence"], runbook_id],
        },
    }
    with OpenAIFake(api_key=None) as llm:
        llm.default = Reply.output(verdict)
        settings = Settings.model_validate(
            {"llm": {"provider": "openai-compatible", "base_url": llm.base_url}}
        )

        async def go() -> dict[str, Any]:
            from oncallm.llm.reasoner import Reasoner

            reasoner = Reasoner.from_settings(settings.llm)
            guide = RunbookGuide(settings.runbooks)
            source = SnapshotSource(sample_cluster())
            alerts = [crashloop_alert()]
            return (await triage_alerts(alerts, source, TriageSettings(), reasoner, guide))[0]

        result = asyncio.run(go())
        prompt = llm.calls[-1].prompt_text  # the strong model's (a condense call may come first)
    assert "## Runbook excerpts" in prompt
    assert runbook_id in prompt
    assert result["llm"]["error"] is None
    assert runbook_id in result["llm"]["root_cause"]["evidence"]
    assert result["llm"]["root_cause"]["verified"] is True
    assert copy.deepcopy(result["root_cause"])["confirmed_by_llm"] is True
