"""A rollback next to a live application: another client writes to the very entities the run
changes, before, during and after their batches, and through the rollback. Not one of its
writes may be lost (issue 16, defect 1: a pre-image read apart from the change let a rollback
restore states that predated such writes). Real servers, real workers, both servers."""

import random
import threading
from pathlib import Path

from kgmigrate import runs
from kgmigrate.connect import backend_for
from kgmigrate.graph.base import GraphBackend
from kgmigrate.model.records import MigrationStatus
from kgmigrate.runtime.settings import GraphTarget, load_settings
from tests.conftest import Execution, wait_until
from tests.items import create_in_batch_order
from tests.test_execution import start

ITEMS = 10_000
TWO_STEPS = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=500, steps=[
    ops.batched("Item", "SET e.c = 1"),
    ops.batched("Item", "SET e.d = 1", validation="e.i <= 9950"),
])
"""


class Writer(threading.Thread):
    """Another application: sets `other` on random items, one statement at a time, and
    remembers the last value each item was given (once the server has acknowledged it)."""

    def __init__(self, target: GraphTarget) -> None:
        super().__init__(daemon=True)
        self.target, self.last, self.stop, self.error = target, {}, threading.Event(), None
        self.last: dict[int, int]
        self.error: BaseException | None

    def run(self) -> None:
        rng, n = random.Random(16), 0
        try:
            with backend_for(self.target, load_settings()) as client:
                while not self.stop.is_set():
                    i, n = rng.randint(1, ITEMS), n + 1
                    client.write("MATCH (e:Item {i: $i}) SET e.other = $v", {"i": i, "v": n})
                    self.last[i] = n
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc


def test_a_rollback_keeps_every_write_a_concurrent_client_made(
        execution: Execution, graph: GraphBackend, graph_target: GraphTarget,
        tmp_path: Path) -> None:
    # Given 10,000 items, a run that fails in the last batch of its second step (and rolls
    # itself back), held before that step, and another client writing to the items all along
    create_in_batch_order(graph, ITEMS, "{i: i, w: i / 7.0}")
    graph.write("CREATE INDEX FOR (e:Item) ON (e.i)")
    execution.write_migration("V0001__two_steps.py", TWO_STEPS)
    gate = tmp_path / "gate"
    execution.env.update(KGMIGRATE_HOOKS="tests.gate", KGM_GATE_STEP="2", KGM_GATE=str(gate))
    execution.start_worker(concurrency=2)
    writer = Writer(graph_target)
    writer.start()
    run_id = start(execution, graph)
    # When the client keeps writing after step 1 committed, then the run goes on, fails and
    # rolls back while the client still writes
    wait_until(lambda: Path(f"{gate}.waiting").exists(), "the run held before step 2",
               timeout_s=240)
    written = len(writer.last)
    wait_until(lambda: len(writer.last) >= written + 300, "300 more items written", 120)
    Path(f"{gate}.open").touch()
    run = runs.wait(graph, run_id, timeout_s=300)
    writer.stop.set()
    writer.join(timeout=60)
    assert writer.error is None, writer.error
    # Then every value the client wrote is still there
    assert run.status in (MigrationStatus.ROLLED_BACK, MigrationStatus.ROLLBACK_BLOCKED), (
        run.error_log)
    now = {r["i"]: r["v"] for r in graph.read(
        "MATCH (e:Item) WHERE e.other IS NOT NULL RETURN e.i AS i, e.other AS v").records}
    assert now == writer.last and len(now) >= 300
    # and what the run changed is undone, except on the items the client changed after the
    # run did: those are kept as they are, and listed as conflicts
    kept = {r["k"]: r["i"] for r in graph.read(
        f"MATCH (e:Item) WHERE e.c IS NOT NULL OR e.d IS NOT NULL "
        f"RETURN {graph.dialect.key('e')} AS k, e.i AS i").records}
    conflicts = runs.conflicts(graph, run)
    assert {c.key for c in conflicts} == set(kept)
    assert all(c.reason == "changed by someone else since the batch wrote it"
               for c in conflicts)
    assert set(kept.values()) <= writer.last.keys()
    if run.status is MigrationStatus.ROLLED_BACK:
        assert kept == {}
