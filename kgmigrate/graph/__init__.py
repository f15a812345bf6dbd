"""Graph backends behind one port. Use `kgmigrate.connect.open_backend()` to get one."""

from kgmigrate.cypher.dialect import Dialect, FalkorDBDialect, Neo4jDialect
from kgmigrate.graph.base import GraphBackend, check_params
from kgmigrate.graph.types import Counters, QueryResult, ServerInfo
from kgmigrate.model.scope import BatchAddress, IndexSpec, Key, KeyList, KeyRange, Scope

__all__ = [
    "BatchAddress", "Counters", "Dialect", "FalkorDBDialect", "GraphBackend", "IndexSpec", "Key",
    "KeyList", "KeyRange", "Neo4jDialect", "QueryResult", "Scope", "ServerInfo", "check_params",
]
