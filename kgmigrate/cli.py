"""The `kgmigrate` command: a thin layer that parses arguments, calls the Python API and formats
what it returns. A `KgmError` becomes one line on stderr and exit code 1; never a traceback."""

import dataclasses
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from kgmigrate import __version__
from kgmigrate.config import load_settings
from kgmigrate.connect import open_backend, resolve
from kgmigrate.errors import KgmError
from kgmigrate.graph.falkordb import FalkorDBBackend
from kgmigrate.sample import GraphSummary, load_sample, summarize
from kgmigrate.stack import EmbeddedStack, StackStatus

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Distributed, resumable, reversible migrations for a knowledge graph.")
stack_app = typer.Typer(no_args_is_help=True, help="The embedded graph + broker server.")
app.add_typer(stack_app, name="stack")
out = Console()
DEMO_GRAPH = "kgmigrate_demo"
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _stack() -> EmbeddedStack:
    return EmbeddedStack.from_settings(load_settings())


def _show_stack(status: StackStatus, as_json: bool, verb: str = "") -> None:
    if as_json:
        _print_json({**dataclasses.asdict(status), "redis_url": status.redis_url})
        return
    if not status.running:
        out.print(f"stack: [bold]stopped[/] (port {status.port}, data {status.data_dir})")
        return
    note = " (already running)" if status.already_running else ""
    out.print(f"stack: [bold green]{verb or 'running'}[/]{note} pid {status.pid} on "
              f"{status.redis_url}  data {status.data_dir}")
    out.print(f"       graphs: {', '.join(status.graphs) or '(none)'}; "
              f"memory {status.used_memory}")


@stack_app.command("up")
def stack_up(as_json: JsonFlag = False) -> None:
    """Start the embedded server (idempotent)."""
    _show_stack(_stack().up(), as_json, "started")


@stack_app.command("down")
def stack_down(as_json: JsonFlag = False) -> None:
    """Save the graph and stop the embedded server."""
    _show_stack(_stack().down(), as_json)


@stack_app.command("status")
def stack_status(as_json: JsonFlag = False) -> None:
    """Show whether the embedded server runs, and what it holds."""
    _show_stack(_stack().status(), as_json)


@app.command()
def sample(
    nodes: Annotated[int, typer.Option(min=4, help="How many nodes to create.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same graph.")] = 7,
    as_json: JsonFlag = False,
) -> None:
    """Load a Vitalyst-like sample graph into an empty graph."""
    settings = load_settings()
    with open_backend(settings) as backend, Progress(
        TextColumn("{task.description:>16}"), BarColumn(), TextColumn("{task.completed:>9,}"),
        TimeElapsedColumn(), console=Console(stderr=True), disable=as_json,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(what: str, count: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=None)
            bar.advance(tasks[what], count)

        summary = load_sample(backend, nodes, seed=seed, progress=advance)
    _show_summary(summary, as_json)


@app.command()
def info(as_json: JsonFlag = False) -> None:
    """Show the graph server and what the graph holds."""
    with open_backend(load_settings()) as backend:
        target = backend.target
        server = backend.server_info()
        summary = summarize(backend)
        indexes = backend.indexes()
    if as_json:
        _print_json({"server": dataclasses.asdict(server), **dataclasses.asdict(summary),
                     "indexes": [dataclasses.asdict(i) for i in indexes]})
        return
    out.print(f"graph: {target.display}  ({server.version})")
    _show_summary(summary, False)
    for spec in indexes:
        out.print(f"  {spec.describe()}")


def _show_summary(summary: GraphSummary, as_json: bool) -> None:
    if as_json:
        _print_json(dataclasses.asdict(summary))
        return
    table = Table("kind", "name", "count", title="What the graph holds")
    for name, count in sorted(summary.nodes.items()):
        table.add_row("node", name, f"{count:,}")
    for name, count in sorted(summary.relationships.items()):
        table.add_row("relationship", name, f"{count:,}")
    table.add_section()
    table.add_row("", "nodes", f"{summary.node_count:,}")
    table.add_row("", "relationships", f"{summary.relationship_count:,}")
    out.print(table)


@app.command()
def demo(
    nodes: Annotated[int, typer.Option(min=4, help="Size of the sample graph.")] = 20_000,
) -> None:
    """Start the embedded stack, load a sample graph into the `kgmigrate_demo` graph and show it.

    Only the demo's own graph is replaced; nothing else on the server is touched.
    """
    settings = load_settings(graph_name=DEMO_GRAPH)
    if settings.graph_url is not None:
        raise KgmError("the demo runs on the embedded stack; unset KGMIGRATE_GRAPH_URL")
    endpoints = resolve(settings)
    assert endpoints.stack is not None
    out.print(f"[bold]1.[/] embedded stack up on {endpoints.stack.broker_url.rsplit('/', 1)[0]}")
    with FalkorDBBackend(endpoints.graph) as backend:
        backend.delete_graph()
        out.print(f"[bold]2.[/] loading a {nodes:,}-node Vitalyst-like sample into "
                  f"{endpoints.graph.display}")
        summary = load_sample(backend, nodes)
        out.print(f"[bold]3.[/] {backend.server_info().version} now holds:")
    _show_summary(summary, False)
    out.print(f"Explore it with `KGMIGRATE_GRAPH_NAME={DEMO_GRAPH} kgmigrate info`; "
              "stop the server with `kgmigrate stack down`.")


@app.command()
def version() -> None:
    """Print kgmigrate's version."""
    out.print(__version__)


def main() -> None:
    try:
        app()
    except KgmError as exc:
        sys.stderr.write(f"kgmigrate: error: {exc}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
