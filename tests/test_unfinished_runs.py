"""A run that did not finish blocks a new run of its migrations: applied again on top, a change
would reach some entities twice. The way out is to finish it (resume), undo it (rollback), or
give it up by an audited command (abandon)."""

from pathlib import Path

import pytest

from kgmigrate import runs
from kgmigrate.connect import resolve
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.ledger.lock import LockHeldError, MigrationLock
from kgmigrate.model.records import MigrationStatus, utc_now
from kgmigrate.runtime.settings import load_settings
from tests.conftest import Execution, wait_until
from tests.test_execution import counts, start

COUNT_THEN_MARK = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=100, steps=[
    ops.batched("Item", "SET e.c = coalesce(e.c, 0) + 1"),
    ops.batched("Item", "SET e.marked = true"),
])
"""
LEASE_S = "8"  # short, so that a lease whose holder died expires within the test


def crashed_after_step_1(execution: Execution, graph: GraphBackend, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> str:
    """A run whose only worker was killed while it held the run before step 2 (step 1 of 20
    batches committed, step 2 begun), and whose lock's lease has since expired."""
    graph.write("UNWIND range(1, 2000) AS i CREATE (:Item {i: i})")
    execution.write_migration("V0001__count_then_mark.py", COUNT_THEN_MARK)
    gate = tmp_path / "gate"
    execution.env.update(KGMIGRATE_HOOKS="tests.gate", KGM_GATE_STEP="2", KGM_GATE=str(gate),
                         KGMIGRATE_LOCK_LEASE_S=LEASE_S)
    monkeypatch.setenv("KGMIGRATE_LOCK_LEASE_S", LEASE_S)
    worker = execution.start_worker()
    run_id = start(execution, graph)
    wait_until(lambda: Path(f"{gate}.waiting").exists(), "the run held before step 2",
               timeout_s=240)
    execution.kill(worker)
    lock = MigrationLock(graph)
    wait_until(lambda: (held := lock.info()) is None or held.lease_until < utc_now(),
               "the dead run's lease to expire", timeout_s=120)
    Path(f"{gate}.open").touch()  # workers started later go through
    run = Ledger(graph).run(run_id)
    assert run is not None and run.status is MigrationStatus.IN_PROGRESS
    assert [s.status for s in run.steps] == [MigrationStatus.COMPLETED,
                                            MigrationStatus.IN_PROGRESS]
    return run_id


def test_a_crashed_run_blocks_a_new_one_until_resumed_and_nothing_is_applied_twice(
        execution: Execution, graph: GraphBackend, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a run whose workers died after step 1, its lock's lease expired
    run_id = crashed_after_step_1(execution, graph, tmp_path, monkeypatch)
    # When a new upgrade is asked for
    with pytest.raises(KgmError, match=f"run {run_id} is in_progress and nothing holds its "
                                       f"lock.*kgmigrate resume {run_id}"):
        start(execution, graph)
    # Then no second run exists and the lock is free again
    assert Ledger(graph).runs_in(list(MigrationStatus)) == [(run_id, MigrationStatus.IN_PROGRESS)]
    assert MigrationLock(graph).info() is None
    # and resuming the run finishes it with every entity changed exactly once
    runs.resume(graph, resolve(load_settings()), run_id)
    execution.start_worker()
    run = runs.wait(graph, run_id, timeout_s=240)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert counts(graph, "c") == {1: 2000}
    assert counts(graph, "marked") == {True: 2000}


def test_an_abandoned_run_is_recorded_with_who_and_why_and_frees_the_way(
        execution: Execution, graph: GraphBackend, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the same crashed run
    run_id = crashed_after_step_1(execution, graph, tmp_path, monkeypatch)
    # When an operator gives it up
    with pytest.raises(KgmError, match="say why"):
        runs.abandon(graph, run_id, reason=" ")
    run = runs.abandon(graph, run_id, reason="settled by hand", by="ops@host")
    # Then it is final, with who and why, its open step closed, and the lock free
    assert run.status is MigrationStatus.ABANDONED
    assert run.history[-1].startswith("abandoned@")
    assert "abandoned by ops@host: settled by hand" in (run.error_log or "")
    assert [s.status for s in run.steps] == [MigrationStatus.COMPLETED, MigrationStatus.FAILED]
    assert MigrationLock(graph).info() is None
    with pytest.raises(KgmError, match="is abandoned; there is nothing to abandon"):
        runs.abandon(graph, run_id, reason="again")
    with pytest.raises(KgmError, match="there is nothing to resume"):
        runs.resume(graph, resolve(load_settings()), run_id)
    # and the graph is as the run left it: step 1 applied once, step 2 never
    assert counts(graph, "c") == {1: 2000}
    assert counts(graph, "marked") == {None: 2000}
    # and a new upgrade is allowed again (the operator settled the graph)
    assert start(execution, graph) != run_id


def test_a_live_run_cannot_be_abandoned(execution: Execution, graph: GraphBackend) -> None:
    # Given a run that holds the lock (no workers yet: it stays pending)
    graph.write("CREATE (:Item {i: 1})")
    execution.write_migration("V0001__count_then_mark.py", COUNT_THEN_MARK)
    run_id = start(execution, graph)
    # Then giving it up is refused while its lease is live
    with pytest.raises(LockHeldError, match=f"run {run_id}"):
        runs.abandon(graph, run_id, reason="impatient")
    assert Ledger(graph).run(run_id).status is MigrationStatus.PENDING  # type: ignore[union-attr]
