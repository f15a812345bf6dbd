"""Retuning a run's batch size while it runs (issue 18, item 3): the batches not started yet
are cut anew, the later steps are cut at the new size, and committed batches, the undo log,
resume and rollback stay valid. Both servers, real workers; a run is held at a known point by
its throttle (its second batch waits for a turn 1000 s away) or by a batch held in flight."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from kgmigrate import runs
from kgmigrate.connect import resolve
from kgmigrate.engine.batch import BatchResult
from kgmigrate.engine.retune import cut_ranges
from kgmigrate.errors import BackendError
from kgmigrate.fingerprint import fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.ledger.batches import is_repeat
from kgmigrate.model.records import MigrationStatus, PlannedBatch, RunRecord
from kgmigrate.model.registry import Registry
from kgmigrate.model.scope import KeyRange
from kgmigrate.model.status import ENDED
from kgmigrate.model.throttle import Throttle
from kgmigrate.runtime.app import APPLY_BATCH, sender
from kgmigrate.runtime.settings import load_settings
from tests.conftest import Execution, wait_until, with_transforms
from tests.test_cli import KGM
from tests.test_run_control import TIMEOUT_S, changed_once, given_a_run_with_a_batch_held

TWO_STEPS = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=100, steps=[
    ops.batched("Item", "SET e.t = e.t * 10"),
    ops.batched("Item", "SET e.b = coalesce(e.b, 0) + 1"),
])
"""
ITEMS = 3000  # 30 batches of 100 a step
FOREVER = 0.001  # batches per second


def given_a_paused_run_with_one_batch_done(execution: Execution, graph: GraphBackend
                                           ) -> tuple[str, str]:
    """3000 items (t = i), a run of two steps in batches of 100, paused after its first batch
    (its second waited for a throttle turn 1000 s away); the run and the graph's digest
    before it."""
    graph.write("UNWIND range(1, $n) AS i CREATE (:Item {i: i, t: i})", {"n": ITEMS})
    before = fingerprint(graph)
    execution.write_migration("V0001__two_steps.py", TWO_STEPS)
    execution.env.update(KGMIGRATE_STALL_AFTER_S="2")
    execution.start_worker(concurrency=1)
    settings = load_settings()
    run_id = runs.enqueue_migration(graph, Registry.load(settings.migrations_dir),
                                    resolve(settings), throttle=Throttle(max_batch_rate=FOREVER))
    assert run_id is not None
    wait_until(lambda: Ledger(graph).require_run(run_id).throttle_note, "a batch waiting",
               timeout_s=TIMEOUT_S)
    runs.pause(graph, run_id, by="ana")
    run = runs.wait(graph, run_id, timeout_s=TIMEOUT_S, until={MigrationStatus.PAUSED, *ENDED})
    assert run.status is MigrationStatus.PAUSED, run.error_log
    runs.throttle(graph, run_id, Throttle(), off=True)
    return run_id, before


def sizes(graph: GraphBackend, run: RunRecord, order: int) -> list[int]:
    """The entities of each of a step's batches, in order."""
    step = run.steps[order - 1]
    return [b.entities for b in sorted(Ledger(graph).batches(step.id), key=lambda b: b.seq)]


def superseded(graph: GraphBackend, run: RunRecord) -> int:
    return int(graph.read("MATCH (b:__KGMBatch {step_id: $s}) WHERE b.status = 'superseded' "
                          "RETURN count(b) AS n", {"s": run.steps[0].id}).value("n"))


def all_items(graph: GraphBackend) -> dict[str, int]:
    row = graph.read("MATCH (e:Item) RETURN sum(CASE WHEN e.t = e.i * 10 THEN 1 ELSE 0 END) "
                     "AS t, sum(CASE WHEN e.b = 1 THEN 1 ELSE 0 END) AS b").single()
    return {"t": int(row["t"] or 0), "b": int(row["b"] or 0)}


def test_a_paused_run_retuned_cuts_its_pending_batches_and_later_steps_at_the_new_size(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a run paused after its first batch of 100
    run_id, _ = given_a_paused_run_with_one_batch_done(execution, graph)
    # When its batch size is changed to 250
    done = runs.tune(graph, resolve(load_settings()), run_id, 250, by="ana")
    # Then step 1's 29 pending batches are cut into batches of at most 250 (the old ones
    # kept, superseded, for the audit), the run stays paused, and says what was done
    run = Ledger(graph).require_run(run_id)
    assert run.status is MigrationStatus.PAUSED
    assert (done.step, done.batches_before, done.later_steps, done.continued) == (
        1, 29, 1, False)
    assert 12 <= done.batches_after <= 13  # FalkorDB's first range starts mid-cut
    assert superseded(graph, run) == 29
    assert run.steps[0].batches_total == 1 + done.batches_after
    assert run.tunes and "29 pending batches cut into" in run.tunes[0] and "by ana" in (
        run.tunes[0])
    # When it is resumed
    runs.resume(graph, resolve(load_settings()), run_id)
    run = runs.wait(graph, run_id, timeout_s=TIMEOUT_S)
    # Then it completes, each item changed exactly once by each step: step 1 in its first
    # batch of 100 and then batches of at most 250, step 2 in batches of 250
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert all_items(graph) == {"t": ITEMS, "b": ITEMS}
    first = sizes(graph, run, 1)
    assert first[0] == 100 and max(first[1:]) <= 250 and sum(first) == ITEMS, first
    assert sizes(graph, run, 2) == [250] * 12
    assert [(s.batches_done, s.batches_total, s.entities_done) for s in run.steps] == [
        (len(first), len(first), ITEMS), (12, 12, ITEMS)]


def test_a_retuned_run_cancelled_is_rolled_back_to_the_graph_before_it(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a paused run retuned to batches of 40, resumed, and cancelled once step 1 has
    # committed batches of both sizes
    run_id, before = given_a_paused_run_with_one_batch_done(execution, graph)
    endpoints = resolve(load_settings())
    runs.tune(graph, endpoints, run_id, 40)
    runs.throttle(graph, run_id, Throttle(max_batch_rate=FOREVER))  # hold it again
    runs.resume(graph, endpoints, run_id)
    wait_until(lambda: Ledger(graph).require_run(run_id).steps[0].batches_done >= 2,
               "a batch of the new size committed", timeout_s=TIMEOUT_S)
    # When it is cancelled
    runs.cancel(graph, endpoints, run_id, by="ana")
    run = runs.wait(graph, run_id, timeout_s=TIMEOUT_S)
    # Then the rollback restored the batches of both sizes: the graph is as before the run
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    first, second = sizes(graph, run, 1)[:2]
    assert first == 100 and 0 < second <= 40  # FalkorDB's first new range starts mid-cut
    assert fingerprint(graph) == before


def test_a_late_delivery_of_a_superseded_batch_changes_nothing(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a paused run retuned: its old pending batches superseded
    run_id, _ = given_a_paused_run_with_one_batch_done(execution, graph)
    runs.tune(graph, resolve(load_settings()), run_id, 250)
    run = Ledger(graph).require_run(run_id)
    old = graph.read("MATCH (b:__KGMBatch {step_id: $s}) WHERE b.status = 'superseded' "
                     "RETURN b.id AS id, b.seq AS seq ORDER BY b.seq LIMIT 3",
                     {"s": run.steps[0].id}).records
    # When three of them are delivered late to a real worker (a redelivery of a task sent
    # before the retune), after the run was resumed
    runs.resume(graph, resolve(load_settings()), run_id)
    app = sender(execution.env["KGMIGRATE_BROKER_URL"], execution.env["KGMIGRATE_RESULT_BACKEND"])
    sent = [app.send_task(APPLY_BATCH, args=(run_id, run.steps[0].id, r["seq"], r["id"]))
            for r in old]
    results = [BatchResult.model_validate(r.get(timeout=TIMEOUT_S)) for r in sent]
    run = runs.wait(graph, run_id, timeout_s=TIMEOUT_S)
    # Then each is skipped, and every item is changed exactly once
    assert [r.status for r in results] == ["skipped"] * 3
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert all_items(graph) == {"t": ITEMS, "b": ITEMS}


def test_a_swap_is_refused_whole_when_an_old_batch_committed_meanwhile(
        graph: GraphBackend) -> None:
    # Given a step's two pending batches and two staged to replace them
    ledger = Ledger(graph)
    ledger.ensure_schema()
    graph.write("CREATE (:__KGMRun {id: 'r1', status: 'paused'}), "
                "(:__KGMStep {id: 's1', batches_done: 0, batches_total: 2})")
    ledger.create_batches("r1", "s1", [PlannedBatch("r1:1:1", 1, {"lo": 0, "hi": 10}),
                                       PlannedBatch("r1:1:2", 2, {"lo": 10, "hi": 20})])
    ledger.create_batches("r1", "s1", [PlannedBatch("r1:1:3", 3, {"lo": 0, "hi": 20})],
                          staged_by="tune_1")
    # When one of the old batches commits (a stale delivery) before the swap
    graph.write("MATCH (b:__KGMBatch {id: 'r1:1:2'}) SET b.status = 'completed'")
    # Then the swap is refused and nothing changed
    with pytest.raises(BackendError) as refused:
        ledger.swap_batches("r1", "s1", ["r1:1:1", "r1:1:2"], "tune_1", 1, 20)
    assert is_repeat(refused.value)
    statuses = {r["id"]: r["status"] for r in graph.read(
        "MATCH (b:__KGMBatch {step_id: 's1'}) RETURN b.id AS id, b.status AS status").records}
    assert statuses == {"r1:1:1": "pending", "r1:1:2": "completed", "r1:1:3": "staged"}
    assert [b.id for b in ledger.pending_batches("s1")] == ["r1:1:1"]
    # and a swap of a run no longer paused (a resume started it) writes nothing either
    graph.write("MATCH (b:__KGMBatch {id: 'r1:1:2'}) SET b.status = 'pending'")
    graph.write("MATCH (r:__KGMRun {id: 'r1'}) SET r.status = 'in_progress'")
    assert not ledger.swap_batches("r1", "s1", ["r1:1:1", "r1:1:2"], "tune_1", 1, 20)
    assert [b.id for b in ledger.pending_batches("s1")] == ["r1:1:1", "r1:1:2"]
    # while the same swap on the paused run goes through
    graph.write("MATCH (r:__KGMRun {id: 'r1'}) SET r.status = 'paused'")
    assert ledger.swap_batches("r1", "s1", ["r1:1:1", "r1:1:2"], "tune_1", 1, 20)
    assert [b.id for b in ledger.pending_batches("s1")] == ["r1:1:3"]


def test_a_running_run_retuned_from_the_cli_is_paused_retuned_and_continued(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a run (two steps of 30 batches of 100) with a batch held in flight
    run_id, gate, _ = given_a_run_with_a_batch_held(execution, graph, tmp_path)
    # When `kgmigrate tune` asks for batches of 500, and the batch in flight is let go
    tuning = subprocess.Popen(
        [*KGM, "tune", run_id, "--batch-size", "500", "--json"],
        env={**os.environ, **with_transforms(execution)}, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: Ledger(graph).require_run(run_id).request == "pause", "the pause asked",
               timeout_s=TIMEOUT_S)
    Path(f"{gate}.open").touch()
    out, err = tuning.communicate(timeout=TIMEOUT_S)
    # Then it paused the run, retuned it and continued it: the run completes, each item
    # changed exactly once by each step, step 2 in batches of 500
    assert tuning.returncode == 0, err
    told = json.loads(out)
    assert told["batch_size"] == 500 and told["step"] == 1 and told["continued"], told
    run = runs.wait(graph, run_id, timeout_s=TIMEOUT_S)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert changed_once(graph) == {"t": 3000, "t_wrong": 0, "b": 3000, "b_wrong": 0}
    assert sizes(graph, run, 2) == [500] * 6
    assert max(sizes(graph, run, 1)) == 500


# -- cutting ranges (no server) --------------------------------------------------------------


def test_ranges_are_joined_where_adjacent_and_cut_only_inside_them() -> None:
    pending = [KeyRange(100, 200), KeyRange(200, 300), KeyRange(400, 500)]
    assert list(cut_ranges(pending, [0, 250, 450, 600])) == [
        KeyRange(100, 250), KeyRange(250, 300), KeyRange(400, 450), KeyRange(450, 500)]
    assert list(cut_ranges(pending, [])) == [KeyRange(100, 300), KeyRange(400, 500)]
