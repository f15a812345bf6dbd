"""Property ops: add, remove, rename, copy, and move between a relationship and its node."""

from dataclasses import dataclass
from typing import Any

from kgmigrate.cypher import identifiers as ident
from kgmigrate.errors import KgmError
from kgmigrate.model.scope import Scope
from kgmigrate.ops.base import Operation
from kgmigrate.ops.library import UNDO_LOG_ONLY, LibraryOp, OnEntities
from kgmigrate.ops.transforms import check_expression


@dataclass(frozen=True)
class AddProperty(OnEntities):
    """Set `name` to `value` (a parameter), or to `expression` computed from the entity's other
    properties (Cypher over `e`, checked like a transform), where the entity has no such
    property."""

    name: str = ""
    value: Any = None
    expression: str | None = None
    kind = "add_property"
    names = (("name", ident.Kind.PROPERTY),)

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.value is None) == (self.expression is None):
            raise KgmError("add_property: give a default value or an expression (not both)")
        if self.expression is not None:
            check_expression(self.expression, variable="e")

    @property
    def description(self) -> str:
        default = self.expression if self.expression is not None else repr(self.value)
        return f"add {self.target}.{self.name} = {default} where absent"

    def reverse(self) -> Operation:
        self.irreversible(f"which entities had the value before is not recorded; {UNDO_LOG_ONLY}")


@dataclass(frozen=True)
class RemoveProperty(OnEntities):
    name: str = ""
    kind = "remove_property"
    names = (("name", ident.Kind.PROPERTY),)

    @property
    def description(self) -> str:
        return f"remove {self.target}.{self.name}"

    def reverse(self) -> Operation:
        self.irreversible(f"it drops data; {UNDO_LOG_ONLY}")


@dataclass(frozen=True)
class RenameProperty(OnEntities):
    old: str = ""
    new: str = ""
    kind = "rename_property"
    names = (("old", ident.Kind.PROPERTY), ("new", ident.Kind.PROPERTY))

    def __post_init__(self) -> None:
        super().__post_init__()
        self.not_itself(self.old, self.new)

    @property
    def description(self) -> str:
        return f"rename {self.target}.{self.old} to {self.new}"

    def reverse(self) -> Operation:
        return RenameProperty(**self.on_scope(), old=self.new, new=self.old)


@dataclass(frozen=True)
class CopyProperty(OnEntities):
    source: str = ""
    target_name: str = ""
    kind = "copy_property"
    names = (("source", ident.Kind.PROPERTY), ("target_name", ident.Kind.PROPERTY))

    def __post_init__(self) -> None:
        super().__post_init__()
        self.not_itself(self.source, self.target_name)

    @property
    def description(self) -> str:
        return f"copy {self.target}.{self.source} to {self.target_name}"

    def reverse(self) -> Operation:
        return RemoveProperty(**self.on_scope(), name=self.target_name)


MOVE_DIRECTIONS = ("node", "relationship")
MOVE_ENDS = ("start", "end")
MOVE_PHASES = ("copy", "clear")


@dataclass(frozen=True)
class MoveProperty(LibraryOp):
    """One of the two steps that move property `name` between relationships of `rel_type` and
    their `end` node (labelled `label`): `copy` it across, then `clear` it where it was.

    Two steps, because the undo log records the entity a batch is about (`e`): each phase
    changes only its own side. A move to the node needs every relationship of a node to agree
    on the value: a node whose relationships disagree fails its batch (the value is not
    picked), and nothing is cleared anywhere a copy did not land. Relationships whose `end`
    node lacks `label` are left alone. Build both phases with `ops.move_property`; the
    reverse of a move is the move back."""

    rel_type: str = ""
    label: str = ""
    name: str = ""
    to: str = "node"
    end: str = "start"
    phase: str = "copy"
    kind = "move_property"

    def __post_init__(self) -> None:
        ident.validate(self.rel_type, ident.Kind.REL_TYPE)
        ident.validate(self.label, ident.Kind.LABEL)
        ident.validate(self.name, ident.Kind.PROPERTY)
        for value, allowed, what in ((self.to, MOVE_DIRECTIONS, "to"),
                                     (self.end, MOVE_ENDS, "end"),
                                     (self.phase, MOVE_PHASES, "phase")):
            if value not in allowed:
                raise KgmError(f"move_property: {what}={value!r}; use one of "
                               f"{', '.join(allowed)}")

    @property
    def description(self) -> str:
        node = f"its {self.end} node :{self.label}"
        rel = f"[:{self.rel_type}]"
        path = f"{rel} to {node}" if self.to == "node" else f"{node} to {rel}"
        return f"move .{self.name} from {path} ({self.phase})"

    @property
    def on_nodes(self) -> bool:
        """Whether this phase changes the nodes (else the relationships): a copy writes the
        side moved to, a clear the side moved from."""
        return self.to == "node" if self.phase == "copy" else self.to == "relationship"

    def scope(self) -> Scope:
        if self.on_nodes:
            return Scope("node", self.label)
        return Scope("relationship", self.rel_type)

    def reverse(self) -> Operation:
        return MoveProperty(self.rel_type, self.label, self.name,
                            to="relationship" if self.to == "node" else "node", end=self.end,
                            phase="clear" if self.phase == "copy" else "copy")
