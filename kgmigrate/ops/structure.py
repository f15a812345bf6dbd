"""Label and relationship ops: add, remove and rename labels; retype and invert relationships."""

from dataclasses import dataclass

from kgmigrate.cypher import identifiers as ident
from kgmigrate.ops.base import Operation
from kgmigrate.ops.library import UNDO_LOG_ONLY, OnEntities


@dataclass(frozen=True)
class AddLabel(OnEntities):
    """Add `name` to nodes with `label` (and `where`)."""

    name: str = ""
    kind = "add_label"
    names = (("name", ident.Kind.LABEL),)
    only = "node"

    @property
    def description(self) -> str:
        return f"add label :{self.name} to {self.target}"

    def reverse(self) -> Operation:
        """Remove it again from the same nodes: exact when none of them had it before the
        step (it only adds where absent); otherwise a snapshot is the way back."""
        return RemoveLabel(self.label, None, self.where, dict(self.params), name=self.name)


@dataclass(frozen=True)
class RemoveLabel(OnEntities):
    """Remove label `name` from nodes with `label` (`label` may be `name` itself)."""

    name: str = ""
    kind = "remove_label"
    names = (("name", ident.Kind.LABEL),)
    only = "node"

    @property
    def description(self) -> str:
        return f"remove label :{self.name} from {self.target}"

    def reverse(self) -> Operation:
        self.irreversible("which nodes had the label is not recorded (adding it back to every "
                          f"node in scope would invent it on others); {UNDO_LOG_ONLY}")


@dataclass(frozen=True)
class RenameLabel(OnEntities):
    """Nodes with `label` (and `where`) get label `new` instead."""

    new: str = ""
    kind = "rename_label"
    names = (("new", ident.Kind.LABEL),)
    only = "node"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.not_itself(str(self.label), self.new)

    @property
    def description(self) -> str:
        return f"rename label :{self.label} to :{self.new}"

    def reverse(self) -> Operation:
        assert self.label is not None
        return RenameLabel(self.new, None, self.where, dict(self.params), new=self.label)


@dataclass(frozen=True)
class RetypeRelationship(OnEntities):
    """`modify_relationship` of the manager API: same endpoints and properties, type `new`."""

    new: str = ""
    kind = "retype_relationship"
    names = (("new", ident.Kind.REL_TYPE),)
    only = "relationship"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.not_itself(str(self.rel_type), self.new)

    @property
    def description(self) -> str:
        return f"retype [:{self.rel_type}] to [:{self.new}]"

    def reverse(self) -> Operation:
        assert self.rel_type is not None
        return RetypeRelationship(None, self.new, self.where, dict(self.params),
                                  new=self.rel_type)


@dataclass(frozen=True)
class InvertRelationship(OnEntities):
    """Swap the direction of relationships, keeping type and properties. No step check: the
    relationships cannot be told apart afterwards; each batch creates one per one it
    deletes, in the same statement."""

    kind = "invert_relationship"
    only = "relationship"

    @property
    def description(self) -> str:
        return f"invert [:{self.rel_type}]"

    def reverse(self) -> Operation:
        self.irreversible("inverted relationships cannot be told from others of the type; "
                          "invert them again with a `where` that selects them")
