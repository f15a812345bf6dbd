"""Step checks and step validations can fail: each op's check is false on the graph before the
op (and true after it, or the run would fail), and a run whose step check or validation fails
after its batches ends with that reason. Real servers, real workers, both servers."""

from pathlib import Path

import pytest

from kgmigrate import ops, runs
from kgmigrate.compile import BatchPlan, compile_op
from kgmigrate.graph.base import GraphBackend
from kgmigrate.model.records import MigrationStatus
from tests.conftest import Execution
from tests.test_execution import start

# Each op on a label (or type) of its own, so one run carries them all. `scope` counts what
# the op will change: the planned count its check must reach.
LIBRARY: list[tuple[str, tuple[object, ...], dict[str, object], str]] = [
    ("add_property", ("P1", "flag", True), {}, "(e:P1)"),
    ("remove_property", ("P2", "old"), {}, "(e:P2) WHERE e.old IS NOT NULL"),
    ("rename_property", ("P3", "a", "b"), {}, "(e:P3) WHERE e.a IS NOT NULL"),
    ("copy_property", ("P4", "a", "b"), {}, "(e:P4) WHERE e.a IS NOT NULL"),
    ("add_label", ("P5", "Tagged"), {}, "(e:P5)"),
    ("remove_label", ("P6", "Gone"), {}, "(e:P6:Gone)"),
    ("rename_label", ("P7", "Q7"), {}, "(e:P7)"),
    ("retype_relationship", ("R8", "S8"), {}, "()-[e:R8]->()"),
    ("change_type", ("P9", "n"), {"to": "integer"}, "(e:P9)"),
]
# transform_property and invert_relationship have no check: a transformed value, an inverted
# relationship look like any other (docs/validation.md)


def _op(name: str, args: tuple[object, ...], kwargs: dict[str, object]) -> ops.Operation:
    return getattr(ops, name)(*args, **kwargs)  # type: ignore[no-any-return]


def _call(name: str, args: tuple[object, ...], kwargs: dict[str, object]) -> str:
    """The op as a migration file spells it."""
    spelled = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"ops.{name}({', '.join(spelled)})"


GRAPH = [
    "UNWIND range(1, 30) AS i CREATE (:P1 {i: i}), (:P2 {old: i}), (:P3 {a: i}), "
    "(:P4 {a: i}), (:P5 {i: i}), (:P6:Gone {i: i}), (:P7 {i: i}), (:P9 {n: toString(i)})",
    "UNWIND range(1, 30) AS i CREATE (:N8 {i: i})-[:R8 {i: i}]->(:N8 {i: -i})",
]
MIGRATION = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=10, steps=[{steps}])
"""


def check_of(graph: GraphBackend, op: ops.Operation) -> str:
    plan = compile_op(op, graph.dialect.name)
    assert isinstance(plan, BatchPlan) and plan.check, op
    return plan.check


def test_every_library_check_is_false_before_its_op_and_the_run_proves_it_true_after(
        execution: Execution, graph: GraphBackend) -> None:
    # Given each op's entities in their state before the op
    for statement in GRAPH:
        graph.write(statement)
    # Then each op's check, asked for the 30 entities it will change, is false now
    for name, args, kwargs, scope in LIBRARY:
        op = _op(name, args, kwargs)
        assert graph.read(f"MATCH {scope} RETURN count(e) AS n").value("n") == 30, name
        valid = graph.read(check_of(graph, op), {**compile_op(op, graph.dialect.name).params,
                                                 "kgm_planned": 30}).value("valid")
        assert valid is False, f"{name}: its check holds before the op ran"
    # When all of them run (a step's check is asked after its batches, and fails the run)
    steps = ", ".join(_call(name, args, kwargs) for name, args, kwargs, _ in LIBRARY)
    execution.write_migration("V0001__library.py", MIGRATION.format(steps=steps))
    execution.start_worker(concurrency=2)
    run = runs.wait(graph, start(execution, graph), timeout_s=240)
    # Then every check held after its op
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert [s.entities_done for s in run.steps] == [30] * len(LIBRARY)
    assert all(s.validation == "passed" for s in run.steps), [s.validation for s in run.steps]


@pytest.mark.parametrize(("step", "sabotage", "reason"), [
    # a retype has no per-entity validation: its step check is what catches an R8 left over
    ('ops.retype_relationship("R8", "S8")',
     "MATCH (a)-[r:S8]->(b) CREATE (a)-[:R8 {i: r.i}]->(b) DELETE r",
     "the step's check failed: OPTIONAL MATCH (s)-[e:`R8`]->(t)"),
    ('ops.batched("N8", "SET e.v = 1", validation="e.v = 1")',
     "MATCH (e:N8) WHERE e.v = 1 SET e.v = 0", "validation `e.v = 1` fails for 10 entities"),
], ids=["step-check", "step-validation"])
def test_a_step_whose_check_or_validation_fails_after_its_batches_fails_the_run(
        execution: Execution, graph: GraphBackend, tmp_path: Path, step: str, sabotage: str,
        reason: str) -> None:
    # Given a step over 50 relationships or 100 nodes in batches of 10, and a client undoing what
    # the first batch did right after it commits (a state the step's proof must reject)
    graph.write("UNWIND range(1, 50) AS i CREATE (:N8 {i: i})-[:R8 {i: i}]->(:N8 {i: -i})")
    execution.write_migration("V0001__step.py", MIGRATION.format(steps=step))
    execution.env.update({"KGMIGRATE_HOOKS": "tests.sabotage", "KGM_SABOTAGE": sabotage,
                          "KGM_SABOTAGE_MARKER": str(tmp_path / "sabotaged")})
    execution.start_worker()
    # When the step's batches all commit
    run = runs.wait(graph, start(execution, graph), timeout_s=180)
    # Then the step's proof fails the run with its reason
    assert (tmp_path / "sabotaged").exists()
    assert run.steps[0].status is MigrationStatus.FAILED
    assert run.steps[0].validation == "failed"
    assert reason in (run.error_log or ""), run.error_log
    # and the rollback restores what the step did, keeping the 10 entities the other client
    # changed since (as conflicts, never overwritten)
    assert run.status is MigrationStatus.ROLLBACK_BLOCKED, run.error_log
    assert "rollback left 10 conflicts" in (run.error_log or "")
    # (relationships the step created and the client deleted; nodes the client changed)
    kept = runs.conflicts(graph, run)
    why = "deleted by someone else" if "retype" in step else "changed by someone else"
    assert len(kept) == 10 and all(why in c.reason for c in kept), kept
