"""What the library ops share: rendering to the two execution forms, and the step proofs.

Each op is a small frozen dataclass: it validates its names when built, says what it is
(`spec`, JSON in the ledger) and what undoes it (`reverse()`), and `render(dialect)`s itself to
the form the workers execute: a `BatchedCypher` (scope, apply, per-entity validation, step
check, what the undo log must know) or a `RunCypher`. Names pass through
`kgmigrate.cypher.identifiers`; values are parameters, never text. The ops themselves live in
`properties`, `structure`, `transforms` and `schema`.

Reversal: an op whose inverse needs data it destroyed (remove a property or a label) has none;
a *failed* run of it is still rolled back exactly from the undo log, and a snapshot covers a
completed one.
"""

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, NoReturn

from kgmigrate.cypher import identifiers as ident
from kgmigrate.cypher.identifiers import labelled, typed
from kgmigrate.errors import KgmError
from kgmigrate.model.scope import Scope
from kgmigrate.ops.base import IrreversibleOperationError, Operation
from kgmigrate.ops.cypher import BatchedCypher, RunCypher, check_params

Rendered = BatchedCypher | RunCypher
DIALECTS = ("falkordb", "neo4j")
# what scope() renders with: an op's scope never depends on the dialect
_ANY_DIALECT = "neo4j"


def all_of(*parts: str | None) -> str | None:
    """The parts that say something, parenthesized and joined (None when none do)."""
    present = [f"({p})" for p in parts if p and p != "true"]
    return " AND ".join(present) or None


def pattern(entity: str, name: str) -> str:
    """The pattern that binds scope entities as the batch statement does (`s`, `t` too)."""
    if entity == "node":
        return f"({labelled('e', name)})"
    return f"(s)-[{typed('e', name)}]->(t)"


def proof(entity: str, name: str, where: str | None, *, none: str | None = None,
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


def require_dialect(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise KgmError(f"unknown dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
    return dialect


UNDO_LOG_ONLY = ("a failed run is rolled back from its undo log, a completed one needs a "
                 "snapshot (Migration(snapshot=True))")


class LibraryOp(Operation):
    """An op of the library: rendered, per dialect, to BatchedCypher or RunCypher."""

    kind: ClassVar[str]

    def irreversible(self, why: str) -> NoReturn:
        raise IrreversibleOperationError(f"{self.description}: {why}")

    def not_itself(self, old: str, new: str) -> None:
        if old == new:
            raise KgmError(f"{self.kind}: {old!r} to itself")

    def render(self, dialect: str) -> Rendered:
        raise NotImplementedError

    def scope(self) -> Scope | None:
        return self.render(_ANY_DIALECT).scope()

    def spec(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True)
class OnEntities(LibraryOp):
    """Nodes with `label` or relationships of `rel_type`, narrowed by `where` (Cypher over `e`,
    and a relationship's ends `s` and `t`, with values in `params`)."""

    label: str | None = None
    rel_type: str | None = None
    where: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    # the op's own name fields, each validated as that kind of identifier
    names: ClassVar[tuple[tuple[str, ident.Kind], ...]] = ()
    # the one kind of entity the op works on, if it is not for both
    only: ClassVar[Literal["node", "relationship"] | None] = None

    def __post_init__(self) -> None:
        if (self.label is None) == (self.rel_type is None):
            raise KgmError(f"{self.kind}: give exactly one of label or rel_type")
        if self.only is not None and self.entity != self.only:
            given = "label=..." if self.only == "node" else "rel_type=..."
            raise KgmError(f"{self.kind} works on {self.only}s (give {given})")
        if self.label is not None:
            ident.validate(self.label, ident.Kind.LABEL)
        else:
            ident.validate(self.rel_type, ident.Kind.REL_TYPE)
        for name, kind in self.names:
            ident.validate(getattr(self, name), kind)
        check_params(self.params)

    @property
    def entity(self) -> Literal["node", "relationship"]:
        return "node" if self.label is not None else "relationship"

    @property
    def scope_name(self) -> str:
        name = self.label if self.label is not None else self.rel_type
        assert name is not None
        return name

    @property
    def target(self) -> str:
        return f":{self.label}" if self.label is not None else f"[:{self.rel_type}]"

    def on_scope(self) -> dict[str, Any]:
        """The scope fields, for building this op's inverse on the same entities."""
        return {"label": self.label, "rel_type": self.rel_type, "where": self.where,
                "params": dict(self.params)}

    def proof(self, *, none: str | None = None, at_least: str | None = None,
              moved_to: str | None = None) -> str:
        """`proof` over this op's scope."""
        return proof(self.entity, self.scope_name, self.where, none=none, at_least=at_least,
                     moved_to=moved_to)

    def batched(self, apply: str, *, where: str | None = None, validation: str | None = None,
                check: str | None = None, values: dict[str, Any] | None = None,
                creates: str | None = None, deletes: bool = False) -> BatchedCypher:
        return BatchedCypher(self.entity, self.scope_name, apply, all_of(self.where, where),
                             {**self.params, **(values or {})}, validation=validation,
                             check=check, creates=creates, deletes=deletes)


def executable(op: Operation, dialect: str) -> Operation:
    """What the workers run for `op` on `dialect`: a library op's rendering; index ops and raw
    ops as they are."""
    return op.render(require_dialect(dialect)) if isinstance(op, LibraryOp) else op
