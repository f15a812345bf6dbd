"""Rollback and resume paths beyond the common one, each tried where it could break: plain
Cypher steps undone by their down section, index steps, `.cypher` files end to end, undo rows
missing, a restore task that crashes, a forced pass after a first one, and a FAILED run
resumed once its data is fixed, workers on other hosts sharing no directory, and restores
delivered after their run was abandoned. Real servers,
real workers, both servers."""

from pathlib import Path

from kgmigrate import runs
from kgmigrate.connect import resolve
from kgmigrate.engine.restore import RestoreResult
from kgmigrate.fingerprint import fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import MigrationStatus, RunRecord
from kgmigrate.model.registry import Registry
from kgmigrate.runtime.app import RESTORE_BATCH, sender
from kgmigrate.runtime.settings import load_settings
from tests.conftest import Execution
from tests.items import create_in_batch_order
from tests.test_execution import start

FLAG_CYPHER = """// description: flag every item, and leave a marker
MATCH (e:Item) SET e.flag = true;
CREATE (:Marker {v: 1});

// kgmigrate:down
MATCH (m:Marker) DELETE m;
MATCH (e:Item) REMOVE e.flag;
"""
INDEX_THEN_FAIL = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=100, steps=[
    ops.create_index("Item", "i"),
    ops.batched("Item", "SET e.c = 1", validation="e.i <= {last_valid}"),
])
"""


def items(graph: GraphBackend, count: int = 500) -> None:
    create_in_batch_order(graph, count, "{i: i, w: i / 7.0}")


def indexes(graph: GraphBackend) -> set[tuple[str, tuple[str, ...]]]:
    """The user's indexes (the ledger's own, made by the first run, left out)."""
    return {(s.name, s.properties) for s in graph.indexes() if not s.name.startswith("__KGM")}


def test_a_cypher_file_and_an_index_step_are_undone_by_the_rollback(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a .cypher migration (two statements, a down section) and an index step, followed
    # by a step that fails validation in its last batch
    items(graph)
    before, indexed = fingerprint(graph), indexes(graph)
    execution.write_migration("V0001__flag.cypher", FLAG_CYPHER)
    execution.write_migration("V0002__index_then_fail.py", INDEX_THEN_FAIL.format(
        last_valid=490))
    execution.start_worker()
    # When the run fails and rolls back
    run = runs.wait(graph, start(execution, graph), timeout_s=180)
    # Then the Cypher statements were undone by their down section, the index dropped
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    assert [(s.version, s.status) for s in run.steps[:3]] == [
        ("V0001", MigrationStatus.COMPLETED), ("V0001", MigrationStatus.COMPLETED),
        ("V0002", MigrationStatus.COMPLETED)]
    assert fingerprint(graph) == before
    assert indexes(graph) == indexed
    assert Ledger(graph).applied() == []


def test_a_cypher_file_is_applied_and_downgraded_end_to_end(
        execution: Execution, graph: GraphBackend) -> None:
    items(graph)
    before = fingerprint(graph)
    execution.write_migration("V0001__flag.cypher", FLAG_CYPHER)
    execution.start_worker()
    run = runs.wait(graph, start(execution, graph), timeout_s=120)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert graph.read("MATCH (e:Item) WHERE e.flag RETURN count(e) AS n").value("n") == 500
    assert graph.read("MATCH (m:Marker) RETURN count(m) AS n").value("n") == 1
    downgrade = runs.downgrade(graph, Registry.load(execution.migrations),
                               resolve(load_settings()), "base")
    assert downgrade is not None
    run = runs.wait(graph, downgrade, timeout_s=120)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert fingerprint(graph) == before


def failed_run(execution: Execution, graph: GraphBackend, *, last_valid: int = 490) -> RunRecord:
    """A run of 5 batches whose last one fails validation, left FAILED (no automatic
    rollback): 4 batches committed, each with its undo record."""
    items(graph)
    execution.write_migration("V0001__fail.py", INDEX_THEN_FAIL.format(last_valid=last_valid))
    execution.env["KGMIGRATE_AUTO_ROLLBACK"] = "false"
    execution.start_worker()
    run = runs.wait(graph, start(execution, graph), timeout_s=180)
    assert run.status is MigrationStatus.FAILED, run.error_log
    assert run.steps[1].batches_done == 4
    return run


def lose_undo_rows(graph: GraphBackend, run: RunRecord, count: int) -> str:
    """Delete `count` undo rows of the first committed batch of step 2; that batch's id."""
    [victim, *_] = sorted(b.id for b in Ledger(graph).batches(run.steps[1].id)
                          if b.status is MigrationStatus.COMPLETED)
    lost = graph.write("MATCH (u:__KGMUndo) WHERE u.__KGM_batch = $b WITH u "
                       "ORDER BY u.__KGM_key LIMIT $n DELETE u RETURN count(*) AS n",
                       {"b": victim, "n": count}).value("n")
    assert lost == count
    return victim


def test_missing_undo_rows_block_their_batch_and_the_others_are_restored(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a failed run, one of whose committed batches lost 40 of its 100 undo rows
    run = failed_run(execution, graph)
    lose_undo_rows(graph, run, 40)
    # When it is rolled back
    runs.rollback(graph, resolve(load_settings()), run.id)
    run = runs.wait(graph, run.id, timeout_s=180)
    # Then that batch is reported with the count, nothing of it is guessed, and the other
    # three are restored
    assert run.status is MigrationStatus.ROLLBACK_BLOCKED, run.error_log
    assert "40 of its 100 undo records are missing" in (run.error_log or ""), run.error_log
    assert graph.read("MATCH (e:Item) WHERE e.c = 1 RETURN count(e) AS n").value("n") == 100


def test_a_forced_pass_restores_what_it_can_and_counts_entities_without_undo_rows(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a failed run whose rollback stopped at a batch that lost 40 of its undo rows
    run = failed_run(execution, graph)
    lose_undo_rows(graph, run, 40)
    runs.rollback(graph, resolve(load_settings()), run.id)
    assert runs.wait(graph, run.id, timeout_s=180).status is MigrationStatus.ROLLBACK_BLOCKED
    # When the rollback is forced
    runs.rollback(graph, resolve(load_settings()), run.id, force=True)
    run = runs.wait(graph, run.id, timeout_s=180)
    # Then the batch's other 60 are restored, and the 40 that nothing can restore decide the
    # outcome: the run is not called rolled back while they stay migrated
    assert run.status is MigrationStatus.ROLLBACK_BLOCKED, run.error_log
    assert "rollback left 40 conflicts" in (run.error_log or ""), run.error_log
    assert run.counters["rollback_conflicts"] == 40
    assert graph.read("MATCH (e:Item) WHERE e.c = 1 RETURN count(e) AS n").value("n") == 40


def test_a_restore_task_that_crashes_stops_the_rollback_with_the_reason(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a failed run whose step record can no longer be read back as an operation
    run = failed_run(execution, graph)
    graph.write("MATCH (s:__KGMStep {run_id: $id}) WHERE s.order = 2 "
                "SET s.operation = 'no_such_op'", {"id": run.id})
    execution.stop_all()  # a worker that never read the step (workers cache what they read)
    execution.start_worker()
    # When it is rolled back
    runs.rollback(graph, resolve(load_settings()), run.id)
    run = runs.wait(graph, run.id, timeout_s=180)
    # Then the crash ends the rollback (it does not hang) and says why and what to do
    assert run.status is MigrationStatus.ROLLBACK_BLOCKED, run.error_log
    assert "a restore task crashed" in (run.error_log or "")
    assert "no_such_op" in (run.error_log or "")
    assert f"kgmigrate rollback {run.id}" in (run.error_log or "")


def test_a_forced_pass_revisits_only_the_first_passes_conflicts_and_lists_them_as_forced(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a failed run, an entity changed by someone else since, and a first rollback pass
    # that kept it as a conflict (recorded on its undo row, with the reason)
    run = failed_run(execution, graph)
    graph.write("MATCH (e:Item) WHERE e.c = 1 WITH e ORDER BY e.i LIMIT 1 SET e.note = 'app'")
    runs.rollback(graph, resolve(load_settings()), run.id)
    run = runs.wait(graph, run.id, timeout_s=180)
    assert run.status is MigrationStatus.ROLLBACK_BLOCKED, run.error_log
    assert "rollback left 1 conflicts" in (run.error_log or "")
    [conflict] = runs.conflicts(graph, run)
    assert (conflict.step, conflict.reason, conflict.forced) == (
        2, "changed by someone else since the batch wrote it", False)
    assert graph.read("MATCH (e:Item) WHERE e.c = 1 RETURN count(e) AS n").value("n") == 1
    # When the rollback is forced
    runs.rollback(graph, resolve(load_settings()), run.id, force=True)
    run = runs.wait(graph, run.id, timeout_s=180)
    # Then that entity alone is restored, over the other's change, and listed as forced; the
    # error log keeps the run's failure, not the first pass's stop
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    assert "rollback left" not in (run.error_log or "")
    assert "failed validation" in (run.error_log or "")
    assert graph.read("MATCH (e:Item) WHERE e.c = 1 OR e.note IS NOT NULL "
                      "RETURN count(e) AS n").value("n") == 0
    [forced] = runs.conflicts(graph, run)
    assert (forced.key, forced.forced) == (conflict.key, True)
    forced_pass = [r for r in Ledger(graph).restores(run.steps[1].id)
                   if r["id"].endswith(":forced")]
    assert sorted((r["restored"], r["conflicts"]) for r in forced_pass) == [
        (0, 0), (0, 0), (0, 0), (1, 0)]


def test_a_failed_run_resumed_after_its_data_is_fixed_completes_exactly_once(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a run failed by ten items its validation rejects
    run = failed_run(execution, graph)
    assert "batch 5: 10 of 100 entities failed validation `e.i <= 490`: keys " in (
        run.error_log or "")
    # When the data is fixed (the ten items now pass) and the run resumed
    graph.write("MATCH (e:Item) WHERE e.i > 490 SET e.i = e.i - 1000")
    runs.resume(graph, resolve(load_settings()), run.id)
    resumed = Ledger(graph).run(run.id)
    assert resumed is not None and resumed.status is MigrationStatus.IN_PROGRESS  # a wait now waits
    run = runs.wait(graph, run.id, timeout_s=180)
    # Then it completes, every item changed exactly once, the failed batch applied once
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert graph.read("MATCH (e:Item) RETURN e.c AS c, count(*) AS n").records == [
        {"c": 1, "n": 500}]
    assert [(s.batches_done, s.entities_done) for s in run.steps] == [(1, 0), (5, 500)]
    assert [a.version for a in Ledger(graph).applied()] == ["V0001"]


def test_workers_on_other_hosts_run_and_roll_back_sharing_no_directory(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a run that fails in its last batch and rolls itself back, known only to the caller,
    # and its workers as if on two other hosts: each with its own working, backup and
    # migrations directories (empty), one serving the batches, one the control queue
    items(graph)
    before = fingerprint(graph)
    execution.write_migration("V0001__fail.py", INDEX_THEN_FAIL.format(last_valid=490))
    hosts = {}
    for host, queues in (("host-a", "kgm.batches"), ("host-b", "kgm.control")):
        root = tmp_path / host
        for sub in ("work", "backups", "migrations"):
            (root / sub).mkdir(parents=True)
        hosts[host] = root
        execution.start_worker(queues=queues, cwd=root / "work", env={
            "KGMIGRATE_BACKUP_DIR": str(root / "backups"),
            "KGMIGRATE_MIGRATIONS_DIR": str(root / "migrations")})
    # When it runs
    run = runs.wait(graph, start(execution, graph), timeout_s=240)
    # Then it ran, failed and rolled back exactly, and no worker wrote a file anywhere
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    assert run.steps[1].batches_done == 4
    assert fingerprint(graph) == before
    for root in hosts.values():
        assert [p for p in root.rglob("*") if p.is_file()] == []
    caller = Path(execution.env["KGMIGRATE_BACKUP_DIR"])
    assert not caller.exists() or [p for p in caller.rglob("*") if p.is_file()] == []


def test_a_restore_delivered_after_its_run_was_abandoned_changes_nothing(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a failed run that an operator abandoned (having settled the graph by hand)
    run = failed_run(execution, graph)
    runs.abandon(graph, run.id, reason="settled by hand")
    left = fingerprint(graph)
    # When restore tasks of its committed batches are delivered late (sent before the
    # abandon, say, by a rollback whose workers died), to a real worker
    app = sender(execution.env["KGMIGRATE_BROKER_URL"], execution.env["KGMIGRATE_RESULT_BACKEND"])
    step = run.steps[1]
    committed = [b for b in Ledger(graph).batches(step.id)
                 if b.status is MigrationStatus.COMPLETED]
    sent = [app.send_task(RESTORE_BATCH, args=(run.id, step.id, b.seq, b.id, b.undo, False),
                          kwargs={"version": step.version, "step": step.order, "rollback": True})
            for b in committed]
    results = [RestoreResult.model_validate(r.get(timeout=120)) for r in sent]
    # Then each is refused by the restore statement itself, and the graph stays as left
    assert [(r.status, r.restored) for r in results] == [("failed", 0)] * len(committed)
    assert all(f"run {run.id} is abandoned, not rolling back" in (r.error or "")
               for r in results)
    assert fingerprint(graph) == left
    assert Ledger(graph).restores(step.id) == []
