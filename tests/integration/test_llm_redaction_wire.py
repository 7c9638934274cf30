"""No planted secret reaches the model provider, byte for byte, over HTTP.

A golden case's snapshot is copied and the whole planted-secrets corpus
(``tests.support.planted_secrets``) is planted where a cluster really carries such
values: the alerted pod's env values, container args and annotations, its Deployment's
annotations, ConfigMaps it references, the corpus' own objects, Event messages about the
pod, and the previous (as is) and current (behind timestamps) logs of the alerted
container. Then the real pipeline reasons over it against a scripted OpenAI-compatible
(tool and native output) or Anthropic server that asks, in one follow-up round, for
every planted object, the pod's events and both logs. Every raw request body the server
received is searched for every planted value and its encoded forms. Placeholders must
reach the provider instead, and a placeholder the model quotes must come back to the
user as the original value.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from oncallm.llm.breaker import reset_breakers
from tests.fakes.llm_script import RecordedRequest, Reply
from tests.support import planted_secrets as corpus
from tests.support.llm_cases import (
    Triaged,
    Wire,
    case_dir,
    correct_verdict,
    fake_for,
    llm_settings,
    run_triage,
)
from tests.support.schema import assert_valid_result

CASE = "crashloop-go-nil-pointer"
NAMESPACE = "orders"
POD = "orders-api-7b9ffcdcf5-z5kfb"
CONTAINER = "orders-api"
DEPLOYMENT = "orders-api"
EVENT_TIME = "2026-11-18T16:44:30Z"  # minutes before the snapshot was taken: not stale

ALICE = "planted.alice.7f3a@example-corp.test"
ALICE_LINE = re.compile(r"password reset mail sent to (<EMAIL_\d+>)")
# The condensation request of the fast tier (oncallm.llm.condense.INSTRUCTIONS).
CONDENSE_MARK = "You condense Kubernetes facts"


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    reset_breakers()
    yield
    reset_breakers()


# --- planting ----------------------------------------------------------------------------


def _read(path: Path) -> Any:
    return json.loads(path.read_text())


def _write(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1))


def _in_namespace(obj: dict[str, Any]) -> dict[str, Any]:
    moved = copy.deepcopy(obj)
    moved["metadata"]["namespace"] = NAMESPACE
    return moved


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    return list(template.get("containers") or [])


def _event(reason: str, message: str, serial: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{POD}.planted{serial:03d}", "namespace": NAMESPACE},
        "involvedObject": {"kind": "Pod", "namespace": NAMESPACE, "name": POD},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "count": 2,
        "firstTimestamp": EVENT_TIME,
        "lastTimestamp": EVENT_TIME,
    }


def plant(snapshot: Path) -> list[dict[str, Any]]:
    """Plant the corpus into ``snapshot`` (a copy); returns the planted objects' refs."""
    objects = [_in_namespace(o) for o in corpus.objects()]
    env: list[dict[str, Any]] = []
    args: list[str] = []
    annotations: dict[str, str] = {}
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        for container in _containers(obj):
            env += [e for e in container.get("env", []) if e["name"] != "LOG_LEVEL"]
            args += container.get("args", [])
        annotations.update(obj["metadata"].get("annotations") or {})
    configmaps = [o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"]

    # The alerted pod: env values, args, annotations, ConfigMaps it references.
    pods_file = snapshot / NAMESPACE / "pods.json"
    pods = _read(pods_file)
    for pod in pods["items"]:
        if pod["metadata"]["name"] != POD:
            continue
        pod["metadata"].setdefault("annotations", {}).update(annotations)
        container = next(c for c in pod["spec"]["containers"] if c["name"] == CONTAINER)
        container["env"] = [*container.get("env", []), *env]
        container["args"] = [*container.get("args", []), *args]
        container["envFrom"] = [{"configMapRef": {"name": name}} for name in configmaps]
    _write(pods_file, pods)

    # Its Deployment carries the annotations too (owner e-mail, phone, keys...).
    deployments_file = snapshot / NAMESPACE / "deployments.json"
    deployments = _read(deployments_file)
    for deployment in deployments["items"]:
        if deployment["metadata"]["name"] == DEPLOYMENT:
            deployment["metadata"].setdefault("annotations", {}).update(annotations)
    _write(deployments_file, deployments)

    # The corpus' objects themselves; its events, and every log text as an event message,
    # about the alerted pod (each its own reason: events are grouped by reason).
    events = []
    serial = 0
    for obj in objects:
        if obj["kind"] == "Event":
            serial += 1
            events.append(_event(f"Planted{serial:02d}{obj['reason']}", obj["message"], serial))
    for text in corpus.log_lines():
        serial += 1
        events.append(_event(f"Planted{serial:02d}", text, serial))
    planted = [o for o in objects if o["kind"] != "Event"]
    _write(
        snapshot / NAMESPACE / "planted.json",
        {"apiVersion": "v1", "kind": "List", "items": [*planted, *events]},
    )

    # Logs of the alerted container. Previous: the real crash output, then the planted
    # texts as they are (last, where tails and compression keep them). Current: each
    # planted text behind a timestamp and level, as most applications log.
    logs = snapshot / "logs" / NAMESPACE / POD
    previous = (logs / f"{CONTAINER}.previous.log").read_text()
    (logs / f"{CONTAINER}.previous.log").write_text(previous + "\n".join(corpus.log_lines()) + "\n")
    (logs / f"{CONTAINER}.log").write_text(
        "".join(
            f"2026-11-18T16:44:{n:02d}.120Z WARN {text}\n"
            for n, text in enumerate(corpus.log_lines())
        )
    )
    return [
        {"kind": o["kind"], "namespace": NAMESPACE, "name": o["metadata"]["name"]} for o in planted
    ]


def _follow_up_calls(planted: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    pod = {"kind": "Pod", "namespace": NAMESPACE, "name": POD}
    deployment = {"kind": "Deployment", "namespace": NAMESPACE, "name": DEPLOYMENT}
    logs = {"namespace": NAMESPACE, "pod": POD, "container": CONTAINER}
    return [
        ("get_object", pod),
        ("get_object", deployment),
        *[("get_object", ref) for ref in planted],
        ("get_events", pod),
        ("get_logs", {**logs, "previous": False}),
        ("get_logs", {**logs, "previous": True}),
    ]


# --- the run ------------------------------------------------------------------------------


@dataclass
class WireRun:
    triaged: Triaged
    bodies: list[bytes]  # every request body the provider received, raw
    quoted: list[str]  # placeholders the scripted model quoted in its explanation
    calls: int  # follow-up calls the model made


async def _reason_over_planted(tmp: Path, wire: Wire) -> WireRun:
    snapshot = tmp / "snapshot"
    shutil.copytree(case_dir(CASE) / "snapshot", snapshot)
    planted = plant(snapshot)
    base = await run_triage(CASE, None, snapshot=snapshot)
    root = base.result["root_cause"]
    # An answer agreeing with whatever the analyzers made of the planted snapshot.
    verdict = correct_verdict(CASE, base.result, category=root["category"],
                              culprit=root["resource"])  # fmt: skip
    calls = _follow_up_calls(planted)
    quoted: list[str] = []

    def respond(request: RecordedRequest) -> Reply:
        text = request.prompt_text
        if CONDENSE_MARK in text:  # the fast tier may condense the larger context
            return Reply.output({"items": []}, prompt_tokens=500, completion_tokens=5)
        if not request.tool_results:
            return Reply.tool_calls(*calls, prompt_tokens=1000, completion_tokens=100)
        match = ALICE_LINE.search(text)
        if match is None:
            raise AssertionError("the planted reset-mail log line did not reach the model")
        quoted.append(match.group(1))
        answer = copy.deepcopy(verdict)
        answer["explanation"] = (
            f"The reset mail to {match.group(1)} is noise. " + (answer["explanation"])
        )
        return Reply.output(answer, prompt_tokens=1000, completion_tokens=100)

    with fake_for(wire) as fake:
        fake.respond_with(respond)
        settings = llm_settings(
            fake, wire, followup_max_rounds=1, followup_max_calls=50,
            triage_token_budget=1_000_000,
        )  # fmt: skip
        triaged = await run_triage(CASE, settings, snapshot=snapshot)
        assert not fake.errors, fake.errors
        return WireRun(triaged, fake.bodies(), quoted, len(calls))


@pytest.fixture(scope="module", params=["tool", "native", "anthropic"])
def wire_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> WireRun:
    """One triage over the planted snapshot per wire, shared by the tests below."""
    reset_breakers()
    tmp = tmp_path_factory.mktemp(f"planted-{request.param}")
    return asyncio.run(_reason_over_planted(tmp, request.param))


def _leaks(bodies: list[bytes]) -> list[str]:
    """Each planted value (or encoded form) found in a body, with what surrounds it."""
    found = []
    for number, body in enumerate(bodies):
        for value in corpus.all_values():
            at = body.find(value.encode())
            if at != -1:
                around = body[max(0, at - 100) : at + len(value) + 20].decode(errors="replace")
                found.append(f"request {number}: {value[:40]!r} in ...{around}...")
    return found


# --- the tests -----------------------------------------------------------------------------


def test_the_follow_up_read_every_planted_object(wire_run: WireRun) -> None:
    llm = wire_run.triaged.llm
    assert llm["error"] is None, llm["error"]
    outcomes = [c["outcome"] for c in llm["followup"]["calls"]]
    assert outcomes == ["ok"] * wire_run.calls, outcomes
    assert_valid_result(wire_run.triaged.result)


def test_no_planted_secret_reaches_the_provider(wire_run: WireRun) -> None:
    """Not one byte of any planted value, or of its JSON-escaped or base64 forms."""
    leaks = _leaks(wire_run.bodies)
    assert leaks == [], "\n".join(leaks)


def test_placeholders_reach_the_provider_in_the_secrets_places(wire_run: WireRun) -> None:
    sent = b"\n".join(wire_run.bodies)
    for kind in sorted({p.kind for p in corpus.PLANTED}):
        assert f"<{kind}_".encode() in sent, f"no <{kind}_n> placeholder was sent"
    assert b"password=<PASSWORD_" in sent
    # The carriers themselves went out (so the check above is not vacuous).
    assert b"AWS_ACCESS_KEY_ID" in sent
    assert b"password reset mail sent to <EMAIL_" in sent


def test_a_quoted_placeholder_reaches_the_user_as_the_original(wire_run: WireRun) -> None:
    llm = wire_run.triaged.llm
    [placeholder] = wire_run.quoted
    assert f"The reset mail to {ALICE} is noise." in llm["explanation"]
    assert placeholder not in llm["explanation"]
    # What streamed to the user is the same restored text.
    assert ALICE in wire_run.triaged.streamed
    assert wire_run.triaged.streamed == llm["explanation"]
