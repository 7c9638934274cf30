"""Tokens and what they cost: the usage a provider reports, priced in US dollars.

Prices come from two tables, in order:

1. ``llm.prices`` — the operator's own table, per model name (negotiated rates, Azure
   deployment names, gateways that resell a model);
2. genai-prices, the price data pydantic-ai itself uses (bundled snapshot, no network).

A model in neither table is priced by where it runs:

* ``openai-compatible`` → ``0.0``: a local server (Ollama, vLLM, ...) runs on hardware
  already paid for, and its model names ("llama3.1:8b") are in no price list. A paid
  gateway behind this provider is priced by listing its models in ``llm.prices``.
* a cloud provider → ``None`` (unknown): a cloud model missing from both tables is a
  new or renamed model that does cost money; reporting 0 would hide real spend, so the
  triage says "cost unknown" and the operator can add the model to ``llm.prices``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from oncallm.config_llm import LLMPrice, LLMProvider

if TYPE_CHECKING:
    from pydantic_ai.usage import RunUsage

# Our provider names → genai-prices provider ids, most specific first. Azure deployments
# are often named after their model; Azure's list trails OpenAI's, hence the fallback.
GENAI_PROVIDER_IDS: dict[str, tuple[str, ...]] = {
    LLMProvider.OPENAI.value: ("openai",),
    LLMProvider.AZURE_OPENAI.value: ("azure", "openai"),
    LLMProvider.ANTHROPIC.value: ("anthropic",),
}

_PER_MTOK = Decimal(1_000_000)


@dataclass(frozen=True)
class TokenUsage:
    """Tokens as the provider reported them: prompt (input) and completion (output)."""

    prompt: int
    completion: int

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(self.prompt + other.prompt, self.completion + other.completion)


def usage_from(run_usage: RunUsage) -> TokenUsage:
    """The tokens of a pydantic-ai run (all its requests)."""
    return TokenUsage(prompt=run_usage.input_tokens, completion=run_usage.output_tokens)


def estimate_cost(
    provider: str, model: str, usage: TokenUsage, prices: Mapping[str, LLMPrice]
) -> float | None:
    """Estimated US dollars for ``usage`` of ``model``; None when the price is unknown.

    See the module docstring for the order of the tables and why unknown cloud models
    are None while local ones are 0.
    """
    price = prices.get(model)
    if price is not None:
        dollars = (
            Decimal(usage.prompt) * Decimal(str(price.input_per_mtok))
            + Decimal(usage.completion) * Decimal(str(price.output_per_mtok))
        ) / _PER_MTOK
        return float(dollars)
    if provider == LLMProvider.OPENAI_COMPATIBLE.value:
        return 0.0
    # Imported here: the price data takes a while to load and most calls stop above.
    from genai_prices import Usage, calc_price

    for provider_id in GENAI_PROVIDER_IDS.get(provider, ()):
        try:
            calculation = calc_price(
                Usage(input_tokens=usage.prompt, output_tokens=usage.completion),
                model,
                provider_id=provider_id,
            )
        except (LookupError, ValueError):
            # LookupError: not in this provider's list; ValueError: usage it cannot price.
            continue
        return float(calculation.total_price)
    return None
