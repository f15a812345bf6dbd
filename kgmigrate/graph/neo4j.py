"""Neo4j adapter (production) over the official driver.

Statements run in managed transactions (`execute_write` / `execute_read`), so the driver
retries transient errors (leader switch, deadlock) itself; transaction metadata tags each
transaction with run/step/batch so `SHOW TRANSACTIONS` and the query log say who is writing.
The exception is a statement with `CALL { ... } IN TRANSACTIONS`, which Neo4j runs only in an
implicit (auto-commit) transaction (`run_autocommit`), not retried by the driver.
"""

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import neo4j
from neo4j import GraphDatabase, Query, unit_of_work
from neo4j import exceptions as neo4j_errors
from neo4j.graph import Node, Path, Relationship

from kgmigrate.cypher.dialect import AFTER, LABELS, LIMIT, STEP, Neo4jDialect
from kgmigrate.errors import BackendError, ConfigError
from kgmigrate.graph.base import GraphBackend, Metadata, Params, plain_entity
from kgmigrate.graph.state import state_rows
from kgmigrate.graph.types import Counters, QueryResult, ServerInfo
from kgmigrate.graph.values import NATIVE_TYPES
from kgmigrate.model.scope import BatchAddress, EntityKind, IndexSpec, Key, KeyList, Scope
from kgmigrate.model.state import StateRows
from kgmigrate.runtime.settings import GraphTarget

log = logging.getLogger("kgmigrate.neo4j")
SHOW_INDEXES = (
    "SHOW RANGE INDEXES YIELD entityType, labelsOrTypes, properties, owningConstraint "
    "WHERE owningConstraint IS NULL "
    "RETURN entityType, labelsOrTypes, properties"
)
SHOW_UNIQUE_CONSTRAINTS = (
    "SHOW UNIQUENESS CONSTRAINTS YIELD entityType, labelsOrTypes, properties "
    "RETURN entityType, labelsOrTypes, properties"
)
SERVER_INFO = "CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition"


class Neo4jBackend(GraphBackend):
    dialect: Neo4jDialect
    native_types = NATIVE_TYPES  # Bolt sends these, and NUL characters, as data
    nul_ok = True

    def __init__(self, target: GraphTarget, *, max_connections: int = 16,
                 query_timeout_s: float = 0.0, fetch_size: int = 10_000,
                 retry_time_s: float = 30.0) -> None:
        if target.backend != "neo4j":
            raise ValueError("Neo4jBackend needs a neo4j:// or bolt:// target")
        if target.password is None:
            raise ConfigError("Neo4j needs a password: set KGMIGRATE_NEO4J_PASSWORD "
                              "(or put it in KGMIGRATE_GRAPH_URL)")
        self.target = target
        self.dialect = Neo4jDialect()
        self._database = target.name
        self._timeout = query_timeout_s or None
        self._fetch_size = fetch_size
        self._driver = GraphDatabase.driver(
            target.driver_uri,
            auth=(target.username or "neo4j", target.password.get_secret_value()),
            max_connection_pool_size=max_connections,
            connection_timeout=10.0,
            max_transaction_retry_time=retry_time_s,  # how long managed transactions retry
            user_agent="kgmigrate",
            # Server notifications (an unknown label in a guard, a deprecation) are for the
            # lint and the tests, not for the logs of every batch.
            notifications_min_severity="OFF",
        )

    def write(self, statement: str, params: Params | None = None, *,
              metadata: Metadata | None = None, timeout: float | None = None) -> QueryResult:
        return self._run(statement, params, metadata, timeout, write=True)

    def read(self, statement: str, params: Params | None = None, *,
             metadata: Metadata | None = None, timeout: float | None = None) -> QueryResult:
        return self._run(statement, params, metadata, timeout, write=False)

    def _run(self, statement: str, params: Params | None, metadata: Metadata | None,
             timeout: float | None, *, write: bool) -> QueryResult:
        checked = self.check_params(params)

        attempts = 0

        @unit_of_work(metadata=dict(metadata or {}), timeout=timeout or self._timeout)
        def work(tx: neo4j.ManagedTransaction) -> QueryResult:
            nonlocal attempts
            attempts += 1
            return _collected(tx.run(statement, checked))

        with self._translate_errors(), self._driver.session(database=self._database) as session:
            result = session.execute_write(work) if write else session.execute_read(work)
        if attempts > 1:
            log.warning("Neo4j: committed after %d retries of its transaction", attempts - 1)
        return result.model_copy(update={"retries": attempts - 1}) if attempts > 1 else result

    def explain(self, statement: str, params: Params | None = None) -> list[str]:
        """The execution plan Neo4j would use, one operator per line (depth first), as
        `Operator details`."""
        checked = self.check_params(params)
        with self._translate_errors(), self._driver.session(database=self._database) as session:
            query: Any = Query(f"EXPLAIN {statement}")
            plan = session.run(query, checked).consume().plan or {}
        lines: list[str] = []

        def walk(op: dict[str, Any], depth: int) -> None:
            details = op.get("args", {}).get("Details", "")
            lines.append(f"{'  ' * depth}{op.get('operatorType', '?')} {details}".rstrip())
            for child in op.get("children", []):
                walk(child, depth + 1)

        walk(dict(plan), 0)
        return lines

    def verify(self) -> None:
        """One connection attempt with the credentials, no retries: a command facing a server
        that is down or a wrong password says so at once, in one line."""
        with self._translate_errors():
            self._driver.verify_connectivity()

    def probe_write(self, statement: str, params: Params | None = None, *,
                    undoes_itself: bool = False) -> QueryResult:
        """In an explicit transaction that is rolled back, whatever the statement does."""
        checked = self.check_params(params)
        with self._translate_errors(), self._driver.session(database=self._database) as session:
            tx = session.begin_transaction(metadata={"kgmigrate": "probe"})
            try:
                return _collected(tx.run(statement, checked))
            finally:
                tx.rollback()

    def run_autocommit(self, statement: str, params: Params | None = None, *,
                       metadata: Metadata | None = None) -> QueryResult:
        """In an implicit (auto-commit) transaction: the only kind that may run
        `CALL { ... } IN TRANSACTIONS`, which commits as it goes. Not retried by the driver
        (a transient error reaches the caller: a step's task runs the statement again)."""
        checked = self.check_params(params)
        with self._translate_errors(), self._driver.session(database=self._database) as session:
            tags = {"kgmigrate": "autocommit", **(metadata or {})}
            query: Any = Query(statement, metadata=tags, timeout=self._timeout)
            return _collected(session.run(query, checked))

    def iter_keys(self, scope: Scope, *, internal: bool = False) -> Iterator[Key]:
        """One ordered query, streamed by the driver `fetch_size` records at a time."""
        statement: Any = self.dialect.keys_in_order(scope, internal=internal)
        query = Query(statement,
                      metadata={"kgmigrate": "plan"})
        with self._translate_errors(), self._driver.session(
            database=self._database, default_access_mode=neo4j.READ_ACCESS,
            fetch_size=self._fetch_size,
        ) as session:
            for record in session.run(query, dict(scope.params)):
                yield str(record["key"])

    def plan_batches(self, scope: Scope, batch_size: int, *,
                     internal: bool = False) -> Iterator[tuple[BatchAddress, int]]:
        """The keys in order, cut into lists on the server: a record per batch, not per key.
        The driver's cost per record made planning take 14 s for 1M nodes, against 2 s for
        a batch's list. The server holds the scope's keys once while it cuts them, as its
        sort of them did already; this process, a few batches at a time."""
        statement: Any = self.dialect.key_lists(scope, internal=internal)
        query = Query(statement, metadata={"kgmigrate": "plan"})
        with self._translate_errors(), self._driver.session(
            database=self._database, default_access_mode=neo4j.READ_ACCESS,
            fetch_size=max(1, self._fetch_size // max(batch_size, 1)),
        ) as session:
            for record in session.run(query, {**scope.params, STEP: batch_size}):
                keys = tuple(str(key) for key in record["keys"])
                yield KeyList(keys), len(keys)

    def iter_states(self, entity: EntityKind, labels: tuple[str, ...] = ()
                    ) -> Iterator[StateRows]:
        """Pages in elementId order (keyset paging: each page starts after the last key)."""
        statement = self.dialect.state_page(self.dialect.all_states(entity, labels), entity)
        after = ""
        while True:
            params: dict[str, Any] = {AFTER: after, LIMIT: self._fetch_size}
            if labels:
                params[LABELS] = list(labels)
            rows = state_rows(self.read(statement, params).records)
            if not rows:
                return
            yield rows
            after = str(rows[-1]["k"])

    def indexes(self) -> list[IndexSpec]:
        specs = []
        for statement, unique in ((SHOW_INDEXES, False), (SHOW_UNIQUE_CONSTRAINTS, True)):
            for rec in self.read(statement).records:
                entity: EntityKind = "node" if rec["entityType"] == "NODE" else "relationship"
                specs.append(IndexSpec(entity, rec["labelsOrTypes"][0],
                                       tuple(rec["properties"]), unique=unique, internal=True))
        return specs

    def ensure_index(self, spec: IndexSpec) -> bool:
        counters = self.write(self.dialect.create_index(spec)).counters
        return bool(counters.indexes_added or counters.constraints_added)

    def drop_index(self, spec: IndexSpec) -> bool:
        counters = self.write(self.dialect.drop_index(spec)).counters
        return bool(counters.indexes_removed or counters.constraints_removed)

    def server_info(self) -> ServerInfo:
        rec = self.read(SERVER_INFO).records[0]
        return ServerInfo("neo4j", f"{rec['name']} {rec['versions'][0]} {rec['edition']}",
                          self.target.display, release=str(rec["versions"][0]),
                          edition=str(rec["edition"]).lower())

    def close(self) -> None:
        self._driver.close()

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """Map driver exceptions to kgmigrate errors, keeping whether a retry may help."""
        where = self.target.display
        try:
            yield
        except neo4j_errors.AuthError as exc:
            raise ConfigError(f"Neo4j at {where} refused the credentials") from exc
        except (neo4j_errors.ServiceUnavailable, neo4j_errors.SessionExpired) as exc:
            raise BackendError(f"Neo4j at {where} unreachable: {_one_line(exc)}",
                               transient=True) from exc
        except neo4j_errors.Neo4jError as exc:
            raise BackendError(f"Neo4j refused the statement: {_one_line(exc.message or exc)}",
                               transient=isinstance(exc, neo4j_errors.TransientError)) from exc


def _one_line(error: object) -> str:
    """The driver's messages span lines; kgmigrate's errors are one line."""
    return " ".join(str(error).split())


def _collected(result: neo4j.Result) -> QueryResult:
    records = [{k: _plain(v) for k, v in zip(r.keys(), r.values(), strict=True)} for r in result]
    return QueryResult(records=records, counters=_counters(result.consume().counters))


def _counters(c: neo4j.SummaryCounters) -> Counters:
    return Counters(
        nodes_created=c.nodes_created, nodes_deleted=c.nodes_deleted,
        relationships_created=c.relationships_created,
        relationships_deleted=c.relationships_deleted,
        properties_set=c.properties_set, labels_added=c.labels_added,
        labels_removed=c.labels_removed, indexes_added=c.indexes_added,
        indexes_removed=c.indexes_removed, constraints_added=c.constraints_added,
        constraints_removed=c.constraints_removed,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Node):
        return plain_entity(value.element_id, sorted(value.labels), dict(value))
    if isinstance(value, Relationship):
        return plain_entity(value.element_id, [value.type], dict(value))
    if isinstance(value, Path):
        return [_plain(n) for n in value.nodes]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
