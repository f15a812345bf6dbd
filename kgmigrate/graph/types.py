"""What a backend returns: results, counters, server facts."""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


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
class ServerInfo:
    backend: str
    version: str  # for people: "Neo4j Kernel 5.26.0 community", "FalkorDB 4.22.1 on Redis 8.1"
    address: str
    release: str | None = None  # the product's own version number: "5.26.0", "4.22.1"
    edition: str | None = None  # Neo4j's edition: "community" or "enterprise"
