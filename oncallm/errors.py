"""The one exception hierarchy of OncallM.

Every error a user can meet is declared here, so the API's problem+json mapping and the
CLI's one-line messages have a single place to look. Each class carries the HTTP status
and a stable problem ``type`` slug used in ``application/problem+json`` responses.
"""

from __future__ import annotations


class OncallmError(Exception):
    """Base of every error OncallM raises on purpose."""

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ConfigError(OncallmError):
    """The configuration file or environment is invalid."""

    status = 500
    slug = "config-error"
    title = "Invalid configuration"


class NotFound(OncallmError):
    status = 404
    slug = "not-found"
    title = "Not found"


class BadRequest(OncallmError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class MalformedJson(BadRequest):
    slug = "malformed-json"
    title = "Malformed JSON"


class UnsupportedMediaType(OncallmError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class Unauthorized(OncallmError):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"


class StorageUnavailable(OncallmError):
    """The database cannot be reached or is not migrated."""

    status = 503
    slug = "storage-unavailable"
    title = "Storage unavailable"


class LeaseLost(OncallmError):
    """A worker no longer owns the job it was running (lease expired and re-claimed)."""

    status = 409
    slug = "lease-lost"
    title = "Job lease lost"


class SourceError(OncallmError):
    """A cluster or metrics source could not answer a read; triage records it as a gap."""

    status = 502
    slug = "source-error"
    title = "Source unavailable"


class SnapshotError(OncallmError):
    """A snapshot directory is missing or holds something that is not a Kubernetes object."""

    status = 400
    slug = "invalid-snapshot"
    title = "Invalid snapshot"


class LLMError(OncallmError):
    """A model call failed; the triage keeps its deterministic result and records this."""

    status = 502
    slug = "llm-error"
    title = "LLM unavailable"


class LLMUnavailable(LLMError):
    """The provider's circuit breaker is open: recent calls failed, so none is attempted."""

    slug = "llm-unavailable"
    title = "LLM provider unavailable"


class LLMBudgetExceeded(LLMError):
    """The per-triage or daily token budget does not allow another call."""

    status = 429
    slug = "llm-budget-exceeded"
    title = "LLM token budget exceeded"


class LLMInvalidAnswer(LLMError):
    """The model's answer could not be read as the required structure."""

    slug = "llm-invalid-answer"
    title = "LLM answer invalid"
