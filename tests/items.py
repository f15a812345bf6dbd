"""Test entities numbered in the order batches are cut, on either server.

Tests that make a given batch fail (`validation="e.i <= 490"`: the last batch) need item `i`
to sit in batch `ceil(i / size)`. A fresh FalkorDB graph hands out ids in creation order, but
the Neo4j test database is emptied, not dropped, between tests: it reuses freed ids in no
particular order, and its batches are cut in `elementId` order, a string order (`…:1186`
sorts before `…:900`). So items are created bare, then numbered in the key order batches
follow.
"""

from kgmigrate.graph.base import GraphBackend


def create_in_batch_order(graph: GraphBackend, count: int, props: str, *,
                          label: str = "Item") -> None:
    """`count` nodes labelled `label`, the n-th in batch order getting the map `props`, a
    Cypher map literal in terms of `i` = n (as in `UNWIND range(1, count) AS i CREATE
    (:Item {props})`)."""
    graph.write(f"UNWIND range(1, $n) AS i CREATE (:{label} {{kgm_test_new: true}})",
                {"n": count})
    graph.write(f"MATCH (e:{label}) WHERE e.kgm_test_new = true "
                f"WITH e ORDER BY {graph.dialect.key('e')} "
                "WITH collect(e) AS es UNWIND range(1, size(es)) AS i "
                f"WITH es[i - 1] AS e, i SET e += {props} REMOVE e.kgm_test_new")
