"""Running one batch (or one unbatched statement) of a step, in a worker process."""

import contextlib
import functools
import logging
import os
import socket
import time
from typing import Any

from kgmigrate.compile import BatchPlan, SchemaPlan, StatementPlan
from kgmigrate.engine.batch_statement import (
    BatchResult,
    address_from_json,
    batch_params,
    batch_statement,
    diagnosis_statement,
    touched_params,
)
from kgmigrate.engine.throttle import wait_turn
from kgmigrate.errors import BackendError, KgmError, ProbeTooLarge
from kgmigrate.graph.types import Counters, QueryResult
from kgmigrate.ledger import RunGate
from kgmigrate.ledger.batches import is_repeat
from kgmigrate.ledger.lock import LockLostError
from kgmigrate.model.records import BatchRecord, MigrationStatus, Offending, utc_now
from kgmigrate.model.scope import BatchAddress, KeyList
from kgmigrate.runtime.context import Runtime

log = logging.getLogger("kgmigrate.workers")
COMMITTED_AS_IT_WENT = ("`CALL { ... } IN TRANSACTIONS` commits as it goes: what its inner "
                        "transactions committed before the error stays in the graph")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class StatementRefused(KgmError):
    """The server refused a step's statement for good: the caller reports it (a transient
    error stays a `BackendError`, which the task base retries)."""

    def __init__(self, cause: BackendError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def write_tagged(rt: Runtime, statement: str, params: dict[str, Any] | None = None, *,
                 run_id: str, step_id: str, implicit: bool = False, **tags: str) -> QueryResult:
    """Run a step's statement, tagged with the run and step (and `tags`) for the server's
    query log; `implicit`: in an implicit (auto-commit) transaction, for
    `CALL { ... } IN TRANSACTIONS`. Raises `StatementRefused` for a permanent error."""
    metadata = {"kgmigrate_run": run_id, "kgmigrate_step": step_id,
                **{f"kgmigrate_{name}": value for name, value in tags.items()}}
    try:
        if implicit:
            return rt.backend.run_autocommit(statement, params, metadata=metadata)
        return rt.backend.write(statement, params, metadata=metadata)
    except BackendError as exc:
        if exc.transient:
            raise
        raise StatementRefused(exc) from exc


def run_batch(rt: Runtime, run_id: str, step_id: str, seq: int, batch_id: str) -> BatchResult:
    """Apply one batch exactly once, once its run's throttle lets it start. Transient errors
    propagate (the task retries them)."""
    result = BatchResult(run_id=run_id, step_id=step_id, batch_id=batch_id, seq=seq,
                         status="completed", worker=worker_name())
    plan = rt.plan(step_id)
    if not isinstance(plan, BatchPlan):
        return result.model_copy(update={"status": "failed",
                                         "error": "an unbatched step was sent as a batch"})
    # read once the gate lets the batch start (a batch held back by a pause costs one read),
    # or before, when an entity rate needs its size
    address_of = functools.cache(lambda: address_from_json(rt.ledger.batch_address(batch_id)))
    turn = wait_turn(rt, run_id, batch_id,
                     lambda: _at_most(address_of(), rt.ledger.step(step_id).batch_size))
    if turn.held is not None:
        return _held_result(result, turn.held)
    if turn.stop is not None:
        if not rt.ledger.claim_stop(run_id, turn.stop):
            return result.model_copy(update={"status": "paused"})  # another batch stops it
        return _failed(rt, result, f"batch {seq} not started: {turn.stop}", 0.0)
    started, started_at = time.perf_counter(), utc_now().isoformat()
    try:
        rt.lock.renew_for_run(run_id)
    except LockLostError as exc:
        return result.model_copy(update={"status": "failed", "error": str(exc)})
    dialect, scope, address = rt.backend.dialect, plan.scope, address_of()
    try:  # a Python transform computes its values from the entities' current state
        computed = plan.values(rt.backend.capture(scope, address)) if plan.values else {}
    except KgmError as exc:
        return _failed(rt, result, f"batch {seq}: {exc}", time.perf_counter() - started)
    params = {**batch_params(dialect, plan, address, run_id=run_id, step_id=step_id,
                             batch_id=batch_id, worker=result.worker, at=utc_now().isoformat(),
                             started=started_at), **computed}
    statement = batch_statement(dialect, plan)
    try:
        written = write_tagged(rt, statement, params, run_id=run_id, step_id=step_id,
                               batch=batch_id)
    except StatementRefused as refused:
        return _aborted(rt, result, refused.cause, plan,
                        params=dialect.batch_params(scope, address), started=started)
    row = written.single()
    if written.retries:  # the driver retried the transaction (a deadlock, a lost connection)
        with contextlib.suppress(KgmError):  # the metrics lose them; the batch is committed
            rt.ledger.note_retry(batch_id, written.retries)
    entities = int(row["n"])
    ledger_writes = int(row["undo_props"]) + dialect.lock_writes * entities
    counters = {k: v for k, v in _own_counters(written.counters, ledger_writes, entities).items()
                if v}
    seconds = time.perf_counter() - started
    try:  # the step adds these up from the ledger; if this write is lost, so are they
        rt.ledger.note_outcome(batch_id, counters, seconds, turn.waited_s or None)
        if turn.throttle.watches_latency:
            rt.ledger.note_latency(run_id, seconds)
    except KgmError as exc:
        log.warning("batch %s: its counters were not recorded: %s", seq, exc)
    return result.model_copy(update={"entities": entities, "counters": counters,
                                     "seconds": seconds})


def _at_most(address: BatchAddress, batch_size: int) -> int:
    """How many entities a batch can hold, for an entity rate: a key list's keys; a key range
    holds at most the step's batch size as it is now (a retune changes it; fewer where the
    scope leaves keys out)."""
    if isinstance(address, KeyList):
        return len(address.keys)
    return min(address.hi - address.lo, batch_size)


def _own_counters(counters: Counters, undo_writes: int, entities: int) -> dict[str, int]:
    """What the statement did besides writing the undo log: its rows (one node per entity,
    with its label and properties) and the lock's cancelled writes are left out."""
    own = counters.model_dump()
    own["nodes_created"] -= entities
    own["labels_added"] -= entities
    own["properties_set"] -= undo_writes
    return own


def _held(rt: Runtime, result: BatchResult) -> BatchResult | None:
    """What an unbatched statement returns without starting (None: go on)."""
    gate = rt.ledger.batch_and_run(result.batch_id, result.run_id)
    return _held_result(result, gate) if gate.holds else None


def _held_result(result: BatchResult, gate: RunGate) -> BatchResult:
    """`skipped` when an earlier delivery committed the batch (or a retune superseded it),
    `paused` when an operator asked its run to pause or cancel (it starts again, from the
    ledger, when the run continues)."""
    if gate.done:
        return result.model_copy(update={"status": "skipped"})
    return result.model_copy(update={"status": "paused"})


def _aborted(rt: Runtime, result: BatchResult, exc: BackendError, plan: BatchPlan, *,
             params: dict[str, object], started: float) -> BatchResult:
    """The server undid the batch: a redelivered duplicate, failed validation, or an error."""
    if not is_repeat(exc):
        return _failed(rt, result, f"batch {result.seq} failed: {exc}",
                       time.perf_counter() - started)
    if rt.ledger.batch_status(result.batch_id) in ("completed", "superseded"):
        return result.model_copy(update={"status": "skipped",
                                         "seconds": time.perf_counter() - started})
    step = rt.ledger.step(result.step_id)
    if step.status is not MigrationStatus.IN_PROGRESS:
        return result.model_copy(update={
            "status": "failed", "seconds": time.perf_counter() - started,
            "error": f"batch {result.seq} not applied: its step is {step.status}"})
    if not plan.validation:
        return _failed(rt, result, f"batch {result.seq} aborted: {exc}",
                       time.perf_counter() - started)
    # a step that changes only what it declares puts it back itself: no copy of the graph
    put_back = plan.kept if plan.values is None else None
    statement = diagnosis_statement(rt.backend.dialect, plan.scope, plan.apply,
                                    plan.validation, step.business_key, put_back=put_back)
    try:
        found = rt.backend.probe_write(statement, {**params, **touched_params(put_back)},
                                       undoes_itself=put_back is not None).single()
    except ProbeTooLarge as exc:
        return _failed(rt, result, f"batch {result.seq} failed validation `{plan.validation}` "
                       f"(how many of its entities fail, and which, is not looked at: {exc}; "
                       "a library op that declares what it changes is looked at in place)",
                       time.perf_counter() - started)
    offending = [Offending(key=row["key"], properties=shown_value(row["properties"] or {}),
                           business_key={step.business_key: shown_value(row["business"])}
                           if step.business_key else {}) for row in found["sample"]]
    failing, checked = int(found["failing"] or 0), int(found["checked"] or 0)
    message = validation_message(result.seq, plan.validation, failing, checked, offending)
    return _failed(rt, result.model_copy(update={
        "offending": [o.model_dump(mode="json") for o in offending], "failing": failing,
        "checked": checked}), message, time.perf_counter() - started)


def validation_message(seq: int, validation: str, failing: int, checked: int,
                       offending: list[Offending]) -> str:
    """`batch 16: 5,000 of 10,000 entities failed validation `...`; first 20: cid
    'CMP0075000' (key 75000), ...`: how many failed, of how many, and the first of them by
    their business key (when the migration declares one) and internal key."""
    if not offending:  # the entities changed between the batch and the second look
        return (f"batch {seq} failed validation `{validation}`, but none of its {checked:,} "
                "entities fails it on a second look (changed meanwhile?)")
    head = f"batch {seq}: {failing:,} of {checked:,} entities failed validation `{validation}`"
    named = any(o.business_key for o in offending)
    shown = ", ".join(_named(o) for o in offending) if named else (
        "keys " + ", ".join(str(o.key) for o in offending))
    if failing > len(offending):
        return f"{head}; first {len(offending)}: {shown}"
    return f"{head}: {shown}"


def _named(entity: Offending) -> str:
    """`cid 'CMP0075000' (key 75000)`."""
    return ", ".join(f"{name} {'null' if value is None else repr(value)} (key {entity.key})"
                     for name, value in entity.business_key.items())


CLIP = 200  # characters of a string value kept with an offending entity; items of a list


def shown_value(value: Any) -> Any:
    """An offending entity's value as it is kept in the ledger and shown to people, who need
    to recognise it, not copy it: long strings and lists cut, and the server's own types (a
    Neo4j date, a point) as their text, so that it travels as JSON."""
    if isinstance(value, str):
        return value if len(value) <= CLIP else value[:CLIP] + f"... ({len(value):,} characters)"
    if isinstance(value, list):
        shown = [shown_value(v) for v in value[:CLIP // 10]]
        return shown if len(value) <= CLIP // 10 else [*shown, f"... ({len(value):,} items)"]
    if isinstance(value, dict):
        return {str(k): shown_value(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def _failed(rt: Runtime, result: BatchResult, message: str, seconds: float) -> BatchResult:
    failed = result.model_copy(update={"status": "failed", "error": message, "seconds": seconds})
    rt.ledger.record_batch(BatchRecord(
        id=result.batch_id, run_id=result.run_id, step_id=result.step_id, seq=result.seq,
        status=MigrationStatus.FAILED, attempts=1, worker=result.worker, error=message[:4000],
        finished_at=utc_now(), failing=result.failing, checked=result.checked,
        offending=[Offending(**o) for o in result.offending]))
    return failed


def record_crash(rt: Runtime, run_id: str, step_id: str, seq: int, batch_id: str,
                 exc: BaseException) -> None:
    """Best effort: the chord's error callback reads the reason from here."""
    with contextlib.suppress(KgmError):  # the graph itself may be what failed
        _failed(rt, BatchResult(run_id=run_id, step_id=step_id, batch_id=batch_id, seq=seq,
                                status="failed", worker=worker_name()),
                f"batch {seq} crashed: {type(exc).__name__}: {exc}", 0.0)


def run_statement(rt: Runtime, run_id: str, step_id: str, batch_id: str) -> BatchResult:
    """An unbatched step: one statement, run once. It cannot share a statement with the ledger
    write, so it is at-least-once: such statements should be idempotent (IF NOT EXISTS, MERGE).
    One with `CALL { ... } IN TRANSACTIONS` runs in an implicit transaction and commits as it
    goes: when it fails, what its inner transactions committed stays (the error says so)."""
    started = time.perf_counter()
    result = BatchResult(run_id=run_id, step_id=step_id, batch_id=batch_id, seq=1,
                         status="completed", worker=worker_name())
    held = _held(rt, result)
    if held is not None:
        return held
    plan = rt.plan(step_id)
    if isinstance(plan, BatchPlan):
        return result.model_copy(update={"status": "failed",
                                         "error": "a batched step was sent as one statement"})
    try:
        rt.lock.renew_for_run(run_id)
        if isinstance(plan, SchemaPlan):
            changed = apply_schema(rt, plan)
            written = QueryResult(counters=Counters(
                **{"indexes_removed" if plan.drop else "indexes_added": int(changed)}))
        else:
            written = write_tagged(rt, plan.statement, run_id=run_id, step_id=step_id,
                                   implicit=plan.statement in plan.implicit)
    except BackendError as exc:  # from the index DDL
        if exc.transient:
            raise
        return _failed(rt, result, f"statement failed: {exc}", time.perf_counter() - started)
    except StatementRefused as refused:
        kept = (f"; {COMMITTED_AS_IT_WENT}" if isinstance(plan, StatementPlan)
                and plan.statement in plan.implicit else "")
        return _failed(rt, result, f"statement failed: {refused}{kept}",
                       time.perf_counter() - started)
    except KgmError as exc:
        return _failed(rt, result, str(exc), time.perf_counter() - started)
    counters = {k: v for k, v in written.counters.model_dump().items() if v}
    rt.ledger.complete_statement(batch_id, run_id=run_id, step_id=step_id,
                                 worker=result.worker, counters=counters)
    seconds = time.perf_counter() - started
    rt.ledger.note_outcome(batch_id, counters, seconds)
    return result.model_copy(update={"counters": counters, "seconds": seconds})


def apply_schema(rt: Runtime, plan: SchemaPlan) -> bool:
    """Idempotent: True when something changed. The DDL differs per server: the backend
    renders it."""
    if plan.drop:
        return rt.backend.drop_index(plan.index)
    return rt.backend.ensure_index(plan.index)
