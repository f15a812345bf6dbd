"""`kgmigrate plan --preview N`: a batched step's change on its first N entities, shown before
it is made, with the validation's verdict for each, without changing the graph.

The step's own batch statement fragment runs (the same `apply`, on the same first batch the
planner would cut, with a Python transform's values computed as a worker would) inside
`probe_write`: on Neo4j a transaction that is rolled back. On FalkorDB, which has no
transaction to roll back, a library op (which changes only what it declares) puts it back in
the same statement; any other step runs on a scratch copy of the graph (`GRAPH.COPY`, dropped
afterwards): a copy of the whole graph per step (about 1.4 s per million nodes on this
machine; docs/operations.md). Each step is previewed on the graph as it is now, not after the
steps before it.
"""

from typing import Any

from kgmigrate.compile import BatchPlan, compile_op
from kgmigrate.compile.plans import Touches
from kgmigrate.cypher.dialect import Dialect
from kgmigrate.engine.batch import shown_value
from kgmigrate.engine.batch_statement import batch_params, bound_batch, put_back_touched
from kgmigrate.errors import ProbeTooLarge
from kgmigrate.graph.base import GraphBackend
from kgmigrate.model.records import PreviewedEntity, utc_now
from kgmigrate.model.scope import Scope
from kgmigrate.ops import Operation


def preview_statement(dialect: Dialect, scope: Scope, apply: str,
                      validation: str | None, put_back: Touches | None = None) -> str:
    """The batch's entities, changed by `apply`: each one's key, state before and after, and
    whether it passes the validation (None: the step declares none). `put_back`: all `apply`
    changes, put back before the statement ends (see `diagnosis_statement`)."""
    valid = f"({validation})" if validation else "null"
    shape = "labels(e)" if scope.entity == "node" else "type(e)"
    return (f"{bound_batch(dialect, scope)} {apply} WITH e, kgm_key, kgm_pre, {valid} AS kgm_ok "
            f"WITH e, kgm_key, kgm_pre, kgm_ok, {shape} AS kgm_shape, properties(e) AS kgm_after "
            f"{put_back_touched(put_back)} "
            "RETURN kgm_key AS key, kgm_pre AS before, kgm_shape AS shape, "
            "kgm_after AS after, kgm_ok AS valid")


def preview_step(backend: GraphBackend, op: Operation, entities: int
                 ) -> tuple[list[PreviewedEntity], str | None]:
    """The step's change on its first `entities` entities; or nothing, and why not."""
    plan = compile_op(op, backend.dialect.name)
    if not isinstance(plan, BatchPlan):
        return [], "runs once as a whole (not batched): not previewed"
    first = next(iter(backend.plan_batches(plan.scope, entities)), None)
    if first is None:
        return [], "matches no entities"
    address, _count = first
    computed = plan.values(backend.capture(plan.scope, address)) if plan.values else {}
    params: dict[str, Any] = {
        **batch_params(backend.dialect, plan, address, run_id="preview", step_id="preview",
                       batch_id="preview", worker="preview", at=utc_now().isoformat()),
        **computed}
    statement = preview_statement(backend.dialect, plan.scope, plan.apply, plan.validation,
                                  plan.kept)
    try:
        rows = backend.probe_write(statement, params, undoes_itself=plan.kept is not None
                                   ).records
    except ProbeTooLarge as exc:
        return [], f"not previewed: {exc}"
    return [_entity(row) for row in rows], None


def _entity(row: dict[str, Any]) -> PreviewedEntity:
    before = row["before"] or []
    shape_before, properties_before = (before[0], before[1]) if len(before) >= 2 else (None, {})
    return PreviewedEntity(
        key=row["key"], before=shown_value(properties_before or {}),
        after=shown_value(row["after"] or {}),
        labels_before=_labels(shape_before), labels_after=_labels(row["shape"]),
        valid=row["valid"])


def _labels(shape: object) -> list[str]:
    """A node's labels, sorted; a relationship's type, as a one-item list."""
    if isinstance(shape, list):
        return sorted(str(s) for s in shape)
    return [] if shape is None else [str(shape)]
