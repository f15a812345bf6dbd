"""Liveness (issue 16, defect 5): a batch whose worker died comes back within the bound
kgmigrate states (`runtime.app.redelivery_bound_s`: the visibility timeout plus the broker's
sweep), to a worker that was already running, and is applied once. It used to come back only
when a worker started, or after the 3 h default visibility timeout. Both servers."""

import json
from datetime import UTC, datetime
from pathlib import Path

from kgmigrate import runs
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import MigrationStatus
from kgmigrate.runtime.app import redelivery_bound_s
from tests.conftest import Execution, wait_until
from tests.test_cli import runner
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


def test_status_names_a_batch_a_dead_worker_holds_and_when_it_comes_back(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    """Issue 17, item 5: a run whose worker died showed its steps `in_progress` and nothing
    about the batch that worker held, which no ledger record names until it commits."""
    # Given a run whose first batch is held by its only worker
    graph.write("UNWIND range(1, 2000) AS i CREATE (:Item {i: i})")
    execution.write_migration("V0001__count.py", COUNT)
    held = tmp_path / "held"
    execution.env.update(KGMIGRATE_HOOKS="tests.hold_first", KGM_HOLD_FIRST=str(held),
                         KGM_GATE=str(tmp_path / "gate"))
    holder = execution.start_worker()
    execution.wait_ready(1)
    run_id = start(execution, graph)
    wait_until(lambda: held.exists() and held.read_text(), "batch 1 held by the worker")
    # When that worker dies whole, and no worker is left to take the batch back
    execution.kill(holder)
    kgm = runner(execution.env, tmp_path)
    # Then `status` names the batch, when it was taken and when the broker gives it back
    shown = json.loads(kgm("status", run_id, "--json").stdout)
    [task] = shown["held_by_dead_workers"]
    assert (task["task"], task["step"], task["version"], task["batch"]) == (
        "workers.apply_batch", 1, "V0001", 1)
    taken, back = (datetime.fromisoformat(task[k]) for k in ("taken_at", "back_by"))
    bound = redelivery_bound_s(int(execution.env["KGMIGRATE_VISIBILITY_TIMEOUT_S"]))
    assert (back - taken).total_seconds() == bound
    assert taken <= datetime.now(UTC)
    text = kgm("status", run_id).stdout
    assert ("  held by a worker that no longer answers (the broker gives each back to a "
            "running worker by the time shown: KGMIGRATE_VISIBILITY_TIMEOUT_S after it was "
            "taken, and its sweep):") in text
    assert (f"    batch 1 of step 1 (V0001): taken {taken:%H:%M:%S} UTC, back by "
            f"{back:%H:%M:%S} UTC") in text
    assert (f"  not to wait: `kgmigrate resume {run_id}` sends its batches not yet committed "
            "again now (what has committed is not done twice)") in text
    # When a worker starts (then the broker gives the batch back to it: it was taken more
    # than the visibility timeout ago, or will have been)
    execution.start_worker()
    # Then the run completes, every item changed once, and nothing is held any more
    run = runs.wait(graph, run_id, timeout_s=LOAD_MARGIN * bound)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert graph.read("MATCH (e:Item) RETURN e.c AS c, count(*) AS n").records == [
        {"c": 1, "n": 2000}]
    assert json.loads(kgm("status", run_id, "--json").stdout)["held_by_dead_workers"] == []
