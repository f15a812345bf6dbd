"""A control task whose worker dies while it sends a launch (the batches of the next step, or a
rollback's restores): Celery stores a chord's size just before its last task, so a chord cut
short never calls back. The control task is delivered again, finds its decision already in the
ledger, and must carry the run on from there instead of stopping. Before the fix both runs
stayed `in_progress` / `rolling_back` for good. Both servers, real workers, SIGKILL."""

from pathlib import Path

from kgmigrate import runs
from kgmigrate.fingerprint import fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.model.records import MigrationStatus, RunRecord
from kgmigrate.runtime.app import APPLY_BATCH, RESTORE_BATCH, redelivery_bound_s
from tests.conftest import Execution, wait_until
from tests.items import create_in_batch_order
from tests.test_execution import start

TWO_STEPS = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=100, steps=[
    ops.batched("Item", "SET e.a = coalesce(e.a, 0) + 1"),
    ops.batched("Item", "SET e.b = coalesce(e.b, 0) + 1", validation="e.i <= {last_valid}"),
])
"""
ITEMS = 2000
LOAD_MARGIN = 4  # room for a loaded machine (two suites at once)


def run_with_its_launch_cut_short(execution: Execution, graph: GraphBackend, tmp_path: Path, *,
                                  last_valid: int, task: str, step: int | None = None
                                  ) -> RunRecord:
    """The worker that sends `task`'s launch holds after sending 3 of its tasks
    (tests/hold_publish.py), is SIGKILLed there, and another worker starts: the run, ended."""
    execution.write_migration("V0001__two.py", TWO_STEPS.format(last_valid=last_valid))
    held = tmp_path / "held"
    execution.env.update(KGMIGRATE_HOOKS="tests.hold_publish", KGM_HOLD_TASK=task,
                         KGM_HOLD_NTH="3", KGM_HOLD_FIRST=str(held),
                         KGM_GATE=str(tmp_path / "gate"))
    if step is not None:
        execution.env["KGM_HOLD_STEP"] = str(step)
    victim = execution.start_worker(concurrency=2)
    run_id = start(execution, graph)
    wait_until(lambda: held.exists() and held.read_text(), "a launch held mid-publish",
               timeout_s=240)
    assert int(held.read_text()) == victim.pid
    execution.kill(victim)
    execution.start_worker(concurrency=2)
    bound = redelivery_bound_s(int(execution.env["KGMIGRATE_VISIBILITY_TIMEOUT_S"]))
    return runs.wait(graph, run_id, timeout_s=LOAD_MARGIN * bound + 120)


def test_a_step_launch_cut_short_by_a_dead_worker_still_runs_every_batch_once(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a run whose step 2 is launched by a worker that holds after sending 3 of its
    # batches, when that worker dies there and another one starts
    create_in_batch_order(graph, ITEMS, "{i: i}")
    run = run_with_its_launch_cut_short(execution, graph, tmp_path, last_valid=2000,
                                        task=APPLY_BATCH, step=2)
    # Then the launch is carried on: the run completes, every item changed exactly once
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert graph.read("MATCH (e:Item) RETURN e.a AS a, e.b AS b, count(*) AS n").records == [
        {"a": 1, "b": 1, "n": 2000}]


def test_a_rollback_launch_cut_short_by_a_dead_worker_still_restores_everything(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a run that fails in its last batch of step 2, whose automatic rollback is launched
    # by a worker that holds after sending 3 of the restores, when that worker dies there and
    # another one starts
    create_in_batch_order(graph, ITEMS, "{i: i}")
    before = fingerprint(graph)
    run = run_with_its_launch_cut_short(execution, graph, tmp_path, last_valid=1950,
                                        task=RESTORE_BATCH)
    # Then the rollback is carried on to the end: the graph is exactly as before the run
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    assert fingerprint(graph) == before
