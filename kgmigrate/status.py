"""The ticket's `MigrationStatus`, with the transitions a run may make.

    PENDING -> IN_PROGRESS -> VALIDATING -> COMPLETED
                  |   ^           |
                  v   |           v
                 FAILED <---------+
                    |
                    v
               ROLLED_BACK

A failed run may be resumed (FAILED -> IN_PROGRESS) or rolled back; a validating step may find
more batches to run (VALIDATING -> IN_PROGRESS, the next step). COMPLETED and ROLLED_BACK are
final. Keeping the table in one place is what lets the ledger refuse an impossible write
(e.g. a late batch marking a rolled-back run completed).
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

    @property
    def is_final(self) -> bool:
        return not ALLOWED[self]


ALLOWED: dict[MigrationStatus, frozenset[MigrationStatus]] = {
    MigrationStatus.PENDING: frozenset({MigrationStatus.IN_PROGRESS, MigrationStatus.FAILED}),
    MigrationStatus.IN_PROGRESS: frozenset({MigrationStatus.VALIDATING, MigrationStatus.FAILED}),
    MigrationStatus.VALIDATING: frozenset({MigrationStatus.IN_PROGRESS, MigrationStatus.COMPLETED,
                                           MigrationStatus.FAILED}),
    MigrationStatus.FAILED: frozenset({MigrationStatus.IN_PROGRESS,
                                       MigrationStatus.ROLLED_BACK}),
    MigrationStatus.COMPLETED: frozenset(),
    MigrationStatus.ROLLED_BACK: frozenset(),
}


class StatusTransitionError(KgmError):
    """A status change that the run's history does not allow."""


def check_transition(current: MigrationStatus, new: MigrationStatus) -> MigrationStatus:
    if new not in ALLOWED[current]:
        allowed = ", ".join(sorted(ALLOWED[current])) or "nothing (final)"
        raise StatusTransitionError(
            f"a run that is {current} cannot become {new}; it may become: {allowed}")
    return new
