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
from oncallm.config import ClusterSettings, KubernetesSettings, Settings
from oncallm.samples import SAMPLE_CLUSTER_NAME, load_sample, sample_cluster, sample_names

# How long the demo waits for the sample triages before printing what it has.
DEMO_TRIAGE_WAIT_SECONDS = 30.0


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


def demo_settings(settings: Settings) -> Settings:
    """Without configured clusters, the demo triages against the bundled sample cluster."""
    if settings.kubernetes.clusters:
        return settings
    sample = ClusterSettings(snapshot=sample_cluster())
    kube = KubernetesSettings(
        clusters={SAMPLE_CLUSTER_NAME: sample}, default_cluster=SAMPLE_CLUSTER_NAME
    )
    return settings.model_copy(update={"kubernetes": kube})


async def _print_triages(
    client: httpx.AsyncClient, fingerprints: list[str], console: Console
) -> None:
    """Wait (briefly) for the sample triages and print each root cause in one line."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEMO_TRIAGE_WAIT_SECONDS
    pending = list(fingerprints)
    while pending and loop.time() < deadline:
        for fingerprint in list(pending):
            detail = (await client.get(f"/api/v1/alerts/{fingerprint}")).json()
            triage = detail.get("triage") or {}
            result = triage.get("result") or {}
            if triage.get("status") in ("succeeded", "failed"):
                pending.remove(fingerprint)
                root = result.get("root_cause") or {}
                culprit = root.get("resource") or {}
                where = f" — {culprit.get('kind')} {culprit.get('name')}" if culprit else ""
                category = root.get("category", triage.get("status"))
                console.print(f"  [bold]{detail.get('alertname')}[/]: {category}{where}")
        if pending:
            await asyncio.sleep(0.3)


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
        console.print("\n[bold]Root causes found in the sample cluster:[/]")
        await _print_triages(client, [u.rsplit("/", 1)[1] for u in urls], console)
    base = settings.server.public_url
    console.print(f"\n[bold green]OncallM demo is running[/] — {len(urls)} sample alerts posted.")
    console.print(f"Open [bold]{base}/alerts[/] to see them; each alert's own page:")
    for url in urls:
        console.print(f"  {url}")
    console.print(f"JSON API: {base}/api/v1/alerts · docs: {base}/docs · Ctrl-C to stop.\n")


def run_demo(settings: Settings) -> None:
    console = Console()
    settings = demo_settings(settings)
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
