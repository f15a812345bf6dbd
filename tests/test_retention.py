"""A run's undo log is kept until the run is finalized, then for the retention; a run that may
still be resumed or rolled back keeps its log whatever its age."""

from datetime import timedelta
from pathlib import Path

from kgmigrate import runs
from kgmigrate.backup.store import open_store
from kgmigrate.engine.retention import prune
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import MigrationStatus
from tests.conftest import Execution, wait_until
from tests.items import create_in_batch_order
from tests.test_execution import start

COUNT = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=100, steps=[
    ops.batched("Item", "SET e.c = 1", validation="e.i <= {last_valid}"),
])
"""


def undo_rows(graph: GraphBackend, run_id: str) -> int:
    return int(graph.read("MATCH (u:__KGMUndo) WHERE u.__KGM_run = $r RETURN count(u) AS n",
                          {"r": run_id}).value("n"))


def test_prune_removes_only_finalized_runs_logs_older_than_asked(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a completed run and a failed one (not rolled back), each with its undo log
    create_in_batch_order(graph, 300, "{i: i}")
    execution.env["KGMIGRATE_AUTO_ROLLBACK"] = "false"
    execution.write_migration("V0001__count.py", COUNT.format(last_valid=300))
    execution.start_worker()
    completed = runs.wait(graph, start(execution, graph), timeout_s=180)
    assert completed.status is MigrationStatus.COMPLETED, completed.error_log
    execution.write_migration("V0002__fail.py", COUNT.format(last_valid=250).replace(
        "e.c = 1", "e.d = 1"))
    failed = runs.wait(graph, start(execution, graph), timeout_s=180)
    assert failed.status is MigrationStatus.FAILED, failed.error_log
    kept = undo_rows(graph, failed.id)
    # a row per entity changed (the failed run's count depends on which of its batches ran
    # before the failing one)
    assert undo_rows(graph, completed.id) == 300 and kept
    store, ledger = open_store(Path(execution.env["KGMIGRATE_BACKUP_DIR"])), Ledger(graph)
    # (and, as an earlier kgmigrate kept it, a file of the completed run's log)
    old_file = f"runs/{completed.id}/undo/0001/000001.abc.pre"
    store.put_rows(old_file, [{"k": 1}])
    # When the retention is a day, nothing is old enough
    assert prune(ledger, store, older_than=timedelta(days=1)) == []
    # When it is zero, a dry run lists the completed run alone and removes nothing
    [listed] = prune(ledger, store, older_than=timedelta(0), dry_run=True)
    assert (listed.run_id, listed.status, listed.undo_rows, listed.files) == (
        completed.id, MigrationStatus.COMPLETED, 300, 1)
    assert undo_rows(graph, completed.id) == 300
    # Then pruning removes that log, and the failed run keeps its log (it can still be undone)
    [pruned] = prune(ledger, store, older_than=timedelta(0))
    assert pruned.run_id == completed.id
    assert undo_rows(graph, completed.id) == 0 and not store.exists(old_file)
    assert undo_rows(graph, failed.id) == kept
    assert prune(ledger, store, older_than=timedelta(0)) == []


def test_with_a_zero_retention_a_run_prunes_its_own_log_when_it_completes(
        execution: Execution, graph: GraphBackend) -> None:
    # Given workers whose retention is zero
    create_in_batch_order(graph, 300, "{i: i}")
    execution.env["KGMIGRATE_UNDO_RETENTION_DAYS"] = "0"
    execution.write_migration("V0001__count.py", COUNT.format(last_valid=300))
    execution.start_worker()
    # When a run completes
    run = runs.wait(graph, start(execution, graph), timeout_s=180)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    # Then its undo log is removed right after (by the task that finalized it)
    wait_until(lambda: undo_rows(graph, run.id) == 0, "the run's undo log pruned")
