"""Alertmanager webhook payload (version 4) and its normalisation into alert records.

The models follow the payload Alertmanager 0.2x sends (`notify/webhook`): camelCase keys,
``endsAt`` of ``0001-01-01T00:00:00Z`` meaning "not ended", and ``truncatedAlerts`` when
``max_alerts`` cut the list. Unknown extra keys are tolerated (newer Alertmanagers add
some); missing or mistyped required keys are not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

# A fingerprint goes into URLs (/alerts/{fingerprint}); Alertmanager's are 16 hex digits,
# other senders use similar tokens. Anything outside this set is refused, not escaped.
FINGERPRINT_PATTERN = r"^[A-Za-z0-9_.\-]{1,128}$"

# Go's zero time, which Alertmanager sends as endsAt for alerts that have not ended.
_GO_ZERO_YEAR = 1

# Labels stored in indexed columns for filtering, and their longest accepted value.
INDEXED_LABEL_LIMITS = {"alertname": 255, "namespace": 255, "cluster": 255, "severity": 64}
# NUL cannot be stored in PostgreSQL text; lone surrogates cannot be encoded as UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class _AMModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class AlertmanagerAlert(_AMModel):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: Annotated[str, StringConstraints(pattern=FINGERPRINT_PATTERN)]

    @field_validator("labels")
    @classmethod
    def _has_alertname(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels.get("alertname"):
            raise ValueError("labels must include a non-empty alertname")
        for name, limit in INDEXED_LABEL_LIMITS.items():
            if len(labels.get(name, "")) > limit:
                raise ValueError(f"label {name} is longer than {limit} characters")
        _check_storable(labels)
        return labels

    @field_validator("annotations", "generator_url")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        _check_storable(value)
        return value

    @field_validator("starts_at")
    @classmethod
    def _starts_at_set(cls, value: datetime) -> datetime:
        if value.year == _GO_ZERO_YEAR:
            raise ValueError("startsAt must be a real time, not the zero time")
        return _utc(value)

    @field_validator("ends_at")
    @classmethod
    def _zero_means_open(cls, value: datetime | None) -> datetime | None:
        if value is None or value.year == _GO_ZERO_YEAR:
            return None
        return _utc(value)


class AlertmanagerWebhook(_AMModel):
    """Alertmanager webhook notification, payload version 4."""

    version: Literal["4"]
    group_key: str = Field(alias="groupKey")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)
    status: Literal["firing", "resolved"]
    receiver: Annotated[str, StringConstraints(max_length=255)]
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[AlertmanagerAlert] = Field(min_length=1)

    @field_validator("group_key", "receiver", "external_url")
    @classmethod
    def _storable(cls, value: str) -> str:
        _check_storable(value)
        return value


def _check_storable(value: Any) -> None:
    texts = [value] if isinstance(value, str) else []
    if isinstance(value, dict):
        texts = [*value.keys(), *value.values()]
    for text in texts:
        if isinstance(text, str) and _UNSTORABLE.search(text):
            raise ValueError("text must not contain NUL characters or lone UTF-16 surrogates")


def _utc(value: datetime) -> datetime:
    try:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("time is out of the representable range") from exc


@dataclass(frozen=True, slots=True)
class IncomingAlert:
    """One alert of a notification, normalised for storage."""

    fingerprint: str
    starts_at: datetime
    ends_at: datetime | None
    status: str
    alertname: str
    severity: str | None
    namespace: str | None
    cluster: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str

    @property
    def key(self) -> tuple[str, datetime]:
        return self.fingerprint, self.starts_at


@dataclass(frozen=True, slots=True)
class IncomingNotification:
    source: str
    receiver: str
    status: str
    group_key: str
    external_url: str
    alerts: tuple[IncomingAlert, ...]


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_alerts: int
    max_labels: int
    max_value_bytes: int


class PayloadLimitExceeded(ValueError):
    """A syntactically valid payload that exceeds a configured ingest limit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _check_limits(payload: AlertmanagerWebhook, limits: IngestLimits) -> None:
    if len(payload.alerts) > limits.max_alerts:
        raise PayloadLimitExceeded(
            "alerts",
            f"{len(payload.alerts)} alerts in one notification; the limit is "
            f"{limits.max_alerts} (webhook.max_alerts)",
        )
    for index, alert in enumerate(payload.alerts):
        for field_name, mapping in (("labels", alert.labels), ("annotations", alert.annotations)):
            if len(mapping) > limits.max_labels:
                raise PayloadLimitExceeded(
                    f"alerts.{index}.{field_name}",
                    f"{len(mapping)} {field_name}; the limit is {limits.max_labels} "
                    "(webhook.max_labels)",
                )
            for name, value in mapping.items():
                if len(name) + len(value) > limits.max_value_bytes:
                    raise PayloadLimitExceeded(
                        f"alerts.{index}.{field_name}.{name}",
                        f"value longer than {limits.max_value_bytes} bytes "
                        "(webhook.max_value_bytes)",
                    )


def normalise(payload: AlertmanagerWebhook, limits: IngestLimits) -> IncomingNotification:
    """Check limits and turn a validated webhook into storable alerts.

    Alerts repeated within one notification (same fingerprint and startsAt) collapse to
    the last one, as Alertmanager's own dedup would.
    """
    _check_limits(payload, limits)
    by_key: dict[tuple[str, datetime], IncomingAlert] = {}
    for alert in payload.alerts:
        labels = dict(alert.labels)
        incoming = IncomingAlert(
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at,
            ends_at=alert.ends_at if alert.status == "resolved" else None,
            status=alert.status,
            alertname=labels["alertname"],
            severity=labels.get("severity"),
            namespace=labels.get("namespace"),
            cluster=labels.get("cluster"),
            labels=labels,
            annotations=dict(alert.annotations),
            generator_url=alert.generator_url,
        )
        by_key[incoming.key] = incoming
    return IncomingNotification(
        source="alertmanager",
        receiver=payload.receiver,
        status=payload.status,
        group_key=payload.group_key,
        external_url=payload.external_url,
        alerts=tuple(by_key.values()),
    )
