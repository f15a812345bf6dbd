"""Restoring one committed batch from the undo log (a rollback task), in a worker process."""

import time
from typing import Any, Literal

from pydantic import BaseModel

from kgmigrate.backup.store import BackupStoreError
from kgmigrate.compile import SchemaPlan, StatementPlan
from kgmigrate.engine.batch import apply_schema, worker_name, write_tagged
from kgmigrate.engine.undo import (
    Shape,
    conflicts_key,
    restore_rows,
    restore_statement,
    touched_names,
)
from kgmigrate.errors import BackendError
from kgmigrate.ledger import restore_step_id
from kgmigrate.ledger.batches import is_repeat, restore_batch_id
from kgmigrate.model.records import utc_now
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
    """Exactly once, like a forward batch: the restore and its ledger record are one statement.
    A forced pass only revisits the entities the first pass left as conflicts."""
    started = time.perf_counter()
    record, plan = rt.step(step_id)[0], rt.plan(step_id)
    rb_id = restore_batch_id(batch_id, force)
    result = RestoreResult(batch_id=rb_id, seq=seq, status="completed")
    if rt.ledger.batch_status(rb_id) == "completed":
        return result.model_copy(update={"status": "skipped"})
    if isinstance(plan, SchemaPlan):  # an index the run created is dropped (and vice versa)
        apply_schema(rt, plan.reverse())
        rt.ledger.mark_restored(result.batch_id, run_id, restore_step_id(step_id))
        return result.model_copy(update={"restored": 1})
    if isinstance(plan, StatementPlan):
        return _run_down(rt, result, plan, run_id, step_id, started)
    if undo is None:
        return result.model_copy(update={"status": "failed", "error": (
            f"batch {seq} was committed without an undo record (a run from before undo logs?)")})
    only = None
    if force and rt.ledger.batch_status(restore_batch_id(batch_id, False)) == "completed":
        first = conflicts_key(run_id, record.order, seq, forced=False)
        if not rt.store.exists(first):
            return result.model_copy(update={"status": "failed", "error": (
                f"batch {seq}: the conflicts of the first rollback pass were not recorded (its "
                "worker died); check this batch's entities by hand")})
        only = {c["key"] for c in rt.store.rows(first)}
        if not only:
            return result.model_copy(update={"status": "skipped"})
    try:
        rows, early = restore_rows(rt.store, undo, force=force, only=only)
    except BackupStoreError as exc:
        return result.model_copy(update={"status": "failed", "error": str(exc)})
    shape = Shape(plan.scope.entity, plan.creates is not None, plan.deletes)
    names = touched_names(rows, shape)
    statement = restore_statement(rt.backend.dialect, shape, names)
    params = {"kgm_rows": rows, "kgm_names": names, "kgm_early": len(early), "kgm_batch_id": rb_id,
              "kgm_run_id": run_id, "kgm_step_id": restore_step_id(step_id),
              "kgm_at": utc_now().isoformat(), "kgm_worker": worker_name()}
    written = write_tagged(rt, statement, params, run_id=run_id, step_id=step_id,
                           restore=batch_id)
    if isinstance(written, BackendError):
        if is_repeat(written):  # done by an earlier delivery
            return result.model_copy(update={"status": "skipped"})
        return result.model_copy(update={"status": "failed",
                                         "error": f"restore of batch {seq} failed: {written}"})
    row = written.single()
    conflicts: list[dict[str, Any]] = early + [
        {"key": key, "reason": "changed by someone else since the batch wrote it"
         if now is not None else "deleted by someone else since the batch wrote it",
         "now": now} for key, now in row["conflicts"]]
    if conflicts or not force:
        rt.store.put_rows(conflicts_key(run_id, record.order, seq, forced=force), conflicts)
    return result.model_copy(update={
        "restored": int(row["restored"]), "conflicts": len(conflicts),
        "seconds": time.perf_counter() - started})


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
        failed = write_tagged(rt, statement, run_id=run_id, step_id=step_id)
        if isinstance(failed, BackendError):
            return result.model_copy(update={"status": "failed",
                                             "error": f"down statement failed: {failed}"})
    rt.ledger.mark_restored(result.batch_id, run_id, restore_step_id(step_id))
    return result.model_copy(update={"restored": 1, "seconds": time.perf_counter() - started})
