"""Control tasks, registered by name on the shared app (the control queue). What they share
(their run's log context) is `ControlTask`."""

from typing import Any

from kgmigrate.engine import control, rollback, watch
from kgmigrate.runtime.app import (
    CARRY_OUT,
    ROLLBACK_CRASHED,
    ROLLBACK_STEP_DONE,
    START_ROLLBACK,
    START_RUN,
    STEP_CRASHED,
    STEP_DONE,
    WATCH_RUN,
    app,
)
from kgmigrate.runtime.context import current
from kgmigrate.runtime.tasks import ControlTask


@app.task(name=START_RUN, base=ControlTask, run_arg=0)  # type: ignore[untyped-decorator]
def start_run(run_id: str) -> None:
    control.start_run(current(), app, run_id)


@app.task(name=STEP_DONE, base=ControlTask, run_arg=1)  # type: ignore[untyped-decorator]
def step_done(results: list[dict[str, Any]], run_id: str, step_id: str) -> None:
    control.step_done(current(), app, results, run_id, step_id)


@app.task(name=STEP_CRASHED, base=ControlTask, run_arg=-2)  # type: ignore[untyped-decorator]
def step_crashed(*args: Any) -> None:
    """Celery calls this with (failed task id) or (request, exc, traceback), then our
    (run_id, step_id): only the last two matter, plus the error when there is one."""
    *failure, run_id, step_id = args
    rt = current()
    recorded = [b.error for b in rt.ledger.batches(step_id) if b.status.value == "failed"]
    error = next((repr(a) for a in failure if isinstance(a, BaseException)), None)
    reason = "; ".join(e for e in recorded if e) or error or "no reason was recorded"
    control.fail(rt, run_id, step_id, f"a batch task crashed: {reason}", app=app)


@app.task(name=START_ROLLBACK, base=ControlTask, run_arg=0)  # type: ignore[untyped-decorator]
def start_rollback(run_id: str, force: bool = False) -> None:
    rollback.start(current(), app, run_id, force=force)


@app.task(name=ROLLBACK_STEP_DONE, base=ControlTask, run_arg=1)  # type: ignore[untyped-decorator]
def rollback_step_done(results: list[dict[str, Any]], run_id: str, step_id: str,
                       force: bool) -> None:
    rollback.step_done(current(), app, results, run_id, step_id, force)


@app.task(name=ROLLBACK_CRASHED, base=ControlTask, run_arg=-2)  # type: ignore[untyped-decorator]
def rollback_crashed(*args: Any) -> None:
    """A restore task raised after its retries: stop, keep what was restored, say why."""
    *failure, run_id, _step_id = args
    error = next((repr(a) for a in failure if isinstance(a, BaseException)), "no reason given")
    rollback.block(current(), run_id, f"a restore task crashed: {error}; run "
                   f"`kgmigrate rollback {run_id}` to continue")


@app.task(name=WATCH_RUN, base=ControlTask, run_arg=0)  # type: ignore[untyped-decorator]
def watch_run(run_id: str, mark: str, seen: str, since: float, quiet_s: float,
              force: bool) -> None:
    """One check of the run's watch; a stalled run is carried on from the ledger."""
    rt = current()
    if watch.check(rt, app, run_id, mark, seen, since, quiet_s, force):
        control.redrive(rt, app, run_id, force=force)


@app.task(name=CARRY_OUT, base=ControlTask, run_arg=0)  # type: ignore[untyped-decorator]
def carry_out(run_id: str) -> None:
    """What an operator asked of a run that is already paused (`kgmigrate cancel`)."""
    control.carry_out(current(), app, run_id)
