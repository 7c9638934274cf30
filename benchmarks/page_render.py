"""Alert page benchmark: server time to render a heavy alert page.

The app runs in-process on SQLite (or ``--database-url``) with its embedded worker and the
bundled sample cluster. One alert fires ``--occurrences`` times (each firing then
resolved, the last one still firing), so the page carries a long history; every
occurrence is triaged by the real pipeline; then the latest triage's stored result is
grown to ``--evidence`` evidence items (copies of its own, cited by its findings) so the
page renders that many. The page is then requested ``--requests`` times through the ASGI
app (no network): each time the database is read, the result decoded, the presenters run
and the templates render, as for a user.

Reported: wall time per request p50/p95/p99/max, the page's size, and ``goal_met`` for
the issue's goal: p99 < 100 ms with 200 evidence items and 50 occurrences.

Usage: ``uv run python benchmarks/page_render.py [--evidence 200] [--occurrences 50]
[--requests 300]``; one JSON object on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import select, update  # noqa: E402

from oncallm.config import Settings  # noqa: E402
from oncallm.observability import configure_logging  # noqa: E402
from oncallm.samples import load_sample, sample_cluster  # noqa: E402
from oncallm.store.db import Database  # noqa: E402
from oncallm.store.models import Occurrence, TriageResult  # noqa: E402
from tests.conftest import app_client  # noqa: E402

GOAL_P99_MS = 100.0
WEBHOOK = "/api/v1/alerts/alertmanager"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _occurrence(payload: dict[str, Any], index: int, total: int) -> list[dict[str, Any]]:
    """Notifications of occurrence ``index``: firing, and resolved unless it is the last."""
    start = datetime(2026, 11, 26, 3, 5, tzinfo=UTC) - timedelta(hours=6 * (total - 1 - index))
    firing = copy.deepcopy(payload)
    for alert in firing["alerts"]:
        alert["startsAt"] = start.isoformat().replace("+00:00", "Z")
    if index == total - 1:
        return [firing]
    done = copy.deepcopy(firing)
    done["status"] = "resolved"
    for alert in done["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = (start + timedelta(minutes=40)).isoformat().replace("+00:00", "Z")
    return [firing, done]


def _grown(result: dict[str, Any], evidence: int) -> dict[str, Any]:
    """The result with ``evidence`` items: its own, repeated under new ids, all cited."""
    grown = copy.deepcopy(result)
    base = [e for e in grown["evidence"] if e["type"] != "runbook"] or grown["evidence"]
    items, n = list(grown["evidence"]), 0
    while len(items) < evidence:
        item = copy.deepcopy(base[n % len(base)])
        item["id"] = f"{item['id']}~{n}"
        items.append(item)
        n += 1
    grown["evidence"] = items[:evidence]
    ids = [e["id"] for e in grown["evidence"]]
    for position, finding in enumerate(grown["findings"]):
        finding["evidence"] = ids[position :: max(1, len(grown["findings"]))]
    return grown


async def _run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    settings = Settings.model_validate(
        {
            "database": {"url": database_url},
            "kubernetes": {"clusters": {"prod-eu-1": {"snapshot": str(sample_cluster())}}},
            "jobs": {"poll_interval_seconds": 0.05},
            "log": {"level": "WARNING"},
        }
    )
    configure_logging(settings.log)  # warnings only, on stderr: stdout is the JSON report
    payload = load_sample("02-oom.json")
    fingerprint = payload["alerts"][0]["fingerprint"]
    async with app_client(settings) as client:
        _log(f"posting {args.occurrences} occurrences…")
        for index in range(args.occurrences):
            for note in _occurrence(payload, index, args.occurrences):
                response = await client.post(WEBHOOK, json=note)
                assert response.status_code == 202, response.text
        for _ in range(600):
            detail = (await client.get(f"/api/v1/alerts/{fingerprint}")).json()
            if (detail.get("triage") or {}).get("status") == "succeeded":
                break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit("the latest occurrence was not triaged within 60 s")
        db = Database(settings.database)
        try:
            async with db.write() as conn:
                latest = (
                    await conn.execute(
                        select(Occurrence.id)
                        .where(Occurrence.fingerprint == fingerprint)
                        .order_by(Occurrence.starts_at.desc())
                        .limit(1)
                    )
                ).scalar_one()
                stored = (
                    await conn.execute(
                        select(TriageResult.result).where(TriageResult.occurrence_id == latest)
                    )
                ).scalar_one()
                await conn.execute(
                    update(TriageResult)
                    .where(TriageResult.occurrence_id == latest)
                    .values(result=_grown(stored, args.evidence))
                )
        finally:
            await db.dispose()
        path = f"/alerts/{fingerprint}"
        for _ in range(20):  # warm: template compilation, connection pool
            await client.get(path)
        times: list[float] = []
        size = 0
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(50):
                await client.get(path)
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
        for _ in range(args.requests):
            started = time.perf_counter()
            response = await client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
            size = len(response.content)
        page = response.text
    shown_evidence = page.count('class="evidence ')
    history = page.split('id="history-h"', 1)[-1].split("</table>", 1)[0]
    shown_history = history.count("<tr") - 1  # less the header row
    p99 = _percentile(times, 0.99)
    return {
        "benchmark": "page_render",
        "command": "benchmarks/page_render.py",
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "database": database_url.split(":", 1)[0],
        "evidence_items": args.evidence,
        "occurrences": args.occurrences,
        "shown": {"evidence": shown_evidence, "history_rows": shown_history},
        "requests": args.requests,
        "render_ms": {
            "p50": round(statistics.median(times), 1),
            "p95": round(_percentile(times, 0.95), 1),
            "p99": round(p99, 1),
            "max": round(max(times), 1),
        },
        "page_bytes": size,
        "goal": {"p99_ms": GOAL_P99_MS},
        "goal_met": p99 < GOAL_P99_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidence", type=int, default=200)
    parser.add_argument("--occurrences", type=int, default=50)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--profile", action="store_true", help="cProfile 50 requests to stderr")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="oncallm-bench-page-") as workdir:
        report = asyncio.run(_run(args, Path(workdir)))
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
