"""Rollback end to end: real worker processes, the real embedded server, a real undo log.

The proof that a rollback restored the exact state is the graph fingerprint taken before the
run (exact floats, labels, relationship types and ends).
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from kgmigrate import runs
from kgmigrate.connect import resolve
from kgmigrate.errors import KgmError
from kgmigrate.fingerprint import fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import MigrationStatus, RunRecord
from kgmigrate.model.scope import Scope
from kgmigrate.runtime.settings import load_settings
from tests.conftest import Execution, link_items
from tests.items import create_in_batch_order
from tests.test_cli import KGM
from tests.test_execution import start, wait_for
from tests.test_lock import wait_until

NODES = 100_000
# Three steps over 100k nodes and 50k relationships: an in-place property change, a
# relationship retype (create + delete), and a float transform whose validation fails for the
# last few nodes (a late batch).
THREE_STEPS = """
from kgmigrate import Migration, ops

migration = Migration(
    author="test",
    batch_size={batch},
    steps=[
        ops.batched("Item", "SET e.c1 = coalesce(e.c1, 0) + 1, e.tag = 'migrated' REMOVE e.old"),
        ops.batched(rel_type="NEXT", apply="CREATE (s)-[r:FOLLOWS]->(t) SET r = properties(e) "
                    "DELETE e", creates="r", deletes=True),
        ops.batched("Item", "SET e.x = e.x * 3.0, e.l = [e.x, e.x / 7.0]",
                    validation="e.i <= {last_valid}"),
    ],
)
"""


def load_graph(graph: GraphBackend) -> None:
    # floats that do not survive a 15-digit round trip, lists, a property the migration removes
    create_in_batch_order(graph, NODES, "{i: i, x: i / 7.0 + 0.1, old: 'o', l: [i, 0.1 + 0.2]}")
    link_items(graph, 50_000, "{w: k / 3.0}")
    graph.write("UNWIND range(1, 100) AS i CREATE (:Other {i: i, v: 'before'})")


def migration(execution: Execution, *, batch: int = 5000, last_valid: int = NODES - 20) -> None:
    execution.write_migration("V0001__three_steps.py",
                              THREE_STEPS.format(batch=batch, last_valid=last_valid))


def assert_rolled_back(run: RunRecord, graph: GraphBackend) -> None:
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    statuses = [h.split("@")[0] for h in run.history]
    assert "rolling_back" in statuses
    assert Ledger(graph).applied() == []


@pytest.mark.timeout(600)  # its run took 283 s on Neo4j beside a second copy of the suite
def test_a_late_validation_failure_rolls_back_to_the_exact_fingerprint(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a graph and its fingerprint
    load_graph(graph)
    before = fingerprint(graph)
    migration(execution)
    execution.start_worker(concurrency=2)
    # When the last step fails validation in its last batch
    run = runs.wait(graph, start(execution, graph), timeout_s=540)
    # Then the run rolled back on its own and the graph is exactly as it was
    assert_rolled_back(run, graph)
    assert "step 3" in (run.error_log or "")
    assert "failed validation" in (run.error_log or "")
    assert fingerprint(graph) == before
    # and the restore batches are in the ledger: one per committed batch of each step
    ledger = Ledger(graph)
    committed = [len([b for b in ledger.batches(s.id) if b.status.value == "completed"])
                 for s in run.steps]
    restored = [len(ledger.restores(s.id)) for s in run.steps]
    assert committed == restored == [20, 10, 19]
    assert run.counters["rollback_restored"] == NODES + 50_000 + 19 * 5000
    assert run.counters["rollback_conflicts"] == 0


def kgm(execution: Execution, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KGM, *args], env={**os.environ, **execution.env}, text=True,
                          capture_output=True, timeout=300, check=False)


def test_rolling_back_a_completed_or_unknown_run_is_a_one_line_error(
        execution: Execution, graph: GraphBackend) -> None:
    graph.write("UNWIND range(1, 10) AS i CREATE (:Item {i: i, x: 0.5, old: 'o', l: []})")
    migration(execution, last_valid=NODES)
    execution.start_worker()
    run = runs.wait(graph, start(execution, graph), timeout_s=120)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    done = kgm(execution, "rollback", run.id)
    assert (done.returncode, done.stderr.strip()) == (1, (
        f"kgmigrate: error: run {run.id} completed; revert it from its undo log with "
        f"`kgmigrate revert {run.id}`, or undo its migrations by their inverses with "
        "`kgmigrate downgrade TARGET`"))
    unknown = kgm(execution, "rollback", "run_nope")
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "kgmigrate: error: no run run_nope")


def restores_done(graph: GraphBackend, run: RunRecord) -> int:
    return sum(len(Ledger(graph).restores(s.id)) for s in run.steps)


@pytest.mark.timeout(900)  # its bounded waits add up to 780 s
def test_a_worker_killed_during_the_rollback_still_restores_the_exact_fingerprint(
        execution: Execution, graph: GraphBackend) -> None:
    load_graph(graph)
    before = fingerprint(graph)
    migration(execution, batch=1000)
    victim = execution.start_worker(concurrency=2)
    run_id = start(execution, graph)
    # When the worker is SIGKILLed while the automatic rollback is under way
    # (three steps over 250k entities: 4 to 7 minutes on Neo4j beside two other Neo4j servers)
    wait_for(graph, run_id, lambda r: r.status is MigrationStatus.ROLLING_BACK
             and restores_done(graph, r) >= 10, timeout_s=480)
    execution.kill(victim)
    assert Ledger(graph).run(run_id).status is MigrationStatus.ROLLING_BACK  # type: ignore[union-attr]
    execution.start_worker(concurrency=2)
    # Then its unacknowledged restore tasks are redelivered and the rollback completes exactly
    run = runs.wait(graph, run_id, timeout_s=300)
    assert_rolled_back(run, graph)
    assert fingerprint(graph) == before


@pytest.mark.timeout(600)  # its bounded waits add up to more than 300 s
def test_other_writes_survive_and_a_touched_entity_changed_since_is_a_kept_conflict(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a run that will fail, with the automatic rollback off so the test decides when
    load_graph(graph)
    migration(execution, batch=5000)
    execution.env["KGMIGRATE_AUTO_ROLLBACK"] = "false"
    gate = tmp_path / "gate"  # holds the run before step 2 (tests/gate.py)
    execution.env.update(KGMIGRATE_HOOKS="tests.gate", KGM_GATE_STEP="2", KGM_GATE=str(gate))
    execution.start_worker(concurrency=2)
    run_id = start(execution, graph)
    # When, during the run (step 1 done, step 2 not begun), another client writes to entities
    # the run never touches and to one Item step 1 already changed
    wait_until(lambda: Path(f"{gate}.waiting").exists(), "the run held before step 2",
               timeout_s=240)  # step 1 of 100k nodes: over 60 s on Neo4j under load
    assert Ledger(graph).run(run_id).steps[0].status is MigrationStatus.COMPLETED  # type: ignore[union-attr]
    graph.write("MATCH (o:Other) WHERE o.i <= 10 SET o.v = 'during'")
    graph.write("CREATE (:Other {i: 101, v: 'new'})")
    graph.write("MATCH (e:Item {i: 5}) SET e.note = 'app'")
    Path(f"{gate}.open").touch()
    run = runs.wait(graph, run_id, timeout_s=240)
    assert run.status is MigrationStatus.FAILED, run.error_log
    # (a new upgrade would apply step 1 again on top: refused until this run is dealt with)
    with pytest.raises(KgmError, match=f"run {run_id} failed and is neither resumed nor "
                                       "rolled back"):
        start(execution, graph)
    # and the failed run is rolled back by hand
    runs.rollback(graph, resolve(load_settings()), run_id)
    run = runs.wait(graph, run_id, timeout_s=240)
    # Then the other client's writes survived
    others = {r["i"]: r["v"] for r in graph.read("MATCH (o:Other) RETURN o.i AS i, o.v AS v"
                                                     ).records}
    assert others == {**dict.fromkeys(range(1, 11), "during"),
                      **dict.fromkeys(range(11, 101), "before"), 101: "new"}
    # and the Item changed since step 1 wrote it is a conflict: reported, kept as it is
    assert run.status is MigrationStatus.ROLLBACK_BLOCKED
    assert "1 conflicts" in (run.error_log or "")
    conflicts = runs.conflicts(graph, run)
    item5 = graph.read(f"MATCH (e:Item {{i: 5}}) RETURN {graph.dialect.key('e')} AS k, "
                       "properties(e) AS p").single()
    assert [(c.step, c.key) for c in conflicts] == [(1, item5["k"])]
    assert "changed by someone else" in conflicts[0].reason
    assert item5["p"]["note"] == "app" and item5["p"]["c1"] == 1
    # while every other Item is restored
    assert graph.read("MATCH (e:Item) WHERE e.c1 IS NOT NULL OR e.tag IS NOT NULL "
                         "RETURN collect(e.i) AS changed").value("changed") == [5]
    assert graph.read("MATCH ()-[r:FOLLOWS]->() RETURN count(r) AS n").value("n") == 0
    assert graph.read("MATCH ()-[r:NEXT]->() RETURN count(r) AS n").value("n") == 50_000
    with pytest.raises(KgmError, match=f"run {run_id} is rollback_blocked: finish its "
                                       "rollback first"):
        start(execution, graph)
    # and the CLI shows it
    shown = kgm(execution, "status", run_id, "--json")
    assert [c["key"] for c in json.loads(shown.stdout)["conflicts"]] == [item5["k"]]
    # When the rollback is forced, from the CLI
    forced = kgm(execution, "rollback", run_id, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert f"run {run_id}: rolled_back" in forced.stdout
    run = runs.wait(graph, run_id, timeout_s=10)
    # Then the conflicting Item is restored too, and the run is rolled back
    assert_rolled_back(run, graph)
    scope = Scope.nodes("Item", "e.i = 5")
    [(address, _)] = list(graph.plan_batches(scope, 10))
    [item5] = graph.capture(scope, address)  # exact floats, on FalkorDB too
    assert item5["p"] == {"i": 5, "x": 5 / 7.0 + 0.1, "old": "o", "l": [5, 0.1 + 0.2]}
