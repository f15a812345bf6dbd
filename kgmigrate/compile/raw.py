"""The raw ops plan as they are: a batched Cypher step, a statement, an index."""

from kgmigrate.compile.plans import BatchPlan, SchemaPlan, StatementPlan
from kgmigrate.compile.registry import plan_for
from kgmigrate.cypher.text import needs_implicit_transaction
from kgmigrate.ops import BatchedCypher, CreateIndex, RunCypher


@plan_for(BatchedCypher)
def batched_cypher(op: BatchedCypher, dialect: str) -> BatchPlan:
    return BatchPlan(op.scope(), op.apply, validation=op.validation, check=op.check,
                     creates=op.creates, deletes=op.deletes)


@plan_for(RunCypher)
def run_cypher(op: RunCypher, dialect: str) -> StatementPlan:
    undo = op.undo_statements
    implicit = {s for s in [op.statement, *(undo or [])] if needs_implicit_transaction(s)}
    return StatementPlan(op.statement, op.description, validation=op.validation,
                         undo=tuple(undo) if undo is not None else None,
                         implicit=frozenset(implicit))


@plan_for(CreateIndex)
def create_index(op: CreateIndex, dialect: str) -> SchemaPlan:
    return SchemaPlan(op.index_spec(), drop=op.drop)
