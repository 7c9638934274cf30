"""The ``metrics`` section of the configuration: which Prometheus to ask, and how.

Split out of ``config.py`` only for size; ``config.Settings`` owns it like every other
section. ``metrics.prometheus`` is the default endpoint; ``metrics.clusters`` overrides it
for alerts whose ``cluster`` label matches. Anything that answers the Prometheus HTTP API
v1 works: Prometheus, Thanos Query, Cortex/Mimir (with ``X-Scope-OrgID`` in ``headers``),
VictoriaMetrics (``url`` ending in ``/select/0/prometheus``). With no URL configured and
no snapshot cluster, metrics are simply not gathered: no request, no gap.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["MetricsSettings", "PrometheusSettings"]


class PrometheusSettings(BaseModel):
    """One Prometheus-compatible endpoint and the credentials to read it."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None,
        description=(
            "Base URL of Prometheus, Thanos Query or VictoriaMetrics, e.g. "
            "`http://prometheus.monitoring:9090`; a path prefix (`/prometheus`, "
            "`/select/0/prometheus`) is kept. Unset: no metrics from this endpoint."
        ),
    )
    bearer_token: SecretStr | None = Field(
        default=None, description="Sent as `Authorization: Bearer <token>`."
    )
    bearer_token_file: Path | None = Field(
        default=None,
        description=(
            "File holding the bearer token, re-read on every request so a rotated "
            "service-account token keeps working."
        ),
    )
    username: str | None = Field(default=None, description="Basic auth user name.")
    password: SecretStr | None = Field(default=None, description="Basic auth password.")
    ca_file: Path | None = Field(
        default=None, description="PEM bundle of the CAs that sign the server's certificate."
    )
    cert_file: Path | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS; needs `key_file`."
    )
    key_file: Path | None = Field(default=None, description="Private key (PEM) of `cert_file`.")
    insecure_skip_verify: bool = Field(
        default=False,
        description="Do not verify the server's certificate (test setups only).",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra request headers, e.g. `X-Scope-OrgID` for a Cortex, Mimir or Thanos tenant."
        ),
    )
    timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="Timeout of every query."
    )
    link_url: str | None = Field(
        default=None,
        description=(
            "URL users open in a browser for graph links. Unset: the host of the alert's "
            "`generatorURL` when known, else `url`."
        ),
    )

    @field_validator("url", "link_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _consistent_auth(self) -> PrometheusSettings:
        bearer = self.bearer_token is not None or self.bearer_token_file is not None
        basic = self.username is not None or self.password is not None
        if self.bearer_token is not None and self.bearer_token_file is not None:
            raise ValueError("bearer_token and bearer_token_file are exclusive")
        if bearer and basic:
            raise ValueError("bearer token and basic auth (username/password) are exclusive")
        if basic and not (self.username and self.password):
            raise ValueError("basic auth needs both username and password")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MetricsSettings(BaseModel):
    """Where metrics come from and how much of them a triage reads."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True,
        description=(
            "Gather metrics for triage. With no URL configured (and no snapshot cluster) "
            "metrics are skipped without a gap."
        ),
    )
    prometheus: PrometheusSettings = Field(
        default_factory=PrometheusSettings,
        description="The default endpoint, for alerts of any cluster.",
    )
    clusters: dict[str, PrometheusSettings] = Field(
        default_factory=dict,
        description=(
            "Endpoints by cluster name, matched against the alert's `cluster` label; "
            "others use `metrics.prometheus`."
        ),
    )
    lookback_minutes: int = Field(
        default=60, ge=1, le=7 * 24 * 60, description="Window read before the alert's startsAt."
    )
    after_minutes: int = Field(
        default=15,
        ge=0,
        le=24 * 60,
        description="Window read after the alert's startsAt (never past now).",
    )
    max_points: int = Field(
        default=120, ge=10, le=11_000, description="Points each series keeps (downsampled)."
    )
    breaker_failures: int = Field(
        default=3,
        ge=1,
        description="Consecutive failed queries after which an endpoint is not asked for a while.",
    )
    breaker_reset_seconds: float = Field(
        default=60.0, gt=0, description="How long an endpoint whose breaker opened is left alone."
    )
