"""A triage result as Markdown: what an engineer reads in a terminal or pastes in a ticket."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _ref(resource: Mapping[str, Any] | None) -> str:
    if not resource:
        return "—"
    ns = resource.get("namespace")
    return (
        f"{resource['kind']} {ns}/{resource['name']}"
        if ns
        else (f"{resource['kind']} {resource['name']}")
    )


def _claimed_by(finding: Mapping[str, Any]) -> str:
    if finding.get("analyzer") != "llm":
        return ""
    return ", the model's" + ("" if finding.get("verified") else ", unverified")


def _llm_section(llm: Mapping[str, Any] | None) -> list[str]:
    """The model's explanation, labelled as the model's, with what grounding dropped."""
    if not llm:
        return []
    head = f"## Explanation ({llm['provider']} · {llm['model']})"
    if llm.get("error"):
        return ["", head, "", f"The model could not be used: {llm['error']}."]
    lines = ["", head, ""]
    agreement = llm.get("agreement") or {}
    if agreement.get("verdict") == "disagrees":
        theirs = llm["root_cause"]
        lines += [
            f"**The model disagrees:** it suggests {theirs['category']} "
            f"({_ref(theirs.get('named_resource'))}, confidence {theirs['confidence']:.2f}"
            f"{'' if theirs['verified'] else ', unverified'}). "
            f"Ranked first: {agreement['ranked_first']} — {agreement['reason']}.",
            "",
        ]
    elif agreement.get("verdict") == "agrees":
        lines += ["The model agrees with the analyzers.", ""]
    if llm.get("explanation"):
        lines.append(llm["explanation"].strip())
    dropped = (llm.get("grounding") or {}).get("dropped") or []
    if dropped:
        lines += ["", "Dropped by the grounding check:", "", *(f"- {d}" for d in dropped)]
    tokens = llm["tokens"]["total"]
    cost = f" · ${llm['cost_usd']:.4f}" if llm.get("cost_usd") else ""
    lines += ["", f"_Prompt {llm['prompt_version']} · {tokens} tokens{cost}_"]
    return lines


def render(result: Mapping[str, Any]) -> str:
    alert = result["alert"]
    root = result["root_cause"]
    labels = alert.get("labels", {})
    where = " · ".join(
        f"{k}={labels[k]}" for k in ("cluster", "namespace", "severity") if labels.get(k)
    )
    lines = [
        f"# {alert['alertname']} ({alert['status']})",
        "",
        f"Fingerprint `{alert['fingerprint']}` · started {alert['startsAt']}"
        + (f" · {where}" if where else ""),
        "",
        f"## Root cause: {root['category']} (confidence {root['confidence']:.2f})",
        "",
        root["summary"],
        "",
        f"Culprit: **{_ref(root.get('resource'))}**",
    ]
    evidence = {e["id"]: e for e in result.get("evidence", [])}
    cited = [evidence[i] for i in root.get("evidence", []) if i in evidence]
    if cited:
        lines += ["", "### Evidence", ""]
        for item in cited:
            lines.append(f"- `{item['id']}` ({item['source']})")
            if item.get("query"):
                link = f" · [open in Prometheus]({item['url']})" if item.get("url") else ""
                lines += ["", f"  Query: `{item['query']}`{link}"]
            excerpt = item["excerpt"].strip().splitlines()[:8]
            if excerpt:
                lines += ["", "  ```", *(f"  {line}" for line in excerpt), "  ```"]
    lines += _llm_section(result.get("llm"))
    others = result.get("findings", [])[1:] if result.get("findings") else []
    if others:
        lines += ["", "## Other findings", ""]
        lines += [
            f"- **{f['category']}** ({f['confidence']:.2f}{_claimed_by(f)}) {f['summary']}"
            for f in others
        ]
    if result.get("recommendations"):
        lines += ["", "## Recommendations", ""]
        for number, rec in enumerate(result["recommendations"], 1):
            lines.append(f"{number}. **{rec['title']}** (risk {rec['risk']}) — {rec['detail']}")
            if rec["commands"]:
                lines += ["", "   ```sh", *(f"   {c}" for c in rec["commands"]), "   ```"]
    runbooks = [e for e in result.get("evidence", []) if e["type"] == "runbook"]
    if runbooks:
        lines += ["", "## From your runbooks", ""]
        for item in runbooks:
            lines += [f"- {item['source']}", ""]
            lines += [
                f"  > {line}" if line else "  >" for line in item["excerpt"].splitlines()[:12]
            ]
            lines.append("")
    if result.get("gaps"):
        lines += ["", "## Gaps", ""]
        lines += [f"- {g['source']}: {g['error']}" for g in result["gaps"]]
    inspected = result.get("inspected", [])
    lines += ["", f"Inspected {len(inspected)} objects in {result['timings_ms']['total']:.0f} ms."]
    return "\n".join(lines) + "\n"
