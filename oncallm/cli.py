"""The `oncallm` command line: thin commands over the modules that do the work.

Errors a user can cause (bad config, unreachable database) print one readable line and
exit non-zero; stack traces are for bugs only.
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from oncallm import __version__
from oncallm.config import Settings, describe_settings, load_settings, render_config_docs
from oncallm.config_llm import LLMSettings
from oncallm.errors import OncallmError
from oncallm.observability import configure_logging

if TYPE_CHECKING:  # the database and LLM stacks are imported only by the commands using them
    from oncallm.llm.reasoner import Reasoner
    from oncallm.store.db import Database

app = typer.Typer(
    name="oncallm",
    help="OncallM: on-call copilot for Kubernetes alerts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML config file (default: $ONCALLM_CONFIG). Environment variables override it.",
        exists=False,
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn OncallM errors into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OncallmError as exc:
            err_console.print(f"[bold red]error:[/] {exc.detail}", highlight=False)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def _settings(config: Path | None) -> Settings:
    settings = load_settings(config)
    configure_logging(settings.log)
    return settings


@app.command()
def version() -> None:
    """Print the OncallM version."""
    console.print(f"oncallm {__version__}")


@app.command()
@user_errors
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Listen address (server.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (server.port).")] = None,
    migrate: Annotated[
        bool | None, typer.Option("--migrate/--no-migrate", help="Migrate on start.")
    ] = None,
    worker: Annotated[
        bool | None,
        typer.Option("--worker/--no-worker", help="Run triage workers in this process."),
    ] = None,
) -> None:
    """Run the HTTP server (API, webhook, pages) and, by default, an in-process worker."""
    from oncallm.server import run_server

    settings = _settings(config)
    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if migrate is not None:
        overrides["migrate_on_start"] = migrate
    if worker is not None:
        overrides["embedded_worker"] = worker
    if overrides:
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update=overrides)}
        )
    run_server(settings)


def _with_database(settings: Settings, action: Callable[[Database], Awaitable[None]]) -> None:
    """Open the database, check it answers, run ``action``, close it."""
    from oncallm.store.db import Database

    async def main() -> None:
        db = Database(settings.database)
        try:
            await db.ping()
            await action(db)
        finally:
            await db.dispose()

    asyncio.run(main())


@app.command()
@user_errors
def worker(
    config: ConfigOption = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=64, help="Jobs run at once (jobs.concurrency).")
    ] = None,
) -> None:
    """Run triage workers only (scale out next to `serve --no-worker` on PostgreSQL)."""
    from oncallm.jobs.worker import Worker
    from oncallm.store import migrate
    from oncallm.store.llm import DbAnswerCache, DbUsageBook
    from oncallm.triage.pipeline import TriagePipeline

    settings = _settings(config)
    if concurrency is not None:
        settings = settings.model_copy(
            update={"jobs": settings.jobs.model_copy(update={"concurrency": concurrency})}
        )

    async def run_workers(db: Database) -> None:
        current = await migrate.current_revision(db)
        if current != migrate.head_revision():
            raise OncallmError(
                f"database schema is at {current or 'empty'}, not "
                f"{migrate.head_revision()}: run `oncallm db upgrade` first"
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        pipeline = TriagePipeline.from_settings(
            settings, usage=DbUsageBook(db), cache=DbAnswerCache(db)
        )
        try:
            await Worker(db, settings.jobs, pipeline).run(stop)
        finally:
            await pipeline.aclose()

    _with_database(settings, run_workers)


@db_app.command("upgrade")
@user_errors
def db_upgrade(
    config: ConfigOption = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Apply schema migrations (up to head by default)."""
    from oncallm.store import migrate

    async def upgrade(db: Database) -> None:
        await migrate.upgrade(db, revision)
        console.print(f"database at revision {await migrate.current_revision(db)}")

    _with_database(_settings(config), upgrade)


@db_app.command("downgrade")
@user_errors
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")],
    config: ConfigOption = None,
) -> None:
    """Revert schema migrations to REVISION."""
    from oncallm.store import migrate

    async def downgrade(db: Database) -> None:
        await migrate.downgrade(db, revision)
        console.print(f"database at revision {await migrate.current_revision(db) or 'base'}")

    _with_database(_settings(config), downgrade)


@db_app.command("current")
@user_errors
def db_current(config: ConfigOption = None) -> None:
    """Print the schema revision of the database and the head this version expects."""
    from oncallm.store import migrate

    async def current(db: Database) -> None:
        revision = await migrate.current_revision(db)
        console.print(f"current: {revision or 'empty'}\nhead:    {migrate.head_revision()}")

    _with_database(_settings(config), current)


@config_app.command("show")
@user_errors
def config_show(
    config: ConfigOption = None,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Print the effective configuration, secrets masked, with where each value came from."""
    settings = load_settings(config)
    rows = describe_settings(settings, config)
    if output == "json":
        data = {r.key: {"value": r.value, "source": r.source} for r in rows}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    if output != "table":
        raise OncallmError(f"--format must be table or json, not {output!r}")
    table = Table(title="OncallM effective configuration")
    table.add_column("key", style="bold")
    table.add_column("value")
    table.add_column("source", style="dim")
    for row in rows:
        table.add_row(row.key, row.value, row.source)
    console.print(table)


@config_app.command("docs")
def config_docs() -> None:
    """Print the configuration reference (docs/configuration.md) generated from the model."""
    sys.stdout.write(render_config_docs())


@app.command()
@user_errors
def demo(config: ConfigOption = None) -> None:
    """Start OncallM on its defaults, post the bundled sample alerts, print the URLs to open."""
    from oncallm.server import run_demo

    run_demo(_settings(config))


@app.command("alertmanager-config")
@user_errors
def alertmanager_config(
    config: ConfigOption = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="Public URL of OncallM in the links (default: server.base_url)."),
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            help="URL Alertmanager posts to, when it differs from the public one "
            "(default: BASE_URL/api/v1/alerts/alertmanager)."
        ),
    ] = None,
    receiver: Annotated[str, typer.Option(help="Name of OncallM's webhook receiver.")] = "oncallm",
    team_receiver: Annotated[
        str, typer.Option(help="Name of the example Slack receiver using the templates.")
    ] = "team-slack",
    output: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="`yaml` (alertmanager.yml) or `helm` (kube-prometheus-stack)."
        ),
    ] = "yaml",
    templates_dir: Annotated[
        str | None,
        typer.Option(
            help="Directory Alertmanager loads the templates from "
            "(default: /etc/alertmanager/templates; /etc/alertmanager/config for helm)."
        ),
    ] = None,
    write_templates: Annotated[
        bool,
        typer.Option(help="Also write oncallm.tmpl and oncallm-base-url.tmpl to --templates-dir."),
    ] = False,
) -> None:
    """Print an Alertmanager receiver, route and templates that link every alert to OncallM."""
    from oncallm import alertmanager_kit as kit

    try:
        fmt = kit.KitFormat(output)
    except ValueError:
        raise OncallmError(f"--format must be yaml or helm, not {output!r}") from None
    options = kit.options_from_settings(
        _settings(config),
        base_url=base_url,
        webhook_url=webhook_url,
        receiver=receiver,
        team_receiver=team_receiver,
        templates_dir=templates_dir,
        output=fmt,
    )
    text = kit.render_config(options, fmt)  # before writing: a missing template fails first
    if write_templates:
        for path in kit.write_template_files(options, Path(options.templates_dir)):
            err_console.print(f"wrote {path}", highlight=False)
    sys.stdout.write(text)


def _with_prometheus(settings: Settings, url: str) -> Settings:
    from pydantic import ValidationError

    from oncallm.config_metrics import PrometheusSettings

    try:
        endpoint = PrometheusSettings.model_validate(
            {**settings.metrics.prometheus.model_dump(), "url": url}
        )
    except ValidationError as exc:
        raise OncallmError(f"--prometheus {url!r}: {exc.errors()[0]['msg']}") from None
    metrics = settings.metrics.model_copy(update={"prometheus": endpoint})
    return settings.model_copy(update={"metrics": metrics})


@app.command()
@user_errors
def triage(
    alert: Annotated[
        Path, typer.Option("--alert", "-a", help="Alertmanager webhook payload (JSON file).")
    ],
    snapshot: Annotated[
        Path | None, typer.Option(help="Snapshot directory to read instead of a cluster.")
    ] = None,
    kubeconfig: Annotated[Path | None, typer.Option(help="Kubeconfig of a live cluster.")] = None,
    context: Annotated[str | None, typer.Option(help="Kubeconfig context.")] = None,
    prometheus: Annotated[
        str | None,
        typer.Option(
            help="Prometheus (or Thanos, VictoriaMetrics) URL to read metrics from; "
            "overrides metrics.prometheus.url. A snapshot's own metrics/ are used otherwise."
        ),
    ] = None,
    output: Annotated[
        str, typer.Option("--format", "-f", help="`markdown` (default) or `json`.")
    ] = "markdown",
    llm: Annotated[
        bool,
        typer.Option(
            "--llm/--no-llm", help="Ask the configured LLM (llm.provider) to explain and rank."
        ),
    ] = True,
    config: ConfigOption = None,
) -> None:
    """Triage every alert of a payload once and print the results.

    With neither --snapshot nor --kubeconfig, the clusters of the configuration are used.
    Metrics come from --prometheus, else the configured Prometheus, else the snapshot.
    With an LLM configured (llm.provider), its grounded explanation is added unless --no-llm.
    """
    from oncallm.config import ClusterSettings
    from oncallm.sources.kubernetes import KubernetesSource
    from oncallm.sources.prometheus import PrometheusSources
    from oncallm.sources.snapshot import SnapshotSource
    from oncallm.triage.guidance import RunbookGuide
    from oncallm.triage.markdown import render
    from oncallm.triage.metrics_step import MetricsStep, snapshot_metrics
    from oncallm.triage.oneshot import load_alerts, to_json, triage_alerts
    from oncallm.triage.pipeline import TriagePipeline

    if output not in ("markdown", "json"):
        raise OncallmError(f"--format must be markdown or json, not {output!r}")
    if snapshot is not None and (kubeconfig is not None or context is not None):
        raise OncallmError("--snapshot reads files; it cannot be combined with --kubeconfig")
    settings = _settings(config)
    if prometheus is not None:
        settings = _with_prometheus(settings, prometheus)
    if not llm:
        settings = settings.model_copy(update={"llm": LLMSettings()})
    alerts = load_alerts(alert)

    def reasoner() -> Reasoner | None:
        if not settings.llm.enabled:
            return None
        from oncallm.llm.reasoner import Reasoner

        return Reasoner.from_settings(settings.llm)

    async def run() -> list[dict[str, Any]]:
        guide = RunbookGuide(settings.runbooks)
        configured = MetricsStep(
            PrometheusSources(settings.metrics, settings.kubernetes), settings.metrics
        )
        if snapshot is not None:
            source = SnapshotSource(snapshot)
            metrics = (
                configured
                if settings.metrics.prometheus.url
                else snapshot_metrics(snapshot, settings.metrics)
            )
            return await triage_alerts(alerts, source, settings.triage, reasoner(), guide, metrics)
        if kubeconfig is not None or context is not None:
            # Built here so a missing file or unknown context is bad input (exit 2), not a
            # gap on every result.
            live = KubernetesSource(ClusterSettings(kubeconfig=kubeconfig, context=context))
            return await triage_alerts(alerts, live, settings.triage, reasoner(), guide, configured)
        pipeline = TriagePipeline.from_settings(settings)
        try:
            return [(await pipeline.run(a)).result for a in alerts]
        finally:
            await pipeline.aclose()

    results = asyncio.run(run())
    if output == "json":
        sys.stdout.write(to_json(results) + "\n")
        return
    text = "\n---\n\n".join(render(r) for r in results)
    if sys.stdout.isatty():
        from rich.markdown import Markdown

        console.print(Markdown(text))
    else:
        sys.stdout.write(text)


@app.command("eval")
@user_errors
def evaluate(
    cases: Annotated[Path, typer.Argument(help="Directory of golden cases.")] = Path("evals/cases"),
    min_accuracy: Annotated[
        float | None,
        typer.Option(help="Fail below this accuracy (default: triage.eval_min_accuracy)."),
    ] = None,
    output: Annotated[str, typer.Option("--format", "-f", help="`table` or `json`.")] = "table",
    config: ConfigOption = None,
) -> None:
    """Score triage against golden cases; exits 1 when accuracy is below the threshold."""
    from oncallm.triage.evaluate import run_eval

    if output not in ("table", "json"):
        raise OncallmError(f"--format must be table or json, not {output!r}")
    settings = _settings(config)
    threshold = settings.triage.eval_min_accuracy if min_accuracy is None else min_accuracy
    outcomes = run_eval(cases, settings.triage)
    passed = sum(o.passed for o in outcomes)
    accuracy = passed / len(outcomes)
    if output == "json":
        rows = [
            {
                "case": o.name,
                "expected": {
                    "category": str(o.expected.category),
                    "culprit": str(o.expected.culprit),
                },
                "got": {"category": o.category, "culprit": o.culprit, "summary": o.summary},
                "passed": o.passed,
                "problems": list(o.problems),
            }
            for o in outcomes
        ]
        summary = {"cases": len(outcomes), "passed": passed, "accuracy": accuracy}
        sys.stdout.write(json.dumps({"results": rows, **summary}, indent=2) + "\n")
    else:
        table = Table(title=f"OncallM golden evaluation ({cases})")
        table.add_column("case", style="bold")
        table.add_column("expected")
        table.add_column("got")
        table.add_column("pass")
        for o in outcomes:
            got = o.category
            if o.culprit:
                ns = o.culprit.get("namespace")
                got += f"\n{o.culprit['kind']} {ns + '/' if ns else ''}{o.culprit['name']}"
            mark = "[green]yes[/]" if o.passed else "[red]no[/]\n" + "\n".join(o.problems)
            table.add_row(o.name, f"{o.expected.category}\n{o.expected.culprit or '—'}", got, mark)
        # CI logs are not terminals; give the table room rather than wrap every name.
        out = console if sys.stdout.isatty() else Console(width=160)
        out.print(table)
        colour = "green" if accuracy >= threshold else "red"
        out.print(
            f"[{colour}]accuracy {accuracy:.1%}[/] ({passed}/{len(outcomes)}), "
            f"threshold {threshold:.0%}"
        )
    if accuracy < threshold:
        raise typer.Exit(code=1)


# --- snapshot capture -------------------------------------------------------------------

snapshot_app = typer.Typer(
    help="Snapshot directories: offline copies of a cluster.", no_args_is_help=True
)
app.add_typer(snapshot_app, name="snapshot")


@snapshot_app.command("capture")
@user_errors
def snapshot_capture(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory to write; must be new or empty.")
    ],
    kubeconfig: Annotated[
        Path | None,
        typer.Option(help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)."),
    ] = None,
    context: Annotated[
        str | None, typer.Option(help="Kubeconfig context (default: its current context).")
    ] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            metavar="NAMESPACE",
            help="Namespace to capture; repeat it for more (default: all).",
        ),
    ] = None,
) -> None:
    """Capture a live cluster into a snapshot directory (objects, events, bounded logs of
    unhealthy pods; Secret values left out) for offline triage and the evals."""
    from oncallm.config import ClusterSettings
    from oncallm.sources.capture import capture_cluster

    settings = ClusterSettings(kubeconfig=kubeconfig, context=context)
    summary = asyncio.run(capture_cluster(settings, output, namespace or ()))
    for skipped in summary.skipped:
        err_console.print(f"[yellow]skipped[/] {skipped}", highlight=False)
    sys.stdout.write(summary.line() + "\n")


@snapshot_app.command("metrics")
@user_errors
def snapshot_metrics(
    directory: Annotated[Path, typer.Argument(help="Snapshot directory to add metrics to.")],
    alert: Annotated[
        Path, typer.Option("--alert", "-a", help="Alertmanager webhook payload (JSON file).")
    ],
    prometheus: Annotated[
        str | None,
        typer.Option(help="Prometheus URL (default: metrics.prometheus.url of the config)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Record in a snapshot the metrics triage reads for each alert of a payload (the same
    queries, over the same window), so offline triage says what it would have said live."""
    from oncallm.sources.prometheus import PrometheusSource
    from oncallm.sources.snapshot import SnapshotSource
    from oncallm.triage.metrics_capture import capture_metrics
    from oncallm.triage.oneshot import load_alerts

    settings = _settings(config)
    if prometheus is not None:
        settings = _with_prometheus(settings, prometheus)
    endpoint = settings.metrics.prometheus
    if not endpoint.url:
        raise OncallmError("no Prometheus to read: pass --prometheus or set metrics.prometheus.url")
    SnapshotSource(directory)  # a missing or invalid snapshot is bad input, said before any query
    alerts = load_alerts(alert)

    async def run() -> Any:
        source = PrometheusSource(
            endpoint,
            breaker_failures=settings.metrics.breaker_failures,
            breaker_reset_seconds=settings.metrics.breaker_reset_seconds,
        )
        try:
            return await capture_metrics(directory, alerts, source, settings.metrics)
        finally:
            await source.aclose()

    summary = asyncio.run(run())
    for failed in summary.failed:
        err_console.print(f"[yellow]failed[/] {failed}", highlight=False)
    sys.stdout.write(summary.line() + "\n")
    if summary.failed and not summary.files:
        raise typer.Exit(1)


# --- llm ----------------------------------------------------------------------------------

llm_app = typer.Typer(help="The configured LLM provider.", no_args_is_help=True)
app.add_typer(llm_app, name="llm")


@llm_app.command("check")
@user_errors
def llm_check(
    config: ConfigOption = None,
    output: Annotated[str, typer.Option("--format", "-f", help="`table` or `json`.")] = "table",
    timeout: Annotated[
        float | None,
        typer.Option(min=0.1, help="Seconds per model call (default: llm.timeout_seconds)."),
    ] = None,
) -> None:
    """Send tiny requests to each configured model: reachable, latency, tool calls, JSON
    output; recommends llm.output_mode. Exits 1 when the strong model cannot answer in the
    configured output mode."""
    from oncallm.llm.check import render_table, run_check

    if output not in ("table", "json"):
        raise OncallmError(f"--format must be table or json, not {output!r}")
    settings = _settings(config)
    report = asyncio.run(run_check(settings.llm, call_timeout_seconds=timeout))
    if output == "json":
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        # CI logs are not terminals; give the table room rather than wrap every name.
        out = console if sys.stdout.isatty() else Console(width=160)
        out.print(render_table(report))
    if not report.ok:
        raise typer.Exit(code=1)


# --- runbooks -----------------------------------------------------------------------------

runbooks_app = typer.Typer(help="Markdown runbook sets.", no_args_is_help=True)
app.add_typer(runbooks_app, name="runbooks")


@runbooks_app.command("check")
@user_errors
def runbooks_check(
    directory: Annotated[Path, typer.Argument(help="Directory of Markdown runbooks.")],
    output: Annotated[str, typer.Option("--format", "-f", help="`table` or `json`.")] = "table",
) -> None:
    """Validate a runbook set: front matter, title, alertnames, matchers, categories,
    sections, duplicates and relative links. Exits 1 when anything is wrong."""
    from oncallm.sources.runbooks import RunbookLibrary
    from oncallm.triage.taxonomy import Category

    if output not in ("table", "json"):
        raise OncallmError(f"--format must be table or json, not {output!r}")
    if not directory.is_dir():
        raise OncallmError(f"runbook directory {directory} does not exist")
    library = RunbookLibrary(directory, categories={c.value for c in Category})
    runbooks, problems = library.runbooks(), library.problems()
    library.close()
    if output == "json":
        data = {
            "directory": str(directory),
            "ok": not problems,
            "runbooks": [
                {
                    "file": str(rb.path),
                    "title": rb.title,
                    "alertnames": list(rb.alertnames),
                    "matchers": [str(m) for m in rb.matchers],
                    "categories": list(rb.categories),
                    "sections": [s.heading for s in rb.sections],
                }
                for rb in runbooks
            ],
            "problems": [
                {"file": str(p.path), "line": p.line, "message": p.message} for p in problems
            ],
        }
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        from rich.markup import escape

        out = console if sys.stdout.isatty() else Console(width=160)
        table = Table(title=escape(f"Runbooks in {directory}"))
        table.add_column("title", style="bold")
        table.add_column("alertnames")
        table.add_column("sections")
        for rb in runbooks:
            names = ", ".join(rb.alertnames) + "".join(f"\n{m}" for m in rb.matchers)
            table.add_row(escape(rb.title), escape(names), str(len(rb.sections)))
        out.print(table)
        for problem in problems:
            out.print(f"[red]{escape(str(problem))}[/]", highlight=False)
        verdict = f"[red]{len(problems)} problem(s)[/]" if problems else "[green]no problems[/]"
        out.print(f"{len(runbooks)} runbook(s), {verdict}")
    if problems:
        raise typer.Exit(code=1)
