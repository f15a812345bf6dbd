"""`list`, `plan`, `history`, `validate`, `repair`, `import-chain`, `new`, `status`,
`fingerprint`, `unlock`, `version`: what is applied, what is pending, what a run did."""

import dataclasses
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kgmigrate import __version__
from kgmigrate.cli.common import (
    JsonFlag,
    LatestRun,
    OutOfOrderFlag,
    app,
    counting,
    dump,
    err,
    follow,
    out,
    print_json,
    session,
    show_conflicts,
    show_held,
    show_offending,
    show_run,
    show_table,
    show_waiting,
)
from kgmigrate.errors import KgmError
from kgmigrate.model.records import (
    AdoptionPlan,
    MigrationListing,
    PlannedStep,
)
from kgmigrate.model.status import UNDOING
from kgmigrate.runtime.settings import load_settings
from kgmigrate.service import default_author, new_migration


@app.command("list")
def list_cmd(
    graph: Annotated[bool, typer.Option(
        "--graph", help="Show the dependency graph: each migration under what it depends on, "
        "with its state and the order it was applied in.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Migrations and whether each is applied, pending or changed since (--graph: which
    depends on which)."""
    with session(as_json) as migrations:
        items = migrations.list_migrations()
    if as_json:
        print_json(dump(items))
        return
    colors = {"applied": "green", "pending": "yellow", "skipped": "cyan"}
    if graph:
        for line in dependency_tree(items, colors, unicode=out.encoding.startswith("utf")):
            out.print(line, highlight=False)
        return
    table = Table("version", "description", "state", "applied at")
    for item in items:
        color = colors.get(item.state, "red")
        state = f"[{color}]{item.state}[/]" + (" (repeatable, changed)"
                                                if item.repeatable and item.applied_at
                                                and item.state in ("pending", "skipped")
                                                else "")
        # a repeatable one as its file is named (R0002), though it is version V0002 everywhere
        shown = "R" + item.version.removeprefix("V") if item.repeatable else item.version
        table.add_row(shown,
                      escape(item.description), state,
                      f"{item.applied_at:%Y-%m-%d %H:%M}" if item.applied_at else "")
    show_table(table)


def dependency_tree(items: list[MigrationListing], colors: dict[str, str], *,
                    unicode: bool = True) -> list[str]:
    """The migrations as a tree, one line each (rich markup): each under the dependency that
    comes last in the order they apply in, its other dependencies named on its line; the
    state, with `#n` for the n-th applied of those applied now."""
    known = {item.version: item for item in items}
    rank = {version: n for n, version in enumerate(known)}  # the order they apply in
    children: dict[str | None, list[str]] = {}
    parent_of: dict[str, str | None] = {}
    for item in items:
        deps = [d for d in item.depends_on if d in known]
        parent = max(deps, key=rank.__getitem__) if deps else None
        parent_of[item.version] = parent
        children.setdefault(parent, []).append(item.version)
    tee, last, bar = ("├── ", "└── ", "│   ") if unicode else ("|-- ", "`-- ", "|   ")

    def label(version: str) -> str:
        item = known[version]
        state = item.state if item.applied_order is None else (
            f"applied #{item.applied_order}" if item.state == "applied"
            else f"{item.state}, applied #{item.applied_order}")
        also = [d for d in item.depends_on if d != parent_of[version]]
        return (f"[bold]{version}[/] {escape(item.description)}  "
                f"[{colors.get(item.state, 'red')}]{state}[/]"
                + (f"  (also depends on {', '.join(also)})" if also else ""))

    lines = ["Migrations by dependency, each under what it depends on (#n: applied n-th):"]

    def walk(version: str, prefix: str) -> None:
        below = children.get(version, [])
        for n, child in enumerate(below):
            end = n == len(below) - 1
            lines.append(prefix + (last if end else tee) + label(child))
            walk(child, prefix + ("    " if end else bar))

    for root in children.get(None, []):
        lines.append(label(root))
        walk(root, "")
    return lines


@app.command()
def plan(
    target: Annotated[str | None, typer.Argument(help="Version to plan up to (default: all).")]
    = None,
    out_of_order: OutOfOrderFlag = False,
    preview: Annotated[int | None, typer.Option(
        min=1, max=1000, metavar="N", help="Also show each batched step's change on its first "
        "N entities, before and after, and whether they pass its validation (nothing is "
        "changed: on FalkorDB a library op puts back what it changed, any other step runs on "
        "a scratch copy of the graph, up to KGMIGRATE_PROBE_COPY_MAX_MB).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """What `upgrade` would run, with entity counts per step, and skip. Writes nothing."""
    with session(as_json) as migrations:
        planned = migrations.plan(target, out_of_order=out_of_order or None, preview=preview)
    for migration in planned:  # a scaffold's `MyLabel`, a typo: say so before an empty run
        for step in migration.steps:
            if step.estimated_entities == 0:
                err.print(f"[yellow]warning:[/] {migration.version} step {step.order} "
                          f"({escape(step.description)}) matches no entities on this graph: "
                          "check its label or type and `where`", highlight=False)
    if as_json:
        print_json(dump(planned))
        return
    if not planned:
        out.print("Nothing to apply: the graph is up to date.")
        return
    table = Table("version", "step", "operation", "entities", title="Plan")
    for migration in planned:
        if migration.skipped is not None:
            table.add_row(f"[bold]{migration.version}[/]", escape(migration.description),
                          "[cyan]skipped[/]", escape(migration.skipped))
            continue
        table.add_row(f"[bold]{migration.version}[/]", escape(migration.description), "", "")
        for step in migration.steps:
            count = ("runs once" if step.estimated_entities is None
                     else f"{step.estimated_entities:,}")
            table.add_row("", f"{step.order}. {escape(step.description)}", step.operation, count)
    show_table(table)
    for migration in planned:
        for step in migration.steps:
            if step.preview is not None:
                _show_preview(migration.version, step)


def _show_preview(version: str, step: PlannedStep) -> None:
    """A step's change on its first entities, one line each: what changes, and whether the
    entity passes the step's validation. Whole lines (not a table): keys and values are long."""
    title = f"{version} step {step.order}: {step.description}"
    if not step.preview:
        out.print(f"{escape(title)}: {escape(step.preview_note or 'nothing to show')}",
                  highlight=False, soft_wrap=True)
        return
    out.print(f"{escape(title)} (first {len(step.preview)} entities):", highlight=False,
              soft_wrap=True)
    for entity in step.preview:
        changes = [f"{k} {_value(entity.before, k)} -> {_value(entity.after, k)}"
                   for k in sorted(entity.before.keys() | entity.after.keys())
                   if entity.before.get(k, ABSENT) != entity.after.get(k, ABSENT)]
        if entity.labels_before != entity.labels_after:
            changes.append(f"labels {entity.labels_before} -> {entity.labels_after}")
        verdict = {True: "; [green]valid[/]", False: "; [red]fails validation[/]",
                   None: ""}[entity.valid]
        out.print(f"  key {escape(str(entity.key))}: "
                  f"{escape('; '.join(changes) or 'unchanged')}{verdict}",
                  highlight=False, soft_wrap=True)


ABSENT = object()


def _value(values: dict[str, object], name: str) -> str:
    return repr(values[name]) if name in values else "(absent)"


@app.command()
def history(as_json: JsonFlag = False) -> None:
    """The applied chain, oldest first, with the migrations a precondition skipped."""
    with session(as_json) as migrations:
        applied = migrations.history()
    if as_json:
        print_json(dump(applied))
        return
    table = Table("#", "version", "description", "applied at", "took", "by", "run")
    for a in applied:
        skipped = a.state == "skipped"
        note = (f" [cyan](skipped: {escape(a.reason or '')})[/]" if skipped else
                f" [cyan](adopted from {escape(a.adopted.tool)}: {escape(a.adopted.source)})[/]"
                if a.adopted else " [cyan](repeated later)[/]" if a.state == "repeated" else
                " [cyan](undone by a rollback: applied afresh by the next upgrade)[/]"
                if a.state == "undone" else
                f" [cyan](repeats #{a.repeat_of})[/]" if a.repeat_of else "")
        table.add_row(str(a.sequence), a.version, escape(a.description) + note,
                      f"{a.applied_at:%Y-%m-%d %H:%M}",
                      "skipped" if skipped else f"{a.duration_ms / 1000:.1f}s",
                      escape(a.applied_by),
                      a.run_id or ("import-chain" if a.adopted else ""))
    show_table(table)


@app.command()
def validate(as_json: JsonFlag = False) -> None:
    """Check that applied migrations' files are unchanged and present (exit 1 if not)."""
    with session(as_json) as migrations:
        result = migrations.validate()
    if as_json:
        print_json({**result.model_dump(mode="json"), "valid": result.valid})
    else:
        for problem in result.problems:
            out.print(f"[red]{problem.version}[/]: {escape(problem.message)}", highlight=False)
        verdict = "[green]valid[/]" if result.valid else "[red]invalid[/]"
        skipped = f", {result.skipped} skipped" if result.skipped else ""
        out.print(f"{verdict}: {result.applied} applied, {result.pending} pending{skipped}")
    if not result.valid:
        raise typer.Exit(1)


@app.command()
def repair(as_json: JsonFlag = False) -> None:
    """Re-record the checksums of applied migrations whose files were changed on purpose."""
    with session(as_json) as migrations:
        result = migrations.repair()
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        out.print(f"repaired: {', '.join(result.repaired) or 'nothing to repair'}")


@app.command("import-chain")
def import_chain(
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would be adopted, and what `upgrade` would apply after "
        "it; write nothing.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Adopt the chain of migrations neo4j-migrations applied to this Neo4j graph (its
    :__Neo4jMigration nodes, read only) into kgmigrate's empty chain, so that `upgrade` does
    not run them again. Each version needs its file in the migrations directory; a .cypher
    one must be the file applied (neo4j-migrations' checksum)."""
    with session(as_json) as migrations:
        plan = migrations.import_chain(dry_run=dry_run)
    if as_json:
        print_json(plan.model_dump(mode="json"))
        return
    show_adoption(plan)


def show_adoption(plan: AdoptionPlan) -> None:
    """The adopted chain, one row per migration with how its checksum compared, and what
    `upgrade` does after it."""
    count = f"{len(plan.adopted)} migration{'s' if len(plan.adopted) != 1 else ''}"
    out.print(f"import-chain would adopt the neo4j-migrations chain, {count} (nothing was "
              "written):" if plan.dry_run else
              f"adopted the neo4j-migrations chain, {count}, as kgmigrate's chain (its "
              ":__Neo4jMigration nodes are left as they are):", highlight=False)
    table = Table("#", "version", "file", "neo4j-migrations applied", "at", "by", "checksum")
    for order, item in enumerate(plan.adopted, start=1):
        kind = "" if item.type == "CYPHER" else f" ({escape(item.type)})"
        table.add_row(str(order), item.version, escape(item.file), escape(item.source) + kind,
                      f"{item.applied_at:%Y-%m-%d %H:%M}", escape(item.applied_by),
                      escape(f"{item.checksum_note}" + (f" ({item.checksum})"
                                                          if item.checksum_compared else "")))
    show_table(table)
    if plan.not_in_chain:
        out.print(f"not in the chain but below its last migration: {', '.join(plan.not_in_chain)}"
                  ": `kgmigrate upgrade` refuses them as out of order unless allowed "
                  "(`--out-of-order`), or skips them where an `assume` precondition does not "
                  "hold", highlight=False)
    out.print(f"after the chain, `kgmigrate upgrade` applies: {', '.join(plan.pending)}"
              if plan.pending else "nothing comes after the chain: `kgmigrate upgrade` has "
              "nothing to apply", highlight=False)


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="What the migration does, e.g. 'add person age'.")],
    cypher: Annotated[bool, typer.Option("--cypher", help="A .cypher file instead of .py.")]
    = False,
    author: Annotated[str, typer.Option(help="Recorded as the migration's author.")] = "",
) -> None:
    """Scaffold the next migration file."""
    path = new_migration(load_settings(), name, kind="cypher" if cypher else "py",
                         author=author or default_author())
    out.print(f"created {path}")


@app.command()
def status(
    run_id: LatestRun = None,
    watch: Annotated[bool, typer.Option("--watch", help="Live progress until the run ends.")]
    = False,
    as_json: JsonFlag = False,
) -> None:
    """A run's status, history and steps, with progress; and, while it has not ended, whether
    it waits for workers (none serves a queue it needs)."""
    with session(as_json) as migrations:
        run = migrations.status(run_id)
        if watch:
            run = follow(migrations, run.id, quiet=as_json,
                         watch=migrations.worker_watch(at_once=True))
        conflicts = (migrations.conflicts(run)
                     if run.status in UNDOING
                     else [])
        failed = migrations.failed_batches(run)
        undone = migrations.progress(run) if run.status in UNDOING else []
        workers = migrations.waiting_for_workers(run)
        waiting = migrations.workers_hint(run, workers) if workers else None
        try:
            held, unread = migrations.held_by_dead_workers(run), None
        except KgmError as exc:
            held, unread = [], str(exc)
    if as_json:
        print_json({**run.model_dump(mode="json"),
                     "conflicts": [c.model_dump(mode="json") for c in conflicts],
                     "failed_batches": [f.model_dump(mode="json") for f in failed],
                     "rollback_progress": [dataclasses.asdict(p) for p in undone],
                     "waiting_for_workers": ({**workers.as_json(), "message": waiting}
                                             if workers else None),
                     "held_by_dead_workers": [h.as_json() for h in held],
                     "held_by_dead_workers_error": unread})
        return
    show_run(run, stalled=workers is not None, undone=undone)
    if waiting:
        show_waiting(waiting)
    show_held(run, held, unread)
    show_conflicts(conflicts)
    show_offending(run.id, failed)


@app.command()
def fingerprint(as_json: JsonFlag = False) -> None:
    """An order-independent digest of the graph's labels, properties and relationships (ledger
    excluded): equal digests, equal graphs. Streams the graph, with progress."""
    with session(as_json) as migrations, counting(quiet=as_json) as advance:
        digest = migrations.fingerprint(progress=advance)
    if as_json:
        print_json(digest.model_dump())
    else:
        out.print(str(digest))




@app.command()
def unlock(
    force: Annotated[bool, typer.Option("--force", help="Break a lock whose lease is still "
                                                         "live (its holder may be running!).")]
    = False,
) -> None:
    """Clear the migration lock: an expired one always, a live one only with --force."""
    with session() as migrations:
        cleared = migrations.unlock(force=force)
    if cleared is None:
        out.print("the migration lock is free")
    else:
        out.print(f"cleared the lock of {cleared.holder} (token {cleared.token}, since "
                  f"{cleared.acquired_at:%Y-%m-%d %H:%M:%S} UTC)")


@app.command()
def version() -> None:
    """Print kgmigrate's version."""
    out.print(__version__)

