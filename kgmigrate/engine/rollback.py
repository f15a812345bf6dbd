"""Rolling a run back: per step, last step first, a chord of restore tasks (one per committed
batch, in parallel across workers) whose callback moves on to the step before.

Like the forward path, every decision reads the ledger first and is safe to repeat: restore
batches are recorded atomically with their restore, so relaunching a step (after a crash, or a
second `kgmigrate rollback`) only does what is left.
"""

import logging
from typing import Any

from celery import Celery, chord

from kgmigrate.engine import ending, retention, watch
from kgmigrate.engine.canvas import shown
from kgmigrate.engine.restore import RestoreResult
from kgmigrate.ledger.batches import restore_batch_id
from kgmigrate.model.records import MigrationStatus, RunRecord, StepRecord, utc_now
from kgmigrate.model.status import StatusTransitionError
from kgmigrate.monitoring import hooks
from kgmigrate.runtime.app import RESTORE_BATCH, ROLLBACK_CRASHED, ROLLBACK_STEP_DONE
from kgmigrate.runtime.context import Runtime

log = logging.getLogger("kgmigrate.orchestrator")


def start(rt: Runtime, app: Celery, run_id: str, *, force: bool) -> None:
    """Launch the rollback of a ROLLING_BACK run from its last step that changed anything."""
    run = rt.ledger.require_run(run_id)
    if run.status is not MigrationStatus.ROLLING_BACK:
        return
    log.info("run %s: rollback started%s", run_id, " (forced)" if force else "")
    watch.begin(rt, app, run_id, force=force)
    hooks.emit("before_rollback", run_id, status="rolling_back",
               detail={"force": force, "error": run.error_log})
    _launch_from(rt, app, run, max((s.order for s in run.steps), default=0), force)


def relaunch(rt: Runtime, app: Celery, run: RunRecord, *, force: bool = False) -> None:
    """Launch again what is left of a rollback whose launch may have been cut short or lost
    (see `control.redrive`): restores already recorded are left out, duplicates are skipped.
    `force`: the rollback being carried on is a forced one."""
    if run.status is MigrationStatus.ROLLING_BACK:
        log.info("run %s: the rollback is launched again from the ledger", run.id)
        _launch_from(rt, app, run, max((s.order for s in run.steps), default=0), force)


def _launch_from(rt: Runtime, app: Celery, run: RunRecord, order: int, force: bool) -> None:
    """The highest step at or below `order` with committed work gets its chord."""
    for step in sorted(run.steps, key=lambda s: s.order, reverse=True):
        if step.order > order:
            continue
        header = _restore_tasks(rt, app, step, force)
        if not header:
            continue
        rt.lock.renew_for_run(run.id)
        callback = app.signature(ROLLBACK_STEP_DONE, args=(run.id, step.id, force))
        callback.link_error(app.signature(ROLLBACK_CRASHED, args=(run.id, step.id)))
        chord(header)(callback)
        return
    finish(rt, run.id)


def _restore_tasks(rt: Runtime, app: Celery, step: StepRecord, force: bool) -> list[Any]:
    committed = [b for b in rt.ledger.batches(step.id) if b.status is MigrationStatus.COMPLETED]
    done = {r["id"] for r in rt.ledger.restores(step.id)}
    return [app.signature(RESTORE_BATCH, args=(step.run_id, step.id, b.seq, b.id, b.undo, force),
                          kwargs={"version": step.version, "step": step.order, "rollback": True},
                          shadow=shown(RESTORE_BATCH, step))
            for b in committed if restore_batch_id(b.id, force) not in done]


def step_done(rt: Runtime, app: Celery, results: list[dict[str, Any]], run_id: str,
              step_id: str, force: bool) -> None:
    run = rt.ledger.require_run(run_id)
    if run.status is not MigrationStatus.ROLLING_BACK:
        return  # a repeated callback
    failed = [r for r in map(RestoreResult.model_validate, results) if r.status == "failed"]
    if failed:
        block(rt, run_id, f"rollback of step {rt.ledger.step(step_id).order} stopped: "
              f"{failed[0].error}" + (f" (and {len(failed) - 1} more)" if len(failed) > 1
                                      else ""))
        return
    _launch_from(rt, app, run, rt.ledger.step(step_id).order - 1, force)


def finish(rt: Runtime, run_id: str) -> None:
    """ROLLED_BACK when nothing is left unrestored; else ROLLBACK_BLOCKED, naming the count."""
    run = rt.ledger.require_run(run_id)
    if run.status is not MigrationStatus.ROLLING_BACK:
        return  # a repeated callback finished it already
    conflicts = remaining_conflicts(rt, run)
    restored = sum(int(r["restored"] or 0) for s in run.steps for r in rt.ledger.restores(s.id))
    rt.ledger.update_run_facts(run_id, counters={**run.counters, "rollback_restored": restored,
                                                 "rollback_conflicts": conflicts})
    if conflicts:
        block(rt, run_id, f"rollback left {conflicts} conflicts (entities changed by someone "
              f"else since the migration wrote them, kept as they are); see `kgmigrate status "
              f"{run_id}`, then `kgmigrate rollback {run_id} --force` to restore them anyway")
        return
    if run.reverts:  # recorded as a downgrade of its migrations, the last applied first
        started = run.revert_started_at or utc_now()
        rt.ledger.record_reverted(
            run_id, list(reversed(run.migrations)), repeated=_repeated(rt, run),
            duration_ms=int((utc_now() - started).total_seconds() * 1000))
    else:
        rt.ledger.revert_applied(run_id, state="rolled_back", by=run_id,
                                 repeated=_repeated(rt, run))
    ending.release(rt, run_id)  # before the state others wait for
    settled = run.rollback_settled_error  # what an earlier pass that stopped said goes
    if not _transitioned(rt, run_id, MigrationStatus.ROLLED_BACK,
                         error=settled if settled != (run.error_log or "") else None):
        return
    log.info("run %s rolled back: %s entities restored", run_id, restored)
    hooks.emit("after_rollback", run_id, status="rolled_back",
               detail={"restored": restored, "conflicts": 0})
    retention.prune_expired(rt)


def remaining_conflicts(rt: Runtime, run: RunRecord) -> int:
    """Conflicts of first passes that no forced pass has dealt with, and entities whose undo
    rows are missing: not even a forced pass can restore those, so they stay migrated."""
    total = 0
    for step in run.steps:
        restores = {r["id"]: r for r in rt.ledger.restores(step.id)}
        for rid, record in restores.items():
            if rid.endswith(":forced"):
                total += int(record["missing"] or 0)
            elif f"{rid}:forced" not in restores:
                total += int(record["conflicts"] or 0)
    return total


def _repeated(rt: Runtime, run: RunRecord) -> list[str]:
    """The repeatable migrations the run applied again whose steps it started (so their undo
    ran): an upgrade's, applied before it by another run."""
    if run.direction != "up":
        return []
    started = {s.version for s in run.steps if s.status is not MigrationStatus.PENDING}
    before = {a.version for a in rt.ledger.history()
              if a.state in ("applied", "repeated") and a.run_id != run.id}
    return [m["version"] for m in run.plan
            if m.get("repeatable") and m["version"] in started and m["version"] in before]


def block(rt: Runtime, run_id: str, message: str) -> None:
    """The run's own failure stays first in its error log; the rollback's follows."""
    log.warning("run %s: %s", run_id, message)
    message = rt.ledger.require_run(run_id).with_rollback_error(message)
    ending.release(rt, run_id)  # before the state others wait for
    if not _transitioned(rt, run_id, MigrationStatus.ROLLBACK_BLOCKED, error=message):
        return
    hooks.emit("after_rollback", run_id, status="rollback_blocked", detail={"error": message})


def _transitioned(rt: Runtime, run_id: str, status: MigrationStatus, *,
                  error: str | None = None) -> bool:
    """False when a second delivery of the same callback got there first."""
    try:
        rt.ledger.transition(run_id, status, error=error)
    except StatusTransitionError as exc:
        log.info("run %s: ended elsewhere (%s)", run_id, exc)
        return False
    return True
