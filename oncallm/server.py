"""Running the HTTP server: `oncallm serve` and `oncallm demo`.

uvicorn is configured here and nowhere else; logging stays ours (structlog) and the
server header is dropped. The demo starts the same server and posts the bundled sample
notifications to it over HTTP, exactly as Alertmanager would.
"""

from __future__ import annotations

import asyncio

import httpx
import uvicorn
from rich.console import Console

from oncallm.api import create_app
from oncallm.config import Settings
from oncallm.samples import load_sample, sample_names


def _server(settings: Settings) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        # Alertmanager keeps connections alive between notifications.
        timeout_keep_alive=75,
    )
    return uvicorn.Server(config)


def run_server(settings: Settings) -> None:
    _server(settings).run()


async def _post_samples(settings: Settings, console: Console) -> None:
    local = f"http://{settings.server.host}:{settings.server.port}"
    if settings.server.host in ("0.0.0.0", "::"):  # noqa: S104 - reach ourselves on loopback
        local = f"http://127.0.0.1:{settings.server.port}"
    async with httpx.AsyncClient(base_url=local, timeout=10) as client:
        urls: list[str] = []
        for name in sample_names():
            response = await client.post("/api/v1/alerts/alertmanager", json=load_sample(name))
            response.raise_for_status()
            urls += [a["url"] for a in response.json()["alerts"]]
    base = settings.server.public_url
    console.print(f"\n[bold green]OncallM demo is running[/] — {len(urls)} sample alerts posted.")
    console.print(f"Open [bold]{base}/alerts[/] to see them; each alert's own page:")
    for url in urls:
        console.print(f"  {url}")
    console.print(f"JSON API: {base}/api/v1/alerts · docs: {base}/docs · Ctrl-C to stop.\n")


def run_demo(settings: Settings) -> None:
    console = Console()
    server = _server(settings)

    async def main() -> None:
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                await serving  # surfaces the startup error (e.g. port in use)
                return
            await asyncio.sleep(0.05)
        await _post_samples(settings, console)
        await serving

    asyncio.run(main())
