"""The audit ledger on the real FalkorDB server."""

from datetime import UTC, datetime

import pytest

from kgmigrate import ledger as L
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.migration import step_record
from kgmigrate.model.records import BatchRecord, MigrationMetadata, MigrationStatus
from kgmigrate.model.status import StatusTransitionError
from kgmigrate.ops import Operation, batched, cypher


def meta(version: str, *steps: Operation, checksum: str = "c0ffee") -> MigrationMetadata:
    ops = list(steps) or [cypher("RETURN 1")]
    return MigrationMetadata(version=version, description=f"migration {version}",
                             created_by="ana", checksum=checksum, path=f"{version}.py",
                             steps=[step_record(i, op) for i, op in enumerate(ops, 1)])


def test_a_recorded_run_holds_its_steps_status_history_and_batches(
        graph: GraphBackend) -> None:
    ledger = Ledger(graph)
    # Given two migrations with three steps in all, when a run is created
    run = ledger.create_run([meta("V0001", batched("Compound", "SET e.x = 1", where="e.y > $m",
                                                   m=2), cypher("CREATE INDEX FOR (n:G) ON "
                                                                "(n.s)")),
                             meta("V0002")], target="V0002", created_by="ana@host:1")
    # then it is PENDING, with one step node per step, in order, and their specs
    assert run.status is MigrationStatus.PENDING
    assert run.migrations == ["V0001", "V0002"]
    assert (run.target, run.created_by) == ("V0002", "ana@host:1")
    assert [(s.order, s.version, s.operation, s.batched) for s in run.steps] == [
        (1, "V0001", "batched_cypher", True), (2, "V0001", "cypher", False),
        (3, "V0002", "cypher", False)]
    assert run.steps[0].spec["params"] == {"m": 2}
    assert run.history[0].startswith("pending@")
    # when it moves through statuses, the history records each with a time
    ledger.transition(run.id, MigrationStatus.IN_PROGRESS)
    ledger.transition(run.id, MigrationStatus.VALIDATING)
    done = ledger.transition(run.id, MigrationStatus.FAILED, error="step 2: validation failed")
    assert [h.split("@")[0] for h in done.history] == [
        "pending", "in_progress", "validating", "failed"]
    assert done.error_log == "step 2: validation failed"
    # and batches are recorded with status, counters, attempts, worker and timing
    started = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    batch = BatchRecord(id="batch_1", run_id=run.id, step_id=run.steps[0].id, seq=1,
                        status=MigrationStatus.FAILED, attempts=2, worker="w1@h",
                        entities=10_000, counters={"properties_set": 10_000},
                        started_at=started, finished_at=started, error="batch 1 failed")
    ledger.record_batch(batch)
    ledger.record_batch(batch.model_copy(update={"attempts": 3}))  # upsert, not a duplicate
    assert ledger.batches(run.steps[0].id) == [batch.model_copy(update={"attempts": 3})]
    # but a failure is never recorded over a batch another delivery committed
    committed = batch.model_copy(update={"id": "batch_2", "seq": 2, "error": None,
                                         "status": MigrationStatus.COMPLETED})
    ledger.record_batch(committed)
    ledger.record_batch(committed.model_copy(update={"status": MigrationStatus.FAILED,
                                                     "error": "a late delivery failed"}))
    assert ledger.batches(run.steps[0].id) == [batch.model_copy(update={"attempts": 3}),
                                               committed]
    assert ledger.runs()[0].id == run.id
    # and steps and the run carry progress, counters, timing and the backup reference
    ledger.update_step(run.steps[0].id, status=MigrationStatus.COMPLETED, batches_total=4,
                       batches_done=4, entities_total=40_000, entities_done=40_000,
                       counters={"properties_set": 40_000}, started_at=started,
                       finished_at=started)
    ledger.update_step(run.steps[0].id, batches_done=4)  # partial update keeps the rest
    ledger.update_run_facts(run.id, counters={"properties_set": 40_000},
                            backup_ref="undo/run_1")
    after = ledger.run(run.id)
    assert after is not None
    step = after.steps[0]
    assert (step.status, step.batches_done, step.batches_total, step.entities_done) == (
        MigrationStatus.COMPLETED, 4, 4, 40_000)
    assert step.counters == {"properties_set": 40_000}
    assert step.started_at == started
    assert (after.counters, after.backup_ref) == ({"properties_set": 40_000}, "undo/run_1")
    assert after.steps[1].counters == {} and after.steps[1].started_at is None
    with pytest.raises(KgmError, match="no step step_nope"):
        ledger.update_step("step_nope", batches_done=1)


def test_impossible_transitions_are_refused_atomically(graph: GraphBackend) -> None:
    ledger = Ledger(graph)
    run = ledger.create_run([meta("V0001")])
    for status in (MigrationStatus.IN_PROGRESS, MigrationStatus.VALIDATING,
                   MigrationStatus.COMPLETED):
        ledger.transition(run.id, status)
    with pytest.raises(StatusTransitionError, match="is completed and cannot become failed"):
        ledger.transition(run.id, MigrationStatus.FAILED)
    final = ledger.run(run.id)
    assert final is not None and final.status is MigrationStatus.COMPLETED
    assert final.finished_at is not None
    with pytest.raises(KgmError, match="no run run_nope"):
        ledger.transition("run_nope", MigrationStatus.FAILED)


def test_the_applied_chain_links_migrations_in_order_and_refuses_duplicates(
        graph: GraphBackend) -> None:
    ledger = Ledger(graph)
    for version in ("V0001", "V0003", "V0002"):
        ledger.record_applied(meta(version), run_id="run_x", duration_ms=1500)
    applied = ledger.applied()
    assert [(a.version, a.sequence) for a in applied] == [("V0001", 1), ("V0003", 2),
                                                         ("V0002", 3)]
    first = applied[0]
    assert (first.checksum, first.author, first.duration_ms, first.run_id) == (
        "c0ffee", "ana", 1500, "run_x")
    assert first.applied_at.tzinfo is not None and first.host
    links = graph.read(f"MATCH (a)-[:{L.MIGRATED_TO}]->(b) RETURN a.version AS src, "
                          "b.version AS dst ORDER BY a.sequence").records
    assert links == [{"src": "V0001", "dst": "V0003"}, {"src": "V0003", "dst": "V0002"}]
    with pytest.raises(KgmError, match="V0003 is already applied"):
        ledger.record_applied(meta("V0003"), run_id="run_y", duration_ms=1)
    assert len(ledger.applied()) == 3
    assert ledger.set_checksum("V0003", "beef") is True
    assert [a.checksum for a in ledger.applied()] == ["c0ffee", "beef", "c0ffee"]


def test_ledger_reads_use_indexes_not_a_scan_of_the_user_graph(
        graph: GraphBackend) -> None:
    Ledger(graph).ensure_schema()
    params = {"id": "run_x", "step_id": "step_x", "allowed_from": ["pending"], "status": "x",
              "entry": "x", "error": None, "finished_at": None}
    for statement in (L.READ_RUN, L.READ_STEPS, L.RUN_STATUS, L.READ_BATCHES, L.FAILED_BATCHES,
                      L.TRANSITION):
        plan = "\n".join(graph.explain(statement, params))  # type: ignore[attr-defined]
        seek = "Index Scan" if graph.dialect.name == "falkordb" else "IndexSeek"
        assert seek in plan, f"{statement}\n{plan}"
        assert "All Node Scan" not in plan and "AllNodesScan" not in plan
        assert "NodeByLabelScan" not in plan


def test_a_runs_after_migrate_callbacks_are_claimed_once_per_end(graph: GraphBackend) -> None:
    ledger = Ledger(graph)
    # Given a run without afterMigrate callbacks, and one with them
    plain = ledger.create_run([meta("V0001")])
    run = ledger.create_run([meta("V0002")])
    ledger.set_after_migrate(run.id, '[{"name": "afterMigrate.cypher"}]')
    # Then the first claim of the run with them gets them, a second (a redelivery) does not,
    # nor does any claim of the other run
    assert ledger.claim_after_migrate(run.id) == '[{"name": "afterMigrate.cypher"}]'
    assert ledger.claim_after_migrate(run.id) is None
    assert ledger.claim_after_migrate(plain.id) is None
    # When the run is continued, its next end claims them again, once
    ledger.reset_on_resume(run.id)
    assert ledger.claim_after_migrate(run.id) == '[{"name": "afterMigrate.cypher"}]'
    assert ledger.claim_after_migrate(run.id) is None
    # and what the callbacks did is noted on the run, in order
    ledger.note_callback(run.id, "first")
    ledger.note_callback(run.id, "second")
    assert ledger.require_run(run.id).callback_notes == ["first", "second"]


def test_a_repeat_recorded_twice_by_one_run_is_one_link(graph: GraphBackend) -> None:
    ledger = Ledger(graph)
    # Given a repeatable migration applied by one run
    first = meta("V0001", checksum="one").model_copy(update={"repeatable": True})
    ledger.record_applied(first, run_id="run_a", duration_ms=1)
    # When another run repeats it, and a second delivery of that decision records it again
    again = first.model_copy(update={"checksum": "two"})
    assert ledger.record_applied(again, run_id="run_b", duration_ms=1, repeat=True)
    assert ledger.record_applied(again, run_id="run_b", duration_ms=1, repeat=True) is None
    # Then the chain has one applied link, the repeat, in the first one's place
    assert [(a.version, a.checksum, a.run_id, a.repeat_of) for a in ledger.applied()] == [
        ("V0001", "two", "run_b", 1)]
    assert [(h.state, h.run_id) for h in ledger.history()] == [
        ("repeated", "run_a"), ("applied", "run_b")]
