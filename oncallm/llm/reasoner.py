"""The reasoner: one bounded conversation with the model about one finished triage.

It reads the deterministic result and its context, compresses them to fit the prompt
budget (never dropping cited evidence), redacts secrets and PII, and asks the strong model
for a ``Verdict`` — streaming the explanation as it arrives, allowing a few read-only
follow-up calls, within the per-triage and daily token budgets, behind the provider's
circuit breaker. The answer is mapped back from placeholders, checked by the grounding
guard and folded into the result with an ``llm`` block that records provider, model,
prompt version, tokens, cost and any error. Any failure leaves the deterministic result
untouched except for that error: the LLM can only add to a triage, never break one.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic_ai import Agent
from pydantic_ai.exceptions import UsageLimitExceeded
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models import Model
from pydantic_ai.usage import RunUsage, UsageLimits
from pydantic_core import from_json

from oncallm.config_llm import LLMSettings
from oncallm.errors import LLMBudgetExceeded, LLMError
from oncallm.llm.condense import condense
from oncallm.llm.cost import TokenUsage, estimate_cost, usage_from
from oncallm.llm.digest import ContextDigest
from oncallm.llm.failures import is_model_failure
from oncallm.llm.followup import TOOL_NAMES, FollowUp
from oncallm.llm.grounding import Grounding, apply_verdict
from oncallm.llm.outbound import redact_context, redact_result
from oncallm.llm.ports import (
    AnswerCache,
    ExplanationSink,
    MemoryAnswerCache,
    MemoryUsageBook,
    UsageBook,
    UsageRecord,
    utc_midnight,
)
from oncallm.llm.prompts import PROMPT_VERSION, RenderedPrompt, RunbookExcerpt, fit_prompt
from oncallm.llm.providers import LLMClient, build_llm_client
from oncallm.llm.redaction import Redactor
from oncallm.llm.verdict import Verdict
from oncallm.observability import LLM_CALLS, LLM_COST, LLM_REDACTIONS, LLM_TOKENS
from oncallm.sources.base import ClusterSource, ObjectRef
from oncallm.sources.metrics import MetricsSource
from oncallm.triage.context import TriageContext
from oncallm.triage.evidence import EvidenceItem

log = structlog.get_logger("oncallm.llm")
CLOSE_TIMEOUT_SECONDS = 5.0

# (model name, its usage in this triage) for every model a triage called.
Spent = list[tuple[str, RunUsage]]

# Room left for the answer when checking a prompt against the budgets.
ANSWER_TOKENS = 1500
# The longest a placeholder can be (``<PRIVATE_KEY_12>``): held back while streaming so a
# placeholder split across two chunks is mapped back whole.
PLACEHOLDER_HOLD = 24


class ExplanationStream:
    """Turns growing partial answers into restored explanation deltas for the sink."""

    def __init__(self, redactor: Redactor, sink: ExplanationSink) -> None:
        self.redactor = redactor
        self.sink = sink
        self.raw = ""  # the redacted explanation as far as it was sent on
        self.sent = 0

    async def update(self, explanation: str) -> None:
        if not explanation.startswith(self.raw[: self.sent]):
            return  # a re-started answer (output retry); keep what was already shown
        self.raw = explanation
        end = len(explanation)
        opening = explanation.rfind("<", max(self.sent, end - PLACEHOLDER_HOLD))
        if opening != -1 and ">" not in explanation[opening:]:
            end = opening
        if end > self.sent:
            delta = self.redactor.restore(explanation[self.sent : end])
            self.sent = end
            if delta:
                await self.sink(delta)

    async def finish(self, explanation: str) -> None:
        if explanation.startswith(self.raw[: self.sent]) and len(explanation) > self.sent:
            await self.sink(self.redactor.restore(explanation[self.sent :]))
            self.sent = len(explanation)


def partial_explanation(response: ModelResponse) -> str | None:
    """The explanation so far, from the output tool's arguments or JSON text."""
    for part in response.parts:
        raw: str | None = None
        if isinstance(part, ToolCallPart) and part.tool_name not in TOOL_NAMES:
            raw = part.args if isinstance(part.args, str) else json.dumps(part.args or {})
        elif isinstance(part, TextPart):
            raw = part.content[part.content.find("{") :] if "{" in part.content else None
        if not raw:
            continue
        try:
            value = from_json(raw, allow_partial="trailing-strings")
        except ValueError:
            continue
        explanation = value.get("explanation") if isinstance(value, dict) else None
        if isinstance(explanation, str):
            return explanation
    return None


@dataclass
class Reasoner:
    client: LLMClient
    settings: LLMSettings
    usage: UsageBook
    cache: AnswerCache
    # Replace the client's strong and fast models: pydantic-ai's FunctionModel in unit tests.
    model: Model | None = None
    fast_model: Model | None = None

    @classmethod
    def from_settings(
        cls,
        settings: LLMSettings,
        *,
        usage: UsageBook | None = None,
        cache: AnswerCache | None = None,
    ) -> Reasoner | None:
        client = build_llm_client(settings)
        if client is None:
            return None
        return cls(client, settings, usage or MemoryUsageBook(), cache or MemoryAnswerCache())

    async def aclose(self) -> None:
        try:
            # Closing drops connections and should be instant; a wedged one must not stop
            # a worker from shutting down.
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self.client.aclose()
        except TimeoutError:
            log.warning("llm client did not close in time", seconds=CLOSE_TIMEOUT_SECONDS)

    def _block(self) -> dict[str, Any]:
        return {
            "provider": self.client.provider_name,
            "model": self.client.model_name("strong"),
            "prompt_version": PROMPT_VERSION,
            "tokens": {"prompt": 0, "completion": 0, "total": 0},
            "cost_usd": 0.0,
            "calls": 0,
            "cached": False,
            "latency_ms": 0.0,
            "error": None,
        }

    async def reason(
        self,
        ctx: TriageContext,
        result: dict[str, Any],
        source: ClusterSource,
        explanation: ExplanationSink,
        runbooks: Sequence[RunbookExcerpt] = (),
        metrics: MetricsSource | None = None,
    ) -> None:
        """Add the model's grounded verdict to ``result`` (in place), or record why not."""
        started = time.perf_counter()
        block = self._block()
        result["llm"] = block
        # pydantic-ai adds to these usage objects as each response arrives, so what a
        # failed call spent is still known and booked.
        spent: Spent = []
        deadline = self.settings.reason_timeout_seconds
        try:
            # One bound over everything: per-call timeouts and capped retries should end a
            # run long before this, but a triage must not wait on a stuck stream for ever.
            async with asyncio.timeout(deadline):
                await self._reason(
                    ctx, result, source, explanation, block, spent, runbooks, metrics
                )
        except TimeoutError:
            block["error"] = f"reasoning gave up after {deadline:g} s (llm.reason_timeout_seconds)"
        except LLMError as exc:
            block["error"] = exc.detail
            if isinstance(exc.__cause__, UsageLimitExceeded):
                block["error"] = (
                    f"the per-triage budget of {self.settings.triage_token_budget:,} tokens "
                    f"was reached ({exc.__cause__}); raise llm.triage_token_budget if this "
                    "recurs"
                )
        except Exception as exc:  # provider SDK and pydantic-ai errors, and our own bugs
            block["error"] = self.client.as_llm_error(exc).detail
            if not is_model_failure(exc):
                log.error("llm reasoning crashed", exc_info=True)
        finally:
            block["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
            if spent:
                try:
                    await self._account(block, spent)
                except Exception as exc:  # the books must not fail a triage
                    log.error("llm usage not recorded", error=str(exc)[:300])
        if block["error"]:
            LLM_CALLS.labels(block["provider"], block["model"], "error").inc()
            log.warning(
                "llm reasoning failed; deterministic result stands",
                fingerprint=ctx.alert.fingerprint,
                error=block["error"],
                tokens=block["tokens"]["total"],
            )
        else:
            log.info(
                "llm reasoning done",
                fingerprint=ctx.alert.fingerprint,
                agreement=block["agreement"]["verdict"],
                tokens=block["tokens"]["total"],
                calls=block["calls"],
                cached=block["cached"],
            )

    async def _reason(
        self,
        ctx: TriageContext,
        result: dict[str, Any],
        source: ClusterSource,
        sink: ExplanationSink,
        block: dict[str, Any],
        spent: Spent,
        runbooks: Sequence[RunbookExcerpt],
        metrics: MetricsSource | None,
    ) -> None:
        settings = self.settings
        names = _object_names(ctx) if settings.redact_object_names else ()
        redactor = Redactor(ips=settings.redact_ips, names=names)
        followup = FollowUp(
            source,
            redactor,
            max_rounds=settings.followup_max_rounds,
            max_calls=settings.followup_max_calls,
            source_name=ctx.source_name,
            metrics=metrics,
            alert_start=ctx.alert.starts_at,
            now=ctx.now,
        )
        digest, prompt = fit_prompt(
            redact_context(ctx, redactor),
            redact_result(result, redactor),
            token_target=settings.prompt_token_target,
            runbooks=runbooks,
            followup_tools=followup.tool_names,
        )
        # The system prompt is our own fixed text; what came from the cluster was redacted
        # value by value above, and the rendered prompt once more as a whole (names, and
        # anything our own formatting put together).
        system, user = prompt.system, redactor.redact(prompt.user)
        for kind, count in redactor.counts.items():
            LLM_REDACTIONS.labels(kind).inc(count)
        block["compression"] = {
            "estimated_prompt_tokens": prompt.estimated_tokens,
            "cited_evidence_kept": f"{digest.cited_kept}/{digest.cited_total}",
            "dropped": dict(digest.dropped),
        }
        stream = ExplanationStream(redactor, sink)
        key = self._cache_key(block["model"], system, user, followup.enabled)
        cached = await self.cache.get(key) if settings.cache_ttl_seconds else None
        if cached is not None:
            answer = Verdict.model_validate(cached["verdict"])
            followup.evidence.update(
                {e["id"]: _evidence_from(e) for e in cached.get("followup_evidence", [])}
            )
            followup.inspected.update(ObjectRef(**r) for r in cached.get("followup_inspected", []))
            block["cached"] = True
            LLM_CALLS.labels(block["provider"], block["model"], "cached").inc()
            await stream.finish(answer.explanation)
        else:
            await self._check_daily_budget(prompt.estimated_tokens)
            if prompt.estimated_tokens > settings.prompt_token_target:
                user = await self._condense(digest, prompt, redactor, followup, block, spent)
            strong_usage = RunUsage()
            spent.append((block["model"], strong_usage))
            answer = await self._ask(system, user, followup, stream, strong_usage)
            if settings.cache_ttl_seconds:
                await self.cache.put(
                    key,
                    {
                        "verdict": answer.model_dump(mode="json"),
                        "followup_evidence": [e.as_dict() for e in followup.evidence.values()],
                        "followup_inspected": [r.as_dict() for r in followup.inspected],
                    },
                    settings.cache_ttl_seconds,
                )
        verdict = Verdict.model_validate(redactor.restore_value(answer.model_dump(mode="json")))
        # Folded into a copy and swapped in whole: a failure half-way through must leave
        # the deterministic result exactly as it was.
        draft = copy.deepcopy({k: v for k, v in result.items() if k != "llm"})
        draft["llm"] = block
        self._fold(ctx, draft, digest, followup, verdict, block, redactor)
        result.update(draft)

    def _cache_key(self, model: str, system: str, user: str, followup: bool) -> str:
        material = json.dumps(
            [self.client.provider_name, model, PROMPT_VERSION, followup, system, user]
        )
        return hashlib.sha256(material.encode()).hexdigest()

    async def _check_daily_budget(self, prompt_tokens: int) -> None:
        budget = self.settings.daily_token_budget
        if not budget:
            return
        spent = await self.usage.spent_since(utc_midnight())
        if spent + prompt_tokens + ANSWER_TOKENS > budget:
            raise LLMBudgetExceeded(
                f"daily token budget of {budget:,} reached ({spent:,} used today, UTC); "
                "raise llm.daily_token_budget or wait until midnight UTC"
            )

    async def _ask(
        self,
        system: str,
        user: str,
        followup: FollowUp,
        stream: ExplanationStream,
        usage: RunUsage,
    ) -> Verdict:
        settings = self.settings
        agent: Agent[None, Verdict] = Agent(
            self.model or self.client.model("strong"),
            output_type=self.client.output_spec(Verdict),
            instructions=system,
            toolsets=[followup.toolset()] if followup.enabled else [],
            retries={"tools": 1, "output": 1},
            name="oncallm-triage",
        )
        limits = UsageLimits(
            # follow-up rounds, the answer, and one retry of an invalid answer
            request_limit=(settings.followup_max_rounds if followup.enabled else 0) + 2,
            total_tokens_limit=settings.triage_token_budget,
        )
        async with (
            self.client.request("strong"),
            agent.run_stream(user, usage_limits=limits, usage=usage) as run,
        ):
            async for response in run.stream_response(debounce_by=0.05):
                text = partial_explanation(response)
                if text:
                    await stream.update(text)
            answer = await run.get_output()
        await stream.finish(answer.explanation)
        return answer

    async def _condense(
        self,
        digest: ContextDigest,
        prompt: RenderedPrompt,
        redactor: Redactor,
        followup: FollowUp,
        block: dict[str, Any],
        spent: Spent,
    ) -> str:
        """The user prompt after the fast model condensed what did not fit.

        A failure here costs the triage nothing but size: the uncondensed prompt is sent.
        """
        fast = self.client.model_name("fast")
        usage = RunUsage()
        spent.append((fast, usage))
        try:
            async with self.client.request("fast"):
                _, smaller = await condense(
                    self.fast_model or self.client.model("fast"),
                    digest,
                    prompt,
                    redactor=redactor,
                    token_target=self.settings.prompt_token_target,
                    followup_tools=followup.tool_names,
                    timeout_seconds=self.settings.timeout_seconds,
                    usage=usage,
                )
        except LLMError as exc:
            block["condensed"] = {"model": fast, "error": exc.detail}
            return redactor.redact(prompt.user)
        if smaller is not prompt:
            block["condensed"] = {
                "model": fast,
                "estimated_prompt_tokens_before": prompt.estimated_tokens,
                "estimated_prompt_tokens_after": smaller.estimated_tokens,
            }
            block["compression"]["estimated_prompt_tokens"] = smaller.estimated_tokens
        return redactor.redact(smaller.user)

    async def _account(self, block: dict[str, Any], spent: Spent) -> None:
        """Tokens, cost and calls of every model used, on the block, the books and /metrics."""
        provider = block["provider"]
        total = TokenUsage(0, 0)
        cost_sum: float | None = 0.0
        calls_sum = 0
        for model, run_usage in spent:
            if not run_usage.requests:
                continue
            usage, calls = usage_from(run_usage), run_usage.requests
            cost = estimate_cost(provider, model, usage, self.settings.prices)
            total = total + usage
            calls_sum += calls
            cost_sum = None if cost is None or cost_sum is None else cost_sum + cost
            LLM_CALLS.labels(provider, model, "ok").inc(calls)
            LLM_TOKENS.labels(provider, model, "prompt").inc(usage.prompt)
            LLM_TOKENS.labels(provider, model, "completion").inc(usage.completion)
            if cost:
                LLM_COST.labels(provider, model).inc(cost)
            await self.usage.record(
                UsageRecord(provider, model, usage.prompt, usage.completion, cost)
            )
        block["tokens"] = {"prompt": total.prompt, "completion": total.completion,
                           "total": total.total}  # fmt: skip
        block["cost_usd"] = None if cost_sum is None else round(cost_sum, 6)
        block["calls"] = calls_sum

    def _fold(
        self,
        ctx: TriageContext,
        result: dict[str, Any],
        digest: ContextDigest,
        followup: FollowUp,
        verdict: Verdict,
        block: dict[str, Any],
        redactor: Redactor,
    ) -> None:
        inspected = set(ctx.inspected) | followup.inspected
        # Everything the result already holds (runbook excerpts too) is citable.
        gathered = {e["id"] for e in result["evidence"]}
        grounding = Grounding(digest.ids() | set(followup.evidence) | gathered, inspected)
        grounded = grounding.ground(verdict)
        # Facts the model cited that no analyzer did join the result, so the page can
        # show what each citation says.
        cited = [*grounded.root.verified_evidence]
        for alternative in grounded.alternatives:
            cited.extend(alternative.verified_evidence)
        for evidence_id in dict.fromkeys(cited):
            if evidence_id in gathered:
                continue
            item = followup.evidence.get(evidence_id)
            if item is None and (found := digest.item(evidence_id)) is not None:
                # the digest holds redacted text; users see the original
                redacted = found.as_evidence(ctx.source_name)
                item = dataclasses.replace(redacted, excerpt=redactor.restore(redacted.excerpt))
            if item is not None:
                result["evidence"].append(item.as_dict())
        listed = {(r["kind"], r["namespace"], r["name"]) for r in result["inspected"]}
        for ref in sorted(followup.inspected, key=str):
            if (ref.kind, ref.namespace, ref.name) not in listed:
                result["inspected"].append(ref.as_dict())
        block["agreement"] = apply_verdict(result, grounded)
        block["explanation"] = grounded.explanation
        block["root_cause"] = grounded.root.as_dict()
        block["alternatives"] = [a.as_dict() for a in grounded.alternatives]
        block["recommendations"] = [
            {**s.model_dump(), "source": "llm"} for s in grounded.recommendations
        ]
        block["grounding"] = {"dropped": grounded.dropped, "verified": grounded.root.verified}
        block["followup"] = followup.summary()


def _object_names(ctx: TriageContext) -> list[str]:
    names = {ref.name for ref in ctx.objects}
    names.update(ref.namespace for ref in ctx.objects if ref.namespace)
    return sorted(names)


def _evidence_from(data: dict[str, Any]) -> EvidenceItem:
    resource = data.get("resource")
    return EvidenceItem(
        data["id"],
        data["type"],
        ObjectRef(**resource) if resource else None,
        data["excerpt"],
        data["source"],
        query=data.get("query"),
        url=data.get("url"),
    )
