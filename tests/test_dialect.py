"""The Cypher each dialect renders (no server)."""

import pytest

from kgmigrate.errors import IdentifierError
from kgmigrate.graph import FalkorDBDialect, IndexSpec, KeyList, KeyRange, Neo4jDialect, Scope

F, N = FalkorDBDialect(), Neo4jDialect()


def test_falkordb_batches_are_id_ranges_over_the_entity_or_its_start_node() -> None:
    clause, params = F.match_batch(Scope.nodes("Person", "e.age > $min", min=3), KeyRange(10, 20))
    assert clause == ("MATCH (e:`Person`) WHERE id(e) >= $kgm_lo AND id(e) < $kgm_hi "
                      "AND (e.age > $min)")
    assert params == {"min": 3, "kgm_lo": 10, "kgm_hi": 20}
    assert F.keys_in_window(Scope.relationships("T")).endswith(
        "RETURN id(s) AS key, id(e) AS entity ORDER BY key, entity")
    clause, _ = F.match_batch(Scope.relationships("TREATS"), KeyRange(0, 5))
    assert clause == "MATCH (s)-[e:`TREATS`]->(t) WHERE id(s) >= $kgm_lo AND id(s) < $kgm_hi"


def test_neo4j_batches_are_element_id_lists() -> None:
    clause, params = N.match_batch(Scope.nodes("Person"), KeyList(("4:a:1", "4:a:2")))
    assert clause == "MATCH (e:`Person`) WHERE elementId(e) IN $kgm_keys"
    assert params == {"kgm_keys": ["4:a:1", "4:a:2"]}


def test_a_predicate_with_or_is_parenthesized_so_it_cannot_escape_the_batch() -> None:
    clause, _ = F.match_batch(Scope.nodes("P", "e.a = 1 OR e.b = 2"), KeyRange(0, 1))
    assert clause.endswith("AND (e.a = 1 OR e.b = 2)")


def test_scope_parameters_may_not_use_the_batch_prefix() -> None:
    with pytest.raises(ValueError, match="reserved"):
        Scope.nodes("P", "e.x = $kgm_lo", kgm_lo=1)


def test_dialects_refuse_the_wrong_batch_kind() -> None:
    with pytest.raises(TypeError):
        F.batch_predicate(Scope.nodes("P"), KeyList((1,)))
    with pytest.raises(TypeError):
        N.batch_predicate(Scope.nodes("P"), KeyRange(0, 1))


def test_hostile_names_are_quoted_or_refused_in_every_rendering() -> None:
    scope = Scope.nodes("a b)-[:X]->(c")
    assert F.match_scope(scope) == "MATCH (e:`a b)-[:X]->(c`)"
    with pytest.raises(IdentifierError):
        F.match_scope(Scope.nodes("a`b"))
    with pytest.raises(IdentifierError):
        N.create_index(IndexSpec("node", "P", ("x` IS UNIQUE //",)))
    with pytest.raises(IdentifierError, match="reserved"):
        N.match_scope(Scope.nodes("__KGMRun"))
    assert N.match_scope(Scope.nodes("__KGMRun"), internal=True) == "MATCH (e:`__KGMRun`)"


def test_index_ddl_per_dialect() -> None:
    spec = IndexSpec("node", "Compound", ("cid",))
    assert F.create_index(spec) == "CREATE INDEX FOR (e:`Compound`) ON (e.`cid`)"
    assert F.drop_index(spec) == "DROP INDEX FOR (e:`Compound`) ON (e.`cid`)"
    # names: readable part + the first 10 hex digits of sha256("node:Compound:cid:False")
    assert N.create_index(spec) == ("CREATE INDEX `kgm_idx_Compound_cid_5350530c3e` IF NOT "
                                    "EXISTS FOR (e:`Compound`) ON (e.`cid`)")
    assert N.drop_index(spec) == "DROP INDEX `kgm_idx_Compound_cid_5350530c3e` IF EXISTS"
    unique = IndexSpec("node", "Compound", ("cid",), unique=True)
    assert N.create_index(unique) == (
        "CREATE CONSTRAINT `kgm_uniq_Compound_cid_25b45aa03b` IF NOT EXISTS FOR (e:`Compound`) "
        "REQUIRE e.`cid` IS UNIQUE")
    assert N.drop_index(unique) == "DROP CONSTRAINT `kgm_uniq_Compound_cid_25b45aa03b` IF EXISTS"
    rel = IndexSpec("relationship", "TREATS", ("since", "by"))
    assert F.create_index(rel) == "CREATE INDEX FOR ()-[e:`TREATS`]-() ON (e.`since`, e.`by`)"


def test_neo4j_index_names_are_stable_and_distinct() -> None:
    a = IndexSpec("node", "P", ("x",))
    assert N.index_name(a) == N.index_name(IndexSpec("node", "P", ("x",)))
    assert N.index_name(a) != N.index_name(IndexSpec("node", "P", ("x",), unique=True))
    assert N.index_name(a) != N.index_name(IndexSpec("node", "P x", ("x",)))


def test_keys_are_expressed_per_dialect() -> None:
    assert F.match_key("n", "k") == "id(n) = $k"
    assert N.match_key("n", "k") == "elementId(n) = $k"
    assert N.key_equals("a", "src") == "elementId(a) = row.`src`"
