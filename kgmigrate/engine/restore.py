"""Restoring one committed batch from the undo log (a rollback task), in a worker process."""

import time
from typing import Literal

from pydantic import BaseModel

from kgmigrate.compile import BatchPlan, SchemaPlan, StatementPlan
from kgmigrate.engine.batch import (
    COMMITTED_AS_IT_WENT,
    StatementRefused,
    apply_schema,
    worker_name,
    write_tagged,
)
from kgmigrate.engine.undo import Shape, restore_statement
from kgmigrate.ledger import restore_step_id
from kgmigrate.ledger.batches import is_repeat, restore_batch_id
from kgmigrate.ledger.undo import IN_GRAPH
from kgmigrate.model.records import MigrationStatus, utc_now
from kgmigrate.runtime.context import Runtime


class RestoreResult(BaseModel):
    """What a restore task returns (JSON)."""

    batch_id: str
    seq: int
    status: Literal["completed", "skipped", "failed"]
    restored: int = 0
    conflicts: int = 0
    error: str | None = None
    seconds: float = 0.0


def restore_batch(rt: Runtime, run_id: str, step_id: str, seq: int, batch_id: str, *,
                  undo: str | None, force: bool) -> RestoreResult:
    """Exactly once, like a forward batch: the restore, its outcome on each undo row and its
    ledger record are one statement. A forced pass only revisits the entities the first pass
    left as conflicts (all of them when there was no first pass)."""
    started = time.perf_counter()
    plan = rt.plan(step_id)
    rb_id = restore_batch_id(batch_id, force)
    result = RestoreResult(batch_id=rb_id, seq=seq, status="completed")
    if rt.ledger.batch_status(rb_id) == "completed":
        return result.model_copy(update={"status": "skipped"})
    if not isinstance(plan, BatchPlan):  # the batch statement fences itself; these cannot
        status = rt.ledger.require_run(run_id).status
        if status is not MigrationStatus.ROLLING_BACK:
            return _not_rolling_back(result, run_id, status)
    if isinstance(plan, SchemaPlan):  # an index the run created is dropped (and vice versa)
        apply_schema(rt, plan.reverse())
        rt.ledger.mark_restored(result.batch_id, run_id, restore_step_id(step_id))
        return result.model_copy(update={"restored": 1})
    if isinstance(plan, StatementPlan):
        return _run_down(rt, result, plan, run_id, step_id, started)
    if undo != IN_GRAPH:
        return result.model_copy(update={"status": "failed", "error": (
            f"batch {seq} was committed without an undo log in the graph ({undo or 'none'}: a "
            "run of an earlier kgmigrate); roll it back with the version that ran it")})
    # a forced pass after a completed first one revisits only what that pass left
    after_first = force and rt.ledger.batch_status(restore_batch_id(batch_id, False)) == "completed"
    expected, rows, names = rt.ledger.undo_shape(batch_id)
    missing = max(expected - rows, 0)
    if missing and not force:
        return result.model_copy(update={"status": "failed", "error": (
            f"batch {seq}: {missing} of its {expected} undo records are missing from the graph; "
            "nothing of it was restored. Restore those entities by hand, then roll back with "
            "--force (it restores the rest and counts the missing as conflicts)")})
    shape = Shape(plan.scope.entity, plan.creates is not None, plan.deletes, plan.kept)
    statement = restore_statement(rt.backend.dialect, shape, names, conflicts_only=after_first,
                                  forced=force)
    params = {"kgm_undo_batch": batch_id, "kgm_names": names, "kgm_missing": missing,
              "kgm_batch_id": rb_id, "kgm_run_id": run_id,
              "kgm_step_id": restore_step_id(step_id), "kgm_at": utc_now().isoformat(),
              "kgm_worker": worker_name()}
    try:
        row = write_tagged(rt, statement, params, run_id=run_id, step_id=step_id,
                           restore=batch_id).single()
    except StatementRefused as refused:
        if is_repeat(refused) and rt.ledger.batch_status(rb_id) == "completed":
            return result.model_copy(update={"status": "skipped"})  # an earlier delivery's
        if is_repeat(refused):  # the statement's fence: the run stopped rolling back
            return _not_rolling_back(result, run_id, rt.ledger.require_run(run_id).status)
        return result.model_copy(update={"status": "failed",
                                         "error": f"restore of batch {seq} failed: {refused}"})
    return result.model_copy(update={
        "restored": int(row["restored"]), "conflicts": len(row["conflicts"]) + missing,
        "seconds": time.perf_counter() - started})


def _not_rolling_back(result: RestoreResult, run_id: str,
                      status: MigrationStatus) -> RestoreResult:
    """A restore delivered after its run stopped rolling back (abandoned, or blocked and not
    rolled back again) is refused: whoever ended the rollback decides what the graph holds."""
    return result.model_copy(update={"status": "failed", "error": (
        f"restore of batch {result.seq} not applied: run {run_id} is {status}, not rolling "
        "back")})


def _run_down(rt: Runtime, result: RestoreResult, plan: StatementPlan, run_id: str,
              step_id: str, started: float) -> RestoreResult:
    """An unbatched statement is undone by its `down` statement (or, in a `.cypher` file, by
    the file's down section), run once."""
    undo = plan.undo
    if undo is None:
        return result.model_copy(update={"status": "failed", "error": (
            f"the Cypher step {plan.description!r} has no down statement; undo it by hand, "
            "then roll back again with --force")})
    for statement in undo:
        try:
            write_tagged(rt, statement, run_id=run_id, step_id=step_id,
                         implicit=statement in plan.implicit)
        except StatementRefused as refused:
            kept = f"; {COMMITTED_AS_IT_WENT}" if statement in plan.implicit else ""
            return result.model_copy(update={"status": "failed",
                                             "error": f"down statement failed: {refused}{kept}"})
    rt.ledger.mark_restored(result.batch_id, run_id, restore_step_id(step_id))
    return result.model_copy(update={"restored": 1, "seconds": time.perf_counter() - started})
