"""What every end of a run does before anyone may see it ended (completed; failed and
stopped; rolled back; its rollback blocked): its afterMigrate callbacks run while the run
still holds the migration lock, then the lock is released. The caller writes the status others
wait for after that, so whoever sees it ended may start the next run at once."""

from kgmigrate import callbacks
from kgmigrate.runtime.context import Runtime


def release(rt: Runtime, run_id: str) -> None:
    callbacks.after_migrate(rt.backend, run_id)
    rt.lock.release_for_run(run_id)
