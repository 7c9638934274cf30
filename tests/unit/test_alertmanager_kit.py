"""What `oncallm alertmanager-config` generates, without the Alertmanager binaries
(tests/integration/test_alertmanager_kit.py checks it with amtool)."""

from __future__ import annotations

import pytest
import yaml

from oncallm import alertmanager_kit as kit
from oncallm.config import ServerSettings, Settings, WebhookSettings
from oncallm.errors import OncallmError


def _settings(**server: object) -> Settings:
    return Settings(server=ServerSettings.model_validate(server))


def test_links_default_to_the_servers_public_url() -> None:
    options = kit.options_from_settings(_settings(host="0.0.0.0", port=9090))
    assert options.base_url == "http://localhost:9090"
    assert options.webhook_url == "http://localhost:9090/api/v1/alerts/alertmanager"
    options = kit.options_from_settings(_settings(base_url="https://oncallm.corp.example/"))
    assert options.base_url == "https://oncallm.corp.example"
    assert kit.base_url_template(options.base_url) == (
        '{{ define "oncallm.base_url" }}https://oncallm.corp.example{{ end }}\n'
    )


def test_the_webhook_url_can_be_the_in_cluster_service() -> None:
    options = kit.options_from_settings(
        _settings(base_url="https://oncallm.corp.example"),
        webhook_url="http://oncallm.monitoring:8080/api/v1/alerts/alertmanager",
    )
    config = kit.alertmanager_config(options)
    (hook,) = config["receivers"][0]["webhook_configs"]
    assert hook["url"] == "http://oncallm.monitoring:8080/api/v1/alerts/alertmanager"
    assert config["templates"] == ["/etc/alertmanager/templates/oncallm*.tmpl"]


@pytest.mark.parametrize(
    "url",
    [
        "oncallm.example.com",  # no scheme
        "ftp://oncallm.example.com",
        "https://",
        "https://oncallm.example.com/?a=b",
        "https://oncallm.example.com/#top",
        'https://oncallm.example.com/"}}{{ end',  # would end the Go template
        "https://oncallm.example.com/a b",
    ],
)
def test_a_base_url_that_would_break_links_is_refused(url: str) -> None:
    with pytest.raises(OncallmError, match="URL"):
        kit.options_from_settings(_settings(), base_url=url)


def test_credentials_are_mounted_files_never_printed() -> None:
    settings = Settings(
        webhook=WebhookSettings.model_validate({"auth": "bearer", "token": "s3cret-token"})
    )
    options = kit.options_from_settings(settings)
    out = kit.render_config(options)
    assert "s3cret" not in out
    hook = yaml.safe_load(out)["receivers"][0]["webhook_configs"][0]
    assert hook["http_config"]["authorization"]["credentials_file"].endswith(
        "/oncallm-webhook/token"
    )
    assert hook["max_alerts"] == settings.webhook.max_alerts
    helm = kit.render_config(options, kit.KitFormat.helm)
    assert "s3cret" not in helm
    spec = yaml.safe_load(helm)["alertmanager"]["alertmanagerSpec"]
    assert spec["secrets"] == ["oncallm-webhook", "alertmanager-slack"]


def test_every_alert_reaches_oncallm_and_then_the_team() -> None:
    options = kit.options_from_settings(_settings(), receiver="triage", team_receiver="ops")
    route = kit.alertmanager_config(options)["route"]
    assert route["receiver"] == "ops"
    assert route["routes"] == [{"receiver": "triage", "continue": True}, {"receiver": "ops"}]


def test_receivers_must_differ() -> None:
    with pytest.raises(OncallmError, match="different"):
        kit.options_from_settings(_settings(), receiver="oncallm", team_receiver="oncallm")


def test_slack_receiver_uses_the_oncallm_templates() -> None:
    options = kit.options_from_settings(_settings())
    (slack,) = kit.alertmanager_config(options)["receivers"][1]["slack_configs"]
    assert slack["text"] == '{{ template "oncallm.slack.text" . }}'
    assert slack["title"] == '{{ template "oncallm.slack.title" . }}'
    assert slack["title_link"] == '{{ template "oncallm.group_link" . }}'
    assert slack["send_resolved"] is True


def test_every_template_the_docs_name_is_defined() -> None:
    source = kit.template_source()
    for name in (
        "oncallm.base_url",
        "oncallm.link",
        "oncallm.links",
        "oncallm.group_link",
        "oncallm.title",
        "oncallm.text",
        "oncallm.slack.title",
        "oncallm.slack.text",
        "oncallm.slack.color",
        "oncallm.email.html",
        "oncallm.email.text",
        "oncallm.pagerduty.description",
        "oncallm.pagerduty.details",
        "oncallm.pagerduty.firing",
        "oncallm.pagerduty.resolved",
    ):
        assert f'{{{{ define "{name}" ' in source, name
