"""Graph backends behind one port. Use `kgmigrate.connect.open_backend()` to get one."""

from kgmigrate.graph.base import GraphBackend, check_params
from kgmigrate.graph.dialect import Dialect, FalkorDBDialect, Neo4jDialect
from kgmigrate.graph.types import (
    BatchAddress,
    Counters,
    IndexSpec,
    Key,
    KeyList,
    KeyRange,
    QueryResult,
    Scope,
    ServerInfo,
)

__all__ = [
    "BatchAddress", "Counters", "Dialect", "FalkorDBDialect", "GraphBackend", "IndexSpec", "Key",
    "KeyList", "KeyRange", "Neo4jDialect", "QueryResult", "Scope", "ServerInfo", "check_params",
]
