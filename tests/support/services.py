"""Real services for tests: a private PostgreSQL cluster and `oncallm` processes.

Everything runs on loopback, on free ports, in temporary directories, and is stopped by
the fixture that started it. In CI (``CI=true``) a missing service binary is a failure;
on a developer machine it skips with the command that installs it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
        path = candidates[-1] if candidates else None
    if path is None:
        message = f"{name} not found: install the Debian package {package} (make test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


# --- PostgreSQL ----------------------------------------------------------------------


@dataclass
class PostgresServer:
    port: int
    pg_ctl: str = ""
    data_dir: Path = Path()
    options: str = ""
    run_as: tuple[str, ...] = ()
    user: str = "oncallm"
    password: str = "oncallm-test"

    def start(self) -> None:
        subprocess.run(
            [
                *self.run_as,
                self.pg_ctl,
                "-D",
                str(self.data_dir),
                "-o",
                self.options,
                "-l",
                str(self.data_dir.parent / "log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def stop(self) -> None:
        """Stop at once, as a crash or a failover would (no checkpoint, connections cut)."""
        subprocess.run(
            [*self.run_as, self.pg_ctl, "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        self._psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _psql(self, sql: str) -> None:
        env = {**os.environ, "PGPASSWORD": self.password}
        subprocess.run(
            [
                shutil.which("psql") or "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-qc",
                sql,
            ],
            check=True,
            env=env,
            capture_output=True,
            timeout=60,
        )


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root; drop to the Debian package's `postgres` user."""
    if os.geteuid() != 0:
        return []
    pwd.getpwnam("postgres")  # created by the postgresql package
    return ["runuser", "-u", "postgres", "--"]


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    initdb = require_binary("initdb", "postgresql")
    pg_ctl = require_binary("pg_ctl", "postgresql")
    base = Path(tempfile.mkdtemp(prefix="oncallm-pg-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    prefix = _as_postgres_user()
    if prefix:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
        base.chmod(0o700)
    server = PostgresServer(port=free_port(), pg_ctl=pg_ctl, data_dir=data, run_as=tuple(prefix))
    pwfile = base / "pw"
    pwfile.write_text(server.password)
    if prefix:
        shutil.chown(pwfile, "postgres")
    subprocess.run(
        [
            *prefix,
            initdb,
            "-D",
            str(data),
            "-U",
            server.user,
            "--pwfile",
            str(pwfile),
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server.options = (
        f"-p {server.port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c max_connections=200 -c shared_buffers=64MB"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# --- oncallm processes -----------------------------------------------------------------


def oncallm_env(database_url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONCALLM_")}
    env["ONCALLM_DATABASE__URL"] = database_url
    env["ONCALLM_LOG__FORMAT"] = "json"
    for key, value in settings.items():
        env[f"ONCALLM_{key.upper()}"] = value
    return env


@dataclass
class OncallmProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def run_oncallm(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one `oncallm` command to completion, as a user would from a shell."""
    return subprocess.run(
        [sys.executable, "-m", "oncallm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def start_oncallm(args: list[str], env: dict[str, str], log_dir: Path) -> OncallmProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"oncallm-{args[0]}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "oncallm", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=log_dir,
        )
    return OncallmProcess(process=process, log_path=log_path)


def start_server(env: dict[str, str], log_dir: Path, *extra: str) -> OncallmProcess:
    port = free_port()
    server = start_oncallm(["serve", "--port", str(port), *extra], env, log_dir)
    server.port = port
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"oncallm serve exited early:\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                return server
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise TimeoutError(f"oncallm serve did not become healthy:\n{server.log()}")
