"""What the library ops share: names checked when built, the scope they work on.

Each op is a small frozen dataclass, plain data: it validates its names when built, says what
it is (`spec`, JSON in the ledger) and what undoes it (`reverse()`). How it runs is registered
apart, per op, in `kgmigrate.compile` (as Alembic's `toimpl`). Names pass through
`kgmigrate.cypher.identifiers`; values are parameters, never text. The ops themselves live in
`properties`, `structure`, `transforms` and `schema`.

Reversal: an op whose inverse needs data it destroyed (remove a property or a label) has none;
a *failed* run of it is still rolled back exactly from the undo log, and a snapshot covers a
completed one.
"""

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, NoReturn

from kgmigrate.cypher import identifiers as ident
from kgmigrate.errors import KgmError
from kgmigrate.model.scope import Scope
from kgmigrate.ops.base import IrreversibleOperationError, Operation
from kgmigrate.ops.cypher import check_params


def all_of(*parts: str | None) -> str | None:
    """The parts that say something, parenthesized and joined (None when none do)."""
    present = [f"({p})" for p in parts if p and p != "true"]
    return " AND ".join(present) or None


UNDO_LOG_ONLY = ("a failed run is rolled back from its undo log, a completed one is reverted "
                 "from it (`kgmigrate revert RUN`, the last run applied, while its log is "
                 "kept) or restored from a snapshot (Migration(snapshot=True))")


class LibraryOp(Operation):
    """An op of the library: compiled, per dialect, through a BatchedCypher or RunCypher."""

    kind: ClassVar[str]

    def irreversible(self, why: str) -> NoReturn:
        raise IrreversibleOperationError(f"{self.description}: {why}")

    def not_itself(self, old: str, new: str) -> None:
        if old == new:
            raise KgmError(f"{self.kind}: {old!r} to itself")

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

    def scope(self) -> Scope:
        """As declared; a rendering may narrow it (to the entities the op still has to change)."""
        return Scope(self.entity, self.scope_name, self.where, dict(self.params))

    @property
    def target(self) -> str:
        return f":{self.label}" if self.label is not None else f"[:{self.rel_type}]"

    def on_scope(self) -> dict[str, Any]:
        """The scope fields, for building this op's inverse on the same entities."""
        return {"label": self.label, "rel_type": self.rel_type, "where": self.where,
                "params": dict(self.params)}

