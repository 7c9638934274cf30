"""Runbook retrieval as a triage sees it, and `oncallm runbooks check` as a user runs it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from oncallm.config import load_settings
from oncallm.config_runbooks import SHIPPED_RUNBOOKS_DIR
from oncallm.sources.runbook_parse import excerpt
from oncallm.sources.runbooks import RunbookLibrary, parse_matcher, parse_matchers
from oncallm.triage.taxonomy import Category
from tests.support.services import run_oncallm

TAXONOMY = {c.value for c in Category}

# The kube-prometheus-stack alerts the shipped set promises to cover.
PROMISED = [
    "KubePodCrashLooping",
    "KubePodNotReady",
    "KubeContainerWaiting",
    "KubeDeploymentReplicasMismatch",
    "KubeDeploymentRolloutStuck",
    "KubeStatefulSetReplicasMismatch",
    "KubeJobFailed",
    "KubeHpaMaxedOut",
    "KubePersistentVolumeFillingUp",
    "KubePersistentVolumeErrors",
    "KubeNodeNotReady",
    "KubeNodeUnreachable",
    "NodeFilesystemSpaceFillingUp",
    "CPUThrottlingHigh",
    "KubeQuotaExceeded",
    "KubeMemoryOvercommit",
    "TargetDown",
    "KubeletDown",
]

LABELS = {"namespace": "shop", "pod": "api-7d4b9c-x2x", "severity": "warning"}


@pytest.fixture(scope="module")
def shipped() -> RunbookLibrary:
    return RunbookLibrary(SHIPPED_RUNBOOKS_DIR, categories=TAXONOMY)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _runbook(title: str, alertnames: list[str], body: str, extra: str = "") -> str:
    return f"---\ntitle: {title}\nalertnames: {json.dumps(alertnames)}\n{extra}---\n\n{body}"


# --- the shipped set ------------------------------------------------------------------


def test_shipped_set_is_clean_and_covers_the_promised_alerts(shipped: RunbookLibrary) -> None:
    assert shipped.problems() == []
    covered = {name for rb in shipped.runbooks() for name in rb.alertnames}
    assert set(PROMISED) <= covered
    for runbook in shipped.runbooks():
        assert set(runbook.categories) <= TAXONOMY
        assert len(runbook.sections) >= 4, runbook.path


def _all_shipped_alertnames() -> list[str]:
    library = RunbookLibrary(SHIPPED_RUNBOOKS_DIR)
    return sorted({name for rb in library.runbooks() for name in rb.alertnames})


@pytest.mark.parametrize("alertname", _all_shipped_alertnames())
def test_each_shipped_alert_gets_its_own_runbook_first(
    shipped: RunbookLibrary, alertname: str
) -> None:
    for text in ("", "restarts increased after a deploy"):
        matches = shipped.search(alertname, LABELS, text)
        assert matches, alertname
        first = matches[0]
        assert first.why == "alertname"
        path = Path(first.source.split("#", 1)[0])
        own = next(rb for rb in shipped.runbooks() if rb.path == path)
        assert alertname in own.alertnames
        assert first.source.startswith(str(SHIPPED_RUNBOOKS_DIR))
        assert "#" in first.source
        assert 0 < len(first.excerpt) <= 1200


def test_without_text_the_first_sections_come_in_order(shipped: RunbookLibrary) -> None:
    matches = shipped.search("KubePodCrashLooping", LABELS, limit=3)
    assert [m.heading for m in matches] == ["Pod is crash looping", "What it means", "First checks"]
    assert all(m.why == "alertname" for m in matches)


@pytest.mark.parametrize(
    ("alertname", "text"),
    [
        ("Watchdog", ""),
        ("Watchdog", "This is an alert meant to ensure that the entire alerting pipeline works"),
        ("FooBarDown", "quarterly invoice totals disagree with the billing report"),
        ("InfoInhibitor", ""),
    ],
)
def test_an_unrelated_alert_gets_no_runbook(
    shipped: RunbookLibrary, alertname: str, text: str
) -> None:
    assert shipped.search(alertname, {"job": "foo"}, text) == []


def test_finding_text_ranks_the_matching_section_first(shipped: RunbookLibrary) -> None:
    matches = shipped.search("KubePodCrashLooping", LABELS, "OOMKilled memory limit")
    assert matches[0].why == "alertname"
    assert matches[0].source.endswith("kube-pod-crash-looping.md#cause-oomkilled-memory-limit")
    assert "OOMKilled" in matches[0].excerpt
    assert matches[0].score > 0


def test_finding_text_brings_in_another_runbooks_section(shipped: RunbookLibrary) -> None:
    # The alert is about readiness, the finding says the container ran out of memory: the
    # crash-loop runbook's OOM section is what the SRE needs, after the alert's own.
    text = "OOMKilled: container api exceeded its memory limit (Deployment shop/api)"
    matches = shipped.search("KubePodNotReady", LABELS, text, limit=3)
    assert [m.why for m in matches] == ["alertname", "alertname", "text"]
    assert matches[0].source.split("#")[0].endswith("kube-pod-not-ready.md")
    assert matches[2].source.endswith("kube-pod-crash-looping.md#cause-oomkilled-memory-limit")


def test_text_alone_finds_a_category_runbook_for_an_unknown_alert(
    shipped: RunbookLibrary,
) -> None:
    matches = shipped.search("ApiLatencyHigh", LABELS, "CPUThrottling: throttled by cpu limit")
    assert matches
    assert all(m.why == "text" for m in matches)
    assert matches[0].source.split("#")[0].endswith("cpu-throttling-high.md")


def test_limit_is_respected(shipped: RunbookLibrary) -> None:
    assert len(shipped.search("KubePodCrashLooping", LABELS, limit=1)) == 1
    assert shipped.search("KubePodCrashLooping", LABELS, limit=0) == []
    assert len(shipped.search("KubePodCrashLooping", LABELS, limit=6)) == 6


# --- matchers ---------------------------------------------------------------------------


def test_matchers_choose_the_runbook_for_the_labels(tmp_path: Path) -> None:
    _write(
        tmp_path / "team.md",
        _runbook(
            "Payments crash loop",
            ["KubePodCrashLooping"],
            "## Call the payments on-call\nPage payments first.\n",
            'matchers:\n  - namespace="payments"\n  - severity=~"critical|warning"\n',
        ),
    )
    _write(
        tmp_path / "generic.md",
        _runbook(
            "Crash loop",
            ["KubePodCrashLooping"],
            "## Look at logs\nRead the logs.\n",
            "matchers: '{namespace!~\"kube-.*\"}'\n",
        ),
    )
    library = RunbookLibrary(tmp_path)
    payments = library.search(
        "KubePodCrashLooping", {"namespace": "payments", "severity": "critical"}
    )
    assert payments[0].title == "Payments crash loop"  # more specific first
    assert {m.title for m in payments} == {"Payments crash loop", "Crash loop"}
    # Full-match regex, as in Alertmanager: "critical-ish" is not "critical|warning".
    other = library.search(
        "KubePodCrashLooping", {"namespace": "payments", "severity": "critical-ish"}
    )
    assert {m.title for m in other} == {"Crash loop"}
    assert library.search("KubePodCrashLooping", {"namespace": "kube-system"}) == []


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ("severity=critical", {"severity": "warning"}, False),
        ('namespace!="kube-system"', {"namespace": "shop"}, True),
        ('namespace!="kube-system"', {}, True),
        ('team=""', {}, True),  # a missing label is the empty string
        ('namespace=~"kube-.*"', {"namespace": "kube-system"}, True),
        ('namespace=~"kube"', {"namespace": "kube-system"}, False),  # anchored
        ('namespace!~"kube-.*|monitoring"', {"namespace": "monitoring"}, False),
        ('msg="say \\"hi\\""', {"msg": 'say "hi"'}, True),
    ],
)
def test_matcher_semantics(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


def test_matcher_lists_and_brace_form() -> None:
    parsed = parse_matchers('{severity=~"critical|warning", namespace!="a,b"}')
    assert [str(m) for m in parsed] == ['severity=~"critical|warning"', 'namespace!="a,b"']
    for bad in ("severity", 'a=~"("', 'a="unbalanced', "1abc=x"):
        with pytest.raises(ValueError):  # noqa: PT011 - the message varies by case
            parse_matchers([bad])


# --- re-indexing and problems ---------------------------------------------------------


def test_changes_are_seen_without_a_restart(tmp_path: Path) -> None:
    now = [0.0]
    library = RunbookLibrary(tmp_path, recheck_seconds=5, clock=lambda: now[0])
    assert library.search("DiskFull", {}) == []
    path = _write(
        tmp_path / "sub" / "disk.md", _runbook("Disk full", ["DiskFull"], "## Free space\nrm\n")
    )
    assert library.search("DiskFull", {}) == []  # not looked at again before recheck_seconds
    now[0] = 6.0
    assert [m.title for m in library.search("DiskFull", {})] == ["Disk full"]

    path.write_text(_runbook("Disk is full", ["DiskFull"], "## Free space now\nrm -rf tmp\n"))
    now[0] = 12.0
    assert [m.title for m in library.search("DiskFull", {})] == ["Disk is full"]
    path.unlink()
    now[0] = 18.0
    assert library.search("DiskFull", {}) == []


def test_bad_files_are_reported_and_do_not_break_the_set(tmp_path: Path) -> None:
    _write(
        tmp_path / "good.md", _runbook("Good", ["GoodAlert"], "## Fix\nDo it. See [bad](#nope).\n")
    )
    _write(tmp_path / "no-front.md", "# Just markdown\n\n## Section\n")
    _write(tmp_path / "bad-yaml.md", "---\ntitle: x\nalertnames: [a\n---\n## S\n")
    _write(tmp_path / "no-title.md", "---\nalertnames: [A]\n---\n## S\n")
    _write(tmp_path / "names-string.md", "---\ntitle: T\nalertnames: KubeX\n---\n## S\n")
    _write(tmp_path / "bad-matcher.md", _runbook("M", ["B"], "## S\n", "matchers: ['a=~\"(\"']\n"))
    _write(tmp_path / "category.md", _runbook("C", ["C1"], "## S\n", "categories: [Gremlins]\n"))
    _write(tmp_path / "no-sections.md", _runbook("N", ["N1"], "Only a paragraph.\n"))
    _write(tmp_path / "dup.md", _runbook("Dup", ["GoodAlert"], "## S\n[x](missing.md)\n"))
    _write(tmp_path / "README.md", "# Our runbooks\n")  # describes the set; not a runbook
    library = RunbookLibrary(tmp_path, categories=TAXONOMY)
    problems = {(p.path.name, p.line): p.message for p in library.problems()}
    messages = "\n".join(f"{name}:{line}: {msg}" for (name, line), msg in problems.items())
    assert problems[("no-front.md", 1)].startswith("no YAML front matter")
    assert "not valid YAML" in problems[("bad-yaml.md", 3)]
    assert "title is missing" in messages
    assert problems[("names-string.md", 3)].startswith("alertnames must be a list")
    assert "invalid regex" in problems[("bad-matcher.md", 4)]
    assert "'Gremlins' is not a taxonomy name" in problems[("category.md", 4)]
    assert "no '## ' section headings" in messages
    assert "GoodAlert with the same matchers is already covered by" in messages
    assert "broken link: missing.md" in messages
    assert "no heading for #nope" in messages
    assert "README.md" not in messages
    # Still searchable: the good file, and the ones whose problems do not mislead.
    assert library.search("GoodAlert", {})[0].title in {"Good", "Dup"}
    assert library.search("C1", {})[0].title == "C"
    assert library.search("N1", {})[0].excerpt.startswith("# N")
    assert library.search("B", {}) == []  # a wrong matcher would answer the wrong alerts


def test_excerpts_are_whole_lines_and_close_code_fences() -> None:
    text = "## Checks\n```sh\n" + "\n".join(f"kubectl get pod p{i} -o yaml" for i in range(200))
    cut = excerpt(text)
    assert len(cut) <= 1200
    assert cut.endswith("```")
    lines = cut.splitlines()
    assert all(re.fullmatch(r"kubectl get pod p\d+ -o yaml", ln) for ln in lines[2:-2])
    assert excerpt("x" * 5000).endswith("…")


def test_runbooks_settings_default_to_the_shipped_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ONCALLM_"):
            monkeypatch.delenv(key)
    settings = load_settings()
    assert settings.runbooks.directories() == [SHIPPED_RUNBOOKS_DIR]
    assert settings.runbooks.allowed_hosts == []
    assert (settings.runbooks.max_bytes, settings.runbooks.max_excerpts) == (512 * 1024, 3)
    monkeypatch.setenv("ONCALLM_RUNBOOKS__DIRS", '["/srv/runbooks"]')
    monkeypatch.setenv("ONCALLM_RUNBOOKS__INCLUDE_SHIPPED", "false")
    assert load_settings().runbooks.directories() == [Path("/srv/runbooks")]


# --- oncallm runbooks check -------------------------------------------------------------


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ONCALLM_")}


def test_check_passes_on_the_shipped_set() -> None:
    done = run_oncallm(["runbooks", "check", str(SHIPPED_RUNBOOKS_DIR)], _env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Pod is crash looping" in done.stdout
    assert "18 runbook(s), no problems" in done.stdout


def test_check_lists_problems_with_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path / "ok.md", _runbook("Fine", ["A"], "## S\ntext\n"))
    _write(tmp_path / "broken.md", "---\ntitle: [unclosed\n---\n## S\n")
    done = run_oncallm(["runbooks", "check", str(tmp_path)], _env())
    assert done.returncode == 1
    assert f"{tmp_path / 'broken.md'}:2: front matter is not valid YAML" in done.stdout
    assert "1 problem(s)" in done.stdout

    done = run_oncallm(["runbooks", "check", str(tmp_path), "--format", "json"], _env())
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert [r["title"] for r in report["runbooks"]] == ["Fine"]
    assert report["problems"][0]["file"].endswith("broken.md")
    assert report["problems"][0]["line"] == 2


def test_check_of_a_missing_directory_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = run_oncallm(["runbooks", "check", str(tmp_path / "nope")], _env())
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
