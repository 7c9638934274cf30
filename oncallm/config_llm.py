"""The ``llm`` section of the configuration: which model explains a triage, and its limits.

Split out of ``config.py`` only for size; ``config.Settings`` owns it like every other
section, so the same precedence (defaults < YAML < ``ONCALLM_LLM__*``) applies. With
``provider: none`` (the default) OncallM never opens a connection to a model.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMProvider(StrEnum):
    NONE = "none"
    OPENAI_COMPATIBLE = "openai-compatible"
    OPENAI = "openai"
    AZURE_OPENAI = "azure-openai"
    ANTHROPIC = "anthropic"


# Local servers (Ollama, vLLM, llama.cpp, LM Studio, LocalAI) speak OpenAI's API here.
DEFAULT_LOCAL_BASE_URL = "http://localhost:11434/v1"

# Per provider: (fast, strong). A local model must be one the server has pulled, so the
# local default is the common tool-capable Ollama model; Azure has no default because
# its "models" are the deployment names the user created.
DEFAULT_MODELS: dict[LLMProvider, tuple[str, str]] = {
    LLMProvider.OPENAI_COMPATIBLE: ("llama3.1:8b", "llama3.1:8b"),
    LLMProvider.OPENAI: ("gpt-4.1-mini", "gpt-4.1"),
    LLMProvider.ANTHROPIC: ("claude-haiku-4-5", "claude-sonnet-4-6"),
}

Tier = Literal["fast", "strong"]


class LLMModels(_Section):
    fast: str | None = Field(
        default=None,
        description=(
            "Model for cheap work (compression, summaries). Unset: the provider's default "
            "(`llama3.1:8b` local, `gpt-4.1-mini`, `claude-haiku-4-5`). For azure-openai, "
            "a deployment name."
        ),
    )
    strong: str | None = Field(
        default=None,
        description=(
            "Model that reasons about the triage. Unset: the provider's default "
            "(`llama3.1:8b` local, `gpt-4.1`, `claude-sonnet-4-6`). For azure-openai, a "
            "deployment name."
        ),
    )


class LLMPrice(_Section):
    input_per_mtok: float = Field(ge=0, description="USD per million prompt tokens.")
    output_per_mtok: float = Field(ge=0, description="USD per million completion tokens.")


class LLMSettings(_Section):
    provider: LLMProvider = Field(
        default=LLMProvider.NONE,
        description=(
            "`none` (deterministic analysis only), `openai-compatible` (local: Ollama, vLLM, "
            "llama.cpp, LM Studio, LocalAI), `openai`, `azure-openai` or `anthropic`."
        ),
    )
    base_url: str | None = Field(
        default=None,
        description=(
            "API base URL. openai-compatible: default `http://localhost:11434/v1`; "
            "azure-openai: the resource endpoint `https://NAME.openai.azure.com` (required); "
            "openai/anthropic: the public API unless set (proxies, gateways)."
        ),
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="API key. Required for openai, azure-openai and anthropic; optional locally.",
    )
    api_version: str = Field(
        default="2024-10-21", description="Azure OpenAI API version (azure-openai only)."
    )
    models: LLMModels = Field(default_factory=LLMModels)
    output_mode: Literal["auto", "tool", "native", "prompted"] = Field(
        default="auto",
        description=(
            "How the model returns its structured answer: `tool` (a function call), "
            "`native` (JSON-schema response format), `prompted` (JSON in text, for models "
            "without either). `auto`: native for openai-compatible, tool otherwise. "
            "`oncallm llm check` tells which ones a model supports."
        ),
    )
    timeout_seconds: float = Field(
        default=60.0, gt=0, le=600, description="Longest one model call may take."
    )
    reason_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description=(
            "Longest the whole reasoning step of one triage may take (every call, retry and "
            "follow-up); past it the deterministic result stands with the reason recorded."
        ),
    )
    max_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Retries of a call that got 429, 5xx or a timeout, with backoff.",
    )
    retry_max_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Longest wait between retries, including a server's `Retry-After`.",
    )
    breaker_failures: int = Field(
        default=5,
        ge=1,
        description="Consecutive failed calls that open the provider's circuit breaker.",
    )
    breaker_reset_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long an open breaker refuses calls before letting one through.",
    )
    followup_max_rounds: int = Field(
        default=1,
        ge=0,
        le=10,
        description="Rounds in which the model may ask for more facts (0: no follow-up).",
    )
    followup_max_calls: int = Field(
        default=3, ge=0, le=50, description="Read-only tool calls the model may make in all."
    )
    prompt_token_target: int = Field(
        default=4000,
        ge=500,
        description=(
            "Context is compressed to fit this many prompt tokens (estimated at 4 characters "
            "a token); the evidence the findings cite is always kept."
        ),
    )
    triage_token_budget: int = Field(
        default=16_000,
        ge=1000,
        description="Most tokens (prompt + completion, all calls) one triage may spend.",
    )
    daily_token_budget: int = Field(
        default=2_000_000,
        ge=0,
        description="Most tokens all triages may spend per UTC day; 0 means no limit.",
    )
    prices: dict[str, LLMPrice] = Field(
        default_factory=dict,
        description=(
            "Price per model name, overriding the bundled price table "
            "(e.g. `{gpt-4.1: {input_per_mtok: 2, output_per_mtok: 8}}`). Models in "
            "neither cost 0 when served by openai-compatible (local) and are reported with "
            "an unknown cost (null) otherwise."
        ),
    )
    cache_ttl_seconds: int = Field(
        default=3600,
        ge=0,
        description=(
            "An identical context (same model and prompt version) reuses the stored answer "
            "this long; 0 disables the cache."
        ),
    )
    redact_ips: bool = Field(
        default=False, description="Replace IP addresses with placeholders before sending."
    )
    redact_object_names: bool = Field(
        default=False,
        description="Replace namespace and object names with placeholders before sending.",
    )

    @model_validator(mode="after")
    def _provider_needs(self) -> LLMSettings:
        provider = self.provider
        has_key = self.api_key is not None and bool(self.api_key.get_secret_value())
        needs_key = (LLMProvider.OPENAI, LLMProvider.AZURE_OPENAI, LLMProvider.ANTHROPIC)
        if provider in needs_key and not has_key:
            raise ValueError(f"llm.api_key is required for provider {provider.value}")
        if provider is LLMProvider.AZURE_OPENAI:
            if not self.base_url:
                raise ValueError(
                    "llm.base_url (the https://NAME.openai.azure.com endpoint) is required "
                    "for provider azure-openai"
                )
            if not (self.models.strong and self.models.fast):
                raise ValueError(
                    "llm.models.fast and llm.models.strong (deployment names) are required "
                    "for provider azure-openai"
                )
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("llm.base_url must start with http:// or https://")
        return self

    @property
    def enabled(self) -> bool:
        return self.provider is not LLMProvider.NONE

    @property
    def effective_base_url(self) -> str | None:
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.provider is LLMProvider.OPENAI_COMPATIBLE:
            return DEFAULT_LOCAL_BASE_URL
        return None

    def model_name(self, tier: Tier) -> str:
        chosen = self.models.fast if tier == "fast" else self.models.strong
        if chosen:
            return chosen
        defaults = DEFAULT_MODELS.get(self.provider)
        if defaults is None:
            raise ValueError(f"no {tier} model configured for provider {self.provider.value}")
        return defaults[0] if tier == "fast" else defaults[1]

    @property
    def effective_output_mode(self) -> Literal["tool", "native", "prompted"]:
        if self.output_mode != "auto":
            return self.output_mode
        return "native" if self.provider is LLMProvider.OPENAI_COMPATIBLE else "tool"
