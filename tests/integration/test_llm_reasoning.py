"""Golden cases through the LLM path, over real HTTP, against scripted model servers.

The whole pipeline runs (snapshot source, analyzers, ranking, reasoner) and the model
client is production code talking to ``OpenAIFake`` (OpenAI-compatible, with the verdict
as a tool call or as a JSON-schema response) or ``AnthropicFake`` (Messages API) on
loopback. What a user would notice is asserted: a right answer raises the root cause's
confidence and is priced from ``llm.prices``; a made-up pod never becomes the culprit; an
outage, a timeout or a blown budget leaves exactly the ``--no-llm`` result plus a
readable error; follow-up reads travel through the tools and their facts become citable
evidence; ``oncallm triage`` prints the explanation. Unit tests of the same reasoner with
FunctionModel live in tests/unit/test_reasoner.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oncallm.llm.breaker import reset_breakers
from tests.fakes.anthropic_api import AnthropicFake
from tests.fakes.llm_script import Fault, LlmFake, Reply
from tests.fakes.openai_api import OpenAIFake
from tests.support.llm_cases import (
    MODEL,
    PRICE,
    Wire,
    beside_llm,
    case_dir,
    correct_verdict,
    fake_for,
    llm_settings,
    made_up_pod,
    price_of,
    run_triage,
)
from tests.support.schema import assert_valid_result
from tests.support.services import free_port, oncallm_env, run_oncallm

# Varied on purpose: workload culprits, a ConfigMap, a NetworkPolicy, a cluster-scoped
# Node, a PersistentVolumeClaim, a ResourceQuota.
CASES = (
    "crashloop-go-nil-pointer",
    "oom-java-heap-over-limit",
    "configmap-missing-key-behind-service",
    "imagepull-tag-not-found",
    "networkpolicy-blocks-cart-to-redis",
    "node-notready-kubelet-stopped",
    "checkout-postgres-pvc-missing-storageclass",
    "quota-exceeded-rollout-memory-limits",
)
ANTHROPIC_CASES = (
    "crashloop-go-nil-pointer",
    "configmap-missing-key-behind-service",
    "node-notready-kubelet-stopped",
)
CORRECT = [
    *[pytest.param(c, w, id=f"{c}-{w}") for c in CASES for w in ("tool", "native")],
    *[pytest.param(c, "anthropic", id=f"{c}-anthropic") for c in ANTHROPIC_CASES],
]
HALLUCINATED = [
    *[pytest.param(c, "tool", id=f"{c}-tool") for c in CASES],
    *[pytest.param(c, "native", id=f"{c}-native") for c in CASES[:2]],
    *[pytest.param(c, "anthropic", id=f"{c}-anthropic") for c in ANTHROPIC_CASES[:2]],
]
CASE = "crashloop-go-nil-pointer"  # for the tests about the wire rather than the case


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    # Breakers are per provider endpoint and process-wide; an outage test must not open
    # one for the next test (every fake has its own port, but be explicit).
    reset_breakers()
    yield
    reset_breakers()


@pytest.fixture
def wire_fake(request: pytest.FixtureRequest) -> Iterator[LlmFake]:
    with fake_for(request.param) as fake:
        yield fake


def _offered_output(fake: LlmFake, wire: Wire) -> None:
    """The request asked for the verdict the way ``wire`` says."""
    body = fake.calls[0].body
    if wire == "native":
        assert body["response_format"]["type"] == "json_schema", body.get("response_format")
        assert not any(n.startswith("final_result") for n in fake.calls[0].tool_names)
    else:
        assert any(n.startswith("final_result") for n in fake.calls[0].tool_names)
    # Follow-up tools are offered either way.
    assert {"get_object", "get_events", "get_logs"} <= set(fake.calls[0].tool_names)


@pytest.mark.parametrize(("case", "wire"), CORRECT)
async def test_a_correct_answer_raises_confidence_and_is_priced(case: str, wire: Wire) -> None:
    base = await run_triage(case, None)
    verdict = correct_verdict(case, base.result)
    with fake_for(wire) as fake:
        fake.script(Reply.output(verdict, prompt_tokens=2345, completion_tokens=678))
        got = await run_triage(case, llm_settings(fake, wire))
    result, llm = got.result, got.llm
    assert_valid_result(result)
    assert llm["error"] is None, llm["error"]
    assert llm["agreement"]["verdict"] == "agrees"
    det = base.result["root_cause"]
    root = result["root_cause"]
    assert (root["category"], root["resource"]) == (det["category"], det["resource"])
    assert root["confidence"] > det["confidence"]
    assert root.get("confirmed_by_llm") is True
    assert result["findings"][0]["confidence"] == root["confidence"]
    assert llm["root_cause"]["verified"] is True
    assert llm["grounding"]["dropped"] == []
    # Tokens are the provider's numbers, the cost follows llm.prices.
    assert llm["tokens"] == {"prompt": 2345, "completion": 678, "total": 3023}
    assert llm["cost_usd"] == price_of(2345, 678)
    assert llm["cost_usd"] == pytest.approx(2345 * 3e-6 + 678 * 15e-6)
    assert (llm["model"], llm["calls"], llm["cached"]) == (MODEL, 1, False)
    # The model read the evidence it cites, and what was streamed is what is stored.
    assert len(fake.calls) == 1
    assert fake.calls[0].model == MODEL
    prompt = fake.calls[0].prompt_text
    for evidence_id in det["evidence"]:
        assert f"[{evidence_id}]" in prompt
    _offered_output(fake, wire)
    assert got.streamed == llm["explanation"]
    assert "What happened, in causal order" in llm["explanation"]


@pytest.mark.parametrize(("case", "wire"), HALLUCINATED)
async def test_a_hallucinated_pod_never_becomes_the_culprit(case: str, wire: Wire) -> None:
    base = await run_triage(case, None)
    det = base.result["root_cause"]
    ghost = made_up_pod(base.result)
    other = "CrashLoop" if det["category"] != "CrashLoop" else "OOMKilled"
    verdict = correct_verdict(case, base.result, category=other, culprit=ghost, confidence=0.99)
    verdict["recommendations"] = [
        {
            "title": "Delete the broken pod",
            "commands": [f"kubectl delete pod {ghost['name']} -n {ghost['namespace']}"],
            "risk": "medium",
        }
    ]
    with fake_for(wire) as fake:
        fake.script(Reply.output(verdict))
        got = await run_triage(case, llm_settings(fake, wire))
    result, llm = got.result, got.llm
    assert_valid_result(result)
    assert llm["error"] is None, llm["error"]
    # The evidence keeps the lead, untouched.
    assert result["root_cause"] == det
    assert result["findings"][0] == base.result["findings"][0]
    assert llm["agreement"]["verdict"] == "disagrees"
    assert llm["agreement"]["ranked_first"] == "deterministic"
    assert llm["root_cause"]["verified"] is False
    assert llm["root_cause"]["culprit_inspected"] is False
    assert llm["root_cause"]["resource"] is None
    assert llm["root_cause"]["confidence"] < 0.99
    dropped = llm["grounding"]["dropped"]
    assert any(ghost["name"] in d and "culprit" in d for d in dropped), dropped
    assert any(ghost["name"] in d and "step" in d for d in dropped), dropped
    # The made-up name is nowhere a user could act on it.
    assert ghost["name"] not in json.dumps(result["root_cause"])
    assert all(ghost["name"] not in json.dumps(f.get("resource")) for f in result["findings"])
    assert ghost["name"] not in json.dumps(llm["recommendations"])
    assert ghost["name"] not in json.dumps(result["recommendations"])


# --- failures: the deterministic result stands ------------------------------------------


def _closed_port_url(wire: Wire) -> str:
    url = f"http://127.0.0.1:{free_port()}"  # bound, then released: nothing listens
    return url if wire == "anthropic" else f"{url}/v1"


@pytest.mark.parametrize("wire", ["tool", "anthropic"])
@pytest.mark.parametrize("outage", ["500", "refused", "timeout"])
async def test_an_outage_leaves_exactly_the_no_llm_result(wire: Wire, outage: str) -> None:
    base = await run_triage(CASE, None)
    with fake_for(wire) as fake:
        overrides: dict[str, Any] = {"max_retries": 2}
        if outage == "500":
            fake.script(*[Fault.status(500)] * 3)
            expect = "500 server error after 2 retries"
        elif outage == "refused":
            overrides["base_url"] = _closed_port_url(wire)
            expect = "connection refused"
        else:
            overrides.update(timeout_seconds=0.5, max_retries=1)
            fake.script(*[Fault.delay(30)] * 2)
            expect = "timed out after 0.5 s after 1 retry"
        settings = llm_settings(fake, wire, **overrides)
        got = await run_triage(CASE, settings)
        calls = len(fake.calls)
    result, llm = got.result, got.llm
    assert_valid_result(result)
    assert llm["error"] is not None
    assert expect in llm["error"], llm["error"]
    # The message says where the call went, so the operator knows what to check.
    assert settings.effective_base_url in llm["error"], llm["error"]
    assert "Traceback" not in llm["error"]
    assert calls == {"500": 3, "refused": 0, "timeout": 2}[outage]
    assert beside_llm(result) == beside_llm(base.result)
    for key in ("root_cause", "findings", "evidence", "recommendations"):
        assert result[key] == base.result[key], key
    assert "explanation" not in llm
    assert "agreement" not in llm
    assert got.deltas == []


@pytest.mark.parametrize("wire_fake", ["tool", "anthropic"], indirect=True)
async def test_a_429_is_retried_after_its_retry_after_and_the_answer_used(
    wire_fake: LlmFake,
) -> None:
    wire: Wire = "anthropic" if isinstance(wire_fake, AnthropicFake) else "tool"
    base = await run_triage(CASE, None)
    wire_fake.script(
        Fault.status(429, retry_after=1), Reply.output(correct_verdict(CASE, base.result))
    )
    started = time.monotonic()
    got = await run_triage(CASE, llm_settings(wire_fake, wire, retry_max_wait_seconds=5))
    elapsed = time.monotonic() - started
    assert len(wire_fake.calls) == 2
    assert elapsed >= 1.0
    assert got.llm["error"] is None
    assert got.llm["agreement"]["verdict"] == "agrees"
    assert got.result["root_cause"]["confidence"] > base.result["root_cause"]["confidence"]


async def test_a_reply_over_the_per_triage_budget_is_an_error_not_a_verdict() -> None:
    base = await run_triage(CASE, None)
    with OpenAIFake() as fake:
        fake.script(
            Reply.output(
                correct_verdict(CASE, base.result), prompt_tokens=20_000, completion_tokens=50
            )
        )
        got = await run_triage(CASE, llm_settings(fake, "tool", triage_token_budget=16_000))
    llm = got.llm
    assert_valid_result(got.result)
    assert "per-triage budget of 16,000 tokens" in llm["error"], llm["error"]
    assert "llm.triage_token_budget" in llm["error"]
    assert len(fake.calls) == 1  # refused after the first answer, not retried
    assert beside_llm(got.result) == beside_llm(base.result)
    assert "agreement" not in llm


async def test_tokens_spent_before_the_budget_stopped_a_triage_are_still_accounted() -> None:
    """The provider answered and bills 20,050 tokens even though the answer is refused
    over the per-triage budget: the triage must still show them (and price them), or
    repeated over-budget triages would never count against the daily budget."""
    base = await run_triage(CASE, None)
    with OpenAIFake() as fake:
        fake.script(
            Reply.output(
                correct_verdict(CASE, base.result), prompt_tokens=20_000, completion_tokens=50
            )
        )
        got = await run_triage(CASE, llm_settings(fake, "tool", triage_token_budget=16_000))
    llm = got.llm
    assert "per-triage budget" in llm["error"]
    assert llm["tokens"] == {"prompt": 20_000, "completion": 50, "total": 20_050}
    assert llm["cost_usd"] == price_of(20_000, 50)


# --- follow-up over HTTP -----------------------------------------------------------------

FOLLOW_UPS = [
    pytest.param(
        "crashloop-go-nil-pointer",
        "get_object",
        {"kind": "Deployment", "namespace": "orders", "name": "orders-api"},
        "object:Deployment/orders/orders-api#summary",
        '"name": "orders-api"',
        id="get_object",
    ),
    pytest.param(
        "oom-java-heap-over-limit",
        "get_logs",
        {
            "namespace": "risk",
            "pod": "fraud-scoring-8589fbf7d4-rsmb2",
            "container": "fraud-scoring",
            "previous": False,
        },
        "log:risk/fraud-scoring-8589fbf7d4-rsmb2/fraud-scoring/current",
        "Started FraudScoringApplication in 11.482 seconds",
        id="get_logs",
    ),
]


@pytest.mark.parametrize("wire", ["tool", "anthropic"])
@pytest.mark.parametrize(("case", "tool", "args", "evidence_id", "shows"), FOLLOW_UPS)
async def test_a_follow_up_read_becomes_cited_evidence(
    wire: Wire, case: str, tool: str, args: dict[str, Any], evidence_id: str, shows: str
) -> None:
    base = await run_triage(case, None)
    assert evidence_id not in {e["id"] for e in base.result["evidence"]}
    verdict = correct_verdict(case, base.result)
    verdict["root_cause"]["evidence"].append(evidence_id)
    verdict["explanation"] += f" The follow-up read confirms it [{evidence_id}]."
    with fake_for(wire) as fake:
        fake.script(Reply.tool_call(tool, args), Reply.output(verdict))
        got = await run_triage(case, llm_settings(fake, wire))
        calls = fake.calls
    llm = got.llm
    assert llm["error"] is None, llm["error"]
    assert len(calls) == 2
    # The second request carries the tool's answer: the id to cite and the real content.
    results = calls[1].tool_results
    assert len(results) == 1
    assert results[0].text.startswith(f"evidence id: {evidence_id}")
    assert shows in results[0].text
    assert llm["followup"]["calls"][0]["outcome"] == "ok"
    assert llm["followup"]["calls"][0]["evidence"] == evidence_id
    assert evidence_id in llm["root_cause"]["evidence"]
    assert llm["root_cause"]["verified"] is True
    assert llm["agreement"]["verdict"] == "agrees"
    added = {e["id"]: e for e in got.result["evidence"]}
    assert evidence_id in added
    assert "follow-up" in added[evidence_id]["source"]
    assert f"[{evidence_id}]" in llm["explanation"]  # not flagged as unverified
    assert "unverified" not in llm["explanation"]
    assert_valid_result(got.result)


async def test_a_call_beyond_followup_max_calls_is_refused_in_words() -> None:
    base = await run_triage(CASE, None)
    first = {"kind": "Deployment", "namespace": "orders", "name": "orders-api"}
    second = {"kind": "Service", "namespace": "orders", "name": "orders-api"}
    with OpenAIFake() as fake:
        fake.script(
            Reply.tool_call("get_object", first),
            Reply.tool_call("get_object", second),
            Reply.output(correct_verdict(CASE, base.result)),
        )
        settings = llm_settings(fake, "tool", followup_max_rounds=2, followup_max_calls=1)
        got = await run_triage(CASE, settings)
        calls = fake.calls
    llm = got.llm
    assert llm["error"] is None, llm["error"]
    assert len(calls) == 3
    refusal = calls[2].tool_results[-1].text
    assert refusal.startswith("refused: the follow-up limit of 1 calls is reached")
    assert "answer now with the evidence you have" in refusal
    outcomes = [c["outcome"] for c in llm["followup"]["calls"]]
    assert outcomes[0] == "ok"
    assert outcomes[1].startswith("refused: the follow-up limit of 1 calls")
    assert "object:Service/orders/orders-api#summary" not in {
        e["id"] for e in got.result["evidence"]
    }
    assert llm["agreement"]["verdict"] == "agrees"


# --- oncallm triage, as a user runs it -----------------------------------------------------


def test_oncallm_triage_explains_with_the_configured_llm(tmp_path: Path) -> None:
    case = case_dir(CASE)
    with OpenAIFake() as fake:
        seen: list[int] = []

        def answer(request: Any) -> Reply:
            seen.append(1)
            # The deterministic root of this case, as the CLI will compute it.
            evidence = [
                "object:Pod/orders/orders-api-7b9ffcdcf5-z5kfb#status.containerStatuses[orders-api]",
                "log:orders/orders-api-7b9ffcdcf5-z5kfb/orders-api/previous",
            ]
            verdict = correct_verdict(CASE, {"root_cause": {"evidence": evidence}})
            verdict["explanation"] = (
                "Release 3.2.0 of orders-api panics with a nil pointer dereference while "
                f"loading promotions {' '.join(f'[{e}]' for e in evidence)}. Roll back."
            )
            return Reply.output(verdict, prompt_tokens=3000, completion_tokens=400)

        fake.respond_with(answer)
        env = oncallm_env(
            f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
            llm__provider="openai-compatible",
            llm__base_url=fake.base_url,
            llm__api_key=fake.api_key or "",
            llm__models__strong=MODEL,
            llm__prices=json.dumps({MODEL: PRICE}),
        )
        args = ["triage", "--alert", str(case / "alert.json"), "--snapshot", str(case / "snapshot")]
        as_json = run_oncallm([*args, "--format", "json"], env)
        assert as_json.returncode == 0, as_json.stderr
        [result] = json.loads(as_json.stdout)
        assert_valid_result(result)
        llm = result["llm"]
        assert llm["error"] is None, llm["error"]
        assert (llm["provider"], llm["model"]) == ("openai-compatible", MODEL)
        assert llm["agreement"]["verdict"] == "agrees"
        assert llm["tokens"]["total"] == 3400
        assert llm["cost_usd"] == price_of(3000, 400)
        assert result["root_cause"]["confidence"] > 0.85

        markdown = run_oncallm(args, env)
        assert markdown.returncode == 0, markdown.stderr
        text = markdown.stdout
        assert f"## Explanation (openai-compatible · {MODEL})" in text
        assert "The model agrees with the analyzers." in text
        assert "panics with a nil pointer dereference while loading promotions" in text
        assert f"_Prompt triage-v1 · 3400 tokens · ${price_of(3000, 400):.4f}_" in text
        assert len(seen) == 2

        # --no-llm: nothing is sent, and the result says no model was asked.
        plain = run_oncallm([*args, "--format", "json", "--no-llm"], env)
        assert plain.returncode == 0, plain.stderr
        assert json.loads(plain.stdout)[0]["llm"] is None
        assert len(fake.calls) == 2


def test_oncallm_triage_with_the_llm_down_prints_the_deterministic_report(
    tmp_path: Path,
) -> None:
    case = case_dir(CASE)
    url = f"http://127.0.0.1:{free_port()}/v1"
    env = oncallm_env(
        f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        llm__provider="openai-compatible",
        llm__base_url=url,
    )
    args = ["triage", "--alert", str(case / "alert.json"), "--snapshot", str(case / "snapshot")]
    done = run_oncallm(args, env)
    assert done.returncode == 0, done.stderr
    assert "## Root cause: CrashLoop" in done.stdout
    assert f"The model could not be used: openai-compatible at {url}: connection refused" in (
        done.stdout
    )
