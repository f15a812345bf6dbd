"""The monitoring verbs of the CLI: `report`, `metrics`, `metrics-server` and `flower`.

Registered on the CLI's app by `kgmigrate.cli` (imported at its end); kept apart so each CLI
module stays small.
"""

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markdown import Markdown

from kgmigrate import service
from kgmigrate.cli.common import (
    JsonFlag,
    LatestRun,
    app,
    out,
    print_json,
    session,
)
from kgmigrate.errors import KgmError
from kgmigrate.model.records import DIRECTION_WORDS


@app.command()
def report(
    run_id: LatestRun = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Where to write <run>.json, .md and .png (default: "
        "KGMIGRATE_REPORTS_DIR, .kgmigrate/reports).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """A run's full story: steps, counts, timings, validations, failures, conflicts, rollback,
    and a throughput chart; printed, and written as JSON, Markdown and PNG."""
    with session(as_json) as migrations:
        run = migrations.status(run_id)
        built = migrations.build_report(run.id)
        paths = migrations.write_report(built, out_dir)
    if as_json:
        print_json({**built.model_dump(mode="json"), "files": [str(p) for p in paths]})
        return
    text = service.markdown(built)
    if out.is_terminal:
        out.print(Markdown(text))
    else:  # piped or redirected: the Markdown itself, whole lines, nothing cut at 80 columns
        out.file.write(text.rstrip("\n") + "\n")
    out.print("written: " + ", ".join(str(p) for p in paths), soft_wrap=True)


@app.command()
def metrics(
    run_id: LatestRun = None,
    as_json: JsonFlag = False,
) -> None:
    """A run's numbers from the ledger: duration, entities planned and done, batches,
    retries, error rate, validation, steps, throughput and ETA."""
    with session(as_json) as migrations:
        run = migrations.status(run_id)
        found = migrations.metrics(run.id)
    if found is None:
        raise KgmError(f"no run {run.id}")
    if as_json:
        print_json(found.model_dump(mode="json", exclude={"steps"}))
        return
    for name, value in found.model_dump(mode="json", exclude={"steps"}).items():
        out.print(f"{name:>20}  {_readable(name, value)}", highlight=False)


def _readable(name: str, value: Any) -> str:
    """A metric as a person reads it (`1,567/s`, not `1566.757493188011`; `downgrade`, not
    `down`); JSON keeps it exact."""
    if name == "direction":
        return str(DIRECTION_WORDS.get(value, value))
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if name.endswith("_per_s"):
            return f"{value:,.0f}/s"
        if name == "error_rate":
            return f"{value:.2%}"
        return f"{value:,.1f} s" if name.endswith("_s") else f"{value:,.3g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@app.command("metrics-server")
def metrics_server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, metavar="PORT",
                                      help="Port for /metrics.")] = 9808,
    runs: Annotated[int, typer.Option(min=1, metavar="N",
                                      help="How many recent runs to export.")] = 5,
) -> None:
    """Serve Prometheus metrics of migration runs (progress, batch latency, errors, retries,
    rollbacks), read from the ledger at each scrape. A service: it starts even before the
    graph exists (deployed before the first migration), and reports it once it does."""
    with session(absent_ok=True) as migrations:
        migrations.serve_metrics(host, port, runs, on_ready=lambda: out.print(
            f"kgmigrate metrics on http://{host}:{port}/metrics (Ctrl-C to stop)"))

@app.command()
def flower(
    port: Annotated[int, typer.Option(min=1, max=65535, metavar="PORT",
                                      help="Port for the web UI.")] = 5555,
    address: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    insecure_local: Annotated[bool, typer.Option(
        "--insecure-local", help="Run without authentication, on loopback only.")] = False,
) -> None:
    """Start Flower on kgmigrate's Celery app: live batch tasks, workers, /metrics.

    Basic auth is required: KGMIGRATE_FLOWER_USER and KGMIGRATE_FLOWER_PASSWORD. The
    credentials reach Flower through its environment, never the command line (which `ps`
    shows)."""
    service.serve_flower(port=port, address=address, insecure_local=insecure_local)
