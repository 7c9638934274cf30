"""The shipped read-only ClusterRole grants every read OncallM makes, and nothing more."""

from __future__ import annotations

from pathlib import Path

import yaml

from oncallm.sources.kinds import KINDS

ROLE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "rbac" / "oncallm-reader.yaml"


def _rules() -> list[dict[str, list[str]]]:
    docs = list(yaml.safe_load_all(ROLE_FILE.read_text()))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    return list(role["rules"])


def test_every_kind_oncallm_reads_is_granted_get_and_list() -> None:
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in _rules()
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for info in KINDS.values():
        verbs = granted.get((info.group, info.plural), set())
        assert {"get", "list"} <= verbs, f"{info.kind} ({info.group}/{info.plural}) not granted"
    assert granted[("", "pods/log")] == {"get"}


def test_the_role_is_read_only() -> None:
    verbs = {verb for rule in _rules() for verb in rule["verbs"]}
    assert verbs <= {"get", "list"}
