"""How each server spells the few things that differ: entity keys, batch predicates, DDL.

Everything above the `GraphBackend` port renders Cypher through a `Dialect`, so that the same op
means the same thing on FalkorDB (embedded, tests) and on Neo4j (production). Identifiers go
through `kgmigrate.identifiers`; values are always parameters.
"""

import hashlib
import re
from abc import ABC, abstractmethod
from typing import Any, Literal

from kgmigrate import identifiers as ident
from kgmigrate.graph.types import BatchAddress, IndexSpec, KeyList, KeyRange, Scope

# Parameter names used by the rendered batch/key statements; ops must not use the prefix.
LO, HI, KEYS = "kgm_lo", "kgm_hi", "kgm_keys"


def _pattern(scope: Scope, *, internal: bool = False) -> str:
    if scope.entity == "node":
        return f"(e:{ident.label(scope.name, internal=internal)})"
    return f"(s)-[e:{ident.rel_type(scope.name, internal=internal)}]->(t)"


def _index_pattern(spec: IndexSpec) -> str:
    if spec.entity == "node":
        return f"(e:{ident.label(spec.name, internal=spec.internal)})"
    return f"()-[e:{ident.rel_type(spec.name, internal=spec.internal)}]-()"


def _index_props(spec: IndexSpec) -> list[str]:
    return [f"e.{ident.prop(p, internal=spec.internal)}" for p in spec.properties]


def _where(batch: str | None, scope: str | None = None) -> str:
    """The scope's own predicate is always parenthesized, so nothing in it (OR, XOR, ...) can
    widen the batch it is combined with."""
    present = [p for p in (batch, f"({scope})" if scope else None) if p]
    return f" WHERE {' AND '.join(present)}" if present else ""


class Dialect(ABC):
    """The per-server rendering rules. Stateless; one instance per backend."""

    name: str
    multi_statement_transactions: bool
    batch_addressing: Literal["range", "list"]

    @abstractmethod
    def key(self, var: str) -> str:
        """The expression that gives an entity's stable key."""

    @abstractmethod
    def anchor(self, scope: Scope) -> str:
        """The key expression batches of `scope` are cut on."""

    def match_scope(self, scope: Scope, *, internal: bool = False) -> str:
        return f"MATCH {_pattern(scope, internal=internal)}{_where(None, scope.where)}"

    def count_scope(self, scope: Scope, *, internal: bool = False) -> str:
        return f"{self.match_scope(scope, internal=internal)} RETURN count(e) AS n"

    def match_batch(
        self, scope: Scope, batch: BatchAddress, *, internal: bool = False
    ) -> tuple[str, dict[str, Any]]:
        """`MATCH` clause restricted to one batch of `scope`, and the parameters it needs."""
        predicate, params = self.batch_predicate(scope, batch)
        clause = f"MATCH {_pattern(scope, internal=internal)}{_where(predicate, scope.where)}"
        return clause, {**scope.params, **params}

    @abstractmethod
    def batch_predicate(self, scope: Scope, batch: BatchAddress) -> tuple[str, dict[str, Any]]:
        """A predicate selecting exactly the entities of `batch`."""

    def match_key(self, var: str, param: str) -> str:
        """`<key of var> = $param`: a seek by key on both servers."""
        return f"{self.key(var)} = ${ident.param_name(param)}"

    def key_equals(self, var: str, field: str, row: str = "row") -> str:
        """`<key of var> = row.field`, for UNWIND-driven lookups by key."""
        return f"{self.key(var)} = {row}.{ident.prop(field, internal=True)}"

    @abstractmethod
    def create_index(self, spec: IndexSpec) -> str: ...

    @abstractmethod
    def drop_index(self, spec: IndexSpec) -> str: ...


class FalkorDBDialect(Dialect):
    """FalkorDB: integer ids; an id-range scan by label is cheap, an `id IN list` is a full scan,
    so batches are id ranges. Relationships have no cheap scan by their own id, so their batches
    are ranges of their *start node's* id."""

    name = "falkordb"
    multi_statement_transactions = False
    batch_addressing = "range"

    def key(self, var: str) -> str:
        return f"id({var})"

    def anchor(self, scope: Scope) -> str:
        return "id(e)" if scope.entity == "node" else "id(s)"

    def batch_predicate(self, scope: Scope, batch: BatchAddress) -> tuple[str, dict[str, Any]]:
        if not isinstance(batch, KeyRange):
            raise TypeError("FalkorDB batches are key ranges")
        return self._in_range(scope), {LO: batch.lo, HI: batch.hi}

    def _in_range(self, scope: Scope) -> str:
        anchor = self.anchor(scope)
        return f"{anchor} >= ${LO} AND {anchor} < ${HI}"

    def keys_in_window(self, scope: Scope, *, internal: bool = False) -> str:
        """Keys of `scope` whose anchor falls in [$kgm_lo, $kgm_hi), in order. `id(e)` is
        projected too: without it FalkorDB collapses parallel relationships into one row."""
        return (f"MATCH {_pattern(scope, internal=internal)}"
                f"{_where(self._in_range(scope), scope.where)} "
                f"RETURN {self.anchor(scope)} AS key, id(e) AS entity ORDER BY key, entity")

    def batch_marks_in_window(self, scope: Scope, *, internal: bool = False) -> str:
        """For the keys in [$kgm_lo, $kgm_hi): how many there are, and every $kgm_step-th one
        (the first key of each batch). Computed on the server, so only the cuts travel."""
        return (f"MATCH {_pattern(scope, internal=internal)}"
                f"{_where(self._in_range(scope), scope.where)} "
                f"WITH {self.anchor(scope)} AS key, id(e) AS entity ORDER BY key, entity "
                "WITH collect(key) AS keys "
                "RETURN size(keys) AS n, "
                "[i IN range(0, size(keys) - 1, $kgm_step) | [keys[i], i]] AS marks")

    def count_ranges(self, scope: Scope, *, internal: bool = False) -> str:
        """Entities per key range of $kgm_ranges ([[lo, hi], ...])."""
        anchor = self.anchor(scope)
        return (f"UNWIND $kgm_ranges AS r MATCH {_pattern(scope, internal=internal)}"
                f"{_where(f'{anchor} >= r[0] AND {anchor} < r[1]', scope.where)} "
                "RETURN r[0] AS lo, count(e) AS n")

    def max_key(self, scope: Scope, *, internal: bool = False) -> str:
        """An upper bound of the scope's keys. Relationships have no cheap scan by type, so
        their bound is the highest node id of the graph."""
        if scope.entity == "relationship":
            return "MATCH (n) RETURN max(id(n)) AS max_id"
        return f"{self.match_scope(scope, internal=internal)} RETURN max(id(e)) AS max_id"

    def create_index(self, spec: IndexSpec) -> str:
        """The range index; a uniqueness constraint additionally needs `GRAPH.CONSTRAINT`,
        which is a server command, not Cypher (the backend issues it)."""
        return f"CREATE INDEX FOR {_index_pattern(spec)} ON ({', '.join(_index_props(spec))})"

    def drop_index(self, spec: IndexSpec) -> str:
        return f"DROP INDEX FOR {_index_pattern(spec)} ON ({', '.join(_index_props(spec))})"


class Neo4jDialect(Dialect):
    """Neo4j 5.x / 2025.x: `elementId()` keys (`id()` is deprecated); `elementId(e) IN $keys`
    is an index-backed seek, so batches are key lists."""

    name = "neo4j"
    multi_statement_transactions = True
    batch_addressing = "list"

    def key(self, var: str) -> str:
        return f"elementId({var})"

    def anchor(self, scope: Scope) -> str:
        return "elementId(e)"

    def batch_predicate(self, scope: Scope, batch: BatchAddress) -> tuple[str, dict[str, Any]]:
        if not isinstance(batch, KeyList):
            raise TypeError("Neo4j batches are key lists")
        return f"elementId(e) IN ${KEYS}", {KEYS: list(batch.keys)}

    def keys_in_order(self, scope: Scope, *, internal: bool = False) -> str:
        match = self.match_scope(scope, internal=internal)
        return f"{match} RETURN elementId(e) AS key ORDER BY key"

    def index_name(self, spec: IndexSpec) -> str:
        """A deterministic name, so create and drop are idempotent by name."""
        raw = f"{spec.entity}:{spec.name}:{','.join(spec.properties)}:{spec.unique}"
        digest = hashlib.sha256(raw.encode()).hexdigest()[:10]
        readable = re.sub(r"[^A-Za-z0-9]+", "_", f"{spec.name}_{'_'.join(spec.properties)}")
        prefix = "kgm_uniq" if spec.unique else "kgm_idx"
        return ident.quote(f"{prefix}_{readable[:60]}_{digest}", ident.Kind.INDEX)

    def create_index(self, spec: IndexSpec) -> str:
        name, props = self.index_name(spec), _index_props(spec)
        if spec.unique:
            target = props[0] if len(props) == 1 else f"({', '.join(props)})"
            return (f"CREATE CONSTRAINT {name} IF NOT EXISTS FOR {_index_pattern(spec)} "
                    f"REQUIRE {target} IS UNIQUE")
        return (f"CREATE INDEX {name} IF NOT EXISTS FOR {_index_pattern(spec)} "
                f"ON ({', '.join(props)})")

    def drop_index(self, spec: IndexSpec) -> str:
        kind = "CONSTRAINT" if spec.unique else "INDEX"
        return f"DROP {kind} {self.index_name(spec)} IF EXISTS"
