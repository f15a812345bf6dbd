"""What a step touches and how a batch of it is addressed: plain descriptions that the dialects
render and the backends run."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

RESERVED_PARAM_PREFIX = "kgm_"  # batch/key parameters rendered by the dialects
Key = int | str  # FalkorDB: integer ids; Neo4j: elementId strings
EntityKind = Literal["node", "relationship"]


@dataclass(frozen=True)
class Scope:
    """The entities a step touches: all nodes with a label, or all relationships of a type,
    optionally narrowed by a Cypher predicate.

    In the rendered pattern the entity is always bound to `e`; for relationships the start and
    end nodes are `s` and `t`. `where` is Cypher rendered by kgmigrate's own ops (identifiers
    already quoted); its values travel in `params`.
    """

    entity: EntityKind
    name: str  # label or relationship type, validated when rendered
    where: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.params:
            if name.startswith(RESERVED_PARAM_PREFIX):
                raise ValueError(f"scope parameter ${name}: the prefix {RESERVED_PARAM_PREFIX!r} "
                                 "is reserved for batch parameters")

    @classmethod
    def nodes(cls, label: str, where: str | None = None, **params: Any) -> "Scope":
        return cls("node", label, where, params)

    @classmethod
    def relationships(cls, rel_type: str, where: str | None = None, **params: Any) -> "Scope":
        return cls("relationship", rel_type, where, params)


@dataclass(frozen=True)
class KeyRange:
    """A batch addressed by a half-open range of keys [lo, hi): compact, stable, cheap to seek."""

    lo: int
    hi: int

    def __post_init__(self) -> None:
        if self.hi <= self.lo:
            raise ValueError(f"empty key range [{self.lo}, {self.hi})")


@dataclass(frozen=True)
class KeyList:
    """A batch addressed by an explicit list of keys (Neo4j elementIds)."""

    keys: tuple[Key, ...]


BatchAddress = KeyRange | KeyList


@dataclass(frozen=True)
class IndexSpec:
    """A range index or a uniqueness constraint on one label/type and its properties."""

    entity: EntityKind
    name: str  # label or relationship type
    properties: tuple[str, ...]
    unique: bool = False
    internal: bool = False  # kgmigrate's own `__KGM*` bookkeeping may use reserved names

    def __post_init__(self) -> None:
        if not self.properties:
            raise ValueError("an index needs at least one property")
        if self.unique and self.entity != "node":
            raise ValueError("uniqueness constraints are supported on nodes only")

    @property
    def kind(self) -> str:
        return "uniqueness constraint" if self.unique else "index"

    def describe(self) -> str:
        pattern = f"(:{self.name})" if self.entity == "node" else f"()-[:{self.name}]-()"
        return f"{self.kind} on {pattern}({', '.join(self.properties)})"
