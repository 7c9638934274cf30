"""Golden evaluation: run triage over recorded incidents and score it against the truth.

A case is a directory: ``alert.json`` (Alertmanager payload), ``snapshot/`` (DESIGN.md
§4.2) and ``expected.yaml`` (category, culprit, acceptable culprits, strings the summary
must mention). A case passes when the category, the culprit and every mention match.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oncallm.config import TriageSettings
from oncallm.errors import BadRequest
from oncallm.sources.snapshot import SnapshotSource
from oncallm.triage.metrics_step import snapshot_metrics
from oncallm.triage.oneshot import load_alerts, triage_alerts
from oncallm.triage.taxonomy import Category


class ExpectedRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    namespace: str | None = None
    name: str

    def matches(self, resource: dict[str, Any] | None) -> bool:
        return (
            resource is not None
            and resource.get("kind") == self.kind
            and resource.get("name") == self.name
            and (resource.get("namespace") or None) == (self.namespace or None)
        )

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind} {self.name}")
        )


class Expected(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = ""
    category: Category
    culprit: ExpectedRef | None
    acceptable_culprits: list[ExpectedRef] = Field(default_factory=list)
    summary_mentions: list[str] = Field(default_factory=list)
    multi_hop: bool = False
    distractors: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class CaseOutcome:
    name: str
    expected: Expected
    category: str
    culprit: dict[str, Any] | None
    summary: str
    confidence: float
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems


def load_expected(path: Path) -> Expected:
    try:
        return Expected.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise BadRequest(f"{path}: cannot be read: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadRequest(f"{path}: {where}: {first['msg']}") from None


def case_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise BadRequest(f"eval cases directory {root} does not exist")
    cases = sorted(p for p in root.iterdir() if (p / "expected.yaml").is_file())
    if not cases:
        raise BadRequest(f"{root} holds no cases (directories with expected.yaml)")
    return cases


def judge(name: str, expected: Expected, result: dict[str, Any]) -> CaseOutcome:
    root = result["root_cause"]
    problems = []
    if root["category"] != expected.category:
        problems.append(f"category {root['category']} != {expected.category}")
    allowed = [c for c in [expected.culprit, *expected.acceptable_culprits] if c is not None]
    if expected.culprit is None:
        if root.get("resource") is not None and expected.category != Category.Unknown:
            problems.append("named a culprit where none is expected")
    elif not any(c.matches(root.get("resource")) for c in allowed):
        problems.append(f"culprit is not {expected.culprit}")
    summary = root["summary"].lower()
    missing = [m for m in expected.summary_mentions if m.lower() not in summary]
    if missing:
        problems.append("summary lacks " + ", ".join(repr(m) for m in missing))
    return CaseOutcome(
        name, expected, root["category"], root.get("resource"), root["summary"],
        float(root["confidence"]), tuple(problems),
    )  # fmt: skip


async def run_case(case: Path, settings: TriageSettings) -> CaseOutcome:
    expected = load_expected(case / "expected.yaml")
    alerts = load_alerts(case / "alert.json")
    source = SnapshotSource(case / "snapshot")
    metrics = snapshot_metrics(case / "snapshot")
    results = await triage_alerts(alerts[:1], source, settings, metrics=metrics)
    return judge(case.name, expected, results[0])


def run_eval(root: Path, settings: TriageSettings) -> list[CaseOutcome]:
    async def run_all() -> list[CaseOutcome]:
        return [await run_case(case, settings) for case in case_dirs(root)]

    return asyncio.run(run_all())
