"""The operations migrations are built from, in a compact functional form for migration files:

    from kgmigrate import ops
    steps = [ops.cypher("CREATE INDEX ..."), ops.batched("Compound", "SET e.reviewed = false")]
"""

from typing import Any, Literal

from kgmigrate.ops.base import IrreversibleOperationError, Operation
from kgmigrate.ops.cypher import BatchedCypher, RunCypher


def cypher(statement: str, *, down: str | None = None,
           validation: str | None = None) -> RunCypher:
    """One statement, run once."""
    return RunCypher(statement, down, validation)


def batched(label: str | None = None, apply: str = "", *, rel_type: str | None = None,
            where: str | None = None, down: str | None = None, validation: str | None = None,
            creates: str | None = None, deletes: bool = False, down_where: str | None = None,
            down_on: str | None = None, **params: Any) -> BatchedCypher:
    """`apply` run on every node with `label` (or relationship of `rel_type`), batch by batch;
    the entity is `e` in `apply`, `where`, and `validation`.

    For the undo log: `creates` names the variable `apply` binds to the one entity it creates
    per `e`, `deletes` says it deletes `e` (a relationship retype does both). `down_on` and
    `down_where` are the scope of `down` when `apply` moves entities out of this one (a retype:
    `down_on` is the new type; a filled-in property: `down_where` selects the filled ones)."""
    if (label is None) == (rel_type is None):
        raise ValueError("give exactly one of label or rel_type")
    entity: Literal["node", "relationship"] = "node" if label is not None else "relationship"
    name = label if label is not None else rel_type
    assert name is not None
    return BatchedCypher(entity, name, apply, where, params, down, validation, creates=creates,
                         deletes=deletes, down_where=down_where, down_on=down_on)


KINDS: dict[str, type[Operation]] = {RunCypher.kind: RunCypher, BatchedCypher.kind: BatchedCypher}


def from_spec(kind: str, spec: dict[str, Any]) -> Operation:
    """Rebuild an operation from what the ledger recorded (workers receive no code)."""
    try:
        return KINDS[kind](**spec)
    except KeyError:
        raise ValueError(f"unknown operation kind {kind!r}") from None


__all__ = ["KINDS", "BatchedCypher", "IrreversibleOperationError", "Operation", "RunCypher",
           "batched", "cypher", "from_spec"]
