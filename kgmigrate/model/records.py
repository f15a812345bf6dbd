"""Pydantic models with the ticket's names, and the small result types of the API.

Fixes of the ticket's sketch: ids cannot collide (migrations are identified by version, runs by
ULIDs), times are `datetime.now(UTC)`, and steps are stored one node per step with their spec as
JSON text, because Neo4j properties cannot hold maps.
"""

from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from kgmigrate.model.status import MigrationStatus

__all__ = [
    "AppliedMigration", "BatchRecord", "LockInfo", "MigrationListing", "MigrationMetadata",
    "MigrationState",
    "MigrationStatus", "MigrationStep", "PlannedMigration", "PlannedStep", "RepairResult",
    "RunRecord", "StepRecord", "ValidationProblem", "ValidationResult", "status_changes",
    "utc_now",
]


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ScopeInfo(_Model):
    entity: Literal["node", "relationship"]
    name: str
    where: str | None = None


class MigrationStep(_Model):
    """One step of a migration, as recorded: the operation's kind, scope and spec."""

    order: int
    description: str
    operation: str
    batched: bool
    scope: ScopeInfo | None = None
    spec: dict[str, Any] = {}


class MigrationMetadata(_Model):
    """A migration as declared in its file, with the checksum of that file."""

    version: str
    description: str
    created_by: str
    created_at: datetime = Field(default_factory=utc_now)
    steps: list[MigrationStep]
    dependencies: list[str] = []
    batch_size: int = Field(default=10_000, ge=1)
    timeout: int = Field(default=3600, ge=1)  # seconds
    checksum: str
    path: str
    direction: Literal["up", "down"] = "up"  # down: the steps are the migration's inverse
    snapshot: bool = False  # take a snapshot before the run starts

    @property
    def id(self) -> str:
        return self.version


class AppliedMigration(_Model):
    """A link of the applied chain in the graph."""

    version: str
    description: str
    checksum: str
    author: str
    applied_at: datetime
    duration_ms: int
    applied_by: str
    host: str
    run_id: str
    sequence: int


MigrationState = Literal["applied", "pending", "checksum_mismatch", "missing_file"]


class MigrationListing(_Model):
    """One migration file and its state in the graph."""

    version: str
    description: str
    state: MigrationState
    checksum: str | None  # of the file; None when the file is missing
    applied_at: datetime | None = None


class PlannedStep(_Model):
    order: int
    description: str
    operation: str
    batched: bool
    estimated_entities: int | None  # None: unbatched, runs once


class PlannedMigration(_Model):
    version: str
    description: str
    depends_on: list[str]
    steps: list[PlannedStep]


class ValidationProblem(_Model):
    version: str
    kind: Literal["checksum_mismatch", "missing_file"]
    message: str


class ValidationResult(_Model):
    problems: list[ValidationProblem] = []
    applied: int = 0
    pending: int = 0

    @property
    def valid(self) -> bool:
        return not self.problems


class RepairResult(_Model):
    repaired: list[str] = []  # versions whose recorded checksum was replaced


class PlannedBatch(NamedTuple):
    """A batch as the planner records it and a launch enqueues it."""

    id: str
    seq: int
    address: dict[str, Any]  # {"lo", "hi"} (FalkorDB) or {"keys"} (Neo4j); {"statement"}


class StepRecord(_Model):
    id: str
    run_id: str
    order: int
    version: str
    description: str
    operation: str
    batched: bool
    status: MigrationStatus
    batches_total: int = 0
    batches_done: int = 0
    entities_total: int = 0
    entities_done: int = 0
    counters: dict[str, int] = {}
    started_at: datetime | None = None
    finished_at: datetime | None = None
    spec: dict[str, Any] = {}
    batch_size: int = 10_000
    planned: bool = False
    batch_seconds: list[float] = []  # each batch's duration in the worker, by batch order
    # the step's proof (per-entity validation and step check): None until it has run
    validation: Literal["passed", "failed"] | None = None
    error: str | None = None  # why the step failed


class BatchRecord(_Model):
    id: str
    run_id: str
    step_id: str
    seq: int
    status: MigrationStatus
    attempts: int = 0
    worker: str | None = None
    entities: int = 0
    counters: dict[str, int] = {}
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    undo: str | None = None  # the undo record of the attempt that committed
    retries: int = 0  # deliveries beyond the first (transient-error retries, redeliveries)


class RunRecord(_Model):
    id: str
    status: MigrationStatus
    migrations: list[str]
    target: str | None = None
    created_at: datetime
    created_by: str
    host: str
    history: list[str]  # "status@ISO time", oldest first
    error_log: str | None = None
    backup_ref: str | None = None
    counters: dict[str, int] = {}
    finished_at: datetime | None = None
    plan: list[dict[str, Any]] = []  # each migration's metadata (without steps)
    steps: list[StepRecord] = []

    def ends_its_migration(self, step: StepRecord) -> bool:
        """Whether `step` is the last of its migration's steps in this run (a run holds its
        migrations' steps in order, one migration after another)."""
        following = self.next_step(step)
        return following is None or following.version != step.version

    def next_step(self, step: StepRecord) -> StepRecord | None:
        return next((s for s in self.steps if s.order > step.order), None)

    def with_rollback_error(self, message: str) -> str:
        """The error log once its rollback stopped with `message`: the run's own failure
        stays first (a second stop replaces the first stop's message)."""
        failure = (self.error_log or "").split(ROLLBACK_SEPARATOR)[0]
        if not failure or failure.startswith("rollback"):
            return message
        return f"{failure}{ROLLBACK_SEPARATOR}{message}"


ROLLBACK_SEPARATOR = " || rollback: "


def status_changes(history: list[str]) -> list[tuple[MigrationStatus, datetime]]:
    """A run's status changes, oldest first, from its `history` (`status@ISO time` each)."""
    changes = []
    for entry in history:
        status, _, at = entry.partition("@")
        changes.append((MigrationStatus(status), datetime.fromisoformat(at)))
    return changes


class Conflict(_Model):
    """An entity a rollback did not restore, because someone else changed (or deleted) it after
    the batch wrote it; `forced`: a forced pass restored it anyway, over their change. `now`
    (its state as the server renders it) is filled only where the rollback returned it."""

    step: int
    batch: int
    key: Any
    reason: str
    now: Any = None
    forced: bool = False


class LockInfo(_Model):
    name: str
    holder: str
    run_id: str | None
    host: str
    pid: int
    token: int
    acquired_at: datetime
    lease_until: datetime
