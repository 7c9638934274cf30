"""The configuration surface: precedence, provenance, masking, errors and generated docs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from oncallm.config import describe_settings, load_settings, render_config_docs
from oncallm.errors import ConfigError
from tests.support.services import run_oncallm

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ONCALLM_"):
            monkeypatch.delenv(key)


def test_defaults_run_out_of_the_box() -> None:
    settings = load_settings()
    assert settings.database.url == "sqlite+aiosqlite:///./.oncallm/oncallm.db"
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.server.public_url == "http://localhost:8080"
    assert settings.server.max_body_bytes == 1024 * 1024


def test_env_overrides_file_overrides_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "oncallm.yaml"
    config.write_text(
        "server:\n  port: 9000\n  base_url: https://oncallm.example.com/\n"
        "jobs:\n  max_attempts: 7\n"
    )
    monkeypatch.setenv("ONCALLM_JOBS__MAX_ATTEMPTS", "9")
    settings = load_settings(config)
    assert settings.server.port == 9000
    assert settings.jobs.max_attempts == 9
    assert settings.server.public_url == "https://oncallm.example.com"
    sources = {row.key: row.source for row in describe_settings(settings, config)}
    assert sources["server.port"] == f"file {config}"
    assert sources["jobs.max_attempts"] == "env ONCALLM_JOBS__MAX_ATTEMPTS"
    assert sources["log.level"] == "default"


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("log:\n  level: DEBUG\n")
    monkeypatch.setenv("ONCALLM_CONFIG", str(config))
    assert load_settings().log.level == "DEBUG"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("jobs:\n  max_attempts: 0\n", "jobs.max_attempts"),
        ("server:\n  prot: 80\n", "server.prot"),
        ("- a list\n", "must be a mapping"),
        ("server: [\n", "not valid YAML"),
        ("webhook:\n  auth: bearer\n", "webhook.auth=bearer needs webhook.token"),
        ("jobs:\n  lease_seconds: 5\n  heartbeat_seconds: 5\n", "heartbeat_seconds"),
    ],
)
def test_invalid_config_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert message in info.value.detail


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.yaml")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ONCALLM_")}
    return run_oncallm(list(args), {**base, **(env or {})})


def test_config_show_masks_secrets_and_names_sources() -> None:
    env = {
        "ONCALLM_DATABASE__URL": "postgresql+asyncpg://oncallm:hunter2@db:5432/oncallm",
        "ONCALLM_WEBHOOK__AUTH": "bearer",
        "ONCALLM_WEBHOOK__TOKEN": "tok-abcdef-123456",
    }
    result = _cli("config", "show", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert "hunter2" not in result.stdout
    assert "tok-abcdef-123456" not in result.stdout
    assert shown["database.url"] == {
        "value": "postgresql+asyncpg://oncallm:***@db:5432/oncallm",
        "source": "env ONCALLM_DATABASE__URL",
    }
    assert shown["webhook.token"]["value"] == "********"
    assert shown["server.base_url"]["source"].startswith("derived")


def test_cli_config_error_is_one_line_and_nonzero(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("jobs:\n  max_attempts: -1\n")
    result = _cli("config", "show", "--config", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error: invalid configuration")


def test_configuration_docs_are_generated_from_the_model() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == render_config_docs(), (
        "docs/configuration.md is stale: run `make docs` (oncallm config docs)"
    )
    for row in describe_settings(load_settings()):
        assert f"`{row.key}`" in committed
