"""Liveness (issue 16, defect 5): a batch whose worker died comes back within the bound
kgmigrate states (`runtime.app.redelivery_bound_s`: the visibility timeout plus the broker's
sweep), to a worker that was already running, and is applied once. It used to come back only
when a worker started, or after the 3 h default visibility timeout. Both servers."""

from pathlib import Path

from kgmigrate import runs
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import MigrationStatus
from kgmigrate.runtime.app import redelivery_bound_s
from tests.conftest import Execution, wait_until
from tests.test_execution import start

COUNT = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=200, steps=[
    ops.batched("Item", "SET e.c = coalesce(e.c, 0) + 1"),
])
"""
LOAD_MARGIN = 4  # the bound is asserted with room for a loaded machine (two suites at once)


def test_a_batch_whose_worker_died_comes_back_within_the_stated_bound(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given two running workers, and a run whose first batch is held by whichever took it
    graph.write("UNWIND range(1, 2000) AS i CREATE (:Item {i: i})")
    execution.write_migration("V0001__count.py", COUNT)
    held = tmp_path / "held"
    execution.env.update(KGMIGRATE_HOOKS="tests.hold_first", KGM_HOLD_FIRST=str(held),
                         KGM_GATE=str(tmp_path / "gate"))
    workers = [execution.start_worker(), execution.start_worker()]
    execution.wait_ready(2)
    run_id = start(execution, graph)
    wait_until(lambda: held.exists() and held.read_text(), "batch 1 held by a worker")
    [holder] = [w for w in workers if w.pid == int(held.read_text())]
    [survivor] = [w for w in workers if w is not holder]
    # When that worker dies whole (SIGKILL: no ack, no goodbye), and no worker starts after
    execution.kill(holder)
    # Then the batch comes back to the running worker within the bound, and the run completes
    # with every item changed exactly once
    bound = redelivery_bound_s(float(execution.env["KGMIGRATE_VISIBILITY_TIMEOUT_S"]))
    run = runs.wait(graph, run_id, timeout_s=LOAD_MARGIN * bound)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert graph.read("MATCH (e:Item) RETURN e.c AS c, count(*) AS n").records == [
        {"c": 1, "n": 2000}]
    assert [b.attempts for b in Ledger(graph).batches(run.steps[0].id) if b.seq == 1] == [1]
    assert holder.poll() is not None and survivor.poll() is None  # no worker was started
