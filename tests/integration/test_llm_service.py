"""The LLM path in the running service: an alert posted to the webhook is triaged by the
embedded worker against a snapshot cluster, the model's explanation streams to
``GET /api/v1/triages/{id}/stream`` while the model is still writing it, ``/metrics``
counts its tokens and cost, and the same context a second time is answered from the
database cache without asking the model.

The app runs under a real uvicorn server (as in test_triage_stream) with its embedded
worker; the model is the scripted OpenAI-compatible server on loopback, whose ``hold``
pauses its answer mid-stream until the test has seen explanation text arrive.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from oncallm.llm.breaker import reset_breakers
from tests.conftest import make_settings
from tests.fakes.openai_api import OpenAIFake, Reply
from tests.integration.test_triage_stream import Event, listening, serving
from tests.support.llm_cases import PRICE, case_dir, correct_verdict, price_of, run_triage
from tests.support.schema import assert_valid_result

CASE = "crashloop-go-nil-pointer"
CLUSTER = "prod-eu-1"  # the case's alert label
WEBHOOK = "/api/v1/alerts/alertmanager"
WAIT = 60.0  # seconds for any one thing to happen, on a loaded machine
PROMPT_TOKENS, COMPLETION_TOKENS = 2100, 340


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    reset_breakers()
    yield
    reset_breakers()


async def _triage_of(http: httpx.AsyncClient, fingerprint: str) -> dict[str, Any]:
    """The alert's triage record, as soon as there is one."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while asyncio.get_running_loop().time() < deadline:
        response = await http.get(f"/api/v1/alerts/{fingerprint}")
        if response.status_code == 200 and response.json().get("triage"):
            triage: dict[str, Any] = response.json()["triage"]
            return triage
        await asyncio.sleep(0.05)
    raise AssertionError(f"no triage for alert {fingerprint}")


async def _finished(http: httpx.AsyncClient, triage_id: int) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + WAIT
    while asyncio.get_running_loop().time() < deadline:
        triage: dict[str, Any] = (await http.get(f"/api/v1/triages/{triage_id}")).json()
        if triage["status"] in ("succeeded", "failed"):
            return triage
        await asyncio.sleep(0.05)
    raise AssertionError(f"triage {triage_id} did not finish")


def _metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def _explained(events: list[Event]) -> str:
    return "".join(e.data["delta"] for e in events if e.name == "explanation")


async def test_the_explanation_streams_then_metrics_count_it_and_the_cache_answers_again(
    database_url: str,
) -> None:
    base = await run_triage(CASE, None)
    verdict = correct_verdict(CASE, base.result)
    # Long enough that the held stream stops well inside the explanation.
    verdict["explanation"] = (
        "Release 3.2.0 of orders-api panics seconds after start with a nil pointer "
        "dereference in promotions.(*Rule).Applies while it loads the promotions catalog "
        f"{' '.join(f'[{e}]' for e in base.result['root_cause']['evidence'])}. The "
        "container exits with code 2 and Kubernetes backs off between restarts, so the "
        "new ReplicaSet never becomes available and the rollout stalls while the three "
        "3.1.4 pods keep serving. Roll the Deployment back to 3.1.4, then fix the nil "
        "rule handling before releasing again."
    )
    model = f"svc-{uuid.uuid4().hex[:8]}"  # its own metric series: the registry is global
    hold = threading.Event()
    alert = json.loads((case_dir(CASE) / "alert.json").read_text())
    with OpenAIFake() as fake:
        fake.script(
            Reply.output(
                verdict,
                hold=hold,
                hold_after=12,
                prompt_tokens=PROMPT_TOKENS,
                completion_tokens=COMPLETION_TOKENS,
            )
        )
        settings = make_settings(
            database_url,
            kubernetes={"clusters": {CLUSTER: {"snapshot": str(case_dir(CASE) / "snapshot")}}},
            llm={
                "provider": "openai-compatible",
                "base_url": fake.base_url,
                "api_key": fake.api_key,
                "models": {"fast": model, "strong": model},
                "prices": {model: PRICE},
            },
        )
        async with serving(settings) as http:
            http.timeout = httpx.Timeout(WAIT)
            assert (await http.post(WEBHOOK, json=alert)).status_code == 202
            fingerprint = alert["alerts"][0]["fingerprint"]
            triage_id = (await _triage_of(http, fingerprint))["id"]

            async with listening(http, triage_id) as reader:
                before: list[Event] = []
                while True:
                    event = await reader.next(timeout=WAIT)
                    assert event is not None, f"the stream ended early: {before}"
                    before.append(event)
                    assert event.name != "done", f"done before any explanation: {before}"
                    if event.name == "explanation":
                        break
                # The model is still mid-answer (held): only part of the text is here.
                assert len(fake.calls) == 1
                partial = _explained(before)
                assert partial
                assert verdict["explanation"].startswith(partial)
                assert len(partial) < len(verdict["explanation"])
                hold.set()
                after = await asyncio.wait_for(reader.rest(), WAIT)

            names = [e.name for e in before + after]
            assert names[-1] == "done", names
            done = after[-1].data
            assert done["status"] == "completed"
            llm = done["llm"]
            assert llm is not None
            assert llm["error"] is None, llm["error"]
            assert llm["agreement"]["verdict"] == "agrees"
            assert _explained(before + after) == llm["explanation"] == verdict["explanation"]
            assert done["root_cause"]["confidence"] > base.result["root_cause"]["confidence"]
            result = (await _finished(http, triage_id))["result"]
            assert_valid_result(result)
            assert result["llm"]["tokens"]["prompt"] == PROMPT_TOKENS

            metrics = (await http.get("/metrics")).text
            labels = {"provider": "openai-compatible", "model": model}
            tokens = "oncallm_llm_tokens_total"
            assert _metric(metrics, tokens, **labels, kind="prompt") == PROMPT_TOKENS
            assert _metric(metrics, tokens, **labels, kind="completion") == COMPLETION_TOKENS
            cost = _metric(metrics, "oncallm_llm_cost_usd_total", **labels)
            assert cost == pytest.approx(price_of(PROMPT_TOKENS, COMPLETION_TOKENS))
            assert cost > 0

            # The same alert context again (a new alert: another fingerprint): the stored
            # answer is reused, the model is not asked, and nothing more is spent.
            again = copy.deepcopy(alert)
            again["alerts"][0]["fingerprint"] = "0123456789abcdef"
            assert (await http.post(WEBHOOK, json=again)).status_code == 202
            second_id = (await _triage_of(http, "0123456789abcdef"))["id"]
            assert second_id != triage_id
            second = (await _finished(http, second_id))["result"]
            assert second["llm"]["cached"] is True
            assert second["llm"]["explanation"] == verdict["explanation"]
            assert second["root_cause"] == result["root_cause"]
            assert len(fake.calls) == 1
            async with listening(http, second_id) as reader:
                replay = await asyncio.wait_for(reader.rest(), WAIT)
            assert _explained(replay) == verdict["explanation"]
            metrics = (await http.get("/metrics")).text
            assert _metric(metrics, tokens, **labels, kind="prompt") == PROMPT_TOKENS
            calls = "oncallm_llm_calls_total"
            assert _metric(metrics, calls, **labels, outcome="cached") == 1
            assert _metric(metrics, calls, **labels, outcome="ok") == 1
