"""`worker`, `upgrade`, `downgrade`, `resume`, `rollback`: running migrations and following them."""

import contextlib
from collections.abc import Callable
from typing import Annotated

import typer
from rich.markup import escape

from kgmigrate import service
from kgmigrate.cli.common import (
    JsonFlag,
    LocalWorkersFlag,
    OutOfOrderFlag,
    WaitFlag,
    app,
    err,
    follow,
    out,
    print_json,
    say,
    session,
    show_conflicts,
    show_graph,
)
from kgmigrate.errors import KgmError
from kgmigrate.model.records import MigrationStatus, RunRecord
from kgmigrate.service import BATCH_QUEUE, CONTROL_QUEUE, Migrations


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Processes in this worker.")] = 1,
    queues: Annotated[str, typer.Option(help="Comma-separated queues to serve.")]
    = f"{BATCH_QUEUE},{CONTROL_QUEUE}",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "WARNING",
) -> None:
    """Run a Celery worker for the batch and/or control queue (scale by starting more)."""
    service.serve_worker([q.strip() for q in queues.split(",")], concurrency=concurrency,
                         loglevel=loglevel, on_start=show_graph)

@app.command()
def upgrade(
    target: Annotated[str | None, typer.Argument(help="Version to upgrade to (default: all).")]
    = None,
    wait: WaitFlag = True,
    local_workers: LocalWorkersFlag = 0,
    out_of_order: OutOfOrderFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Apply pending migrations as batched tasks on the workers, with live progress."""

    def skipped(version: str, why: str) -> None:  # stderr with --json: stdout is its document
        (err if as_json else out).print(f"{version} skipped: {escape(why)}", highlight=False)

    _follow(lambda migrations: migrations.upgrade(
        target, out_of_order=out_of_order or None, on_skip=skipped), wait=wait,
            local_workers=local_workers, as_json=as_json, absent_ok=True)


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
    _follow(lambda migrations: migrations.downgrade(target), wait=wait,
            local_workers=local_workers, as_json=as_json,
            nothing=f"Nothing to undo: no migration after {target} is applied.")


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to resume.")],
    wait: WaitFlag = True,
    local_workers: LocalWorkersFlag = 0,
    as_json: JsonFlag = False,
) -> None:
    """Re-enqueue the batches of a run that are not committed (after any crash)."""

    def start(migrations: Migrations) -> str | None:
        migrations.resume(run_id)
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

    def start(migrations: Migrations) -> str | None:
        migrations.rollback(run_id, force=force)
        return run_id

    _follow(start, wait=wait, local_workers=local_workers, as_json=as_json,
            success=MigrationStatus.ROLLED_BACK)


@app.command()
def abandon(
    run_id: Annotated[str, typer.Argument(help="The unfinished run to give up.")],
    reason: Annotated[str, typer.Option("--reason", help="Why: kept in the run's record.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Give up a run whose workers are gone, without undoing it: what it changed stays
    changed, and new runs are allowed again. Prefer `resume` or `rollback`; this is for a run
    you have settled by hand."""
    if as_json and not yes:
        raise KgmError("--json does not ask: add --yes")
    with session(as_json) as migrations:
        run = migrations.status(run_id)
        if run.status.is_final:
            raise KgmError(f"run {run.id} is {run.status}; there is nothing to abandon")
        if not yes and not typer.confirm(
                f"Abandon run {run.id} ({run.status} {run.kind}, migrations "
                f"{', '.join(run.migrations)})"
                "? Nothing it changed is undone."):
            raise typer.Exit(1)
        run = migrations.abandon(run.id, reason=reason)
    say(as_json, run.model_dump(mode="json"),
        f"run {run.id}: [bold]{run.status}[/]  {escape(run.error_log or '')}")


def _follow(start: Callable[[Migrations], str | None], *, wait: bool,
            local_workers: int, as_json: bool,
            success: MigrationStatus = MigrationStatus.COMPLETED,
            nothing: str = "Nothing to apply: the graph is up to date.",
            absent_ok: bool = False) -> None:
    """Start (or resume) a run, with local workers if asked, and follow it unless told not to
    (`absent_ok`: the run may be the graph's first write)."""
    with session(as_json, absent_ok=absent_ok) as migrations, contextlib.ExitStack() as stack:
        stack.enter_context(migrations.local_workers(local_workers))
        run_id = start(migrations)
        if run_id is None:
            say(as_json, {"run_id": None, "status": "up_to_date"}, nothing)
            return
        if not (wait or local_workers):
            say(as_json, {"run_id": run_id, "status": "enqueued"},
                 f"run {run_id} enqueued; follow it with `kgmigrate status {run_id} --watch`")
            return
        run = follow(migrations, run_id, quiet=as_json)
        if run.status is MigrationStatus.ROLLBACK_BLOCKED and not as_json:
            show_conflicts(migrations.conflicts(run))
    _finish_output(run, as_json, success)


def _finish_output(run: RunRecord, as_json: bool,
                   success: MigrationStatus = MigrationStatus.COMPLETED) -> None:
    if as_json:
        print_json(run.model_dump(mode="json"))
    else:
        color = "green" if run.status is success else "red"
        out.print(f"run {run.id}: [bold {color}]{run.status}[/]  {run.kind}", highlight=False)
        if run.error_log:
            out.print(f"  {escape(run.error_log)}", highlight=False)
    if run.status is not success:
        raise typer.Exit(1)


