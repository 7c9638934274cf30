"""Real Prometheus and Alertmanager (Debian packages) for end-to-end tests.

Each server runs on loopback on a free port, keeps its data and its log in a directory
the test owns, and is stopped (terminate, then kill) when its context manager exits.
Configurations are checked with ``promtool`` / ``amtool`` before a server starts, so a
broken fixture fails with the tool's own message rather than with a silent server.
In CI (``CI=true``) a missing binary fails the test; elsewhere the test is skipped.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.services import free_port, require_binary

LOG_TAIL_CHARS = 4000


@dataclass
class ServiceProcess:
    """A started server binary with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return text[-chars:]

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def _run_check(command: Sequence[str]) -> None:
    checked = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, (
        f"{' '.join(command)} failed (exit {checked.returncode}):\n"
        f"{checked.stdout}\n{checked.stderr}"
    )


def _start(name: str, command: Sequence[str], workdir: Path, port: int) -> ServiceProcess:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    return ServiceProcess(name=name, process=process, log_path=log_path, port=port)


def _wait_ready(service: ServiceProcess, timeout: float = 30) -> None:
    """Both servers answer ``GET /-/ready`` with 200 once they can take traffic."""
    wait_until_ready(service, timeout=timeout)


def wait_until_ready(
    service: ServiceProcess,
    *,
    ready_url: str | None = None,
    timeout: float = 30,
    verify: ssl.SSLContext | bool = True,
    auth: tuple[str, str] | None = None,
) -> None:
    """Poll ``ready_url`` (default ``{service.url}/-/ready``) until it answers 200.

    For servers behind a route prefix, TLS (``verify``: a context trusting its CA) or
    basic auth; fails with the server's log when it exits or never becomes ready.
    """
    url = ready_url or f"{service.url}/-/ready"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"{service.name} exited early (code {service.process.returncode}):\n"
                f"{service.log_tail()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1, verify=verify, auth=auth).status_code == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{service.name} not ready after {timeout}s:\n{service.log_tail()}")


# --- Alertmanager ------------------------------------------------------------------------


def alertmanager_config(webhook_url: str) -> dict[str, object]:
    """One webhook receiver, fast grouping, resolved notifications on."""
    return {
        "route": {
            "receiver": "oncallm",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "oncallm",
                "webhook_configs": [{"url": webhook_url, "send_resolved": True}],
            }
        ],
    }


@contextlib.contextmanager
def alertmanager(
    workdir: Path, webhook_url: str, port: int | None = None
) -> Iterator[ServiceProcess]:
    """Alertmanager posting every notification to ``webhook_url``.

    ``port`` lets a caller point Prometheus at Alertmanager before it is started.
    """
    binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    amtool = require_binary("amtool", "prometheus-alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alertmanager.yml"
    # JSON is YAML; no quoting surprises in the URL.
    config.write_text(json.dumps(alertmanager_config(webhook_url), indent=2))
    _run_check([amtool, "check-config", str(config)])
    port = port or free_port()
    service = _start(
        "alertmanager",
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}/",
            "--cluster.listen-address=",  # no HA gossip: nothing beyond loopback
            "--log.level=debug",
        ],
        workdir,
        port,
    )
    try:
        _wait_ready(service)
        yield service
    finally:
        service.stop()


# --- Prometheus --------------------------------------------------------------------------


@dataclass
class Prometheus:
    service: ServiceProcess
    rules_path: Path
    promtool: str

    @property
    def url(self) -> str:
        return self.service.url

    def replace_rules(self, rules: dict[str, object]) -> None:
        """Check and write a new rule file, then have Prometheus reload it."""
        candidate = self.rules_path.with_suffix(".next.yml")
        candidate.write_text(json.dumps(rules, indent=2))
        _run_check([self.promtool, "check", "rules", str(candidate)])
        candidate.replace(self.rules_path)
        response = httpx.post(f"{self.url}/-/reload", timeout=10)
        assert response.status_code == 200, (
            f"Prometheus reload failed: {response.status_code} {response.text}\n"
            f"{self.service.log_tail()}"
        )


def prometheus_config(
    alertmanager_url: str, rules_path: Path, external_labels: dict[str, str]
) -> dict[str, object]:
    host = alertmanager_url.removeprefix("http://")
    return {
        "global": {
            "evaluation_interval": "1s",
            "scrape_interval": "1s",
            "external_labels": external_labels,
        },
        "rule_files": [str(rules_path)],
        "alerting": {
            "alertmanagers": [{"api_version": "v2", "static_configs": [{"targets": [host]}]}]
        },
        "scrape_configs": [],
    }


@contextlib.contextmanager
def prometheus(
    workdir: Path,
    alertmanager_url: str,
    rules: dict[str, object],
    external_labels: dict[str, str] | None = None,
) -> Iterator[Prometheus]:
    binary = require_binary("prometheus", "prometheus")
    promtool = require_binary("promtool", "prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    rules_path = workdir / "rules.yml"
    rules_path.write_text(json.dumps(rules, indent=2))
    _run_check([promtool, "check", "rules", str(rules_path)])
    config = workdir / "prometheus.yml"
    config.write_text(
        json.dumps(prometheus_config(alertmanager_url, rules_path, external_labels or {}))
    )
    _run_check([promtool, "check", "config", str(config)])
    port = free_port()
    service = _start(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}/",
            "--web.enable-lifecycle",
            # Without it Prometheus waits a minute between sends of a firing alert.
            "--rules.alert.resend-delay=1s",
            "--log.level=debug",
        ],
        workdir,
        port,
    )
    try:
        _wait_ready(service)
        yield Prometheus(service=service, rules_path=rules_path, promtool=promtool)
    finally:
        service.stop()
