"""What only a real Neo4j can show: concurrent transactions at read-committed isolation, lock
waits, the driver's retries, a server killed mid-run, Neo4j's own value types, and what
Community edition lacks. Each test runs on the embedded Neo4j the suite starts."""

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from neo4j import GraphDatabase

from kgmigrate import ops
from kgmigrate.compile import compile_op
from kgmigrate.dev.neo4j_stack import EmbeddedNeo4j
from kgmigrate.engine.batch_statement import batch_params, batch_statement
from kgmigrate.engine.undo import Shape, restore_statement
from kgmigrate.errors import BackendError
from kgmigrate.graph.neo4j import Neo4jBackend
from kgmigrate.ledger import TRANSITION, Ledger
from kgmigrate.model.records import MigrationMetadata, MigrationStatus
from kgmigrate.model.scope import KeyList
from kgmigrate.model.status import StatusTransitionError

pytestmark = pytest.mark.neo4j


@pytest.fixture
def neo4j(neo4j_server: EmbeddedNeo4j) -> Iterator[Neo4jBackend]:
    """The embedded Neo4j's database, emptied for this test."""
    backend = Neo4jBackend(neo4j_server.target)
    neo4j_server.empty(backend)
    yield backend
    backend.close()


def eventually(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not reached within {timeout_s}s: {what}"
        time.sleep(0.05)


def blocked_transactions(backend: Neo4jBackend) -> int:
    """Transactions waiting for a lock another holds (`SHOW TRANSACTIONS` says "Blocked")."""
    rows = backend.read("SHOW TRANSACTIONS YIELD status WHERE status STARTS WITH 'Blocked' "
                        "RETURN count(*) AS n").records
    return int(rows[0]["n"])


def while_uncommitted(server: EmbeddedNeo4j, backend: Neo4jBackend, statement: str,
                      params: dict[str, Any], second: Callable[[], object]
                      ) -> tuple[dict[str, Any], object]:
    """Run `statement` in an open transaction, start `second` meanwhile, wait until it blocks
    on a lock the first holds, then commit: (the first's row, what `second` returned)."""
    target = server.target
    assert target.password is not None
    with GraphDatabase.driver(target.driver_uri, auth=(
            "neo4j", target.password.get_secret_value())) as driver, driver.session() as first:
        tx = first.begin_transaction()
        record = tx.run(statement, params).single()
        assert record is not None
        outcome: list[object] = []
        racer = threading.Thread(target=lambda: outcome.append(second()))
        racer.start()
        eventually(lambda: blocked_transactions(backend) == 1, "the second waits for a lock")
        tx.commit()
        racer.join(timeout=60)
    return dict(record), outcome[0]


def ledger_for_one_batch(backend: Neo4jBackend) -> None:
    backend.write("CREATE (:__KGMStep {id: 's1', run_id: 'r1', status: 'in_progress', "
                  "batches_done: 0, entities_done: 0}) "
                  "CREATE (:__KGMBatch {id: 'b1', run_id: 'r1', step_id: 's1', seq: 1, "
                  "status: 'planned'})")


@pytest.mark.parametrize("apply", [
    "SET e.c = coalesce(e.c, 0) + 1",  # writes every entity: their locks order the two
    "WITH e, kgm_key, kgm_pre WHERE e.i < 0 SET e.c = 1",  # writes none: only the ledger does
], ids=["writes-entities", "writes-nothing"])
def test_two_deliveries_of_one_batch_at_the_same_moment_apply_it_once(
        neo4j: Neo4jBackend, neo4j_server: EmbeddedNeo4j, apply: str) -> None:
    # Given a batch of 50 nodes, and its statement as a worker renders it
    keys = neo4j.write("UNWIND range(1, 50) AS i CREATE (e:Item {i: i}) "
                       "RETURN elementId(e) AS k").column("k")
    ledger_for_one_batch(neo4j)
    op = ops.batched("Item", apply)
    statement = batch_statement(neo4j.dialect, compile_op(op, "neo4j"))
    params = batch_params(neo4j.dialect, compile_op(op, "neo4j"), KeyList(tuple(keys)), run_id="r1",
                          step_id="s1", batch_id="b1", worker="w", at="t")
    # When the first delivery has run the statement but not yet committed, and a redelivery
    # runs the same statement meanwhile (it must wait for a lock)
    entities = 50 if "coalesce" in apply else 0  # what `apply` reaches
    record, second = while_uncommitted(neo4j_server, neo4j, statement, params,
                                       lambda: _attempt(neo4j, statement, params))
    assert record["n"] == entities
    # Then the second delivery aborts: the batch, its entities and its step count once
    assert isinstance(second, BackendError) and "/ by zero" in str(second)
    row = neo4j.read("MATCH (b:__KGMBatch {id: 'b1'}) MATCH (s:__KGMStep {id: 's1'}) "
                     "RETURN b.status AS status, b.attempts AS attempts, "
                     "s.batches_done AS batches, s.entities_done AS entities").single()
    assert row == {"status": "completed", "attempts": 1, "batches": 1, "entities": entities}
    changed = neo4j.read("MATCH (e:Item) RETURN e.c AS c, count(*) AS n").records
    assert changed == ([{"c": 1, "n": 50}] if "coalesce" in apply else [{"c": None, "n": 50}])


def _attempt(backend: Neo4jBackend, statement: str, params: dict[str, Any]) -> object:
    try:
        return backend.write(statement, params)
    except BackendError as exc:
        return exc


def test_two_deliveries_of_one_restore_at_the_same_moment_restore_it_once(
        neo4j: Neo4jBackend, neo4j_server: EmbeddedNeo4j) -> None:
    # Given the ledger's schema (a restore's record is new: its unique constraint is the lock),
    # 50 nodes a batch changed (c = 1, with their undo rows), and the statement restoring it
    Ledger(neo4j).ensure_schema()
    keys = neo4j.write("UNWIND range(1, 50) AS i CREATE (e:Item {i: i}) "
                       "RETURN elementId(e) AS k").column("k")
    ledger_for_one_batch(neo4j)
    neo4j.write("CREATE (:__KGMRun {id: 'r1', status: 'rolling_back'})")  # restores are fenced
    op = ops.batched("Item", "SET e.c = 1")
    neo4j.write(batch_statement(neo4j.dialect, compile_op(op, "neo4j")), batch_params(
        neo4j.dialect, compile_op(op, "neo4j"), KeyList(tuple(keys)), run_id="r1", step_id="s1",
        batch_id="b1", worker="w", at="t"))
    statement = restore_statement(neo4j.dialect, Shape("node", False, False), ["Item"])
    params = {"kgm_undo_batch": "b1", "kgm_names": ["Item"], "kgm_missing": 0,
              "kgm_batch_id": "rb:b1", "kgm_run_id": "r1", "kgm_step_id": "rb:s1",
              "kgm_at": "t", "kgm_worker": "w"}
    # When the first delivery has restored them but not yet committed, and a redelivery runs
    # the same restore meanwhile (it must wait for the record's lock)
    record, second = while_uncommitted(neo4j_server, neo4j, statement, params,
                                       lambda: _attempt(neo4j, statement, params))
    assert (record["restored"], record["conflicts"]) == (50, [])
    # Then the second aborts before comparing anything: it neither restores again nor records
    # the first one's restore as 50 conflicts of its own
    assert isinstance(second, BackendError) and "/ by zero" in str(second)
    row = neo4j.read("MATCH (b:__KGMBatch {id: 'rb:b1'}) RETURN b.status AS status, "
                     "b.attempts AS attempts, b.restored AS restored, "
                     "b.conflicts AS conflicts").single()
    assert row == {"status": "completed", "attempts": 1, "restored": 50, "conflicts": 0}
    assert neo4j.read("MATCH (e:Item) RETURN e.c AS c, count(*) AS n").records == [
        {"c": None, "n": 50}]


def test_two_callers_moving_a_run_at_the_same_moment_cannot_both_succeed(
        neo4j: Neo4jBackend, neo4j_server: EmbeddedNeo4j) -> None:
    # Given a run in progress (two deliveries of a failing step's callback both fail it)
    ledger = Ledger(neo4j)
    meta = MigrationMetadata(version="V0001", description="x", created_by="t", checksum="c",
                             path="p", steps=[])
    run = ledger.create_run([meta], run_id="run_race")
    ledger.transition(run.id, MigrationStatus.IN_PROGRESS)
    params = {"id": run.id, "status": "rolling_back", "entry": "rolling_back@t",
              "error": "first", "finished_at": None, "backup_ref": None,
              "allowed_from": ["in_progress", "validating", "pending"]}
    # When the first has moved it to ROLLING_BACK but not yet committed, and the second tries
    # the same move meanwhile
    _, second = while_uncommitted(neo4j_server, neo4j, TRANSITION, params,
                                  lambda: _transition(ledger, run.id))
    # Then the second is refused (it read the status after the lock), and the run was moved once
    assert isinstance(second, StatusTransitionError), second
    run = ledger.require_run(run.id)
    assert (run.status, run.error_log) == (MigrationStatus.ROLLING_BACK, "first")
    assert [entry.split("@")[0] for entry in run.history].count("rolling_back") == 1, run.history


def _transition(ledger: Ledger, run_id: str) -> object:
    try:
        return ledger.transition(run_id, MigrationStatus.ROLLING_BACK, error="second")
    except StatusTransitionError as exc:
        return exc


def test_a_nodes_signature_lists_its_labels_in_one_order_whatever_the_database_history(
        neo4j: Neo4jBackend, neo4j_server: EmbeddedNeo4j) -> None:
    """`labels()` follows the label tokens' ids, so its order depends on which label a database
    saw first. And it is not even stable for one node: in a full-suite run the capture read
    `["Gene", "Late"]` and the batch statement, after its own writes, `["Late", "Gene"]` for
    the same unchanged nodes (their undo records show it), so a rollback kept 2,999 of 3,000
    nodes as conflicts, step after step. The signature sorts them."""
    # Given tokens created Zeta first (so `labels()` says Zeta before Alpha), and such a node
    neo4j.write("CREATE (t:Zeta) DELETE t")
    neo4j.write("CREATE (:Alpha:Zeta {i: 1}) CREATE (:Other)")
    sig = neo4j.dialect.signature("e", "node")
    assert neo4j.read("MATCH (e:Alpha) RETURN labels(e) AS l").value("l") == ["Zeta", "Alpha"]
    # When its signature is read alone, and inside a transaction that has written
    alone = neo4j.read(f"MATCH (e:Alpha) RETURN {sig} AS sig").value("sig")
    target = neo4j_server.target
    assert target.password is not None
    with GraphDatabase.driver(target.driver_uri, auth=(
            "neo4j", target.password.get_secret_value())) as driver, \
            driver.session() as session, session.begin_transaction() as tx:
        tx.run("MATCH (o:Other) SET o.touched = true").consume()
        record = tx.run(f"MATCH (e:Alpha) RETURN {sig} AS sig").single()
        assert record is not None
        tx.rollback()
    # Then both list the labels sorted by name
    assert record["sig"] == alone == [["Alpha", "Zeta"], {"i": 1}]


# -- Neo4j's own values, exact through forward, rollback and downgrade ----------------------

NEO4J_VALUES = (
    "{d: date('2024-02-29'), lt: localtime('12:34:56.123456789'), "
    "t: time('23:59:59.999999999+02:30'), ldt: localdatetime('0001-01-01T00:00:00.000000001'), "
    "zdt: datetime('2024-10-27T02:30:00.5[Europe/Berlin]'), "
    "odt: datetime('1969-07-20T20:17:40.000000001-05:00'), "
    "du: duration('P1Y2M3DT4H5M6.000000007S'), nd: duration({seconds: -1, nanoseconds: 1}), "
    "p2: point({x: 1.5, y: -0.0}), p3: point({x: 1, y: 2, z: 5e-324}), "
    "g: point({longitude: 13.4, latitude: 52.5}), "
    "g3: point({longitude: -180.0, latitude: -90.0, height: 1.7976931348623157e308}), "
    "ds: [date('2000-01-01'), date('9999-12-31')], ps: [point({x: 1, y: 2}), point({x: 3, y: 4})], "
    "zs: [datetime('2024-03-31T02:30:00[Europe/Berlin]'), datetime('2024-01-01T00:00Z')], "
    "by: $bytes, big: 9223372036854775807, small: -9223372036854775808, u: '𝄞 🧬 漢 \\u0000x', "
    "f: [-0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1], z: -0.0}"
)
RENAME_ALL = '''
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=40, steps=[
    ops.batched("Typed", "SET e = properties(e), e.moved = e.{first}", down="REMOVE e.moved"),
    ops.batched("Typed", "SET e.seen = true", validation="{validation}", down="REMOVE e.seen"),
])
'''


def typed_graph(graph: Neo4jBackend) -> None:
    """100 nodes holding every kind of value Neo4j stores (and FalkorDB lacks), and a copy of
    each made on the server (`:Original`, outside the migration's scope): values compared on
    the server never pass through the driver, whose reading of some of them is lossy."""
    graph.write(f"UNWIND range(1, 100) AS i CREATE (e:Typed) SET e = {NEO4J_VALUES}, e.i = i "
                "CREATE (o:Original) SET o = properties(e)", {"bytes": bytes(range(256))})


def same_on_the_server(graph: Neo4jBackend) -> None:
    rows = graph.read("MATCH (e:Typed) MATCH (o:Original {i: e.i}) RETURN count(*) AS n, "
                      "sum(CASE WHEN properties(e) = properties(o) THEN 1 ELSE 0 END) AS same")
    assert rows.single() == {"n": 100, "same": 100}


@pytest.mark.parametrize("server", ["neo4j"], indirect=True)  # FalkorDB has none of them
def test_neo4j_values_survive_a_rollback_and_a_downgrade_exactly(
        execution: Any, graph: Any) -> None:
    from kgmigrate import runs
    from kgmigrate.connect import resolve
    from kgmigrate.fingerprint import fingerprint
    from kgmigrate.model.records import MigrationStatus
    from kgmigrate.model.registry import Registry
    from kgmigrate.runtime.settings import load_settings
    from tests.test_execution import start

    typed_graph(graph)
    digest = fingerprint(graph)
    # Given a migration that rewrites every property map, and fails on its last batch
    execution.write_migration("V0001__typed.py", RENAME_ALL.format(
        first="zdt", validation="e.i <= 90"))
    execution.start_worker()
    run = runs.wait(graph, start(execution, graph), timeout_s=180)
    # When it is rolled back from the undo log, every value is as it was, to the nanosecond
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    assert "failed validation `e.i <= 90`" in (run.error_log or "")
    # (and the failed batch keeps the values of the entities that failed, Neo4j's own types
    # as the text people read)
    failed = Ledger(graph).failed_batches(run)
    assert sum(f.failing or 0 for f in failed) == 10
    assert {(o.properties["d"], o.properties["du"]) for f in failed for o in f.offending} == {
        ("2024-02-29", "P1Y2M3DT4H5M6.000000007S")}
    assert run.steps[0].batches_done == 3  # step 1 had rewritten every map before the failure
    same_on_the_server(graph)
    assert fingerprint(graph) == digest
    # And when it succeeds and is downgraded, the same holds
    execution.write_migration("V0001__typed.py", RENAME_ALL.format(
        first="zdt", validation="true"))
    run = runs.wait(graph, start(execution, graph), timeout_s=180)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    moved = graph.read("MATCH (e:Typed {i: 7}) RETURN e.moved = e.zdt AS same").value("same")
    assert moved is True
    downgrade = runs.downgrade(graph, Registry.load(execution.migrations),
                               resolve(load_settings()), "base")
    assert downgrade is not None
    assert runs.wait(graph, downgrade, timeout_s=180).status is MigrationStatus.COMPLETED
    same_on_the_server(graph)
    assert fingerprint(graph) == digest


# -- what Community edition has, and lacks ---------------------------------------------------


def test_a_probe_write_leaves_nothing_behind(neo4j: Neo4jBackend) -> None:
    probed = neo4j.probe_write("CREATE (n:Probe {v: 1}) RETURN n.v AS v")
    assert probed.records == [{"v": 1}] and probed.counters.nodes_created == 1
    assert neo4j.read("MATCH (n:Probe) RETURN count(n) AS n").value("n") == 0


def test_index_and_uniqueness_ddl_and_show_work_on_community(neo4j: Neo4jBackend) -> None:
    from kgmigrate.model.scope import IndexSpec

    index = IndexSpec("node", "Compound", ("cid",))
    unique = IndexSpec("node", "Gene", ("symbol",), unique=True)
    edge = IndexSpec("relationship", "TREATS", ("since",))
    for spec in (index, unique, edge):
        assert neo4j.ensure_index(spec) is True
        assert neo4j.ensure_index(spec) is False  # idempotent by name
    shown = {(s.entity, s.name, s.properties, s.unique) for s in neo4j.indexes()}
    assert shown == {("node", "Compound", ("cid",), False), ("node", "Gene", ("symbol",), True),
                     ("relationship", "TREATS", ("since",), False)}
    neo4j.write("CREATE (:Gene {symbol: 'TP53'})")
    with pytest.raises(BackendError, match="already exists"):
        neo4j.write("CREATE (:Gene {symbol: 'TP53'})")
    for spec in (index, unique, edge):
        assert neo4j.drop_index(spec) is True
        assert neo4j.drop_index(spec) is False
    assert neo4j.indexes() == []


@pytest.mark.parametrize("constraint", [
    "CREATE CONSTRAINT FOR (n:Gene) REQUIRE n.symbol IS NOT NULL",
    "CREATE CONSTRAINT FOR (n:Gene) REQUIRE (n.symbol, n.taxon) IS NODE KEY",
    "CREATE CONSTRAINT FOR (n:Gene) REQUIRE n.symbol IS :: STRING",
], ids=["existence", "node-key", "property-type"])
def test_what_community_lacks_is_one_clear_error(neo4j: Neo4jBackend, constraint: str) -> None:
    with pytest.raises(BackendError) as refused:
        neo4j.write(constraint)
    message = str(refused.value)
    assert message.startswith("Neo4j refused the statement: ")
    assert "Enterprise Edition" in message and "\n" not in message


# -- parallel batches, lock waits, deadlocks, a server killed mid-run -------------------------

COUNT_AND_RETYPE = '''
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size={batch}, steps=[
    ops.batched("Item", "SET e.c = coalesce(e.c, 0) + 1"),
    ops.batched(rel_type="LINK", apply="CREATE (s)-[r:LINKED]->(t) SET r = properties(e) "
                "DELETE e", creates="r", deletes=True),
])
'''


def items_and_hub_links(graph: Any, items: int, links: int) -> None:
    """`items` Items, and `links` relationships among the first 20 of them: every batch of the
    retype locks the same few hub nodes, in its own order (deadlocks become possible)."""
    graph.write(f"UNWIND range(1, {items}) AS i CREATE (:Item {{i: i}})")
    graph.write("MATCH (a:Item) WHERE a.i <= 20 WITH collect(a) AS hubs "
                f"UNWIND range(0, {links - 1}) AS k "
                "WITH hubs[k % 20] AS s, hubs[(k * 7 + 3) % 20] AS t, k "
                "CREATE (s)-[:LINK {k: k}]->(t)")


def driver_retries_logged(execution: Any) -> int:
    """What the workers' Neo4j backends logged: 'committed after N retries'."""
    import re

    return sum(int(n) for log in execution.logs.glob("worker-*.log")
               for n in re.findall(r"committed after (\d+) retries", log.read_text()))


def ledger_retries(graph: Any, run_id: str) -> int:
    return int(graph.read("MATCH (b:__KGMBatch {run_id: $id}) "
                          "RETURN sum(coalesce(b.retries, 0)) AS n", {"id": run_id}).value("n"))


@pytest.mark.parametrize("server", ["neo4j"], indirect=True)
def test_batches_of_a_step_commit_in_parallel_transactions_and_no_deadlock_escapes(
        execution: Any, graph: Any) -> None:
    from kgmigrate import runs
    from kgmigrate.ledger import Ledger
    from kgmigrate.model.records import MigrationStatus
    from tests.test_execution import start, wait_for

    # Given 4,000 items, 3,000 links between 20 hub nodes, and a migration of two steps
    items_and_hub_links(graph, 4_000, 3_000)
    execution.write_migration("V0001__count_and_retype.py", COUNT_AND_RETYPE.format(batch=100))
    # and another client holding a write lock on one item (of one batch) in an open transaction
    target = graph.target
    with GraphDatabase.driver(target.driver_uri, auth=(
            "neo4j", target.password.get_secret_value())) as driver, driver.session() as other:
        tx = other.begin_transaction()
        tx.run("MATCH (e:Item {i: 2500}) SET e.held = true").consume()
        # When two workers of two processes each run the step's 40 batches
        execution.start_worker(concurrency=2)
        execution.start_worker(concurrency=2)
        run_id = start(execution, graph)
        # Then the other 39 batches commit while that one batch's transaction waits for the lock
        wait_for(graph, run_id, lambda r: r.steps[0].batches_done == 39, timeout_s=180)
        assert blocked_transactions(graph) == 1
        assert Ledger(graph).run(run_id).steps[0].batches_done == 39  # type: ignore[union-attr]
        tx.rollback()
    # And once the lock is released the run completes: every entity changed exactly once,
    # although the retype's batches lock the same hub nodes in different orders
    run = runs.wait(graph, run_id, timeout_s=240)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert [(s.batches_done, s.entities_done) for s in run.steps] == [(40, 4_000), (30, 3_000)]
    assert graph.read("MATCH (e:Item) RETURN e.c AS c, count(*) AS n").records == [
        {"c": 1, "n": 4_000}]
    assert graph.read("MATCH ()-[r:LINKED]->() RETURN count(r) AS n, count(DISTINCT r.k) AS k"
                      ).single() == {"n": 3_000, "k": 3_000}
    assert graph.read("MATCH ()-[r:LINK]->() RETURN count(r) AS n").value("n") == 0
    # And whatever the driver retried (a deadlock is a transient error) the ledger counts
    # (besides redeliveries: the held batch outlives the tests' 10 s visibility timeout)
    assert ledger_retries(graph, run_id) >= driver_retries_logged(execution)


@pytest.mark.parametrize("server", ["neo4j"], indirect=True)
def test_a_graph_server_killed_mid_run_and_restarted_changes_every_entity_once(
        execution: Any, graph: Any, neo4j_server: EmbeddedNeo4j) -> None:
    from kgmigrate import runs
    from kgmigrate.connect import resolve
    from kgmigrate.model.records import MigrationStatus
    from kgmigrate.runtime.settings import load_settings
    from tests.test_execution import start, wait_for

    # Given a run of 60 batches on two workers, the broker staying up throughout
    items_and_hub_links(graph, 6_000, 0)
    execution.write_migration("V0001__count.py", COUNT_AND_RETYPE.format(batch=100))
    execution.env["KGMIGRATE_AUTO_ROLLBACK"] = "false"  # a failed run is resumed, not undone
    execution.start_worker()
    execution.start_worker()
    run_id = start(execution, graph)
    wait_for(graph, run_id, lambda r: r.steps[0].batches_done >= 5, timeout_s=180)
    # When the graph server is killed (no shutdown, no checkpoint) and started again
    neo4j_server.kill()
    neo4j_server.up()
    # Then the run completes (retried with backoff), or fails cleanly and resume completes it
    run = runs.wait(graph, run_id, timeout_s=300)
    if run.status is MigrationStatus.FAILED:
        runs.resume(graph, resolve(load_settings()), run_id)
        run = runs.wait(graph, run_id, timeout_s=300)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    # and every entity was changed exactly once, as the ledger says
    assert graph.read("MATCH (e:Item) RETURN e.c AS c, count(*) AS n").records == [
        {"c": 1, "n": 6_000}]
    assert (run.steps[0].batches_done, run.steps[0].entities_done) == (60, 6_000)
