"""A task the broker lost. Kombu's Redis transport takes a message off its queue and only then
records it as unacknowledged: a worker SIGKILLed in between loses it for good (no visibility
timeout brings it back). A full suite once stalled so, a step at 199 of 200 batches with
nothing queued. Here the test takes the message away itself, at a moment it chooses: a batch,
a step's callback, a rollback's restore. Without the run's watch (kgmigrate.engine.watch) each
run waits forever; with it, the run is carried on from the ledger and ends as if nothing was
lost (a forced rollback, forced). Both servers, real workers."""

import base64
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import redis

from kgmigrate import runs
from kgmigrate.connect import resolve
from kgmigrate.fingerprint import Fingerprint, fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import MigrationStatus, RunRecord
from kgmigrate.runtime.app import (
    APPLY_BATCH,
    BATCH_QUEUE,
    CONTROL_QUEUE,
    RESTORE_BATCH,
    STEP_DONE,
)
from kgmigrate.runtime.settings import load_settings
from tests.conftest import Execution, wait_until
from tests.items import create_in_batch_order
from tests.test_execution import start

ONE_STEP = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=100, steps=[
    ops.batched("Item", "SET e.a = coalesce(e.a, 0) + 1", validation="e.i <= {last_valid}"),
])
"""
ITEMS = 600  # six batches
STALL_AFTER_S = "2"
RUN_TIMEOUT_S = 600  # a loaded machine; the watch itself acts within seconds


def broker(execution: Execution) -> "redis.Redis[bytes]":
    return redis.Redis(port=execution.stack.port, db=execution.db)


def messages(execution: Execution, queue: str, task: str) -> list[tuple[bytes, list[Any]]]:
    """The messages of `task` waiting in `queue`: (raw message, task arguments)."""
    found = []
    for raw in broker(execution).lrange(queue, 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == task:
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            found.append((raw, args))
    return found


def lose(execution: Execution, queue: str, raw: bytes) -> None:
    """Take one message off the queue, as a worker killed just after taking it would."""
    assert broker(execution).lrem(queue, 1, raw) == 1


def stop(process: "subprocess.Popen[bytes]") -> None:
    """A warm shutdown: the worker finishes its tasks and gives back the ones it holds."""
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)


def given_a_run(execution: Execution, graph: GraphBackend, *, last_valid: int = 600,
                hooks: dict[str, str] | None = None
                ) -> tuple[str, "subprocess.Popen[bytes]"]:
    """600 items, a one-step migration of six batches, a control worker only (whose watch
    checks every 2 s); the run started, its six batches waiting in the batch queue."""
    create_in_batch_order(graph, ITEMS, "{i: i}")
    execution.write_migration("V0001__one.py", ONE_STEP.format(last_valid=last_valid))
    execution.env["KGMIGRATE_STALL_AFTER_S"] = STALL_AFTER_S
    control = execution.start_worker(queues=CONTROL_QUEUE, env=hooks)
    run_id = start(execution, graph)
    wait_until(lambda: len(messages(execution, BATCH_QUEUE, APPLY_BATCH)) == 6,
               "the step's six batches queued", timeout_s=240)
    return run_id, control


def ended(execution: Execution, graph: GraphBackend, run_id: str) -> RunRecord:
    return runs.wait(graph, run_id, timeout_s=RUN_TIMEOUT_S)


def committed(graph: GraphBackend, run_id: str) -> int:
    """How many of the run's batches committed (each gets a restore), read from the ledger
    rather than assumed from where the failing items sit."""
    step = Ledger(graph).require_run(run_id).steps[0]
    return sum(b.status is MigrationStatus.COMPLETED for b in Ledger(graph).batches(step.id))


def failed_and_held(execution: Execution, graph: GraphBackend, tmp_path: Path
                    ) -> tuple[str, Path, "subprocess.Popen[bytes]", Fingerprint]:
    """A run whose last batch fails its validation, held by its control worker before its
    rollback (tests/hold_failure.py): its id, the file that lets it go on, its batch worker,
    and the graph before the run."""
    gate = str(tmp_path / "gate")
    run_id, _ = given_a_run(execution, graph, last_valid=550, hooks={
        "KGMIGRATE_HOOKS": "tests.hold_failure", "KGM_GATE": gate})
    before = fingerprint(graph)  # no batch has run yet
    batches = execution.start_worker(queues=BATCH_QUEUE)
    wait_until(lambda: Path(gate + ".waiting").exists(), "the run failed, held before its "
               "rollback", timeout_s=RUN_TIMEOUT_S)
    return run_id, Path(gate + ".open"), batches, before


def restores_queued(execution: Execution, graph: GraphBackend, run_id: str) -> None:
    """Until a restore per committed batch waits in the queue (no batch worker takes them)."""
    restores = committed(graph, run_id)
    wait_until(lambda: len(messages(execution, BATCH_QUEUE, RESTORE_BATCH)) == restores,
               "the rollback's restores queued", timeout_s=RUN_TIMEOUT_S)


def carried_on(execution: Execution) -> bool:
    """Some worker's watch said so: the run was carried on from the ledger."""
    return any("carrying it on from the ledger" in log.read_text(errors="replace")
               for log in execution.logs.glob("worker-*.log"))


def test_a_batch_the_broker_lost_is_sent_again_and_the_run_completes_once(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a run whose six batches wait in the queue, when the broker loses batch 3
    run_id, _ = given_a_run(execution, graph)
    raw = next(raw for raw, args in messages(execution, BATCH_QUEUE, APPLY_BATCH)
               if args[2] == 3)
    lose(execution, BATCH_QUEUE, raw)
    # and a batch worker starts: five batches commit, the step's chord waits for the sixth
    execution.start_worker(queues=BATCH_QUEUE)
    run = ended(execution, graph, run_id)
    # Then the watch sends the lost batch again: the run completes, every item changed once
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert graph.read("MATCH (e:Item) RETURN e.a AS a, count(*) AS n").records == [
        {"a": 1, "n": 600}]
    step = run.steps[0]
    assert (step.batches_done, step.entities_done) == (6, 600)
    assert carried_on(execution)


def test_a_step_callback_the_broker_lost_is_decided_and_the_run_completes(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a run whose six batches wait in the queue, and its control worker stopped (it
    # gives back the watch's next check it held)
    run_id, control = given_a_run(execution, graph)
    stop(control)
    # When a batch worker commits all six and the step's callback waits in the control
    # queue, and the broker loses the callback
    execution.start_worker(queues=BATCH_QUEUE)
    wait_until(lambda: messages(execution, CONTROL_QUEUE, STEP_DONE), "the step's callback",
               timeout_s=RUN_TIMEOUT_S)
    lose(execution, CONTROL_QUEUE, messages(execution, CONTROL_QUEUE, STEP_DONE)[0][0])
    # and a control worker starts again (the check the first one held comes back with it)
    execution.start_worker(queues=CONTROL_QUEUE)
    run = ended(execution, graph, run_id)
    # Then the watch has the step decided: the run completes, every item changed once
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert graph.read("MATCH (e:Item) RETURN e.a AS a, count(*) AS n").records == [
        {"a": 1, "n": 600}]
    assert carried_on(execution)


def test_a_restore_the_broker_lost_is_sent_again_and_the_rollback_restores_everything(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a run whose last batch fails its validation; the control worker that fails the
    # run holds before rolling it back (tests/hold_failure.py)
    run_id, gate, batches, before = failed_and_held(execution, graph, tmp_path)
    # When the batch worker is stopped, the rollback sends a restore per committed batch,
    # and the broker loses one of them
    stop(batches)
    gate.touch()
    restores_queued(execution, graph, run_id)
    lose(execution, BATCH_QUEUE, messages(execution, BATCH_QUEUE, RESTORE_BATCH)[0][0])
    # and a batch worker starts again
    execution.start_worker(queues=BATCH_QUEUE)
    run = ended(execution, graph, run_id)
    # Then the watch sends the lost restore again: the graph is exactly as before the run
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    assert fingerprint(graph) == before
    assert Ledger(graph).restores(run.steps[0].id), "the rollback recorded its restores"
    assert carried_on(execution)


def test_a_forced_restore_the_broker_lost_is_sent_again_forced(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a run whose last batch fails its validation, and an application that changes a
    # migrated item before the rollback: the rollback keeps it as a conflict and stops
    run_id, gate, batches, _ = failed_and_held(execution, graph, tmp_path)
    graph.write("MATCH (e:Item) WHERE e.a = 1 WITH e ORDER BY e.i LIMIT 1 SET e.note = 'app'")
    gate.touch()
    run = ended(execution, graph, run_id)
    assert run.status is MigrationStatus.ROLLBACK_BLOCKED, run.error_log
    [conflict] = runs.conflicts(graph, run)
    # When the batch worker is stopped, the rollback is forced, and the broker loses the
    # forced restore of the batch with the conflict
    stop(batches)
    runs.rollback(graph, resolve(load_settings()), run_id, force=True)
    restores_queued(execution, graph, run_id)
    raw = next(raw for raw, args in messages(execution, BATCH_QUEUE, RESTORE_BATCH)
               if args[2] == conflict.batch and args[5] is True)
    lose(execution, BATCH_QUEUE, raw)
    execution.start_worker(queues=BATCH_QUEUE)
    run = ended(execution, graph, run_id)
    # Then the watch of the forced pass sends it again, forced: item 1 is restored too
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    assert graph.read("MATCH (e:Item) WHERE e.a IS NOT NULL OR e.note IS NOT NULL "
                      "RETURN count(e) AS n").value("n") == 0
    assert carried_on(execution)
