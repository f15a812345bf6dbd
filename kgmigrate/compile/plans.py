"""What the engine executes: the three forms every step compiles to.

Ops describe changes; plans are what a worker runs. The engine reads plans only, so a new op
needs a compile function (see `kgmigrate.compile`), never a change in the engine.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from kgmigrate.model.scope import IndexSpec, Scope
from kgmigrate.model.state import StateRows


@dataclass(frozen=True)
class Touches:
    """Everything a library op's `apply` changes on `e`: these properties and labels, nothing
    else. Its undo row then keeps only their values before and after (a generic `apply` keeps
    the whole entity), and a rollback restores only them: another writer's change to anything
    else on the entity is neither a conflict nor undone."""

    properties: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchPlan:
    """`apply` run batch by batch over `scope`, the entity bound to `e` (`s`, `t`: its ends).

    `validation` is checked per entity inside each batch's statement, `check` once after the
    last batch ($kgm_planned: the entities planned). The undo log must know whether `apply`
    creates one entity per `e` (`creates`: the variable bound to it) and whether it deletes `e`.
    `values`, when set, computes extra parameters per batch from the batch's captured states
    (a Python transform). `touches`, when known, is all `apply` changes (see `Touches`)."""

    scope: Scope
    apply: str
    validation: str | None = None
    check: str | None = None
    creates: str | None = None
    deletes: bool = False
    values: Callable[[StateRows], dict[str, Any]] | None = None
    touches: Touches | None = None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.scope.params)

    @property
    def proves(self) -> bool:
        """Whether the step has a proof beyond its batches being committed."""
        return bool(self.validation or self.check)

    @property
    def kept(self) -> Touches | None:
        """The footprint its undo rows keep: a step that creates or deletes entities keeps
        whole ones, whatever it touches."""
        return None if self.creates or self.deletes else self.touches


@dataclass(frozen=True)
class StatementPlan:
    """One statement, run once (at least once: it cannot share a statement with its ledger
    record). `undo` is what a rollback runs instead, in order (None: nothing can undo it).
    `implicit`: those of them that must run in an implicit (auto-commit) transaction, because
    they hold `CALL { ... } IN TRANSACTIONS`, which commits as it goes and which Neo4j
    refuses in a managed or explicit one."""

    statement: str
    description: str
    validation: str | None = None  # a read statement returning one boolean `valid`
    undo: tuple[str, ...] | None = None
    implicit: frozenset[str] = frozenset()
    scope: ClassVar[None] = None

    @property
    def proves(self) -> bool:
        return self.validation is not None


@dataclass(frozen=True)
class SchemaPlan:
    """An index or uniqueness constraint to create (or drop). The DDL differs per server, so
    the backend renders it; both directions are idempotent."""

    index: IndexSpec
    drop: bool = False
    scope: ClassVar[None] = None
    proves: ClassVar[bool] = False

    def reverse(self) -> "SchemaPlan":
        return replace(self, drop=not self.drop)


Plan = BatchPlan | StatementPlan | SchemaPlan
