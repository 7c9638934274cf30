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
            excerpt = item["excerpt"].strip().splitlines()[:8]
            if excerpt:
                lines += ["", "  ```", *(f"  {line}" for line in excerpt), "  ```"]
    others = result.get("findings", [])[1:] if result.get("findings") else []
    if others:
        lines += ["", "## Other findings", ""]
        lines += [f"- **{f['category']}** ({f['confidence']:.2f}) {f['summary']}" for f in others]
    if result.get("recommendations"):
        lines += ["", "## Recommendations", ""]
        for number, rec in enumerate(result["recommendations"], 1):
            lines.append(f"{number}. **{rec['title']}** (risk {rec['risk']}) — {rec['detail']}")
            if rec["commands"]:
                lines += ["", "   ```sh", *(f"   {c}" for c in rec["commands"]), "   ```"]
    if result.get("gaps"):
        lines += ["", "## Gaps", ""]
        lines += [f"- {g['source']}: {g['error']}" for g in result["gaps"]]
    inspected = result.get("inspected", [])
    lines += ["", f"Inspected {len(inspected)} objects in {result['timings_ms']['total']:.0f} ms."]
    return "\n".join(lines) + "\n"
