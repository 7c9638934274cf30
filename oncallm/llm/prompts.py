"""The prompts the reasoner sends, rendered from versioned Jinja2 templates.

Templates live in ``oncallm/llm/prompts/<version>/`` (``system.j2``, ``user.j2`` and
partials) and ship inside the package, so an installed OncallM renders the same bytes as
a checkout. A prompt change is a new version directory, never an edit in place: the
version is recorded on each triage and is part of the answer-cache key, and snapshot
tests (``tests/unit/test_prompts.py``) pin the rendered text for golden cases.

The answer's JSON schema is not pasted into the prompt: the provider client enforces
it (tool call, native response format or prompted output).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, TemplateNotFound

from oncallm.errors import ConfigError
from oncallm.llm.digest import ContextDigest, DigestItem, digest_context, estimate_tokens
from oncallm.triage.context import TriageContext

PROMPT_VERSION = "triage-v1"
_VERSION = re.compile(r"[a-z0-9][a-z0-9.-]*")  # a directory name, never a path

# Headings of the context sections, in the order they appear.
_GROUPS = (
    ("alert", "Alert evidence"),
    ("object", "Objects"),
    ("event", "Events"),
    ("log", "Logs"),
    ("metric", "Metrics"),
    ("runbook", "Runbooks"),
)


@dataclass(frozen=True)
class RunbookExcerpt:
    title: str
    source: str
    excerpt: str


@dataclass(frozen=True)
class RenderedPrompt:
    version: str
    system: str
    user: str

    @property
    def estimated_tokens(self) -> int:
        """System plus user prompt, by :func:`oncallm.llm.digest.estimate_tokens`."""
        return estimate_tokens(self.system) + estimate_tokens(self.user)


@dataclass(frozen=True)
class _Group:
    title: str
    items: tuple[DigestItem, ...]


_environment = Environment(
    loader=PackageLoader("oncallm.llm", "prompts"),
    undefined=StrictUndefined,  # a misspelt variable fails the render, not the prompt
    autoescape=False,  # noqa: S701 - plain text for a model, never served as HTML
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def available_versions() -> list[str]:
    return sorted({name.split("/", 1)[0] for name in _environment.list_templates() if "/" in name})


def _dropped_text(dropped: Mapping[str, int]) -> str:
    return "; ".join(f"{kind}: {count}" for kind, count in dropped.items())


def render_prompt(
    digest: ContextDigest,
    *,
    runbooks: Sequence[RunbookExcerpt] = (),
    followup_tools: Sequence[str] = (),
    version: str = PROMPT_VERSION,
) -> RenderedPrompt:
    """The system and user prompt for ``digest``. ``followup_tools`` names the read-only
    tools the model may call (none: it is told to answer from the context); runbook
    excerpts get their own section only when there are some."""
    if not _VERSION.fullmatch(version):
        raise ConfigError(f"prompt version {version!r} is not a version name")
    try:
        system = _environment.get_template(f"{version}/system.j2")
        user = _environment.get_template(f"{version}/user.j2")
    except TemplateNotFound:
        known = ", ".join(available_versions()) or "none"
        raise ConfigError(f"unknown prompt version {version!r} (available: {known})") from None
    groups = [
        _Group(title, tuple(i for i in digest.items if i.type == kind)) for kind, title in _GROUPS
    ]
    values: dict[str, Any] = {
        "digest": digest,
        "runbooks": tuple(runbooks),
        "followup_tools": tuple(followup_tools),
        "groups": [g for g in groups if g.items],
        "dropped": _dropped_text(digest.dropped),
    }
    return RenderedPrompt(version, system.render(values), user.render(values))


def prompt_overhead(
    *,
    runbooks: Sequence[RunbookExcerpt] = (),
    followup_tools: Sequence[str] = (),
    version: str = PROMPT_VERSION,
) -> int:
    """Estimated tokens of the prompt around an empty digest: the system prompt, the
    user prompt's headings and instructions, and the runbook excerpts."""
    empty = ContextDigest("", "", (), (), 0, 0, 0, MappingProxyType({}))
    rendered = render_prompt(
        empty, runbooks=runbooks, followup_tools=followup_tools, version=version
    )
    return rendered.estimated_tokens


def fit_prompt(
    ctx: TriageContext,
    result: Mapping[str, Any],
    *,
    token_target: int,
    runbooks: Sequence[RunbookExcerpt] = (),
    followup_tools: Sequence[str] = (),
    version: str = PROMPT_VERSION,
) -> tuple[ContextDigest, RenderedPrompt]:
    """Digest and prompt where ``token_target`` bounds the *whole* prompt (what
    ``llm.prompt_token_target`` means): the digest gets what the system prompt, the
    headings and the runbooks leave. Cited evidence is kept even past the target."""
    options: dict[str, Any] = {
        "runbooks": runbooks,
        "followup_tools": followup_tools,
        "version": version,
    }
    budget = max(token_target - prompt_overhead(**options), 0)
    digest = digest_context(ctx, result, token_target=budget)
    return digest, render_prompt(digest, **options)
