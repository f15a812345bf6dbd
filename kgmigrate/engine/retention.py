"""How long a run's undo log is kept: until the run is finalized, then for the configured
retention (`KGMIGRATE_UNDO_RETENTION_DAYS`). A run that may still be resumed or rolled back
(failed, blocked, or not finished) keeps its log whatever its age: without it, a rollback has
nothing to restore from. Snapshots are never pruned here: they are explicit.

The log is the run's `__KGMUndo` rows in the graph; runs of an earlier kgmigrate kept theirs as
files in the backup store, which are removed alike."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from kgmigrate.backup.store import BackupStore
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import MigrationStatus, utc_now
from kgmigrate.runtime.context import Runtime

log = logging.getLogger("kgmigrate.retention")

FINALIZED = (MigrationStatus.COMPLETED, MigrationStatus.ROLLED_BACK, MigrationStatus.ABANDONED)


@dataclass(frozen=True)
class PrunedRun:
    """A finalized run whose undo log is (or, dry, would be) removed: `undo_rows` in the
    graph, `files` in the backup store (a run of an earlier kgmigrate)."""

    run_id: str
    status: MigrationStatus
    finished_at: datetime
    undo_rows: int
    files: int


def run_prefixes(run_id: str) -> tuple[str, str]:
    """An earlier kgmigrate's undo log and conflict records of a run, in the backup store."""
    return f"runs/{run_id}/undo", f"runs/{run_id}/rollback"


def prune(ledger: Ledger, store: BackupStore, *, older_than: timedelta,
          dry_run: bool = False, now: datetime | None = None,
          only: Sequence[str] | None = None) -> list[PrunedRun]:
    """Remove the undo logs of runs finalized more than `older_than` ago (oldest first); with
    `only`, of those runs at most (what a user confirmed)."""
    pruned = []
    for run_id, status, finished_at in ledger.ended_by(FINALIZED, (now or utc_now()) - older_than):
        if only is not None and run_id not in only:
            continue
        keys = [key for prefix in run_prefixes(run_id) for key in store.keys(prefix)]
        rows = ledger.undo_rows(run_id)
        if not keys and not rows:
            continue
        if not dry_run:
            rows = ledger.drop_undo(run_id)
            for key in keys:
                store.delete(key)
        pruned.append(PrunedRun(run_id, status, finished_at, rows, len(keys)))
    return pruned


def prune_expired(rt: Runtime) -> None:
    """The automatic retention, after a run is finalized; best effort (`kgmigrate prune` does
    the same by hand)."""
    try:
        pruned = prune(rt.ledger, rt.store,
                       older_than=timedelta(days=rt.settings.undo_retention_days))
    except Exception as exc:  # the run is finalized: nothing here may fail it
        log.warning("pruning expired undo logs failed: %s", exc)
        return
    for run in pruned:
        log.info("pruned the undo log of run %s (%s rows, %s files)", run.run_id,
                 run.undo_rows, run.files)
