"""`kgmigrate stack ...`, `sample`, `info`, `demo`: the embedded servers and the sample graph."""

import dataclasses
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kgmigrate import service
from kgmigrate.cli.common import (
    JsonFlag,
    app,
    counting,
    follow,
    out,
    print_json,
    session,
    show_run,
    show_table,
)
from kgmigrate.errors import KgmError
from kgmigrate.model.records import MigrationStatus
from kgmigrate.runtime.settings import GraphTarget, load_settings
from kgmigrate.service import (
    DEMO_GRAPH,
    DemoGraph,
    DevStack,
    GraphSummary,
    Neo4jStatus,
    StackStatus,
)

stack_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="The embedded graph + broker server.")
app.add_typer(stack_app, name="stack")
GraphOption = Annotated[str | None, typer.Option(
    "--graph", help="falkordb or neo4j: also start the embedded Neo4j (default: "
    "KGMIGRATE_STACK_GRAPH).")]


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
    status, neo4j = DevStack(load_settings()).up(graph)
    _show_stack(status, neo4j, as_json, "started")


@stack_app.command("down")
def stack_down(as_json: JsonFlag = False) -> None:
    """Stop the embedded Neo4j (if it runs) and save the graph and stop the embedded server."""
    status, neo4j = DevStack(load_settings()).down()
    _show_stack(status, neo4j, as_json)


@stack_app.command("status")
def stack_status(as_json: JsonFlag = False) -> None:
    """Show whether the embedded servers run, and what they hold."""
    _show_stack(*DevStack(load_settings()).status(), as_json)


@stack_app.command("build")
def stack_build(
    version: Annotated[str | None, typer.Option(
        "--neo4j-version", help="A name or version of tools/neo4j-server/versions.properties "
        "(default: KGMIGRATE_STACK_NEO4J_VERSION, else the first).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every pinned version.")] = False,
) -> None:
    """Resolve the embedded Neo4j's jars from Maven Central and build its launcher."""
    for built in DevStack(load_settings()).build(version, every=every):
        v = built.version
        out.print(f"neo4j {v.name} {v.version} (Java {v.java}): "
                  f"{'built already' if built.already else 'built'} in {v.lib_dir}")


@app.command()
def sample(
    nodes: Annotated[int, typer.Option(min=4, metavar="N",
                                       help="How many nodes to create.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same graph.")] = 7,
    as_json: JsonFlag = False,
) -> None:
    """Load a Vitalyst-like sample graph into an empty graph."""
    with session(as_json, absent_ok=True) as migrations, counting(quiet=as_json) as advance:
        summary = migrations.load_sample(nodes, seed=seed, progress=advance)
    _show_summary(summary, as_json)


@app.command()
def info(as_json: JsonFlag = False) -> None:
    """Show the graph server and what the graph holds."""
    with session(as_json) as migrations:
        server = migrations.server()
        summary = migrations.summary()
        indexes = migrations.indexes()
    if as_json:
        print_json({"server": dataclasses.asdict(server), **dataclasses.asdict(summary),
                     "indexes": [dataclasses.asdict(i) for i in indexes]})
        return
    out.print(f"server: {server.version}", highlight=False)
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
    show_table(table)


@app.command()
def demo(
    nodes: Annotated[int, typer.Option(min=4, metavar="N",
                                       help="Size of the sample graph.")] = 200_000,
    workers: Annotated[int, typer.Option(min=1, metavar="N",
                                         help="Local worker processes.")] = 2,
    reset: Annotated[bool, typer.Option(
        "--reset", help="Replace the demo's graph even when it holds something (an earlier "
        "demo, nodes of your own, applied migrations): all of it is deleted.")] = False,
) -> None:
    """The whole story on the embedded stack: a sample knowledge graph, the migrations in
    KGMIGRATE_MIGRATIONS_DIR run as batches on local workers with live progress, the report.

    Only the demo's own graph (`kgmigrate_demo`) is replaced; nothing else is touched. When
    that graph holds anything, the demo asks first (on a terminal) or refuses unless --reset.
    """
    settings = load_settings(graph_name=DEMO_GRAPH)

    def replace(graph: GraphTarget, held: DemoGraph) -> bool:
        if reset:
            return True
        what = f"the demo's graph {graph.display} holds {held.describe()}"
        if not sys.stdin.isatty():
            make = "make demo" + (" GRAPH=neo4j" if graph.backend == "neo4j" else "")
            raise KgmError(f"{what}; the demo replaces it only when asked: "
                           f"`kgmigrate demo --reset` (`{make} RESET=1`)")
        return typer.confirm(f"{what[0].upper()}{what[1:]}. Delete all of it and load the "
                             "demo anew?")

    with service.demo(settings, replace=replace) as migrations:
        endpoints = migrations.endpoints
        assert endpoints.stack is not None
        out.print(f"[bold]1.[/] embedded stack up on "
                  f"{endpoints.stack.broker_url.rsplit('/', 1)[0]}"
                  + (f", embedded Neo4j on {endpoints.graph.driver_uri}"
                     if endpoints.neo4j else ""))
        out.print(f"[bold]2.[/] loading a {nodes:,}-node Vitalyst-like sample graph into "
                  f"{endpoints.graph.display}")
        before = migrations.load_sample(nodes)
        migrations.mark_demo()
        _show_summary(before, False)
        out.print(f"[bold]3.[/] {len(migrations.registry())} migrations in "
                  f"{settings.migrations_dir}, run by {workers} local worker processes:")
        for planned in migrations.plan():
            out.print(f"   {planned.version} {escape(planned.description)}: "
                      + "; ".join(f"{s.estimated_entities or 0:,} entities"
                                  for s in planned.steps))
        with migrations.local_workers(workers):
            run_id = migrations.upgrade(created_by="kgmigrate demo")
            assert run_id is not None
            run = follow(migrations, run_id)
        out.print("[bold]4.[/] the run, as the ledger in the graph records it:")
        show_run(run)
        _show_summary(migrations.summary(), False)
        built = migrations.build_report(run.id)
        paths = migrations.write_report(built)
        m = built.metrics
        out.print(f"[bold]5.[/] report: {m.entities_done:,} entities in {m.duration_s:.1f} s, "
                  f"{m.batches_done} batches, error rate {m.error_rate:.1%}, validation "
                  f"{ {True: 'passed', False: 'failed', None: 'none'}[m.validation_success]}; "
                  "written to "
                  + ", ".join(str(p) for p in paths))
    # Later commands use the configured graph (default `vitalyst`), not the demo's: say how
    # to point them at it, or `list` shows everything pending on an empty graph.
    explore = ("KGMIGRATE_STACK_GRAPH=neo4j" if endpoints.neo4j is not None
               else f"KGMIGRATE_GRAPH_NAME={DEMO_GRAPH}")
    out.print(f"The demo's graph is {endpoints.graph.display}. Other commands use the graph "
              "your settings name (by default FalkorDB's `vitalyst`; each prints its graph "
              f"first): point them at the demo's with `export {explore}`, then try "
              f"`kgmigrate history`, `list`, `status {run.id}`. Stop the server with "
              "`kgmigrate stack down`.", highlight=False)
    if run.status is not MigrationStatus.COMPLETED:
        raise typer.Exit(1)
