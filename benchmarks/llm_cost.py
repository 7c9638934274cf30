"""LLM cost benchmark: prompt tokens, cited evidence kept and model calls per triage.

Every golden case (``evals/cases/*``) is triaged deterministically (``tests.support.golden``)
and then handed to the real reasoner (``oncallm.llm.reasoner.Reasoner``) with the real
pydantic-ai / OpenAI client, speaking HTTP to the scripted OpenAI-compatible server
(``tests.fakes.openai_api.OpenAIFake``) on loopback. Settings are the defaults of
``LLMSettings`` for provider ``openai-compatible`` (prompt target 4,000 tokens, the
follow-up limits, answer cache on; the JSON reports the values used), once per output
mode: ``native`` (what ``auto`` means for openai-compatible) and ``tool``. Follow-up
reads go to the case's snapshot.

The scripted model behaves like a reasonable one. As the strong model: for every
``--followup-every``-th case it first asks for the culprit object (``get_object``; the
alerted object when the case names no culprit) and then answers; otherwise it answers at
once. The answer agrees with the case's ``expected.yaml`` (category, culprit) and cites the
deterministic root cause's evidence ids (plus the follow-up fact's id when it read one).
As the fast model (asked to condense context that deterministic compression could not fit,
``oncallm.llm.condense``): every item it was given, cut to its first line and at most two
notable ones.

Reported per mode:

* ``prompt_tokens``: per triage, the prompt tokens the provider reported, summed over all
  of the triage's calls (``provider_reported``; the fake counts ceil(chars / 4) of the
  message text, see ``token_estimate``); the reasoner's own pre-send estimate of its
  prompt (``llm.compression.estimated_prompt_tokens``, after condensation);
  ``with_definitions``, adding the tool and JSON-schema definitions each request carries,
  which the fake's count leaves out and real providers count; and ceil(bytes / 4) of the
  whole request bodies (``request_body_estimate``) — median, p90, max;
* ``cited_evidence_kept``: of the evidence ids the deterministic findings cite, the share
  present as a context item (an ``[id]`` line, then its text, not rewritten by the fast
  model) in every request that carried the triage prompt — read from the fake's recorded
  request bodies, not the reasoner's counter (which is reported beside it);
* ``calls_per_triage``: generation requests the fake received per triage (fast and strong);
* ``condensation``, ``followup`` outcomes, ``agreement`` (the reasoner's verdicts),
  ``errors`` (``llm.error``).

``goals`` checks the issue's goal over every mode run: median prompt tokens (as reported)
<= 4,000, at most 3 calls per triage, all cited evidence kept; ``goal_met`` is all of them.
Like the other benchmarks this exits 0 and reports ``goal_met``; ``--strict`` exits 1 when
a goal is missed (for CI).

Usage: ``uv run python benchmarks/llm_cost.py [--modes native,tool] [--followup-every 3]
[--per-case] [--strict]``; one JSON object on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from oncallm.config import LogSettings  # noqa: E402
from oncallm.config_llm import LLMSettings  # noqa: E402
from oncallm.config_runbooks import RunbooksSettings  # noqa: E402
from oncallm.llm.condense import INSTRUCTIONS as CONDENSE_INSTRUCTIONS  # noqa: E402
from oncallm.llm.reasoner import Reasoner  # noqa: E402
from oncallm.observability import configure_logging  # noqa: E402
from oncallm.sources.snapshot import SnapshotSource  # noqa: E402
from oncallm.triage.context import TriageContext  # noqa: E402
from oncallm.triage.guidance import RunbookGuide  # noqa: E402
from tests.fakes.llm_script import RecordedRequest, Responder  # noqa: E402
from tests.fakes.openai_api import DEFAULT_KEY, OpenAIFake, Reply  # noqa: E402
from tests.support.golden import CASES_DIR, case_names, golden_triage  # noqa: E402

GOAL_MEDIAN_PROMPT_TOKENS = 4000
GOAL_MAX_CALLS = 3
TOKEN_ESTIMATE = (
    "no tokenizer: the fake provider reports ceil(chars / 4) of the request's message text "
    "(system prompt, messages, tool-call arguments and tool results; not the tool or "
    "JSON-schema definitions), the same rule as the reasoner's own estimate "
    "(oncallm.llm.digest.estimate_tokens); with_definitions adds ceil(chars / 4) of the "
    "tools and response_format JSON each request carries (real providers count those); "
    "request_body_estimate is ceil(bytes / 4) of the whole JSON request bodies"
)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "p90": round(_percentile(values, 0.9), 1),
        "max": round(max(values), 1),
    }


def _ref(value: Any) -> tuple[Any, Any, Any] | None:
    if not isinstance(value, dict):
        return None
    return value.get("kind"), value.get("namespace") or None, value.get("name")


@dataclass(frozen=True)
class Case:
    name: str
    ctx: TriageContext
    result: dict[str, Any]  # the deterministic result; copied before each run
    expected: dict[str, Any]
    followup: bool

    @property
    def cited(self) -> list[str]:
        """Evidence ids cited by the deterministic findings (root cause included)."""
        ids: list[str] = []
        for finding in [self.result.get("root_cause") or {}, *self.result.get("findings", [])]:
            ids.extend(str(e) for e in finding.get("evidence") or [])
        return list(dict.fromkeys(ids))

    def deterministic_vs_expected(self) -> str:
        """``primary``: the deterministic root names expected.yaml's category and culprit;
        ``acceptable``: one of its ``acceptable_culprits`` instead; ``wrong`` otherwise."""
        root = self.result.get("root_cause") or {}
        if root.get("category") != self.expected.get("category"):
            return "wrong"
        named = _ref(root.get("resource"))
        if named == _ref(self.expected.get("culprit")):
            return "primary"
        others = [_ref(c) for c in self.expected.get("acceptable_culprits") or []]
        return "acceptable" if named in others else "wrong"

    def followup_target(self) -> dict[str, Any] | None:
        """What the model reads first: the expected culprit, else the alerted object."""
        root = self.result.get("root_cause") or {}
        target = self.expected.get("culprit") or root.get("resource") or root.get("subject")
        if not self.followup or not isinstance(target, dict):
            return None
        args = {"kind": target["kind"], "name": target["name"]}
        if target.get("namespace"):
            args["namespace"] = target["namespace"]
        return args


def load_cases(followup_every: int) -> list[Case]:
    cases = []
    for number, name in enumerate(case_names()):
        ctx, result = golden_triage(name)
        expected = yaml.safe_load((CASES_DIR / name / "expected.yaml").read_text())
        followup = followup_every > 0 and number % followup_every == 0
        cases.append(Case(name, ctx, result, expected, followup))
    return cases


def verdict(case: Case, followup_evidence: str | None) -> dict[str, Any]:
    """An answer agreeing with expected.yaml, citing the deterministic root's evidence."""
    root = case.result.get("root_cause") or {}
    evidence = list(root.get("evidence") or [])
    if followup_evidence:
        evidence.append(followup_evidence)
    culprit = case.expected.get("culprit")
    category = str(case.expected["category"])
    mentions = " and ".join(case.expected.get("summary_mentions") or []) or category
    named = f"{culprit['kind']} {culprit['name']}" if culprit else "no single object"
    steps = []
    if culprit:
        where = f" -n {culprit['namespace']}" if culprit.get("namespace") else ""
        steps.append(
            {
                "title": f"Inspect {culprit['kind']} {culprit['name']}",
                "detail": "Confirm the cause before changing anything.",
                "commands": [
                    f"kubectl describe {culprit['kind'].lower()} {culprit['name']}{where}"
                ],
                "risk": "low",
            }
        )
    return {
        "explanation": (
            f"The alert is explained by {category} on {named}: {mentions}. "
            + " ".join(f"[{e}]" for e in evidence)
            + " The deterministic finding and the cited facts agree; fix the culprit and "
            "watch the alert resolve."
        ),
        "root_cause": {
            "category": category,
            "culprit": culprit,
            "summary": f"{category}: {mentions} ({named}).",
            "confidence": 0.85,
            "evidence": evidence,
        },
        "alternatives": [],
        "recommendations": steps,
    }


# An item's ``[id]`` line; ids are ``type:...`` and may hold spaces and brackets
# (``object:Node/n1#status.conditions[NotReady (status Unknown)]``).
HEADING = re.compile(r"^\[([a-z]+:.*)\]$", re.MULTILINE)
NOTABLE = re.compile(
    r"error|fail|warn|exit|kill|oom|back-?off|not ?ready|false|restart|denied|refused|invalid",
    re.IGNORECASE,
)


def is_condense(request: RecordedRequest) -> bool:
    """A fast-tier condensation request (``oncallm.llm.condense``), not the triage prompt."""
    return CONDENSE_INSTRUCTIONS in request.prompt_text


def condensed(request: RecordedRequest) -> dict[str, Any]:
    """What a reasonable fast model answers: every item it was given, in at most three
    short lines — the first line (the object and its state) and the notable ones."""
    text = next((m["content"] for m in request.messages if m.get("role") == "user"), "")
    headings = list(HEADING.finditer(text))
    items = []
    for number, heading in enumerate(headings):
        end = headings[number + 1].start() if number + 1 < len(headings) else len(text)
        lines = [line.strip() for line in text[heading.end() : end].splitlines() if line.strip()]
        kept = lines[:1] + [line for line in lines[1:] if NOTABLE.search(line)][:2]
        items.append({"id": heading.group(1), "text": "\n".join(line[:120] for line in kept)})
    return {"items": items}


def responder(case: Case) -> Responder:
    target = case.followup_target()

    def answer(request: RecordedRequest) -> Reply:
        if is_condense(request):
            return Reply.output(condensed(request))
        results = request.tool_results
        if target is not None and not results and "get_object" in request.tool_names:
            return Reply.tool_call("get_object", target)
        learned = None
        for result in results:
            match = re.match(r"evidence id: (\S+)", result.text)
            if match:
                learned = match.group(1)
        return Reply.output(verdict(case, learned))

    return answer


def items_in(text: str, ids: Sequence[str]) -> set[str]:
    """The ids that appear in ``text`` as a context item as the reasoner rendered it: an
    ``[id]`` line, then non-empty text, not marked as rewritten by the fast model."""
    headings = list(HEADING.finditer(text))
    found = set()
    for number, heading in enumerate(headings):
        if heading.group(1) not in ids:
            continue
        end = headings[number + 1].start() if number + 1 < len(headings) else len(text)
        body = text[heading.end() : end].split("\n\n", 1)[0].strip()
        if body and not body.endswith("(condensed)"):
            found.add(heading.group(1))
    return found


def _definitions(request: RecordedRequest) -> int:
    """ceil(chars / 4) of the tool and response-format (JSON schema) definitions a request
    carries: prompt tokens a real provider counts that the fake's estimate leaves out."""
    body = request.body
    chars = sum(len(json.dumps(body[k])) for k in ("tools", "response_format") if body.get(k))
    return math.ceil(chars / 4)


def _agreement(record: dict[str, Any]) -> str:
    verdict = str(record.get("verdict"))
    if verdict == "disagrees":
        return f"disagrees, {record.get('ranked_first')} ranked first"
    return verdict


async def run_case(
    fake: OpenAIFake, reasoner: Reasoner, case: Case, guide: RunbookGuide
) -> dict[str, Any]:
    result = copy.deepcopy(case.result)
    # As the pipeline does: the shipped runbooks' excerpts go into the prompt too.
    excerpts = await guide.attach(case.ctx.alert, result)
    fake.respond_with(responder(case))
    before = len(fake.calls)

    async def sink(delta: str) -> None:
        return None

    source = SnapshotSource(CASES_DIR / case.name / "snapshot")
    started = time.perf_counter()
    try:
        await reasoner.reason(case.ctx, result, source, sink, excerpts)
    finally:
        await source.close()
    wall = time.perf_counter() - started
    calls = fake.calls[before:]
    strong = [r for r in calls if not is_condense(r)]
    llm = result["llm"]
    cited = case.cited
    # In every request that carried the triage prompt (each repeats the context); the
    # condensation request carries only uncited items, by design.
    kept = set(cited) if strong else set()
    for request in strong:
        kept &= items_in(request.prompt_text, cited)
    compression = llm.get("compression") or {}
    followup = llm.get("followup") or {}
    return {
        "case": case.name,
        "followup_scripted": case.followup_target() is not None,
        "calls": len(calls),
        "condense_calls": len(calls) - len(strong),
        "condensed": llm.get("condensed"),
        "prompt_tokens": sum(math.ceil(len(r.prompt_text) / 4) for r in calls),
        "prompt_tokens_reported": llm["tokens"]["prompt"],
        "completion_tokens": llm["tokens"]["completion"],
        "estimated_prompt_tokens": compression.get("estimated_prompt_tokens"),
        "request_body_estimate": sum(math.ceil(len(r.raw_body) / 4) for r in calls),
        "definitions_estimate": sum(_definitions(r) for r in calls),
        "cited": len(cited),
        "cited_kept": len(kept),
        "cited_missing": sorted(set(cited) - kept),
        "reasoner_cited_kept": compression.get("cited_evidence_kept"),
        "dropped": compression.get("dropped", {}),
        "agreement": _agreement(llm.get("agreement") or {}),
        "deterministic_vs_expected": case.deterministic_vs_expected(),
        "followup": [c["outcome"] for c in followup.get("calls", [])],
        "error": llm.get("error"),
        "wall_ms": round(wall * 1000, 1),
    }


async def run_mode(mode: str, cases: Sequence[Case]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every case through the reasoner in ``mode``; the runs and what the script raised."""
    runs = []
    with OpenAIFake() as fake:
        settings = LLMSettings.model_validate(
            {
                "provider": "openai-compatible",
                "base_url": fake.base_url,
                "api_key": DEFAULT_KEY,
                "output_mode": mode,
            }
        )
        reasoner = Reasoner.from_settings(settings)
        assert reasoner is not None
        guide = RunbookGuide(RunbooksSettings())
        try:
            for case in cases:
                run = await run_case(fake, reasoner, case, guide)
                runs.append(run)
                if run["error"] or run["cited_kept"] < run["cited"]:
                    _log(f"  {mode} {case.name}: {run['error'] or run['cited_missing']}")
        finally:
            await reasoner.aclose()
            await guide.aclose()
        script_errors = [repr(e) for e in fake.errors]
        if script_errors:
            _log(f"  {mode}: the fake's script raised {script_errors}")
    return runs, script_errors


def _counter_all(run: dict[str, Any]) -> bool:
    """Whether the reasoner's own counter says every cited item was kept."""
    counter: str | None = run["reasoner_cited_kept"]
    if not counter:
        return False
    kept, total = counter.split("/")
    return bool(kept == total)


def _counter_total(runs: Sequence[dict[str, Any]]) -> str:
    pairs = [r["reasoner_cited_kept"].split("/") for r in runs if r["reasoner_cited_kept"]]
    return f"{sum(int(k) for k, _ in pairs)}/{sum(int(t) for _, t in pairs)}"


def summarize(runs: Sequence[dict[str, Any]], per_case: bool) -> dict[str, Any]:
    cited = sum(r["cited"] for r in runs)
    kept = sum(r["cited_kept"] for r in runs)
    calls = [float(r["calls"]) for r in runs]
    reported = [float(r["prompt_tokens_reported"]) for r in runs]
    largest = sorted(runs, key=lambda r: r["prompt_tokens"], reverse=True)[:5]
    summary: dict[str, Any] = {
        "prompt_tokens": {
            "provider_reported": _spread(reported),
            "reasoner_estimate": _spread([float(r["estimated_prompt_tokens"] or 0) for r in runs]),
            "with_definitions": _spread(
                [float(r["prompt_tokens_reported"] + r["definitions_estimate"]) for r in runs]
            ),
            "request_body_estimate": _spread([float(r["request_body_estimate"]) for r in runs]),
            "over_target": sum(r > GOAL_MEDIAN_PROMPT_TOKENS for r in reported),
            "provider_report_mismatches": [
                r["case"] for r in runs if r["prompt_tokens"] != r["prompt_tokens_reported"]
            ],
            "largest": [
                {
                    "case": r["case"],
                    "provider_reported": r["prompt_tokens_reported"],
                    "calls": r["calls"],
                    "reasoner_estimate": r["estimated_prompt_tokens"],
                    "dropped": r["dropped"],
                }
                for r in largest
            ],
        },
        "completion_tokens": _spread([float(r["completion_tokens"]) for r in runs]),
        "cited_evidence_kept": {
            "share": round(kept / cited, 4) if cited else 1.0,
            "kept": kept,
            "cited": cited,
            "missing": {r["case"]: r["cited_missing"] for r in runs if r["cited_missing"]},
            "reasoner_counter": _counter_total(runs),
            "reasoner_counter_disagrees": [
                r["case"] for r in runs if _counter_all(r) != (not r["cited_missing"])
            ],
        },
        "calls_per_triage": {
            "median": statistics.median(calls),
            "max": max(calls),
            "histogram": {str(n): c for n, c in sorted(Counter(r["calls"] for r in runs).items())},
        },
        "condensation": {
            "triages": sum(1 for r in runs if r["condense_calls"]),
            "fast_calls": sum(r["condense_calls"] for r in runs),
            "estimated_tokens_before_after": {
                r["case"]: [
                    r["condensed"].get("estimated_prompt_tokens_before"),
                    r["condensed"].get("estimated_prompt_tokens_after"),
                ]
                for r in runs
                if r["condensed"] and "error" not in r["condensed"]
            },
            "errors": {
                r["case"]: r["condensed"]["error"]
                for r in runs
                if r["condensed"] and "error" in r["condensed"]
            },
        },
        "followup": {
            "triages_scripted": sum(r["followup_scripted"] for r in runs),
            "outcomes": dict(
                Counter(o.split(":")[0] for r in runs for o in r["followup"]).most_common()
            ),
        },
        "agreement": dict(Counter(str(r["agreement"]) for r in runs).most_common()),
        "deterministic_vs_expected": {
            kind: [r["case"] for r in runs if r["deterministic_vs_expected"] == kind]
            for kind in ("acceptable", "wrong")
        },
        "errors": {r["case"]: r["error"] for r in runs if r["error"]},
        "wall_ms_per_triage": _spread([r["wall_ms"] for r in runs]),
    }
    if per_case:
        summary["per_case"] = list(runs)
    return summary


def goals(summaries: Sequence[dict[str, Any]]) -> dict[str, bool]:
    return {
        "median_prompt_tokens_le_4000": all(
            s["prompt_tokens"]["provider_reported"]["median"] <= GOAL_MEDIAN_PROMPT_TOKENS
            for s in summaries
        ),
        "calls_per_triage_le_3": all(
            s["calls_per_triage"]["max"] <= GOAL_MAX_CALLS for s in summaries
        ),
        "cited_evidence_kept_100pct": all(
            s["cited_evidence_kept"]["kept"] == s["cited_evidence_kept"]["cited"] for s in summaries
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--modes",
        default="native,tool",
        help="output modes to run; the first is the headline (native: what auto means here)",
    )
    parser.add_argument(
        "--followup-every",
        type=int,
        default=3,
        help="the scripted model asks one follow-up in every N-th case (0: never)",
    )
    parser.add_argument("--per-case", action="store_true", help="include every triage's row")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    # stdout carries only the JSON; failed reasoning (a warning) still shows on stderr.
    configure_logging(LogSettings(level="WARNING", format="console"))

    started = time.perf_counter()
    cases = load_cases(args.followup_every)
    _log(f"{len(cases)} golden cases triaged deterministically")
    summaries: dict[str, dict[str, Any]] = {}
    for mode in modes:
        mode_started = time.perf_counter()
        runs, script_errors = asyncio.run(run_mode(mode, cases))
        summaries[mode] = summarize(runs, args.per_case)
        summaries[mode]["script_errors"] = script_errors
        summaries[mode]["wall_s"] = round(time.perf_counter() - mode_started, 2)
        tokens = summaries[mode]["prompt_tokens"]["provider_reported"]
        _log(
            f"{mode}: prompt tokens median {tokens['median']:.0f}, max {tokens['max']:.0f}; "
            f"calls max {summaries[mode]['calls_per_triage']['max']:.0f}"
        )
    checked = goals(list(summaries.values()))
    headline = summaries[modes[0]]
    report: dict[str, Any] = {
        "benchmark": "llm_cost",
        "command": " ".join(["benchmarks/llm_cost.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "cases": len(cases),
        "config": {
            "provider": "openai-compatible (tests.fakes.openai_api.OpenAIFake over HTTP)",
            "llm_settings": "defaults",
            "prompt_token_target": LLMSettings().prompt_token_target,
            "followup_max_rounds": LLMSettings().followup_max_rounds,
            "followup_max_calls": LLMSettings().followup_max_calls,
            "followup_every": args.followup_every,
            "output_modes": modes,
            "headline_mode": modes[0],
        },
        "token_estimate": TOKEN_ESTIMATE,
        "output_mode": modes[0],
        **{k: headline[k] for k in headline if k != "wall_s"},
        "other_modes": {m: summaries[m] for m in modes[1:]},
        "goal": {
            "median_prompt_tokens": GOAL_MEDIAN_PROMPT_TOKENS,
            "max_calls_per_triage": GOAL_MAX_CALLS,
            "cited_evidence_kept": 1.0,
            "scope": "every output mode run",
        },
        "goals": checked,
        "goal_met": all(checked.values()),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    print(json.dumps(report, indent=2))
    return 1 if args.strict and not report["goal_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
