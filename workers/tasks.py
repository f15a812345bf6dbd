"""Batch tasks, registered by name on the shared app. Small messages: ids, never data."""

import logging
from typing import Any

from celery import Task

from kgmigrate.engine.batch import record_crash, run_batch, run_statement
from kgmigrate.engine.restore import restore_batch
from kgmigrate.errors import BackendError, KgmError
from kgmigrate.monitoring import hooks, logs
from kgmigrate.runtime.app import APPLY_BATCH, RESTORE_BATCH, RUN_STATEMENT, app, shown_name
from kgmigrate.runtime.context import current

MAX_RETRIES = 5
log = logging.getLogger("workers.tasks")


class StepTask(Task):  # type: ignore[misc]
    """A task of one step. Its retries keep the name Flower shows it under: Celery computes a
    retry's `shadow` from here, not from the message it retries."""

    def shadow_name(self, args: Any, kwargs: dict[str, Any], options: Any) -> str | None:
        if "version" in kwargs and "step" in kwargs:
            return shown_name(self.name, kwargs["version"], kwargs["step"])
        return None


@app.task(name=APPLY_BATCH, bind=True, max_retries=MAX_RETRIES, base=StepTask)  # type: ignore[untyped-decorator]
def apply_batch(self: Task, run_id: str, step_id: str, seq: int, batch_id: str,
                **labels: Any) -> dict[str, Any]:
    """`labels` (version, step, key range) are only there to read well in Flower."""
    step = labels.get("step")
    with logs.context(run_id=run_id, version=labels.get("version"), step=step, batch=seq):
        repeat = bool(self.request.retries  # a retry after a transient error
                      or (self.request.delivery_info or {}).get("redelivered"))
        hooks.emit("before_batch", run_id, step=step, batch=seq, status="in_progress",
                   detail={"keys": labels.get("keys")})
        try:
            result = run_batch(current(), run_id, step_id, seq, batch_id)
        except BackendError as exc:  # transient: retry with exponential backoff
            log.warning("batch %s: transient error, retry %s: %s", seq,
                        self.request.retries + 1, exc)
            raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries)) from exc
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


@app.task(name=RUN_STATEMENT, bind=True, max_retries=MAX_RETRIES, base=StepTask)  # type: ignore[untyped-decorator]
def run_statement_task(self: Task, run_id: str, step_id: str, batch_id: str,
                       **labels: Any) -> dict[str, Any]:
    with logs.context(run_id=run_id, version=labels.get("version"), step=labels.get("step")):
        try:
            return run_statement(current(), run_id, step_id, batch_id).model_dump(mode="json")
        except BackendError as exc:
            raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries)) from exc


@app.task(name=RESTORE_BATCH, bind=True, max_retries=MAX_RETRIES, base=StepTask)  # type: ignore[untyped-decorator]
def restore_batch_task(self: Task, run_id: str, step_id: str, seq: int, batch_id: str,
                       undo: str | None, force: bool, **labels: Any) -> dict[str, Any]:
    with logs.context(run_id=run_id, version=labels.get("version"), step=labels.get("step"),
                      batch=seq, rollback=True):
        try:
            result = restore_batch(current(), run_id, step_id, seq, batch_id, undo=undo,
                                   force=force)
        except BackendError as exc:
            raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries)) from exc
        log.info("restore of batch %s %s: %s restored, %s conflicts", seq, result.status,
                 result.restored, result.conflicts)
        return result.model_dump(mode="json")
