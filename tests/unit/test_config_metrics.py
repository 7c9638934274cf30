"""The ``metrics`` configuration section: env and file forms, and the mistakes it refuses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oncallm.config import describe_settings, load_settings
from oncallm.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ONCALLM_"):
            monkeypatch.delenv(key)


def test_defaults_gather_nothing_until_a_url_is_set() -> None:
    metrics = load_settings().metrics
    assert metrics.enabled
    assert metrics.prometheus.url is None
    assert (metrics.lookback_minutes, metrics.after_minutes, metrics.max_points) == (60, 15, 120)
    assert (metrics.breaker_failures, metrics.breaker_reset_seconds) == (3, 60)


def test_endpoint_and_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCALLM_METRICS__PROMETHEUS__URL", "http://prometheus.monitoring:9090")
    monkeypatch.setenv("ONCALLM_METRICS__PROMETHEUS__BEARER_TOKEN", "tok-sa-123456")
    monkeypatch.setenv("ONCALLM_METRICS__PROMETHEUS__HEADERS", '{"X-Scope-OrgID": "team-a"}')
    monkeypatch.setenv("ONCALLM_METRICS__PROMETHEUS__TIMEOUT_SECONDS", "2.5")
    settings = load_settings()
    prom = settings.metrics.prometheus
    assert prom.url == "http://prometheus.monitoring:9090"
    assert prom.bearer_token is not None
    assert prom.bearer_token.get_secret_value() == "tok-sa-123456"
    assert prom.headers == {"X-Scope-OrgID": "team-a"}
    assert prom.timeout_seconds == 2.5

    shown = {row.key: row for row in describe_settings(settings)}
    assert shown["metrics.prometheus.url"].source == "env ONCALLM_METRICS__PROMETHEUS__URL"
    assert shown["metrics.prometheus.bearer_token"].value == "********"


def test_per_cluster_endpoints_from_a_file(tmp_path: Path) -> None:
    config = tmp_path / "oncallm.yaml"
    config.write_text(
        "metrics:\n"
        "  prometheus: {url: 'http://prom:9090'}\n"
        "  clusters:\n"
        "    eu-1:\n"
        "      url: https://vm.eu-1.example.com/select/0/prometheus\n"
        "      username: oncallm\n"
        "      password: s3cret\n"
    )
    metrics = load_settings(config).metrics
    assert metrics.clusters["eu-1"].url == "https://vm.eu-1.example.com/select/0/prometheus"
    assert metrics.clusters["eu-1"].username == "oncallm"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"URL": "prom:9090"}, "must be an http:// or https:// URL"),
        ({"URL": "ftp://prom:9090"}, "must be an http:// or https:// URL"),
        (
            {"BEARER_TOKEN": "t", "USERNAME": "u", "PASSWORD": "p"},
            "bearer token and basic auth (username/password) are exclusive",
        ),
        ({"USERNAME": "u"}, "basic auth needs both username and password"),
        ({"CERT_FILE": "/etc/tls/client.crt"}, "cert_file and key_file go together"),
        ({"BEARER_TOKEN": "t", "BEARER_TOKEN_FILE": "/t"}, "are exclusive"),
        ({"TIMEOUT_SECONDS": "0"}, "timeout_seconds"),
    ],
    ids=[
        "no-scheme",
        "ftp",
        "bearer-and-basic",
        "user-only",
        "cert-without-key",
        "two-tokens",
        "t0",
    ],
)
def test_inconsistent_endpoint_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(f"ONCALLM_METRICS__PROMETHEUS__{key}", value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert message in err.value.detail
    assert "metrics.prometheus" in err.value.detail


def test_unknown_key_is_a_typo(tmp_path: Path) -> None:
    config = tmp_path / "oncallm.yaml"
    config.write_text("metrics:\n  prometheus:\n    uri: http://prom:9090\n")
    with pytest.raises(ConfigError, match=r"metrics\.prometheus\.uri"):
        load_settings(config)


def test_config_show_names_extra_headers_but_never_prints_their_values(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "metrics:\n  prometheus:\n    url: https://mimir.example.com/prometheus\n"
        "    headers: {X-Scope-OrgID: tenant-a, Authorization: Bearer s3cr3t-t0ken}\n"
    )
    rows = {row.key: row.value for row in describe_settings(load_settings(config), config)}
    shown = rows["metrics.prometheus.headers"]
    assert "X-Scope-OrgID" in shown
    assert "Authorization" in shown
    assert "s3cr3t-t0ken" not in shown
    assert "tenant-a" not in shown
