"""The Alertmanager kit with the real tools: templates rendered by `amtool`, the config
checked by `amtool check-config`, links followed to a running `oncallm serve`, and a real
Alertmanager sending a Slack message (to a local Slack webhook fake) built from them.

The link contract (DESIGN §4.1): a notification carries `{base_url}/alerts/{fingerprint}`
before OncallM has seen the alert; until the webhook lands that page is "not seen yet"
(404, refreshing itself), then it is the alert's page.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from oncallm import alertmanager_kit as kit
from oncallm.config import ServerSettings, Settings
from tests.support.monitoring import ServiceProcess, wait_until_ready
from tests.support.payloads import am_alert, am_notification
from tests.support.services import (
    OncallmProcess,
    free_port,
    oncallm_env,
    require_binary,
    run_oncallm,
    start_oncallm,
)

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "alertmanager" / "oncallm.tmpl"
BASE_URL = "https://oncallm.example.test"
SLACK_LINK = re.compile(r"<(?P<url>[^|>]+)\|Open in OncallM>")

# Every template meant for receivers, with the engine Alertmanager renders it with.
TEMPLATES = [
    ("oncallm.title", "text"),
    ("oncallm.links", "text"),
    ("oncallm.group_link", "text"),
    ("oncallm.text", "text"),
    ("oncallm.slack.title", "text"),
    ("oncallm.slack.text", "text"),
    ("oncallm.slack.color", "text"),
    ("oncallm.email.text", "text"),
    ("oncallm.email.html", "html"),
    ("oncallm.pagerduty.description", "text"),
    ("oncallm.pagerduty.details", "text"),
    ("oncallm.pagerduty.firing", "text"),
]


def _amtool() -> str:
    return require_binary("amtool", "prometheus-alertmanager")


def _write_base_url(directory: Path, base_url: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "oncallm.tmpl").write_text(TEMPLATE.read_text())
    (directory / "oncallm-base-url.tmpl").write_text(
        f'{{{{ define "oncallm.base_url" }}}}{base_url}{{{{ end }}}}\n'
    )


def render(
    template_dir: Path, name: str, data: dict[str, Any] | None = None, kind: str = "text"
) -> str:
    """`amtool template render` of one template, on amtool's example data or on ``data``."""
    command = [
        _amtool(),
        "template",
        "render",
        f"--template.glob={template_dir}/*.tmpl",
        f"--template.text={{{{ template {json.dumps(name)} . }}}}",
        f"--template.type={kind}",
    ]
    if data is not None:
        data_file = template_dir / "data.json"
        data_file.write_text(json.dumps(data))
        command.append(f"--template.data={data_file}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# --- templates on amtool's own example data -----------------------------------------------


@pytest.mark.parametrize(("name", "kind"), TEMPLATES)
def test_every_template_renders_amtools_example_data_without_holes(
    tmp_path: Path, name: str, kind: str
) -> None:
    # amtool's example alerts have no alertname, no summary and the status "alertstatus":
    # the output must still be whole, never Go's "<no value>".
    _write_base_url(tmp_path, BASE_URL)
    out = render(tmp_path, name, kind=kind)
    assert out.strip(), f"{name} rendered nothing"
    assert "<no value>" not in out
    assert "%!" not in out  # a printf verb gone wrong


def test_slack_text_links_every_example_alert(tmp_path: Path) -> None:
    _write_base_url(tmp_path, BASE_URL)
    text = render(tmp_path, "oncallm.slack.text")
    # amtool's example notification holds alerts with fingerprints fingerprint1, fingerprint2.
    assert SLACK_LINK.findall(text) == [
        f"{BASE_URL}/alerts/fingerprint1",
        f"{BASE_URL}/alerts/fingerprint2",
    ]
    assert render(tmp_path, "oncallm.links").splitlines() == [
        f"{BASE_URL}/alerts/fingerprint1",
        f"{BASE_URL}/alerts/fingerprint2",
    ]


def test_without_a_base_url_file_links_are_relative_not_an_error(tmp_path: Path) -> None:
    # A missing oncallm-base-url.tmpl must not stop Alertmanager from notifying.
    (tmp_path / "oncallm.tmpl").write_text(TEMPLATE.read_text())
    one = am_notification(am_alert("abc"))
    assert render(tmp_path, "oncallm.links", one) == "/alerts/abc\n"


# --- templates on data we control -----------------------------------------------------------


def _mixed_notification() -> dict[str, Any]:
    crash = am_alert(
        "3f2c1e9a8b7d6c5e",
        namespace="shop",
        pod="checkout-7c9d8b6f5-x2x9k",
        cluster="prod-eu-1",
        starts_at="2026-11-26T03:12:41Z",
    )
    crash["annotations"] = {
        "summary": "Pod is crash looping.",
        "description": 'Pod shop/checkout (checkout) is waiting (reason: "CrashLoopBackOff").',
        "runbook_url": "https://runbooks.example/kubepodcrashlooping",
    }
    bare = am_alert("a1b2c3d4e5f60718", namespace="shop", pod="cart-5f6d7c8b9-q7w2e")
    bare["annotations"] = {}
    done = am_alert(
        "0f1e2d3c4b5a6978",
        status="resolved",
        namespace="shop",
        pod="payments-6b8c9d7f4-z9y8x",
        starts_at="2026-11-26T02:50:00Z",
        ends_at="2026-11-26T03:04:03Z",
    )
    done["annotations"] = {"summary": "Payments <b>crashed</b> & restarted"}
    return am_notification(done, crash, bare)  # resolved first: the text reorders


def test_slack_text_reads_well_firing_first_resolved_marked(tmp_path: Path) -> None:
    _write_base_url(tmp_path, BASE_URL)
    text = render(tmp_path, "oncallm.slack.text", _mixed_notification())
    blocks = [b for b in text.strip().split("\n\n") if b]
    assert len(blocks) == 3
    crash, bare, done = blocks
    assert crash.splitlines() == [
        ":rotating_light: *KubePodCrashLooping* · shop/checkout-7c9d8b6f5-x2x9k · warning"
        " · prod-eu-1",
        "Pod is crash looping.",
        '> Pod shop/checkout (checkout) is waiting (reason: "CrashLoopBackOff").',
        f"<{BASE_URL}/alerts/3f2c1e9a8b7d6c5e|Open in OncallM>"
        " · <https://runbooks.example/kubepodcrashlooping|Runbook> · since Nov 26 03:12 UTC",
    ]
    # No annotations at all: the headline and the link, nothing broken in between.
    assert bare.splitlines() == [
        ":rotating_light: *KubePodCrashLooping* · shop/cart-5f6d7c8b9-q7w2e · warning",
        f"<{BASE_URL}/alerts/a1b2c3d4e5f60718|Open in OncallM> · since Nov 26 03:00 UTC",
    ]
    # Resolved last, marked, with how long it lasted; Slack markup in the text escaped.
    assert done.splitlines() == [
        ":white_check_mark: *Resolved:* *KubePodCrashLooping* · shop/payments-6b8c9d7f4-z9y8x"
        " · warning",
        "Payments &lt;b&gt;crashed&lt;/b&gt; &amp; restarted",
        f"<{BASE_URL}/alerts/0f1e2d3c4b5a6978|Open in OncallM> · resolved after 14m3s",
    ]
    title = render(tmp_path, "oncallm.slack.title", _mixed_notification())
    assert title == "[FIRING:2] KubePodCrashLooping"


def test_email_and_pagerduty_carry_the_links(tmp_path: Path) -> None:
    _write_base_url(tmp_path, BASE_URL)
    data = _mixed_notification()
    html = render(tmp_path, "oncallm.email.html", data, kind="html")
    for fingerprint in ("3f2c1e9a8b7d6c5e", "a1b2c3d4e5f60718", "0f1e2d3c4b5a6978"):
        assert f'<a href="{BASE_URL}/alerts/{fingerprint}"' in html
    assert "Payments &lt;b&gt;crashed&lt;/b&gt; &amp; restarted" in html  # escaped as HTML
    assert "<strong>Resolved: KubePodCrashLooping</strong>" in html
    firing = render(tmp_path, "oncallm.pagerduty.firing", data)
    assert f"OncallM: {BASE_URL}/alerts/3f2c1e9a8b7d6c5e" in firing
    assert "0f1e2d3c4b5a6978" not in firing
    resolved = render(tmp_path, "oncallm.pagerduty.resolved", data)
    assert resolved.startswith("[RESOLVED] KubePodCrashLooping · shop/payments")
    one = am_notification(am_alert("3f2c1e9a8b7d6c5e", namespace="shop", pod="checkout-1"))
    assert render(tmp_path, "oncallm.group_link", one) == f"{BASE_URL}/alerts/3f2c1e9a8b7d6c5e"
    assert render(tmp_path, "oncallm.group_link", data) == f"{BASE_URL}/alerts"
    assert (
        render(tmp_path, "oncallm.pagerduty.description", one)
        == "[FIRING:1] KubePodCrashLooping · shop/checkout-1 · warning"
    )


def test_a_big_group_lists_25_alerts_and_links_the_rest(tmp_path: Path) -> None:
    _write_base_url(tmp_path, BASE_URL)
    alerts = [am_alert(f"{i:016x}", namespace="shop", pod=f"web-{i}") for i in range(30)]
    alerts[0]["annotations"]["description"] = "The web tier\n\n  is down. " * 40
    text = render(tmp_path, "oncallm.slack.text", am_notification(*alerts))
    assert len(SLACK_LINK.findall(text)) == 25
    # A long description is one quoted line, cut at 300 characters, so a phone shows it.
    (quote,) = [line for line in text.splitlines() if line.startswith("> ")]
    assert quote.startswith("> The web tier is down. The web tier is down.")
    assert quote.endswith("…")
    assert len(quote) == len("> ") + 300 + 1
    assert text.rstrip().endswith(
        f"_30 alerts in this group; the first 25 are listed._ <{BASE_URL}/alerts|All alerts"
        " in OncallM>"
    )


# --- the generated configuration ------------------------------------------------------------


def _generate(tmp_path: Path, *args: str, config: dict[str, Any] | None = None) -> str:
    env = oncallm_env(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    if config is not None:
        config_file = tmp_path / "oncallm.yml"
        config_file.write_text(yaml.safe_dump(config))
        args = (*args, "--config", str(config_file))
    done = run_oncallm(["alertmanager-config", *args], env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _routes_for(config_file: Path, *labels: str) -> list[str]:
    done = subprocess.run(
        [_amtool(), "config", "routes", "test", f"--config.file={config_file}", *labels],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(",")


def _check_config(config_file: Path) -> str:
    done = subprocess.run(
        [_amtool(), "check-config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{config_file.read_text()}"
    return done.stdout


@pytest.mark.parametrize(
    ("webhook", "expected_http_config"),
    [
        ({}, None),
        (
            {"auth": "bearer", "token": "s3cret-token"},
            {
                "authorization": {
                    "type": "Bearer",
                    "credentials_file": "/etc/alertmanager/secrets/oncallm-webhook/token",
                }
            },
        ),
        (
            {"auth": "basic", "username": "am", "password": "s3cret-pass"},
            {
                "basic_auth": {
                    "username": "am",
                    "password_file": "/etc/alertmanager/secrets/oncallm-webhook/password",
                }
            },
        ),
    ],
    ids=["no-auth", "bearer", "basic"],
)
def test_generated_config_passes_check_config_and_routes_to_both_receivers(
    tmp_path: Path, webhook: dict[str, str], expected_http_config: dict[str, Any] | None
) -> None:
    templates = tmp_path / "templates"
    out = _generate(
        tmp_path,
        "--templates-dir",
        str(templates),
        "--write-templates",
        config={"server": {"base_url": "https://oncallm.corp.example/"}, "webhook": webhook},
    )
    assert "s3cret" not in out  # credentials are read from files, never printed
    config_file = tmp_path / "alertmanager.yml"
    config_file.write_text(out)
    checked = _check_config(config_file)
    assert "1 templates" in checked
    # Every alert goes to OncallM and still reaches the team's receiver.
    assert _routes_for(config_file, "alertname=KubePodCrashLooping", "severity=critical") == [
        "oncallm",
        "team-slack",
    ]
    config = yaml.safe_load(out)
    (hook,) = config["receivers"][0]["webhook_configs"]
    assert hook["url"] == "https://oncallm.corp.example/api/v1/alerts/alertmanager"
    assert hook["send_resolved"] is True
    assert hook.get("http_config") == expected_http_config
    # The written base URL file is the one the header tells the user to create.
    base_file = (templates / "oncallm-base-url.tmpl").read_text().strip()
    assert f"oncallm-base-url.tmpl: {base_file}" in out
    one = am_notification(am_alert("f00"))
    assert render(templates, "oncallm.links", one) == "https://oncallm.corp.example/alerts/f00\n"


def test_helm_values_hold_a_config_and_templates_amtool_accepts(tmp_path: Path) -> None:
    out = _generate(tmp_path, "--format", "helm", "--base-url", "https://oncallm.corp.example")
    values = yaml.safe_load(out)["alertmanager"]
    assert values["config"]["templates"] == ["/etc/alertmanager/config/*.tmpl"]
    assert values["templateFiles"]["oncallm.tmpl"] == TEMPLATE.read_text()
    assert "oncallm.tmpl: |" in out  # readable in the values file, not one escaped line
    # Lay the files out as the chart does (templates next to the config) and check them.
    for name, content in values["templateFiles"].items():
        (tmp_path / name).write_text(content)
    config = values["config"]
    config["templates"] = [f"{tmp_path}/*.tmpl"]
    config_file = tmp_path / "alertmanager.yaml"
    config_file.write_text(yaml.safe_dump(config))
    _check_config(config_file)
    one = am_notification(am_alert("f00"))
    assert render(tmp_path, "oncallm.links", one) == "https://oncallm.corp.example/alerts/f00\n"


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = oncallm_env(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    for args, message in [
        (["--base-url", "oncallm.example.com"], "not an absolute http(s) URL"),
        (["--format", "json"], "--format must be yaml or helm"),
    ]:
        done = run_oncallm(["alertmanager-config", *args], env)
        assert done.returncode == 2
        assert done.stdout == ""
        assert done.stderr.count("\n") == 1, done.stderr
        assert message in done.stderr


# --- links followed to a running OncallM ----------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OncallmProcess]:
    """`oncallm serve` whose server.base_url is its own address, so links lead to it.

    SQLite only: what is checked here is the link contract between the templates and the
    pages, not storage (the pages run on both backends in test_pages.py); PostgreSQL
    doubled this module's run time.
    """
    workdir = tmp_path_factory.mktemp("oncallm")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = oncallm_env(
        f"sqlite+aiosqlite:///{workdir / 'oncallm.db'}",
        server__base_url=url,
        jobs__poll_interval_seconds="0.2",
    )
    process = start_oncallm(["serve", "--port", str(port)], env, workdir)
    process.port = port
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.process.poll() is None, f"oncallm serve exited:\n{process.log()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"oncallm serve not healthy:\n{process.log()}"
            time.sleep(0.1)
        yield process
    finally:
        process.stop()


def _kit_for(base_url: str, templates: Path) -> dict[str, Any]:
    """What `oncallm alertmanager-config --write-templates` gives, built in-process (the
    command itself is run as a user would above)."""
    options = kit.options_from_settings(
        Settings(server=ServerSettings(base_url=base_url)), templates_dir=str(templates)
    )
    kit.write_template_files(options, templates)
    config: dict[str, Any] = yaml.safe_load(kit.render_config(options))
    return config


def test_rendered_links_show_not_seen_yet_then_the_alert_page(
    server: OncallmProcess, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    _kit_for(server.base_url, templates)
    notification = am_notification(
        am_alert("5e1f0c2d3b4a6978", namespace="shop", pod="checkout-1"),
        am_alert("6a7b8c9d0e1f2a3b", namespace="shop", pod="checkout-2"),
    )
    text = render(templates, "oncallm.slack.text", notification)
    links = SLACK_LINK.findall(text)
    assert links == [f"{server.base_url}/alerts/{a['fingerprint']}" for a in notification["alerts"]]
    for alert in notification["alerts"]:
        assert alert["annotations"]["summary"] in text

    with httpx.Client(timeout=10) as http:
        # The notification can beat the webhook: the page says so and refreshes itself.
        for link in links:
            early = http.get(link)
            assert early.status_code == 404
            assert "not seen yet" in early.text.lower()
            assert re.search(r'<meta http-equiv="refresh" content="\d+"', early.text)

        posted = http.post(f"{server.base_url}/api/v1/alerts/alertmanager", json=notification)
        assert posted.status_code == 202, posted.text
        # OncallM's own idea of each alert's link is the template's.
        assert [a["url"] for a in posted.json()["alerts"]] == links

        for link, alert in zip(links, notification["alerts"], strict=True):
            page = http.get(link)
            assert page.status_code == 200, page.text[:500]
            assert "text/html" in page.headers["content-type"]
            assert alert["labels"]["alertname"] in page.text
            assert alert["labels"]["pod"] in page.text


# --- a real Alertmanager, configured by the kit ----------------------------------------------


class SlackWebhookFake:
    """A Slack incoming webhook on loopback: records each POSTed message, answers `ok`."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                fake.messages.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/XXXX"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SlackWebhookFake:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def kit_alertmanager(config: dict[str, Any], workdir: Path) -> Iterator[ServiceProcess]:
    binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config))
    _check_config(config_file)
    port = free_port()
    log_path = workdir / "alertmanager.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=debug",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    service = ServiceProcess("alertmanager", process, log_path, port)
    try:
        wait_until_ready(service)
        yield service
    finally:
        service.stop()


def test_alertmanager_sends_slack_messages_whose_links_open_oncallm_pages(
    server: OncallmProcess, tmp_path: Path
) -> None:
    with contextlib.ExitStack() as stack:
        slack = stack.enter_context(SlackWebhookFake())
        config = _kit_for(server.base_url, tmp_path / "templates")
        # The test's only edits: where the Slack URL lives, and no 30 s group wait.
        api_url_file = tmp_path / "slack-api-url"
        api_url_file.write_text(slack.url)
        config["receivers"][1]["slack_configs"][0]["api_url_file"] = str(api_url_file)
        config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
        am = stack.enter_context(kit_alertmanager(config, tmp_path))

        alerts = [
            {
                "labels": {
                    "alertname": "KitCrashLoop",
                    "namespace": "shop",
                    "pod": pod,
                    "severity": "critical",
                },
                "annotations": {"summary": f"{pod} keeps restarting"},
            }
            for pod in ("checkout-1", "checkout-2")
        ]
        posted = httpx.post(f"{am.url}/api/v2/alerts", json=alerts, timeout=10)
        assert posted.status_code == 200, posted.text

        deadline = time.monotonic() + 30
        while not slack.messages:
            assert time.monotonic() < deadline, f"no Slack message:\n{am.log_tail()}"
            time.sleep(0.2)
        (message,) = slack.messages
        assert message["channel"] == "#oncall"
        (attachment,) = message["attachments"]
        assert attachment["title"] == "[FIRING:2] KitCrashLoop · shop · critical"
        assert attachment["title_link"] == f"{server.base_url}/alerts"
        assert attachment["color"] == "danger"
        links = SLACK_LINK.findall(attachment["text"])
        assert len(links) == 2
        assert "checkout-1 keeps restarting" in attachment["text"]

        # The webhook went to OncallM at the same time; each link opens its alert's page.
        pages = []
        with httpx.Client(timeout=10) as http:
            for link in links:
                while (page := http.get(link)).status_code == 404:
                    assert time.monotonic() < deadline, f"{link} not seen:\n{server.log()}"
                    time.sleep(0.2)
                assert page.status_code == 200, f"{link}: {page.status_code}\n{server.log()}"
                assert "KitCrashLoop" in page.text
                pages.append(page.text)
        for pod in ("checkout-1", "checkout-2"):
            assert sum(pod in text for text in pages) == 1, f"{pod} is not on exactly one page"
