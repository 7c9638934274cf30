"""Token usage and its estimated cost: the operator's price table, then genai-prices;
local models are free, unknown cloud models are "unknown", not silently free."""

from __future__ import annotations

import pytest
from genai_prices import Usage, calc_price
from pydantic_ai.usage import RunUsage

from oncallm.config_llm import LLMPrice
from oncallm.llm.cost import TokenUsage, estimate_cost, usage_from

USAGE = TokenUsage(prompt=3_000, completion=500)


def test_token_usage_adds_up() -> None:
    assert USAGE.total == 3_500
    assert USAGE + TokenUsage(10, 5) == TokenUsage(3_010, 505)


def test_usage_of_a_run_is_what_the_provider_reported() -> None:
    run = RunUsage(requests=2, input_tokens=1_234, output_tokens=56)
    assert usage_from(run) == TokenUsage(prompt=1_234, completion=56)


def test_the_configured_price_table_wins() -> None:
    prices = {"gpt-4.1": LLMPrice(input_per_mtok=1.0, output_per_mtok=4.0)}
    cost = estimate_cost("openai", "gpt-4.1", USAGE, prices)
    assert cost == pytest.approx(3_000 * 1.0 / 1e6 + 500 * 4.0 / 1e6)


def test_a_local_model_may_be_priced_too() -> None:
    prices = {"llama3.1:70b": LLMPrice(input_per_mtok=0.5, output_per_mtok=0.5)}
    cost = estimate_cost("openai-compatible", "llama3.1:70b", USAGE, prices)
    assert cost == pytest.approx(3_500 * 0.5 / 1e6)


@pytest.mark.parametrize(
    ("provider", "model", "genai_provider"),
    [
        ("openai", "gpt-4.1", "openai"),
        ("openai", "gpt-4.1-mini", "openai"),
        ("anthropic", "claude-sonnet-4-5", "anthropic"),
        ("anthropic", "claude-haiku-4-5", "anthropic"),
        ("azure-openai", "gpt-4.1", "azure"),
    ],
)
def test_known_cloud_models_are_priced_from_genai_prices(
    provider: str, model: str, genai_provider: str
) -> None:
    cost = estimate_cost(provider, model, USAGE, {})
    expected = calc_price(
        Usage(input_tokens=3_000, output_tokens=500), model, provider_id=genai_provider
    )
    assert cost is not None
    assert cost > 0
    assert cost == pytest.approx(float(expected.total_price))


def test_local_models_cost_nothing() -> None:
    assert estimate_cost("openai-compatible", "llama3.1:8b", USAGE, {}) == 0.0
    # Even one whose name a cloud price list knows: it runs on the operator's hardware.
    assert estimate_cost("openai-compatible", "gpt-4.1", USAGE, {}) == 0.0


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-99-preview"),
        ("anthropic", "claude-unreleased"),
        ("azure-openai", "prod-reasoning-deployment"),
    ],
)
def test_an_unknown_cloud_model_has_unknown_cost(provider: str, model: str) -> None:
    assert estimate_cost(provider, model, USAGE, {}) is None


def test_an_azure_deployment_can_be_priced_in_the_table() -> None:
    prices = {"prod-reasoning-deployment": LLMPrice(input_per_mtok=2, output_per_mtok=8)}
    cost = estimate_cost("azure-openai", "prod-reasoning-deployment", USAGE, prices)
    assert cost == pytest.approx(0.006 + 0.004)
