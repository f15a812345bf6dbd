"""How the label and relationship ops render."""

from kgmigrate.compile.library import batched_on, proof_on
from kgmigrate.compile.plans import Touches
from kgmigrate.compile.registry import implementation_for, touches_for
from kgmigrate.cypher.identifiers import labelled, typed
from kgmigrate.ops import (
    AddLabel,
    BatchedCypher,
    InvertRelationship,
    RemoveLabel,
    RenameLabel,
    RetypeRelationship,
)


@implementation_for(AddLabel)
def add_label(op: AddLabel, dialect: str) -> BatchedCypher:
    has = labelled("e", op.name)
    return batched_on(op, f"SET {has}", where=f"NOT {has}", validation=has,
                      check=proof_on(op, at_least=has))


@implementation_for(RemoveLabel)
def remove_label(op: RemoveLabel, dialect: str) -> BatchedCypher:
    has = labelled("e", op.name)
    return batched_on(op, f"REMOVE {has}", where=has, validation=f"NOT {has}",
                      check=proof_on(op, none=has))


@implementation_for(RenameLabel)
def rename_label(op: RenameLabel, dialect: str) -> BatchedCypher:
    assert op.label is not None
    old, new = labelled("e", op.label), labelled("e", op.new)
    return batched_on(op, f"SET {new} REMOVE {old}", validation=f"{new} AND NOT {old}",
                      check=proof_on(op, none="true", at_least="true", moved_to=op.new))


@implementation_for(RetypeRelationship)
def retype_relationship(op: RetypeRelationship, dialect: str) -> BatchedCypher:
    return batched_on(
        op, f"CREATE (s)-[{typed('op_r', op.new)}]->(t) SET op_r = properties(e) DELETE e",
        creates="op_r", deletes=True,
        check=proof_on(op, none="true", at_least="true", moved_to=op.new))


@implementation_for(InvertRelationship)
def invert_relationship(op: InvertRelationship, dialect: str) -> BatchedCypher:
    rel = typed("op_r", str(op.rel_type))
    return batched_on(op, f"CREATE (t)-[{rel}]->(s) SET op_r = properties(e) DELETE e",
                      creates="op_r", deletes=True)


@touches_for(AddLabel)
@touches_for(RemoveLabel)
def one_label(op: AddLabel | RemoveLabel) -> Touches:
    return Touches(labels=(op.name,))


@touches_for(RenameLabel)
def relabelled(op: RenameLabel) -> Touches:
    assert op.label is not None
    return Touches(labels=(op.label, op.new))
