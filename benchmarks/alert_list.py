"""Alert list benchmark: server time to render `/alerts` over a large alert history.

For each backend (SQLite in a temporary directory, PostgreSQL as a fresh database on a
private cluster started by ``tests.support.services``) this migrates a database, inserts
``--occurrences`` occurrences (about one in ten firing, over 8 clusters, 60 namespaces, 40
alertnames and 4 severities), each with a succeeded triage whose stored result carries a
root cause and ``--evidence`` evidence items (so reading whole results would show), and
then requests the page in-process (ASGI, lifespan running, embedded worker off) ``--repeat``
times per scenario: the first page at the default 50 rows and at 200 rows, a namespace
filter, a text search, a page deep in the resolved history (Older cursor), and a Newer
page back from it. Reported per scenario: rows shown, p50/p99/max milliseconds. For
PostgreSQL, the plan of the first page's firing query is checked to use the
(status, starts_at, id) index (``uses_list_index``).

Goal (issue 6, item 2): 200 rows render fast; we take p99 < 100 ms at 20,000 occurrences.

Usage: ``uv run python benchmarks/alert_list.py [--occurrences 20000] [--repeat 30]
[--backend sqlite|postgresql|both]``; one JSON object on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import platform
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from oncallm.config import LogSettings  # noqa: E402
from oncallm.observability import configure_logging  # noqa: E402
from oncallm.store import migrate  # noqa: E402
from oncallm.store.db import Database  # noqa: E402
from oncallm.store.models import Notification, Occurrence, TriageJob, TriageResult  # noqa: E402
from tests.conftest import app_client, make_settings  # noqa: E402
from tests.support.services import postgres_server  # noqa: E402

ROW = re.compile(r'<a class="al-name" href="/alerts/')
SEVERITIES = ("critical", "warning", "warning", "info")


def _result(rng: random.Random, evidence: int) -> dict[str, Any]:
    items = [
        {
            "id": f"event:{i}",
            "type": "event",
            "resource": {"kind": "Pod", "namespace": "shop", "name": f"api-{i}"},
            "excerpt": "Back-off restarting failed container api in pod " * 3,
            "source": "kubernetes",
        }
        for i in range(evidence)
    ]
    return {
        "schema": "oncallm.triage/v1",
        "status": "completed",
        "root_cause": {
            "category": rng.choice(["OOMKilled", "CrashLoop", "ConfigError", "ImagePull"]),
            "summary": "The container ran out of memory at its 512Mi limit.",
            "resource": {"kind": "Deployment", "namespace": "shop", "name": "api"},
            "confidence": 0.9,
            "evidence": ["event:0"],
        },
        "evidence": items,
    }


async def _seed(db: Database, count: int, evidence: int) -> None:
    rng = random.Random(6)
    now = datetime.now(UTC)
    async with db.write() as conn:
        await conn.execute(
            insert(Notification).values(
                id=1, content_sha256="0" * 64, source="alertmanager", received_at=now,
                receiver="oncallm", status="firing", group_key="{}", external_url="",
                alert_count=count, body="{}",
            )
        )  # fmt: skip
        for start in range(0, count, 1000):
            occurrences, jobs, results = [], [], []
            for i in range(start + 1, min(start + 1000, count) + 1):
                firing = rng.random() < 0.1
                starts = now - timedelta(minutes=rng.randrange(60 * 24 * 90))
                labels = {
                    "alertname": f"Alert{rng.randrange(40)}",
                    "namespace": f"ns-{rng.randrange(60)}",
                    "cluster": f"cluster-{rng.randrange(8)}",
                    "severity": rng.choice(SEVERITIES),
                    "pod": f"pod-{i}",
                }
                occurrences.append(
                    {
                        "id": i, "fingerprint": f"{i:016x}", "starts_at": starts,
                        "ends_at": None if firing else starts + timedelta(minutes=30),
                        "status": "firing" if firing else "resolved",
                        "alertname": labels["alertname"], "severity": labels["severity"],
                        "namespace": labels["namespace"], "cluster": labels["cluster"],
                        "labels": labels, "annotations": {"summary": f"Something on pod-{i}"},
                        "generator_url": "", "receiver": "oncallm", "group_key": "{}",
                        "external_url": "", "first_notification_id": 1,
                        "last_notification_id": 1, "created_at": starts, "updated_at": starts,
                    }
                )  # fmt: skip
                jobs.append(
                    {
                        "id": i, "occurrence_id": i, "status": "succeeded", "step": "done",
                        "attempts": 1, "max_attempts": 3, "run_after": starts,
                        "created_at": starts, "finished_at": starts, "updated_at": starts,
                    }
                )  # fmt: skip
                results.append(
                    {
                        "id": i, "job_id": i, "occurrence_id": i, "worker": "bench",
                        "created_at": starts, "targets": [], "result": _result(rng, evidence),
                    }
                )  # fmt: skip
            await conn.execute(insert(Occurrence), occurrences)
            await conn.execute(insert(TriageJob), jobs)
            await conn.execute(insert(TriageResult), results)
    if db.url.startswith("postgresql"):
        async with db.write() as conn:
            await conn.execute(text("ANALYZE"))


async def _plan(db: Database) -> str:
    query = (
        "EXPLAIN SELECT id FROM occurrences WHERE status = 'firing' "
        "ORDER BY starts_at DESC, id DESC LIMIT 51"
    )
    async with db.read() as conn:
        return "\n".join(row[0] for row in (await conn.execute(text(query))).all())


async def _timed(client: httpx.AsyncClient, path: str, repeat: int) -> dict[str, Any]:
    times, page = [], ""
    for _ in range(repeat):
        began = time.perf_counter()
        response = await client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (path, response.status_code)
        page = response.text
    times.sort()
    return {
        "rows": len(ROW.findall(page)),
        "p50_ms": round(statistics.median(times), 1),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 1),
        "max_ms": round(times[-1], 1),
        "_page": page,
    }


def _link(page: str, rel: str) -> str:
    found = re.search(rf'<a rel="{rel}" href="([^"]+)">', page)
    assert found, rel
    return html.unescape(found.group(1))


async def _run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    settings = make_settings(url, server={"embedded_worker": False})
    db = Database(settings.database)
    try:
        await migrate.upgrade(db)
        began = time.perf_counter()
        await _seed(db, args.occurrences, args.evidence)
        print(f"seeded in {time.perf_counter() - began:.1f}s", file=sys.stderr)
        plan = await _plan(db) if url.startswith("postgresql") else ""
    finally:
        await db.dispose()
    out: dict[str, Any] = {}
    async with app_client(settings) as client:
        await client.get("/alerts")  # warm-up: template compile, connection pool
        scenarios = {
            "first_page_50": "/alerts",
            "first_page_200": "/alerts?limit=200",
            "namespace_filter_200": "/alerts?namespace=ns-7&limit=200",
            "search_200": "/alerts?q=pod-12&limit=200",
        }
        for name, path in scenarios.items():
            out[name] = await _timed(client, path, args.repeat)
        # Deep in the resolved history: follow Older ten times from the first page.
        page, path = out["first_page_200"]["_page"], ""
        for _ in range(10):
            path = _link(page, "next")
            page = (await client.get(path)).text
        out["deep_older_200"] = await _timed(client, path, args.repeat)
        out["deep_newer_200"] = await _timed(
            client, _link(out["deep_older_200"]["_page"], "prev"), args.repeat
        )
    for result in out.values():
        result.pop("_page")
    if plan:
        out["uses_list_index"] = "ix_occurrences_status_starts_at_id" in plan
        out["plan"] = plan
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--occurrences", type=int, default=20_000)
    parser.add_argument("--evidence", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    configure_logging(LogSettings(format="json", level="WARNING"))  # stdout is the report
    report: dict[str, Any] = {
        "benchmark": "alert_list",
        "occurrences": args.occurrences,
        "evidence_per_result": args.evidence,
        "repeat": args.repeat,
        "python": platform.python_version(),
        "goal": "p99 < 100 ms for 200 rows",
    }
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            print("sqlite ...", file=sys.stderr)
            report["sqlite"] = await _run(f"sqlite+aiosqlite:///{tmp}/bench.db", args)
    if args.backend in ("postgresql", "both"):
        with postgres_server() as server:
            print("postgresql ...", file=sys.stderr)
            name = f"bench_{uuid.uuid4().hex[:8]}"
            report["postgresql"] = await _run(server.create_database(name), args)
    backends = [report[b] for b in ("sqlite", "postgresql") if b in report]
    report["goal_met"] = all(
        r[s]["p99_ms"] < 100 for r in backends for s in r if s.endswith("_200")
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
