"""Dependencies named in env values and error logs map to the right in-cluster Services."""

from __future__ import annotations

import pytest

from oncallm.sources.base import ObjectRef
from oncallm.triage.dependencies import (
    hosts_in_env,
    hosts_in_log_line,
    hosts_in_value,
    service_ref_for,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("dial tcp 10.96.3.4:5432: connect: connection refused", [("10.96.3.4", 5432)]),
        ("Error: connect ECONNREFUSED postgres:5432", [("postgres", 5432)]),
        (
            'could not translate host name "postgres" to address: Name or service not known',
            [("postgres", None)],
        ),
        (
            "dial tcp: lookup payments.billing.svc.cluster.local on 10.96.0.10:53: no such host",
            [("payments.billing.svc.cluster.local", None)],
        ),
        (
            'connection refused Is the server running on host "postgres" (10.0.0.1) and '
            "accepting TCP/IP connections on port 5432?",
            [("postgres", 5432)],
        ),
        ('File "/app/main.py", line 3, in <module>', []),
    ],
)
def test_hosts_in_error_lines(line: str, expected: list[tuple[str, int | None]]) -> None:
    assert [(h.host, h.port) for h in hosts_in_log_line(line)] == expected


def test_hosts_in_env_values_ignore_credentials() -> None:
    found = list(hosts_in_value("postgres://app:s3cret@postgres.data:5432/shop?sslmode=disable"))
    assert [(h.host, h.port) for h in found] == [("postgres.data", 5432)]
    assert list(hosts_in_value("info")) == []
    assert [h.host for h in hosts_in_value("redis-master.cache.svc")] == ["redis-master.cache.svc"]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("postgres", ObjectRef("Service", "shop", "postgres")),
        ("postgres.data", ObjectRef("Service", "data", "postgres")),
        ("postgres.data.svc", ObjectRef("Service", "data", "postgres")),
        ("postgres.data.svc.cluster.local", ObjectRef("Service", "data", "postgres")),
        ("db.example.com", None),
        ("10.96.3.4", None),
    ],
)
def test_service_dns_names(host: str, expected: ObjectRef | None) -> None:
    assert service_ref_for(host, "shop") == expected


def test_timestamps_are_not_hosts() -> None:
    line = "2026-11-26T03:10:54.120Z ERROR 03:14:29 request failed: upstream timeout"
    assert list(hosts_in_log_line(line)) == []
    assert [
        (h.host, h.port) for h in hosts_in_log_line("T03:10:54 dial tcp db-1:5432: i/o timeout")
    ] == [("db-1", 5432)]


def test_python_socket_address_tuples_are_hosts() -> None:
    line = "OSError: [Errno 111] Connect call failed ('10.0.131.17', 5432)"
    assert [(h.host, h.port) for h in hosts_in_log_line(line)] == [("10.0.131.17", 5432)]


def test_bare_hosts_in_host_variables_take_their_port_sibling() -> None:
    env = [("DB_HOST", "postgres"), ("DB_PORT", "5432"), ("LOG_LEVEL", "info"),
           ("CACHE_ADDR", "redis-master.cache"), ("FEATURE_SERVICE", "true1")]  # fmt: skip
    found = [(name, h.host, h.port) for name, h in hosts_in_env(env)]
    assert ("DB_HOST", "postgres", 5432) in found
    assert ("CACHE_ADDR", "redis-master.cache", None) in found
    assert all(name != "LOG_LEVEL" for name, _h, _p in found)


def test_public_names_are_not_services() -> None:
    assert service_ref_for("example.com", "shop") is None
    assert service_ref_for("billing.internal", "shop") is None
    assert service_ref_for("postgres.data", "shop") == ObjectRef("Service", "data", "postgres")
