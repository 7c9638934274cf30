"""`oncallm llm check` as a user runs it, against the fake OpenAI-compatible and Anthropic
servers: what works is reported per model, the output mode is recommended from it, and
the exit code says whether the strong model can answer in the configured mode."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from oncallm.config_llm import LLMSettings
from oncallm.llm.check import ModelCheck, recommend_output_mode, run_check
from tests.fakes.anthropic_api import AnthropicFake
from tests.fakes.llm_script import RecordedRequest
from tests.fakes.openai_api import Fault, OpenAIFake, Reply
from tests.support.services import oncallm_env, run_oncallm


def capable(request: RecordedRequest) -> Reply:
    """A model that calls tools and answers structured output in every mode."""
    text = request.prompt_text
    if "17 + 25" in text:
        if request.tool_results:
            return Reply.text("42")
        return Reply.tool_call("add", {"a": 17, "b": 25})
    if "capital of France" in text:
        return Reply.output({"country": "France", "capital": "Paris"})
    return Reply.text("ok")


def never_calls_tools(request: RecordedRequest) -> Reply:
    if "17 + 25" in request.prompt_text:
        return Reply.text("42")  # right answer, but the tool was not used
    return capable(request)


def no_json_schema(request: RecordedRequest) -> Reply:
    """A model that ignores ``response_format: json_schema`` and answers in prose."""
    response_format = request.body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return Reply.text("The capital of France is Paris.")
    return capable(request)


def check(tmp_path: Path, *args: str, **llm: str) -> tuple[int, str, str]:
    env = oncallm_env(
        f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        **{f"llm__{key}": value for key, value in llm.items()},
    )
    done = run_oncallm(["llm", "check", *args], env)
    return done.returncode, done.stdout, done.stderr


def local(fake: OpenAIFake, **extra: str) -> dict[str, str]:
    return {
        "provider": "openai-compatible",
        "base_url": fake.base_url,
        "api_key": fake.api_key or "",
        "retry_max_wait_seconds": "0.1",
        **extra,
    }


def report(stdout: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stdout)
    return data


def test_a_capable_local_model_passes_every_probe(tmp_path: Path, oai: OpenAIFake) -> None:
    oai.respond_with(capable)
    code, out, err = check(tmp_path, "--format", "json", **local(oai))
    assert code == 0, err
    data = report(out)
    assert data["provider"] == "openai-compatible"
    assert data["base_url"] == oai.base_url
    [model] = data["models"]  # fast and strong are the same model: probed once
    assert model["tiers"] == ["fast", "strong"]
    assert model["model"] == "llama3.1:8b"
    assert model["reachable"] is True
    assert model["latency_ms"] > 0
    assert model["tool_calls"] is True
    assert model["output_modes"] == {"tool": True, "native": True, "prompted": True}
    assert model["tokens"]["total"] > 0
    assert model["cost_usd"] == 0.0
    assert data["recommendation"] == "keep llm.output_mode: auto (= native)"
    assert data["ok"] is True
    # The tool round trip really happened: the tool's result went back to the model.
    assert any(r.tool_results and "42" in r.tool_results[0].text for r in oai.calls)


def by_model(**responders: Callable[[RecordedRequest], Reply]) -> Callable[..., Reply]:
    """Answer each request as the model it names would."""
    return lambda request: responders[request.model or ""](request)


def test_tool_calls_that_do_not_work_are_reported_per_model(
    tmp_path: Path, oai: OpenAIFake
) -> None:
    oai.respond_with(by_model(**{"llama3.2": never_calls_tools, "qwen2.5:7b": capable}))
    models = {"models__fast": "llama3.2", "models__strong": "qwen2.5:7b"}
    code, out, err = check(tmp_path, "--format", "json", **local(oai, **models))
    assert code == 0, err  # tool calls are not needed for the answer itself
    fast, strong = report(out)["models"]
    assert (fast["tiers"], fast["model"], fast["tool_calls"]) == (["fast"], "llama3.2", False)
    assert fast["problems"] == {"tool calls": "the model answered without calling the tool"}
    assert (strong["tiers"], strong["model"], strong["tool_calls"]) == (
        ["strong"],
        "qwen2.5:7b",
        True,
    )
    assert strong["problems"] == {}


def test_a_model_without_json_schema_output_gets_another_mode_and_exit_1(
    tmp_path: Path, oai: OpenAIFake
) -> None:
    oai.respond_with(no_json_schema)
    code, out, _ = check(tmp_path, **local(oai))
    assert code == 1
    assert f"LLM check: openai-compatible at {oai.base_url}" in out
    row = next(line for line in out.splitlines() if "llama3.1:8b" in line and "│" in line)
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    # tier, model, reachable, latency, tool calls, tool / native / prompted output, tokens
    assert cells[:3] == ["fast+strong", "llama3.1:8b", "yes"]
    assert cells[4:8] == ["yes", "yes", "no", "yes"]
    assert "llama3.1:8b — native output: the model gave no valid answer" in out
    assert "not ok: set llm.output_mode: tool (native output failed)" in out

    # Following the advice makes the check pass.
    code, out, _ = check(tmp_path, "--format", "json", **local(oai, output_mode="tool"))
    assert code == 0
    data = report(out)
    assert data["recommendation"] == "keep llm.output_mode: tool"
    assert data["ok"] is True


def test_anthropic_models_are_checked_through_the_messages_api(
    tmp_path: Path, ant: AnthropicFake
) -> None:
    ant.respond_with(
        by_model(**{"claude-haiku-4-5": never_calls_tools, "claude-sonnet-4-6": capable})
    )
    llm = {"provider": "anthropic", "base_url": ant.base_url, "api_key": ant.api_key or ""}
    code, out, err = check(tmp_path, "--format", "json", **llm)
    assert code == 0, err
    data = report(out)
    fast, strong = data["models"]
    assert (fast["model"], strong["model"]) == ("claude-haiku-4-5", "claude-sonnet-4-6")
    assert (fast["tool_calls"], strong["tool_calls"]) == (False, True)
    for model in (fast, strong):
        assert model["output_modes"]["tool"] is True
        assert model["cost_usd"] > 0  # priced from genai-prices
    assert data["recommendation"] == "keep llm.output_mode: auto (= tool)"
    assert {r.path for r in ant.calls} == {"/v1/messages"}


async def test_a_tool_called_with_other_numbers_does_not_count(oai: OpenAIFake) -> None:
    def wrong_arguments(request: RecordedRequest) -> Reply:
        if "17 + 25" in request.prompt_text and not request.tool_results:
            return Reply.tool_call("add", {"a": 40, "b": 2})
        return capable(request)

    oai.respond_with(wrong_arguments)
    llm = LLMSettings(provider="openai-compatible", base_url=oai.base_url, api_key=oai.api_key)
    result = await run_check(llm)
    [model] = result.models
    assert model.tool_calls is False
    assert model.problems["tool calls"] == "the tool was called with (40, 2), not (17, 25)"
    assert result.ok  # structured output still works


def test_a_wrong_key_is_exit_1_with_the_reason(tmp_path: Path, ant: AnthropicFake) -> None:
    llm = {"provider": "anthropic", "base_url": ant.base_url, "api_key": "sk-ant-wrong-key-123"}
    code, out, _ = check(tmp_path, **llm)
    assert code == 1
    assert "fix the connection first: 401 unauthorized: check llm.api_key" in out
    assert "sk-ant-wrong-key-123" not in out


def test_a_server_that_is_not_running_is_exit_1(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out, _ = check(
        tmp_path, provider="openai-compatible", base_url=f"http://127.0.0.1:{port}/v1"
    )
    assert code == 1
    assert "fix the connection first: connection refused — is the server running?" in out


def test_timeout_option_bounds_each_call(tmp_path: Path, oai: OpenAIFake) -> None:
    oai.respond_with(lambda _request: Fault.delay(10))
    code, out, _ = check(tmp_path, "--timeout", "0.5", **local(oai, max_retries="0"))
    assert code == 1
    assert "fix the connection first: timed out after 0.5 s" in out
    assert len(oai.calls) == 1  # an unreachable model is not probed further


def test_provider_none_is_a_configuration_error(tmp_path: Path) -> None:
    code, out, err = check(tmp_path)
    assert code == 2
    assert out == ""
    assert err.strip() == "error: llm.provider is none: nothing to check"


def test_invalid_llm_settings_are_a_configuration_error(tmp_path: Path) -> None:
    code, _, err = check(tmp_path, provider="openai")
    assert code == 2
    assert "llm.api_key is required for provider openai" in err


# --- the recommendation, from what the probes found -------------------------------------


def probed(tiers: list[str], *, reachable: bool = True, **modes: bool) -> ModelCheck:
    result = ModelCheck(tiers=tiers, model="-".join(tiers), reachable=reachable)  # type: ignore[arg-type]
    result.output_modes.update(modes)  # type: ignore[typeddict-item]
    return result


@pytest.mark.parametrize(
    ("provider", "mode", "checks", "expected"),
    [
        (
            "anthropic",
            "auto",
            [probed(["fast", "strong"], tool=True, native=False, prompted=True)],
            "keep llm.output_mode: auto (= tool)",
        ),
        (
            "openai-compatible",
            "auto",
            [probed(["fast", "strong"], tool=True, native=False, prompted=True)],
            "set llm.output_mode: tool (native output failed)",
        ),
        (
            "openai-compatible",
            "tool",
            [probed(["fast", "strong"], tool=False, native=True, prompted=True)],
            "set llm.output_mode: native (tool output failed)",
        ),
        (
            # A mode both models manage beats one only the strong model manages.
            "openai",
            "auto",
            [
                probed(["fast"], tool=False, native=False, prompted=True),
                probed(["strong"], tool=False, native=True, prompted=True),
            ],
            "set llm.output_mode: prompted (tool output failed)",
        ),
        (
            "openai",
            "auto",
            [probed(["fast", "strong"], tool=False, native=False, prompted=False)],
            "no structured output mode works with fast-strong: choose a model that supports "
            "tool calls or JSON output",
        ),
    ],
)
def test_recommendation(provider: str, mode: str, checks: list[ModelCheck], expected: str) -> None:
    extra = {} if provider == "openai-compatible" else {"api_key": "k"}
    settings = LLMSettings.model_validate({"provider": provider, "output_mode": mode, **extra})
    assert recommend_output_mode(settings, checks) == expected


def test_recommendation_for_an_unreachable_model() -> None:
    unreachable = probed(["fast", "strong"], reachable=False)
    unreachable.problems["reachable"] = "connection refused — is the server running?"
    settings = LLMSettings(provider="openai-compatible")
    assert recommend_output_mode(settings, [unreachable]) == (
        "fix the connection first: connection refused — is the server running?"
    )
