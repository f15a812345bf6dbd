"""FalkorDB-specific behaviour beyond the shared contract."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgmigrate.errors import ProbeTooLarge
from kgmigrate.graph import Scope
from kgmigrate.graph.falkordb import FalkorDBBackend
from kgmigrate.runtime.settings import GraphTarget


def test_keys_stream_across_many_windows_with_gaps(falkordb_target: GraphTarget) -> None:
    # Given 500 nodes with every third one deleted (ids with holes), and a tiny window
    with FalkorDBBackend(falkordb_target, window=7) as backend:
        backend.write("UNWIND range(1, 500) AS i CREATE (:N {i: i})")
        backend.write("MATCH (n:N) WHERE n.i % 3 = 0 DELETE n")
        expected = sorted(r["k"] for r in backend.read("MATCH (e:N) RETURN id(e) AS k").records)
        # when keys are streamed 7 ids at a time, then none is lost, doubled or out of order
        assert list(backend.iter_keys(Scope.nodes("N"))) == expected
        assert len(expected) == 334
        backend.delete_graph()


def test_relationship_keys_are_start_node_ids_in_order(falkordb_target: GraphTarget) -> None:
    with FalkorDBBackend(falkordb_target, window=5) as backend:
        backend.write("UNWIND range(1, 40) AS i CREATE (:N {i: i})")
        backend.write("MATCH (a:N), (b:N) WHERE b.i IN [a.i + 1, a.i + 2] CREATE (a)-[:R]->(b)")
        keys = list(backend.iter_keys(Scope.relationships("R")))
        starts = sorted(r["k"] for r in backend.read("MATCH (s)-[:R]->() RETURN id(s) AS k")
                        .records)
        assert keys == starts
        assert len(keys) == 39 + 38
        backend.delete_graph()


def test_reading_a_graph_that_was_never_written_reads_an_empty_graph(
        falkordb_target: GraphTarget) -> None:
    with FalkorDBBackend(falkordb_target) as backend:
        assert backend.read("MATCH (n) RETURN count(n) AS n").value("n") == 0
        assert list(backend.iter_keys(Scope.nodes("Anything"))) == []
        backend.delete_graph()


SCALARS = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=SCALARS)
def test_any_safe_scalar_round_trips_as_a_property(falkordb: FalkorDBBackend,
                                                   value: object) -> None:
    try:
        result = falkordb.write("CREATE (n:V) SET n.v = $v RETURN n.v AS v", {"v": value})
        back = result.value("v")
        # The server stores exactly what was sent: compared on the server, it is equal.
        same = falkordb.read("MATCH (n:V) RETURN n.v = $v AS same", {"v": value}).value("same")
        assert same is True
        assert type(back) is type(value)
        if isinstance(value, float):
            # FalkorDB formats every double it *returns* with 15 significant digits
            # (RESP2 and RESP3 alike); see docs/graph-servers.md.
            assert back == float(f"{value:.15g}")
            assert math.copysign(1, back) == math.copysign(1, value)
        else:
            assert back == value
        assert falkordb.read("MATCH (n) RETURN count(n) AS n").value("n") == 1
    finally:
        falkordb.write("MATCH (n) DELETE n")


def test_a_probe_copies_no_graph_larger_than_its_limit(falkordb_target: GraphTarget) -> None:
    # Given a graph of a few MB, and backends allowing probe copies up to 1 MB and up to 1 GB
    small = FalkorDBBackend(falkordb_target, probe_copy_max_mb=1)
    large = FalkorDBBackend(falkordb_target, probe_copy_max_mb=1024)
    try:
        small.write("UNWIND range(1, 100000) AS i CREATE (:Item {i: i, name: toString(i)})")
        size = int(dict(small._db.connection.execute_command(
            "GRAPH.MEMORY", "USAGE", falkordb_target.name))["total_graph_sz_mb"])
        assert size > 1
        # Then the first refuses to probe on a copy, naming the size and the limit; a probe
        # that puts back what it does still runs on the graph
        with pytest.raises(ProbeTooLarge, match=(
                rf"would copy the whole graph {falkordb_target.name} \({size:,} MB, undo log "
                r"included\), more than KGMIGRATE_PROBE_COPY_MAX_MB=1$")):
            small.probe_write("MATCH (e:Item {i: 1}) SET e.x = 1 RETURN 1 AS one")
        assert small.probe_write("RETURN 2 AS two", undoes_itself=True).value("two") == 2
        # and the second probes on a copy, which leaves the graph as it was
        assert large.probe_write("MATCH (e:Item {i: 1}) SET e.x = 1 RETURN e.x AS x"
                                 ).value("x") == 1
        assert small.read("MATCH (e:Item) WHERE e.x IS NOT NULL RETURN count(e) AS n"
                          ).value("n") == 0
    finally:
        small.delete_graph()
        small.close()
        large.close()
