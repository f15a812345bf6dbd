"""`worker`, `upgrade`, `downgrade`, `resume`, `pause`, `throttle`, `tune`, `cancel`, `rollback`:
running migrations, steering them and following them."""

import contextlib
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated

import typer
from rich.markup import escape

from kgmigrate import service
from kgmigrate.cli.common import (
    AllowNoWorkersFlag,
    JsonFlag,
    LocalWorkersFlag,
    OutOfOrderFlag,
    WaitFlag,
    app,
    err,
    follow,
    kind_of,
    out,
    print_json,
    requested,
    say,
    session,
    show_conflicts,
    show_graph,
    show_waiting,
    throttled,
)
from kgmigrate.cli.limits import CLEARABLE, NO_LIMITS, cleared_limits, throttle_options
from kgmigrate.errors import KgmError
from kgmigrate.model.records import DowngradePlan, MigrationStatus, RunRecord
from kgmigrate.model.status import ENDED
from kgmigrate.model.throttle import Throttle
from kgmigrate.service import BATCH_QUEUE, CONTROL_QUEUE, Migrations, Workers


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, metavar="N",
                                             help="Processes in this worker.")] = 1,
    queues: Annotated[str, typer.Option(help="Comma-separated queues to serve.")]
    = f"{BATCH_QUEUE},{CONTROL_QUEUE}",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "WARNING",
) -> None:
    """Run a Celery worker for the batch and/or control queue (scale by starting more)."""
    service.serve_worker([q.strip() for q in queues.split(",")], concurrency=concurrency,
                         loglevel=loglevel, on_start=show_graph)

@app.command()
@throttle_options
def upgrade(
    target: Annotated[str | None, typer.Argument(help="Version to upgrade to (default: all).")]
    = None,
    wait: WaitFlag = True,
    local_workers: LocalWorkersFlag = 0,
    allow_no_workers: AllowNoWorkersFlag = False,
    out_of_order: OutOfOrderFlag = False,
    limits: Throttle = NO_LIMITS,
    as_json: JsonFlag = False,
) -> None:
    """Apply pending migrations as batched tasks on the workers, with live progress; the
    --max-* and --critical-* options throttle it from its first batch (`kgmigrate throttle`
    changes them while it runs)."""

    def skipped(version: str, why: str) -> None:  # stderr with --json: stdout is its document
        (err if as_json else out).print(f"{version} skipped: {escape(why)}", highlight=False)

    _follow(lambda migrations, require: migrations.upgrade(
        target, out_of_order=out_of_order or None, on_skip=skipped, require_workers=require,
        throttle=limits),
            wait=wait, local_workers=local_workers, allow_no_workers=allow_no_workers,
            as_json=as_json, absent_ok=True)


@app.command()
@throttle_options
def downgrade(
    target: Annotated[str, typer.Argument(help="Version to go back to (it and what it depends "
                                          "on stay applied), or `base` to undo every "
                                          "migration.")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List what would be undone and why, with the entities each step "
        "matches now; write nothing.")] = False,
    yes: Annotated[bool, typer.Option(
        "--yes", help="Do not ask before undoing migrations applied before TARGET.")] = False,
    wait: WaitFlag = True,
    local_workers: LocalWorkersFlag = 0,
    allow_no_workers: AllowNoWorkersFlag = False,
    limits: Throttle = NO_LIMITS,
    as_json: JsonFlag = False,
) -> None:
    """Undo every applied migration that is neither TARGET nor one TARGET depends on (directly
    or not), the last applied first: the ones applied after TARGET, and also those applied
    before it that TARGET does not depend on (asked first; refused without a terminal unless
    --yes). Runs their inverses batched and validated like an upgrade; a migration without
    an inverse is restored from the undo log of the run that applied it (that whole run is
    reverted, as `kgmigrate revert` does). Each is a run of its own, one after another
    (--json: one record per run). --dry-run shows the set first; --max-* and --critical-*
    throttle the inverses."""
    nothing = ("Nothing to undo: no migration is applied." if target == "base" else
               f"Nothing to undo: every applied migration is {target} or one it depends on.")
    if dry_run:
        with session(as_json) as migrations:
            plan = migrations.plan_downgrade(target)
        if as_json:
            print_json(plan.model_dump(mode="json"))
        else:
            _show_downgrade(plan, nothing)
        return
    shown: list[str] = []  # still to undo, as the user was shown it

    def confirm(migrations: Migrations) -> None:
        plan = migrations.plan_downgrade(target, count=False)
        _confirm_earlier(plan, yes=yes, as_json=as_json)
        shown.extend(u.version for u in plan.undo)

    started: list[str] = []

    def start(migrations: Migrations, require: bool) -> str | None:
        run_id = migrations.downgrade(target, expect=shown, require_workers=require,
                                      throttle=limits)
        if run_id is not None:
            started.append(run_id)
            undone = set(migrations.status(run_id).migrations)
            shown[:] = [version for version in shown if version not in undone]
        return run_id

    try:
        _follow(start, wait=wait, local_workers=local_workers,
                allow_no_workers=allow_no_workers, as_json=as_json, nothing=nothing,
                check=confirm, legs=True)
    finally:
        if started and shown:
            err.print(f"{', '.join(shown)} still to undo, by another run once run "
                      f"{started[-1]} has ended well: `kgmigrate downgrade {target}` again",
                      highlight=False)


def _show_downgrade(plan: DowngradePlan, nothing: str) -> None:
    """What a downgrade would undo, the last applied first, each with why and its inverse's
    steps with their entity counts now."""
    if not plan.undo:
        out.print(nothing)
        return
    target = plan.target
    counted = ("what each step matches now, or changed when it ran" if any(
        undo.revert_run for undo in plan.undo) else "what each step matches now")
    out.print(f"downgrade {target} would undo, the last applied first (entities: {counted}; "
              "nothing was written):", highlight=False)
    why = {"applied_after_target": f"applied after {target}",
           "not_an_ancestor": f"not an ancestor of {target}, applied before it"}
    for undo in plan.undo:
        reason = why[undo.reason] if target != "base" else "applied"
        how = (f"; restored from the undo log of run {undo.revert_run}, which applied it "
               "(no inverse: that whole run is reverted)" if undo.revert_run else "")
        out.print(f"  [bold]{undo.version}[/] {escape(undo.description)}: {reason}{how}",
                  highlight=False)
        for step in undo.steps:
            count = ("runs once" if step.estimated_entities is None
                     else f"{step.estimated_entities:,} entities"
                     + (" changed when it ran" if undo.revert_run else ""))
            out.print(f"    {step.order}. {escape(step.description)}: {count}", highlight=False)
    out.print(f"stays applied: {', '.join(plan.keep) or 'nothing'}", highlight=False)
    if plan.applied_before_target:
        out.print(f"{_earlier(plan)}: `kgmigrate downgrade {target}` asks before undoing "
                  f"{_them(plan)} (--yes does not ask)", highlight=False)


def _earlier(plan: DowngradePlan) -> str:
    """`V0002 was applied before V0003, which does not depend on it` (or several)."""
    earlier = plan.applied_before_target
    were = "was" if len(earlier) == 1 else "were"
    return (f"{', '.join(earlier)} {were} applied before {plan.target}, which does not "
            f"depend on {_them(plan)}")


def _them(plan: DowngradePlan) -> str:
    return "it" if len(plan.applied_before_target) == 1 else "them"


def _confirm_earlier(plan: DowngradePlan, *, yes: bool, as_json: bool) -> None:
    """Undoing more than what was applied after TARGET is asked first on a terminal, and
    refused elsewhere (a script, CI, --json) unless --yes."""
    if yes or not plan.applied_before_target:
        return
    target, undone = plan.target, ", ".join(u.version for u in plan.undo)
    if as_json or not sys.stdin.isatty():
        raise KgmError(f"downgrade {target} would undo {undone}; {_earlier(plan)}. Nothing "
                       f"was undone: `kgmigrate downgrade {target} --dry-run` shows what and "
                       "why, --yes undoes it without asking")
    if not typer.confirm(f"Downgrade {target} undoes {undone}; {_earlier(plan)}. Undo "
                         f"{'all of them' if len(plan.undo) > 1 else 'it'}?"):
        raise KgmError(f"downgrade {target}: nothing was undone")


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to resume.")],
    wait: WaitFlag = True,
    local_workers: LocalWorkersFlag = 0,
    allow_no_workers: AllowNoWorkersFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Re-enqueue the batches of a run that are not committed (after any crash), or continue a
    paused run."""

    def start(migrations: Migrations, require: bool) -> str | None:
        migrations.resume(run_id, require_workers=require)
        return run_id

    _follow(start, wait=wait, local_workers=local_workers, allow_no_workers=allow_no_workers,
            as_json=as_json)


@app.command()
def pause(
    run_id: Annotated[str, typer.Argument(help="The running run to pause.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until it is paused.")]
    = True,
    as_json: JsonFlag = False,
) -> None:
    """Pause a running run: no new batch of it starts and those in flight finish; it keeps the
    migration lock until `kgmigrate resume RUN` continues it or `kgmigrate cancel RUN` stops
    it. Committed batches stay committed: nothing is lost or done twice."""
    with session(as_json) as migrations:
        migrations.pause(run_id)
        watch = migrations.worker_watch()

        def tell(run: RunRecord) -> None:
            line = watch.observe(run)
            if line is not None:
                show_waiting(line, console=err, indent="")

        run = (migrations.wait(run_id, on_progress=tell,
                               until={MigrationStatus.PAUSED, *ENDED}) if wait
               else migrations.status(run_id))
    if as_json:
        print_json(run.model_dump(mode="json"))
        return
    out.print(f"run {run.id}: [bold]{run.status}[/]  {run.kind}", highlight=False)
    out.print(f"  {escape(requested(run) or run.error_log or '')}", highlight=False)
    if run.status is not MigrationStatus.PAUSED and wait:
        raise typer.Exit(1)  # it ended before it could pause


@app.command()
@throttle_options
def throttle(
    run_id: Annotated[str, typer.Argument(help="The running, paused or failed run.")],
    limits: Throttle = NO_LIMITS,
    clear: Annotated[list[str] | None, typer.Option(
        "--clear", metavar="LIMIT",
        help=f"Lift one limit ({', '.join(CLEARABLE)}); repeat for more.")]
    = None,
    off: Annotated[bool, typer.Option("--off", help="Lift every limit (those given with "
                                      "this command are then set).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Change a run's limits while it runs: every worker's next batch starts under them (a
    batch waiting for the old ones takes its turn again). Without options: show them."""
    with session(as_json) as migrations:
        run = (migrations.throttle(run_id, limits, cleared=cleared_limits(clear or []),
                                   off=off)
               if off or clear or not limits.is_empty else migrations.status(run_id))
    if as_json:
        print_json({"run_id": run.id, "status": run.status.value,
                    "throttle": run.throttle.model_dump(exclude_none=True)
                    if run.throttle else {}, "throttled_s": run.throttled_s,
                    "waiting": run.throttle_note})
        return
    out.print(f"run {run.id}: [bold]{run.status}[/]  {run.kind}", highlight=False)
    out.print(f"  {escape(throttled(run) or 'throttle: no limits')}", highlight=False)


@app.command()
def tune(
    run_id: Annotated[str, typer.Argument(help="The running or paused run.")],
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, metavar="N", help="The new size of the batches not started "
        "yet.")],
    timeout: Annotated[float, typer.Option(
        "--timeout", min=1, metavar="SECONDS", help="Seconds to wait for a running run to "
        "pause (its batches in flight to finish) before giving up, with nothing retuned.")]
    = 600,
    as_json: JsonFlag = False,
) -> None:
    """Change the batch size of what a run has not started yet: its current step's pending
    batches are cut anew, its later steps will be cut at the new size. A running run is
    paused for it (those in flight finish) and continued after; a paused one stays paused.
    Committed batches and the undo log stay as they are."""
    with session(as_json) as migrations:
        done = migrations.tune(run_id, batch_size, timeout_s=timeout)
    if as_json:
        print_json({"run_id": run_id, **asdict(done)})
        return
    out.print(f"run {run_id} retuned: {escape(done.describe())}", highlight=False)
    out.print("  it was paused for it and is continued" if done.continued else
              f"  it stays paused: `kgmigrate resume {run_id}` continues it", highlight=False)


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(help="The running or paused run to stop.")],
    keep: Annotated[bool, typer.Option(
        "--keep", help="Stop without rolling back: the run ends failed as it is, to be "
        "resumed or rolled back later.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before rolling back.")] = False,
    wait: WaitFlag = True,
    as_json: JsonFlag = False,
) -> None:
    """Stop a running or paused run: no new batch starts, and once those in flight have
    finished what it applied is rolled back (the same rollback as after a failure, conflicts
    kept), recorded as cancelled by you. `--keep` stops it without rolling back."""
    with session(as_json) as migrations:
        run = migrations.status(run_id)
        if not keep and not yes:
            done = sum(s.entities_done for s in run.steps)
            question = (f"Cancel run {run.id} ({run.status} {run.kind}, migrations "
                        f"{', '.join(run.migrations)}) and roll back what it applied "
                        f"({done:,} entities so far)?")
            if as_json or not sys.stdin.isatty():
                raise KgmError(f"cancel {run.id} rolls back what it applied; nothing was "
                               "cancelled: --yes cancels without asking, --keep stops it "
                               "without rolling back")
            if not typer.confirm(question):
                raise KgmError(f"run {run.id} was not cancelled")
        migrations.cancel(run_id, keep=keep)
        if not wait:
            say(as_json, {"run_id": run_id, "status": "cancel_asked"},
                f"run {run_id}: cancel asked; follow it with `kgmigrate status {run_id} "
                "--watch`")
            return
        run = follow(migrations, run_id, quiet=as_json)
    _finish_output(run, as_json, MigrationStatus.FAILED if keep else MigrationStatus.ROLLED_BACK)


@app.command()
def rollback(
    run_id: Annotated[str, typer.Argument(help="The failed run to roll back.")],
    force: Annotated[bool, typer.Option(
        "--force", help="Also restore entities changed by someone else since the run wrote "
        "them (their change is lost).")] = False,
    wait: WaitFlag = True,
    local_workers: LocalWorkersFlag = 0,
    allow_no_workers: AllowNoWorkersFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Restore what a failed run changed from its undo log (or continue a stopped rollback)."""

    def start(migrations: Migrations, require: bool) -> str | None:
        migrations.rollback(run_id, force=force, require_workers=require)
        return run_id

    _follow(start, wait=wait, local_workers=local_workers, allow_no_workers=allow_no_workers,
            as_json=as_json, success=MigrationStatus.ROLLED_BACK)


@app.command()
def revert(
    run_id: Annotated[str, typer.Argument(help="The completed upgrade run to undo.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    wait: WaitFlag = True,
    local_workers: LocalWorkersFlag = 0,
    allow_no_workers: AllowNoWorkersFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Undo a completed upgrade run from its undo log, as a rollback does: entities someone
    changed since are kept as conflicts (then `rollback RUN --force`); its migrations are
    recorded as downgraded. Only the last run applied, while its log is kept
    (KGMIGRATE_UNDO_RETENTION_DAYS); for ops without an inverse, where `downgrade` cannot."""
    if as_json and not yes:
        raise KgmError("--json does not ask: add --yes")

    def check(migrations: Migrations) -> None:
        problem = migrations.revert_refusal(run_id)
        if problem:
            raise KgmError(problem)
        run = migrations.status(run_id)
        changed = sum(step.entities_done for step in run.steps)
        ended = run.finished_at or run.created_at
        if not yes and not sys.stdin.isatty():
            raise KgmError(f"kgmigrate revert {run_id} would restore the {changed:,} entities "
                           "it changed and asks first; nothing was restored: without a "
                           "terminal, add --yes")
        if not yes and not typer.confirm(
                f"Revert run {run.id} (completed {ended:%Y-%m-%d %H:%M}, migrations "
                f"{', '.join(run.migrations)}): restore the {changed:,} entities it changed "
                "from its undo log, keeping those changed since as conflicts?"):
            raise typer.Exit(1)

    def start(migrations: Migrations, require: bool) -> str | None:
        migrations.revert(run_id, require_workers=require)
        return run_id

    _follow(start, wait=wait, local_workers=local_workers, allow_no_workers=allow_no_workers,
            as_json=as_json, success=MigrationStatus.ROLLED_BACK, check=check)


@app.command()
def abandon(
    run_id: Annotated[str, typer.Argument(help="The unfinished run to give up.")],
    reason: Annotated[str, typer.Option("--reason", help="Why: kept in the run's record.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Give up a run whose workers are gone, without undoing it: what it changed stays
    changed, and new runs are allowed again. Prefer `resume` or `rollback`; this is for a run
    you have settled by hand, or one that waits for workers you will not start. Refused while
    the run holds a live lease and a worker serves its queues."""
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
        run = migrations.abandon(run.id, reason=reason, when_workers_gone=True)
    say(as_json, run.model_dump(mode="json"),
        f"run {run.id}: [bold]{run.status}[/]  {escape(run.error_log or '')}")


def _follow(start: Callable[[Migrations, bool], str | None], *, wait: bool,
            local_workers: int, as_json: bool, allow_no_workers: bool = False,
            success: MigrationStatus = MigrationStatus.COMPLETED,
            nothing: str = "Nothing to apply: the graph is up to date.",
            absent_ok: bool = False,
            check: Callable[[Migrations], None] = lambda migrations: None,
            legs: bool = False) -> None:
    """Start (or resume) a run, with local workers if asked, and follow it unless told not to
    (`absent_ok`: the run may be the graph's first write; `check`: may refuse first, before
    any worker starts). `start` is told whether to refuse when no worker serves the
    queues: yes, unless local workers are being started for the run or the user allowed
    it (then the run is queued, and it is said at once that it waits). `legs`: once a run
    ends well, `start` again, until it has nothing left (a downgrade's runs)."""
    with session(as_json, absent_ok=absent_ok) as migrations, contextlib.ExitStack() as stack:
        check(migrations)
        stack.enter_context(migrations.local_workers(local_workers))
        run_id = start(migrations, not (allow_no_workers or local_workers))
        if run_id is None:
            say(as_json, {"run_id": None, "status": "up_to_date"}, nothing)
            return
        told: Workers | None = None
        if allow_no_workers and not local_workers:
            run = migrations.status(run_id)
            told = migrations.waiting_for_workers(run)
            if told is not None:
                show_waiting(migrations.workers_hint(run, told), console=err, indent="")
        if not (wait or local_workers):
            say(as_json, {"run_id": run_id, "status": "enqueued",
                          "waiting_for_workers": told.as_json() if told else None},
                 f"run {run_id} enqueued; follow it with `kgmigrate status {run_id} --watch`")
            return
        while True:
            run = follow(migrations, run_id, quiet=as_json,
                         watch=migrations.worker_watch(told=told))
            if run.status is MigrationStatus.ROLLBACK_BLOCKED and not as_json:
                show_conflicts(migrations.conflicts(run))
            if not legs or run.status is not _success(run, success):
                break
            next_id = start(migrations, not (allow_no_workers or local_workers))
            if next_id is None:
                break
            _finish_output(run, as_json, success)
            run_id, told = next_id, None
    _finish_output(run, as_json, success)


def _success(run: RunRecord, success: MigrationStatus) -> MigrationStatus:
    """A revert (a downgrade may make one) ends well when its run is rolled back."""
    return MigrationStatus.ROLLED_BACK if run.reverts else success


def _finish_output(run: RunRecord, as_json: bool,
                   success: MigrationStatus = MigrationStatus.COMPLETED) -> None:
    success = _success(run, success)
    if as_json:
        print_json(run.model_dump(mode="json"))
    else:
        color = "green" if run.status is success else "red"
        out.print(f"run {run.id}: [bold {color}]{run.status}[/]  {kind_of(run)}",
                  highlight=False)
        if run.error_log:
            out.print(f"  {escape(run.error_log)}", highlight=False)
    if run.status is not success:
        raise typer.Exit(1)


