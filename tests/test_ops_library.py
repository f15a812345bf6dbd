"""The operations library: the Cypher each op renders (no server), and each op run forward,
checked, and reversed on the embedded stack with real workers (fingerprint restored)."""

from pathlib import Path

import pytest

from kgmigrate import Migration, ops, runs
from kgmigrate.compile import compile_op, render
from kgmigrate.connect import resolve
from kgmigrate.errors import IdentifierError, KgmError
from kgmigrate.fingerprint import fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import MigrationStatus
from kgmigrate.model.registry import Registry
from kgmigrate.ops import IrreversibleOperationError, from_spec
from kgmigrate.runtime.settings import load_settings
from tests.conftest import Execution, rollback_story
from tests.test_cli import run as cli
from tests.test_execution import start

# -- rendering (no server) ------------------------------------------------------------------


def test_rename_property_renders_quoted_names_and_reverses_itself() -> None:
    op = ops.rename_property("Compound", "mol weight", "molecular_weight", where="e.x > $min",
                             min=1)
    rendered = render(op, "neo4j")
    assert rendered.apply == "SET e.`molecular_weight` = e.`mol weight` REMOVE e.`mol weight`"
    assert rendered.where == "(e.x > $min) AND (e.`mol weight` IS NOT NULL)"
    assert rendered.params == {"min": 1}
    assert rendered.validation == "e.`mol weight` IS NULL AND e.`molecular_weight` IS NOT NULL"
    assert op.reverse().reverse() == op
    assert from_spec(op.kind, op.spec()) == op  # the ledger round trip workers rely on


def test_add_property_sets_only_where_absent_with_the_value_as_a_parameter() -> None:
    rendered = render(ops.add_property("Compound", "status", "x') DETACH DELETE e //"), "neo4j")
    assert rendered.apply == "SET e.`status` = $op_value"
    assert rendered.params == {"op_value": "x') DETACH DELETE e //"}
    assert rendered.where == "(e.`status` IS NULL)"
    assert rendered.check == ("OPTIONAL MATCH (e:`Compound`) WHERE (e.`status` IS NOT NULL) "
                              "WITH count(e) AS made RETURN made >= $kgm_planned AS valid")
    with pytest.raises(IrreversibleOperationError, match="snapshot"):
        ops.add_property("Compound", "status", "x").reverse()
    op = ops.add_property("Person", "full", expression="e.first + ' ' + e.last")
    computed = render(op, "neo4j")
    assert computed.apply == "SET e.`full` = (e.first + ' ' + e.last)"
    with pytest.raises(KgmError, match="clause"):
        ops.add_property("Person", "full", expression="e.first) DETACH DELETE e //")
    with pytest.raises(KgmError, match="not both"):
        ops.add_property("Person", "full")


def test_label_and_relationship_ops_render_what_they_say() -> None:
    assert render(ops.add_label("Gene", "Reviewed"), "neo4j").apply == "SET e:`Reviewed`"
    # the inverse removes it from the same nodes only, not from every node labelled Reviewed
    assert ops.add_label("Gene", "Reviewed").reverse() == ops.remove_label("Gene", "Reviewed")
    with pytest.raises(IrreversibleOperationError, match="which nodes had the label"):
        ops.remove_label("Gene", "Reviewed").reverse()
    rename = render(ops.rename_label("Gene", "Protein"), "neo4j")
    assert rename.apply == "SET e:`Protein` REMOVE e:`Gene`"
    assert rename.check == ("OPTIONAL MATCH (e:`Gene`) WITH count(e) AS remaining "
                            "OPTIONAL MATCH (e:`Protein`) WITH remaining, count(e) AS made "
                            "RETURN remaining = 0 AND made >= $kgm_planned AS valid")
    retype = render(ops.retype_relationship("TREATS", "TREATS_CONDITION"), "neo4j")
    assert retype.apply == ("CREATE (s)-[op_r:`TREATS_CONDITION`]->(t) SET op_r = "
                            "properties(e) DELETE e")
    assert (retype.creates, retype.deletes) == ("op_r", True)
    assert ops.retype_relationship("A", "B").reverse() == ops.retype_relationship("B", "A")
    # the ticket's modify_relationship(from_label, to_label, old_type, new_type)
    between = ops.retype_relationship("A", "B", from_label="Drug", to_label="Dis ease",
                                      where="e.w > $w", w=1)
    assert between.where == "(s:`Drug`) AND (t:`Dis ease`) AND (e.w > $w)"
    assert between.reverse().where == between.where
    with pytest.raises(IdentifierError):
        ops.retype_relationship("A", "B", from_label="Drug`) DETACH DELETE s //")
    with pytest.raises(KgmError, match="works on relationships"):
        ops.InvertRelationship("Gene")
    invert = render(ops.invert_relationship("R"), "neo4j")
    assert invert.apply.startswith("CREATE (t)-[op_r:`R`]->(s)")


@pytest.mark.parametrize("build", [
    lambda: ops.rename_property("A", "x`y", "z"),
    lambda: ops.add_label("A", "__KGMRun"),
    lambda: ops.retype_relationship("R", "bad\nname"),
    lambda: ops.create_index("A", ""),
])
def test_hostile_names_are_refused_when_the_op_is_built(build: object) -> None:
    with pytest.raises(IdentifierError):
        build()  # type: ignore[operator]


def test_ops_refuse_what_they_cannot_mean() -> None:
    with pytest.raises(KgmError, match="exactly one of label or rel_type"):
        ops.rename_property(None, "a", "b")
    with pytest.raises(KgmError, match="to itself"):
        ops.rename_label("A", "A")
    with pytest.raises(KgmError, match="reserved"):
        ops.rename_property("A", "a", "b", kgm_x=1)
    with pytest.raises(IrreversibleOperationError, match="drops data"):
        ops.remove_property("A", "x").reverse()


def test_transforms_are_expressions_bound_to_the_old_value() -> None:
    op = ops.transform_property("Gene", "symbol", "toUpper(trim(value)) + $suffix",
                                inverse="toLower(value)", suffix="!")
    rendered = render(op, "neo4j")
    assert rendered.apply == ("FOREACH (op_v IN [toUpper(trim(e.`symbol`)) + $suffix] | "
                              "REMOVE e.`symbol` SET e.`symbol` = op_v)")
    assert rendered.params == {"suffix": "!"}
    assert render(op.reverse(), "neo4j").apply.startswith(
        "FOREACH (op_v IN [toLower(e.`symbol`)] |")
    # `value` inside quotes, as a property key or a parameter name is left alone
    quoted = ops.transform_property("G", "s", "value + ' value' + e.value + $value", value=1)
    assert render(quoted, "neo4j").apply.startswith(
        "FOREACH (op_v IN [e.`s` + ' value' + e.value + $value] |")
    with pytest.raises(IrreversibleOperationError, match="no inverse expression"):
        ops.transform_property("G", "s", "value + 1").reverse()


@pytest.mark.parametrize("expression", [
    "value}) DETACH DELETE e //", "value) WITH e MATCH (x) DELETE x", "1; MATCH (n) DELETE n",
    "value /* hidden */", "(value", "value]", "'constant'", "CALL db.labels()",
])
def test_a_transform_cannot_smuggle_in_a_clause(expression: str) -> None:
    with pytest.raises(KgmError, match="transform expression"):
        ops.transform_property("Gene", "symbol", expression)


def test_change_type_renders_a_map_update_a_policy_and_a_type_proof_per_dialect() -> None:
    op = ops.change_type("Gene", "w", "integer")
    fail = render(op, "neo4j")
    # `SET e.w = toInteger(e.w)` would keep a Float a Float on FalkorDB
    assert fail.apply == "FOREACH (op_v IN [toInteger(e.`w`)] | REMOVE e.`w` SET e.`w` = op_v)"
    assert fail.validation == "e.`w` IS NOT NULL"
    # only values not of the type yet are in scope, and the proof is that none is left
    assert fail.where == "(e.`w` IS NOT NULL AND NOT (e.`w` IS :: INTEGER))"
    assert fail.check == ("OPTIONAL MATCH (e:`Gene`) WHERE (e.`w` IS NOT NULL AND NOT (e.`w` "
                          "IS :: INTEGER)) WITH count(e) AS remaining RETURN remaining = 0 "
                          "AS valid")
    assert render(op, "falkordb").where == (
        "(e.`w` IS NOT NULL AND NOT (typeOf(e.`w`) = 'Integer'))")
    lenient = ops.change_type("Gene", "w", "float", on_error="null")
    assert render(lenient, "neo4j").validation is None
    with pytest.raises(KgmError, match="only on_error='fail' applies"):
        ops.change_type("Gene", "w", "date", on_error="null")
    with pytest.raises(KgmError, match="to='decimal'"):
        ops.change_type("Gene", "w", "decimal")
    with pytest.raises(KgmError, match="unknown dialect 'sqlite'"):
        compile_op(op, "sqlite")
    with pytest.raises(IrreversibleOperationError):
        ops.change_type("Gene", "w", "string").reverse()


@pytest.mark.parametrize(("op", "check"), [
    (ops.remove_property("A", "x", where="e.k > $k", k=1),
     "OPTIONAL MATCH (e:`A`) WHERE (e.k > $k) AND (e.`x` IS NOT NULL) WITH count(e) AS "
     "remaining RETURN remaining = 0 AS valid"),
    (ops.rename_property(rel_type="R", old="a", new="b"),
     "OPTIONAL MATCH (s)-[e:`R`]->(t) WHERE (e.`a` IS NOT NULL) WITH count(e) AS remaining "
     "OPTIONAL MATCH (s)-[e:`R`]->(t) WHERE (e.`b` IS NOT NULL) WITH remaining, count(e) AS made "
     "RETURN remaining = 0 AND made >= $kgm_planned AS valid"),
    (ops.copy_property("A", "a", "b"),
     "OPTIONAL MATCH (e:`A`) WHERE (e.`b` = e.`a`) WITH count(e) AS made RETURN made >= "
     "$kgm_planned AS valid"),
    (ops.add_label("A", "B"),
     "OPTIONAL MATCH (e:`A`) WHERE (e:`B`) WITH count(e) AS made RETURN made >= $kgm_planned "
     "AS valid"),
    (ops.remove_label("A", "B"),
     "OPTIONAL MATCH (e:`A`) WHERE (e:`B`) WITH count(e) AS remaining RETURN remaining = 0 AS "
     "valid"),
    (ops.retype_relationship("R", "S", where="s.k = 1"),
     "OPTIONAL MATCH (s)-[e:`R`]->(t) WHERE (s.k = 1) WITH count(e) AS remaining "
     "OPTIONAL MATCH (s)-[e:`S`]->(t) WHERE (s.k = 1) WITH remaining, count(e) AS made "
     "RETURN remaining = 0 AND made >= $kgm_planned AS valid"),
])
def test_each_step_check_proves_what_its_op_did(op: ops.LibraryOp, check: str) -> None:
    # no entity left in the old state, at least as many as planned in the new one
    rendered = render(op, "neo4j")
    assert isinstance(rendered, ops.BatchedCypher)
    assert rendered.check == check


def test_move_property_is_two_steps_each_changing_one_side_and_reverses_to_the_move_back(
        ) -> None:
    copy, clear = ops.move_property("TREATS", "since", label="Drug")
    to_node = render(copy, "neo4j")
    # Given a move to the start node: the nodes take the value their relationships agree on
    assert (to_node.entity, to_node.name) == ("node", "Drug")
    assert to_node.where == "(e.`since` IS NULL) AND ((e)-[:`TREATS`]->())"
    assert to_node.apply == (
        "WITH e, kgm_key, kgm_pre, [(e)-[op_r:`TREATS`]->() WHERE op_r.`since` IS NOT NULL | "
        "op_r.`since`] AS op_vs SET e.`since` = CASE WHEN all(op_v IN op_vs WHERE op_v = "
        "op_vs[0]) THEN op_vs[0] END")
    # then the relationships drop it only where their node holds the same value
    cleared = render(clear, "falkordb")
    assert (cleared.entity, cleared.name, cleared.apply) == ("relationship", "TREATS",
                                                             "REMOVE e.`since`")
    assert cleared.where == ("(e.`since` IS NOT NULL) AND (s:`Drug`) AND "
                             "(s.`since` = e.`since`)")
    # the reverse of the pair is the move back, in order: copy to the relationships, clear
    back = Migration(steps=[ops.move_property("TREATS", "since", label="Drug")])
    assert back.operations == [copy, clear]
    assert back.reverse_steps() == list(ops.move_property("TREATS", "since", label="Drug",
                                                          to="relationship"))
    assert render(back.reverse_steps()[0], "neo4j").apply == "SET e.`since` = s.`since`"
    incoming = ops.move_property("TREATS", "since", label="Disease", end="end")[0]
    assert "(e)<-[op_r:`TREATS`]-()" in render(incoming, "neo4j").apply
    with pytest.raises(KgmError, match="to='nowhere'"):
        ops.move_property("TREATS", "since", label="Drug", to="nowhere")
    with pytest.raises(IdentifierError):
        ops.move_property("TREATS", "since", label="Drug`) DETACH DELETE e //")


def test_the_ticket_managers_build_the_same_ops() -> None:
    from kgmigrate.managers import DataTransformationManager, SchemaEvolutionManager

    assert SchemaEvolutionManager.modify_relationship("A", "B") == (
        ops.retype_relationship("A", "B"))
    assert SchemaEvolutionManager.add_property("A", "p", 1) == ops.add_property("A", "p", 1)
    assert DataTransformationManager.transform_property("A", "p", "value * 2") == (
        ops.transform_property("A", "p", "value * 2"))


LIBRARY = [
    ops.add_property("Compound", "status", "new"),
    ops.add_property("Compound", "full", expression="e.a + e.b"),
    ops.remove_property("Compound", "weird name"),
    ops.rename_property(rel_type="TREATS", old="since", new="from"),
    ops.copy_property("Compound", "name", "label_text"),
    ops.change_type("Compound", "weight", "float"),
    ops.transform_property("Compound", "name", "toLower(value)"),
    ops.python_transform("Compound", "name", "pkg.mod:fn"),
    ops.add_label("Compound", "Reviewed"),
    ops.remove_label("Compound", "Old"),
    ops.rename_label("Disease", "Condition"),
    ops.retype_relationship("TREATS", "TREATS_CONDITION"),
    ops.invert_relationship("TREATS"),
]


@pytest.mark.parametrize("op", LIBRARY, ids=lambda op: op.kind)
def test_each_op_renders_its_batch_statement_for_both_dialects(op: ops.LibraryOp) -> None:
    from kgmigrate.cypher.dialect import FalkorDBDialect, Neo4jDialect
    from kgmigrate.engine.batch_statement import batch_statement

    rendered = render(op, "neo4j")
    scope = rendered.scope()
    falkor = batch_statement(FalkorDBDialect(), compile_op(op, "falkordb"))
    neo4j = batch_statement(Neo4jDialect(), compile_op(op, "neo4j"))
    # each server's rendering of the change (they differ only where the servers' functions
    # do), addressed the way each server seeks: id ranges / elementId lists
    assert render(op, "falkordb").apply in falkor and rendered.apply in neo4j
    anchor = "id(e)" if scope.entity == "node" else "id(s)"
    assert f"{anchor} >= $kgm_lo AND {anchor} < $kgm_hi" in falkor
    assert "elementId(e) IN $kgm_keys" in neo4j and "id(" not in neo4j.replace("elementId(", "")
    # names only ever quoted, values only ever parameters
    assert "weird name" not in falkor or "`weird name`" in falkor
    assert "'new'" not in falkor and "'new'" not in neo4j


# -- end to end -----------------------------------------------------------------------------

FORWARD = '''
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=2500, steps=[
    ops.rename_property("Gene", "sym", "symbol"),
    ops.copy_property("Gene", "symbol", "label_text"),
    ops.add_label("Gene", "Reviewed", where="e.i % 2 = 0"),
    ops.rename_label("Disease", "Condition"),
    ops.move_property("LINKED", "score", label="Gene"),
    ops.retype_relationship("LINKED", "ASSOCIATED_WITH"),
    ops.create_index("Gene", "symbol"),
    ops.create_index("Condition", "code", unique=True),
    ops.transform_property("Gene", "symbol", "'g-' + value", inverse="substring(value, 2)"),
])
'''
CONVERSIONS = '''
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=500, steps=[
    ops.change_type("Item", "n", "integer", on_error="{policy}"),
    ops.change_type("Item", "f", "float"),
    ops.add_property("Item", "score", expression="e.i * 2 + e.f"),
])
'''


def test_library_ops_run_validate_and_reverse_to_the_same_fingerprint(
        execution: Execution, graph: GraphBackend) -> None:
    graph.write("UNWIND range(1, 10000) AS i CREATE (:Gene {i: i, sym: 'G' + toString(i), "
                   "w: i / 7.0})")
    graph.write("UNWIND range(1, 2000) AS i CREATE (:Disease {code: 'D' + toString(i)})")
    graph.write("MATCH (g:Gene), (d:Disease) WHERE g.i = toInteger(substring(d.code, 1)) "
                   "CREATE (g)-[:LINKED {score: g.w}]->(d)")
    before = fingerprint(graph)
    execution.write_migration("V0001__library.py", FORWARD)
    execution.start_worker(concurrency=2)
    run = runs.wait(graph, start(execution, graph), timeout_s=240)
    assert run.status is MigrationStatus.COMPLETED, (run.error_log, [
        (s.order, s.status, [b.error for b in Ledger(graph).batches(s.id) if b.error])
        for s in run.steps])
    # Then each op did what it says, and its step's proof held
    row = graph.read(
        "MATCH (g:Gene) RETURN count(g.sym) AS sym, count(g.symbol) AS symbol, "
        "sum(CASE WHEN 'g-' + g.label_text = g.symbol THEN 1 ELSE 0 END) AS copied, "
        "sum(CASE WHEN g:Reviewed THEN 1 ELSE 0 END) AS reviewed").single()
    assert row == {"sym": 0, "symbol": 10_000, "copied": 10_000, "reviewed": 5_000}
    assert graph.read("MATCH (d:Disease) RETURN count(d) AS n").value("n") == 0
    assert graph.read("MATCH ()-[r:ASSOCIATED_WITH]->(:Condition) RETURN count(r) AS n"
                         ).value("n") == 2000
    moved = graph.read("MATCH (g:Gene) OPTIONAL MATCH (g)-[r:ASSOCIATED_WITH]->() RETURN "
                          "sum(CASE WHEN g.score = g.w THEN 1 ELSE 0 END) AS on_nodes, "
                          "count(g.score) AS scored, count(r.score) AS left").single()
    assert moved == {"on_nodes": 2000, "scored": 2000, "left": 0}
    indexed = {(s.name, s.properties, s.unique) for s in graph.indexes()}
    assert {("Gene", ("symbol",), False), ("Condition", ("code",), True)} <= indexed
    # When it is downgraded
    registry = Registry.load(execution.migrations)
    run_id = runs.downgrade(graph, registry, resolve(load_settings()), "base")
    assert run_id is not None
    run = runs.wait(graph, run_id, timeout_s=240)
    # Then the graph is exactly as before, indexes included
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert fingerprint(graph) == before
    indexed = {(s.name, s.properties) for s in graph.indexes()}
    assert ("Gene", ("symbol",)) not in indexed and ("Condition", ("code",)) not in indexed
    assert Ledger(graph).applied() == []


def test_a_move_whose_relationships_disagree_fails_with_their_nodes_and_rolls_back(
        execution: Execution, graph: GraphBackend) -> None:
    # Given drugs with two TREATS each, and three drugs whose two disagree on `since`
    graph.write("UNWIND range(1, 3000) AS i CREATE (d:Drug {i: i}) "
                   "CREATE (d)-[:TREATS {since: 2000 + i % 20}]->(:Disease {i: i}) "
                   "CREATE (d)-[:TREATS {since: CASE WHEN i IN [5, 1200, 2999] THEN 1999 "
                   "ELSE 2000 + i % 20 END}]->(:Disease {i: -i})")
    before = fingerprint(graph)
    execution.write_migration("V0001__move.py", '''
from kgmigrate import Migration, ops
migration = Migration(author="test", batch_size=500, steps=[
    ops.move_property("TREATS", "since", label="Drug"),
])
''')
    execution.start_worker(concurrency=2)
    run = runs.wait(graph, start(execution, graph), timeout_s=180)
    # Then the batches holding them fail naming the value they could not pick, and nothing
    # is lost: the run rolls back to the same graph
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    assert "failed validation `e.`since` IS NOT NULL OR size(" in (run.error_log or "")
    assert fingerprint(graph) == before


LABEL_AND_TYPE = '''
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=3000, steps=[
    ops.add_label("Item", "Checked"),
    ops.change_type("Item", "n", "integer", on_error="fail"),
])
'''


def graph_copies(graph: GraphBackend) -> int:
    """How many GRAPH.COPY commands the FalkorDB server has run (0 on Neo4j: no such thing)."""
    if graph.dialect.name != "falkordb":
        return 0
    stats = graph._db.connection.info("commandstats")  # type: ignore[attr-defined]
    return sum(int(v["calls"]) for k, v in stats.items() if k.lower() == "cmdstat_graph.copy")


def assert_copies_counted(graph: GraphBackend, before: int) -> None:
    """`graph_copies` sees a copy: a probe that may not put back what it does makes one."""
    graph.probe_write("RETURN 1 AS one")
    assert graph_copies(graph) == before + (graph.dialect.name == "falkordb")


def test_a_library_ops_failed_batch_is_diagnosed_in_place_and_put_back(
        execution: Execution, graph: GraphBackend) -> None:
    # Given 3000 items, three of whose `n` do not convert to integers, and a migration that
    # labels them all, then converts `n` (one batch each)
    graph.write("UNWIND range(1, 3000) AS i CREATE (:Item {i: i, n: CASE WHEN "
                "i IN [7, 1500, 2999] THEN 'n/a' ELSE toString(i) END})")
    before = fingerprint(graph)
    bad = set(graph.read(f"MATCH (e:Item) WHERE e.n = 'n/a' RETURN {graph.dialect.key('e')} "
                         "AS k").column("k"))
    copies = graph_copies(graph)
    execution.write_migration("V0001__types.py", LABEL_AND_TYPE)
    execution.start_worker()
    run = runs.wait(graph, start(execution, graph), timeout_s=180)
    # Then its failed batch reports how many of its entities failed and which, with their
    # values after the change, found by running the batch again in a statement that puts
    # back what it changed: on FalkorDB without a copy of the whole graph
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    [failed] = [b for b in Ledger(graph).batches(run.steps[1].id)
                if b.status is MigrationStatus.FAILED]
    assert (failed.failing, failed.checked) == (3, 3000)
    assert {o.key for o in failed.offending} == bad
    assert all(o.properties.get("n") is None and o.properties["i"] in (7, 1500, 2999)
               for o in failed.offending)
    assert "3 of 3,000 entities failed validation" in (run.error_log or "")
    assert graph_copies(graph) == copies
    assert_copies_counted(graph, copies)
    # and nothing of the diagnosis stays: the rollback restores the graph exactly
    assert fingerprint(graph) == before


@pytest.mark.parametrize("policy", ["fail", "null"])
def test_change_type_policies_on_values_that_do_not_convert(
        execution: Execution, graph: GraphBackend, policy: str) -> None:
    # Given strings that mostly convert, three that do not, and integers to make floats
    graph.write("UNWIND range(1, 3000) AS i CREATE (:Item {i: i, f: i, n: CASE WHEN "
                   "i IN [7, 1500, 2999] THEN 'n/a' ELSE toString(i) END})")
    before = fingerprint(graph)
    execution.write_migration("V0001__types.py", CONVERSIONS.format(policy=policy))
    execution.start_worker(concurrency=2)
    run = runs.wait(graph, start(execution, graph), timeout_s=180)
    if policy == "fail":
        # Then the batches holding them fail with their keys, and the run rolls back exactly
        assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
        assert "failed validation `e.`n` IS NOT NULL`" in (run.error_log or "")
        assert fingerprint(graph) == before
        return
    # Then they become absent (the undo log keeps them), the rest converted, types changed
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    type_of = "typeOf" if graph.dialect.name == "falkordb" else "valueType"  # Neo4j's
    rows = graph.read(f"MATCH (e:Item) RETURN {type_of}(e.n) AS n, {type_of}(e.f) AS f, "
                      "count(*) AS c").records
    names = ({"Integer": "Integer", "Float": "Float", "Null": "Null"}
             if graph.dialect.name == "falkordb" else
             {"Integer": "INTEGER NOT NULL", "Float": "FLOAT NOT NULL", "Null": "NULL"})
    assert {(r["n"], r["f"]): r["c"] for r in rows} == {
        (names["Integer"], names["Float"]): 2997, (names["Null"], names["Float"]): 3}
    assert graph.read("MATCH (e:Item) WHERE e.score = e.i * 3 RETURN count(e) AS n"
                         ).value("n") == 3000  # computed from the other properties


PYTHON_TRANSFORMS = '''
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=10000, steps=[
    ops.python_transform("Doc", "title", "tests.transforms:normalize"),
    ops.python_transform("Doc", "vector", "tests.transforms:embed", vectorized=True),
])
'''


def test_a_python_transform_over_100k_nodes_runs_on_two_workers(
        execution: Execution, graph: GraphBackend) -> None:
    from tests.transforms import embed, normalize

    graph.write("UNWIND range(1, 100000) AS i CREATE (:Doc {i: i, title: '  Title  OF ' + "
                   "toString(i) + '  ', vector: 'text ' + toString(i)})")
    execution.write_migration("V0001__python.py", PYTHON_TRANSFORMS)
    execution.start_worker()
    execution.start_worker()
    execution.wait_ready(2)  # both consuming before the first batch is sent
    run = runs.wait(graph, start(execution, graph), timeout_s=300)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    # every value is the function's result, computed from the exact old value
    sample = graph.read("MATCH (d:Doc) WHERE d.i IN [1, 50000, 100000] "
                           "RETURN d.i AS i, d.title AS title, d.vector AS vector").records
    for row in sample:
        assert row["title"] == normalize(f"  Title  OF {row['i']}  ")
        assert row["vector"] == pytest.approx(embed([f"text {row['i']}"])[0], abs=1e-9)
    assert graph.read("MATCH (d:Doc) WHERE d.title STARTS WITH 'title of ' "
                         "RETURN count(d) AS n").value("n") == 100_000
    # and both worker processes (each one pool process) did part of it
    workers = {b.worker for s in run.steps for b in Ledger(graph).batches(s.id)}
    assert len(workers) == 2 and None not in workers


def test_a_failing_python_transform_rolls_back_to_the_same_fingerprint(
        execution: Execution, graph: GraphBackend) -> None:
    graph.write("UNWIND range(1, 5000) AS i CREATE (:Doc {i: i, title: 'T' + toString(i)})")
    before = fingerprint(graph)
    execution.write_migration("V0001__python.py", '''
from kgmigrate import Migration, ops
migration = Migration(author="test", batch_size=1000, steps=[
    ops.python_transform("Doc", "title", "tests.transforms:normalize"),
    ops.python_transform("Doc", "title", "tests.transforms:broken"),
])
''')
    execution.start_worker(concurrency=2)
    run = runs.wait(graph, start(execution, graph), timeout_s=180)
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    assert "python_transform tests.transforms:broken raised ValueError" in (run.error_log or "")
    assert fingerprint(graph) == before


IRREVERSIBLE = '''
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=700, steps=[
    ops.add_property("Gene", "status", "new"),
    ops.remove_property("Gene", "sym"),
    ops.invert_relationship("LINKED"),
    ops.remove_label("Gene", "Old"),
    ops.add_property("Gene", "score", expression="e.w * 2", where="e.i < 2990"),
    ops.change_type("Gene", "i", "string"),
    ops.transform_property("Gene", "i", "value + 'x'"),
    ops.add_label("Gene", "Late", where="e.i < 'zzz'"),
    ops.batched("Gene", "SET e.checked = true", validation="e.i <> '2999x'"),
])
'''


def test_irreversible_ops_are_undone_exactly_by_the_rollback_of_a_failed_run(
        execution: Execution, graph: GraphBackend) -> None:
    # Given ops without an inverse, and a last step that fails in its last batch
    graph.write("UNWIND range(1, 3000) AS i CREATE (:Gene:Old {i: i, sym: 'G' + toString(i), "
                   "w: i / 7.0})")
    graph.write("MATCH (a:Gene), (b:Gene) WHERE b.i = a.i + 1 AND a.i % 3 = 0 "
                   "CREATE (a)-[:LINKED {k: a.i}]->(b)")
    before = fingerprint(graph)
    execution.write_migration("V0001__irreversible.py", IRREVERSIBLE)
    execution.start_worker(concurrency=2)
    run = runs.wait(graph, start(execution, graph), timeout_s=240)
    # Then every step's committed batches are restored from the undo log
    assert run.status is MigrationStatus.ROLLED_BACK, rollback_story(execution, graph, run.id)
    assert "step 9" in (run.error_log or "")
    assert fingerprint(graph) == before


RAW_CHECKED = '''
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=1000, steps=[
    ops.batched("Item", "SET e.v = e.i", validation="e.v <= 200")])
'''


def test_a_raw_steps_failed_batch_is_not_looked_at_on_a_copy_past_the_size_limit(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    """A raw step's failed batch was looked at again on a copy of the whole graph (FalkorDB
    has no transaction to roll back): as much memory again and ~1.4 s per million nodes, on
    a production graph, per failed batch. Past KGMIGRATE_PROBE_COPY_MAX_MB it is not."""
    # Given 300 items, a raw step whose validation fails for 100 of them, and a limit that
    # allows no copy
    graph.write("UNWIND range(1, 300) AS i CREATE (:Item {i: i})")
    before = fingerprint(graph)
    execution.write_migration("V0001__raw.py", RAW_CHECKED)
    execution.env["KGMIGRATE_PROBE_COPY_MAX_MB"] = "0"
    copies = graph_copies(graph)
    # When its preview is asked for
    preview = cli("plan", "--preview", "2", env=execution.env, cwd=tmp_path)
    # and it is upgraded
    execution.start_worker()
    run = runs.wait(graph, start(execution, graph), timeout_s=180)
    # Then the run fails and rolls back exactly, and no copy of the graph was made. On
    # FalkorDB the failure says why it does not count the entities that fail, and the
    # preview why there is none; on Neo4j (a transaction rolled back: no copy) both are there
    assert run.status is MigrationStatus.ROLLED_BACK, run.error_log
    assert fingerprint(graph) == before
    assert graph_copies(graph) == copies
    assert_copies_counted(graph, copies)
    [failed] = [b for b in Ledger(graph).batches(run.steps[0].id)
                if b.status is MigrationStatus.FAILED]
    if graph.dialect.name == "falkordb":
        assert (run.error_log or "").startswith(
            "step 1 (on :Item: SET e.v = e.i): batch 1 failed validation `e.v <= 200` (how "
            "many of its entities fail, and which, is not looked at: it would copy the whole "
            "graph, and KGMIGRATE_PROBE_COPY_MAX_MB=0 allows no copy; a library op that "
            "declares what it changes is looked at in place)"), run.error_log
        assert (failed.failing, failed.offending) == (None, [])
        assert ("not previewed: it would copy the whole graph, and "
                "KGMIGRATE_PROBE_COPY_MAX_MB=0 allows no copy") in preview.stdout
    else:
        assert (failed.failing, failed.checked) == (100, 300)
        assert "100 of 300 entities failed validation" in (run.error_log or "")
        assert "not previewed" not in preview.stdout and preview.returncode == 0
