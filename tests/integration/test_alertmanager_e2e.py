"""End to end with the real alerting stack: Prometheus rule -> Alertmanager -> `oncallm serve`.

A real Prometheus evaluates a rule that fires, a real Alertmanager groups the alert and
posts its webhook to a running ``oncallm serve``; the alert then shows up in OncallM's API
with its labels and link, its triage job runs, and once the rule stops firing the
resolved notification moves the alert to ``resolved``. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.monitoring import ServiceProcess, alertmanager, prometheus
from tests.support.services import OncallmProcess, free_port, oncallm_env, start_server

pytestmark = pytest.mark.services

T = TypeVar("T")

ALERTNAME = "OncallmE2E"
RULE_LABELS = {
    "severity": "critical",
    "namespace": "shop",
    "pod": "checkout-7d9f5c-x2x4q",
    "container": "checkout",
}
EXTERNAL_LABELS = {"cluster": "e2e"}
BASE_URL = "https://oncallm.example.test"  # a configured public URL, as behind an ingress
DEADLINE_SECONDS = 60.0
LOG_TAIL_CHARS = 3000


def _rules(expr: str) -> dict[str, object]:
    # The same rule name and labels in both versions, so Prometheus carries the alert's
    # state across the reload and resolves it rather than forgetting it.
    return {
        "groups": [
            {
                "name": "oncallm-e2e",
                "interval": "1s",
                "rules": [
                    {
                        "alert": ALERTNAME,
                        "expr": expr,
                        "for": "0s",
                        "labels": RULE_LABELS,
                        "annotations": {"summary": "checkout pod is unhappy"},
                    }
                ],
            }
        ]
    }


FIRING_RULES = _rules("vector(1)")
QUIET_RULES = _rules("vector(1) == 0")


class AlertingStack:
    """The running processes, for polling and for logs when something goes wrong."""

    def __init__(self, oncallm: OncallmProcess, *services: ServiceProcess) -> None:
        self.oncallm = oncallm
        self.services = list(services)
        self.http = httpx.Client(base_url=oncallm.base_url, timeout=5)

    def logs(self) -> str:
        parts = [
            f"--- oncallm ({self.oncallm.log_path}) ---\n{self.oncallm.log()[-LOG_TAIL_CHARS:]}"
        ]
        parts += [
            f"--- {s.name} ({s.log_path}) ---\n{s.log_tail(LOG_TAIL_CHARS)}" for s in self.services
        ]
        return "\n".join(parts)

    def get_json(self, path: str, **params: str) -> Any:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def wait_for(self, what: str, probe: Callable[[], T | None]) -> T:
        """Poll ``probe`` until it returns something, or fail with every process's log."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            assert self.oncallm.process.poll() is None, f"oncallm serve died\n{self.logs()}"
            for service in self.services:
                assert service.process.poll() is None, f"{service.name} died\n{self.logs()}"
            value = probe()
            if value is not None:
                return value
            time.sleep(0.2)
        raise AssertionError(
            f"timed out after {DEADLINE_SECONDS}s waiting for {what}\n{self.logs()}"
        )


@contextlib.contextmanager
def running_oncallm(database_url: str, workdir: Path) -> Iterator[OncallmProcess]:
    env = oncallm_env(
        database_url,
        jobs__poll_interval_seconds="0.2",
        server__base_url=BASE_URL,
    )
    server = start_server(env, workdir)
    try:
        yield server
    finally:
        server.stop()


def test_prometheus_alert_reaches_oncallm_through_alertmanager_and_resolves(
    database_url: str, tmp_path: Path
) -> None:
    with contextlib.ExitStack() as stack:
        # Prometheus starts first, aimed at the port Alertmanager will take: it learns its
        # Alertmanagers only every 5 s, and that wait then overlaps oncallm's start-up.
        # Until Alertmanager listens, Prometheus' sends fail; it resends while the rule fires.
        am_port = free_port()
        am_url = f"http://127.0.0.1:{am_port}"
        prom = stack.enter_context(
            prometheus(tmp_path / "prometheus", am_url, FIRING_RULES, EXTERNAL_LABELS)
        )
        oncallm = stack.enter_context(running_oncallm(database_url, tmp_path / "oncallm"))
        system = AlertingStack(oncallm, prom.service)
        stack.callback(system.http.close)
        am = stack.enter_context(
            alertmanager(
                tmp_path / "alertmanager",
                f"{oncallm.base_url}/api/v1/alerts/alertmanager",
                port=am_port,
            )
        )
        system.services.append(am)

        # 1. The firing alert arrives, with the rule's labels and its OncallM link.
        def listed() -> dict[str, Any] | None:
            items = system.get_json("/api/v1/alerts", alertname=ALERTNAME)["items"]
            return items[0] if items else None

        alert = system.wait_for("the firing alert to be listed", listed)
        fingerprint = alert["fingerprint"]
        context = f"alert: {alert}\n{system.logs()}"
        assert alert["labels"] == {"alertname": ALERTNAME, **RULE_LABELS, **EXTERNAL_LABELS}, (
            context
        )
        assert alert["status"] == "firing", context
        assert alert["ends_at"] is None, context
        assert alert["url"] == f"{BASE_URL}/alerts/{fingerprint}", context
        assert (alert["namespace"], alert["severity"], alert["cluster"]) == (
            "shop",
            "critical",
            "e2e",
        ), context
        assert alert["receiver"] == "oncallm", context
        assert alert["external_url"] == am.url, context
        assert alert["annotations"] == {"summary": "checkout pod is unhappy"}, context
        assert alert["generator_url"].startswith(prom.url), context

        # The fingerprint is Alertmanager's own, so its templates can link to the page.
        am_alerts = httpx.get(f"{am.url}/api/v2/alerts", timeout=5).json()
        assert [a["fingerprint"] for a in am_alerts] == [fingerprint], context

        # 2. The triage job ran and named the labelled pod as its target.
        def triaged() -> dict[str, Any] | None:
            detail: dict[str, Any] = system.get_json(f"/api/v1/alerts/{fingerprint}")
            triage = detail["triage"]
            if triage is None or triage["status"] not in ("succeeded", "failed"):
                return None
            return detail

        detail = system.wait_for("the triage job to finish", triaged)
        triage = detail["triage"]
        context = f"alert: {detail}\n{system.logs()}"
        assert triage["status"] == "succeeded", context
        assert triage["attempts"] == 1, context
        assert triage["finished_at"] is not None, context
        assert {
            "kind": "Pod",
            "name": RULE_LABELS["pod"],
            "namespace": "shop",
            "container": "checkout",
            "label": "pod",
        } in triage["targets"], context
        assert triage["result"]["alert"]["fingerprint"] == fingerprint, context
        assert triage["result"]["cluster"] == "e2e", context
        kinds = [entry["kind"] for entry in detail["timeline"]]
        assert kinds[0] == "received", context
        assert detail["timeline"][0]["message"].endswith("triage queued"), context

        # 3. The rule stops firing: Prometheus resolves the alert, Alertmanager notifies.
        prom.replace_rules(QUIET_RULES)

        def resolved() -> dict[str, Any] | None:
            detail: dict[str, Any] = system.get_json(f"/api/v1/alerts/{fingerprint}")
            return detail if detail["status"] == "resolved" else None

        detail = system.wait_for("the alert to be resolved", resolved)
        context = f"alert: {detail}\n{system.logs()}"
        assert detail["ends_at"] is not None, context
        ends_at = datetime.fromisoformat(detail["ends_at"])
        assert ends_at > datetime.fromisoformat(detail["starts_at"]), context
        assert "resolved" in [entry["kind"] for entry in detail["timeline"]], context
        assert detail["history"] == [
            {"starts_at": detail["starts_at"], "ends_at": detail["ends_at"], "status": "resolved"}
        ], context
        # Still the same occurrence, triaged once; the list agrees.
        assert detail["triage"]["id"] == triage["id"], context
        resolved_items = system.get_json("/api/v1/alerts", alertname=ALERTNAME, status="resolved")[
            "items"
        ]
        assert [item["fingerprint"] for item in resolved_items] == [fingerprint], context
        # The link's path opens the alert's page on this server.
        page = system.http.get(alert["url"].removeprefix(BASE_URL))
        assert page.status_code == 200, f"{page.status_code} {page.text[:500]}\n{context}"
        assert page.headers["content-type"].startswith("text/html"), context
        assert ALERTNAME in page.text, context
        assert RULE_LABELS["pod"] in page.text, context
