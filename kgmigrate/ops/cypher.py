"""Raw Cypher operations, for what the ops library does not cover.

`RunCypher` is one statement run once (schema tweaks, small fixes, `.cypher` files).
`BatchedCypher` is the `apoc.periodic.iterate` shape: a scope (label or relationship type,
optional predicate) that kgmigrate batches by key, and an `apply` fragment that runs on each
batch with the entity bound to `e` (and `s`, `t` for a relationship's ends).
"""

from dataclasses import dataclass, field
from typing import Any, Literal

from kgmigrate.cypher import identifiers as ident
from kgmigrate.cypher.text import not_cypher, strip_comments
from kgmigrate.errors import KgmError
from kgmigrate.model.scope import RESERVED_PARAM_PREFIX, Scope
from kgmigrate.ops.base import IrreversibleOperationError, Operation


def _summary(statement: str, limit: int = 72) -> str:
    flat = " ".join(strip_comments(statement).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def check_params(params: dict[str, Any]) -> None:
    """User parameter names: valid, and clear of the prefix kgmigrate's own parameters use."""
    for name in params:
        ident.param_name(name)
        if name.startswith(RESERVED_PARAM_PREFIX):
            raise KgmError(f"parameter ${name}: the prefix {RESERVED_PARAM_PREFIX!r} is "
                           "reserved for kgmigrate")


def _require_text(value: str, what: str) -> str:
    if not isinstance(value, str) or not strip_comments(value):
        raise KgmError(f"{what} must be a non-empty Cypher text")
    return value


def _require_cypher(value: str, what: str) -> str:
    """A statement sent to the server as it is: Cypher, not a cypher-shell command (`:use`)
    nor `USING PERIODIC COMMIT`."""
    _require_text(value, what)
    if found := not_cypher(value):
        raise KgmError(f"{what}: {found[0][1]}")
    return value


@dataclass(frozen=True)
class RunCypher(Operation):
    statement: str
    down: str | None = None
    validation: str | None = None  # a read statement returning one boolean column `valid`
    # A `.cypher` file's down section undoes the whole file, not one statement: its first
    # step carries the section (run in order when a rollback reaches that step, after the
    # file's later steps), the later steps an empty list (undone with the first).
    file_down: list[str] | None = None
    kind = "cypher"

    def __post_init__(self) -> None:
        _require_cypher(self.statement, "a Cypher step")
        if self.down is not None:
            _require_cypher(self.down, "a Cypher step's down statement")

    @property
    def description(self) -> str:
        return _summary(self.statement)

    def reverse(self) -> Operation:
        if self.down is None:
            raise IrreversibleOperationError(
                f"the Cypher step {self.description!r} has no down statement")
        return RunCypher(self.down, down=self.statement)

    def spec(self) -> dict[str, Any]:
        spec = {"statement": self.statement, "down": self.down, "validation": self.validation}
        return spec if self.file_down is None else {**spec, "file_down": list(self.file_down)}

    @property
    def undo_statements(self) -> list[str] | None:
        """What a rollback runs to undo this step (None: nothing can)."""
        if self.file_down is not None:
            return list(self.file_down)
        return [self.down] if self.down is not None else None


@dataclass(frozen=True)
class BatchedCypher(Operation):
    entity: Literal["node", "relationship"]
    name: str
    apply: str
    where: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    down: str | None = None  # an apply fragment that undoes `apply` on the same scope
    validation: str | None = None
    # What the undo log must know about `apply` beyond changing `e` in place: the variable
    # bound to the one entity it creates per `e` (if any), and whether it deletes `e`.
    creates: str | None = None
    deletes: bool = False
    # the inverse's scope, when `apply` moves entities out of this one (see reverse)
    down_where: str | None = None
    down_on: str | None = None  # label or relationship type the inverse runs on
    # A read statement returning one boolean `valid`, run once after all batches (the step's
    # proof beyond per-entity validation); $kgm_planned is the number of entities planned.
    check: str | None = None
    kind = "batched_cypher"

    def __post_init__(self) -> None:
        kind = ident.Kind.LABEL if self.entity == "node" else ident.Kind.REL_TYPE
        ident.validate(self.name, kind)
        if self.down_on is not None:
            ident.validate(self.down_on, kind)
        _require_text(self.apply, "a batched Cypher step's apply")
        if self.creates is not None:
            ident.param_name(self.creates)
            if self.creates in ("e", "s", "t") or self.creates.startswith(RESERVED_PARAM_PREFIX):
                raise KgmError(f"creates={self.creates!r}: name the variable `apply` binds to "
                               "the entity it creates (not e, s, t or kgm_*)")
        if self.deletes and self.entity == "node":
            raise KgmError("a batched step that deletes nodes cannot be undone from the undo "
                           "log (their relationships are not captured); take a snapshot and "
                           "use ops.cypher, or keep the nodes")
        check_params(self.params)

    @property
    def description(self) -> str:
        target = f":{self.name}" if self.entity == "node" else f"[:{self.name}]"
        return f"on {target}: {_summary(self.apply, 56)}"

    def scope(self) -> Scope:
        return Scope(self.entity, self.name, self.where, dict(self.params))

    def reverse(self) -> Operation:
        if self.down is None:
            raise IrreversibleOperationError(
                f"the batched Cypher step {self.description!r} has no down fragment")
        return BatchedCypher(self.entity, self.down_on or self.name, self.down,
                             self.down_where if self.down_where is not None else self.where,
                             dict(self.params), down=self.apply, creates=self.creates,
                             deletes=self.deletes,
                             down_where=self.where if self.down_where is not None else None,
                             down_on=self.name if self.down_on else None)

    def spec(self) -> dict[str, Any]:
        return {"entity": self.entity, "name": self.name, "apply": self.apply,
                "where": self.where, "params": self.params, "down": self.down,
                "validation": self.validation, "creates": self.creates,
                "deletes": self.deletes, "down_where": self.down_where,
                "down_on": self.down_on, "check": self.check}
