"""FalkorDB adapter (the embedded default and the test server).

FalkorDB runs one `GRAPH.QUERY` atomically and has no multi-statement transactions; a runtime
error inside a write statement undoes that statement's writes. Uniqueness constraints are a
server command (`GRAPH.CONSTRAINT`), not Cypher.
"""

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import redis
from falkordb import FalkorDB
from falkordb.edge import Edge
from falkordb.node import Node
from falkordb.path import Path

from kgmigrate.cypher import identifiers as ident
from kgmigrate.cypher.dialect import HI, LABELS, LO, STEP, FalkorDBDialect
from kgmigrate.errors import BackendError, ProbeTooLarge
from kgmigrate.graph.base import GraphBackend, Metadata, Params, plain_entity
from kgmigrate.graph.state import make_exact, state_rows
from kgmigrate.graph.types import Counters, QueryResult, ServerInfo
from kgmigrate.model.scope import BatchAddress, EntityKind, IndexSpec, Key, KeyRange, Scope
from kgmigrate.model.state import StateRows
from kgmigrate.runtime.settings import GraphTarget

_COUNTERS = {
    "nodes_created": "nodes_created", "nodes_deleted": "nodes_deleted",
    "relationships_created": "relationships_created",
    "relationships_deleted": "relationships_deleted",
    "properties_set": "properties_set", "properties_removed": "properties_removed",
    "labels_added": "labels_added", "labels_removed": "labels_removed",
    "indexes_added": "indices_created", "indexes_removed": "indices_deleted",
}
_CONSTRAINT_WAIT_S = 60.0


class FalkorDBBackend(GraphBackend):
    dialect: FalkorDBDialect

    def __init__(self, target: GraphTarget, *, max_connections: int = 16,
                 socket_timeout_s: float = 300.0, query_timeout_s: float = 0.0,
                 window: int = 50_000, plan_window: int = 1_000_000,
                 probe_copy_max_mb: int | None = None) -> None:
        if target.backend != "falkordb" or target.name is None:
            raise ValueError("FalkorDBBackend needs a falkordb:// target with a graph name")
        self.target = target
        self.dialect = FalkorDBDialect()
        self.window = window  # id-space width of one key-streaming read
        self.plan_window = plan_window  # id-space width of one server-side planning read
        self.probe_copy_max_mb = probe_copy_max_mb  # the largest graph `probe_write` copies
        self._query_timeout_ms = int(query_timeout_s * 1000) or None
        pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
            host=target.host, port=target.port, username=target.username,
            password=target.password.get_secret_value() if target.password else None,
            max_connections=max_connections, timeout=30,
            socket_timeout=socket_timeout_s, socket_connect_timeout=10, decode_responses=True,
        )
        try:  # the client talks to the server as it is built (it probes for cluster mode)
            self._db = FalkorDB(connection_pool=pool)
        except redis.exceptions.RedisError as exc:
            raise BackendError(f"FalkorDB at {target.display} unreachable: {exc}",
                               transient=True) from exc
        self._graph = self._db.select_graph(target.name)

    # -- statements -------------------------------------------------------------------------

    def write(self, statement: str, params: Params | None = None, *,
              metadata: Metadata | None = None, timeout: float | None = None) -> QueryResult:
        return self._run(statement, params, read_only=False, timeout=timeout)

    def read(self, statement: str, params: Params | None = None, *,
             metadata: Metadata | None = None, timeout: float | None = None) -> QueryResult:
        return self._run(statement, params, read_only=True, timeout=timeout)

    def _run(self, statement: str, params: Params | None, *, read_only: bool,
             timeout: float | None) -> QueryResult:
        checked = self.check_params(params) or None
        timeout_ms = int(timeout * 1000) if timeout else self._query_timeout_ms
        try:
            try:
                raw = self._query(statement, checked, read_only, timeout_ms)
            except redis.exceptions.ResponseError as exc:
                if not read_only or "empty key" not in str(exc):
                    raise
                # A graph that was never written does not exist yet; reading it means reading
                # an empty graph, so create the (empty) key and ask again.
                self._graph.query("RETURN 0")
                raw = self._query(statement, checked, read_only, timeout_ms)
        except redis.exceptions.ResponseError as exc:
            raise BackendError(f"FalkorDB refused the statement: {exc}") from exc
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise BackendError(f"FalkorDB at {self.target.display} unreachable: {exc}",
                               transient=True) from exc
        columns = [column[1] for column in raw.header] if raw.header else []
        records = [dict(zip(columns, (_plain(v) for v in row), strict=True))
                   for row in raw.result_set or []]
        counters = Counters(**{ours: int(getattr(raw, theirs) or 0)
                               for ours, theirs in _COUNTERS.items()})
        return QueryResult(records=records, counters=counters)

    def _query(self, statement: str, params: dict[str, Any] | None, read_only: bool,
               timeout_ms: int | None) -> Any:
        run = self._graph.ro_query if read_only else self._graph.query
        return run(statement, params, timeout=timeout_ms)

    def probe_write(self, statement: str, params: Params | None = None, *,
                    undoes_itself: bool = False) -> QueryResult:
        """On a scratch copy of the graph (`GRAPH.COPY`, about 1.4 s per million nodes here,
        undo log included, and as much memory again), dropped afterwards: FalkorDB has no
        transaction to roll back. A statement that `undoes_itself` runs on the graph: one
        statement is atomic here, so no one sees its effects between."""
        if undoes_itself:
            return self.write(statement, params)
        self._refuse_large_copy()
        scratch = f"{self.target.name}__kgm_probe_{uuid.uuid4().hex[:12]}"
        try:
            self._db.connection.execute_command("GRAPH.COPY", self.target.name, scratch)
        except redis.exceptions.ResponseError as exc:
            raise BackendError(f"cannot copy graph {self.target.name} to probe: {exc}") from exc
        copy = FalkorDBBackend.__new__(FalkorDBBackend)
        copy.__dict__.update(self.__dict__)
        copy._graph = self._db.select_graph(scratch)
        try:
            return copy.write(statement, params)
        finally:
            copy._graph.delete()

    def _refuse_large_copy(self) -> None:
        """A copy needs as much memory again as the graph holds (undo log included) and takes
        about 1.4 s per million nodes: past `probe_copy_max_mb`, refused (None: no limit; 0:
        none)."""
        if self.probe_copy_max_mb is None:
            return
        if self.probe_copy_max_mb == 0:
            raise ProbeTooLarge("it would copy the whole graph, and KGMIGRATE_PROBE_COPY_MAX_MB=0 "
                                "allows no copy")
        try:
            usage = self._db.connection.execute_command("GRAPH.MEMORY", "USAGE",
                                                        self.target.name)
        except redis.exceptions.ResponseError as exc:
            raise BackendError(f"cannot size graph {self.target.name} to probe: {exc}") from exc
        fields = dict(zip(usage[::2], usage[1::2], strict=True)) if isinstance(usage, list) \
            else dict(usage)
        size = int(fields.get("total_graph_sz_mb", 0))
        if size > self.probe_copy_max_mb:
            raise ProbeTooLarge(
                f"it would copy the whole graph {self.target.name} ({size:,} MB, undo log "
                f"included), more than KGMIGRATE_PROBE_COPY_MAX_MB={self.probe_copy_max_mb:,}")

    def explain(self, statement: str, params: Params | None = None) -> list[str]:
        """The execution plan FalkorDB would use, one operator per line."""
        try:
            return list(self._graph.explain(statement, self.check_params(params) or None).plan)
        except redis.exceptions.ResponseError as exc:
            raise BackendError(f"FalkorDB refused the statement: {exc}") from exc

    # -- keys ---------------------------------------------------------------------------------

    def _upper_key(self, scope: Scope, internal: bool) -> int | None:
        """The highest anchor key the scope can have (None: empty), bounding the windows."""
        value = self.read(self.dialect.max_key(scope, internal=internal),
                          scope.params if scope.entity == "node" else None).value("max_id")
        return None if value is None else int(value)

    def iter_keys(self, scope: Scope, *, internal: bool = False) -> Iterator[Key]:
        """Walk the id space in windows: each read is an id-range scan of at most `window` ids,
        so memory is bounded and the total cost is linear in the highest id."""
        max_id = self._upper_key(scope, internal)
        if max_id is None:
            return
        statement = self.dialect.keys_in_window(scope, internal=internal)
        for lo in range(0, int(max_id) + 1, self.window):
            params = {**scope.params, LO: lo, HI: lo + self.window}
            for record in self.read(statement, params).records:
                yield int(record["key"])

    def plan_batches(self, scope: Scope, batch_size: int, *,
                     internal: bool = False) -> Iterator[tuple[BatchAddress, int]]:
        """Cuts computed on the server, one id window (`plan_window` ids) at a time: only the
        first key of each batch comes back, not every key. Ranges over anchor values never
        split a start node's relationships; a batch never spans two windows."""
        max_id = self._upper_key(scope, internal)
        if max_id is None:
            return
        statement = self.dialect.batch_marks_in_window(scope, internal=internal)
        for lo in range(0, int(max_id) + 1, self.plan_window):
            hi = lo + self.plan_window
            row = self.read(statement, {**scope.params, LO: lo, HI: hi,
                                        STEP: batch_size}).single()
            if not row["n"]:
                continue
            starts: list[tuple[int, int]] = []  # (first key, index of that key in the window)
            for key, index in row["marks"]:
                if not starts or key != starts[-1][0]:
                    starts.append((int(key), int(index)))
            ends = [*starts[1:], (hi, int(row["n"]))]
            ranges = [(KeyRange(k, next_k), next_i - i)
                      for (k, i), (next_k, next_i) in zip(starts, ends, strict=True)]
            if scope.entity == "relationship":
                # a cut may fall inside one start node's run of relationships: count each range
                counts = self.read(self.dialect.count_ranges(scope, internal=internal), {
                    **scope.params, "kgm_ranges": [[r.lo, r.hi] for r, _ in ranges]}).records
                by_lo = {int(c["lo"]): int(c["n"]) for c in counts}
                ranges = [(r, by_lo.get(r.lo, 0)) for r, _ in ranges]
            yield from ranges

    # -- entity states ----------------------------------------------------------------------

    def capture(self, scope: Scope, batch: BatchAddress) -> StateRows:
        match, params = self.dialect.match_batch(scope, batch)
        return self._states(match, scope.entity, params)

    def iter_states(self, entity: EntityKind, labels: tuple[str, ...] = ()
                    ) -> Iterator[StateRows]:
        """Id windows over the whole node id space (relationships by their start node)."""
        max_id = self.read("MATCH (n) RETURN max(id(n)) AS max_id").value("max_id")
        if max_id is None:
            return
        match = self.dialect.all_states(entity, labels)
        for lo in range(0, int(max_id) + 1, self.window):
            params = {LO: lo, HI: lo + self.window, **({LABELS: list(labels)} if labels else {})}
            rows = self._states(match, entity, params)
            if rows:
                yield rows

    def _states(self, match: str, entity: EntityKind, params: dict[str, Any]
                ) -> StateRows:
        """One page of exact state rows, each part as one JSON text when that is safe
        (`toJSON` escapes neither quotes nor backslashes: such a page goes through the client,
        whose reply parser is about 6x slower)."""
        fields = [name for name, _ in self.dialect.page_fields(entity)]
        page = self.read(self.dialect.state_page(match, entity), params).single()
        if page["unsafe"]:
            statement = f"{match} RETURN {self.dialect.state_columns('e', entity)}"
            rows = self.read(statement, params).records
            parts = self.read(self.dialect.exact_floats(match, as_json=False), params
                              ).column("part")
        else:
            rows = [dict(zip(fields, row, strict=True))
                    for row in json.loads(page["page"], strict=False)]  # raw control chars
            signed = self.read(self.dialect.state_signatures(match, entity), params).single()
            sigs = dict(zip(signed["keys"], signed["sigs"], strict=True))
            for row in rows:
                row["sig"] = sigs[row["k"]]
            parts = json.loads(self.read(self.dialect.exact_floats(match, as_json=True),
                                         params).value("page"))
        return make_exact(state_rows(rows), parts)

    # -- schema -------------------------------------------------------------------------------

    def indexes(self) -> list[IndexSpec]:
        specs: list[IndexSpec] = []
        for rec in self.read("CALL db.indexes()").records:
            # One row per label, listing each indexed property: range indexes are per property.
            for prop in rec["properties"]:
                if "RANGE" in rec["types"].get(prop, []):
                    specs.append(IndexSpec(_entity(rec["entitytype"]), rec["label"], (prop,),
                                           internal=True))
        for rec in self.read("CALL db.constraints()").records:
            if rec["type"] == "UNIQUE" and rec["status"] != "FAILED":
                specs.append(IndexSpec(_entity(rec["entitytype"]), rec["label"],
                                       tuple(rec["properties"]), unique=True, internal=True))
        return specs

    def ensure_index(self, spec: IndexSpec) -> bool:
        existing = self.indexes()
        if _has(existing, spec):
            return False
        range_spec = IndexSpec(spec.entity, spec.name, spec.properties, internal=spec.internal)
        created_range = False
        if not _has(existing, range_spec):
            self.write(self.dialect.create_index(range_spec))
            created_range = True
        if spec.unique:
            try:
                self._create_unique(spec)
            except BackendError:
                if created_range:
                    self.write(self.dialect.drop_index(range_spec))
                raise
        return True

    def drop_index(self, spec: IndexSpec) -> bool:
        if not _has(self.indexes(), spec):
            return False
        if spec.unique:
            # The supporting range index goes with it: FalkorDB created it for the constraint.
            self._constraint_command("DROP", spec)
            spec = IndexSpec(spec.entity, spec.name, spec.properties, internal=spec.internal)
        self.write(self.dialect.drop_index(spec))
        return True

    def _create_unique(self, spec: IndexSpec) -> None:
        self._constraint_command("CREATE", spec)
        deadline = time.monotonic() + _CONSTRAINT_WAIT_S
        while time.monotonic() < deadline:
            status = self._constraint_status(spec)
            if status == "OPERATIONAL":
                return
            if status == "FAILED":
                self._constraint_command("DROP", spec)
                raise BackendError(f"cannot create {spec.describe()}: existing entities "
                                   "have duplicate values")
            time.sleep(0.05)
        raise BackendError(f"{spec.describe()} still pending after {_CONSTRAINT_WAIT_S:.0f}s",
                           transient=True)

    def _constraint_status(self, spec: IndexSpec) -> str | None:
        for rec in self.read("CALL db.constraints()").records:
            if (rec["type"] == "UNIQUE" and rec["label"] == spec.name
                    and tuple(rec["properties"]) == spec.properties):
                return str(rec["status"])
        return None

    def _constraint_command(self, verb: str, spec: IndexSpec) -> None:
        # Arguments travel as separate protocol strings, not Cypher; still validated.
        ident.validate(spec.name, ident.Kind.LABEL, internal=spec.internal)
        for name in spec.properties:
            ident.validate(name, ident.Kind.PROPERTY, internal=spec.internal)
        entity = "NODE" if spec.entity == "node" else "RELATIONSHIP"
        try:
            self._db.connection.execute_command(
                "GRAPH.CONSTRAINT", verb, self.target.name, "UNIQUE", entity, spec.name,
                "PROPERTIES", len(spec.properties), *spec.properties)
        except redis.exceptions.ResponseError as exc:
            raise BackendError(f"FalkorDB refused to {verb.lower()} {spec.describe()}: {exc}") \
                from exc

    # -- misc ---------------------------------------------------------------------------------

    def server_info(self) -> ServerInfo:
        try:
            modules = self._db.connection.execute_command("MODULE", "LIST")
            info = self._db.connection.info("server")
        except redis.exceptions.RedisError as exc:
            raise BackendError(f"FalkorDB at {self.target.display} unreachable: {exc}",
                               transient=True) from exc
        version = graph_module_version(modules)
        return ServerInfo("falkordb", f"FalkorDB {version or 'unknown'} on Redis "
                          f"{info['redis_version']}", self.target.display, release=version)

    def delete_graph(self) -> None:
        """Remove the whole graph key (tests and the sample loader's --replace)."""
        try:
            self._graph.delete()
        except redis.exceptions.ResponseError as exc:
            if "empty key" not in str(exc).lower() and "invalid graph" not in str(exc).lower():
                raise BackendError(f"cannot delete graph {self.target.name}: {exc}") from exc

    def close(self) -> None:
        self._db.connection.close()


def _entity(entitytype: str) -> EntityKind:
    return "node" if entitytype == "NODE" else "relationship"


def _has(specs: list[IndexSpec], wanted: IndexSpec) -> bool:
    """A range index over several properties is one index per property on FalkorDB: it is
    there when each of them is indexed."""
    def same(s: IndexSpec) -> bool:
        return s.entity == wanted.entity and s.name == wanted.name and s.unique == wanted.unique
    if wanted.unique:
        return any(same(s) and s.properties == wanted.properties for s in specs)
    indexed = {p for s in specs if same(s) for p in s.properties}
    return set(wanted.properties) <= indexed


_COMPOUND = (Node, Edge, Path, list, dict)


def _plain(value: Any) -> Any:
    if isinstance(value, Node):
        return plain_entity(value.id, list(value.labels or []), dict(value.properties))
    if isinstance(value, Edge):
        return plain_entity(value.id, [value.relation], dict(value.properties))
    if isinstance(value, Path):
        return [_plain(n) for n in value.nodes()]
    if isinstance(value, list):  # long lists of scalars are common (collected keys, states)
        return [_plain(v) if isinstance(v, _COMPOUND) else v for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def module_field(module: object, name: str) -> str | None:
    """MODULE LIST entries are maps (RESP3-style) or flat [k, v, ...] lists, keys as bytes."""
    items = (module.items() if isinstance(module, dict)
             else zip(module[::2], module[1::2], strict=True) if isinstance(module, list) else ())
    for key, value in items:
        if (key.decode() if isinstance(key, bytes) else key) == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def graph_module_version(modules: list[object]) -> str | None:
    """FalkorDB's version (e.g. 4.22.1) from a MODULE LIST reply."""
    for module in modules:
        if module_field(module, "name") == "graph":
            ver = int(module_field(module, "ver") or 0)
            return f"{ver // 10000}.{ver // 100 % 100}.{ver % 100}"
    return None
