"""The fast tier's job: condense what deterministic compression could not fit.

``fit_prompt`` collapses repeats, drops healthy objects and shortens uncited logs; when a
prompt is still over ``llm.prompt_token_target`` (many pods, long uncited logs), the
*fast* model rewrites the largest uncited items into a few lines each. Cited items are
never sent here and never changed — the evidence the findings rest on reaches the strong
model verbatim. Condensed items keep their ids, so the strong model can still cite them,
and the evidence a citation adds to the result is always the original text, never the
fast model's rewording. Texts are redacted before they leave, like every prompt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pydantic import BaseModel, Field
from pydantic_ai import Agent
from pydantic_ai.models import Model
from pydantic_ai.usage import RunUsage, UsageLimits

from oncallm.llm.digest import ContextDigest, DigestItem, canonical_text, estimate_tokens
from oncallm.llm.prompts import RenderedPrompt, render_prompt
from oncallm.llm.redaction import Redactor

INSTRUCTIONS = """\
You condense Kubernetes facts for an SRE who is triaging an alert. For each item, write
at most three short lines that keep: object names, error messages and exit codes
verbatim, counts, times, and anything abnormal. Drop what is routine. Keep placeholders
such as <PASSWORD_n> exactly as they are. Return every item id you were given."""

# Items shorter than this are not worth a rewrite.
MIN_ITEM_TOKENS = 60


class CondensedItem(BaseModel):
    id: str
    text: str = Field(description="At most three short lines.")


class Condensed(BaseModel):
    items: list[CondensedItem]


def candidates(digest: ContextDigest, excess_tokens: int) -> list[DigestItem]:
    """The largest uncited items, enough of them to cover ``excess_tokens`` if halved."""
    chosen: list[DigestItem] = []
    saved = 0
    pool = sorted(
        (i for i in digest.items if not i.cited and i.type != "alert"),
        key=lambda i: (-len(i.text), i.id),
    )
    for item in pool:
        size = estimate_tokens(item.text)
        if size < MIN_ITEM_TOKENS or saved >= excess_tokens:
            break
        chosen.append(item)
        saved += size // 2
    return chosen


async def condense(
    model: Model,
    digest: ContextDigest,
    prompt: RenderedPrompt,
    *,
    redactor: Redactor,
    token_target: int,
    followup_tools: Sequence[str],
    timeout_seconds: float,
    usage: RunUsage,
) -> tuple[ContextDigest, RenderedPrompt]:
    """A digest and prompt that fit better (the same ones when nothing can be condensed).

    ``usage`` is added to as responses arrive, so a failed call's tokens are still known.
    """
    excess = prompt.estimated_tokens - token_target
    chosen = candidates(digest, excess) if excess > 0 else []
    if not chosen:
        return digest, prompt
    listing = "\n\n".join(f"[{item.id}]\n{redactor.redact(item.text)}" for item in chosen)
    agent: Agent[None, Condensed] = Agent(
        model, output_type=Condensed, instructions=INSTRUCTIONS, name="oncallm-condense"
    )
    run = await agent.run(
        listing,
        usage_limits=UsageLimits(request_limit=2),
        usage=usage,
        model_settings={"timeout": timeout_seconds},
    )
    rewritten = {c.id: c.text.strip() for c in run.output.items if c.text.strip()}
    items = tuple(
        dataclasses.replace(item, text=rewritten[item.id] + "\n(condensed)")
        if item.id in rewritten and len(rewritten[item.id]) < len(item.text)
        else item
        for item in digest.items
    )
    text = canonical_text(digest.alert, digest.findings, digest.gaps, items)
    smaller = dataclasses.replace(digest, items=items, estimated_tokens=estimate_tokens(text))
    condensed_prompt = render_prompt(smaller, followup_tools=followup_tools, version=prompt.version)
    return smaller, condensed_prompt
