"""What every command shares: the app, the console, the flags, JSON output, a graph session."""

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from kgmigrate.model.records import Conflict, FailedBatch, MigrationStatus, RunRecord
from kgmigrate.model.status import ROLLBACK_STATES
from kgmigrate.runtime.settings import GraphTarget
from kgmigrate.service import HeldTask, Migrations, StepProgress, WorkerWatch, progress

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  rich_markup_mode=None,
                  help="Distributed, resumable, reversible migrations for a knowledge graph.")
out = Console()
err = Console(stderr=True)
for _console in (out, err):  # piped: whole lines (a reader or grep wants them), not 80 columns
    _console.soft_wrap = not _console.is_terminal
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
LatestRun = Annotated[str | None, typer.Argument(help="Run id (default: the latest run).")]
WaitFlag = Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the run to its end.")]
LocalWorkersFlag = Annotated[int, typer.Option(
    min=0, metavar="N", help="Start N worker processes for this run (no other setup needed).")]
AllowNoWorkersFlag = Annotated[bool, typer.Option(
    "--allow-no-workers", help="Queue the run even when no worker serves its queues: it "
    "waits, holding the migration lock, until one starts (without this, refused at once).")]
OutOfOrderFlag = Annotated[bool, typer.Option(
    "--out-of-order", help="Allow pending migrations that applied ones come after "
    "(KGMIGRATE_OUT_OF_ORDER).")]



PIPED_WIDTH = 400  # piped, a table is as wide as it needs (up to this), not cut to 80 columns
_piped = Console(width=PIPED_WIDTH)  # (a console prints nothing wider than its own width)


def show_table(table: Table) -> None:
    """On a terminal, fitted to it; piped, whole: a reader greps a run id from it."""
    (out if out.is_terminal else _piped).print(table)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")



def dump(value: Any) -> Any:
    if isinstance(value, list):
        return [dump(v) for v in value]
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


@contextlib.contextmanager
def session(as_json: bool = False, *, absent_ok: bool = False) -> Iterator[Migrations]:
    """The facade over the configured graph, closed afterwards. Says first which graph that
    is (the default, `vitalyst`, is easily not the one meant): a dim line on stdout, or on
    stderr with --json, so that stdout stays one JSON document. Only commands that may
    create the graph, and services that may start before it exists, accept one that does not
    exist (`absent_ok`): a read-only command on a mistyped name must not create it."""
    with Migrations(must_exist=not absent_ok) as migrations:
        show_graph(migrations.graph, as_json)
        yield migrations


def show_graph(target: GraphTarget, as_json: bool = False) -> None:
    default = "" if target.name else " (the server's default database)"
    (err if as_json else out).print(f"[dim]graph {escape(target.display)}{default}[/]",
                                    highlight=False)



def say(as_json: bool, data: dict[str, Any], text: str) -> None:
    if as_json:
        print_json(data)
    else:
        out.print(text)


@contextlib.contextmanager
def counting(*, quiet: bool = False) -> Iterator[Callable[[str, int], None]]:
    """Progress for streaming work of unknown size: one counter per kind of thing (piped:
    a plain line per kind every few seconds, and the totals at the end)."""
    if not err.is_terminal:
        counts: dict[str, int] = {}
        lines = Every(PLAIN_EVERY_S)

        def count(what: str, n: int) -> None:
            counts[what] = counts.get(what, 0) + n
            if not quiet and lines.due():
                _plain(", ".join(f"{k}: {v:,}" for k, v in counts.items()))

        yield count
        if not quiet and counts:
            _plain(", ".join(f"{k}: {v:,} done" for k, v in counts.items()))
        return
    with Progress(TextColumn("{task.description:>16}"), BarColumn(),
                  TextColumn("{task.completed:>11,}"), TimeElapsedColumn(),
                  console=err, disable=quiet) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(what: str, count: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=None)
            bar.advance(tasks[what], count)

        yield advance


PLAIN_EVERY_S = 5.0  # piped progress: a line per running step at most this often


class Every:
    """True once per `seconds` (the first call included)."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.last = seconds, -seconds

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


def _plain(line: str) -> None:
    err.print(line, markup=False, highlight=False)


def kind_of(run: RunRecord) -> str:
    """`upgrade` or `downgrade`, and whether a completed upgrade is being (or was) reverted."""
    return f"{run.kind}, reverted after it completed" if run.reverts else run.kind


def show_run(run: RunRecord, *, stalled: bool = False,
             undone: Sequence[StepProgress] = ()) -> None:
    """`stalled`: no worker serves the run, so no batch of it waits for its throttle now;
    `undone`: a rollback's progress per step (`Migrations.progress`), below the steps."""
    target = f" (target {escape(run.target)})" if run.target else ""
    out.print(f"run {run.id}: [bold]{run.status}[/]  {kind_of(run)}  migrations "
              f"{', '.join(run.migrations)}{target}", highlight=False)
    out.print(f"  by {run.created_by}; history: {' -> '.join(run.history)}", highlight=False)
    if run.error_log:
        out.print(f"  [red]error:[/] {escape(run.error_log)}", highlight=False)
    if run.backup_ref:
        out.print(f"  backup before the run: {escape(run.backup_ref)}", highlight=False)
    request = requested(run)
    if request:
        out.print(f"  [yellow]{escape(request)}[/]", highlight=False)
    limits = throttled(run, live=not stalled)
    if limits:
        out.print(f"  {escape(limits)}", highlight=False)
    for tune in run.tunes:
        out.print(f"  retuned: {escape(tune)}", highlight=False)
    for entry in run.callback_notes:
        out.print(f"  {escape(entry)}", highlight=False)
    table = Table("step", "", "status", "batches", "entities", "rate", box=box.SIMPLE_HEAD,
                  padding=(0, 1))
    for column, width in zip(table.columns, (7, 18, 9, 7, 13, 9), strict=True):
        column.no_wrap, column.min_width, column.overflow = True, width, "ellipsis"
    table.columns[1].max_width = 18
    for step, prog in zip(run.steps, progress(run), strict=True):
        rate = f"{prog.entities_per_s:,.0f}/s" if prog.entities_per_s else ""
        table.add_row(f"{step.order} {step.version}", escape(step.description), step.status,
                      f"{step.batches_done}/{step.batches_total}",
                      f"{step.entities_done:,}/{step.entities_total:,}", rate)
    show_table(table)
    for n, undo in enumerate(undone):
        batches = f"{undo.batches_done}/{undo.batches_total} batches"
        fields = ", ".join(p for p in (batches, *_step_fields(undo)) if p)
        out.print(f"  {'rollback:' if n == 0 else '         '} {escape(_named(undo, 40))}: "
                  f"{fields}", highlight=False)


RUNNING_OR_PAUSED = (MigrationStatus.PENDING, MigrationStatus.IN_PROGRESS,
                     MigrationStatus.VALIDATING, MigrationStatus.PAUSED)


def requested(run: RunRecord) -> str | None:
    """What an operator asked of a run that has not ended, as one line (None: nothing)."""
    by = run.request_by or "someone"
    if run.status is MigrationStatus.PAUSED and run.request == "pause":
        return (f"paused (asked by {by}); it holds the migration lock: `kgmigrate resume "
                f"{run.id}` continues it, `kgmigrate cancel {run.id}` stops it")
    if run.status is MigrationStatus.PAUSED and run.request is None:
        return "paused; resuming (asked)"
    if run.status not in RUNNING_OR_PAUSED or run.request is None:
        return None
    if run.request == "pause":
        return (f"pause asked by {by}: no new batch starts; the run pauses once those in "
                "flight have finished")
    then = "rolled back" if run.request == "cancel" else "left as it is (failed)"
    return (f"cancel asked by {by}: no new batch starts; once those in flight have finished "
            f"the run is {then}")


def throttled(run: RunRecord, *, live: bool = True) -> str | None:
    """The run's limits, the time its batches waited for them, and why one waits now (the
    last batch's note: not shown when the run has no `live` workers, whose note it was)."""
    if run.throttle is None and not run.throttled_s:
        return None
    limits = run.throttle.describe() if run.throttle is not None else "no limits"
    line = f"throttle: {limits}; waited {run.throttled_s:,.1f}s in all"
    if live and run.throttle_note and run.status in RUNNING_OR_PAUSED:
        line += f"; waiting now: {run.throttle_note}"
    return line


def show_conflicts(conflicts: list[Conflict], limit: int = 20) -> None:
    for c in conflicts[:limit]:  # `now` is known only for entities kept whole in the log
        now = "" if c.now is None else f"; now {escape(str(c.now))[:200]}"
        forced = " (restored anyway by a forced pass)" if c.forced else ""
        out.print(f"  conflict: step {c.step} batch {c.batch} key {c.key!r}: "
                  f"{escape(c.reason)}{now}{forced}", highlight=False)
    if len(conflicts) > limit:
        out.print(f"  ... and {len(conflicts) - limit} more (`kgmigrate status RUN --json`)")


def show_held(run: RunRecord, held: Sequence[HeldTask], unread: str | None,
              limit: int = 5) -> None:
    """The run's tasks that a dead worker holds, when each comes back, and how not to wait."""
    if unread:
        out.print(f"  [dim]whether a dead worker holds a task of the run is unknown: "
                  f"{escape(unread)}[/]", highlight=False)
    if not held:
        return
    out.print("  [yellow]held by a worker that no longer answers[/] (the broker gives each "
              "back to a running worker by the time shown: KGMIGRATE_VISIBILITY_TIMEOUT_S "
              "after it was taken, and its sweep):", highlight=False)
    for task in held[:limit]:
        out.print(f"    {escape(task.what)}: taken {task.taken_at:%H:%M:%S} UTC, back by "
                  f"{task.back_by:%H:%M:%S} UTC", highlight=False)
    if len(held) > limit:
        out.print(f"    ... and {len(held) - limit} more (`kgmigrate status {run.id} --json`)",
                  highlight=False)
    again = (f"`kgmigrate rollback {run.id}` sends its restores not yet done"
             if run.status in ROLLBACK_STATES else
             f"`kgmigrate resume {run.id}` sends its batches not yet committed")
    out.print(f"  not to wait: {again} again now (what has committed is not done twice)",
              highlight=False)


def show_offending(run_id: str, failed: list[FailedBatch], limit: int = 5) -> None:
    """The first entities that failed validation, with their values after the change."""
    for batch in failed:
        if not batch.offending:
            continue
        shown = batch.offending[:limit]
        out.print(f"  step {batch.step} batch {batch.batch}: {batch.failing or 0:,} of "
                  f"{batch.checked or 0:,} entities failed validation; the first {len(shown)}, "
                  "with their values after the change:", highlight=False)
        for entity in shown:
            named = "".join(f"{name} {value!r} " for name, value in entity.business_key.items())
            out.print(f"    {escape(named)}(key {entity.key}): "
                      f"{escape(json.dumps(entity.properties, default=str)[:200])}",
                      highlight=False)
        if len(batch.offending) > len(shown):
            out.print(f"    ... (`kgmigrate status {run_id} --json` and `kgmigrate report "
                      f"{run_id}` show the first {len(batch.offending)})", highlight=False)


def follow(migrations: Migrations, run_id: str, *, quiet: bool = False,
           watch: WorkerWatch | None = None) -> RunRecord:
    """Progress per step (batches, entities, throughput, ETA) until the run ends: live bars
    on a terminal; piped (a log, CI), whole plain lines instead of bars cut to 80 columns, one
    when a step changes status and one every few seconds while it runs. When the run waits
    for workers (`watch`, by default once it has not moved for KGMIGRATE_WORKER_WAIT_S), one
    line on stderr says so, even when `quiet`; the run is followed on."""
    watch = watch or migrations.worker_watch()
    said: list[str | None] = [None]

    def tell(run: RunRecord) -> None:
        line = watch.observe(run)
        if line is not None:
            show_waiting(line, console=err, indent="")
        asked = requested(run)
        if asked != said[0]:  # said once, when it changes
            said[0] = asked
            if asked:
                show_waiting(f"run {run.id}: {asked}", console=err, indent="")

    if quiet:
        return migrations.wait(run_id, on_progress=tell)
    if not err.is_terminal:
        shown: dict[tuple[bool, int], MigrationStatus] = {}
        lines = Every(PLAIN_EVERY_S)

        def print_lines(run: RunRecord) -> None:
            due = lines.due()
            for step in migrations.progress(run):
                key = (step.restoring, step.order)
                if shown.get(key) is not step.status or (due and step.status in MOVING):
                    shown[key] = step.status
                    _plain(f"{_named(step)}: " + ", ".join(p for p in _step_fields(step) if p))
            tell(run)

        return migrations.wait(run_id, on_progress=print_lines)
    bars = Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.fields[counts]}"), TextColumn("{task.fields[rate]}"),
                    TextColumn("{task.fields[eta]}"), console=err)
    tasks: dict[tuple[bool, int], TaskID] = {}

    def show(run: RunRecord) -> None:
        for step in migrations.progress(run):
            key = (step.restoring, step.order)
            if key not in tasks:
                tasks[key] = bars.add_task(escape(_named(step, 40)), total=None, counts="",
                                           rate="", eta="")
            total = step.entities_total or step.batches_total or None
            done = (step.entities_done + step.conflicts if step.entities_total
                    else step.batches_done)
            counts, rate, eta = _step_fields(step)
            bars.update(tasks[key], completed=done, total=total, counts=counts, rate=rate,
                        eta=eta)
        tell(run)

    with bars:
        return migrations.wait(run_id, on_progress=show)


def show_waiting(line: str, *, console: Console = out, indent: str = "  ") -> None:
    """The one line that says a run waits for workers (`Migrations.workers_hint`)."""
    console.print(f"{indent}[yellow]{escape(line)}[/]", highlight=False)


MOVING = (MigrationStatus.IN_PROGRESS, MigrationStatus.ROLLING_BACK)  # a step's, as shown


def _named(step: StepProgress, width: int | None = None) -> str:
    """`2. on :Gene: SET ...`; a rollback's: `undo 2. ...`."""
    cut = width is not None and len(step.description) > width
    described = step.description[:(width or 0) - 1] + "…" if cut else step.description
    return f"{'undo ' if step.restoring else ''}{step.order}. {described}"


def _step_fields(step: StepProgress) -> tuple[str, str, str]:
    """A step's counts, throughput and ETA (or status), as the progress shows them; a
    rollback's counts what it restored and what it kept as conflicts."""
    rate = f"{step.entities_per_s:,.0f}/s" if step.entities_per_s else ""
    eta = (f"ETA {step.eta_s:,.0f}s" if step.eta_s and step.status in MOVING
           else str(step.status))
    done = " restored" if step.restoring else ""
    counts = (f"{step.entities_done:,}/{step.entities_total:,} entities{done}"
              if step.entities_total else
              f"{step.batches_done}/{step.batches_total} batches{done}")
    if step.conflicts:
        counts += f", {step.conflicts:,} conflicts (kept)"
    return counts, rate, eta
