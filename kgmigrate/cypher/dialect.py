"""How each server spells the few things that differ: entity keys, batch predicates, DDL.

Everything above the `GraphBackend` port renders Cypher through a `Dialect`, so that the same op
means the same thing on FalkorDB (embedded, tests) and on Neo4j (production). Identifiers go
through `kgmigrate.cypher.identifiers`; values are always parameters.
"""

import hashlib
import re
from abc import ABC, abstractmethod
from typing import Any, Literal

from kgmigrate.cypher import identifiers as ident
from kgmigrate.model.scope import BatchAddress, EntityKind, IndexSpec, KeyList, KeyRange, Scope

# Parameter names used by the rendered batch/key statements; ops must not use the prefix.
LO, HI, KEYS = "kgm_lo", "kgm_hi", "kgm_keys"
AFTER, LIMIT, LABELS = "kgm_after", "kgm_limit", "kgm_labels"
STEP = "kgm_step"  # a batch's size, where the server cuts batches
INTERNAL_PREFIX = "__KGM"


def _string(value: str) -> str:
    return f"(CASE WHEN typeOf({value}) = 'String' THEN {value} ELSE '' END)"


def _unsafe(text: str) -> str:
    return f"({text} CONTAINS '\"' OR {text} CONTAINS '\\\\')"


def _user_node(var: str) -> str:
    return f"NOT any(kgm_l IN labels({var}) WHERE kgm_l STARTS WITH '{INTERNAL_PREFIX}')"


def _labelled(var: str) -> str:
    return f"any(kgm_l IN labels({var}) WHERE kgm_l IN ${LABELS})"


def pattern(entity: EntityKind, name: str | None = None, *, internal: bool = False) -> str:
    """The one pattern every statement binds a step's entities with: the entity is `e`, a
    relationship's ends `s` and `t`; `name` is the label or type (None: any)."""
    if entity == "node":
        return f"(e:{ident.label(name, internal=internal)})" if name else "(e)"
    typed = f":{ident.rel_type(name, internal=internal)}" if name else ""
    return f"(s)-[e{typed}]->(t)"


def _pattern(scope: Scope, *, internal: bool = False) -> str:
    return pattern(scope.entity, scope.name, internal=internal)


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
    # whether the server runs `CALL { ... } IN TRANSACTIONS`, in an implicit transaction
    implicit_transactions: bool
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

    def batch_match(self, scope: Scope, *, internal: bool = False) -> str:
        """`MATCH` clause restricted to one batch of `scope` (its values: `batch_params`)."""
        where = _where(self.in_batch(scope), scope.where)
        return f"MATCH {_pattern(scope, internal=internal)}{where}"

    def batch_params(self, scope: Scope, batch: BatchAddress) -> dict[str, Any]:
        """The parameters of `batch_match` for one batch: the scope's and the address's."""
        return {**scope.params, **self.batch_values(batch)}

    def match_batch(
        self, scope: Scope, batch: BatchAddress, *, internal: bool = False
    ) -> tuple[str, dict[str, Any]]:
        """`batch_match` and `batch_params` together."""
        return self.batch_match(scope, internal=internal), self.batch_params(scope, batch)

    @abstractmethod
    def in_batch(self, scope: Scope) -> str:
        """A predicate selecting exactly the entities of one batch (values: `batch_values`)."""

    @abstractmethod
    def batch_values(self, batch: BatchAddress) -> dict[str, Any]:
        """The values `in_batch` needs for `batch` (TypeError for the other server's kind)."""

    def batch_predicate(self, scope: Scope, batch: BatchAddress) -> tuple[str, dict[str, Any]]:
        return self.in_batch(scope), self.batch_values(batch)

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

    # -- entity states (undo records, snapshots, fingerprints: see kgmigrate.graph.state) -----

    @abstractmethod
    def signature(self, var: str, entity: EntityKind) -> str:
        """An expression the server evaluates to the entity's state (labels or type, and
        properties): equal before and after exactly when nothing changed (see each dialect for
        its precision). Compared on the server, so it never travels through a lossy client."""

    def state_fields(self, var: str, entity: EntityKind) -> list[tuple[str, str]]:
        """(name, expression) of one state row (see kgmigrate.graph.state)."""
        head = ([("k", self.key(var)), ("l", f"labels({var})")] if entity == "node" else
                [("k", self.key(var)), ("ty", f"type({var})"), ("s", self.key("s")),
                 ("t", self.key("t"))])
        return [*head, ("p", f"properties({var})"), ("sig", self.signature(var, entity))]

    def state_columns(self, var: str, entity: EntityKind) -> str:
        return ", ".join(f"{expr} AS {name}" for name, expr in self.state_fields(var, entity))

    def states_in_batch(self, scope: Scope, batch: BatchAddress) -> tuple[str, dict[str, Any]]:
        match, params = self.match_batch(scope, batch)
        return f"{match} RETURN {self.state_columns('e', scope.entity)}", params

    # -- states kept in the graph (the undo log's rows, written by kgmigrate.ledger.undo) ----

    @abstractmethod
    def keep_properties(self, target: str, source: str, prefix: str) -> str:
        """A clause storing the map `source` (an entity's properties) on the node `target`,
        exactly: the copy never leaves the server, so no client rounds a double. Each under
        `prefix` where the server has dynamic property names."""

    @abstractmethod
    def restore_properties(self, var: str, target: str, prefix: str,
                           reserved: tuple[str, ...]) -> str:
        """Clauses (valid inside FOREACH) giving `var` exactly the properties `keep_properties`
        stored on `target`; `reserved`: the undo row's own property names, never copied."""

    @abstractmethod
    def keep_state(self, target: str, var: str, entity: EntityKind, name: str) -> str:
        """A clause remembering `var`'s state (labels or type, and properties) on `target`
        under `name`, for `same_state` to compare with later."""

    @abstractmethod
    def same_state(self, target: str, var: str, entity: EntityKind, name: str) -> str:
        """An expression: `var` is still in the state `keep_state` remembered as `name`."""

    def lock(self, var: str, probe: str) -> str:
        """A clause taking `var`'s write lock before anything reads it (servers with concurrent
        writers), by writing and removing the property `probe`: its writes cancel out,
        `lock_writes` properties per entity in the counters."""
        return ""

    lock_writes = 0

    @abstractmethod
    def state_page(self, match: str, entity: EntityKind) -> str:
        """One page of the states `match` binds (the adapter pages and decodes it)."""

    @abstractmethod
    def all_states(self, entity: EntityKind, labels: tuple[str, ...] = ()) -> str:
        """The MATCH of one page of user entities (ledger entities excluded), optionally only
        nodes with one of `labels` and relationships touching such nodes."""


class FalkorDBDialect(Dialect):
    """FalkorDB: integer ids; an id-range scan by label is cheap, an `id IN list` is a full scan,
    so batches are id ranges. Relationships have no cheap scan by their own id, so their batches
    are ranges of their *start node's* id."""

    name = "falkordb"
    multi_statement_transactions = False
    implicit_transactions = False
    batch_addressing = "range"

    def key(self, var: str) -> str:
        return f"id({var})"

    def anchor(self, scope: Scope) -> str:
        return "id(e)" if scope.entity == "node" else "id(s)"

    def in_batch(self, scope: Scope) -> str:
        return self._in_range(scope)

    def batch_values(self, batch: BatchAddress) -> dict[str, Any]:
        if not isinstance(batch, KeyRange):
            raise TypeError("FalkorDB batches are key ranges")
        return {LO: batch.lo, HI: batch.hi}

    def _in_range(self, scope: Scope) -> str:
        anchor = self.anchor(scope)
        return f"{anchor} >= ${LO} AND {anchor} < ${HI}"

    # -- for the FalkorDB adapter only: cutting batches on the server, exact-float capture.
    # Not in the ABC on purpose: no other server needs them, and the engine never calls them.

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
                f"[i IN range(0, size(keys) - 1, ${STEP}) | [keys[i], i]] AS marks")

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

    def signature(self, var: str, entity: EntityKind) -> str:
        """The server's JSON text of labels (or type) and properties: one cheap string (about
        5 µs per entity, a third of a per-property rendering). Replies carry doubles with 15
        significant digits, and so does `toJSON`: a concurrent change below that precision is
        not seen. `toJSON` does not escape quotes, so two states could render alike only if
        strings were crafted to imitate JSON structure across properties."""
        head = f"labels({var})" if entity == "node" else f"type({var})"
        return f"toJSON([{head}, properties({var})])"

    def state_fields(self, var: str, entity: EntityKind) -> list[tuple[str, str]]:
        """Plus `q`: whether a name or string holds `"` or `\\`, which `toJSON` does not
        escape (such a page is read through the client instead, see `state_page`)."""
        v = f"{var}[kgm_x]"
        items = f"CASE WHEN typeOf({v}) = 'List' THEN {v} ELSE [] END"
        names = f"labels({var})" if entity == "node" else f"[type({var})]"
        quoted = (f"any(kgm_n IN {names} + keys({var}) WHERE {_unsafe('kgm_n')}) OR "
                  f"any(kgm_x IN keys({var}) WHERE {_unsafe(_string(v))} OR "
                  f"any(kgm_y IN {items} WHERE {_unsafe(_string('kgm_y'))}))")
        return [*super().state_fields(var, entity), ("q", quoted)]

    def page_fields(self, entity: EntityKind) -> list[tuple[str, str]]:
        """The fields `state_page` carries: all but the signature, which is itself JSON text
        with quotes (`state_signatures` brings it)."""
        return [(n, expr) for n, expr in self.state_fields("e", entity) if n != "sig"]

    def state_page(self, match: str, entity: EntityKind) -> str:
        """A whole page as one JSON text: parsing it is about 6x faster than the client's
        reply parser. Only valid when `unsafe` is false."""
        fields = self.page_fields(entity)
        return (f"{match} WITH collect([{', '.join(expr for _, expr in fields)}]) AS rows "
                "RETURN toJSON(rows) AS page, any(r IN rows WHERE r[size(r) - 1]) AS unsafe")

    def state_signatures(self, match: str, entity: EntityKind) -> str:
        """The page's keys and signatures as two flat lists (the cheapest shape for the
        client's parser)."""
        return (f"{match} RETURN collect(id(e)) AS keys, "
                f"collect({self.signature('e', entity)}) AS sigs")

    def exact_floats(self, match: str, *, as_json: bool) -> str:
        """Every float of the page's entities (alone or in a list) as
        [key, property, list index or -1, mantissa, exponent, negative], exactly:
        value = +-mantissa * 2^exponent. The exponent is one below floor(log2) - 52, so the
        mantissa is a whole number the division cannot round (log2 may be one off at powers of
        two), clamped for subnormals. Flat on purpose: FalkorDB has no `let`, and compiles a
        nested expression of this size for seconds, this in milliseconds."""
        parts = ("[id(e), kgm_x, CASE WHEN is_list THEN i ELSE -1 END, "
                 "toInteger(mag / 2.0 ^ ex), ex, toString(y) STARTS WITH '-']")
        tail = (f"RETURN toJSON(collect({parts})) AS page" if as_json else
                f"WITH {parts} AS part RETURN part")
        return (
            f"{match} WITH e UNWIND keys(e) AS kgm_x "
            "WITH e, kgm_x, e[kgm_x] AS v WHERE typeOf(v) IN ['Float', 'List'] "
            "WITH e, kgm_x, typeOf(v) = 'List' AS is_list, "
            "CASE WHEN typeOf(v) = 'List' THEN v ELSE [v] END AS items "
            "UNWIND range(0, size(items) - 1) AS i "
            "WITH e, kgm_x, is_list, i, items[i] AS y WHERE typeOf(y) = 'Float' "
            "WITH e, kgm_x, is_list, i, y, abs(y) AS mag "
            "WITH e, kgm_x, is_list, i, y, mag, "
            "toInteger(floor(log(CASE WHEN mag = 0.0 THEN 1.0 ELSE mag END) / log(2.0))) - 53 "
            "AS ex0 "
            "WITH e, kgm_x, is_list, i, y, mag, "
            "CASE WHEN mag = 0.0 OR ex0 < -1074 THEN -1074 ELSE ex0 END AS ex "
            f"{tail}")

    def all_states(self, entity: EntityKind, labels: tuple[str, ...] = ()) -> str:
        """Entities whose anchor id is in [$kgm_lo, $kgm_hi)."""
        if entity == "node":
            where = f"id(e) >= ${LO} AND id(e) < ${HI} AND {_user_node('e')}"
            if labels:
                where += f" AND {_labelled('e')}"
            return f"MATCH (e) WHERE {where}"
        where = (f"id(s) >= ${LO} AND id(s) < ${HI} AND {_user_node('s')} AND "
                 f"{_user_node('t')}")
        if labels:
            where += f" AND ({_labelled('s')} OR {_labelled('t')})"
        return f"MATCH (s)-[e]->(t) WHERE {where}"

    def keep_properties(self, target: str, source: str, prefix: str) -> str:
        """Unprefixed: FalkorDB has no dynamic property names, so the undo row's own names
        are reserved on FalkorDB (they start with the ledger's prefix, which ops refuse)."""
        return f"SET {target} += {source}"

    def restore_properties(self, var: str, target: str, prefix: str,
                           reserved: tuple[str, ...]) -> str:
        return (f"SET {var} = properties({target}) "
                f"REMOVE {', '.join(f'{var}.{ident.prop(n, internal=True)}' for n in reserved)}")

    def keep_state(self, target: str, var: str, entity: EntityKind, name: str) -> str:
        return f"SET {target}.{ident.prop(name, internal=True)} = {self.signature(var, entity)}"

    def same_state(self, target: str, var: str, entity: EntityKind, name: str) -> str:
        return f"{self.signature(var, entity)} = {target}.{ident.prop(name, internal=True)}"

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
    implicit_transactions = True
    batch_addressing = "list"

    def key(self, var: str) -> str:
        return f"elementId({var})"

    def anchor(self, scope: Scope) -> str:
        return "elementId(e)"

    def in_batch(self, scope: Scope) -> str:
        return f"elementId(e) IN ${KEYS}"

    def batch_values(self, batch: BatchAddress) -> dict[str, Any]:
        if not isinstance(batch, KeyList):
            raise TypeError("Neo4j batches are key lists")
        return {KEYS: list(batch.keys)}

    def signature(self, var: str, entity: EntityKind) -> str:
        """Bolt carries doubles exactly, so the plain state compares exactly. Labels are sorted:
        `labels()` does not return them in one order for one node. Seen: `["Gene", "Late"]`
        in a capture and `["Late", "Gene"]` inside the batch statement for the same unchanged
        node, once the statement had written (the order then depends on the label tokens'
        ids, so on the database's history). Unsorted, every such entity looked changed by
        someone else, and a rollback kept them all as conflicts."""
        head = (f"COLLECT {{ UNWIND labels({var}) AS kgm_l RETURN kgm_l ORDER BY kgm_l }}"
                if entity == "node" else f"type({var})")
        return f"[{head}, properties({var})]"

    def all_states(self, entity: EntityKind, labels: tuple[str, ...] = ()) -> str:
        """Entities after $kgm_after in elementId order (the backend pages with LIMIT)."""
        if entity == "node":
            where = f"elementId(e) > ${AFTER} AND {_user_node('e')}"
            if labels:
                where += f" AND {_labelled('e')}"
            match = f"MATCH (e) WHERE {where}"
        else:
            where = f"elementId(e) > ${AFTER} AND {_user_node('s')} AND {_user_node('t')}"
            if labels:
                where += f" AND ({_labelled('s')} OR {_labelled('t')})"
            match = f"MATCH (s)-[e]->(t) WHERE {where}"
        return match

    def state_page(self, match: str, entity: EntityKind) -> str:
        return f"{match} RETURN {self.state_columns('e', entity)} ORDER BY k LIMIT ${LIMIT}"

    # Undo rows: dynamic property names (`SET n[k] = v`), each part of a state under its own
    # prefix, so the entity's own property names never meet the row's bookkeeping.
    lock_writes = 2

    def lock(self, var: str, probe: str) -> str:
        """Read-committed: without the lock first, another transaction could commit a write to
        the entity between the batch reading its pre-image and changing it, and a rollback
        would then restore a state without that write."""
        written = f"{var}.{ident.prop(probe, internal=True)}"
        return f"SET {written} = true REMOVE {written}"

    def keep_properties(self, target: str, source: str, prefix: str) -> str:
        return (f"FOREACH (kgm_k IN keys({source}) | "
                f"SET {target}['{prefix}' + kgm_k] = {source}[kgm_k])")

    def restore_properties(self, var: str, target: str, prefix: str,
                           reserved: tuple[str, ...]) -> str:
        return (f"SET {var} = {{}} FOREACH (kgm_k IN [kgm_k IN keys({target}) WHERE kgm_k "
                f"STARTS WITH '{prefix}'] | SET {var}[substring(kgm_k, {len(prefix)})] = "
                f"{target}[kgm_k])")

    def keep_state(self, target: str, var: str, entity: EntityKind, name: str) -> str:
        head = (f"{ident.prop(name + '_labels', internal=True)} = labels({var})"
                if entity == "node" else
                f"{ident.prop(name + '_type', internal=True)} = type({var})")
        return (f"SET {target}.{ident.prop(name + '_keys', internal=True)} = keys({var}), "
                f"{target}.{head} FOREACH (kgm_k IN keys({var}) | "
                f"SET {target}['{name}:' + kgm_k] = {var}[kgm_k])")

    def same_state(self, target: str, var: str, entity: EntityKind, name: str) -> str:
        """Labels as sets: `labels()` has no stable order (see `signature`)."""
        kept = f"{target}.{ident.prop(name + '_keys', internal=True)}"
        if entity == "node":
            labels = f"{target}.{ident.prop(name + '_labels', internal=True)}"
            head = (f"size(labels({var})) = size({labels}) AND "
                    f"all(kgm_l IN {labels} WHERE kgm_l IN labels({var}))")
        else:
            head = f"type({var}) = {target}.{ident.prop(name + '_type', internal=True)}"
        return (f"coalesce({head} AND size(keys({var})) = size({kept}) AND "
                f"all(kgm_k IN {kept} WHERE {var}[kgm_k] = {target}['{name}:' + kgm_k]), "
                "false)")

    # -- for the Neo4j adapter only

    def keys_in_order(self, scope: Scope, *, internal: bool = False) -> str:
        match = self.match_scope(scope, internal=internal)
        return f"{match} RETURN elementId(e) AS key ORDER BY key"

    def key_lists(self, scope: Scope, *, internal: bool = False) -> str:
        """The keys in order cut into lists of $kgm_step, one record each (none when empty)."""
        match = self.match_scope(scope, internal=internal)
        return (f"{match} WITH elementId(e) AS kgm_k ORDER BY kgm_k "
                "WITH collect(kgm_k) AS kgm_ks "
                f"UNWIND range(0, size(kgm_ks) - 1, ${STEP}) AS kgm_i "
                f"RETURN kgm_ks[kgm_i..kgm_i + ${STEP}] AS keys")

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
