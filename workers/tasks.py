"""Batch tasks, registered by name on the shared app. Small messages: ids, never data."""

from typing import Any

from celery import Task

from kgmigrate.celery_app import APPLY_BATCH, RESTORE_BATCH, RUN_STATEMENT, app
from kgmigrate.errors import BackendError
from kgmigrate.runtime import current
from workers.batch import record_crash, run_batch, run_statement
from workers.restore import restore_batch

MAX_RETRIES = 5


@app.task(name=APPLY_BATCH, bind=True, max_retries=MAX_RETRIES)  # type: ignore[untyped-decorator]
def apply_batch(self: Task, run_id: str, step_id: str, seq: int, batch_id: str,
                **labels: Any) -> dict[str, Any]:
    """`labels` (version, step, key range) are only there to read well in Flower."""
    try:
        return run_batch(current(), run_id, step_id, seq, batch_id).model_dump(mode="json")
    except BackendError as exc:  # transient: retry with exponential backoff
        raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries)) from exc
    except Exception as exc:  # a crash: leave the reason in the ledger, then fail the chord
        record_crash(current(), run_id, step_id, seq, batch_id, exc)
        raise


@app.task(name=RUN_STATEMENT, bind=True, max_retries=MAX_RETRIES)  # type: ignore[untyped-decorator]
def run_statement_task(self: Task, run_id: str, step_id: str, batch_id: str,
                       **labels: Any) -> dict[str, Any]:
    try:
        return run_statement(current(), run_id, step_id, batch_id).model_dump(mode="json")
    except BackendError as exc:
        raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries)) from exc


@app.task(name=RESTORE_BATCH, bind=True, max_retries=MAX_RETRIES)  # type: ignore[untyped-decorator]
def restore_batch_task(self: Task, run_id: str, step_id: str, seq: int, batch_id: str,
                       undo: str | None, force: bool, **labels: Any) -> dict[str, Any]:
    try:
        return restore_batch(current(), run_id, step_id, seq, batch_id, undo=undo,
                             force=force).model_dump(mode="json")
    except BackendError as exc:
        raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries)) from exc
