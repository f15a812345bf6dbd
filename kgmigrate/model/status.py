"""`MigrationStatus`, with the transitions a run may make.

    PENDING -> IN_PROGRESS -> VALIDATING -> COMPLETED
                  |   ^           |
                  v   |           v
                 FAILED <---------+        (and each of them -> ROLLING_BACK directly when
                    |                       a failure triggers the automatic rollback)
                    v
               ROLLING_BACK -> ROLLED_BACK
                    ^   |
                    |   v
              ROLLBACK_BLOCKED  (conflicts or a crash: fix, or force, and roll back again)

    any of them -> ABANDONED  (given up by an operator, with who and why; what the run
                               changed stays changed)

    IN_PROGRESS, VALIDATING -> PAUSED -> IN_PROGRESS  (an operator's pause, once no batch is
                                  |                     in flight; `resume` continues it)
                                  +--> ROLLING_BACK, FAILED  (cancelled; `--keep`: FAILED)

A failed run may be resumed (FAILED -> IN_PROGRESS) or rolled back; a validating step may find
more batches to run (VALIDATING -> IN_PROGRESS, the next step). Once a rollback has started the
run can only be rolled back further: resuming it forward would re-apply on half-restored data.
COMPLETED, ROLLED_BACK and ABANDONED are final. Keeping the table in one place is what lets the
ledger refuse an impossible write (e.g. a late batch marking a rolled-back run completed).
One move is outside the table, on purpose: `kgmigrate revert` takes a COMPLETED run to
ROLLING_BACK (`Ledger.begin_revert`), so nothing else (a late failure of a redelivered task)
can ever start the rollback of a completed run.
"""

from enum import StrEnum

from kgmigrate.errors import KgmError


class MigrationStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    VALIDATING = "validating"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ROLLING_BACK = "rolling_back"
    ROLLBACK_BLOCKED = "rollback_blocked"
    ABANDONED = "abandoned"
    PAUSED = "paused"

    @property
    def is_final(self) -> bool:
        return not ALLOWED[self]


_S = MigrationStatus
ALLOWED: dict[MigrationStatus, frozenset[MigrationStatus]] = {
    _S.PENDING: frozenset({_S.IN_PROGRESS, _S.FAILED, _S.ROLLING_BACK, _S.ABANDONED}),
    _S.IN_PROGRESS: frozenset({_S.VALIDATING, _S.FAILED, _S.ROLLING_BACK, _S.ABANDONED,
                               _S.PAUSED}),
    _S.VALIDATING: frozenset({_S.IN_PROGRESS, _S.COMPLETED, _S.FAILED, _S.ROLLING_BACK,
                              _S.ABANDONED, _S.PAUSED}),
    _S.PAUSED: frozenset({_S.IN_PROGRESS, _S.FAILED, _S.ROLLING_BACK, _S.ABANDONED}),
    _S.FAILED: frozenset({_S.IN_PROGRESS, _S.ROLLING_BACK, _S.ABANDONED}),
    _S.ROLLING_BACK: frozenset({_S.ROLLED_BACK, _S.ROLLBACK_BLOCKED, _S.ABANDONED}),
    _S.ROLLBACK_BLOCKED: frozenset({_S.ROLLING_BACK, _S.ABANDONED}),
    _S.COMPLETED: frozenset(),
    _S.ROLLED_BACK: frozenset(),
    _S.ABANDONED: frozenset(),
}


# A FAILED or ROLLBACK_BLOCKED run may still be resumed or rolled back, but nothing more
# happens on its own.
ENDED = frozenset({_S.COMPLETED, _S.FAILED, _S.ROLLED_BACK, _S.ROLLBACK_BLOCKED,
                   _S.ABANDONED})
# Not ended in the graph's sense: a new run of their migrations would apply on top of them.
UNFINISHED = frozenset(s for s in _S if ALLOWED[s])
ROLLBACK_STATES = frozenset({_S.ROLLING_BACK, _S.ROLLBACK_BLOCKED})
UNDOING = ROLLBACK_STATES | {_S.ROLLED_BACK}  # progress is the rollback's, not the changes'
FINAL_STEP = frozenset({_S.COMPLETED, _S.FAILED})  # a step's; its run may go on (resume)


class StatusTransitionError(KgmError):
    """A status change that the run's history does not allow."""


def check_transition(current: MigrationStatus, new: MigrationStatus) -> MigrationStatus:
    if new not in ALLOWED[current]:
        allowed = ", ".join(sorted(ALLOWED[current])) or "nothing (final)"
        raise StatusTransitionError(
            f"a run that is {current} cannot become {new}; it may become: {allowed}")
    return new
