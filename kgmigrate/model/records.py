"""Pydantic models of runs, steps, batches and the chain, and the small result types of the API.

Design points: ids cannot collide (migrations are identified by version, runs by
ULIDs), times are `datetime.now(UTC)`, and steps are stored one node per step with their spec as
JSON text, because Neo4j properties cannot hold maps.
"""

from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, computed_field

from kgmigrate.model.status import MigrationStatus
from kgmigrate.model.throttle import Throttle

__all__ = [
    "AdoptedMigration",
    "Adoption",
    "AdoptionPlan",
    "AppliedMigration",
    "BatchRecord",
    "Direction",
    "DowngradePlan",
    "FailedBatch",
    "LockInfo",
    "MigrationListing",
    "MigrationMetadata",
    "MigrationState",
    "MigrationStatus",
    "MigrationStep",
    "Offending",
    "PlannedMigration",
    "PlannedStep",
    "PlannedUndo",
    "RepairResult",
    "RunRecord",
    "StepRecord",
    "ValidationProblem",
    "ValidationResult",
    "status_changes",
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
    """One step of a migration, as recorded: the operation's kind, scope and spec, and the
    property that names its entities for people (`Migration(business_key=...)`)."""

    order: int
    description: str
    operation: str
    batched: bool
    scope: ScopeInfo | None = None
    spec: dict[str, Any] = {}
    business_key: str | None = None


Direction = Literal["up", "down"]
DIRECTION_WORDS: dict[Direction, str] = {"up": "upgrade", "down": "downgrade"}


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
    direction: Direction = "up"  # down: the steps are the migration's inverse
    snapshot: bool = False  # take a snapshot before the run starts
    repeatable: bool = False  # applied again whenever its file's checksum changes

    @property
    def id(self) -> str:
        return self.version


class Adoption(_Model):
    """Where an adopted link of the chain comes from: a migration another tool applied,
    recorded by `kgmigrate import-chain` (no kgmigrate run applied it)."""

    tool: str  # "neo4j-migrations"
    source: str  # what that tool applied: its file (`V0001__first.cypher`) or class
    type: str  # its kind there: CYPHER, JAVA or CATALOG
    checksum: str | None = None  # as that tool recorded it (neo4j-migrations': a CRC32)
    # the file's checksum, computed as that tool does, equals the recorded one; False: not
    # comparable (no checksum recorded, a Java or catalog migration, a file rewritten as .py)
    checksum_compared: bool = False
    adopted_at: datetime
    adopted_by: str


class AppliedMigration(_Model):
    """A link of the applied chain in the graph: an applied migration, or one that an
    `assume` precondition skipped (`state` "skipped", `reason` the precondition, `applied_at`
    when it was skipped, `run_id` the run started with that decision, if any), or an
    application of a repeatable migration that a later one repeated (`state` "repeated") or
    that the rollback of a run that repeated it undid (`state` "undone").
    A migration another tool applied and `kgmigrate import-chain` adopted has no run;
    `adopted` says where it comes from (its `applied_at`, `duration_ms` and `applied_by` are
    that tool's)."""

    version: str
    description: str
    checksum: str
    author: str
    applied_at: datetime
    duration_ms: int
    applied_by: str
    host: str
    run_id: str | None = None
    sequence: int
    state: Literal["applied", "skipped", "repeated", "undone"] = "applied"
    reason: str | None = None
    repeat_of: int | None = None  # a repeatable migration applied again: the link it repeats
    adopted: Adoption | None = None


MigrationState = Literal["applied", "pending", "skipped", "checksum_mismatch", "missing_file"]


class MigrationListing(_Model):
    """One migration file and its state in the graph."""

    version: str
    description: str
    state: MigrationState
    checksum: str | None  # of the file; None when the file is missing
    applied_at: datetime | None = None
    depends_on: list[str] = []  # declared, or the previous version (none: missing file)
    applied_order: int | None = None  # 1 for the first applied of those applied now
    reason: str | None = None  # skipped: the precondition that did not hold, and where;
    # pending again: a repeatable migration whose file changed
    repeatable: bool = False  # `R<version>__...`: applied again whenever its file changes


class PreviewedEntity(_Model):
    """One entity as a step would change it (`plan --preview`): its properties (and labels,
    or a relationship's type) before and after, and whether it passes the step's validation
    (None: the step declares none)."""

    key: Any
    before: dict[str, Any]
    after: dict[str, Any]
    labels_before: list[str]
    labels_after: list[str]
    valid: bool | None


class PlannedStep(_Model):
    order: int
    description: str
    operation: str
    batched: bool
    estimated_entities: int | None  # None: unbatched, runs once
    # `plan --preview N`: the step's change on its first N entities (None: not asked), and
    # why there is none when it is empty
    preview: list[PreviewedEntity] | None = None
    preview_note: str | None = None


class PlannedMigration(_Model):
    version: str
    description: str
    depends_on: list[str]
    steps: list[PlannedStep]
    # an `assume` precondition that does not hold: the upgrade skips the migration (and
    # records it so in the chain); its steps are not counted
    skipped: str | None = None


UndoReason = Literal["applied_after_target", "not_an_ancestor"]


class PlannedUndo(PlannedMigration):
    """A migration a downgrade would undo; its steps are its inverse's, with the entities each
    matches now, or, restored from an undo log, the steps of the run that applied it, with the
    entities each changed."""

    applied_order: int  # 1 for the first applied of those applied now
    applied_at: datetime
    # applied after TARGET, or applied before it but not an ancestor of it (TARGET does not
    # depend on it, directly or not)
    reason: UndoReason
    # how: by its inverse, or by reverting `revert_run` (the run that applied it, whole) from
    # its undo log, for a migration without an inverse
    undone_by: Literal["inverse", "undo_log"] = "inverse"
    revert_run: str | None = None


class DowngradePlan(_Model):
    """What `downgrade TARGET` would undo, newest first, and what stays applied."""

    target: str
    keep: list[str]  # TARGET and its ancestors, in applied order (`base`: none)
    undo: list[PlannedUndo]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def applied_before_target(self) -> list[str]:
        """Undone although applied before TARGET: the CLI asks before undoing these."""
        return [u.version for u in self.undo if u.reason == "not_an_ancestor"]


class ValidationProblem(_Model):
    version: str
    kind: Literal["checksum_mismatch", "missing_file", "out_of_order", "precondition"]
    message: str


class ValidationResult(_Model):
    problems: list[ValidationProblem] = []
    applied: int = 0
    pending: int = 0
    skipped: int = 0

    @property
    def valid(self) -> bool:
        return not self.problems


class RepairResult(_Model):
    repaired: list[str] = []  # versions whose recorded checksum was replaced


class AdoptedMigration(_Model):
    """A migration of a neo4j-migrations chain, matched to its file, as `import-chain`
    adopts it into kgmigrate's chain."""

    version: str  # as the file writes it (V0001)
    description: str  # the file's
    file: str  # the file's name in the migrations directory
    source: str  # what neo4j-migrations applied (its `source`: file or class name)
    type: str  # CYPHER, JAVA or CATALOG
    applied_at: datetime  # when neo4j-migrations applied it
    applied_by: str  # who (neo4j-migrations' `by/connectedAs`)
    duration_ms: int
    checksum: str | None  # as neo4j-migrations recorded it
    checksum_compared: bool  # equal to the file's, computed as neo4j-migrations does
    checksum_note: str  # how it was compared ("matches the file"), or why it was not


class AdoptionPlan(_Model):
    """What `import-chain` adopts (`dry_run`: would adopt), and what stays for `upgrade`."""

    adopted: list[AdoptedMigration]
    # not in the chain but below its last migration: `upgrade` refuses them as out of order
    # unless allowed (or skips them, when an `assume` precondition does not hold)
    not_in_chain: list[str] = []
    pending: list[str] = []  # after the chain: what `upgrade` applies
    dry_run: bool = False


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
    business_key: str | None = None  # the property that names its entities for people


class Offending(_Model):
    """An entity that failed a batch's per-entity validation: its internal key, its business
    key (`{"cid": "CMP0075000"}`, as it is in the graph: the batch was undone) when the
    migration declares one, and its properties as the change left them (long values cut)."""

    key: Any
    business_key: dict[str, Any] = {}
    properties: dict[str, Any] = {}


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
    seconds: float | None = None  # the committing attempt's time, as its worker measured it
    throttled_s: float | None = None  # how long it waited for its run's throttle to start
    # a batch that failed its validation: how many of the entities it checked failed, and
    # the first of them (`BAD_SAMPLE`)
    failing: int | None = None
    checked: int | None = None
    offending: list[Offending] = []


class FailedBatch(_Model):
    """A failed batch as `status --json` and the report show it."""

    step: int
    version: str
    batch: int
    error: str | None
    failing: int | None = None  # entities that failed validation (None: another failure)
    checked: int | None = None  # entities of the batch the validation checked
    offending: list[Offending] = []


# pause: no new batch starts, the run is PAUSED once none is in flight; cancel: then it is
# rolled back; cancel_keep: then it is FAILED, as it is (resumable)
RunRequest = Literal["pause", "cancel", "cancel_keep"]


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
    # an operator's request not yet carried out (`kgmigrate pause` / `cancel`), and by whom
    request: RunRequest | None = None
    request_by: str | None = None
    # the limits it runs under (kgmigrate.model.throttle), how long its batches waited for
    # them in all, and why one waits now
    throttle: Throttle | None = None
    throttled_s: float = 0.0
    throttle_note: str | None = None
    tunes: list[str] = []  # each retune of its batch size: what, by whom, when
    callback_notes: list[str] = []  # what its afterMigrate callbacks did (a worker ran them)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def direction(self) -> Direction:
        """`down`: a downgrade (its migrations' inverses); `up`: an upgrade. From the plan,
        so runs recorded before the field existed have it too."""
        return "down" if any(m.get("direction") == "down" for m in self.plan) else "up"

    @property
    def kind(self) -> str:
        """`upgrade` or `downgrade`, as people say it."""
        return DIRECTION_WORDS[self.direction]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reverts(self) -> bool:
        """Undone (or being undone) from its undo log after it completed (`kgmigrate
        revert`): its rollback records its migrations as downgraded, not rolled back."""
        return (self.status is not MigrationStatus.COMPLETED
                and any(entry.split("@", 1)[0] == "completed" for entry in self.history))

    @property
    def revert_started_at(self) -> datetime | None:
        """When the last revert of this run began (its `completed` -> `rolling_back`)."""
        states = [entry.split("@", 1) for entry in self.history]
        began = [at for n, (state, at) in enumerate(states)
                 if n and state == "rolling_back" and states[n - 1][0] == "completed"]
        return datetime.fromisoformat(began[-1]) if began else None

    def ends_its_migration(self, step: StepRecord) -> bool:
        """Whether `step` is the last of its migration's steps in this run (a run holds its
        migrations' steps in order, one migration after another)."""
        following = self.next_step(step)
        return following is None or following.version != step.version

    def next_step(self, step: StepRecord) -> StepRecord | None:
        return next((s for s in self.steps if s.order > step.order), None)

    @property
    def rollback_settled_error(self) -> str:
        """The error log once its rollback ended well: the run's own failure (empty for a
        revert), without what an earlier pass that stopped said (that it stopped stays in
        the history, and what a forced pass restored anyway in its conflicts)."""
        failure = (self.error_log or "").split(ROLLBACK_SEPARATOR)[0]
        return "" if failure.startswith("rollback") else failure

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
