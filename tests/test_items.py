"""The tests' items sit in the batches their numbers say, whatever ids the server reuses."""

from kgmigrate.graph.base import GraphBackend
from kgmigrate.model.scope import Scope
from tests.items import create_in_batch_order


def test_items_are_numbered_in_the_order_their_batches_are_cut(graph: GraphBackend) -> None:
    # Given a graph whose freed ids run past a power of ten, to be reused (on Neo4j, a reused
    # id like 1186 sorts before 900 in elementId order)
    graph.write("UNWIND range(1, 1100) AS i CREATE (:Scrap)")
    graph.write("MATCH (n:Scrap) DELETE n")
    # When 500 items are created in batch order
    create_in_batch_order(graph, 500, "{i: i, w: i / 7.0}")
    # Then the planner meets them as items 1 to 500, with their properties and nothing else
    key = graph.dialect.key("e")
    number = {r["k"]: r["i"] for r in graph.read(
        f"MATCH (e:Item) RETURN {key} AS k, e.i AS i, e.w AS w, keys(e) AS props").records
        if abs(r["w"] - r["i"] / 7.0) < 1e-9 and sorted(r["props"]) == ["i", "w"]}
    assert [number.get(k) for k in graph.iter_keys(Scope.nodes("Item"))] == list(range(1, 501))
