"""The rendered prompts, pinned: what a model is sent for golden cases, byte for byte.

Each snapshot under ``tests/snapshots/prompts/<case>.txt`` is the system and user prompt
for that golden case at the default token target (4,000) with follow-up tools enabled.
A template or digest change shows up as a snapshot diff to review. To accept the new
rendering, rewrite the files and review the diff before committing:

    UPDATE_SNAPSHOTS=1 uv run pytest tests/unit/test_prompts.py

Golden snapshots carry fixed times (``snapshot.yaml``'s ``captured_at``) and the prompt
phrases times relative to the alert's start, so the rendering does not vary run to run.
"""

from __future__ import annotations

import os
import statistics
from importlib.resources import files
from pathlib import Path

import pytest

from oncallm.errors import ConfigError
from oncallm.llm.digest import digest_context
from oncallm.llm.prompts import (
    PROMPT_VERSION,
    RenderedPrompt,
    RunbookExcerpt,
    fit_prompt,
    render_prompt,
)
from oncallm.triage.taxonomy import Category
from tests.support.golden import case_names, golden_triage, run_golden

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots" / "prompts"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"
TARGET = 4000  # llm.prompt_token_target's default
TOOLS = ("get_object", "get_events", "get_logs")
# One per kind of incident: a multi-hop config error, a crash with a stack trace, a
# volume behind a dependency, a node down, a network policy, an honest Unknown, and a
# context too big for the target even after compression.
SNAPSHOT_CASES = [
    "configmap-missing-key-behind-service",
    "crashloop-go-nil-pointer",
    "checkout-postgres-pvc-missing-storageclass",
    "node-notready-kubelet-stopped",
    "networkpolicy-blocks-cart-to-redis",
    "unknown-pod-not-ready-no-evidence",
    "istio-proxy-sidecar-oomkilled",
]


def _prompt(case: str, target: int = TARGET) -> RenderedPrompt:
    ctx, result = golden_triage(case)
    return fit_prompt(ctx, result, token_target=target, followup_tools=TOOLS)[1]


def _snapshot_text(case: str) -> str:
    ctx, result = golden_triage(case)
    digest, prompt = fit_prompt(ctx, result, token_target=TARGET, followup_tools=TOOLS)
    dropped = "; ".join(f"{kind}: {n}" for kind, n in digest.dropped.items()) or "nothing"
    return (
        f"# prompt {prompt.version} for golden case {case}: target {TARGET} tokens, "
        f"estimated {prompt.estimated_tokens}; cited evidence kept "
        f"{digest.cited_kept}/{digest.cited_total}; dropped: {dropped}\n"
        f"===== system =====\n{prompt.system}===== user =====\n{prompt.user}"
    )


@pytest.mark.parametrize("case", SNAPSHOT_CASES)
def test_prompt_matches_its_snapshot(case: str) -> None:
    path = SNAPSHOTS / f"{case}.txt"
    rendered = _snapshot_text(case)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
        return
    assert path.is_file(), f"no snapshot {path}; create it with UPDATE_SNAPSHOTS=1"
    assert rendered == path.read_text(encoding="utf-8"), (
        f"the prompt for {case} changed; review, then accept with UPDATE_SNAPSHOTS=1"
    )


def test_a_fresh_gather_renders_the_same_prompt() -> None:
    case = "checkout-postgres-pvc-missing-storageclass"
    ctx, result = run_golden(case)
    again = fit_prompt(ctx, result, token_target=TARGET, followup_tools=TOOLS)[1]
    assert again == _prompt(case)


@pytest.mark.parametrize("target", [TARGET, 500])
def test_the_user_prompt_carries_every_cited_evidence_id(target: int) -> None:
    for case in case_names():
        _ctx, result = golden_triage(case)
        user = _prompt(case, target).user
        for evidence in result["evidence"]:
            assert f"[{evidence['id']}]" in user, f"{case}: {evidence['id']} missing"


def test_the_median_golden_prompt_fits_the_token_goal() -> None:
    sizes = [_prompt(case).estimated_tokens for case in case_names()]
    assert statistics.median(sizes) <= TARGET  # issue 4's goal, system prompt included


def test_the_whole_prompt_fits_the_target_when_compression_can_make_it() -> None:
    ctx, result = golden_triage("oom-java-heap-over-limit")
    uncompressed = render_prompt(digest_context(ctx, result, token_target=100_000))
    assert uncompressed.estimated_tokens > TARGET
    assert _prompt("oom-java-heap-over-limit").estimated_tokens <= TARGET


# --- what the prompts say -----------------------------------------------------------------


def test_the_system_prompt_defines_every_category_and_the_rules() -> None:
    system = _prompt("crashloop-go-nil-pointer").system
    for category in Category:
        assert f"\n- {category.value}: " in system
    for rule in (
        "Cite evidence only by ids given in the context",
        "Name only objects that appear in the context",
        "Disagree with them only when cited evidence shows they are wrong",
        "answer Unknown with low confidence rather than guess",
        "Never ask for, guess or invent secret values",
        "<EMAIL_n> or <PASSWORD_n> (n a number) are redactions",
        "The culprit is the object whose fix ends the incident",
    ):
        assert rule in system
    assert "schema" in system
    assert '"properties"' not in system  # the client enforces the schema; not pasted


def test_follow_up_tools_are_offered_only_when_enabled() -> None:
    ctx, result = golden_triage("crashloop-go-nil-pointer")
    digest = digest_context(ctx, result, token_target=TARGET)
    with_tools = render_prompt(digest, followup_tools=TOOLS).system
    assert "you may call these read-only tools: get_object, get_events, get_logs." in with_tools
    without = render_prompt(digest).system
    assert "get_object" not in without
    assert "You cannot fetch anything more" in without


def test_runbook_excerpts_get_a_section_only_when_given() -> None:
    ctx, result = golden_triage("configmap-missing-key-behind-service")
    digest = digest_context(ctx, result, token_target=TARGET)
    assert "## Runbook excerpts" not in render_prompt(digest).user
    runbook = RunbookExcerpt(
        "Service endpoints down",
        "https://runbooks.acme.io/kubernetes/service-endpoints-down",
        "1. Check the pods behind the Service.\n2. Check their config.",
    )
    user = render_prompt(digest, runbooks=[runbook]).user
    assert (
        "## Runbook excerpts\n\n"
        "### Service endpoints down (https://runbooks.acme.io/kubernetes/service-endpoints-down)\n"
        "1. Check the pods behind the Service.\n2. Check their config.\n\n## Context\n"
    ) in user


def test_gaps_and_compression_are_stated() -> None:
    ctx, result = golden_triage("oom-java-heap-over-limit")
    result = {**result, "gaps": [{"source": "logs of Pod shop/x", "error": "403 Forbidden"}]}
    digest = digest_context(ctx, result, token_target=1500)
    user = render_prompt(digest).user
    assert "## Gaps: reads that failed, so evidence may be missing\n" in user
    assert "- logs of Pod shop/x: 403 Forbidden\n" in user
    assert "Left out to fit the token budget: " in user
    assert "healthy objects" in user


def test_an_unknown_version_is_a_clear_error() -> None:
    ctx, result = golden_triage("crashloop-go-nil-pointer")
    digest = digest_context(ctx, result, token_target=TARGET)
    with pytest.raises(ConfigError, match=r"unknown prompt version 'triage-v0' \(available: "):
        render_prompt(digest, version="triage-v0")
    with pytest.raises(ConfigError, match="not a version name"):
        render_prompt(digest, version="../../etc")


def test_the_templates_ship_inside_the_package() -> None:
    # Loaded by package path, so an installed wheel renders the same prompt.
    folder = files("oncallm.llm") / "prompts" / PROMPT_VERSION
    for name in ("system.j2", "user.j2", "_taxonomy.j2"):
        assert (folder / name).is_file()
    assert _prompt("crashloop-go-nil-pointer").version == PROMPT_VERSION
