"""`kgmigrate stack ...`, `sample`, `info`, `demo`: the embedded servers and the sample graph."""

import dataclasses
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kgmigrate.cli.common import (
    JsonFlag,
    app,
    counting,
    follow,
    out,
    print_json,
    show_run,
)
from kgmigrate.connect import Endpoints, backend_for, open_backend, resolve
from kgmigrate.dev.local_workers import LocalWorkers
from kgmigrate.dev.neo4j_stack import EmbeddedNeo4j, Neo4jStatus, version_named
from kgmigrate.dev.neo4j_stack import build as build_neo4j
from kgmigrate.dev.neo4j_stack import versions as neo4j_versions
from kgmigrate.dev.sample import GraphSummary, load_sample, summarize
from kgmigrate.dev.stack import EmbeddedStack, StackStatus
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.graph.falkordb import FalkorDBBackend
from kgmigrate.model.records import MigrationStatus
from kgmigrate.monitoring.report import build_report, write_report
from kgmigrate.runtime.settings import load_settings
from kgmigrate.service import Migrations

stack_app = typer.Typer(no_args_is_help=True, help="The embedded graph + broker server.")
app.add_typer(stack_app, name="stack")
DEMO_GRAPH = "kgmigrate_demo"
GraphOption = Annotated[str | None, typer.Option(
    "--graph", help="falkordb or neo4j: also start the embedded Neo4j (default: "
    "KGMIGRATE_STACK_GRAPH).")]


def _stack_graph(graph: str | None) -> str:
    chosen = graph or load_settings().stack_graph
    if chosen not in ("falkordb", "neo4j"):
        raise KgmError(f"--graph must be falkordb or neo4j, not {chosen!r}")
    return chosen


def _show_stack(status: StackStatus, neo4j: Neo4jStatus | None, as_json: bool,
                verb: str = "") -> None:
    if as_json:
        print_json({**dataclasses.asdict(status), "redis_url": status.redis_url,
                     "neo4j": ({**dataclasses.asdict(neo4j), "bolt_url": neo4j.bolt_url}
                               if neo4j else None)})
        return
    if not status.running:
        out.print(f"stack: [bold]stopped[/] (port {status.port}, data {status.data_dir})")
    else:
        note = " (already running)" if status.already_running else ""
        out.print(f"stack: [bold green]{verb or 'running'}[/]{note} pid {status.pid} on "
                  f"{status.redis_url}  data {status.data_dir}")
        out.print(f"       graphs: {', '.join(status.graphs) or '(none)'}; "
                  f"memory {status.used_memory}")
    if neo4j is None:
        return
    if not neo4j.running:
        out.print(f"neo4j: [bold]stopped[/] (port {neo4j.port}, data {neo4j.data_dir})")
        return
    note = " (already running)" if neo4j.already_running else ""
    out.print(f"neo4j: [bold green]{verb or 'running'}[/]{note} pid {neo4j.pid} on "
              f"{neo4j.bolt_url}  Neo4j {neo4j.version} Community, user neo4j, password in "
              f"KGMIGRATE_NEO4J_PASSWORD or {neo4j.data_dir / 'password'}")


@stack_app.command("up")
def stack_up(graph: GraphOption = None, as_json: JsonFlag = False) -> None:
    """Start the embedded server (idempotent); with --graph neo4j the embedded Neo4j too."""
    settings = load_settings()
    status = EmbeddedStack.from_settings(settings).up()
    neo4j = (EmbeddedNeo4j.from_settings(settings).up() if _stack_graph(graph) == "neo4j"
             else None)
    _show_stack(status, neo4j, as_json, "started")


@stack_app.command("down")
def stack_down(as_json: JsonFlag = False) -> None:
    """Stop the embedded Neo4j (if it runs) and save the graph and stop the embedded server."""
    settings = load_settings()
    neo4j = EmbeddedNeo4j.from_settings(settings)
    neo4j_status = neo4j.down() if neo4j.status().pid is not None else None
    _show_stack(EmbeddedStack.from_settings(settings).down(), neo4j_status, as_json)


@stack_app.command("status")
def stack_status(as_json: JsonFlag = False) -> None:
    """Show whether the embedded servers run, and what they hold."""
    settings = load_settings()
    _show_stack(EmbeddedStack.from_settings(settings).status(),
                EmbeddedNeo4j.from_settings(settings).status(), as_json)


@stack_app.command("build")
def stack_build(
    version: Annotated[str | None, typer.Option(
        "--neo4j-version", help="A name or version of tools/neo4j-server/versions.properties "
        "(default: KGMIGRATE_STACK_NEO4J_VERSION, else the first).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every pinned version.")] = False,
) -> None:
    """Resolve the embedded Neo4j's jars from Maven Central and build its launcher."""
    chosen = (list(neo4j_versions().values()) if every
              else [version_named(version or load_settings().stack_neo4j_version)])
    for neo4j_version in chosen:
        already = neo4j_version.built
        build_neo4j(neo4j_version)
        out.print(f"neo4j {neo4j_version.name} {neo4j_version.version} (Java "
                  f"{neo4j_version.java}): {'built already' if already else 'built'} in "
                  f"{neo4j_version.lib_dir}")


@app.command()
def sample(
    nodes: Annotated[int, typer.Option(min=4, help="How many nodes to create.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same graph.")] = 7,
    as_json: JsonFlag = False,
) -> None:
    """Load a Vitalyst-like sample graph into an empty graph."""
    settings = load_settings()
    with open_backend(settings) as backend, counting(quiet=as_json) as advance:
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
        print_json({"server": dataclasses.asdict(server), **dataclasses.asdict(summary),
                     "indexes": [dataclasses.asdict(i) for i in indexes]})
        return
    out.print(f"graph: {target.display}  ({server.version})")
    _show_summary(summary, False)
    for spec in indexes:
        out.print(f"  {spec.describe()}")


def _show_summary(summary: GraphSummary, as_json: bool) -> None:
    if as_json:
        print_json(dataclasses.asdict(summary))
        return
    table = Table("kind", "name", "count", title="What the graph holds")
    for name, count in sorted(summary.nodes.items()):
        table.add_row("node", escape(name), f"{count:,}")
    for name, count in sorted(summary.relationships.items()):
        table.add_row("relationship", escape(name), f"{count:,}")
    table.add_section()
    table.add_row("", "nodes", f"{summary.node_count:,}")
    table.add_row("", "relationships", f"{summary.relationship_count:,}")
    out.print(table)


@app.command()
def demo(
    nodes: Annotated[int, typer.Option(min=4, help="Size of the sample graph.")] = 200_000,
    workers: Annotated[int, typer.Option(min=1, help="Local worker processes.")] = 2,
) -> None:
    """The whole story on the embedded stack: a sample knowledge graph, the migrations in
    KGMIGRATE_MIGRATIONS_DIR run as batches on local workers with live progress, the report.

    Only the demo's own graph (`kgmigrate_demo`) is replaced; nothing else is touched.
    """
    settings = load_settings(graph_name=DEMO_GRAPH)
    if settings.graph_url is not None:
        raise KgmError("the demo runs on the embedded stack; unset KGMIGRATE_GRAPH_URL")
    endpoints = resolve(settings)
    assert endpoints.stack is not None
    out.print(f"[bold]1.[/] embedded stack up on {endpoints.stack.broker_url.rsplit('/', 1)[0]}"
              + (f", embedded Neo4j on {endpoints.graph.driver_uri}" if endpoints.neo4j else ""))
    with Migrations(settings, backend=backend_for(endpoints.graph, settings,
                                                  verify=True)) as migrations:
        backend = migrations.backend
        _reset_demo_graph(backend, endpoints)
        out.print(f"[bold]2.[/] loading a {nodes:,}-node Vitalyst-like sample graph into "
                  f"{endpoints.graph.display}")
        before = load_sample(backend, nodes)
        if endpoints.neo4j is not None:
            endpoints.neo4j.mark_demo(backend)  # a later demo may replace what this one loads
        _show_summary(before, False)
        out.print(f"[bold]3.[/] {len(migrations.registry())} migrations in "
                  f"{settings.migrations_dir}, run by {workers} local worker processes:")
        for planned in migrations.plan():
            out.print(f"   {planned.version} {escape(planned.description)}: "
                      + "; ".join(f"{s.estimated_entities or 0:,} entities"
                                  for s in planned.steps))
        with LocalWorkers(workers, endpoints, log_dir=settings.stack_dir / "workers"):
            run_id = migrations.upgrade(created_by="kgmigrate demo")
            assert run_id is not None
            run = follow(migrations, run_id)
        out.print("[bold]4.[/] the run, as the ledger in the graph records it:")
        show_run(run)
        _show_summary(summarize(backend), False)
        built = build_report(backend, migrations.store, run.id)
        assert built is not None
        paths = write_report(built, settings.reports_dir)
        m = built.metrics
        out.print(f"[bold]5.[/] report: {m.entities_done:,} entities in {m.duration_s:.1f} s, "
                  f"{m.batches_done} batches, error rate {m.error_rate:.1%}, validation "
                  f"{'passed' if m.validation_success else m.validation_success}; written to "
                  + ", ".join(str(p) for p in paths))
    explore = ("KGMIGRATE_STACK_GRAPH=neo4j" if endpoints.neo4j is not None
               else f"KGMIGRATE_GRAPH_NAME={DEMO_GRAPH}")
    out.print(f"Explore with `{explore} kgmigrate history` (or list, "
              f"status {run.id}); stop the server with `kgmigrate stack down`.")
    if run.status is not MigrationStatus.COMPLETED:
        raise typer.Exit(1)


def _reset_demo_graph(backend: GraphBackend, endpoints: Endpoints) -> None:
    """Replace the demo's own graph, and nothing else: FalkorDB's `kgmigrate_demo` graph, or
    the embedded Neo4j's database when it is empty or holds only an earlier demo."""
    if isinstance(backend, FalkorDBBackend):
        backend.delete_graph()
        return
    assert endpoints.neo4j is not None
    if not endpoints.neo4j.holds_only_demo(backend):
        raise KgmError("the embedded Neo4j holds data that is not the demo's; the demo only "
                       "replaces its own. Stop it (`kgmigrate stack down`) and use another "
                       "KGMIGRATE_STACK_DIR, or empty it yourself")
    endpoints.neo4j.empty(backend)
