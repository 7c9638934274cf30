"""`oncallm triage` and `oncallm eval` as a user runs them from a shell."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from oncallm.samples import sample_cluster
from tests.support.payloads import am_alert, am_notification
from tests.support.schema import assert_valid_result
from tests.support.services import oncallm_env, run_oncallm

SAMPLES = Path(__file__).resolve().parents[2] / "oncallm" / "samples"


def _env(tmp_path: Path) -> dict[str, str]:
    return oncallm_env(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")


def test_json_output_is_the_documented_schema_for_every_alert(tmp_path: Path) -> None:
    payload = tmp_path / "alerts.json"
    crash = json.loads((SAMPLES / "01-crashloop.json").read_text())
    oom = json.loads((SAMPLES / "02-oom.json").read_text())
    crash["alerts"] += oom["alerts"]
    payload.write_text(json.dumps(crash))
    done = run_oncallm(
        ["triage", "--alert", str(payload), "--snapshot", str(sample_cluster()), "-f", "json"],
        _env(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)  # stdout is the JSON and nothing else
    assert [r["alert"]["alertname"] for r in results] == [
        "KubePodCrashLooping",
        "KubeContainerOOMKilled",
    ]
    for result in results:
        assert_valid_result(result)
    assert results[1]["root_cause"]["category"] == "OOMKilled"


def test_markdown_output_reads_as_a_report(tmp_path: Path) -> None:
    done = run_oncallm(
        ["triage", "--alert", str(SAMPLES / "02-oom.json"), "--snapshot", str(sample_cluster())],
        _env(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("# KubeContainerOOMKilled (firing)")
    assert "## Root cause: OOMKilled" in text
    assert "Culprit: **Deployment shop/api**" in text
    assert "## Recommendations" in text
    assert "kubectl" in text


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = _env(tmp_path)
    snapshot = str(sample_cluster())
    not_json = tmp_path / "alert.json"
    not_json.write_text("{nope")
    wrong_shape = tmp_path / "wrong.json"
    wrong_shape.write_text(json.dumps({"version": "4", "alerts": []}))
    bad_snapshot = tmp_path / "bad-snapshot"
    bad_snapshot.mkdir()
    (bad_snapshot / "pods.json").write_text('{"apiVersion": "v1", "kind": "Pod"}')
    good = tmp_path / "good.json"
    good.write_text(json.dumps(am_notification(am_alert("4000000000000001", pod="x"))))
    cases = [
        (["--alert", str(tmp_path / "missing.json"), "--snapshot", snapshot], "cannot read"),
        (["--alert", str(not_json), "--snapshot", snapshot], "not an Alertmanager webhook"),
        (["--alert", str(wrong_shape), "--snapshot", snapshot], "not an Alertmanager webhook"),
        (["--alert", str(good), "--snapshot", str(tmp_path / "nowhere")], "does not exist"),
        (["--alert", str(good), "--snapshot", str(bad_snapshot)], "Pod without metadata.name"),
        (["--alert", str(good), "--snapshot", snapshot, "-f", "yaml"], "--format"),
        (["--alert", str(good), "--snapshot", snapshot, "--context", "x"], "cannot be combined"),
    ]
    for args, message in cases:
        done = run_oncallm(["triage", *args], env)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def _case(root: Path, name: str, category: str, culprit: str) -> None:
    case = root / name
    case.mkdir(parents=True)
    shutil.copy(SAMPLES / "02-oom.json", case / "alert.json")
    (case / "snapshot").symlink_to(sample_cluster())
    (case / "expected.yaml").write_text(
        f"category: {category}\nculprit: {culprit}\nsummary_mentions: [api]\n"
    )


def test_eval_scores_cases_and_gates_on_accuracy(tmp_path: Path) -> None:
    env = _env(tmp_path)
    cases = tmp_path / "cases"
    _case(cases, "oom-right", "OOMKilled", "{kind: Deployment, namespace: shop, name: api}")
    _case(cases, "oom-wrong", "CrashLoop", "{kind: Deployment, namespace: shop, name: api}")
    done = run_oncallm(["eval", str(cases), "--min-accuracy", "0.5"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "accuracy 50.0% (1/2)" in done.stdout
    assert "category OOMKilled != CrashLoop" in done.stdout
    done = run_oncallm(["eval", str(cases), "--min-accuracy", "0.9"], env)
    assert done.returncode == 1
    report = json.loads(run_oncallm(["eval", str(cases), "-f", "json"], env).stdout)
    assert [r["passed"] for r in report["results"]] == [True, False]
    (cases / "oom-right" / "expected.yaml").write_text("category: Flaky\nculprit: null\n")
    done = run_oncallm(["eval", str(cases)], env)
    assert done.returncode == 2
    assert "category" in done.stderr
