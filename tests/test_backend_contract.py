"""The contract every GraphBackend passes: FalkorDB always, Neo4j when NEO4J_URI is set.

Tests use labels under the per-test namespace `ns`, so they work on a shared Neo4j database.
"""

import re
from collections import Counter

import pytest

from kgmigrate.cypher import identifiers as ident
from kgmigrate.errors import BackendError, ParameterError
from kgmigrate.graph import GraphBackend, IndexSpec, Scope
from kgmigrate.graph.batching import cut

HOSTILE_VALUES = [
    "plain", "", "it's", 'say "hi"', "back\\slash", "trailing\\", "new\nline", "tab\tand\rcr",
    "$param", "CYPHER x=1 MATCH (n) DETACH DELETE n", "*/ // ; }) RETURN 1 //", "`backtick`",
    "unicodé ✓ 漢字 🧬", "\u2028\u2029", 0, -1, 2**62, -(2**63), 1.5, -0.25, 1e300, 1e-7,
    True, False, ["a\"b", "c\\"], [1, 2, 3],
]
# Valid as parameters but not as property values (Cypher stores no maps or nested lists).
STRUCTURED_VALUES = [None, [], [1, "two", [3.5, None]], {"k": "v", "n": [1, 2], "q": "'\""},
                     {"nested": {"deep": ["x"]}}]


def _count(backend: GraphBackend, label: str) -> int:
    return int(backend.read(f"MATCH (n:{ident.label(label)}) RETURN count(n) AS n").value("n"))


def test_write_then_read_returns_records_and_counters(backend: GraphBackend, ns: str) -> None:
    # Given an empty namespace, when two linked nodes are created with parameters
    person, treats = ident.label(f"{ns}Person"), ident.rel_type(f"{ns}KNOWS")
    created = backend.write(
        f"CREATE (a:{person} {{name: $a}})-[r:{treats} {{since: $since}}]->(b:{person} "
        "{name: $b}) RETURN a.name AS a, b.name AS b",
        {"a": "Ada", "b": "Bob", "since": 1990},
    )
    # then the counters say exactly what happened and the records carry the returned values
    assert created.records == [{"a": "Ada", "b": "Bob"}]
    assert created.counters.nodes_created == 2
    assert created.counters.relationships_created == 1
    assert created.counters.properties_set == 3
    assert created.counters.labels_added == 2
    # and a read sees the write, with entities as plain dicts
    read = backend.read(f"MATCH (a:{person} {{name: $a}})-[r]->(b) RETURN a, r, b.name AS b",
                        {"a": "Ada"})
    record = read.single()
    assert record["a"]["labels"] == [f"{ns}Person"]
    assert record["a"]["properties"] == {"name": "Ada"}
    assert record["r"]["labels"] == [f"{ns}KNOWS"]
    assert record["r"]["properties"] == {"since": 1990}
    assert record["b"] == "Bob"
    assert not read.counters.contains_updates


def test_counters_for_removal_and_deletion(backend: GraphBackend, ns: str) -> None:
    label, extra = ident.label(f"{ns}Item"), ident.label(f"{ns}Extra")
    backend.write(f"UNWIND range(1, 5) AS i CREATE (:{label}:{extra} {{i: i}})")
    removed = backend.write(f"MATCH (n:{label}) WHERE n.i <= 2 REMOVE n:{extra}")
    assert removed.counters.labels_removed == 2
    deleted = backend.write(f"MATCH (n:{label}) WHERE n.i > 3 DETACH DELETE n")
    assert deleted.counters.nodes_deleted == 2
    assert _count(backend, f"{ns}Item") == 3


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=repr)
def test_hostile_parameter_values_round_trip(backend: GraphBackend, ns: str,
                                             value: object) -> None:
    # Given a value that could break a naive serializer, when it is stored and read back
    label = ident.label(f"{ns}Value")
    result = backend.write(f"CREATE (n:{label}) SET n.v = $v RETURN n.v AS v", {"v": value})
    # then it comes back exactly, and exactly one node exists: nothing was injected
    assert result.value("v") == value
    assert type(result.value("v")) is type(value)
    assert _count(backend, f"{ns}Value") == 1


@pytest.mark.parametrize("value", HOSTILE_VALUES + STRUCTURED_VALUES, ids=repr)
def test_parameter_values_return_unchanged(backend: GraphBackend, value: object) -> None:
    assert backend.read("RETURN $v AS v", {"v": value}).value("v") == value


@pytest.mark.parametrize("value", ["nul\x00byte", ["ok", "\x00"]], ids=repr)
def test_nul_characters_travel_where_the_client_can_send_them(
        backend: GraphBackend, ns: str, value: object) -> None:
    # Bolt sends strings as data, so Neo4j stores a NUL (an undo record may hold one); the
    # FalkorDB client pastes parameters into query text, so kgmigrate refuses it before sending
    label = ident.label(f"{ns}Nul")
    if backend.dialect.name == "falkordb":
        with pytest.raises(ParameterError, match="NUL"):
            backend.write(f"CREATE (n:{label}) SET n.v = $v", {"v": value})
        assert _count(backend, f"{ns}Nul") == 0
    else:
        stored = backend.write(f"CREATE (n:{label}) SET n.v = $v RETURN n.v AS v", {"v": value})
        assert stored.value("v") == value


@pytest.mark.parametrize(("value", "message"), [
    (float("nan"), "finite"), (float("inf"), "finite"),
    (2**64, "64 bits"), (object(), "unsupported type"), ({"bad`key": 1}, "backtick"),
    ("\ud800", "surrogate"),
])
def test_unsafe_parameter_values_are_refused_before_sending(
        backend: GraphBackend, ns: str, value: object, message: str) -> None:
    label = ident.label(f"{ns}Refused")
    with pytest.raises(ParameterError, match=message):
        backend.write(f"CREATE (n:{label}) SET n.v = $v", {"v": value})
    assert _count(backend, f"{ns}Refused") == 0


def test_a_failing_statement_leaves_no_writes(backend: GraphBackend, ns: str) -> None:
    # Given nodes, when a statement writes to all of them and then fails at run time
    label = ident.label(f"{ns}Atomic")
    backend.write(f"UNWIND range(1, 100) AS i CREATE (:{label} {{i: i}})")
    with pytest.raises(BackendError) as failure:
        backend.write(f"MATCH (n:{label}) SET n.touched = true "
                      "WITH n WHERE n.i = 100 RETURN n.i / (n.i - 100) AS boom")
    # then none of its writes survive: it is all or nothing
    assert not failure.value.transient
    touched = backend.read(f"MATCH (n:{label}) WHERE n.touched IS NOT NULL RETURN count(n) AS n")
    assert touched.value("n") == 0


def test_syntax_errors_are_permanent_backend_errors(backend: GraphBackend) -> None:
    with pytest.raises(BackendError) as failure:
        backend.read("MATCH (n RETURN n")
    assert failure.value.transient is False


def test_iter_keys_streams_every_node_in_scope_in_order(backend: GraphBackend, ns: str) -> None:
    label = ident.label(f"{ns}Keyed")
    backend.write(f"UNWIND range(1, 250) AS i CREATE (:{label} {{i: i, even: i % 2 = 0}})")
    backend.write(f"UNWIND range(1, 50) AS i CREATE (:{ident.label(f'{ns}Other')} {{i: i}})")
    expected = backend.read(f"MATCH (e:{label}) RETURN {backend.dialect.key('e')} AS k").records
    keys = list(backend.iter_keys(Scope.nodes(f"{ns}Keyed")))
    assert keys == sorted(keys)
    assert sorted(keys) == sorted(r["k"] for r in expected)
    evens = list(backend.iter_keys(Scope.nodes(f"{ns}Keyed", "e.even = $flag", flag=True)))
    assert len(evens) == 125


def test_parallel_relationships_each_have_a_key(backend: GraphBackend, ns: str) -> None:
    # Given two nodes linked three times by the same type, and once more to a third node
    label, rel = ident.label(f"{ns}Par"), ident.rel_type(f"{ns}LINK")
    backend.write(f"CREATE (a:{label}), (b:{label}), (c:{label}) "
                  f"CREATE (a)-[:{rel}]->(b), (a)-[:{rel}]->(b), (a)-[:{rel}]->(b), "
                  f"(b)-[:{rel}]->(c)")
    # then every relationship has its key in the stream: none collapsed
    assert len(list(backend.iter_keys(Scope.relationships(f"{ns}LINK")))) == 4


def test_iter_keys_on_an_empty_scope_yields_nothing(backend: GraphBackend, ns: str) -> None:
    assert list(backend.iter_keys(Scope.nodes(f"{ns}Nobody"))) == []
    assert list(backend.iter_keys(Scope.relationships(f"{ns}NOTHING"))) == []


@pytest.mark.parametrize("entity", ["node", "relationship"])
def test_batches_cut_from_keys_cover_every_entity_exactly_once(
        backend: GraphBackend, ns: str, entity: str) -> None:
    # Given 300 nodes in a chain, some with three outgoing relationships
    label, rel = ident.label(f"{ns}Chain"), ident.rel_type(f"{ns}NEXT")
    backend.write(f"UNWIND range(1, 300) AS i CREATE (:{label} {{i: i}})")
    backend.write(f"MATCH (a:{label}), (b:{label}) WHERE b.i = a.i + 1 OR (a.i % 7 = 0 AND "
                  f"b.i IN [a.i + 2, a.i + 3]) CREATE (a)-[:{rel} {{src: a.i, dst: b.i}}]->(b)")
    scope = (Scope.nodes(f"{ns}Chain") if entity == "node"
             else Scope.relationships(f"{ns}NEXT"))
    # When its keys are cut into batches of 16 and each batch is matched
    seen: Counter[object] = Counter()
    batches = list(cut(backend.iter_keys(scope), 16, backend.dialect.batch_addressing))
    for batch in batches:
        clause, params = backend.dialect.match_batch(scope, batch)
        rows = backend.read(f"{clause} RETURN {backend.dialect.key('e')} AS k", params).records
        seen.update(r["k"] for r in rows)
    # then every entity of the scope is in exactly one batch
    pattern = f"(e:{label})" if entity == "node" else f"()-[e:{rel}]->()"
    everything = backend.read(f"MATCH {pattern} RETURN {backend.dialect.key('e')} AS k").records
    assert sorted(seen.elements(), key=str) == sorted((r["k"] for r in everything), key=str)
    assert set(seen.values()) == {1}
    # 300 nodes, 383 relationships (299 + 42 x 2): lists of 16 keys, or (FalkorDB) ranges of
    # start-node ids that never split a node's relationships, so at most as many as lists
    if entity == "node" or backend.dialect.batch_addressing == "list":
        assert len(batches) == (19 if entity == "node" else 24)
    else:
        assert 300 // 16 <= len(batches) <= 24


@pytest.mark.parametrize("entity", ["node", "relationship"])
@pytest.mark.parametrize("planner", ["backend", "default streaming"])
def test_planned_batches_count_exactly_what_they_match(
        backend: GraphBackend, ns: str, entity: str, planner: str) -> None:
    label, rel = ident.label(f"{ns}Plan"), ident.rel_type(f"{ns}TO")
    backend.write(f"UNWIND range(1, 1000) AS i CREATE (:{label} {{i: i}})")
    backend.write(f"MATCH (a:{label}), (b:{label}) WHERE b.i = a.i + 1 AND a.i % 3 = 0 "
                  f"CREATE (a)-[:{rel}]->(b), (a)-[:{rel}]->(b)")
    backend.write(f"MATCH (n:{label}) WHERE n.i % 5 = 0 DETACH DELETE n")  # holes in the ids
    scope = (Scope.nodes(f"{ns}Plan", "e.i % 2 = 0") if entity == "node"
             else Scope.relationships(f"{ns}TO"))
    plan = (backend.plan_batches(scope, 37) if planner == "backend"
            else GraphBackend.plan_batches(backend, scope, 37))
    total = 0
    for address, count in plan:
        clause, params = backend.dialect.match_batch(scope, address)
        matched = backend.read(f"{clause} RETURN count(e) AS n", params).value("n")
        assert matched == count
        total += count
    pattern = f"(e:{label}) WHERE e.i % 2 = 0" if entity == "node" else f"()-[e:{rel}]->()"
    assert total == backend.read(f"MATCH {pattern} RETURN count(e) AS n").value("n") > 0


def test_index_creation_is_idempotent_and_listed(backend: GraphBackend, ns: str) -> None:
    spec = IndexSpec("node", f"{ns}Indexed", ("code",))
    try:
        assert backend.ensure_index(spec) is True
        assert backend.ensure_index(spec) is False
        assert any(s.name == spec.name and s.properties == ("code",) and not s.unique
                   for s in backend.indexes())
    finally:
        backend.drop_index(spec)
    assert not any(s.name == spec.name for s in backend.indexes())
    assert backend.drop_index(spec) is False


def test_several_indexes_on_one_label_are_each_recognised(backend: GraphBackend,
                                                          ns: str) -> None:
    first = IndexSpec("node", f"{ns}Multi", ("a",))
    second = IndexSpec("node", f"{ns}Multi", ("b",))
    try:
        assert backend.ensure_index(first) is True
        assert backend.ensure_index(second) is True
        assert backend.ensure_index(first) is False
        assert backend.ensure_index(second) is False
        listed = {s.properties for s in backend.indexes() if s.name == f"{ns}Multi"}
        assert listed == {("a",), ("b",)}
    finally:
        backend.drop_index(first)
        backend.drop_index(second)
    assert not any(s.name == f"{ns}Multi" for s in backend.indexes())


def test_relationship_index(backend: GraphBackend, ns: str) -> None:
    spec = IndexSpec("relationship", f"{ns}LINK", ("weight",))
    try:
        assert backend.ensure_index(spec) is True
        assert any(s.entity == "relationship" and s.name == spec.name for s in backend.indexes())
    finally:
        assert backend.drop_index(spec) is True


def test_uniqueness_constraint_is_enforced(backend: GraphBackend, ns: str) -> None:
    label = ident.label(f"{ns}Unique")
    spec = IndexSpec("node", f"{ns}Unique", ("uid",), unique=True)
    backend.write(f"CREATE (:{label} {{uid: 'a'}})")
    try:
        assert backend.ensure_index(spec) is True
        assert backend.ensure_index(spec) is False
        with pytest.raises(BackendError):
            backend.write(f"CREATE (:{label} {{uid: 'a'}})")
        assert _count(backend, f"{ns}Unique") == 1
    finally:
        assert backend.drop_index(spec) is True
    assert not any(s.name == spec.name for s in backend.indexes())


def test_uniqueness_constraint_over_duplicates_is_refused_clearly(
        backend: GraphBackend, ns: str) -> None:
    label = ident.label(f"{ns}Dup")
    backend.write(f"CREATE (:{label} {{uid: 'same'}}), (:{label} {{uid: 'same'}})")
    spec = IndexSpec("node", f"{ns}Dup", ("uid",), unique=True)
    with pytest.raises(BackendError):
        backend.ensure_index(spec)
    assert not any(s.name == spec.name for s in backend.indexes())


def test_server_info_names_the_server(backend: GraphBackend) -> None:
    info = backend.server_info()
    assert info.backend == backend.dialect.name
    # FalkorDB's module version; Neo4j's kernel version and edition (the embedded server's
    # pinned versions, or any for a server of your own)
    pattern = (r"FalkorDB \d+\.\d+\.\d+ on Redis \d+\.\d+\.\d+" if info.backend == "falkordb"
               else r"Neo4j Kernel (5\.26\.30|2026\.08\.1|[\d.]+) (community|enterprise)")
    assert re.fullmatch(pattern, info.version), info.version
    # and the bare release and edition that edition and version preconditions compare
    assert info.release is not None and re.fullmatch(r"\d+(\.\d+)+", info.release)
    assert info.release in info.version
    assert info.edition == (None if info.backend == "falkordb"
                            else info.version.rsplit(" ", 1)[1])


@pytest.mark.parametrize("name", ["a b", "x}) DETACH DELETE n //", "漢字 🧬", "$p", "'q'", "e",
                                  "with.dot", "back\\slash"])
def test_hostile_names_round_trip(backend: GraphBackend, ns: str, name: str) -> None:
    # Given a hostile name (under the test's namespace), used as label, type and property key
    full = f"{ns}{name}"
    label, rel, prop = ident.label(full), ident.rel_type(full), ident.prop(full)
    result = backend.write(
        f"CREATE (a:{label} {{{prop}: $v}})-[r:{rel}]->(b:{label}) "
        f"RETURN labels(a) AS labels, type(r) AS type, keys(a) AS keys", {"v": name})
    # then exactly that is created, and the server reports exactly that name back
    assert result.single() == {"labels": [full], "type": full, "keys": [full]}
    assert (result.counters.nodes_created, result.counters.relationships_created) == (2, 1)
    assert _count(backend, full) == 2


EXACT_VALUES = [0.1 + 0.2, -0.0, 5e-324, -2.2250738585072014e-308, 1.7976931348623157e308,
                1 / 3, 2.0**53 + 2, 9007199254740993, -(2**63), "a\"b\\c\nd\x01", "", True,
                [0.1, "x", 1, -0.0], [], ["only", "strings"], [0.1, -0.0, 5e-324]]
MIXED_LISTS = "mixed lists are FalkorDB's: Neo4j stores only lists of one type"


@pytest.mark.parametrize("quoted", [False, True], ids=["json-page", "client-page"])
def test_captured_states_are_exact_to_the_bit(backend: GraphBackend, ns: str,
                                              quoted: bool) -> None:
    # Given entities holding values that do not survive a 15-digit or a JSON round trip
    label, rel = ident.label(f"{ns}Exact"), ident.rel_type(f"{ns}EXACT")
    props = {f"v{i}": v for i, v in enumerate(EXACT_VALUES) if isinstance(v, str) == quoted
             or not isinstance(v, str)}
    if backend.dialect.name == "neo4j":  # MIXED_LISTS
        props = {k: v for k, v in props.items()
                 if not isinstance(v, list) or len({type(x) for x in v}) <= 1}
    backend.write(f"CREATE (a:{label})-[r:{rel}]->(b:{label}) SET a = $p, r = $p, b.n = 1",
                  {"p": props})
    # When their states are captured (undo records, snapshots, fingerprints read this way)
    scope = Scope.nodes(f"{ns}Exact", "e.n IS NULL")
    [(address, _)] = list(backend.plan_batches(Scope.nodes(f"{ns}Exact"), 10))
    [node] = backend.capture(scope, address)
    [(rel_address, _)] = list(backend.plan_batches(Scope.relationships(f"{ns}EXACT"), 10))
    [edge] = backend.capture(Scope.relationships(f"{ns}EXACT"), rel_address)
    # Then every value comes back as the very same double, int, string or list
    for state in (node, edge):
        assert _bits(state["p"]) == _bits(props)
        assert isinstance(state["sig"], str | list)
    assert node["l"] == [f"{ns}Exact"] and edge["ty"] == f"{ns}EXACT"
    assert edge["s"] == node["k"] and edge["t"] != node["k"]


def _bits(value: object) -> object:
    """Values with floats as their bit patterns: -0.0 differs from 0.0, 1 from 1.0."""
    if isinstance(value, float):
        return ("f", value.hex())
    if isinstance(value, dict):
        return {k: _bits(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bits(v) for v in value]
    return (type(value).__name__, value)
