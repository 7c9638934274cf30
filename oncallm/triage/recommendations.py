"""Recommendations: what to do about a finding, with the commands to confirm and fix it.

Each one names the real objects and values of the finding, carries ``kubectl`` commands
an engineer can paste, a risk level for the fix, and the confidence of the finding it
answers. ``action`` will point into the remediation catalog once actions exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Risk = Literal["low", "medium", "high"]


@dataclass(frozen=True)
class Recommendation:
    title: str
    detail: str
    commands: tuple[str, ...]
    risk: Risk
    confidence: float
    action: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "detail": self.detail,
            "commands": list(self.commands),
            "action": self.action,
            "risk": self.risk,
            "confidence": round(self.confidence, 2),
        }


def kubectl(*args: str, namespace: str | None = None, context: str | None = None) -> str:
    """A kubectl command line with ``-n``/``--context`` where they apply."""
    parts = ["kubectl"]
    if context:
        parts += ["--context", context]
    if namespace:
        parts += ["-n", namespace]
    parts += list(args)
    return " ".join(parts)
