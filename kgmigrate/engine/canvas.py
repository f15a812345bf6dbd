"""Per step, a chord of its batch tasks whose callback decides what comes next.

Tasks are addressed by name, so this module never imports worker code. The error callback
catches crashes (a task that raised after its retries), so a run never hangs on one.
"""

from typing import Any

from celery import Celery, chord

from kgmigrate.model.records import PlannedBatch, StepRecord
from kgmigrate.runtime.app import (
    APPLY_BATCH,
    RUN_STATEMENT,
    STEP_CRASHED,
    STEP_DONE,
    shown_name,
)


def launch_step(app: Celery, step: StepRecord, batched: bool,
                pending: list[PlannedBatch]) -> None:
    callback = app.signature(STEP_DONE, args=(step.run_id, step.id))
    callback.link_error(app.signature(STEP_CRASHED, args=(step.run_id, step.id)))
    if not pending:
        callback.apply_async(args=([],))
        return
    header = [_batch_signature(app, step, batched, bid, seq, address)
              for bid, seq, address in pending]
    chord(header)(callback)


def _batch_signature(app: Celery, step: StepRecord, batched: bool, bid: str, seq: int,
                     address: dict[str, Any]) -> Any:
    # the step's batch count, not "of": after a retune a batch's number exceeds the count
    labels = {"version": step.version, "step": step.order, "step_batches": step.batches_total}
    if not batched:
        return app.signature(RUN_STATEMENT, args=(step.run_id, step.id, bid), kwargs=labels,
                             shadow=shown(RUN_STATEMENT, step))
    if "lo" in address:
        labels["keys"] = f"[{address['lo']}, {address['hi']})"
    else:
        labels["keys"] = f"{len(address.get('keys', []))} keys"
    return app.signature(APPLY_BATCH, args=(step.run_id, step.id, seq, bid), kwargs=labels,
                         shadow=shown(APPLY_BATCH, step))


def shown(task: str, step: StepRecord) -> str:
    return shown_name(task, step.version, step.order)
