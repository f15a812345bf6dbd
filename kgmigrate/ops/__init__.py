"""The operations migrations are built from, in a compact functional form for migration files:

    from kgmigrate import ops
    steps = [ops.cypher("CREATE INDEX ..."), ops.batched("Compound", "SET e.reviewed = false")]
"""

from typing import Any, Literal

from kgmigrate.cypher.identifiers import labelled
from kgmigrate.ops.base import IrreversibleOperationError, Operation
from kgmigrate.ops.cypher import BatchedCypher, RunCypher
from kgmigrate.ops.library import LibraryOp, all_of
from kgmigrate.ops.properties import (
    AddProperty,
    CopyProperty,
    MoveProperty,
    RemoveProperty,
    RenameProperty,
)
from kgmigrate.ops.schema import CreateIndex
from kgmigrate.ops.structure import (
    AddLabel,
    InvertRelationship,
    RemoveLabel,
    RenameLabel,
    RetypeRelationship,
)
from kgmigrate.ops.transforms import ChangeType, PythonTransform, TransformProperty


def cypher(statement: str, *, down: str | None = None,
           validation: str | None = None) -> RunCypher:
    """One statement, run once."""
    return RunCypher(statement, down, validation)


def batched(label: str | None = None, apply: str = "", *, rel_type: str | None = None,
            where: str | None = None, down: str | None = None, validation: str | None = None,
            creates: str | None = None, deletes: bool = False, down_where: str | None = None,
            down_on: str | None = None, **params: Any) -> BatchedCypher:
    """`apply` run on every node with `label` (or relationship of `rel_type`), batch by batch;
    the entity is `e` in `apply`, `where`, and `validation`.

    For the undo log: `creates` names the variable `apply` binds to the one entity it creates
    per `e`, `deletes` says it deletes `e` (a relationship retype does both). `down_on` and
    `down_where` are the scope of `down` when `apply` moves entities out of this one (a retype:
    `down_on` is the new type; a filled-in property: `down_where` selects the filled ones)."""
    if (label is None) == (rel_type is None):
        raise ValueError("give exactly one of label or rel_type")
    entity: Literal["node", "relationship"] = "node" if label is not None else "relationship"
    name = label if label is not None else rel_type
    assert name is not None
    return BatchedCypher(entity, name, apply, where, params, down, validation, creates=creates,
                         deletes=deletes, down_where=down_where, down_on=down_on)


def _on(label: str | None, rel_type: str | None) -> dict[str, str | None]:
    return {"label": label, "rel_type": rel_type}


def add_property(label: str | None = None, name: str = "", value: Any = None, *,
                 expression: str | None = None, rel_type: str | None = None,
                 where: str | None = None, **params: Any) -> AddProperty:
    """`name` = `value` (or `expression` over `e`, e.g. "e.first + ' ' + e.last") where the
    property is absent."""
    return AddProperty(**_on(label, rel_type), where=where, params=params, name=name,
                       value=value, expression=expression)


def remove_property(label: str | None = None, name: str = "", *, rel_type: str | None = None,
                    where: str | None = None, **params: Any) -> RemoveProperty:
    return RemoveProperty(**_on(label, rel_type), where=where, params=params, name=name)


def rename_property(label: str | None = None, old: str = "", new: str = "", *,
                    rel_type: str | None = None, where: str | None = None,
                    **params: Any) -> RenameProperty:
    return RenameProperty(**_on(label, rel_type), where=where, params=params, old=old, new=new)


def copy_property(label: str | None = None, source: str = "", target: str = "", *,
                  rel_type: str | None = None, where: str | None = None,
                  **params: Any) -> CopyProperty:
    return CopyProperty(**_on(label, rel_type), where=where, params=params, source=source,
                        target_name=target)


def move_property(rel_type: str, name: str, *, label: str, to: str = "node",
                  end: str = "start") -> tuple[MoveProperty, MoveProperty]:
    """Move `name` from relationships of `rel_type` to their `end` ("start" or "end") node
    labelled `label` (`to="node"`), or back (`to="relationship"`): two steps, copy then clear.
    A node whose relationships disagree on the value fails its batch; nothing is cleared where
    the copy did not land. Put both in `steps` (they are flattened): `steps=[ops.move_property(
    "TREATS", "since", label="Drug")]`."""
    return (MoveProperty(rel_type, label, name, to=to, end=end, phase="copy"),
            MoveProperty(rel_type, label, name, to=to, end=end, phase="clear"))


def add_label(label: str, name: str, *, where: str | None = None, **params: Any) -> AddLabel:
    """Nodes with `label` (and `where`) also get label `name`."""
    return AddLabel(label, None, where, params, name=name)


def remove_label(label: str, name: str | None = None, *, where: str | None = None,
                 **params: Any) -> RemoveLabel:
    """Remove `name` (default: `label` itself) from nodes with `label`."""
    return RemoveLabel(label, None, where, params, name=name or label)


def rename_label(label: str, new: str, *, where: str | None = None,
                 **params: Any) -> RenameLabel:
    return RenameLabel(label, None, where, params, new=new)


def retype_relationship(rel_type: str, new: str, *, from_label: str | None = None,
                        to_label: str | None = None, where: str | None = None,
                        **params: Any) -> RetypeRelationship:
    """`modify_relationship` of the manager API: endpoints and properties kept; `from_label` and
    `to_label` narrow it to relationships between nodes with those labels."""
    if from_label is not None or to_label is not None:
        where = all_of(from_label and labelled("s", from_label),
                       to_label and labelled("t", to_label), where)
    return RetypeRelationship(None, rel_type, where, params, new=new)


def invert_relationship(rel_type: str, *, where: str | None = None,
                        **params: Any) -> InvertRelationship:
    return InvertRelationship(None, rel_type, where, params)


def change_type(label: str | None = None, name: str = "", to: str = "string", *,
                on_error: str = "fail", rel_type: str | None = None, where: str | None = None,
                **params: Any) -> ChangeType:
    """Convert `name` to integer, float, string, boolean or date; values that do not convert
    fail the batch with their keys (`on_error="fail"`) or become absent (`"null"`)."""
    return ChangeType(**_on(label, rel_type), where=where, params=params, name=name, to=to,
                      on_error=on_error)


def transform_property(label: str | None = None, name: str = "", expression: str = "", *,
                       inverse: str | None = None, rel_type: str | None = None,
                       where: str | None = None, **params: Any) -> TransformProperty:
    """`name` = `expression` over its old value `value` (e.g. "toLower(trim(value))"); no
    `*_old` copy is left behind: the undo log keeps the old values."""
    return TransformProperty(**_on(label, rel_type), where=where, params=params, name=name,
                             expression=expression, inverse=inverse)


def python_transform(label: str | None = None, name: str = "", function: str = "", *,
                     vectorized: bool = False, rel_type: str | None = None,
                     where: str | None = None, **params: Any) -> PythonTransform:
    """`name` = `function(old value)`, computed in the workers (import path
    "package.module:callable"; `vectorized=True`: list of old values in, list of new out)."""
    return PythonTransform(**_on(label, rel_type), where=where, params=params, name=name,
                           function=function, vectorized=vectorized)


def create_index(label: str | None = None, *properties: str, rel_type: str | None = None,
                 unique: bool = False) -> CreateIndex:
    return CreateIndex(label, rel_type, tuple(properties), unique)


def drop_index(label: str | None = None, *properties: str, rel_type: str | None = None,
               unique: bool = False) -> CreateIndex:
    return CreateIndex(label, rel_type, tuple(properties), unique, drop=True)


KINDS: dict[str, type[Operation]] = {
    op.kind: op for op in (RunCypher, BatchedCypher, AddProperty, RemoveProperty,
                           RenameProperty, CopyProperty, AddLabel, RemoveLabel, RenameLabel,
                           RetypeRelationship, InvertRelationship, CreateIndex, ChangeType,
                           TransformProperty, PythonTransform, MoveProperty)}


def from_spec(kind: str, spec: dict[str, Any]) -> Operation:
    """Rebuild an operation from what the ledger recorded (workers receive no code)."""
    try:
        return KINDS[kind](**spec)
    except KeyError:
        raise ValueError(f"unknown operation kind {kind!r}") from None


__all__ = [
    "KINDS",
    "AddLabel",
    "AddProperty",
    "BatchedCypher",
    "ChangeType",
    "CopyProperty",
    "CreateIndex",
    "InvertRelationship",
    "IrreversibleOperationError",
    "LibraryOp",
    "MoveProperty",
    "Operation",
    "PythonTransform",
    "RemoveLabel",
    "RemoveProperty",
    "RenameLabel",
    "RenameProperty",
    "RetypeRelationship",
    "RunCypher",
    "TransformProperty",
    "add_label",
    "add_property",
    "batched",
    "change_type",
    "copy_property",
    "create_index",
    "cypher",
    "drop_index",
    "from_spec",
    "invert_relationship",
    "move_property",
    "python_transform",
    "remove_label",
    "remove_property",
    "rename_label",
    "rename_property",
    "retype_relationship",
    "transform_property",
]
