"""Changing the batch size of a paused run's batches not yet started (`kgmigrate tune`).

Only a PAUSED run is retuned: nothing of it is in flight, so its step's pending batches are
exactly the keys still to do. They are cut anew at the new size, written `staged`, and swapped
in for the old ones in one statement (`Ledger.swap_batches`): a crash half way leaves the old
batches in force, and the staged ones are dropped by the next retune. The old batches stay in
the ledger, `superseded`, for the audit; a late delivery of one skips it (its statement finds
it superseded, as it would find it completed). Committed batches, their undo log, resume and
rollback are untouched: a retune only replaces batches that never ran. The steps not planned
yet are cut at the new size when they start.

On Neo4j batches are key lists: the pending keys, in their order, are cut into lists of the
new size. On FalkorDB they are key ranges: each stretch of adjacent pending ranges is cut
where the scope, planned afresh at the new size, has its cuts (the cuts fall on the scope's
keys, so the new ranges hold about the new size; the first and last of a stretch fewer).
"""

from collections.abc import Iterator
from dataclasses import dataclass

from kgmigrate.compile import BatchPlan, compile_op
from kgmigrate.engine.batch_statement import address_from_json, address_to_json, batch_id
from kgmigrate.errors import BackendError, KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.ledger.batches import is_repeat
from kgmigrate.ledger.lock import default_holder
from kgmigrate.model.ids import new_id
from kgmigrate.model.records import MigrationStatus, PlannedBatch, RunRecord, StepRecord, utc_now
from kgmigrate.model.scope import BatchAddress, KeyList, KeyRange
from kgmigrate.ops import from_spec

CHUNK = 500  # staged batches written per statement
ATTEMPTS = 3  # a stale delivery that commits an old batch meanwhile makes a swap start over


@dataclass(frozen=True)
class Retuned:
    """What a retune did: the step whose pending batches were cut anew (None: no step had
    any), how many batches they were and are now, and the later steps resized."""

    batch_size: int
    step: int | None
    batches_before: int
    batches_after: int
    later_steps: int  # batched steps not started yet: cut at the new size when they start
    continued: bool = False  # the run was running: paused for the retune, then continued

    def describe(self) -> str:
        cut = (f"step {self.step}: {self.batches_before} pending batches cut into "
               f"{self.batches_after}" if self.step is not None else "no pending batch to cut")
        later = (f"; {self.later_steps} step{'s' if self.later_steps > 1 else ''} not started "
                 "yet will be cut at it" if self.later_steps else "")
        return f"batch size {self.batch_size:,}: {cut}{later}"


def retune(backend: GraphBackend, run: RunRecord, batch_size: int, *,
           by: str | None = None) -> Retuned:
    """Cut the paused run's pending batches, and its steps not planned yet, at `batch_size`."""
    if batch_size < 1:
        raise KgmError("the batch size must be at least 1")
    if run.status is not MigrationStatus.PAUSED:
        raise KgmError(f"run {run.id} is {run.status}: only a paused run is retuned")
    ledger = Ledger(backend)
    current = next((s for s in run.steps if s.status is not MigrationStatus.COMPLETED), None)
    if current is None:
        raise KgmError(f"run {run.id} has no step left to run")
    before = after = 0
    recut = current.batched and current.planned
    if recut:
        before, after = _recut(backend, ledger, current, batch_size)
    ledger.resize_later_steps(run.id, current.order, batch_size)
    later = sum(s.order >= current.order and s.batched and not s.planned for s in run.steps)
    done = Retuned(batch_size, current.order if recut and before else None, before, after,
                   later)
    ledger.note_tune(run.id, f"{done.describe()} (by {by or default_holder()} at "
                             f"{utc_now().isoformat(timespec='seconds')})")
    return done


def _recut(backend: GraphBackend, ledger: Ledger, step: StepRecord, batch_size: int
           ) -> tuple[int, int]:
    plan = compile_op(from_spec(step.operation, step.spec), backend.dialect.name)
    assert isinstance(plan, BatchPlan)
    for _ in range(ATTEMPTS):
        ledger.drop_staged(step.id)
        pending = ledger.pending_batches(step.id)
        if not pending:
            return 0, 0
        addresses = [address_from_json(b.address) for b in pending]
        tune = new_id("tune")
        first = ledger.max_seq(step.id) + 1
        staged = [PlannedBatch(batch_id(step.run_id, step.order, seq), seq,
                               address_to_json(address))
                  for seq, address in enumerate(_cut(backend, plan, addresses, batch_size),
                                                start=first)]
        for at in range(0, len(staged), CHUNK):
            ledger.create_batches(step.run_id, step.id, staged[at:at + CHUNK], staged_by=tune)
        try:
            swapped = ledger.swap_batches(step.run_id, step.id, [b.id for b in pending], tune,
                                          len(staged), batch_size)
        except BackendError as exc:
            if not is_repeat(exc):
                raise
            continue  # an old batch committed meanwhile, or another retune ran: cut again
        if not swapped:
            raise KgmError(f"run {step.run_id} was continued while it was retuned; nothing "
                           "was changed")
        return len(pending), len(staged)
    raise KgmError(f"step {step.order}: its batches kept changing while it was retuned (a "
                   "second retune at the same time?); nothing was changed")


def _cut(backend: GraphBackend, plan: BatchPlan, pending: list[BatchAddress], size: int
         ) -> Iterator[BatchAddress]:
    if all(isinstance(a, KeyList) for a in pending):
        keys = [k for a in pending if isinstance(a, KeyList) for k in a.keys]
        for at in range(0, len(keys), size):
            yield KeyList(tuple(keys[at:at + size]))
        return
    ranges = sorted((a for a in pending if isinstance(a, KeyRange)), key=lambda r: r.lo)
    if len(ranges) != len(pending):
        raise KgmError("a step's batches mix key lists and key ranges; it cannot be retuned")
    yield from cut_ranges(ranges, [a.lo for a, _ in backend.plan_batches(plan.scope, size)
                                   if isinstance(a, KeyRange)])


def cut_ranges(ranges: list[KeyRange], cuts: list[int]) -> Iterator[KeyRange]:
    """`ranges` (sorted, not overlapping) cut at `cuts`: each stretch of adjacent ranges is
    joined, then split at the cuts inside it. The result covers exactly the same keys."""
    cuts = sorted(set(cuts))
    for lo, hi in _stretches(ranges):
        inner = [c for c in cuts if lo < c < hi]
        for a, b in zip([lo, *inner], [*inner, hi], strict=True):
            yield KeyRange(a, b)


def _stretches(ranges: list[KeyRange]) -> Iterator[tuple[int, int]]:
    """Adjacent ranges joined: (lo, hi) of each stretch, in order."""
    lo, hi = ranges[0].lo, ranges[0].hi
    for r in ranges[1:]:
        if r.lo == hi:
            hi = r.hi
            continue
        yield lo, hi
        lo, hi = r.lo, r.hi
    yield lo, hi
