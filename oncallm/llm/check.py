"""``oncallm llm check``: can the configured model do what the reasoner will ask of it?

For each configured model (the fast and strong tiers; once when both name the same
model) a few tiny requests go through the same client the reasoner uses:

* **reachable** — a plain text answer ("ok"), timed: the latency shown;
* **tool calls** — an agent with one tool, ``add(a, b)``, asked for 17 + 25: the model
  must call the tool with those numbers and answer 42 (follow-up facts need this);
* **structured output** in each mode of ``llm.output_mode``: ``tool`` (output tool),
  ``native`` (JSON-schema response format) and ``prompted`` (JSON in text) — a tiny
  pydantic model, validated.

From what worked it recommends an ``llm.output_mode``. The check is "ok" (exit 0) when
the strong model is reachable and produces structured output in the configured mode.
It bypasses the circuit breaker on purpose: it exists to diagnose, not to be refused.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel
from rich.console import Group
from rich.table import Table
from rich.text import Text

from oncallm.config_llm import LLMProvider, LLMSettings, Tier
from oncallm.errors import ConfigError
from oncallm.llm.cost import TokenUsage, estimate_cost, usage_from

# The provider SDKs take seconds to import; `llm check` with nothing to check should not.
if TYPE_CHECKING:
    import httpx2
    from pydantic_ai.models import Model
    from pydantic_ai.usage import RunUsage

    from oncallm.llm.providers import LLMClient

OutputMode = Literal["tool", "native", "prompted"]
MODES: tuple[OutputMode, ...] = ("tool", "native", "prompted")


class _Capital(BaseModel):
    """The structured-output probe: small, flat, unambiguous."""

    country: str
    capital: str


_CAPITAL_PROMPT = "What is the capital of France? Give the country and its capital city."
_ADD_PROMPT = (
    "What is 17 + 25? You must use the `add` tool to compute it, then reply with the number only."
)


@dataclass
class ModelCheck:
    """What one model did. A capability is True/False when tried, None when not tried."""

    tiers: list[Tier]
    model: str
    reachable: bool = False
    latency_ms: float | None = None
    tool_calls: bool | None = None
    output_modes: dict[OutputMode, bool | None] = field(
        default_factory=lambda: dict.fromkeys(MODES, None)
    )
    tokens: TokenUsage = field(default_factory=lambda: TokenUsage(0, 0))  # of probes that ended
    cost_usd: float | None = 0.0
    problems: dict[str, str] = field(default_factory=dict)

    def works(self, mode: OutputMode) -> bool:
        return bool(self.output_modes.get(mode))


@dataclass
class CheckReport:
    provider: str
    base_url: str
    output_mode: str  # as configured, possibly "auto"
    effective_output_mode: OutputMode
    models: list[ModelCheck]
    recommendation: str
    ok: bool

    @property
    def strong(self) -> ModelCheck:
        return next(m for m in self.models if "strong" in m.tiers)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for model, raw in zip(self.models, data["models"], strict=True):
            raw["tokens"] = {
                "prompt": model.tokens.prompt,
                "completion": model.tokens.completion,
                "total": model.tokens.total,
            }
        return data


async def run_check(
    settings: LLMSettings,
    *,
    call_timeout_seconds: float | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> CheckReport:
    """Probe every configured model; ``call_timeout_seconds`` replaces ``llm.timeout_seconds``.

    ``transport`` replaces the network under the retry layer (tests). Raises
    ``ConfigError`` when there is nothing to check (``llm.provider: none``).
    """
    if not settings.enabled:
        raise ConfigError("llm.provider is none: nothing to check")
    from oncallm.llm.breaker import CircuitBreaker
    from oncallm.llm.providers import build_llm_client, display_base_url

    if call_timeout_seconds is not None:
        settings = settings.model_copy(update={"timeout_seconds": call_timeout_seconds})
    # A private breaker that never opens: every probe must reach the provider.
    breaker = CircuitBreaker("llm-check", failure_threshold=1_000_000, reset_seconds=1)
    client = build_llm_client(settings, transport=transport, breaker=breaker)
    assert client is not None
    try:
        checks = [await _check_model(client, tiers) for tiers in _distinct_models(settings)]
    finally:
        await client.aclose()
    report = CheckReport(
        provider=client.provider_name,
        base_url=display_base_url(settings),
        output_mode=settings.output_mode,
        effective_output_mode=settings.effective_output_mode,
        models=checks,
        recommendation="",
        ok=False,
    )
    strong = report.strong
    report.ok = strong.reachable and strong.works(report.effective_output_mode)
    report.recommendation = recommend_output_mode(settings, checks)
    return report


def _distinct_models(settings: LLMSettings) -> list[list[Tier]]:
    fast, strong = settings.model_name("fast"), settings.model_name("strong")
    return [["fast", "strong"]] if fast == strong else [["fast"], ["strong"]]


async def _check_model(client: LLMClient, tiers: list[Tier]) -> ModelCheck:
    from pydantic_ai.usage import RunUsage

    from oncallm.llm.providers import as_llm_error

    tier = tiers[-1]
    check = ModelCheck(tiers=tiers, model=client.model_name(tier))
    model = client.model(tier)
    usage = RunUsage()

    async def attempt(
        name: str, probe: Callable[[Model], Awaitable[tuple[bool, RunUsage]]]
    ) -> bool:
        nonlocal usage
        try:
            passed, spent = await probe(model)
        except Exception as exc:
            # The table's title names provider and URL; the line names the model.
            failure = as_llm_error(exc, timeout_seconds=client.settings.timeout_seconds)
            check.problems[name] = failure.detail
            return False
        usage = usage + spent
        return passed

    started = time.perf_counter()
    check.reachable = await attempt("reachable", _probe_text)
    if check.reachable:
        check.latency_ms = round((time.perf_counter() - started) * 1000, 1)
        check.tool_calls = await attempt("tool calls", lambda m: _probe_tool_calls(m, check))
        for mode in MODES:
            check.output_modes[mode] = await attempt(f"{mode} output", _structured_probe(mode))
    check.tokens = usage_from(usage)
    check.cost_usd = estimate_cost(
        client.provider_name, check.model, check.tokens, client.settings.prices
    )
    return check


async def _probe_text(model: Model) -> tuple[bool, RunUsage]:
    from pydantic_ai import Agent

    agent: Agent[None, str] = Agent(model, name="oncallm-llm-check")
    result = await agent.run("Reply with the single word: ok")
    return True, result.usage


async def _probe_tool_calls(model: Model, check: ModelCheck) -> tuple[bool, RunUsage]:
    from pydantic_ai import Agent, Tool

    seen: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        """Add two integers and return the sum."""
        seen.append((a, b))
        return a + b

    agent: Agent[None, str] = Agent(
        model, tools=[Tool(add, takes_ctx=False)], name="oncallm-llm-check"
    )
    result = await agent.run(_ADD_PROMPT)
    if not seen:
        check.problems["tool calls"] = "the model answered without calling the tool"
        return False, result.usage
    if not any(sorted(args) == [17, 25] for args in seen):
        check.problems["tool calls"] = f"the tool was called with {seen[0]}, not (17, 25)"
        return False, result.usage
    if "42" not in result.output:
        check.problems["tool calls"] = f"the tool was called but the answer was {result.output!r}"
        return False, result.usage
    return True, result.usage


def _structured_probe(mode: OutputMode) -> Callable[[Model], Awaitable[tuple[bool, RunUsage]]]:
    async def probe(model: Model) -> tuple[bool, RunUsage]:
        from pydantic_ai import Agent, NativeOutput, PromptedOutput, ToolOutput

        spec: ToolOutput[_Capital] | NativeOutput[_Capital] | PromptedOutput[_Capital]
        if mode == "tool":
            spec = ToolOutput(_Capital)
        elif mode == "native":
            spec = NativeOutput(_Capital)
        else:
            spec = PromptedOutput(_Capital)
        agent: Agent[None, _Capital] = Agent(model, output_type=spec, name="oncallm-llm-check")
        result = await agent.run(_CAPITAL_PROMPT)
        return True, result.usage

    return probe


def recommend_output_mode(settings: LLMSettings, checks: list[ModelCheck]) -> str:
    """One line: which ``llm.output_mode`` to use, from what the models managed."""
    strong = next(c for c in checks if "strong" in c.tiers)
    if not strong.reachable:
        reason = strong.problems.get("reachable", "no answer")
        return f"fix the connection first: {reason}"
    effective = settings.effective_output_mode
    reachable = [c for c in checks if c.reachable]
    if all(c.works(effective) for c in reachable):
        shown = f"auto (= {effective})" if settings.output_mode == "auto" else effective
        return f"keep llm.output_mode: {shown}"
    # Prefer what `auto` would pick for this provider, then the others.
    preferred: list[OutputMode] = (
        ["native", "tool", "prompted"]
        if settings.provider is LLMProvider.OPENAI_COMPATIBLE
        else ["tool", "native", "prompted"]
    )
    for candidates in (reachable, [strong]):
        for mode in preferred:
            if all(c.works(mode) for c in candidates):
                return f"set llm.output_mode: {mode} ({effective} output failed)"
    return (
        f"no structured output mode works with {strong.model}: choose a model that supports "
        "tool calls or JSON output"
    )


def render_table(report: CheckReport) -> Group:
    """The report as a Rich table, the problems met, and the recommendation."""
    table = Table(title=f"LLM check: {report.provider} at {report.base_url}")
    for column in ("tier", "model", "reachable", "latency ms", "tool calls"):
        table.add_column(column)
    for mode in MODES:
        marker = " *" if mode == report.effective_output_mode else ""
        table.add_column(f"{mode} output{marker}")
    table.add_column("tokens", justify="right")
    for check in report.models:
        table.add_row(
            "+".join(check.tiers),
            check.model,
            _mark(check.reachable),
            "—" if check.latency_ms is None else f"{check.latency_ms:.0f}",
            _mark(check.tool_calls),
            *(_mark(check.output_modes[mode]) for mode in MODES),
            str(check.tokens.total),
        )
    lines: list[Text | Table] = [table]
    lines.append(Text(f"* the configured output mode ({report.output_mode})", style="dim"))
    for check in report.models:
        for probe, problem in check.problems.items():
            lines.append(Text(f"{check.model} — {probe}: {problem}", style="yellow"))
    verdict = "ok" if report.ok else "not ok"
    lines.append(Text(f"{verdict}: {report.recommendation}", style="green" if report.ok else "red"))
    return Group(*lines)


def _mark(value: bool | None) -> str:
    if value is None:
        return "[dim]—[/]"
    return "[green]yes[/]" if value else "[red]no[/]"
