"""Baselines on the embedded FalkorDB, in one process on one server, reported as ratios.

(a) one hand-written statement sets a property on every node of a label;
(b) a hand-written loop of 10k-id range batches does the same;
(p) planning: kgmigrate streams the keys and cuts them into batches; throughput and peak
    Python memory, at two graph sizes, to show planning memory does not grow with the graph.

The kgmigrate execution figures (c) join these when distributed execution exists.
Usage: python bench/run.py [--nodes 1000000] [--out bench/results/baseline.json]
"""

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent))

from kgmigrate.config import parse_graph_url
from kgmigrate.graph import Scope
from kgmigrate.graph.batching import cut
from kgmigrate.graph.falkordb import FalkorDBBackend
from kgmigrate.stack import EmbeddedStack
from tests.conftest import free_port

BATCH = 10_000


def load(graph: FalkorDBBackend, nodes: int) -> None:
    graph.delete_graph()
    for lo in range(0, nodes, 500_000):
        graph.write("UNWIND range($lo, $hi - 1) AS i CREATE (:Item {i: i})",
                    {"lo": lo, "hi": min(nodes, lo + 500_000)})


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def one_statement(graph: FalkorDBBackend) -> None:
    graph.write("MATCH (n:Item) SET n.a = 1")


def keyset_loop(graph: FalkorDBBackend, nodes: int) -> None:
    max_id = graph.read("MATCH (n:Item) RETURN max(id(n)) AS m").value("m")
    for lo in range(0, max_id + 1, BATCH):
        graph.write("MATCH (n:Item) WHERE id(n) >= $lo AND id(n) < $hi SET n.b = 1",
                    {"lo": lo, "hi": lo + BATCH})


def plan(graph: FalkorDBBackend) -> tuple[float, int, int]:
    """Time planning without tracing (tracemalloc slows allocation several-fold), then measure
    its peak Python memory in a second, traced pass."""
    start = time.perf_counter()
    batches = sum(1 for _ in cut(graph.iter_keys(Scope.nodes("Item")), BATCH, "range"))
    seconds = time.perf_counter() - start
    tracemalloc.start()
    sum(1 for _ in cut(graph.iter_keys(Scope.nodes("Item")), BATCH, "range"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, batches, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/baseline.json"))
    args = parser.parse_args()
    figures: dict[str, Any] = {"nodes": args.nodes, "batch_size": BATCH}
    with tempfile.TemporaryDirectory() as tmp:
        stack = EmbeddedStack(Path(tmp), free_port())
        stack.up()
        try:
            graph = FalkorDBBackend(parse_graph_url(stack.graph_url("bench")))
            load(graph, args.nodes)
            a = min(timed(lambda: one_statement(graph)) for _ in range(3))
            b = min(timed(lambda: keyset_loop(graph, args.nodes)) for _ in range(3))
            figures["a_one_statement"] = {"seconds": a, "nodes_per_s": args.nodes / a}
            figures["b_keyset_loop"] = {"seconds": b, "nodes_per_s": args.nodes / b}
            figures["ratio_b_over_a_throughput"] = a / b
            for size in (args.nodes, 5 * args.nodes):
                load(graph, size)
                seconds, batches, peak = plan(graph)
                figures[f"plan_{size}"] = {"seconds": seconds, "batches": batches,
                                           "keys_per_s": size / seconds,
                                           "peak_python_bytes": peak}
            small, large = figures[f"plan_{args.nodes}"], figures[f"plan_{5 * args.nodes}"]
            figures["plan_memory_ratio_5x_graph"] = (large["peak_python_bytes"]
                                                     / small["peak_python_bytes"])
            graph.delete_graph()
            graph.close()
        finally:
            stack.down()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
