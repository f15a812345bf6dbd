"""Small value types shared by every backend: results, counters, scopes, batch addresses."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

RESERVED_PARAM_PREFIX = "kgm_"  # batch/key parameters rendered by the dialects
Key = int | str  # FalkorDB: integer ids; Neo4j: elementId strings
EntityKind = Literal["node", "relationship"]


class Counters(BaseModel):
    """What a statement changed. Backends that lack a counter report 0 for it."""

    model_config = ConfigDict(frozen=True)

    nodes_created: int = 0
    nodes_deleted: int = 0
    relationships_created: int = 0
    relationships_deleted: int = 0
    properties_set: int = 0
    properties_removed: int = 0  # FalkorDB only; Neo4j counts removals in properties_set
    labels_added: int = 0
    labels_removed: int = 0
    indexes_added: int = 0
    indexes_removed: int = 0
    constraints_added: int = 0
    constraints_removed: int = 0

    def __add__(self, other: "Counters") -> "Counters":
        return Counters(**{name: getattr(self, name) + getattr(other, name)
                           for name in Counters.model_fields})

    @property
    def contains_updates(self) -> bool:
        return any(getattr(self, name) for name in Counters.model_fields)


class QueryResult(BaseModel):
    """Records as plain dicts (graph entities converted to plain values) plus counters."""

    records: list[dict[str, Any]] = []
    counters: Counters = Counters()
    # Attempts the driver made before this one committed (Neo4j's managed transactions retry
    # transient errors: a deadlock, a lock timeout, a server that went away). 0 on FalkorDB.
    retries: int = 0

    def single(self) -> dict[str, Any]:
        if len(self.records) != 1:
            raise ValueError(f"expected one record, got {len(self.records)}")
        return self.records[0]

    def value(self, column: str | None = None) -> Any:
        record = self.single()
        return record[column] if column is not None else next(iter(record.values()))

    def column(self, name: str) -> list[Any]:
        return [record[name] for record in self.records]


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


@dataclass(frozen=True)
class ServerInfo:
    backend: str
    version: str
    address: str
