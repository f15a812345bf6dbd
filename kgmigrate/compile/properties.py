"""How the property ops render."""

from kgmigrate.compile.library import batched_on, proof, proof_on
from kgmigrate.compile.plans import Touches
from kgmigrate.compile.registry import implementation_for, touches_for
from kgmigrate.cypher.identifiers import labelled, ref, typed
from kgmigrate.ops import (
    AddProperty,
    BatchedCypher,
    CopyProperty,
    MoveProperty,
    RemoveProperty,
    RenameProperty,
)


@implementation_for(AddProperty)
def add_property(op: AddProperty, dialect: str) -> BatchedCypher:
    prop = ref("e", op.name)
    check = proof_on(op, at_least=f"{prop} IS NOT NULL")
    if op.expression is not None:
        return batched_on(op, f"SET {prop} = ({op.expression})", where=f"{prop} IS NULL",
                          validation=f"{prop} IS NOT NULL", check=check)
    return batched_on(op, f"SET {prop} = $op_value", where=f"{prop} IS NULL",
                      validation=f"{prop} IS NOT NULL", values={"op_value": op.value},
                      check=check)


@implementation_for(RemoveProperty)
def remove_property(op: RemoveProperty, dialect: str) -> BatchedCypher:
    prop = ref("e", op.name)
    return batched_on(op, f"REMOVE {prop}", where=f"{prop} IS NOT NULL",
                      validation=f"{prop} IS NULL", check=proof_on(op, none=f"{prop} IS NOT NULL"))


@implementation_for(RenameProperty)
def rename_property(op: RenameProperty, dialect: str) -> BatchedCypher:
    old, new = ref("e", op.old), ref("e", op.new)
    return batched_on(op, f"SET {new} = {old} REMOVE {old}", where=f"{old} IS NOT NULL",
                      validation=f"{old} IS NULL AND {new} IS NOT NULL",
                      check=proof_on(op, none=f"{old} IS NOT NULL",
                                     at_least=f"{new} IS NOT NULL"))


@implementation_for(CopyProperty)
def copy_property(op: CopyProperty, dialect: str) -> BatchedCypher:
    src, dst = ref("e", op.source), ref("e", op.target_name)
    return batched_on(op, f"SET {dst} = {src}", where=f"{src} IS NOT NULL",
                      validation=f"{dst} = {src}", check=proof_on(op, at_least=f"{dst} = {src}"))


@implementation_for(MoveProperty)
def move_property(op: MoveProperty, dialect: str) -> BatchedCypher:
    return _on_nodes(op) if op.on_nodes else _on_relationships(op)


def _path(op: MoveProperty, rel: str = "op_r", node: str = "(e)") -> str:
    """`node`'s relationships of the type, from its side."""
    bound = typed(rel, op.rel_type)
    return f"{node}-[{bound}]->()" if op.end == "start" else f"{node}<-[{bound}]-()"


def _values(op: MoveProperty) -> str:
    """The values `e`'s relationships of the type hold."""
    theirs = ref("op_r", op.name)
    return f"[{_path(op)} WHERE {theirs} IS NOT NULL | {theirs}]"


def _on_nodes(op: MoveProperty) -> BatchedCypher:
    """Nodes with a relationship of the type: take its value (copy to node) or drop theirs
    once every relationship holds it (clear after a copy to the relationships). Pattern
    comprehensions go in a WITH: FalkorDB accepts them only in projections."""
    prop, has = ref("e", op.name), _path(op, rel="")
    carry = "WITH e, kgm_key, kgm_pre, "
    if op.to == "node":
        apply = (f"{carry}{_values(op)} AS op_vs SET {prop} = CASE WHEN "
                 "all(op_v IN op_vs WHERE op_v = op_vs[0]) THEN op_vs[0] END")
        return BatchedCypher(
            "node", op.label, apply, f"({prop} IS NULL) AND ({has})",
            validation=f"{prop} IS NOT NULL OR size({_values(op)}) = 0",
            check=_agreement(op))
    everywhere = f"[{_path(op)} | {ref('op_r', op.name)}]"
    apply = (f"{carry}{everywhere} AS op_vs FOREACH (op_x IN CASE WHEN all(op_v IN op_vs "
             f"WHERE op_v = {prop}) THEN [1] ELSE [] END | REMOVE {prop})")
    return BatchedCypher("node", op.label, apply, f"({prop} IS NOT NULL) AND ({has})",
                         validation=f"{prop} IS NULL",
                         check=proof("node", op.label, has, none=f"{prop} IS NOT NULL"))


def _on_relationships(op: MoveProperty) -> BatchedCypher:
    """Relationships whose node end has the label: take the node's value (copy to the
    relationships) or drop theirs where the node holds it (clear after a copy to nodes)."""
    end = "s" if op.end == "start" else "t"
    prop, node = ref("e", op.name), ref(end, op.name)
    at_node = labelled(end, op.label)
    if op.to == "relationship":
        return BatchedCypher(
            "relationship", op.rel_type, f"SET {prop} = {node}",
            f"({prop} IS NULL) AND ({at_node}) AND ({node} IS NOT NULL)",
            validation=f"{prop} IS NOT NULL",
            check=proof("relationship", op.rel_type, f"{at_node} AND {node} IS NOT NULL",
                        none=f"{prop} IS NULL OR {prop} <> {node}"))
    return BatchedCypher(
        "relationship", op.rel_type, f"REMOVE {prop}",
        f"({prop} IS NOT NULL) AND ({at_node}) AND ({node} = {prop})",
        validation=f"{prop} IS NULL",
        check=proof("relationship", op.rel_type, at_node, none=f"{prop} IS NOT NULL"))


def _agreement(op: MoveProperty) -> str:
    """After a copy to the nodes: every relationship's value is on its node."""
    path = _path(op, node=f"({labelled('e', op.label)})")
    prop, theirs = ref("e", op.name), ref("op_r", op.name)
    return (f"OPTIONAL MATCH {path} WHERE {theirs} IS NOT NULL AND ({prop} IS NULL OR "
            f"{prop} <> {theirs}) WITH count(e) AS remaining RETURN remaining = 0 AS valid")


@touches_for(AddProperty)
@touches_for(RemoveProperty)
@touches_for(MoveProperty)
def one_property(op: AddProperty | RemoveProperty | MoveProperty) -> Touches:
    return Touches(properties=(op.name,))


@touches_for(RenameProperty)
def renamed(op: RenameProperty) -> Touches:
    return Touches(properties=(op.old, op.new))


@touches_for(CopyProperty)
def copied(op: CopyProperty) -> Touches:
    return Touches(properties=(op.target_name,))
