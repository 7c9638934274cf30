"""Logging and metrics: structlog configuration and the Prometheus metrics OncallM exports.

Logs are JSON for collectors or readable for terminals, and always carry the request id
bound by the API middleware. Metrics live in one registry so `/metrics` and tests read the
same numbers; names follow Prometheus conventions (`oncallm_` prefix, `_total` counters).
"""

from __future__ import annotations

import logging
import sys

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from oncallm.config import LogSettings

# `_created` series double the exposition for no use on dashboards.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)

NOTIFICATIONS_RECEIVED = Counter(
    "oncallm_notifications_received",
    "Alert notifications accepted, by source.",
    ["source"],
    registry=REGISTRY,
)
NOTIFICATIONS_REJECTED = Counter(
    "oncallm_notifications_rejected",
    "Alert notifications refused, by reason.",
    ["reason"],
    registry=REGISTRY,
)
OCCURRENCES_CREATED = Counter(
    "oncallm_occurrences_created",
    "New alert occurrences (fingerprint, startsAt) stored.",
    registry=REGISTRY,
)
DUPLICATES_ABSORBED = Counter(
    "oncallm_duplicates_absorbed",
    "Resent notifications or alerts that changed nothing, by kind.",
    ["kind"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "oncallm_triage_queue_depth",
    "Triage jobs by status, read from the database at scrape time.",
    ["status"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "oncallm_triage_job_duration_seconds",
    "Time a worker spent on one triage job attempt, by outcome.",
    ["outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
JOB_OUTCOMES = Counter(
    "oncallm_triage_jobs_finished",
    "Triage job attempts by outcome (succeeded, retried, failed, lease_lost).",
    ["outcome"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "oncallm_http_request_duration_seconds",
    "HTTP request latency by route template, method and status code.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)

LLM_CALLS = Counter(
    "oncallm_llm_calls",
    "Model requests by provider, model and outcome (ok, error, refused, cached).",
    ["provider", "model", "outcome"],
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "oncallm_llm_tokens",
    "Tokens as the provider reported them, by provider, model and kind (prompt, completion).",
    ["provider", "model", "kind"],
    registry=REGISTRY,
)
LLM_COST = Counter(
    "oncallm_llm_cost_usd",
    "Estimated spend in US dollars from the price table, by provider and model.",
    ["provider", "model"],
    registry=REGISTRY,
)
LLM_LATENCY = Histogram(
    "oncallm_llm_request_duration_seconds",
    "Time one triage spent reasoning with the model (all its calls), by provider and model.",
    ["provider", "model"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
    registry=REGISTRY,
)
LLM_REDACTIONS = Counter(
    "oncallm_llm_redactions",
    "Values replaced by placeholders before a prompt left OncallM, by kind.",
    ["kind"],
    registry=REGISTRY,
)

log = structlog.get_logger("oncallm")


def configure_logging(settings: LogSettings) -> None:
    """Route structlog (and stdlib logging, e.g. uvicorn's) through one renderer."""
    fmt = settings.format
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.level)
    # uvicorn's access log would repeat every request without the request id; ours has it.
    logging.getLogger("uvicorn.access").handlers = []
    logging.getLogger("uvicorn.access").propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # HTTP clients log every request at INFO (each Kubernetes read of each triage); their
    # warnings still come through, our own logs say what a triage read and what failed.
    for name in ("httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
