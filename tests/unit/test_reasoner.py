"""The reasoner over golden cases, with pydantic-ai's FunctionModel standing in for the model.

FunctionModel runs the real agent loop (tools, structured output, streaming) in process,
so these tests pin what the reasoner does with an answer: grounding, ranking, streaming,
follow-up limits, cache and budgets. The wire protocols are tested against the scripted
HTTP servers in tests/integration/test_llm_reasoning.py.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from oncallm.config_llm import LLMSettings
from oncallm.llm.ports import (
    MemoryAnswerCache,
    MemoryUsageBook,
    UsageRecord,
)
from oncallm.llm.reasoner import Reasoner
from oncallm.sources.snapshot import SnapshotSource
from tests.support.golden import CASES_DIR, golden_triage
from tests.support.schema import assert_valid_result

CASE = "configmap-missing-key-behind-service"

Script = Callable[[list[ModelMessage], AgentInfo], list[dict[str, Any]]]


def settings(**overrides: Any) -> LLMSettings:
    values: dict[str, Any] = {"provider": "openai-compatible", "output_mode": "tool"}
    values.update(overrides)
    return LLMSettings.model_validate(values)


def tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


class ScriptedModel:
    """Answers each request with the next list of tool calls from ``turns``.

    A turn is a list of ``{"tool": name, "args": {...}}``; the special tool ``answer``
    becomes the output tool, streamed in small pieces like a real provider does.
    """

    def __init__(self, turns: list[list[dict[str, Any]]]) -> None:
        self.turns = turns
        self.requests: list[list[ModelMessage]] = []
        self.model = FunctionModel(stream_function=self._stream)

    async def _stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[DeltaToolCalls]:
        self.requests.append(list(messages))
        turn = self.turns[min(len(self.requests), len(self.turns)) - 1]
        for index, call in enumerate(turn):
            name = info.output_tools[0].name if call["tool"] == "answer" else call["tool"]
            args = json.dumps(call["args"])
            for start in range(0, len(args), 40):
                yield {index: DeltaToolCall(name=name if start == 0 else None,
                                            json_args=args[start : start + 40])}  # fmt: skip


def answer(result: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A verdict agreeing with the deterministic root, citing its evidence."""
    root = result["root_cause"]
    hypothesis = {
        "category": root["category"],
        "culprit": root["resource"],
        "summary": root["summary"],
        "confidence": 0.9,
        "evidence": root["evidence"],
    }
    hypothesis.update(overrides)
    return {
        "explanation": "The pods crash because the key is missing "
        + " ".join(f"[{e}]" for e in root["evidence"])
        + ". Fix the ConfigMap, then restart the rollout.",
        "root_cause": hypothesis,
        "alternatives": [],
        "recommendations": [],
    }


def run(
    script: ScriptedModel,
    llm: LLMSettings | None = None,
    *,
    usage: MemoryUsageBook | None = None,
    cache: MemoryAnswerCache | None = None,
    case: str = CASE,
    fast_model: FunctionModel | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The reasoner over a golden case's deterministic result; (result, streamed deltas)."""
    ctx, deterministic = golden_triage(case)
    result = copy.deepcopy(deterministic)
    result["timings_ms"] = {"total": 1.0}  # the golden helper leaves timings out
    deltas: list[str] = []

    async def sink(delta: str) -> None:
        deltas.append(delta)

    async def go() -> None:
        reasoner = Reasoner.from_settings(llm or settings(), usage=usage, cache=cache)
        assert reasoner is not None
        reasoner.model = script.model
        reasoner.fast_model = fast_model
        source = SnapshotSource(CASES_DIR / case / "snapshot")
        try:
            await reasoner.reason(ctx, result, source, sink)
        finally:
            await source.close()
            await reasoner.aclose()

    asyncio.run(go())
    return result, deltas


def test_an_agreeing_answer_raises_confidence_and_streams_the_explanation() -> None:
    _, deterministic = golden_triage(CASE)
    script = ScriptedModel([[{"tool": "answer", "args": answer(deterministic)}]])
    result, deltas = run(script)
    llm = result["llm"]
    assert llm["error"] is None
    assert llm["agreement"]["verdict"] == "agrees"
    assert result["root_cause"]["confidence"] > deterministic["root_cause"]["confidence"]
    assert result["root_cause"]["category"] == deterministic["root_cause"]["category"]
    assert len(deltas) > 1, "the explanation arrives in pieces while it is produced"
    assert "".join(deltas) == llm["explanation"]
    assert llm["calls"] == 1
    assert llm["tokens"]["total"] > 0
    assert llm["prompt_version"] == "triage-v1"
    assert_valid_result(result)


def test_a_hallucinated_pod_is_rejected_and_the_evidence_keeps_the_lead() -> None:
    _, deterministic = golden_triage(CASE)
    made_up = {"kind": "Pod", "namespace": deterministic["root_cause"]["resource"]["namespace"],
               "name": "checkout-6d8f7c9b5-zzzzz"}  # fmt: skip
    bad = answer(deterministic, category="OOMKilled", culprit=made_up, confidence=0.99)
    result, _ = run(ScriptedModel([[{"tool": "answer", "args": bad}]]))
    assert result["root_cause"]["category"] == deterministic["root_cause"]["category"]
    assert result["llm"]["agreement"]["verdict"] == "disagrees"
    assert result["llm"]["agreement"]["ranked_first"] == "deterministic"
    assert result["llm"]["root_cause"]["verified"] is False
    assert any("checkout-6d8f7c9b5-zzzzz" in d for d in result["llm"]["grounding"]["dropped"])
    assert_valid_result(result)


def test_follow_up_reads_through_the_source_and_its_facts_become_citable() -> None:
    _, deterministic = golden_triage(CASE)
    culprit = deterministic["root_cause"]["resource"]
    lookup = {"kind": culprit["kind"], "namespace": culprit["namespace"], "name": culprit["name"]}
    cited = answer(deterministic)
    follow_id = f"object:{culprit['kind']}/{culprit['namespace']}/{culprit['name']}#summary"
    cited["root_cause"]["evidence"] = [*cited["root_cause"]["evidence"], follow_id]
    script = ScriptedModel(
        [
            [{"tool": "get_object", "args": lookup}],
            [{"tool": "get_object", "args": lookup}],  # identical: refused
            [{"tool": "answer", "args": cited}],
        ]
    )
    result, _ = run(script)
    calls = result["llm"]["followup"]["calls"]
    assert [c["outcome"].split(":")[0] for c in calls] == ["ok", "refused"]
    assert "already made this exact call" in calls[1]["outcome"]
    assert result["llm"]["root_cause"]["verified"] is True
    assert follow_id in {e["id"] for e in result["evidence"]}
    # what the model read came back through the tool, as JSON of the real object
    first_answer = tool_returns(script.requests[1])[0].content
    assert culprit["name"] in str(first_answer)


def test_follow_up_stops_at_the_round_limit() -> None:
    _, deterministic = golden_triage(CASE)
    pods = [
        {"tool": "get_events", "args": {"kind": "Namespace", "name": f"n{i}"}} for i in range(5)
    ]
    script = ScriptedModel(
        [[pods[0]], [pods[1]], [pods[2]], [{"tool": "answer", "args": answer(deterministic)}]]
    )
    result, _ = run(script, settings(followup_max_rounds=2, followup_max_calls=10))
    # rounds 1 and 2 are answered, the third is refused, then the request limit ends it
    outcomes = [c["outcome"] for c in result["llm"]["followup"]["calls"]]
    assert outcomes[2].startswith("refused: the follow-up limit of 2 rounds")
    assert result["llm"]["error"] is None


def test_a_failing_model_leaves_the_deterministic_result_and_records_why() -> None:
    _, deterministic = golden_triage(CASE)

    async def broken(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        raise ConnectionError("connection refused")
        yield ""  # pragma: no cover

    script = ScriptedModel([])
    script.model = FunctionModel(stream_function=broken)
    result, deltas = run(script)
    assert result["llm"]["error"]
    unchanged = ("root_cause", "findings", "evidence", "recommendations", "inspected", "gaps")
    assert {k: result[k] for k in unchanged} == {k: deterministic[k] for k in unchanged}
    assert deltas == []
    assert_valid_result(result)


def test_an_identical_context_is_answered_from_the_cache() -> None:
    _, deterministic = golden_triage(CASE)
    cache = MemoryAnswerCache()
    script = ScriptedModel([[{"tool": "answer", "args": answer(deterministic)}]])
    first, _ = run(script, cache=cache)
    second, deltas = run(script, cache=cache)
    assert len(script.requests) == 1
    assert second["llm"]["cached"] is True
    assert second["llm"]["tokens"]["total"] == 0
    assert second["root_cause"] == first["root_cause"]
    assert "".join(deltas) == first["llm"]["explanation"]


def test_the_daily_budget_refuses_before_any_call() -> None:
    _, deterministic = golden_triage(CASE)
    usage = MemoryUsageBook()
    asyncio.run(usage.record(UsageRecord("openai-compatible", "m", 9_000, 900, 0.0)))
    script = ScriptedModel([[{"tool": "answer", "args": answer(deterministic)}]])
    result, _ = run(script, settings(daily_token_budget=10_000), usage=usage)
    assert "daily token budget of 10,000 reached" in result["llm"]["error"]
    assert script.requests == []


def test_the_fast_model_condenses_uncited_items_when_the_prompt_does_not_fit() -> None:
    case = "istio-proxy-sidecar-oomkilled"  # four pods, all cited: over any small target
    _, deterministic = golden_triage(case)
    sent_to_fast: list[str] = []

    def condense(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        listing = str(messages[0].parts[-1].content)  # type: ignore[union-attr]
        sent_to_fast.append(listing)
        ids = re.findall(r"^\[([^\n]+)\]$", listing, flags=re.MULTILINE)
        items = [{"id": i, "text": f"short note on {i}"} for i in ids]
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"items": items})])

    script = ScriptedModel([[{"tool": "answer", "args": answer(deterministic)}]])
    small = settings(prompt_token_target=1500)
    result, _ = run(script, small, case=case, fast_model=FunctionModel(function=condense))
    llm = result["llm"]
    assert llm["error"] is None
    condensed = llm["condensed"]
    assert condensed["estimated_prompt_tokens_after"] < condensed["estimated_prompt_tokens_before"]
    assert llm["calls"] == 2  # one fast, one strong
    cited = set(deterministic["root_cause"]["evidence"])
    assert not any(f"[{c}]" in sent_to_fast[0] for c in cited), "cited items stay verbatim"
    strong_prompt = str(script.requests[0][0].parts[-1].content)  # type: ignore[union-attr]
    assert "(condensed)" in strong_prompt
    assert all(c in strong_prompt for c in cited)


def test_a_failed_condensation_still_books_what_it_spent_and_sends_the_full_prompt() -> None:
    case = "istio-proxy-sidecar-oomkilled"
    _, deterministic = golden_triage(case)

    def off_schema(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"nope": 1})])

    script = ScriptedModel([[{"tool": "answer", "args": answer(deterministic)}]])
    usage = MemoryUsageBook()
    small = settings(prompt_token_target=1500)
    fast = FunctionModel(function=off_schema)
    result, _ = run(script, small, usage=usage, case=case, fast_model=fast)
    llm = result["llm"]
    assert llm["error"] is None
    assert "gave no valid answer" in llm["condensed"]["error"]
    assert llm["calls"] == 3  # two fast attempts, then the strong answer
    assert "(condensed)" not in str(script.requests[0][0].parts[-1].content)  # type: ignore[union-attr]
    booked = asyncio.run(usage.spent_since(datetime.min.replace(tzinfo=UTC)))
    assert booked == llm["tokens"]["total"] > 0


def test_a_bug_while_folding_the_answer_leaves_the_deterministic_result_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, deterministic = golden_triage(CASE)

    def half_done(result: dict[str, Any], grounded: Any) -> dict[str, Any]:
        result["findings"].clear()  # damage first, then fail: the copy must absorb it
        raise RuntimeError("bug in the fold")

    monkeypatch.setattr("oncallm.llm.reasoner.apply_verdict", half_done)
    script = ScriptedModel([[{"tool": "answer", "args": answer(deterministic)}]])
    result, _ = run(script)
    assert "bug in the fold" in result["llm"]["error"]
    unchanged = ("root_cause", "findings", "evidence", "recommendations", "inspected", "gaps")
    assert {k: result[k] for k in unchanged} == {k: deterministic[k] for k in unchanged}
    assert result["llm"]["tokens"]["total"] > 0, "what the call spent is still booked"
