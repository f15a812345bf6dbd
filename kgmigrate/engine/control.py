"""The control logic of a run: start or resume it, finish a step, fail it, finish the run.

Every decision reads the ledger first and is safe to repeat: a redelivered control task finds
the step already decided and does nothing.
"""

import logging
import shlex
import subprocess
from typing import Any, Literal

from celery import Celery

from kgmigrate.backup.snapshot import create_snapshot
from kgmigrate.compile import BatchPlan, StatementPlan
from kgmigrate.engine import ending, retention, rollback, watch
from kgmigrate.engine.batch_statement import BatchResult, step_validation_statement
from kgmigrate.engine.canvas import launch_step
from kgmigrate.engine.planner import plan_step
from kgmigrate.errors import KgmError
from kgmigrate.model.records import (
    MigrationMetadata,
    MigrationStatus,
    RunRecord,
    StepRecord,
    utc_now,
)
from kgmigrate.model.status import FINAL_STEP, ROLLBACK_STATES, StatusTransitionError
from kgmigrate.monitoring import hooks
from kgmigrate.runtime.context import Runtime
from kgmigrate.runtime.settings import child_environment

log = logging.getLogger("kgmigrate.orchestrator")


def start_run(rt: Runtime, app: Celery, run_id: str) -> None:
    """Start a PENDING run, or resume an IN_PROGRESS/FAILED one from its uncommitted batches."""
    run = rt.ledger.require_run(run_id)
    if run.status.is_final or run.status in ROLLBACK_STATES:
        return
    if run.status is MigrationStatus.PAUSED and run.request is not None:
        return  # a start delivered again while an operator keeps the run paused
    first_start = run.status is MigrationStatus.PENDING
    try:
        # The backup is taken while the run is still PENDING, so that a delivery of this task
        # again during a long backup (the broker's visibility timeout) takes its own, before any
        # change, instead of launching batches on a graph not yet backed up; the transition
        # then lets one of them start the run, with its backup recorded in the same write.
        backup = pre_run_backup(rt, run) if first_start else None
    except Exception as exc:  # the backup failed: end the run, do not hang
        log.exception("run %s could not be started", run_id)
        if rt.ledger.require_run(run_id).status is MigrationStatus.PENDING:  # else another
            fail(rt, run_id, run.steps[0].id,  # delivery's backup started it: leave it be
                 f"step 1 could not be started: {exc}", app=app)
        return
    try:
        if run.status is not MigrationStatus.IN_PROGRESS:  # pending, failed (resume), validating
            run = rt.ledger.transition(run_id, MigrationStatus.IN_PROGRESS, backup_ref=backup)
    except StatusTransitionError as exc:
        if first_start:  # another delivery of this task started the run first
            log.info("run %s: started by another delivery (%s)", run_id, exc)
            return
        raise
    for step in run.steps:
        if step.status is MigrationStatus.FAILED:
            rt.ledger.update_step(step.id, status=MigrationStatus.IN_PROGRESS)
    run = rt.ledger.require_run(run_id)
    watch.begin(rt, app, run_id)
    log.info("run %s %s: %s", run_id, "started" if first_start else "resumed",
             ", ".join(run.migrations))
    if first_start:
        hooks.emit("before_migration", run_id, status=run.status.value,
                   detail={"migrations": run.migrations, "target": run.target})
    try:
        _launch_next(rt, app, run)
    except Exception as exc:  # planning or launching failed: end the run, do not hang
        log.exception("run %s could not be started", run_id)
        current = next((s for s in run.steps if s.status is not MigrationStatus.COMPLETED),
                       run.steps[-1])
        fail(rt, run_id, current.id, f"step {current.order} could not be started: {exc}",
             app=app)


def pre_run_backup(rt: Runtime, run: RunRecord) -> str | None:
    """For a run of a migration that asked for one (`snapshot=True`): the configured external
    backup command (e.g. `neo4j-admin database dump`), or kgmigrate's own snapshot of the
    labels the run touches (the whole graph when a step is not confined to node labels).
    Returns its reference, for the caller to record."""
    if not any(meta.get("snapshot") for meta in run.plan):
        return None
    command = rt.settings.pre_migration_backup_command
    if command:
        argv = shlex.split(command)
        done = subprocess.run(argv, env=child_environment(KGMIGRATE_RUN_ID=run.id),
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise KgmError(f"the pre-migration backup command {argv[0]} exited with "
                           f"{done.returncode}: {' / '.join(tail)}")
        ref = f"external:{argv[0]}"
    else:
        labels = {str(s.spec["name"]) for s in run.steps if s.spec.get("entity") == "node"}
        whole = any(s.spec.get("entity") != "node" for s in run.steps)
        manifest = create_snapshot(rt.backend, rt.store, labels=() if whole else sorted(labels),
                                   reason=f"before run {run.id}")
        ref = f"snapshot:{manifest.id}"
    return ref


def _launch_next(rt: Runtime, app: Celery, run: RunRecord) -> None:
    step = next((s for s in run.steps if s.status is not MigrationStatus.COMPLETED), None)
    if step is None:
        _finish(rt, run)
        return
    rt.lock.renew_for_run(run.id)
    if step.status is MigrationStatus.PENDING:
        rt.ledger.update_step(step.id, status=MigrationStatus.IN_PROGRESS, started_at=utc_now())
        hooks.emit("before_step", run.id, step=step.order, status="in_progress",
                   detail={"version": step.version, "description": step.description})
    plan = rt.plan(step.id)
    plan_step(rt.backend, rt.ledger, step, plan)
    step = rt.ledger.step(step.id)
    log.info("step %s of run %s: %s batches, %s entities", step.order, run.id,
             step.batches_total, step.entities_total)
    launch_step(app, step, plan.scope is not None, rt.ledger.pending_batches(step.id))


def step_done(rt: Runtime, app: Celery, results: list[dict[str, Any]], run_id: str,
              step_id: str) -> None:
    step = rt.ledger.step(step_id)
    if step.status in FINAL_STEP:  # a repeated callback: decided, but perhaps not carried out
        redrive(rt, app, run_id)
        return
    run, batches = rt.ledger.require_run(run_id), [BatchResult(**r) for r in results]
    if not any(b.status == "failed" for b in batches) and (
            run.status is MigrationStatus.PAUSED or any(b.status == "paused" for b in batches)):
        _held_back(rt, app, run)  # (a request with every batch in: decided first, below)
        return
    try:
        _decide(rt, app, batches, run, step)
    except StatusTransitionError as exc:  # a second delivery of this callback decided first
        log.info("step %s of run %s: decided elsewhere (%s)", step.order, run_id, exc)
    except Exception as exc:  # a bug or a lost server must not leave the run hanging
        log.exception("step %s of run %s could not be finished", step.order, run_id)
        fail(rt, run_id, step_id, f"step {step.order} could not be finished: {exc}", app=app)


def _held_back(rt: Runtime, app: Celery, run: RunRecord) -> None:
    """A step's chord came back with batches that did not start because an operator asked the
    run to pause or cancel: no batch of the step is in flight any more, so the run pauses
    here (and a cancel is carried out). When the request was withdrawn meanwhile (`resume`),
    what was held back is launched again instead."""
    if run.request is None and run.status is not MigrationStatus.PAUSED:
        _launch_next(rt, app, run)
        return
    pause(rt, app, run.id)


def pause(rt: Runtime, app: Celery, run_id: str) -> None:
    """The run is PAUSED (nothing of it in flight), then what was asked of it is carried out."""
    run = rt.ledger.require_run(run_id)
    if run.status is not MigrationStatus.PAUSED:
        try:
            rt.ledger.transition(run_id, MigrationStatus.PAUSED)
        except StatusTransitionError as exc:  # another delivery, or it ended meanwhile
            log.info("run %s: not paused (%s)", run_id, exc)
            return
        log.info("run %s paused (asked by %s)", run_id, run.request_by or "someone")
        hooks.emit("on_pause", run_id, status="paused", detail={"by": run.request_by})
    carry_out(rt, app, run_id)


def carry_out(rt: Runtime, app: Celery, run_id: str) -> None:
    """What was asked of a PAUSED run: stay paused (pause), roll back (cancel), end FAILED as
    it is (cancel_keep); or continue it when the request was withdrawn. The request is read
    after the run was paused, and `kgmigrate cancel` reads the status after writing its
    request (both under the run's write lock), so one of the two sees the other."""
    run = rt.ledger.require_run(run_id)
    if run.status is not MigrationStatus.PAUSED or run.request == "pause":
        return
    if run.request is None:  # resumed meanwhile: go on with what was held back
        try:
            run = rt.ledger.transition(run_id, MigrationStatus.IN_PROGRESS)
        except StatusTransitionError:
            return  # the resume's own start took it up
        _launch_next(rt, app, run)
        return
    current = next((s for s in run.steps if s.status is not MigrationStatus.COMPLETED),
                   run.steps[-1])
    by = run.request_by or "someone"
    if run.request == "cancel":
        fail(rt, run_id, current.id, f"cancelled by {by}", app=app, roll_back=True)
    else:
        _stop_as_it_is(rt, run_id, current.id, by)
    rt.ledger.set_request(run_id, None, None)  # carried out (a repeat finds the run moved on)


def _stop_as_it_is(rt: Runtime, run_id: str, step_id: str, by: str) -> None:
    rt.ledger.update_step(step_id, status=MigrationStatus.FAILED, finished_at=utc_now(),
                          error=f"cancelled by {by}")
    ending.release(rt, run_id)  # before the state others wait for
    try:
        rt.ledger.transition(run_id, MigrationStatus.FAILED,
                             error=f"cancelled by {by}; kept as it is: `kgmigrate resume "
                                   f"{run_id}` continues it, `kgmigrate rollback {run_id}` "
                                   "undoes it")
    except StatusTransitionError as exc:
        log.info("run %s: its cancel was carried out elsewhere (%s)", run_id, exc)


def redrive(rt: Runtime, app: Celery, run_id: str, *, force: bool = False) -> None:
    """Carry a run on from what the ledger says, for a control task delivered again.

    Its first delivery may have died after deciding and before its launch was sent whole: a
    chord cut short mid-publish has no size in the result backend and never calls back, and
    then nothing else would move the run. So a repeat launches again whatever is left. That is
    safe because every batch and restore is exactly once in the ledger (a duplicate is
    skipped) and a duplicate callback arrives here again instead of deciding twice. `force`:
    a rollback carried on is a forced one (only the watch of a forced rollback knows)."""
    run = rt.ledger.require_run(run_id)
    if run.status is MigrationStatus.ROLLING_BACK:
        rollback.relaunch(rt, app, run, force=force)
        return
    if run.status not in (MigrationStatus.IN_PROGRESS, MigrationStatus.VALIDATING):
        return  # ended, failed or blocked: a person decides what comes next
    log.info("run %s: a repeated control task carries it on from the ledger", run_id)
    failed = next((s for s in run.steps if s.status is MigrationStatus.FAILED), None)
    if failed is not None:  # its failure was recorded but not carried out
        fail(rt, run_id, failed.id, failed.error or f"step {failed.order} failed", app=app)
        return
    _launch_next(rt, app, run)


def _decide(rt: Runtime, app: Celery, results: list[BatchResult], run: RunRecord,
            step: StepRecord) -> None:
    # Counters and times from the ledger: a chord of duplicates (a launch repeated by a
    # redelivery) returns `skipped` for batches another delivery committed, with nothing.
    committed = [b for b in rt.ledger.batches(step.id) if b.status is MigrationStatus.COMPLETED]
    counters: dict[str, int] = {}
    for b in committed:
        for name, value in b.counters.items():
            counters[name] = counters.get(name, 0) + value
    failed = sorted((r for r in results if r.status == "failed"), key=lambda r: r.seq)
    if failed:
        first = failed[0]
        fail(rt, run.id, step.id, f"step {step.order} ({step.description}): {first.error}"
             + (f" (and {len(failed) - 1} more failed batches)" if len(failed) > 1 else ""),
             counters=counters, app=app,
             validation="failed" if any(r.offending for r in failed) else None)
        return
    if run.status is not MigrationStatus.VALIDATING:  # else a repeat after a cut-short check
        rt.ledger.transition(run.id, MigrationStatus.VALIDATING)
    rt.ledger.update_step(step.id, status=MigrationStatus.VALIDATING)
    problem, proved = _validate_step(rt, step)
    if problem:
        fail(rt, run.id, step.id, f"step {step.order} ({step.description}): {problem}",
             counters=counters, app=app, validation="failed")
        return
    seconds = [round(b.seconds, 4) for b in committed if b.seconds is not None]
    rt.ledger.update_step(step.id, status=MigrationStatus.COMPLETED, counters=counters,
                          finished_at=utc_now(), batch_seconds=seconds,
                          validation="passed" if proved else None)
    log.info("step %s of run %s completed: %s entities", step.order, run.id,
             step.entities_done)
    hooks.emit("after_step", run.id, step=step.order, status="completed",
               detail={"version": step.version, "counters": counters,
                       "validation": "passed" if proved else None})
    run = rt.ledger.require_run(run.id)
    if run.ends_its_migration(step):
        _record_applied(rt, run, step.version)
    if run.request is not None and (run.next_step(step) is not None
                                    or run.request == "cancel"):
        pause(rt, app, run.id)  # an operator asked: not the next step (a cancel: not the end)
        return
    if run.next_step(step) is not None:
        run = rt.ledger.transition(run.id, MigrationStatus.IN_PROGRESS)
        _launch_next(rt, app, run)
    else:
        _finish(rt, run)


def _validate_step(rt: Runtime, step: StepRecord) -> tuple[str | None, bool]:
    """The step's own proof, run after all its batches: (what does not hold, or None; whether
    the step declares any proof beyond its batches being committed)."""
    step = rt.ledger.step(step.id)
    if step.batches_done != step.batches_total:
        return (f"only {step.batches_done} of {step.batches_total} batches are recorded as "
                "committed"), True
    plan = rt.plan(step.id)
    if isinstance(plan, BatchPlan) and plan.validation:
        statement = step_validation_statement(rt.backend.dialect, plan.scope, plan.validation)
        failing = rt.backend.read(statement, plan.params).value("failing")
        if failing:
            return f"validation `{plan.validation}` fails for {failing} entities in scope", True
    if (isinstance(plan, BatchPlan) and plan.check and rt.backend.read(
            plan.check, {**plan.params, "kgm_planned": step.entities_total}).value("valid")
            is not True):
        return f"the step's check failed: {plan.check}", True
    if (isinstance(plan, StatementPlan) and plan.validation
            and rt.backend.read(plan.validation).value("valid") is not True):
        return f"validation query returned false: {plan.validation}", True
    return None, plan.proves


def _record_applied(rt: Runtime, run: RunRecord, version: str) -> None:
    meta = next(m for m in run.plan if m["version"] == version)
    steps = [s for s in run.steps if s.version == version]
    started = min((s.started_at for s in steps if s.started_at), default=None)
    duration = int((utc_now() - started).total_seconds() * 1000) if started else 0
    metadata = MigrationMetadata(**meta, steps=[])
    applied = {a.version: a.run_id for a in rt.ledger.applied()}
    if metadata.direction == "down":
        if version in applied:  # else recorded by an earlier delivery of this decision
            rt.ledger.record_downgraded(metadata, run_id=run.id, duration_ms=duration)
    elif applied.get(version) != run.id:  # else recorded by an earlier delivery
        rt.ledger.record_applied(metadata, run_id=run.id, duration_ms=duration,
                                 repeat=metadata.repeatable and version in applied)


def _finish(rt: Runtime, run: RunRecord) -> None:
    totals: dict[str, int] = {}
    for step in run.steps:
        for name, value in step.counters.items():
            totals[name] = totals.get(name, 0) + value
    rt.ledger.update_run_facts(run.id, counters=totals)
    if run.status is not MigrationStatus.VALIDATING:
        rt.ledger.transition(run.id, MigrationStatus.VALIDATING)
    # The lock first: whoever sees the run COMPLETED may start the next one at once
    ending.release(rt, run.id)
    rt.ledger.transition(run.id, MigrationStatus.COMPLETED)
    log.info("run %s completed", run.id)
    hooks.emit("after_migration", run.id, status="completed",
               detail={"migrations": run.migrations, "counters": totals})
    retention.prune_expired(rt)


def fail(rt: Runtime, run_id: str, step_id: str, message: str, *,
         counters: dict[str, int] | None = None, app: Celery | None = None,
         validation: Literal["failed"] | None = None, roll_back: bool | None = None) -> None:
    """The step is FAILED (from here on its late batches abort instead of committing); the run
    rolls back (`roll_back`, by default KGMIGRATE_AUTO_ROLLBACK) or ends FAILED, keeping the
    lock only while something still runs."""
    rt.ledger.update_step(step_id, status=MigrationStatus.FAILED, counters=counters,
                          finished_at=utc_now(), validation=validation, error=message)
    run = rt.ledger.require_run(run_id)
    log.error("run %s failed: %s", run_id, message)
    hooks.emit("on_failure", run_id, step=next(s.order for s in run.steps if s.id == step_id),
               status="failed",
               detail={"error": message, "validation": validation})
    if run.status in (MigrationStatus.IN_PROGRESS, MigrationStatus.VALIDATING,
                      MigrationStatus.PENDING, MigrationStatus.PAUSED):
        try:
            if app is not None and (rt.settings.auto_rollback if roll_back is None
                                    else roll_back):
                rt.ledger.transition(run_id, MigrationStatus.ROLLING_BACK, error=message)
                rollback.start(rt, app, run_id, force=False)
                return
            ending.release(rt, run_id)  # before the state others wait for
            rt.ledger.transition(run_id, MigrationStatus.FAILED, error=message)
        except StatusTransitionError as exc:  # failed by a concurrent delivery already
            log.info("run %s: its failure was handled elsewhere (%s)", run_id, exc)
        return
    rt.lock.release_for_run(run_id)

