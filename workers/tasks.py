"""Batch tasks, registered by name on the shared app. Small messages: ids, never data. What
they share (log context, retries with backoff, Flower's names) is `StepTask`."""

import logging
from typing import Any

from celery import Task

from kgmigrate.engine.batch import record_crash, run_batch, run_statement
from kgmigrate.engine.restore import restore_batch
from kgmigrate.errors import BackendError, KgmError
from kgmigrate.monitoring import hooks
from kgmigrate.runtime.app import APPLY_BATCH, RESTORE_BATCH, RUN_STATEMENT, app
from kgmigrate.runtime.context import current
from kgmigrate.runtime.tasks import StepTask

log = logging.getLogger("workers.tasks")


@app.task(name=APPLY_BATCH, bind=True, base=StepTask)  # type: ignore[untyped-decorator]
def apply_batch(self: Task, run_id: str, step_id: str, seq: int, batch_id: str,
                **labels: Any) -> dict[str, Any]:
    step = labels.get("step")
    repeat = bool(self.request.retries  # a retry after a transient error
                  or (self.request.delivery_info or {}).get("redelivered"))
    hooks.emit("before_batch", run_id, step=step, batch=seq, status="in_progress",
               detail={"keys": labels.get("keys")})
    try:
        result = run_batch(current(), run_id, step_id, seq, batch_id)
    except BackendError:
        raise  # StepTask retries it
    except Exception as exc:  # a crash: leave the reason in the ledger, fail the chord
        log.exception("batch %s crashed", seq)
        record_crash(current(), run_id, step_id, seq, batch_id, exc)
        raise
    if repeat or result.status == "skipped":  # skipped: an earlier delivery committed it
        _note_retry(batch_id)  # (a requeue after a lost worker is not flagged redelivered)
    log.log(logging.INFO if result.status != "failed" else logging.ERROR,
            "batch %s %s: %s entities in %.3f s%s", seq, result.status, result.entities,
            result.seconds, f": {result.error}" if result.error else "")
    hooks.emit("after_batch", run_id, step=step, batch=seq, status=result.status,
               detail={"entities": result.entities, "seconds": result.seconds,
                       "counters": result.counters, "error": result.error})
    return result.model_dump(mode="json")


def _note_retry(batch_id: str) -> None:
    try:
        current().ledger.note_retry(batch_id)
    except KgmError as exc:  # the metrics lose one retry; the batch itself goes on
        log.warning("could not count a retry of %s: %s", batch_id, exc)


@app.task(name=RUN_STATEMENT, bind=True, base=StepTask)  # type: ignore[untyped-decorator]
def run_statement_task(self: Task, run_id: str, step_id: str, batch_id: str,
                       **labels: Any) -> dict[str, Any]:
    return run_statement(current(), run_id, step_id, batch_id).model_dump(mode="json")


@app.task(name=RESTORE_BATCH, bind=True, base=StepTask)  # type: ignore[untyped-decorator]
def restore_batch_task(self: Task, run_id: str, step_id: str, seq: int, batch_id: str,
                       undo: str | None, force: bool, **labels: Any) -> dict[str, Any]:
    result = restore_batch(current(), run_id, step_id, seq, batch_id, undo=undo, force=force)
    log.info("restore of batch %s %s: %s restored, %s conflicts", seq, result.status,
             result.restored, result.conflicts)
    return result.model_dump(mode="json")
