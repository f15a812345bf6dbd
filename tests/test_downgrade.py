"""Downgrade end to end: the inverses of applied migrations, run like an upgrade."""

import pytest

from kgmigrate import api, runs
from kgmigrate.connect import resolve
from kgmigrate.errors import KgmError
from kgmigrate.fingerprint import fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import MigrationStatus
from kgmigrate.model.registry import Registry
from kgmigrate.model.versions import Version
from kgmigrate.runtime.settings import load_settings
from tests.conftest import Execution, link_items
from tests.test_execution import start

RENAME = '''
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=3000, steps=[
    ops.batched("Item", "SET e.title = e.name REMOVE e.name", where="e.name IS NOT NULL",
                down="SET e.name = e.title REMOVE e.title", down_where="e.title IS NOT NULL"),
])
'''
RETYPE = '''
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=3000, steps=[
    ops.batched(rel_type="NEXT", apply="CREATE (s)-[r:FOLLOWS]->(t) SET r = properties(e) "
                "DELETE e", creates="r", deletes=True, down_on="FOLLOWS",
                down="CREATE (s)-[r:NEXT]->(t) SET r = properties(e) DELETE e"),
])
'''
IRREVERSIBLE = '''
from kgmigrate import Migration, ops

migration = Migration(author="test", steps=[ops.batched("Item", "REMOVE e.name")])
'''


def load(graph: GraphBackend) -> None:
    graph.write("UNWIND range(1, 20000) AS i CREATE (:Item {i: i, name: 'item ' + toString(i), "
                "w: i / 3.0})")
    link_items(graph, 10_000, "{w: k / 7.0, since: k}")


def test_downgrading_a_rename_and_a_retype_restores_the_fingerprint(
        execution: Execution, graph: GraphBackend) -> None:
    # Given an upgraded graph
    load(graph)
    before = fingerprint(graph)
    execution.write_migration("V0001__rename_name.py", RENAME)
    execution.write_migration("V0002__retype_next.py", RETYPE)
    execution.start_worker(concurrency=2)
    run = runs.wait(graph, start(execution, graph), timeout_s=180)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    upgraded = fingerprint(graph)
    assert upgraded != before
    assert graph.read("MATCH ()-[r:FOLLOWS]->() RETURN count(r) AS n").value("n") == 10_000
    # When it is downgraded to base
    registry = Registry.load(execution.migrations)
    run_id = runs.downgrade(graph, registry, resolve(load_settings()), "base")
    assert run_id is not None
    run = runs.wait(graph, run_id, timeout_s=180)
    # Then the inverses ran newest first and the graph is exactly as before
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert [s.version for s in run.steps] == ["V0002", "V0001"]
    assert fingerprint(graph) == before
    # and the chain records it: nothing applied, both migrations pending again
    ledger = Ledger(graph)
    assert ledger.applied() == []
    applied = [Version.parse(a.version) for a in ledger.applied()]
    assert [str(v) for v in registry.pending(applied)] == ["V0001", "V0002"]
    states = graph.read("MATCH (m:__KGMMigration) RETURN m.version AS v, m.state AS s "
                           "ORDER BY m.sequence").records
    assert [(r["v"], r["s"]) for r in states] == [
        ("V0001", "downgraded"), ("V0002", "downgraded"), ("V0002", "downgrade"),
        ("V0001", "downgrade")]
    # and downgrading again has nothing to do
    assert runs.downgrade(graph, registry, resolve(load_settings()), "base") is None


def test_a_migration_without_an_inverse_is_downgraded_from_its_runs_undo_log(
        execution: Execution, graph: GraphBackend) -> None:
    # Given a graph upgraded by a migration that removes a property (no down fragment)
    load(graph)
    before = fingerprint(graph)
    execution.write_migration("V0001__drop_name.py", IRREVERSIBLE)
    execution.start_worker()
    first = runs.wait(graph, start(execution, graph), timeout_s=120)
    assert first.status is MigrationStatus.COMPLETED, first.error_log
    registry, endpoints = Registry.load(execution.migrations), resolve(load_settings())
    # Then the downgrade plan restores it from the undo log of the run that applied it
    plan = api.downgrade_plan(graph, registry, "base")
    assert [(u.version, u.undone_by, u.revert_run) for u in plan.undo] == [
        ("V0001", "undo_log", first.id)]
    assert [s.estimated_entities for s in plan.undo[0].steps] == [20_000]
    # When it is downgraded to base
    assert runs.downgrade(graph, registry, endpoints, "base") == first.id
    reverted = runs.wait(graph, first.id, timeout_s=180)
    # Then that run is reverted: the graph is exactly as before, the migration pending again
    assert reverted.status is MigrationStatus.ROLLED_BACK and reverted.reverts, \
        reverted.error_log
    assert fingerprint(graph) == before
    assert Ledger(graph).applied() == []
    # When it is applied again and that run's undo log is pruned
    second = runs.wait(graph, start(execution, graph), timeout_s=120)
    assert second.status is MigrationStatus.COMPLETED, second.error_log
    Ledger(graph).drop_undo(second.id)
    # Then the downgrade is refused, naming the op and why the log cannot stand in for it,
    # and nothing is undone
    with pytest.raises(KgmError, match=r"V0001__drop_name.py cannot be downgraded: the batched "
                                       r"Cypher step .* has no down fragment; nor can its "
                                       r"run's undo log: .*has been pruned"):
        runs.downgrade(graph, registry, endpoints, "base")
    assert [a.version for a in Ledger(graph).applied()] == ["V0001"]
    assert Ledger(graph).require_run(second.id).status is MigrationStatus.COMPLETED
