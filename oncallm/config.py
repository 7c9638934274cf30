"""The one configuration surface of OncallM.

A single pydantic-settings model read from, in rising precedence: built-in defaults, an
optional YAML file (``ONCALLM_CONFIG`` or ``--config``), and ``ONCALLM_*`` environment
variables (nested with ``__``, e.g. ``ONCALLM_DATABASE__URL``). No other module reads the
environment. ``describe_settings`` reports every effective value with where it came from,
and ``render_config_docs`` generates ``docs/configuration.md`` from the model itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url

from oncallm.config_llm import LLMSettings
from oncallm.config_metrics import MetricsSettings
from oncallm.config_runbooks import RunbooksSettings
from oncallm.errors import ConfigError

ENV_PREFIX = "ONCALLM_"
ENV_NESTED_DELIMITER = "__"
CONFIG_FILE_ENV = "ONCALLM_CONFIG"

_file_values: ContextVar[dict[str, Any] | None] = ContextVar(
    "oncallm_config_file_values", default=None
)


class _Section(BaseModel):
    """A configuration section: unknown keys are typos, so they are errors."""

    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    url: str = Field(
        default="sqlite+aiosqlite:///./.oncallm/oncallm.db",
        description=(
            "SQLAlchemy async URL. SQLite (`sqlite+aiosqlite:///path`) by default; "
            "PostgreSQL with `postgresql+asyncpg://user:pass@host:5432/db`."
        ),
    )
    pool_size: int = Field(default=10, ge=1, le=200, description="Connections per process.")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        default="FULL",
        description=(
            "SQLite `PRAGMA synchronous`. FULL survives power loss with every accepted "
            "alert; NORMAL survives process crashes only and is faster."
        ),
    )
    busy_timeout_ms: int = Field(
        default=10_000, ge=0, description="How long a SQLite writer waits for the lock."
    )

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class ServerSettings(_Section):
    host: str = Field(default="127.0.0.1", description="Address `oncallm serve` listens on.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port `oncallm serve` listens on.")
    base_url: str | None = Field(
        default=None,
        description=(
            "Public URL of OncallM, used in alert links (`{base_url}/alerts/{fingerprint}`). "
            "Derived from host and port when unset."
        ),
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Request bodies larger than this are refused with 413 before being read.",
    )
    migrate_on_start: bool = Field(
        default=True, description="`serve` applies database migrations before listening."
    )
    embedded_worker: bool = Field(
        default=True,
        description="`serve` also runs triage workers in-process (turn off to scale workers out).",
    )

    @property
    def public_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        host = "localhost" if self.host in ("0.0.0.0", "::", "127.0.0.1") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"


class WebhookAuthMode(StrEnum):
    none = "none"
    bearer = "bearer"
    basic = "basic"


class WebhookSettings(_Section):
    auth: WebhookAuthMode = Field(
        default=WebhookAuthMode.none,
        description=(
            "Shared-secret auth for the Alertmanager webhook: `none`, `bearer` "
            "(Alertmanager `http_config.authorization`) or `basic` (`http_config.basic_auth`)."
        ),
    )
    token: SecretStr | None = Field(default=None, description="Bearer token when auth=bearer.")
    username: str | None = Field(default=None, description="Username when auth=basic.")
    password: SecretStr | None = Field(default=None, description="Password when auth=basic.")
    max_alerts: int = Field(
        default=1000, ge=1, description="Most alerts accepted in one notification."
    )
    max_labels: int = Field(
        default=128, ge=1, description="Most labels (and annotations) accepted on one alert."
    )
    max_value_bytes: int = Field(
        default=65_536, ge=64, description="Longest label or annotation value accepted."
    )

    @model_validator(mode="after")
    def _credentials_present(self) -> WebhookSettings:
        if self.auth is WebhookAuthMode.bearer and not self.token:
            raise ValueError("webhook.auth=bearer needs webhook.token")
        if self.auth is WebhookAuthMode.basic and not (self.username and self.password):
            raise ValueError("webhook.auth=basic needs webhook.username and webhook.password")
        return self


class JobSettings(_Section):
    concurrency: int = Field(default=2, ge=1, le=64, description="Jobs one worker runs at once.")
    lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A claimed job whose worker stops renewing it is re-claimed after this long.",
    )
    heartbeat_seconds: float = Field(
        default=10.0, gt=0, description="How often a running job's lease is renewed."
    )
    max_attempts: int = Field(
        default=5, ge=1, le=100, description="Attempts before a job is marked failed."
    )
    backoff_base_seconds: float = Field(
        default=2.0, ge=0, description="First retry delay; doubles per attempt."
    )
    backoff_max_seconds: float = Field(default=300.0, ge=0, description="Longest retry delay.")
    poll_interval_seconds: float = Field(
        default=1.0, gt=0, description="How often an idle worker looks for new jobs."
    )

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> JobSettings:
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("jobs.heartbeat_seconds must be shorter than jobs.lease_seconds")
        return self


class ClusterSettings(_Section):
    """How to reach one cluster: a kubeconfig context, the in-cluster account, or a snapshot."""

    kubeconfig: Path | None = Field(
        default=None,
        description=(
            "Kubeconfig file; unset means the pod's service account when running in a "
            "cluster, else `$KUBECONFIG`, else `~/.kube/config`."
        ),
    )
    context: str | None = Field(
        default=None, description="Kubeconfig context; unset means its current context."
    )
    in_cluster: bool = Field(
        default=False, description="Use the pod's service account instead of a kubeconfig."
    )
    snapshot: Path | None = Field(
        default=None,
        description="Read this snapshot directory (DESIGN.md 4.2) instead of a live API server.",
    )
    qps: float = Field(
        default=50.0, gt=0, description="Sustained API requests per second (client-go QPS)."
    )
    burst: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="API requests allowed at once above `qps` (client-go Burst): one triage "
        "makes about 30 reads, so the default lets it run unthrottled.",
    )
    concurrency: int = Field(
        default=8, ge=1, le=128, description="Most API requests in flight at once."
    )
    timeout_seconds: float = Field(default=10.0, gt=0, description="Timeout of every API request.")

    @model_validator(mode="after")
    def _one_way_in(self) -> ClusterSettings:
        if self.snapshot is not None and (self.in_cluster or self.kubeconfig or self.context):
            raise ValueError("a cluster is either a snapshot or a live API, not both")
        if self.in_cluster and (self.kubeconfig or self.context):
            raise ValueError("in_cluster excludes kubeconfig and context")
        return self


class KubernetesSettings(_Section):
    clusters: dict[str, ClusterSettings] = Field(
        default_factory=dict,
        description=(
            "Clusters by name, matched against the alert's `cluster` label. Empty means one "
            "cluster reached through the standard kubeconfig (or in-cluster account)."
        ),
    )
    default_cluster: str | None = Field(
        default=None,
        description=(
            "Cluster for alerts without a `cluster` label (or an unknown one); "
            "unset means the only configured cluster."
        ),
    )

    @model_validator(mode="after")
    def _default_is_configured(self) -> KubernetesSettings:
        known = self.clusters
        if self.default_cluster is not None and known and self.default_cluster not in known:
            raise ValueError(
                f"kubernetes.default_cluster {self.default_cluster!r} is not one of "
                f"kubernetes.clusters ({', '.join(sorted(known))})"
            )
        return self


class TriageSettings(_Section):
    gather_concurrency: int = Field(
        default=8, ge=1, le=64, description="Reads one triage makes at once."
    )
    max_pods: int = Field(
        default=10, ge=1, le=200, description="Pods of one workload inspected in detail."
    )
    log_tail_lines: int = Field(
        default=200, ge=10, le=10_000, description="Log lines read per container."
    )
    log_limit_bytes: int = Field(
        default=256 * 1024, ge=1024, description="Log bytes read per container."
    )
    stale_event_minutes: int = Field(
        default=60,
        ge=1,
        description="Warning events last seen this long before the alert started are history.",
    )
    min_confidence: float = Field(
        default=0.35,
        ge=0,
        le=1,
        description="A root cause less certain than this is reported as `Unknown`.",
    )
    eval_min_accuracy: float = Field(
        default=0.9, ge=0, le=1, description="`oncallm eval` fails below this accuracy."
    )


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level logged."
    )
    format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="`json` for log collectors, `console` for people; `auto` picks by terminal.",
    )


class Settings(BaseSettings):
    """Everything OncallM can be told. Section names are the YAML keys."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="ignore",
        case_sensitive=False,
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    triage: TriageSettings = Field(default_factory=TriageSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    runbooks: RunbooksSettings = Field(default_factory=RunbooksSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlFileSource(settings_cls))


class _YamlFileSource(PydanticBaseSettingsSource):
    """Values from the YAML file being loaded (set by ``load_settings``)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_file_values.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_file_values.get() or {})


def config_file_path(explicit: Path | None = None) -> Path | None:
    if explicit is not None:
        return explicit
    from_env = os.environ.get(CONFIG_FILE_ENV)
    return Path(from_env) if from_env else None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must be a mapping of sections, not {type(data).__name__}"
        )
    return data


def load_settings(config_file: Path | None = None) -> Settings:
    """Build the effective settings; raises ``ConfigError`` with every problem in one message."""
    path = config_file_path(config_file)
    file_data = _read_yaml(path) if path else {}
    token = _file_values.set(file_data)
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        where = f" (file {path})" if path else ""
        raise ConfigError(f"invalid configuration{where}: {problems}") from exc
    finally:
        _file_values.reset(token)


# --- describing the effective configuration ---------------------------------------------


@dataclass(frozen=True)
class SettingValue:
    key: str  # dotted, e.g. "database.url"
    value: str  # rendered, secrets masked
    source: str  # "default", "derived", "env ONCALLM_X__Y", "file PATH"


def env_var_name(key: str) -> str:
    return ENV_PREFIX + key.replace(".", ENV_NESTED_DELIMITER).upper()


def _mask(key: str, value: Any) -> str:
    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else ""
    if key == "database.url" and isinstance(value, str):
        try:
            return make_url(value).render_as_string(hide_password=True)
        except Exception:
            return "********"
    if isinstance(value, dict) and key.endswith(".headers"):
        # Extra HTTP headers often carry credentials (Authorization, X-Api-Key): names only.
        return ", ".join(f"{name}: ********" for name in value)
    if isinstance(value, StrEnum):
        return value.value
    if value is None:
        return ""
    return str(value)


def _leaves(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            yield from _leaves(value, key + ".")
        else:
            yield key, value


def _in_file(data: dict[str, Any], key: str) -> bool:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def describe_settings(settings: Settings, config_file: Path | None = None) -> list[SettingValue]:
    """Every leaf setting with its masked value and the source that set it."""
    path = config_file_path(config_file)
    file_data = _read_yaml(path) if path else {}
    env_upper = {k.upper() for k in os.environ}
    rows = []
    for key, value in _leaves(settings):
        if env_var_name(key) in env_upper:
            source = f"env {env_var_name(key)}"
        elif _in_file(file_data, key):
            source = f"file {path}"
        else:
            source = "default"
        rendered = _mask(key, value)
        if key == "server.base_url" and value is None:
            rendered, source = settings.server.public_url, "derived from server.host and port"
        rows.append(SettingValue(key, rendered, source))
    return rows


def _documented_fields(prefix: str, model: BaseModel) -> Iterator[tuple[str, FieldInfo, Any]]:
    """Leaf fields of a section, nested sub-sections flattened to dotted keys."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _documented_fields(f"{prefix}.{name}", value)
        else:
            yield f"{prefix}.{name}", field, value


def render_config_docs() -> str:
    """Markdown reference of every setting, generated from the model (docs/configuration.md)."""
    lines = [
        "# Configuration",
        "",
        "<!-- Generated by `oncallm config docs` from oncallm/config.py; do not edit. -->",
        "",
        "OncallM reads one configuration model from, in rising precedence: its defaults, an",
        f"optional YAML file (`--config FILE` or `{CONFIG_FILE_ENV}`), and environment",
        f"variables `{ENV_PREFIX}<SECTION>{ENV_NESTED_DELIMITER}<KEY>`. "
        "`oncallm config show` prints",
        "the effective values, secrets masked, with where each came from.",
        "",
        "```yaml",
        "# example file",
        "database:",
        "  url: postgresql+asyncpg://oncallm:secret@db:5432/oncallm",
        "server:",
        "  base_url: https://oncallm.example.com",
        "```",
    ]
    for section_name, section_field in Settings.model_fields.items():
        section_type = section_field.annotation
        assert isinstance(section_type, type)
        assert issubclass(section_type, BaseModel)
        lines += [
            "",
            f"## `{section_name}`",
            "",
            "| Key | Environment variable | Default | Description |",
        ]
        lines.append("|---|---|---|---|")
        for key, field, value in _documented_fields(section_name, section_type()):
            default = _mask(key, value)
            if key == "server.base_url":
                default = "derived: `http://localhost:{port}`"
            else:
                default = f"`{default}`" if default != "" else "(unset)"
            description = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{key}` | `{env_var_name(key)}` | {default} | {description} |")
    return "\n".join(lines) + "\n"
