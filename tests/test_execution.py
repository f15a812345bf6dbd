"""Distributed execution end to end: real worker processes, the real embedded server."""

import time
from pathlib import Path

import pytest

from kgmigrate import runs
from kgmigrate.connect import resolve
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.ledger.lock import LockHeldError, MigrationLock
from kgmigrate.model.records import MigrationStatus, RunRecord
from kgmigrate.model.registry import Registry
from kgmigrate.model.versions import Version
from kgmigrate.runtime.settings import load_settings
from tests.conftest import Execution, link_items, wait_until
from tests.items import create_in_batch_order

NODES = 100_000
THREE_STEPS = """
from kgmigrate import Migration, ops

migration = Migration(
    author="test",
    batch_size={batch},
    steps=[
        ops.batched("Item", "SET e.c1 = coalesce(e.c1, 0) + 1"),
        ops.batched("Item", "SET e.c2 = coalesce(e.c2, 0) + 1", where="e.i % 2 = 0",
                    validation={validation!r}),
        ops.batched(rel_type="NEXT", apply="SET e.c3 = coalesce(e.c3, 0) + 1"),
    ],
)
"""


def load_items(graph: GraphBackend) -> None:
    create_in_batch_order(graph, NODES, "{i: i}")
    link_items(graph, 50_000)


def start(execution: Execution, graph: GraphBackend) -> str:
    settings = load_settings()
    run_id = runs.enqueue_migration(graph, Registry.load(settings.migrations_dir),
                                    resolve(settings))
    assert run_id is not None
    return run_id


def counts(graph: GraphBackend, prop: str, pattern: str = "(e:Item)") -> dict[object, int]:
    rows = graph.read(f"MATCH {pattern} RETURN e.{prop} AS v, count(*) AS n").records
    return {r["v"]: r["n"] for r in rows}


def wait_for(graph: GraphBackend, run_id: str, condition: object,
             timeout_s: float = 120) -> RunRecord:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = Ledger(graph).run(run_id)
        assert run is not None
        if condition(run):  # type: ignore[operator]
            return run
        time.sleep(0.1)
    raise AssertionError(f"condition not reached: {Ledger(graph).run(run_id)}")


def queued_batch_tasks(execution: Execution, expected: int, timeout_s: float = 30) -> None:
    """Wait until the broker's batch queue holds `expected` tasks."""
    import redis

    queue = redis.Redis(port=execution.stack.port, db=execution.db)
    deadline = time.monotonic() + timeout_s
    while queue.llen("kgm.batches") < expected:
        assert time.monotonic() < deadline, f"{queue.llen('kgm.batches')} batch tasks queued"
        time.sleep(0.05)


def assert_every_entity_changed_exactly_once(graph: GraphBackend) -> None:
    assert counts(graph, "c1") == {1: NODES}
    assert counts(graph, "c2") == {1: NODES // 2, None: NODES // 2}
    assert counts(graph, "c3", "()-[e:NEXT]->()") == {1: 50_000}


def test_a_three_step_migration_changes_every_entity_exactly_once(
        execution: Execution, graph: GraphBackend) -> None:
    # Given 100k nodes and 50k relationships, and a three-step migration
    load_items(graph)
    execution.write_migration("V0001__three_steps.py",
                              THREE_STEPS.format(batch=5000, validation="e.c2 = 1"))
    # When it runs on two worker processes
    execution.start_worker()
    execution.start_worker()
    run = runs.wait(graph, start(execution, graph), timeout_s=180)
    # Then it completes, every entity changed exactly once, and the ledger agrees
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert_every_entity_changed_exactly_once(graph)
    assert [(s.batches_done, s.batches_total, s.entities_done, s.entities_total)
            for s in run.steps] == [(20, 20, NODES, NODES), (10, 10, NODES // 2, NODES // 2),
                                    (10, 10, 50_000, 50_000)]
    assert all(s.status is MigrationStatus.COMPLETED for s in run.steps)
    assert [h.split("@")[0] for h in run.history][:2] == ["pending", "in_progress"]
    assert run.history[-1].startswith("completed@")
    assert [a.version for a in Ledger(graph).applied()] == ["V0001"]
    # the statement counters include the ledger's bookkeeping in the same statement: nine
    # properties per batch (batch status, entities, worker, started_at, finished_at, attempts,
    # undo record; step batches_done, entities_done), 40 batches here
    assert run.counters["properties_set"] == NODES + NODES // 2 + 50_000 + 9 * 40
    assert runs.progress(run)[0].entities_per_s > 0
    assert len(run.steps[0].batch_seconds) == 20
    assert all(s > 0 for s in run.steps[0].batch_seconds)
    applied = [Version.parse(a.version) for a in Ledger(graph).applied()]
    assert Registry.load(execution.migrations).pending(applied) == []


def test_a_failing_validation_leaves_the_run_failed_with_batch_and_keys(
        execution: Execution, graph: GraphBackend) -> None:
    load_items(graph)
    # the per-entity validation fails for the last ten even nodes, all in one late batch
    execution.write_migration("V0001__three_steps.py", THREE_STEPS.format(
        batch=5000, validation="e.i <= 99980"))
    execution.env["KGMIGRATE_AUTO_ROLLBACK"] = "false"  # rollback: see test_rollback.py
    execution.start_worker()
    run = runs.wait(graph, start(execution, graph), timeout_s=180)
    assert run.status is MigrationStatus.FAILED
    assert "step 2" in (run.error_log or "")
    assert ("batch 10: 10 of 5,000 entities failed validation `e.i <= 99980`: keys "
            in (run.error_log or ""))
    steps = {s.order: s for s in run.steps}
    assert steps[1].status is MigrationStatus.COMPLETED
    assert steps[2].status is MigrationStatus.FAILED
    assert steps[3].status is MigrationStatus.PENDING  # never started
    failed = [b for b in Ledger(graph).batches(steps[2].id) if b.status.value == "failed"]
    assert len(failed) == 1
    assert "keys" in (failed[0].error or "")
    # the failed batch's transaction was rolled back: its entities are untouched
    untouched = graph.read("MATCH (e:Item) WHERE e.i > 99980 AND e.i % 2 = 0 "
                              "RETURN count(e) AS n, count(e.c2) AS changed").single()
    assert untouched == {"n": 10, "changed": 0}
    assert [a.version for a in Ledger(graph).applied()] == []
    assert Ledger(graph).runs()[0].id == run.id


def test_a_worker_killed_mid_run_still_changes_every_entity_exactly_once(
        execution: Execution, graph: GraphBackend) -> None:
    load_items(graph)
    execution.write_migration("V0001__three_steps.py", THREE_STEPS.format(
        batch=500, validation="e.c2 = 1"))
    victim = execution.start_worker()
    execution.start_worker()
    run_id = start(execution, graph)
    # When one worker is SIGKILLed while step 1 is under way
    wait_for(graph, run_id, lambda r: r.steps[0].batches_done >= 30)
    execution.kill(victim)
    run = runs.wait(graph, run_id, timeout_s=240)
    # Then its unacknowledged task is redelivered, and nothing is applied twice
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert_every_entity_changed_exactly_once(graph)


def test_resume_after_killing_everything_completes_without_reapplying(
        execution: Execution, graph: GraphBackend) -> None:
    load_items(graph)
    execution.write_migration("V0001__three_steps.py", THREE_STEPS.format(
        batch=500, validation="e.c2 = 1"))
    first = execution.start_worker()
    run_id = start(execution, graph)
    run = wait_for(graph, run_id, lambda r: r.steps[0].batches_done >= 40)
    # When the worker dies and the broker loses every message (a crash of everything)
    execution.kill(first)
    execution.flush_broker()
    stopped = Ledger(graph).run(run_id)
    assert stopped is not None and stopped.status is MigrationStatus.IN_PROGRESS
    committed = stopped.steps[0].batches_done
    assert 40 <= committed < stopped.steps[0].batches_total
    done_before = {b.id for b in Ledger(graph).batches(stopped.steps[0].id)
                   if b.status is MigrationStatus.COMPLETED}
    assert len(done_before) == committed
    # Then resume re-enqueues only what is not committed, and the run completes
    runs.resume(graph, resolve(load_settings()), run_id)
    execution.start_worker()
    execution.start_worker()
    run = runs.wait(graph, run_id, timeout_s=240)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert_every_entity_changed_exactly_once(graph)  # committed batches not re-applied
    # and not even re-sent: a delivery of a committed batch is counted (as a retry)
    again = [b.id for b in Ledger(graph).batches(run.steps[0].id)
             if b.id in done_before and b.retries]
    assert again == []


def test_a_step_that_cannot_start_ends_the_run_instead_of_hanging(
        execution: Execution, graph: GraphBackend) -> None:
    graph.write("UNWIND range(1, 100) AS i CREATE (:Item {i: i})")
    execution.write_migration("V0001__x.py", THREE_STEPS.format(batch=10, validation="true"))
    run_id = start(execution, graph)
    # the recorded operation of step 1 is corrupted before any worker sees it
    graph.write("MATCH (s:__KGMStep {run_id: $id}) WHERE s.order = 1 "
                   "SET s.operation = 'no_such_op'", {"id": run_id})
    execution.start_worker()
    run = runs.wait(graph, run_id, timeout_s=120)
    # nothing was committed, so the automatic rollback has nothing to restore
    assert run.status is MigrationStatus.ROLLED_BACK
    assert "step 1 could not be started: unknown operation kind 'no_such_op'" in (
        run.error_log or "")
    assert MigrationLock(graph).info() is None  # the lock was released


def test_a_crashing_batch_task_fails_the_run_through_the_chord_error_callback(
        execution: Execution, graph: GraphBackend) -> None:
    graph.write("UNWIND range(1, 1000) AS i CREATE (:Item {i: i})")
    execution.write_migration("V0001__x.py", THREE_STEPS.format(batch=100, validation="true"))
    # Given only a control worker: the run is planned and its batch tasks wait in the queue
    execution.start_worker(queues="kgm.control")
    run_id = start(execution, graph)
    wait_for(graph, run_id, lambda r: r.steps[0].planned, timeout_s=60)
    queued_batch_tasks(execution, 10)  # planned is recorded before the chord is sent
    # When one batch's ledger record vanishes, its task raises instead of returning a result
    graph.write("MATCH (b:__KGMBatch) WHERE b.seq = 3 DELETE b")
    execution.start_worker(queues="kgm.batches")
    # Then the chord's error callback rolls the run back, and the lock is released
    run = runs.wait(graph, run_id, timeout_s=120)
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    assert "a batch task crashed" in (run.error_log or "")
    assert "no batch" in (run.error_log or "")
    assert MigrationLock(graph).info() is None
    assert counts(graph, "c1") == {None: 1000}  # every committed batch restored


def test_a_second_concurrent_upgrade_is_refused_by_the_lock(
        execution: Execution, graph: GraphBackend) -> None:
    graph.write("CREATE (:Item {i: 1})")
    execution.write_migration("V0001__one.py", THREE_STEPS.format(batch=10, validation="true"))
    first = start(execution, graph)  # no workers: it stays pending, holding the lock
    execution.write_migration("V0002__two.cypher", "RETURN 1;")
    with pytest.raises(LockHeldError, match=f"run {first}"):
        start(execution, graph)


def test_upgrade_with_local_workers_from_the_command_line(
        execution: Execution, graph: GraphBackend) -> None:
    import json
    import os
    import subprocess
    import sys

    graph.write("UNWIND range(1, 3000) AS i CREATE (:Item {i: i})")
    execution.write_migration("V0001__flag.py", THREE_STEPS.format(batch=1000,
                                                                   validation="e.c2 = 1"))
    env = {**os.environ, **execution.env, "KGMIGRATE_STACK_DIR": str(execution.logs)}
    done = subprocess.run([sys.executable, "-m", "kgmigrate.cli", "upgrade", "--local-workers",
                           "2", "--json"], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "completed"
    assert [s["entities_done"] for s in run["steps"]] == [3000, 1500, 0]
    assert len(list((execution.logs / "workers").glob("worker-*.log"))) == 2
    again = subprocess.run([sys.executable, "-m", "kgmigrate.cli", "upgrade", "--json"],
                           env=env, capture_output=True, text=True, timeout=120, check=False)
    assert json.loads(again.stdout) == {"run_id": None, "status": "up_to_date"}
    shown = subprocess.run([sys.executable, "-m", "kgmigrate.cli", "status", run["id"],
                            "--json"], env=env, capture_output=True, text=True, timeout=120,
                           check=False)
    assert json.loads(shown.stdout)["status"] == "completed"


def test_the_tickets_execute_migration_enqueues_and_waits(
        execution: Execution, graph: GraphBackend) -> None:
    from kgmigrate import DataMigrationManager

    graph.write("UNWIND range(1, 500) AS i CREATE (:Item {i: i})")
    execution.write_migration("V0001__flag.py", THREE_STEPS.format(batch=100,
                                                                   validation="e.c2 = 1"))
    execution.start_worker()
    manager = DataMigrationManager(load_settings(), backend=graph)
    assert manager.execute_migration(timeout_s=120) is True
    assert counts(graph, "c1") == {1: 500}
    assert manager.execute_migration(timeout_s=10) is True  # nothing pending
    run = manager.get_migration_status(Ledger(graph).runs()[0].id)
    assert run is not None and run.status is MigrationStatus.COMPLETED


def test_a_worker_killed_after_a_commit_and_before_its_ack_applies_that_batch_once(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given 20k items and 10k links, three steps of 2,000-entity batches, and a worker that
    # SIGKILLs itself right after its first batch commits, before the task is acknowledged
    graph.write("UNWIND range(1, 20000) AS i CREATE (:Item {i: i})")
    link_items(graph, 10_000)
    execution.write_migration("V0001__three_steps.py",
                              THREE_STEPS.format(batch=2000, validation="e.c2 = 1"))
    marker = tmp_path / "crashed"
    execution.env.update({"KGMIGRATE_HOOKS": "tests.crash_once",
                          "KGM_CRASH_MARKER": str(marker)})
    execution.start_worker(concurrency=2)
    # When the run goes on (the killed pool process is replaced, its task redelivered)
    run = runs.wait(graph, start(execution, graph), timeout_s=240)
    # Then the crash certainly happened, after a commit
    run_id, step, seq = marker.read_text().split()
    assert run_id == run.id
    # and the run completed with every entity changed exactly once
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert counts(graph, "c1") == {1: 20_000}
    assert counts(graph, "c2") == {1: 10_000, None: 10_000}
    assert counts(graph, "c3", "()-[e:NEXT]->()") == {1: 10_000}
    assert [(s.batches_done, s.entities_done) for s in run.steps] == [
        (10, 20_000), (5, 10_000), (5, 10_000)]
    # and the ledger counts the redelivery of the batch that had committed
    crashed = next(s for s in run.steps if s.order == int(step))
    [record] = [b for b in Ledger(graph).batches(crashed.id) if b.seq == int(seq)]
    assert record.retries >= 1 and record.attempts == 1
    assert sum(b.retries for s in run.steps for b in Ledger(graph).batches(s.id)) >= 1


def test_the_same_batch_statement_run_twice_aborts_the_second_and_changes_nothing(
        graph: GraphBackend) -> None:
    from kgmigrate import ops
    from kgmigrate.compile import compile_op
    from kgmigrate.engine.batch_statement import batch_params, batch_statement
    from kgmigrate.errors import BackendError

    # Given one batch of 100 items, its ledger records, and its statement as a worker renders it
    graph.write("UNWIND range(1, 100) AS i CREATE (:Item {i: i})")
    graph.write("CREATE (:__KGMStep {id: 's1', run_id: 'r1', status: 'in_progress', "
                "batches_done: 0, entities_done: 0}) CREATE (:__KGMBatch {id: 'b1', "
                "run_id: 'r1', step_id: 's1', seq: 1, status: 'planned'})")
    op = ops.batched("Item", "SET e.c = coalesce(e.c, 0) + 1")
    [(address, _)] = list(graph.plan_batches(op.scope(), 1000))
    plan = compile_op(op, graph.dialect.name)
    statement = batch_statement(graph.dialect, plan)
    params = batch_params(graph.dialect, plan, address, run_id="r1", step_id="s1",
                          batch_id="b1", worker="w", at="t")
    # When it runs, and runs again with the same batch id
    assert graph.write(statement, params).single()["n"] == 100
    with pytest.raises(BackendError, match="by zero"):
        graph.write(statement, params)
    # Then the second changed nothing: not the items, not the ledger
    assert counts(graph, "c") == {1: 100}
    assert graph.read("MATCH (b:__KGMBatch {id: 'b1'}) MATCH (s:__KGMStep {id: 's1'}) "
                      "RETURN b.attempts AS a, s.batches_done AS d, s.entities_done AS e"
                      ).single() == {"a": 1, "d": 1, "e": 100}


def test_a_batch_redelivered_while_it_runs_reports_once_and_the_step_waits_for_the_rest(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a step of two batches whose tasks outlive the broker's visibility timeout (10 s
    # here): batch 1's first delivery is held until the broker delivers it again and that
    # second delivery commits it; batch 2 is held throughout (tests/hold.py)
    graph.write("UNWIND range(1, 1000) AS i CREATE (:Item {i: i})")
    hold = tmp_path / "hold"
    execution.env.update(KGMIGRATE_HOOKS="tests.hold", KGM_HOLD=str(hold),
                         KGM_HOLD_FIRST=str(tmp_path / "first"))
    execution.write_migration("V0001__one.py", """
from kgmigrate import Migration, ops
migration = Migration(author="test", batch_size=500, steps=[
    ops.batched("Item", "SET e.touched = coalesce(e.touched, 0) + 1"),
])
""")
    execution.start_worker(concurrency=4)
    run_id = start(execution, graph)
    wait_until(lambda: Path(f"{hold}.1.waiting").exists() and Path(f"{hold}.2.waiting").exists(),
               "both batches held", timeout_s=120)
    step = Ledger(graph).require_run(run_id).steps[0]
    wait_until(lambda: Ledger(graph).batches(step.id)[0].status is MigrationStatus.COMPLETED,
               "batch 1 committed by its second delivery", timeout_s=240)
    # When batch 1's first delivery goes on and finds it done, so that batch 1 has reported
    # twice while batch 2 still runs (a chord counting reports would call the step's callback
    # now, and the step would end without batch 2)
    Path(f"{hold}.1.open").touch()
    wait_until(lambda: "batch 1 skipped" in worker_logs(execution), "batch 1's second report")
    Path(f"{hold}.2.open").touch()
    # Then the step waited for batch 2: every entity changed once, the step decided once
    run = runs.wait(graph, run_id, timeout_s=240)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert counts(graph, "touched") == {1: 1000}
    batches = Ledger(graph).batches(step.id)
    assert [(b.status, b.entities) for b in batches] == [(MigrationStatus.COMPLETED, 500)] * 2
    assert batches[0].retries >= 1  # its redelivery was counted
    assert worker_logs(execution).count(f"step 1 of run {run_id} completed") == 1


def worker_logs(execution: Execution) -> str:
    return "".join(log.read_text() for log in execution.logs.iterdir())
