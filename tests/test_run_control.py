"""An operator steers a running migration (issue 18): pause it, continue it, cancel it (rolled
back, or kept as it is), from the Python API and the CLI. Every test holds one batch in flight
(a transform that waits at a gate, past every check a batch makes before it starts), asks while
it is held, then lets it finish: the batch in flight commits, no other starts, and across the
pause nothing is lost or done twice. Both servers, real workers."""

import os
import subprocess
from pathlib import Path

from kgmigrate import runs
from kgmigrate.connect import resolve
from kgmigrate.fingerprint import Fingerprint, fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.ledger.lock import MigrationLock
from kgmigrate.model.records import MigrationStatus, RunRecord
from kgmigrate.model.scope import Scope
from kgmigrate.model.status import ENDED
from kgmigrate.runtime.settings import load_settings
from tests.conftest import Execution, wait_until, with_transforms
from tests.test_cli import KGM
from tests.test_cli import run as kgm
from tests.test_execution import start

TWO_STEPS = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=100, steps=[
    ops.python_transform("Item", "t", "tests.transforms:held"),
    ops.batched("Item", "SET e.b = coalesce(e.b, 0) + 1"),
])
"""
ITEMS = 3000  # 30 batches a step
HELD = 450
TIMEOUT_S = 600  # a loaded machine


def given_a_run_with_a_batch_held(execution: Execution, graph: GraphBackend,
                                  tmp_path: Path) -> tuple[str, Path, Fingerprint]:
    """3000 items (t = i); a run of two steps, step 1 (t = 10 t) held in flight at item 450
    by its only worker (one process); the gate to let it go, and the graph before the run."""
    graph.write(f"UNWIND range(1, {ITEMS}) AS i CREATE (:Item {{i: i, t: i}})")
    # numbered in the order the planner cuts batches (Neo4j reuses the ids of deleted nodes,
    # and its keys sort as text): item HELD is in batch 5 on either server, however the ids
    # of earlier tests' nodes fell
    key = graph.dialect.anchor(Scope("node", "Item"))
    graph.write(f"MATCH (e:Item) WITH e ORDER BY {key} WITH collect(e) AS items "
                "UNWIND range(0, size(items) - 1) AS k WITH items[k] AS e, k "
                "SET e.i = k + 1, e.t = k + 1")
    before = fingerprint(graph)
    execution.write_migration("V0001__steer.py", TWO_STEPS)
    gate = tmp_path / "gate"
    execution.env.update(KGM_HOLD_VALUE=str(HELD), KGM_HOLD_FIRST=str(tmp_path / "held"),
                         KGM_GATE=str(gate), KGMIGRATE_STALL_AFTER_S="2")
    execution.start_worker(concurrency=1)
    run_id = start(execution, graph)
    wait_until(lambda: Path(f"{gate}.waiting").exists(), "a batch held in flight",
               timeout_s=TIMEOUT_S)
    return run_id, gate, before


def committed(graph: GraphBackend, run: RunRecord) -> int:
    return sum(b.status is MigrationStatus.COMPLETED
               for s in run.steps for b in Ledger(graph).batches(s.id))


def paused(graph: GraphBackend, run_id: str) -> RunRecord:
    return runs.wait(graph, run_id, timeout_s=TIMEOUT_S, until={MigrationStatus.PAUSED, *ENDED})


def changed_once(graph: GraphBackend) -> dict[str, int]:
    """How many items hold each step's change exactly once, and how many anything else."""
    row = graph.read(
        "MATCH (e:Item) RETURN sum(CASE WHEN e.t = e.i * 10 THEN 1 ELSE 0 END) AS t, "
        "sum(CASE WHEN e.t <> e.i AND e.t <> e.i * 10 THEN 1 ELSE 0 END) AS t_wrong, "
        "sum(CASE WHEN e.b = 1 THEN 1 ELSE 0 END) AS b, "
        "sum(CASE WHEN e.b > 1 THEN 1 ELSE 0 END) AS b_wrong").single()
    return {name: int(value or 0) for name, value in row.items()}


def test_a_paused_run_lets_its_batch_in_flight_finish_starts_no_other_and_continues_exactly(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a run with a batch held in flight
    run_id, gate, _ = given_a_run_with_a_batch_held(execution, graph, tmp_path)
    before = committed(graph, Ledger(graph).require_run(run_id))
    # When it is paused, and the batch in flight is let go
    runs.pause(graph, run_id, by="ana")
    Path(f"{gate}.open").touch()
    run = paused(graph, run_id)
    # Then the run is paused with exactly that batch committed since: no other started
    assert run.status is MigrationStatus.PAUSED, run.error_log
    assert committed(graph, run) == before + 1
    assert graph.read("MATCH (e:Item {i: $i}) RETURN e.t AS t", {"i": HELD}).value("t") == (
        HELD * 10)
    step = run.steps[0]
    assert changed_once(graph) == {"t": step.entities_done, "t_wrong": 0, "b": 0, "b_wrong": 0}
    assert step.entities_done < ITEMS
    # and it keeps the migration lock, its lease renewed while it waits
    lock = MigrationLock(graph).info()
    assert lock is not None and lock.run_id == run_id
    wait_until(lambda: (MigrationLock(graph).info() or lock).lease_until > lock.lease_until,
               "the paused run's lease renewed", timeout_s=TIMEOUT_S)
    # When it is resumed
    runs.resume(graph, resolve(load_settings()), run_id)
    run = runs.wait(graph, run_id, timeout_s=TIMEOUT_S)
    # Then it completes, every item changed exactly once by each step
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert changed_once(graph) == {"t": ITEMS, "t_wrong": 0, "b": ITEMS, "b_wrong": 0}
    assert [(s.batches_done, s.entities_done) for s in run.steps] == [(30, ITEMS)] * 2
    assert any(h.startswith("paused@") for h in run.history), run.history


def test_a_cancelled_run_finishes_its_batch_in_flight_then_is_rolled_back_as_cancelled(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a run with a batch held in flight, and the graph before it
    run_id, gate, before = given_a_run_with_a_batch_held(execution, graph, tmp_path)
    # When it is cancelled, and the batch in flight is let go
    runs.cancel(graph, resolve(load_settings()), run_id, by="ana")
    Path(f"{gate}.open").touch()
    run = runs.wait(graph, run_id, timeout_s=TIMEOUT_S)
    # Then it is rolled back, recorded as cancelled by ana: the graph is as before the run,
    # and the chain is without its migration
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    assert "cancelled by ana" in (run.error_log or "")
    assert fingerprint(graph) == before
    assert [a.version for a in Ledger(graph).applied()] == []


def test_a_paused_run_cancelled_with_keep_ends_failed_as_it_is_and_resumes_exactly_cli(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a run with a batch held in flight, paused from the CLI (which waits until it is)
    run_id, gate, _ = given_a_run_with_a_batch_held(execution, graph, tmp_path)
    pausing = subprocess.Popen(
        [*KGM, "pause", run_id], env={**os.environ, **with_transforms(execution)}, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: Ledger(graph).require_run(run_id).request == "pause", "the pause asked")
    Path(f"{gate}.open").touch()
    out, err = pausing.communicate(timeout=TIMEOUT_S)
    assert pausing.returncode == 0, err
    assert f"run {run_id}: paused" in out
    assert f"`kgmigrate resume {run_id}` continues it" in out
    shown = kgm("status", run_id, env=with_transforms(execution), cwd=tmp_path)
    assert "paused (asked by" in shown.stdout and "holds the migration lock" in shown.stdout
    # When it is cancelled with --keep
    kept = kgm("cancel", run_id, "--keep", env=with_transforms(execution), cwd=tmp_path)
    # Then it ends failed as it is, saying how to go on
    assert kept.returncode == 0, kept.stderr
    assert f"run {run_id}: failed" in kept.stdout and "cancelled by" in kept.stdout
    run = Ledger(graph).require_run(run_id)
    assert run.status is MigrationStatus.FAILED
    done = run.steps[0].entities_done
    assert changed_once(graph) == {"t": done, "t_wrong": 0, "b": 0, "b_wrong": 0}
    # and a cancel without --yes off a terminal is refused in one line
    refused = kgm("cancel", run_id, env=with_transforms(execution), cwd=tmp_path,
                  stdin=subprocess.DEVNULL)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    # When it is resumed
    resumed = kgm("resume", run_id, env=with_transforms(execution), cwd=tmp_path)
    # Then it completes, every item changed exactly once by each step
    assert resumed.returncode == 0, resumed.stderr
    assert changed_once(graph) == {"t": ITEMS, "t_wrong": 0, "b": ITEMS, "b_wrong": 0}
