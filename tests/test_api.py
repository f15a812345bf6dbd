"""The read-side API over real files and the real FalkorDB server."""

import re
from pathlib import Path

import pytest

from kgmigrate import DataMigrationManager, api
from kgmigrate.dev.sample import summarize
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import MigrationStatus
from kgmigrate.model.registry import Registry
from kgmigrate.model.versions import Version
from kgmigrate.runtime.settings import load_settings

V1 = "from kgmigrate import Migration, ops\nmigration = Migration(author='ana', steps=[\n" \
     "    ops.batched('Compound', 'SET e.reviewed = false', down='REMOVE e.reviewed'),\n" \
     "    ops.batched(rel_type='TREATS', apply='SET e.checked = true', where='e.w > $min', " \
     "min=0.5),\n])\n"
V2 = "// author: bo\nCREATE INDEX FOR (g:Gene) ON (g.symbol);\n"


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    (tmp_path / "V0001__review.py").write_text(V1)
    (tmp_path / "V0002__gene_index.cypher").write_text(V2)
    return tmp_path


def apply_for_test(backend: GraphBackend, registry: Registry, version: str) -> None:
    """Record a migration as applied (execution arrives with the execution layer)."""
    v = Version.parse(version)
    Ledger(backend).record_applied(registry.metadata(v), run_id="run_test", duration_ms=5)


def test_list_validate_and_repair_follow_the_files(graph: GraphBackend,
                                                   migrations: Path) -> None:
    registry = Registry.load(migrations)
    assert [(m.version, m.state) for m in api.list_migrations(graph, registry)] == [
        ("V0001", "pending"), ("V0002", "pending")]
    apply_for_test(graph, registry, "V0001")
    assert api.validate(graph, registry).valid
    # When an applied migration's file is edited
    original = registry.get("V1").checksum
    (migrations / "V0001__review.py").write_text(V1.replace("false", "true"))
    registry = Registry.load(migrations)
    # then validate names the file and both checksums, and plan refuses to go on
    result = api.validate(graph, registry)
    assert not result.valid
    assert result.problems[0].kind == "checksum_mismatch"
    message = result.problems[0].message
    assert "V0001__review.py changed after it was applied" in message
    assert original in message and registry.get("V1").checksum in message
    with pytest.raises(KgmError, match=re.escape("V0001__review.py changed")):
        api.plan(graph, registry)
    # and repair re-records the checksum on purpose, after which all is valid
    assert api.repair(graph, registry).repaired == ["V0001"]
    assert api.validate(graph, registry).valid
    assert api.repair(graph, registry).repaired == []


def test_an_applied_migration_whose_file_is_gone_is_reported(graph: GraphBackend,
                                                             migrations: Path) -> None:
    apply_for_test(graph, Registry.load(migrations), "V0002")
    (migrations / "V0002__gene_index.cypher").unlink()
    registry = Registry.load(migrations)
    states = {m.version: m.state for m in api.list_migrations(graph, registry)}
    assert states == {"V0001": "pending", "V0002": "missing_file"}
    assert api.validate(graph, registry).problems[0].kind == "missing_file"


def test_plan_counts_entities_per_step_and_writes_nothing(graph: GraphBackend,
                                                          migrations: Path) -> None:
    graph.write("UNWIND range(1, 30) AS i CREATE (:Compound {i: i})")
    graph.write("MATCH (c:Compound) WHERE c.i <= 10 CREATE (c)-[:TREATS {w: c.i / 10.0}]->"
                   "(:Condition)")
    before = summarize(graph)
    planned = api.plan(graph, Registry.load(migrations))
    assert [p.version for p in planned] == ["V0001", "V0002"]
    assert [(s.batched, s.estimated_entities) for s in planned[0].steps] == [(True, 30),
                                                                            (True, 5)]
    assert planned[1].steps[0].estimated_entities is None  # a statement run once
    assert planned[1].depends_on == ["V0001"]
    assert summarize(graph) == before  # nothing written, not even the ledger's indexes
    assert graph.indexes() == []
    assert [p.version for p in api.plan(graph, Registry.load(migrations), "V1")] == ["V0001"]


def test_plan_orders_a_merge_of_two_branches_against_the_applied_chain(
        graph: GraphBackend, tmp_path: Path) -> None:
    # Given V1, branches V2 and V3 from it, V4 merging them, and V1 + V3 already applied
    (tmp_path / "V0001__root.cypher").write_text("RETURN 1;")
    (tmp_path / "V0002__left.cypher").write_text("// depends_on: V0001\nRETURN 2;")
    (tmp_path / "V0003__right.cypher").write_text("// depends_on: V0001\nRETURN 3;")
    (tmp_path / "V0004__merge.cypher").write_text("// depends_on: V0003, V0002\nRETURN 4;")
    registry = Registry.load(tmp_path)
    for version in ("V0001", "V0003"):
        apply_for_test(graph, registry, version)
    # then the plan is what is left, in dependency order, with the merge's parents listed
    planned = api.plan(graph, registry)
    assert [(p.version, p.depends_on) for p in planned] == [
        ("V0002", ["V0001"]), ("V0004", ["V0003", "V0002"])]
    assert [p.version for p in api.plan(graph, registry, "V0002")] == ["V0002"]
    assert [h.version for h in api.history(graph)] == ["V0001", "V0003"]


def test_new_scaffolds_the_next_version_that_loads(tmp_path: Path,
                                                   migrations: Path) -> None:
    path = api.new_migration(migrations, "Add person age!", author="cy")
    assert path.name == "V0003__add_person_age.py"
    loaded = Registry.load(migrations).get("V3")
    assert loaded.definition.author == "cy"
    assert loaded.description == "add person age"
    cypher = api.new_migration(tmp_path / "fresh", "first one", kind="cypher")
    assert cypher.name == "V0001__first_one.cypher"
    with pytest.raises(KgmError, match="no Cypher statements"):
        Registry.load(tmp_path / "fresh")  # the .cypher template waits for statements
    with pytest.raises(KgmError, match="does not make a file name"):
        api.new_migration(migrations, "!!!")


def test_the_tickets_manager_creates_and_reports_a_run(
        graph: GraphBackend, migrations: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGMIGRATE_MIGRATIONS_DIR", str(migrations))
    manager = DataMigrationManager(load_settings(), backend=graph)
    metadata = manager.registry().metadata(Version.parse("1"))
    run_id = manager.create_migration(metadata)
    run = manager.get_migration_status(run_id)
    assert run is not None
    assert (run.status, run.migrations, len(run.steps)) == (MigrationStatus.PENDING,
                                                             ["V0001"], 2)
    assert api.status(graph).id == run_id
    assert manager.get_migration_status("run_missing") is None
    with pytest.raises(KgmError, match="no run run_missing"):
        api.status(graph, "run_missing")
