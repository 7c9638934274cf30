"""A real Prometheus serving generated history: OpenMetrics → promtool backfill → TSDB.

Tests that need metrics *around an alert* cannot wait hours for a scrape to produce them,
so the series are written as OpenMetrics text, turned into TSDB blocks by
``promtool tsdb create-blocks-from openmetrics`` and served by ``prometheus`` (the Debian
package) with a 100-year retention, so a fixed past time stays queryable. Nothing is
scraped: the answers are exactly the generated points.

Typical use::

    series = [*memory_ramp(SCENARIO_END), *cpu_throttling(SCENARIO_END)]
    with backfilled_prometheus(tmp_path, series) as prom:
        ...  # PrometheusSettings(url=prom.url)
        prom.stop()  # Prometheus down mid-test: queries get "connection refused"
        prom.start()  # back on the same port, with the same data

The three scenario generators (:func:`memory_ramp`, :func:`cpu_throttling`,
:func:`filling_volume`) produce the series kube-prometheus-stack would hold for each
failure, with the standard metric names and labels, at 30 s resolution over the two
hours ending at ``end``; their module constants name the objects and values so a test
can assert on them without recomputing. :func:`all_scenarios` is all three.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import ssl
import subprocess
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from tests.support.monitoring import ServiceProcess, _run_check, _start, wait_until_ready
from tests.support.services import free_port, require_binary

# A fixed past time: the series end here, whatever day the suite runs.
SCENARIO_END = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
RESOLUTION = timedelta(seconds=30)
SPAN = timedelta(hours=2)
MIB = 1024 * 1024
GIB = 1024 * MIB

# (a) memory ramp: container cart of pod cart-7d9c6b5f4-x2x9q in namespace shop.
MEMORY_LABELS = {"namespace": "shop", "pod": "cart-7d9c6b5f4-x2x9q", "container": "cart"}
MEMORY_START_BYTES = 200 * MIB
MEMORY_LIMIT_BYTES = 512 * MIB
MEMORY_OOM_BEFORE_END = timedelta(minutes=30)  # the working set hits the limit here
# (b) CPU throttling: container pricing-engine, limit 0.5 cores, using ~0.49.
CPU_LABELS = {
    "namespace": "pricing",
    "pod": "pricing-engine-769488689f-6vmzk",
    "container": "pricing-engine",
}
CPU_LIMIT_CORES = 0.5
CPU_USAGE_CORES = 0.49
CPU_THROTTLED_RATIO = 0.7
CFS_PERIODS_PER_SECOND = 10  # the kernel's default CFS period is 100 ms
# (c) filling volume: PVC pg-data-0 in namespace data.
VOLUME_LABELS = {"namespace": "data", "persistentvolumeclaim": "pg-data-0"}
VOLUME_CAPACITY_BYTES = 10 * GIB
VOLUME_START_BYTES = 6 * GIB
VOLUME_END_BYTES = round(9.6 * GIB)


@dataclass(frozen=True)
class OpenMetricsSeries:
    """One series: its metric name, labels and ``(unix seconds, value)`` points.

    For a counter, ``name`` may be given with or without ``_total``: the family is
    written without it and the samples with it, as OpenMetrics requires.
    """

    name: str
    labels: Mapping[str, str]
    points: Sequence[tuple[float, float]]
    type: Literal["gauge", "counter"] = "gauge"

    @property
    def family(self) -> str:
        return self.name.removesuffix("_total") if self.type == "counter" else self.name

    @property
    def sample_name(self) -> str:
        return f"{self.family}_total" if self.type == "counter" else self.name


def timestamps(end: datetime = SCENARIO_END) -> list[float]:
    """Every 30 s over the two hours ending at ``end``, both ends included (241 points)."""
    start = end - SPAN
    count = int(SPAN / RESOLUTION)
    return [(start + i * RESOLUTION).timestamp() for i in range(count + 1)]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_openmetrics(series: Iterable[OpenMetricsSeries]) -> str:
    """OpenMetrics text of ``series``: families grouped, ``# TYPE`` lines, ``# EOF``."""
    families: dict[str, list[OpenMetricsSeries]] = {}
    kinds: dict[str, str] = {}
    for one in series:
        if kinds.setdefault(one.family, one.type) != one.type:
            raise ValueError(f"{one.family} is both a {kinds[one.family]} and a {one.type}")
        families.setdefault(one.family, []).append(one)
    lines = []
    for family, members in families.items():
        lines.append(f"# TYPE {family} {kinds[family]}")
        for one in members:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(one.labels.items()))
            selector = f"{one.sample_name}{{{labels}}}" if labels else one.sample_name
            for ts, value in sorted(one.points):
                lines.append(f"{selector} {_number(value)} {_number(ts)}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


# --- the three scenarios of issue 5 --------------------------------------------------------


def memory_oom_time(end: datetime = SCENARIO_END) -> float:
    """When :func:`memory_ramp` reaches the limit and the container is OOM-killed."""
    return (end - MEMORY_OOM_BEFORE_END).timestamp()


def memory_value(ts: float, end: datetime = SCENARIO_END) -> float:
    """The working set :func:`memory_ramp` records at ``ts`` (whole bytes).

    It climbs linearly from 200 MiB at the start to the 512 MiB limit 30 minutes before
    ``end``; the restarted container starts again at 200 MiB and climbs at the same slope.
    """
    start, oom = (end - SPAN).timestamp(), memory_oom_time(end)
    slope = (MEMORY_LIMIT_BYTES - MEMORY_START_BYTES) / (oom - start)
    since = ts - start if ts <= oom else ts - oom - RESOLUTION.total_seconds()
    return float(round(MEMORY_START_BYTES + slope * since))


def memory_ramp(end: datetime = SCENARIO_END) -> list[OpenMetricsSeries]:
    """(a) A leak: ``container_memory_working_set_bytes`` climbing to its 512 MiB limit,
    an OOM kill (drop to 200 MiB, then climbing again), the restart counter stepping from
    0 to 1 at the kill, and the limit as kube-state-metrics reports it."""
    times = timestamps(end)
    oom = memory_oom_time(end)
    pod = dict(MEMORY_LABELS)
    limit_labels = {**pod, "resource": "memory", "unit": "byte"}
    return [
        OpenMetricsSeries(
            "container_memory_working_set_bytes", pod, [(t, memory_value(t, end)) for t in times]
        ),
        OpenMetricsSeries(
            "kube_pod_container_status_restarts_total",
            pod,
            [(t, 0.0 if t <= oom else 1.0) for t in times],
            type="counter",
        ),
        OpenMetricsSeries(
            "kube_pod_container_resource_limits",
            limit_labels,
            [(t, float(MEMORY_LIMIT_BYTES)) for t in times],
        ),
    ]


def cpu_throttling(end: datetime = SCENARIO_END) -> list[OpenMetricsSeries]:
    """(b) A container at its CPU limit: ``container_cpu_usage_seconds_total`` growing at
    0.49 cores against a 0.5 core limit, and 70 % of its CFS periods throttled
    (``container_cpu_cfs_throttled_periods_total`` / ``container_cpu_cfs_periods_total``)."""
    times = timestamps(end)
    first = times[0]
    pod = dict(CPU_LABELS)
    periods = [(t, (t - first) * CFS_PERIODS_PER_SECOND) for t in times]
    return [
        OpenMetricsSeries(
            "container_cpu_usage_seconds_total",
            pod,
            [(t, round((t - first) * CPU_USAGE_CORES, 3)) for t in times],
            type="counter",
        ),
        OpenMetricsSeries("container_cpu_cfs_periods_total", pod, periods, type="counter"),
        OpenMetricsSeries(
            "container_cpu_cfs_throttled_periods_total",
            pod,
            [(t, round(p * CPU_THROTTLED_RATIO)) for t, p in periods],
            type="counter",
        ),
        OpenMetricsSeries(
            "kube_pod_container_resource_limits",
            {**pod, "resource": "cpu", "unit": "core"},
            [(t, CPU_LIMIT_CORES) for t in times],
        ),
    ]


def volume_used(ts: float, end: datetime = SCENARIO_END) -> float:
    """The bytes :func:`filling_volume` records as used at ``ts``: 6 GiB → 9.6 GiB, linear."""
    start, stop = (end - SPAN).timestamp(), end.timestamp()
    share = (ts - start) / (stop - start)
    return float(round(VOLUME_START_BYTES + share * (VOLUME_END_BYTES - VOLUME_START_BYTES)))


def filling_volume(end: datetime = SCENARIO_END) -> list[OpenMetricsSeries]:
    """(c) A PVC filling up: ``kubelet_volume_stats_used_bytes`` rising to 9.6 of its
    10 GiB ``kubelet_volume_stats_capacity_bytes``, with ``..._available_bytes`` the rest."""
    times = timestamps(end)
    pvc = dict(VOLUME_LABELS)
    capacity = float(VOLUME_CAPACITY_BYTES)
    return [
        OpenMetricsSeries(
            "kubelet_volume_stats_capacity_bytes", pvc, [(t, capacity) for t in times]
        ),
        OpenMetricsSeries(
            "kubelet_volume_stats_used_bytes", pvc, [(t, volume_used(t, end)) for t in times]
        ),
        OpenMetricsSeries(
            "kubelet_volume_stats_available_bytes",
            pvc,
            [(t, capacity - volume_used(t, end)) for t in times],
        ),
    ]


def all_scenarios(end: datetime = SCENARIO_END) -> list[OpenMetricsSeries]:
    """The memory ramp, the throttled container and the filling volume together."""
    return [*memory_ramp(end), *cpu_throttling(end), *filling_volume(end)]


# --- TLS and basic auth for Prometheus' --web.config.file ----------------------------------


@dataclass(frozen=True)
class LocalCA:
    """A throwaway CA, a server certificate it signed for 127.0.0.1 / localhost, and a
    client certificate (CN ``oncallm``) for mutual TLS."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def context(self, *, client: bool = False) -> ssl.SSLContext:
        """Trusts the CA; with ``client``, also presents the client certificate."""
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        if client:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def make_test_ca(directory: Path) -> LocalCA:
    """Generate the CA, server and client certificates with the ``openssl`` CLI (EC keys:
    fast). The server's names 127.0.0.1 and localhost; the client's is for mutual TLS."""
    openssl = require_binary("openssl", "openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run_check(
        [
            openssl, "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_cert),
            "-days", "2", "-subj", "/CN=OncallM test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ]
    )  # fmt: skip
    for who, subject, usage in (
        ("server", "/CN=127.0.0.1", "serverAuth"),
        ("client", "/CN=oncallm", "clientAuth"),
    ):
        key, csr, cert = (directory / f"{who}.{ext}" for ext in ("key", "csr", "crt"))
        _run_check([openssl, "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", subject])
        extensions = directory / f"{who}.ext"
        extensions.write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            f"extendedKeyUsage={usage}\n"
        )
        _run_check(
            [
                openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_cert),
                "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert), "-days", "2",
                "-extfile", str(extensions),
            ]
        )  # fmt: skip
    return LocalCA(
        ca_cert=ca_cert,
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash for ``basic_auth_users``: the stdlib ``crypt`` module (libxcrypt) when it
    can, else ``htpasswd`` from apache2-utils. Cost 4, the minimum: this is a test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crypt leaves in Python 3.13
        try:
            import crypt

            hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
        except (ImportError, OSError, ValueError):
            hashed = None
    if hashed and hashed.startswith("$2"):
        return hashed
    htpasswd = require_binary("htpasswd", "apache2-utils")
    done = subprocess.run(
        [htpasswd, "-nbBC", "4", "oncallm", password], capture_output=True, text=True, check=True
    )
    return done.stdout.strip().partition(":")[2]


# --- the server --------------------------------------------------------------------------


@dataclass
class BackfilledPrometheus:
    """A Prometheus on a fixed loopback port over a backfilled TSDB; stop and start at will.

    ``url`` is what a client configures (scheme, port and route prefix); ``ready_verify``
    and ``ready_auth`` are what this helper itself needs to see it ready.
    """

    command: list[str]
    workdir: Path
    port: int
    scheme: str = "http"
    route_prefix: str = ""
    ready_verify: ssl.SSLContext | bool = True
    ready_auth: tuple[str, str] | None = None
    service: ServiceProcess | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{self.route_prefix}"

    @property
    def running(self) -> bool:
        return self.service is not None and self.service.process.poll() is None

    def start(self) -> None:
        """Start (again) on the same port and data directory, and wait until it is ready."""
        if self.running:
            return
        self.service = _start("prometheus", self.command, self.workdir, self.port)
        wait_until_ready(
            self.service,
            ready_url=f"{self.url}/-/ready",
            verify=self.ready_verify,
            auth=self.ready_auth,
        )

    def stop(self) -> None:
        """Stop it; clients now meet a refused connection on its port."""
        if self.service is not None:
            self.service.stop()

    def log_tail(self) -> str:
        return self.service.log_tail() if self.service else "(never started)"


def backfill(workdir: Path, series: Iterable[OpenMetricsSeries]) -> Path:
    """Write ``series`` as OpenMetrics and turn them into TSDB blocks; the data directory."""
    promtool = require_binary("promtool", "prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    source, data = workdir / "series.om.txt", workdir / "data"
    source.write_text(render_openmetrics(series))
    _run_check([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)])
    return data


@contextlib.contextmanager
def backfilled_prometheus(
    workdir: Path,
    series: Iterable[OpenMetricsSeries] = (),
    *,
    route_prefix: str = "",
    web_config: Mapping[str, object] | None = None,
    tls: LocalCA | None = None,
    ready_client_cert: bool = False,
    ready_auth: tuple[str, str] | None = None,
) -> Iterator[BackfilledPrometheus]:
    """A running Prometheus serving ``series`` (default: :func:`all_scenarios`).

    ``route_prefix`` (``/prom``) serves everything below it, as behind a path-routing
    proxy; ``web_config`` is Prometheus' ``--web.config.file`` (``basic_auth_users``,
    ``tls_server_config``), checked with ``promtool check web-config``; pass the ``tls``
    CA whose files it names, and ``ready_client_cert`` / ``ready_auth`` when it requires
    them, so that readiness can be seen.
    """
    binary = require_binary("prometheus", "prometheus")
    promtool = require_binary("promtool", "prometheus")
    series = list(series) or all_scenarios()
    data = backfill(workdir, series)
    config = workdir / "prometheus.yml"
    config.write_text(json.dumps({"global": {"scrape_interval": "1m"}, "scrape_configs": []}))
    _run_check([promtool, "check", "config", str(config)])
    port = free_port()
    scheme = "https" if tls else "http"
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        "--storage.tsdb.retention.time=100y",  # keep the fixed past time queryable
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url={scheme}://127.0.0.1:{port}{route_prefix}/",
    ]
    if route_prefix:
        command.append(f"--web.route-prefix={route_prefix}")
    if web_config is not None:
        web_path = workdir / "web.yml"
        web_path.write_text(json.dumps(web_config, indent=2))
        _run_check([promtool, "check", "web-config", str(web_path)])
        command.append(f"--web.config.file={web_path}")
    server = BackfilledPrometheus(
        command=command,
        workdir=workdir,
        port=port,
        scheme=scheme,
        route_prefix=route_prefix,
        ready_verify=tls.context(client=ready_client_cert) if tls else True,
        ready_auth=ready_auth,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
