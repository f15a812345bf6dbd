"""What the library ops' renderings share: the batched form over an op's scope, and step
proofs (a read statement run once after the last batch)."""

from typing import Any

from kgmigrate.cypher.dialect import pattern
from kgmigrate.model.scope import EntityKind
from kgmigrate.ops import BatchedCypher
from kgmigrate.ops.library import OnEntities, all_of


def proof(entity: EntityKind, name: str, where: str | None, *, none: str | None = None,
          at_least: str | None = None, moved_to: str | None = None) -> str:
    """A step check over the entities `pattern(entity, name)` with `where`: none of them
    meets `none`, and at least the planned number ($kgm_planned) meet `at_least` (entities
    that met it before the step count too; with `moved_to`, counted under that label or type
    instead). OPTIONAL MATCH keeps the one row when nothing matches; two aggregations, because
    FalkorDB returns null for an expression mixing a grouping key and an aggregate."""
    parts, valid = [], []
    if none is not None:
        parts.append(f"OPTIONAL MATCH {pattern(entity, name)}{_where(where, none)} "
                     "WITH count(e) AS remaining")
        valid.append("remaining = 0")
    if at_least is not None:
        carried = "remaining, " if none is not None else ""
        parts.append(f"OPTIONAL MATCH {pattern(entity, moved_to or name)}"
                     f"{_where(where, at_least)} WITH {carried}count(e) AS made")
        valid.append("made >= $kgm_planned")
    return f"{' '.join(parts)} RETURN {' AND '.join(valid)} AS valid"


def _where(*parts: str | None) -> str:
    condition = all_of(*parts)
    return f" WHERE {condition}" if condition else ""


def proof_on(op: OnEntities, *, none: str | None = None, at_least: str | None = None,
             moved_to: str | None = None) -> str:
    """`proof` over the op's scope."""
    return proof(op.entity, op.scope_name, op.where, none=none, at_least=at_least,
                 moved_to=moved_to)


def batched_on(op: OnEntities, apply: str, *, where: str | None = None,
               validation: str | None = None, check: str | None = None,
               values: dict[str, Any] | None = None, creates: str | None = None,
               deletes: bool = False) -> BatchedCypher:
    """`apply` over the op's scope narrowed by `where`, with the op's parameters and `values`."""
    return BatchedCypher(op.entity, op.scope_name, apply, all_of(op.where, where),
                         {**op.params, **(values or {})}, validation=validation,
                         check=check, creates=creates, deletes=deletes)
