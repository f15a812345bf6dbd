"""A run's metrics, computed from the ledger (`MigrationMonitor`), without the defects
of the first design.

The first design's monitor divided by the affected-node count (zero for a schema step), read an
`error_count` nobody wrote, and took `duration.between` of nulls while a run was going. Here
every figure comes from what the ledger records anyway (steps, batches and their attempts), a
rate is 0.0 when nothing was attempted, and a running run's duration runs to now.
"""

from datetime import datetime

from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import (
    DIRECTION_WORDS,
    BatchRecord,
    Direction,
    RunRecord,
    StepRecord,
    _Model,
    utc_now,
)
from kgmigrate.model.status import MigrationStatus


class StepMetrics(_Model):
    order: int
    version: str
    description: str
    status: MigrationStatus
    batched: bool
    planned: bool
    entities_total: int
    entities_done: int
    batches_total: int
    batches_done: int
    batches_failed: int
    retries: int  # task deliveries beyond the first, over the step's batches
    validation: str | None  # "passed", "failed", or None (not validated yet)
    duration_s: float | None
    entities_per_s: float | None
    batch_seconds: list[float]  # each committed batch's time in the worker, by batch order
    # from the worker taking each committed batch to its commit (known during the run too)
    batch_latency_s: list[float]
    restored_batches: int  # by a rollback


class MigrationMetrics(_Model):
    run_id: str
    status: MigrationStatus
    direction: Direction  # "down": a downgrade, its migrations' inverses
    reverts: bool = False  # completed, then undone from its undo log (`kgmigrate revert`)
    migrations: list[str]
    started_at: datetime
    finished_at: datetime | None
    duration_s: float  # to now while the run goes on
    steps_total: int
    steps_completed: int
    entities_planned: int  # over the steps planned so far
    entities_done: int  # the "affected entities"
    batches_total: int
    batches_done: int
    batches_failed: int
    retries: int
    error_rate: float  # failed batches / batches attempted; 0.0 when none was attempted
    validation_success: bool | None  # every validated step passed; None before the first
    entities_per_s: float | None  # over the time steps were running
    eta_s: float | None  # for the planned entities not done yet
    unplanned_steps: int  # batched steps not planned yet: the ETA does not cover them
    rolled_back: bool
    restored_batches: int
    throttled_s: float  # the time its batches waited for its throttle, in all
    steps: list[StepMetrics]


class MigrationMonitor:
    """Read-only: safe to call from anywhere, any number of times, during a run."""

    def __init__(self, backend: GraphBackend) -> None:
        self.ledger = Ledger(backend)

    def get_migration_metrics(self, run_id: str) -> MigrationMetrics | None:
        """None when there is no such run."""
        run = self.ledger.run(run_id)
        return None if run is None else self.metrics(run)

    def metrics(self, run: RunRecord) -> MigrationMetrics:
        """For a run already read (the exporter reads the recent ones in one go)."""
        return summarize(run, [self._step(step) for step in run.steps])

    def _step(self, step: StepRecord) -> StepMetrics:
        batches = self.ledger.batches(step.id) if step.batched else []
        restored = len(self.ledger.restores(step.id))
        return step_metrics(step, batches, restored)


def step_metrics(step: StepRecord, batches: list[BatchRecord], restored: int) -> StepMetrics:
    duration = rate = None
    if step.started_at is not None:
        duration = _seconds(step.started_at, step.finished_at)
        rate = step.entities_done / duration if step.entities_done and duration else None
    return StepMetrics(
        order=step.order, version=step.version, description=step.description,
        status=step.status, batched=step.batched, planned=step.planned,
        entities_total=step.entities_total, entities_done=step.entities_done,
        batches_total=step.batches_total, batches_done=step.batches_done,
        batches_failed=sum(b.status is MigrationStatus.FAILED for b in batches),
        retries=sum(b.retries for b in batches),
        validation=step.validation, duration_s=duration, entities_per_s=rate,
        batch_seconds=step.batch_seconds, restored_batches=restored,
        batch_latency_s=[(b.finished_at - b.started_at).total_seconds() for b in batches
                         if b.status is MigrationStatus.COMPLETED and b.started_at
                         and b.finished_at])


def run_kind(m: MigrationMetrics) -> str:
    """`upgrade`, `downgrade`, or `upgrade, reverted after it completed` (the CLI's words)."""
    kind = DIRECTION_WORDS[m.direction]
    return f"{kind}, reverted after it completed" if m.reverts else kind


def summarize(run: RunRecord, steps: list[StepMetrics]) -> MigrationMetrics:
    attempted = sum(s.batches_done + s.batches_failed for s in steps)
    failed = sum(s.batches_failed for s in steps)
    running = sum(s.duration_s or 0.0 for s in steps)
    done = sum(s.entities_done for s in steps)
    planned = sum(s.entities_total for s in steps)
    rate = done / running if done and running else None
    remaining = sum(max(s.entities_total - s.entities_done, 0) for s in steps
                    if s.status not in (MigrationStatus.FAILED, MigrationStatus.COMPLETED))
    validated = [s.validation for s in steps if s.validation is not None]
    return MigrationMetrics(
        run_id=run.id, status=run.status, direction=run.direction, reverts=run.reverts,
        migrations=run.migrations,
        started_at=run.created_at, finished_at=run.finished_at,
        duration_s=_seconds(run.created_at, run.finished_at),
        steps_total=len(steps),
        steps_completed=sum(s.status is MigrationStatus.COMPLETED for s in steps),
        entities_planned=planned, entities_done=done,
        batches_total=sum(s.batches_total for s in steps),
        batches_done=sum(s.batches_done for s in steps), batches_failed=failed,
        retries=sum(s.retries for s in steps),
        error_rate=failed / attempted if attempted else 0.0,
        validation_success=all(v == "passed" for v in validated) if validated else None,
        entities_per_s=rate,
        eta_s=_eta(run.status, remaining, rate),
        unplanned_steps=sum(s.batched and not s.planned for s in steps),
        rolled_back=run.status is MigrationStatus.ROLLED_BACK,
        restored_batches=sum(s.restored_batches for s in steps),
        throttled_s=run.throttled_s, steps=steps)


def _eta(status: MigrationStatus, remaining: int, rate: float | None) -> float | None:
    if status.is_final:
        return 0.0
    if status in (MigrationStatus.FAILED, MigrationStatus.ROLLBACK_BLOCKED) or not rate:
        return None  # stopped: nothing is moving
    return remaining / rate


def _seconds(start: datetime, end: datetime | None) -> float:
    return max(((end or utc_now()) - start).total_seconds(), 0.0)
