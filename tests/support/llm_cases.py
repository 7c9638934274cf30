"""Golden cases through the LLM path: settings for a fake server, scripted verdicts, runs.

The integration tests of the reasoner (``tests/integration/test_llm_*.py``) run the real
``TriagePipeline`` — gather from a snapshot, analyzers, ranking, then the reasoner — with
the LLM client pointed at a protocol-level fake (``tests.fakes.openai_api`` or
``tests.fakes.anthropic_api``), so everything between the pipeline and the socket is
production code. This module holds what they share: ``llm_settings`` for a fake and a
wire mode, ``run_triage`` (result plus the explanation deltas a sink received),
``correct_verdict``/``made_up_pod`` to script answers from a case's ``expected.yaml`` and
its deterministic result, and ``beside_llm`` for "everything but the llm block".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from oncallm.config import TriageSettings
from oncallm.config_llm import LLMSettings
from oncallm.llm.reasoner import Reasoner
from oncallm.sources.snapshot import SnapshotSource
from oncallm.triage.oneshot import FixedSource
from oncallm.triage.pipeline import TriagePipeline
from tests.fakes.anthropic_api import AnthropicFake
from tests.fakes.llm_script import LlmFake
from tests.fakes.openai_api import OpenAIFake
from tests.support.golden import CASES_DIR, first_alert

# How the answer travels: OpenAI-compatible with the verdict as a tool call ("tool") or a
# JSON-schema response format ("native"), or Anthropic Messages (tool output).
Wire = Literal["tool", "native", "anthropic"]

MODEL = "oncallm-test-model"
# Deliberately unlike any real price list, so the arithmetic can only come from llm.prices.
PRICE = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}


def case_dir(name: str) -> Path:
    return CASES_DIR / name


def expected(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((case_dir(name) / "expected.yaml").read_text())
    return loaded


def fake_for(wire: Wire) -> LlmFake:
    """A new (not started) fake server speaking ``wire``'s protocol."""
    return AnthropicFake() if wire == "anthropic" else OpenAIFake()


def llm_settings(fake: LlmFake, wire: Wire, **overrides: Any) -> LLMSettings:
    """``llm`` settings pointing at ``fake``: one model for both tiers, priced by
    ``PRICE``, quick retries. ``overrides`` replace any key."""
    values: dict[str, Any] = {
        "base_url": fake.base_url,
        "api_key": fake.api_key,
        "models": {"fast": MODEL, "strong": MODEL},
        "prices": {MODEL: PRICE},
        "retry_max_wait_seconds": 0.2,
    }
    if wire == "anthropic":
        values["provider"] = "anthropic"
    else:
        values["provider"] = "openai-compatible"
        values["output_mode"] = wire
    values.update(overrides)
    return LLMSettings.model_validate(values)


def price_of(prompt: int, completion: int) -> float:
    return round(
        (prompt * PRICE["input_per_mtok"] + completion * PRICE["output_per_mtok"]) / 1_000_000, 6
    )


@dataclass
class Triaged:
    result: dict[str, Any]
    deltas: list[str] = field(default_factory=list)

    @property
    def llm(self) -> dict[str, Any]:
        block = self.result["llm"]
        assert block is not None, "the result has no llm block"
        return block

    @property
    def streamed(self) -> str:
        return "".join(self.deltas)


async def run_triage(
    case: str, llm: LLMSettings | None, *, snapshot: Path | None = None
) -> Triaged:
    """The pipeline on ``case``'s first alert against its snapshot (or ``snapshot``),
    reasoning with ``llm`` (None: deterministic only, as ``--no-llm``)."""
    deltas: list[str] = []

    async def sink(delta: str) -> None:
        deltas.append(delta)

    reasoner = Reasoner.from_settings(llm) if llm is not None else None
    source = SnapshotSource(snapshot or case_dir(case) / "snapshot")
    pipeline = TriagePipeline(FixedSource(source), TriageSettings(), reasoner=reasoner)
    try:
        output = await pipeline.run(first_alert(case_dir(case)), explanation=sink)
    finally:
        await pipeline.aclose()
    return Triaged(output.result, deltas)


def beside_llm(result: dict[str, Any]) -> dict[str, Any]:
    """Everything a user reads that is not the model's: all keys but llm and timings."""
    return {k: v for k, v in result.items() if k not in ("llm", "timings_ms")}


def cite(ids: list[str]) -> str:
    return " ".join(f"[{i}]" for i in ids)


def correct_verdict(case: str, deterministic: dict[str, Any], **root: Any) -> dict[str, Any]:
    """The answer a good model gives: expected.yaml's category and culprit, citing the
    deterministic root's evidence ids exactly as the prompt gave them."""
    want = expected(case)
    evidence = list(deterministic["root_cause"]["evidence"])
    hypothesis = {
        "category": want["category"],
        "culprit": want["culprit"],
        "summary": f"{want['category']}: {want['culprit']['name']} is the culprit.",
        "confidence": 0.9,
        "evidence": evidence,
        **root,
    }
    return {
        "explanation": f"What happened, in causal order: {cite(evidence)}. "
        f"Fix {want['culprit']['kind']} {want['culprit']['name']} first.",
        "root_cause": hypothesis,
        "alternatives": [],
        "recommendations": [],
    }


def made_up_pod(result: dict[str, Any]) -> dict[str, Any]:
    """A Pod that was never inspected: a real pod's name with another pod-template hash
    and suffix, in the same namespace — the typical hallucination."""
    pods = [r for r in result["inspected"] if r["kind"] == "Pod"]
    assert pods, "the case inspected no pod"
    real = pods[0]
    stem = re.sub(r"-[a-z0-9]{8,10}-[a-z0-9]{5}$", "", real["name"])
    if stem == real["name"]:
        stem = real["name"].rsplit("-", 1)[0]
    name = f"{stem}-5f6d7c8b9x-q7zt2"
    taken = {r["name"] for r in result["inspected"]}
    assert name not in taken
    return {"kind": "Pod", "namespace": real["namespace"], "name": name}
