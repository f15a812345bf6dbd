"""Property ops: add, remove, rename, copy, and move between a relationship and its node."""

from dataclasses import dataclass
from typing import Any

from kgmigrate.cypher import identifiers as ident
from kgmigrate.cypher.identifiers import labelled, ref, typed
from kgmigrate.errors import KgmError
from kgmigrate.ops.base import Operation
from kgmigrate.ops.cypher import BatchedCypher
from kgmigrate.ops.library import UNDO_LOG_ONLY, LibraryOp, OnEntities, proof
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

    def render(self, dialect: str) -> BatchedCypher:
        prop = ref("e", self.name)
        check = self.proof(at_least=f"{prop} IS NOT NULL")
        if self.expression is not None:
            return self.batched(f"SET {prop} = ({self.expression})", where=f"{prop} IS NULL",
                                validation=f"{prop} IS NOT NULL", check=check)
        return self.batched(f"SET {prop} = $op_value", where=f"{prop} IS NULL",
                            validation=f"{prop} IS NOT NULL", values={"op_value": self.value},
                            check=check)

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

    def render(self, dialect: str) -> BatchedCypher:
        prop = ref("e", self.name)
        return self.batched(f"REMOVE {prop}", where=f"{prop} IS NOT NULL",
                            validation=f"{prop} IS NULL",
                            check=self.proof(none=f"{prop} IS NOT NULL"))

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

    def render(self, dialect: str) -> BatchedCypher:
        old, new = ref("e", self.old), ref("e", self.new)
        return self.batched(f"SET {new} = {old} REMOVE {old}", where=f"{old} IS NOT NULL",
                            validation=f"{old} IS NULL AND {new} IS NOT NULL",
                            check=self.proof(none=f"{old} IS NOT NULL",
                                             at_least=f"{new} IS NOT NULL"))

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

    def render(self, dialect: str) -> BatchedCypher:
        src, dst = ref("e", self.source), ref("e", self.target_name)
        return self.batched(f"SET {dst} = {src}", where=f"{src} IS NOT NULL",
                            validation=f"{dst} = {src}",
                            check=self.proof(at_least=f"{dst} = {src}"))

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

    def render(self, dialect: str) -> BatchedCypher:
        node_side = self.to == "node" if self.phase == "copy" else self.to == "relationship"
        return self._on_nodes() if node_side else self._on_relationships()

    def _path(self, rel: str = "op_r", node: str = "(e)") -> str:
        """`node`'s relationships of the type, from its side."""
        bound = typed(rel, self.rel_type)
        return f"{node}-[{bound}]->()" if self.end == "start" else f"{node}<-[{bound}]-()"

    def _values(self) -> str:
        """The values `e`'s relationships of the type hold."""
        theirs = ref("op_r", self.name)
        return f"[{self._path()} WHERE {theirs} IS NOT NULL | {theirs}]"

    def _on_nodes(self) -> BatchedCypher:
        """Nodes with a relationship of the type: take its value (copy to node) or drop theirs
        once every relationship holds it (clear after a copy to the relationships). Pattern
        comprehensions go in a WITH: FalkorDB accepts them only in projections."""
        prop, has = ref("e", self.name), self._path(rel="")
        carry = "WITH e, kgm_key, kgm_pre, "
        if self.to == "node":
            apply = (f"{carry}{self._values()} AS op_vs SET {prop} = CASE WHEN "
                     "all(op_v IN op_vs WHERE op_v = op_vs[0]) THEN op_vs[0] END")
            return BatchedCypher(
                "node", self.label, apply, f"({prop} IS NULL) AND ({has})",
                validation=f"{prop} IS NOT NULL OR size({self._values()}) = 0",
                check=self._agreement())
        everywhere = f"[{self._path()} | {ref('op_r', self.name)}]"
        apply = (f"{carry}{everywhere} AS op_vs FOREACH (op_x IN CASE WHEN all(op_v IN op_vs "
                 f"WHERE op_v = {prop}) THEN [1] ELSE [] END | REMOVE {prop})")
        return BatchedCypher("node", self.label, apply, f"({prop} IS NOT NULL) AND ({has})",
                             validation=f"{prop} IS NULL",
                             check=proof("node", self.label, has, none=f"{prop} IS NOT NULL"))

    def _on_relationships(self) -> BatchedCypher:
        """Relationships whose node end has the label: take the node's value (copy to the
        relationships) or drop theirs where the node holds it (clear after a copy to nodes)."""
        prop, node = ref("e", self.name), ref(self._end_var, self.name)
        at_node = labelled(self._end_var, self.label)
        if self.to == "relationship":
            return BatchedCypher(
                "relationship", self.rel_type, f"SET {prop} = {node}",
                f"({prop} IS NULL) AND ({at_node}) AND ({node} IS NOT NULL)",
                validation=f"{prop} IS NOT NULL",
                check=proof("relationship", self.rel_type,
                            f"{at_node} AND {node} IS NOT NULL",
                            none=f"{prop} IS NULL OR {prop} <> {node}"))
        return BatchedCypher(
            "relationship", self.rel_type, f"REMOVE {prop}",
            f"({prop} IS NOT NULL) AND ({at_node}) AND ({node} = {prop})",
            validation=f"{prop} IS NULL",
            check=proof("relationship", self.rel_type, at_node, none=f"{prop} IS NOT NULL"))

    @property
    def _end_var(self) -> str:
        return "s" if self.end == "start" else "t"

    def _agreement(self) -> str:
        """After a copy to the nodes: every relationship's value is on its node."""
        path = self._path(node=f"({labelled('e', self.label)})")
        prop, theirs = ref("e", self.name), ref("op_r", self.name)
        return (f"OPTIONAL MATCH {path} WHERE {theirs} IS NOT NULL AND ({prop} IS NULL OR "
                f"{prop} <> {theirs}) WITH count(e) AS remaining RETURN remaining = 0 AS valid")

    def reverse(self) -> Operation:
        return MoveProperty(self.rel_type, self.label, self.name,
                            to="relationship" if self.to == "node" else "node", end=self.end,
                            phase="clear" if self.phase == "copy" else "copy")
