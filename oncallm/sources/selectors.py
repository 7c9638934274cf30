"""Kubernetes label and field selectors, parsed once and matched in memory.

The snapshot source and the test API fake answer ``list`` queries from files, so they
must interpret selectors exactly as the API server does: equality (``=``, ``==``, ``!=``),
set-based (``in``, ``notin``), existence (``key``, ``!key``) for labels; equality and
inequality on dotted paths for fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oncallm.errors import BadRequest

_SET_EXPR = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_EXPR = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")
_EXISTS_EXPR = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "=":
            return present and value in self.values
        if self.operator == "!=":
            return not present or value not in self.values
        if self.operator == "in":
            return present and value in self.values
        if self.operator == "notin":
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        return not present


def _split_top_level(selector: str) -> list[str]:
    """Split on commas that are not inside ``in (a,b)`` parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_label_selector(selector: str | None) -> tuple[Requirement, ...]:
    if not selector:
        return ()
    requirements = []
    for part in _split_top_level(selector):
        if m := _SET_EXPR.match(part):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            requirements.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ_EXPR.match(part):
            op = "!=" if m.group(2) == "!=" else "="
            requirements.append(Requirement(m.group(1), op, frozenset({m.group(3)})))
        elif m := _EXISTS_EXPR.match(part):
            op = "!exists" if m.group(1) else "exists"
            requirements.append(Requirement(m.group(2), op, frozenset()))
        else:
            raise BadRequest(f"invalid label selector {selector!r} near {part.strip()!r}")
    return tuple(requirements)


def labels_match(requirements: tuple[Requirement, ...], labels: Mapping[str, str]) -> bool:
    return all(r.matches(labels) for r in requirements)


def selector_from_match_labels(match: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(match.items()))


def label_selector_to_string(selector: Mapping[str, Any] | None) -> str | None:
    """A ``LabelSelector`` object (matchLabels + matchExpressions) in query syntax.

    Returns None for a null selector (selects nothing) and "" for ``{}`` (selects all).
    """
    if selector is None:
        return None
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), str(expr.get("operator", ""))
        values = ",".join(expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


@dataclass(frozen=True)
class FieldRequirement:
    path: tuple[str, ...]
    equal: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        current: Any = obj
        for step in self.path:
            current = current.get(step) if isinstance(current, Mapping) else None
        return (field_text(current) == self.value) == self.equal


def field_text(value: Any) -> str:
    """A field's value as the API server compares it: booleans as ``true``/``false``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_field_selector(selector: str | None) -> tuple[FieldRequirement, ...]:
    if not selector:
        return ()
    requirements = []
    for part in selector.split(","):
        if not part.strip():
            continue
        if "!=" in part:
            path, value = part.split("!=", 1)
            equal = False
        elif "==" in part:
            path, value = part.split("==", 1)
            equal = True
        elif "=" in part:
            path, value = part.split("=", 1)
            equal = True
        else:
            raise BadRequest(f"invalid field selector {selector!r} near {part.strip()!r}")
        requirements.append(FieldRequirement(tuple(path.strip().split(".")), equal, value.strip()))
    return tuple(requirements)


def fields_match(requirements: tuple[FieldRequirement, ...], obj: Mapping[str, Any]) -> bool:
    return all(r.matches(obj) for r in requirements)
