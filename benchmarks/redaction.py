"""Redaction benchmark: time to redact a 200 KB container log before it goes to a model.

The log is synthetic but shaped like real ones: klog lines from a controller, JSON
application logs, nginx access lines with client IPs, Go stack traces and Java-style
exceptions, with a planted secret or personal value in about one line in fifty (from
``tests.support.planted_secrets``). Each configuration is run ``--repeat`` times on a
fresh ``Redactor``; the median and best wall times are reported.

Configurations: the default Redactor; ``ips=True`` with the names of the alert's
neighbourhood (6 names, found on nearly every line, so thousands of replacements); and
the same with 500 more object names (``llm.redact_object_names`` on a large namespace).

Goal (issue 4, item 6): a 200 KB log redacts in well under 50 ms (default and options).

Usage: ``uv run python benchmarks/redaction.py [--kib 200] [--repeat 15]``; one JSON
object on stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from oncallm.llm.redaction import Redactor  # noqa: E402
from tests.support.planted_secrets import log_lines  # noqa: E402

LINES = (
    'I0115 10:23:{s:02d}.{us:06d}       1 controller.go:{n}] "Syncing" deployment="shop/api" '
    'resourceVersion="{rv}" generation={g}',
    '{{"ts":"2024-01-15T10:23:{s:02d}.{ms:03d}Z","level":"info","msg":"handled request",'
    '"method":"GET","path":"/api/v1/orders/{n}","status":200,"duration_ms":{g},'
    '"trace_id":"4bf92f3577b34da6a3ce929d0e0e{n:04d}","pod":"api-7d9f8b6c5-x2x4z"}}',
    '10.244.{g}.{s} - - [15/Jan/2024:10:23:{s:02d} +0000] "GET /healthz HTTP/1.1" 200 2 "-" '
    '"kube-probe/1.28" {ms}',
    "2024-01-15 10:23:{s:02d},{ms:03d} ERROR [pool-{g}-thread-{s}] o.h.e.j.s.SqlExceptionHelper - "
    'FATAL: password authentication failed for user "app" (pid {rv})',
    "goroutine {n} [running]:\nmain.(*Server).handle(0xc000{rv:06x}, {{0x1a2b3c, 0x{n:x}}})\n"
    "\t/app/server.go:{g} +0x{ms:x}",
    "W0115 10:23:{s:02d}.{us:06d}       1 reflector.go:{n}] failed to list *v1.Secret: "
    'secrets is forbidden: User "system:serviceaccount:shop:api" cannot list resource '
    '"secrets" in API group "" in the namespace "shop"',
    'level=warn ts=2024-01-15T10:23:{s:02d}Z caller=main.go:{n} msg="retrying" attempt={g} '
    "backoff=1.{ms}s limit=512Mi requests.cpu=250m image=registry.example.com/shop/api:v1.28.3",
)


def synthetic_log(kib: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    planted = log_lines()
    lines: list[str] = []
    size = 0
    while size < kib * 1024:
        if rng.random() < 0.02:
            line = rng.choice(planted)
        else:
            line = rng.choice(LINES).format(
                s=rng.randrange(60),
                us=rng.randrange(10**6),
                ms=rng.randrange(1000),
                n=rng.randrange(10, 9999),
                g=rng.randrange(1, 250),
                rv=rng.randrange(10**5, 10**7),
            )
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


def measure(
    text: str, repeat: int, *, ips: bool = False, names: list[str] | None = None
) -> dict[str, float]:
    times = []
    replacements = 0
    for _ in range(repeat):
        redactor = Redactor(ips=ips, names=names or ())
        start = time.perf_counter()
        redactor.redact(text)
        times.append((time.perf_counter() - start) * 1000)
        replacements = sum(redactor.counts.values())
    return {
        "ms": round(statistics.median(times), 2),
        "ms_best": round(min(times), 2),
        "replacements": replacements,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kib", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    text = synthetic_log(args.kib)
    names = ["shop", "api", "api-7d9f8b6c5-x2x4z", "db-creds", "orders", "postgres"]
    rng = random.Random(1)
    many = [
        f"{rng.choice(['web', 'db', 'cache', 'worker'])}-{rng.randrange(16**6):06x}"
        for _ in range(500)
    ]
    default = measure(text, args.repeat)
    options = measure(text, args.repeat, ips=True, names=names)
    many_names = measure(text, args.repeat, ips=True, names=names + many)
    result = {
        "bytes": len(text.encode()),
        "ms": default["ms"],
        "default": default,
        "ips_and_names": options,
        "ips_and_500_names": many_names,
        "goal_ms": 50,
        "goal_met": default["ms"] < 50 and options["ms"] < 50,
        "python": platform.python_version(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
