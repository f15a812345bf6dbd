"""The `kgmigrate` command: a thin layer that parses arguments, calls the Python API and formats
what it returns. A `KgmError` becomes one line on stderr and exit code 1; never a traceback."""

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from kgmigrate import __version__, api, runs
from kgmigrate.backup.snapshot import load_manifest
from kgmigrate.backup.store import open_store
from kgmigrate.connect import Endpoints, backend_for, open_backend, resolve
from kgmigrate.dev.local_workers import LocalWorkers
from kgmigrate.dev.neo4j_stack import EmbeddedNeo4j, Neo4jStatus, version_named
from kgmigrate.dev.neo4j_stack import build as build_neo4j
from kgmigrate.dev.neo4j_stack import versions as neo4j_versions
from kgmigrate.dev.sample import GraphSummary, load_sample, summarize
from kgmigrate.dev.stack import EmbeddedStack, StackStatus
from kgmigrate.errors import KgmError
from kgmigrate.fingerprint import fingerprint as fingerprint_of
from kgmigrate.graph.base import GraphBackend
from kgmigrate.graph.falkordb import FalkorDBBackend
from kgmigrate.ledger.lock import MigrationLock, default_holder
from kgmigrate.model.records import Conflict, MigrationStatus, RunRecord
from kgmigrate.model.registry import Registry
from kgmigrate.model.status import ROLLBACK_STATES
from kgmigrate.monitoring import hooks, logs
from kgmigrate.monitoring.report import build_report, write_report
from kgmigrate.runtime.app import BATCH_QUEUE, CONTROL_QUEUE, QUEUE_MODULES, configure
from kgmigrate.runtime.settings import Settings, load_settings

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Distributed, resumable, reversible migrations for a knowledge graph.")
stack_app = typer.Typer(no_args_is_help=True, help="The embedded graph + broker server.")
app.add_typer(stack_app, name="stack")
out = Console()
DEMO_GRAPH = "kgmigrate_demo"
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
LatestRun = Annotated[str | None, typer.Argument(help="Run id (default: the latest run).")]
WaitFlag = Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the run to its end.")]
LocalWorkersFlag = Annotated[int, typer.Option(
    min=0, help="Start N worker processes for this run (no other setup needed).")]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


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
        _print_json({**dataclasses.asdict(status), "redis_url": status.redis_url,
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
    with open_backend(settings) as backend, _counting(quiet=as_json) as advance:
        summary = load_sample(backend, nodes, seed=seed, progress=advance)
    _show_summary(summary, as_json)


@contextlib.contextmanager
def _counting(*, quiet: bool = False) -> Iterator[Callable[[str, int], None]]:
    """Progress for streaming work of unknown size: one counter per kind of thing."""
    with Progress(TextColumn("{task.description:>16}"), BarColumn(),
                  TextColumn("{task.completed:>11,}"), TimeElapsedColumn(),
                  console=Console(stderr=True), disable=quiet) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(what: str, count: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=None)
            bar.advance(tasks[what], count)

        yield advance


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
    registry = Registry.load(settings.migrations_dir)
    with backend_for(endpoints.graph, settings, verify=True) as backend:
        _reset_demo_graph(backend, endpoints)
        out.print(f"[bold]2.[/] loading a {nodes:,}-node Vitalyst-like sample graph into "
                  f"{endpoints.graph.display}")
        before = load_sample(backend, nodes)
        if endpoints.neo4j is not None:
            endpoints.neo4j.mark_demo(backend)  # a later demo may replace what this one loads
        _show_summary(before, False)
        out.print(f"[bold]3.[/] {len(registry)} migrations in {settings.migrations_dir}, "
                  f"run by {workers} local worker processes:")
        for planned in api.plan(backend, registry):
            out.print(f"   {planned.version} {escape(planned.description)}: "
                      + "; ".join(f"{s.estimated_entities or 0:,} entities"
                                  for s in planned.steps))
        with LocalWorkers(workers, endpoints, log_dir=settings.stack_dir / "workers"):
            run_id = runs.enqueue_migration(backend, registry, endpoints,
                                            created_by="kgmigrate demo")
            assert run_id is not None
            run = _watch(backend, run_id)
        out.print("[bold]4.[/] the run, as the ledger in the graph records it:")
        _show_run(run)
        _show_summary(summarize(backend), False)
        built = build_report(backend, open_store(settings.backup_dir), run.id)
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


def _dump(value: Any) -> Any:
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


@contextlib.contextmanager
def _graph() -> Iterator[tuple[GraphBackend, Settings]]:
    settings = load_settings()
    with open_backend(settings) as backend:
        yield backend, settings


@app.command("list")
def list_cmd(as_json: JsonFlag = False) -> None:
    """Migrations and whether each is applied, pending or changed since."""
    with _graph() as (backend, settings):
        items = api.list_migrations(backend, Registry.load(settings.migrations_dir))
    if as_json:
        _print_json(_dump(items))
        return
    table = Table("version", "description", "state", "applied at")
    colors = {"applied": "green", "pending": "yellow"}
    for item in items:
        color = colors.get(item.state, "red")
        table.add_row(item.version, escape(item.description), f"[{color}]{item.state}[/]",
                      f"{item.applied_at:%Y-%m-%d %H:%M}" if item.applied_at else "")
    out.print(table)


@app.command()
def plan(
    target: Annotated[str | None, typer.Argument(help="Version to plan up to (default: all).")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """What `upgrade` would run, with entity counts per step. Writes nothing."""
    with _graph() as (backend, settings):
        planned = api.plan(backend, Registry.load(settings.migrations_dir), target)
    if as_json:
        _print_json(_dump(planned))
        return
    if not planned:
        out.print("Nothing to apply: the graph is up to date.")
        return
    table = Table("version", "step", "operation", "entities", title="Plan")
    for migration in planned:
        table.add_row(f"[bold]{migration.version}[/]", escape(migration.description), "", "")
        for step in migration.steps:
            count = ("runs once" if step.estimated_entities is None
                     else f"{step.estimated_entities:,}")
            table.add_row("", f"{step.order}. {escape(step.description)}", step.operation, count)
    out.print(table)


@app.command()
def history(as_json: JsonFlag = False) -> None:
    """The applied chain, oldest first."""
    with _graph() as (backend, _):
        applied = api.history(backend)
    if as_json:
        _print_json(_dump(applied))
        return
    table = Table("#", "version", "description", "applied at", "took", "by", "run")
    for a in applied:
        table.add_row(str(a.sequence), a.version, escape(a.description),
                      f"{a.applied_at:%Y-%m-%d %H:%M}",
                      f"{a.duration_ms / 1000:.1f}s", a.applied_by, a.run_id)
    out.print(table)


@app.command()
def validate(as_json: JsonFlag = False) -> None:
    """Check that applied migrations' files are unchanged and present (exit 1 if not)."""
    with _graph() as (backend, settings):
        result = api.validate(backend, Registry.load(settings.migrations_dir))
    if as_json:
        _print_json({**result.model_dump(mode="json"), "valid": result.valid})
    else:
        for problem in result.problems:
            out.print(f"[red]{problem.version}[/]: {escape(problem.message)}", highlight=False)
        verdict = "[green]valid[/]" if result.valid else "[red]invalid[/]"
        out.print(f"{verdict}: {result.applied} applied, {result.pending} pending")
    if not result.valid:
        raise typer.Exit(1)


@app.command()
def repair(as_json: JsonFlag = False) -> None:
    """Re-record the checksums of applied migrations whose files were changed on purpose."""
    with _graph() as (backend, settings):
        result = api.repair(backend, Registry.load(settings.migrations_dir))
    if as_json:
        _print_json(result.model_dump(mode="json"))
    else:
        out.print(f"repaired: {', '.join(result.repaired) or 'nothing to repair'}")


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="What the migration does, e.g. 'add person age'.")],
    cypher: Annotated[bool, typer.Option("--cypher", help="A .cypher file instead of .py.")]
    = False,
    author: Annotated[str, typer.Option(help="Recorded as the migration's author.")] = "",
) -> None:
    """Scaffold the next migration file."""
    settings = load_settings()
    path = api.new_migration(settings.migrations_dir, name, kind="cypher" if cypher else "py",
                             author=author or default_holder().split("@")[0])
    out.print(f"created {path}")


@app.command()
def status(
    run_id: LatestRun = None,
    watch: Annotated[bool, typer.Option("--watch", help="Live progress until the run ends.")]
    = False,
    as_json: JsonFlag = False,
) -> None:
    """A run's status, history and steps, with progress."""
    with _graph() as (backend, settings):
        run = api.status(backend, run_id)
        if watch:
            run = _watch(backend, run.id, quiet=as_json)
        conflicts = (runs.conflicts(open_store(settings.backup_dir), run)
                     if run.status in ROLLBACK_STATES | {MigrationStatus.ROLLED_BACK}
                     else [])
    if as_json:
        _print_json({**run.model_dump(mode="json"),
                     "conflicts": [c.model_dump(mode="json") for c in conflicts]})
        return
    _show_run(run)
    _show_conflicts(conflicts)


def _show_run(run: RunRecord) -> None:
    out.print(f"run {run.id}: [bold]{run.status}[/]  migrations {', '.join(run.migrations)}")
    out.print(f"  by {run.created_by}; history: {' -> '.join(run.history)}", highlight=False)
    if run.error_log:
        out.print(f"  [red]error:[/] {escape(run.error_log)}", highlight=False)
    if run.backup_ref:
        out.print(f"  backup before the run: {escape(run.backup_ref)}", highlight=False)
    table = Table("step", "", "status", "batches", "entities", "rate", box=box.SIMPLE_HEAD,
                  padding=(0, 1))
    for column, width in zip(table.columns, (7, 18, 9, 7, 13, 9), strict=True):
        column.no_wrap, column.min_width, column.overflow = True, width, "ellipsis"
    table.columns[1].max_width = 18
    for step, prog in zip(run.steps, runs.progress(run), strict=True):
        rate = f"{prog.entities_per_s:,.0f}/s" if prog.entities_per_s else ""
        table.add_row(f"{step.order} {step.version}", escape(step.description), step.status,
                      f"{step.batches_done}/{step.batches_total}",
                      f"{step.entities_done:,}/{step.entities_total:,}", rate)
    out.print(table)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Processes in this worker.")] = 1,
    queues: Annotated[str, typer.Option(help="Comma-separated queues to serve.")]
    = f"{BATCH_QUEUE},{CONTROL_QUEUE}",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "WARNING",
) -> None:
    """Run a Celery worker for the batch and/or control queue (scale by starting more)."""
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(wanted) - set(QUEUE_MODULES))
    if unknown or not wanted:
        raise KgmError(f"unknown queue(s) {', '.join(unknown) or '(none)'}; "
                       f"use {BATCH_QUEUE} and/or {CONTROL_QUEUE}")
    endpoints = resolve(load_settings())
    logs.configure()  # kgmigrate's own lines: JSON with run, step and batch (by default)
    hooks.load_configured()  # KGMIGRATE_HOOKS: imported before the pool forks
    celery_app = configure(endpoints.broker_url.get_secret_value(),
                           endpoints.result_backend.get_secret_value())
    celery_app.conf.imports = [QUEUE_MODULES[q] for q in wanted]
    celery_app.worker_main(["worker", "-Q", ",".join(wanted), "-c", str(concurrency),
                            "-l", loglevel, "-n", f"kgm{os.getpid()}@%h",
                            "--without-gossip", "--without-mingle"])


@app.command()
def upgrade(
    target: Annotated[str | None, typer.Argument(help="Version to upgrade to (default: all).")]
    = None,
    wait: WaitFlag = True,
    local_workers: LocalWorkersFlag = 0,
    as_json: JsonFlag = False,
) -> None:
    """Apply pending migrations as batched tasks on the workers, with live progress."""

    def start(backend: GraphBackend, settings: Settings, endpoints: Endpoints) -> str | None:
        registry = Registry.load(settings.migrations_dir)
        return runs.enqueue_migration(backend, registry, endpoints, target=target)

    _follow(start, wait=wait, local_workers=local_workers, as_json=as_json)


@app.command()
def downgrade(
    target: Annotated[str, typer.Argument(help="Version to go back to (it stays applied), "
                                          "or `base` to undo every migration.")],
    wait: WaitFlag = True,
    local_workers: LocalWorkersFlag = 0,
    as_json: JsonFlag = False,
) -> None:
    """Run the inverses of the migrations applied after TARGET, newest first, batched and
    validated like an upgrade (refused if one of them is irreversible)."""

    def start(backend: GraphBackend, settings: Settings, endpoints: Endpoints) -> str | None:
        registry = Registry.load(settings.migrations_dir)
        return runs.downgrade(backend, registry, endpoints, target)

    _follow(start, wait=wait, local_workers=local_workers, as_json=as_json,
            nothing=f"Nothing to undo: no migration after {target} is applied.")


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to resume.")],
    wait: WaitFlag = True,
    local_workers: LocalWorkersFlag = 0,
    as_json: JsonFlag = False,
) -> None:
    """Re-enqueue the batches of a run that are not committed (after any crash)."""

    def start(backend: GraphBackend, settings: Settings, endpoints: Endpoints) -> str | None:
        runs.resume(backend, endpoints, run_id)
        return run_id

    _follow(start, wait=wait, local_workers=local_workers, as_json=as_json)


@app.command()
def rollback(
    run_id: Annotated[str, typer.Argument(help="The failed run to roll back.")],
    force: Annotated[bool, typer.Option(
        "--force", help="Also restore entities changed by someone else since the run wrote "
        "them (their change is lost).")] = False,
    wait: WaitFlag = True,
    local_workers: LocalWorkersFlag = 0,
    as_json: JsonFlag = False,
) -> None:
    """Restore what a failed run changed from its undo log (or continue a stopped rollback)."""

    def start(backend: GraphBackend, settings: Settings, endpoints: Endpoints) -> str | None:
        runs.rollback(backend, endpoints, run_id, force=force)
        return run_id

    _follow(start, wait=wait, local_workers=local_workers, as_json=as_json,
            success=MigrationStatus.ROLLED_BACK)


@app.command()
def fingerprint(as_json: JsonFlag = False) -> None:
    """An order-independent digest of the graph's labels, properties and relationships (ledger
    excluded): equal digests, equal graphs. Streams the graph, with progress."""
    with _graph() as (backend, _), _counting(quiet=as_json) as advance:
        digest = fingerprint_of(backend, progress=advance)
    if as_json:
        _print_json(digest.model_dump())
    else:
        out.print(str(digest))


backup_app = typer.Typer(help="Snapshots of the graph in the backup store (KGMIGRATE_BACKUP_DIR).",
                         no_args_is_help=True)
app.add_typer(backup_app, name="backup")


@backup_app.command("create")
def backup_create(
    labels: Annotated[list[str] | None, typer.Option(
        "--labels", "-l", help="Only nodes with these labels (and their relationships); "
        "repeat the option for several.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Export the graph (or some labels) to the backup store, streaming, with progress."""
    with _graph() as (backend, settings), _counting(quiet=as_json) as advance:
        service = api.BackupService(backend, open_store(settings.backup_dir))
        manifest = service.create_backup(labels or (), progress=advance)
    if as_json:
        _print_json(manifest.model_dump(mode="json"))
        return
    scope = ", ".join(manifest.labels) or "whole graph"
    out.print(f"snapshot [bold]{manifest.id}[/] ({scope}): {manifest.nodes:,} nodes, "
              f"{manifest.relationships:,} relationships in {settings.backup_dir}")


@backup_app.command("list")
def backup_list(as_json: JsonFlag = False) -> None:
    """Complete snapshots, newest first."""
    with _graph() as (backend, settings):
        manifests = api.BackupService(backend, open_store(settings.backup_dir)).list_backups()
    if as_json:
        _print_json([m.model_dump(mode="json") for m in manifests])
        return
    if not manifests:
        out.print(f"no snapshots in {settings.backup_dir}")
    for m in manifests:
        scope = ", ".join(m.labels) or "whole graph"
        out.print(f"{m.id}  {m.created_at:%Y-%m-%d %H:%M:%S}  {scope}"
                  f"  {m.nodes:,} nodes  {m.relationships:,} relationships  {m.graph}"
                  + (f"  ({escape(m.reason)})" if m.reason else ""), highlight=False)


@backup_app.command("restore")
def backup_restore(
    snapshot_id: Annotated[str, typer.Argument(help="Snapshot id (`kgmigrate backup list`).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Compare the graph's "
                                         "fingerprint with the snapshot's afterwards.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Replace what the snapshot covers (the whole graph, or its labels) with the snapshot.
    Writes applications made since then to those entities are lost: it asks first."""
    with _graph() as (backend, settings):
        service = api.BackupService(backend, open_store(settings.backup_dir))
        manifest = load_manifest(service.store, snapshot_id)
        scope = ", ".join(manifest.labels) or "the whole graph"
        if not yes and not typer.confirm(
                f"Replace {scope} of {backend.target.display} with snapshot {snapshot_id} "
                f"({manifest.nodes:,} nodes, taken {manifest.created_at:%Y-%m-%d %H:%M})?"):
            raise typer.Exit(1)
        with _counting(quiet=as_json) as advance:
            result = service.restore_backup(snapshot_id, verify=verify, progress=advance)
    if as_json:
        _print_json(result.model_dump())
    else:
        out.print(f"restored snapshot {result.id}: {result.nodes:,} nodes, "
                  f"{result.relationships:,} relationships ({result.nodes_deleted:,} nodes "
                  "replaced)" + {True: "; fingerprint verified", False: "",
                                 None: ""}[result.verified])
    if result.verified is False:
        out.print("[red]the graph's fingerprint differs from the snapshot's[/]")
        raise typer.Exit(1)


def _follow(start: Callable[[GraphBackend, Settings, Endpoints], str | None], *, wait: bool,
            local_workers: int, as_json: bool,
            success: MigrationStatus = MigrationStatus.COMPLETED,
            nothing: str = "Nothing to apply: the graph is up to date.") -> None:
    """Start (or resume) a run, with local workers if asked, and follow it unless told not to."""
    settings = load_settings()
    endpoints = resolve(settings)
    with backend_for(endpoints.graph, settings, verify=True) as backend, \
            contextlib.ExitStack() as stack:
        if local_workers:
            stack.enter_context(LocalWorkers(local_workers, endpoints,
                                             log_dir=settings.stack_dir / "workers"))
        run_id = start(backend, settings, endpoints)
        if run_id is None:
            _say(as_json, {"run_id": None, "status": "up_to_date"}, nothing)
            return
        if not (wait or local_workers):
            _say(as_json, {"run_id": run_id, "status": "enqueued"},
                 f"run {run_id} enqueued; follow it with `kgmigrate status {run_id} --watch`")
            return
        run = _watch(backend, run_id, quiet=as_json)
        if run.status is MigrationStatus.ROLLBACK_BLOCKED and not as_json:
            _show_conflicts(runs.conflicts(open_store(settings.backup_dir), run))
    _finish_output(run, as_json, success)


def _show_conflicts(conflicts: list[Conflict], limit: int = 20) -> None:
    for c in conflicts[:limit]:
        out.print(f"  conflict: step {c.step} batch {c.batch} key {c.key!r}: "
                  f"{escape(c.reason)}; now {escape(str(c.now))[:200]}", highlight=False)
    if len(conflicts) > limit:
        out.print(f"  ... and {len(conflicts) - limit} more (`kgmigrate status RUN --json`)")


def _say(as_json: bool, data: dict[str, Any], text: str) -> None:
    if as_json:
        _print_json(data)
    else:
        out.print(text)


def _finish_output(run: RunRecord, as_json: bool,
                   success: MigrationStatus = MigrationStatus.COMPLETED) -> None:
    if as_json:
        _print_json(run.model_dump(mode="json"))
    else:
        color = "green" if run.status is success else "red"
        out.print(f"run {run.id}: [bold {color}]{run.status}[/]")
        if run.error_log:
            out.print(f"  {escape(run.error_log)}", highlight=False)
    if run.status is not success:
        raise typer.Exit(1)


def _watch(backend: GraphBackend, run_id: str, *, quiet: bool = False) -> RunRecord:
    """Live progress bars per step (batches, entities, throughput, ETA) until the run ends."""
    bars = Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.fields[counts]}"), TextColumn("{task.fields[rate]}"),
                    TextColumn("{task.fields[eta]}"), console=Console(stderr=True),
                    disable=quiet)
    tasks: dict[int, TaskID] = {}

    def show(run: RunRecord) -> None:
        for step in runs.progress(run):
            if step.order not in tasks:
                tasks[step.order] = bars.add_task(
                    f"{step.order}. {escape(step.description[:40])}", total=None, counts="",
                    rate="",
                    eta="")
            rate = f"{step.entities_per_s:,.0f}/s" if step.entities_per_s else ""
            eta = (f"ETA {step.eta_s:,.0f}s" if step.eta_s and step.status is
                   MigrationStatus.IN_PROGRESS else str(step.status))
            total = step.entities_total or step.batches_total or None
            done = step.entities_done if step.entities_total else step.batches_done
            counts = (f"{step.entities_done:,}/{step.entities_total:,} entities"
                      if step.entities_total else
                      f"{step.batches_done}/{step.batches_total} batches")
            bars.update(tasks[step.order], completed=done, total=total, counts=counts,
                        rate=rate, eta=eta)

    with bars:
        return runs.wait(backend, run_id, on_progress=show)


@app.command()
def unlock(
    force: Annotated[bool, typer.Option("--force", help="Break a lock whose lease is still "
                                                         "live (its holder may be running!).")]
    = False,
) -> None:
    """Clear the migration lock: an expired one always, a live one only with --force."""
    with _graph() as (backend, _):
        cleared = MigrationLock(backend).break_lock(force=force)
    if cleared is None:
        out.print("the migration lock is free")
    else:
        out.print(f"cleared the lock of {cleared.holder} (token {cleared.token}, since "
                  f"{cleared.acquired_at:%Y-%m-%d %H:%M:%S} UTC)")


@app.command()
def version() -> None:
    """Print kgmigrate's version."""
    out.print(__version__)


# the monitoring verbs live in their own module and register on `app` when imported
from kgmigrate import cli_monitoring  # noqa: E402, F401


def main() -> None:
    try:
        app()
    except KgmError as exc:
        sys.stderr.write(f"kgmigrate: error: {exc}\n")
        sys.exit(1)


if __name__ == "__main__":
    # `python -m kgmigrate.cli`: run the importable module's app, the one that
    # cli_monitoring registered its verbs on
    from kgmigrate import cli as importable

    importable.main()
