"""Baselines on the embedded FalkorDB and the embedded Neo4j, each variant run in one process
against one server, reported as ratios within a server (never seconds across servers or runs).

On both servers (one label :Item, one property set on every node, batches of 10k):
(a) one hand-written statement `MATCH (n:Item) SET n.a = 1` sets a property on every node;
(b) a hand-written loop of the same batches does the same, in this process: on FalkorDB
    10k-id ranges (`id(n) >= $lo AND id(n) < $hi`); on Neo4j every `elementId(n)` of the label
    read in order, cut into lists of 10k keys, one `elementId(n) IN $keys` write per list;
(c) kgmigrate: the same change as a migration, planned and run as batch tasks on 1 and 2
    batch-worker processes (c1, c2; on Neo4j also 4: c4) plus one control worker, from enqueue
    to COMPLETED: once as a raw `apply` (`ops.batched`, whose undo rows keep whole entities)
    and once as the library op `ops.add_property` (cL1, cL2, cL4: rows keep that property);
(r) rollback: the same change, failing validation in its last batch, rolled back on its own
    from the undo log; rollback throughput (entities restored per second) over forward
    throughput (entities changed per second, undo capture included), from the run's history,
    with 1 and 2 batch workers.
Each timed repetition of (a), (a2) and (b) starts with the property absent (removed, untimed),
as it is for (c): a write of an unchanged value may cost the server nothing.

Neo4j only (the embedded Neo4j, auth on, heap 2g, page cache 1g, transaction memory 1g):
(a2) `MATCH (n:Item) CALL (n) { SET n.a2 = 1 } IN TRANSACTIONS OF 10000 ROWS` in an implicit
     (auto-commit) transaction: Neo4j's own batching of one statement, for a2/a.

FalkorDB only:
(t) a deliberately CPU-bound Python-callable transform (`tests.transforms:burn`, about 1 ms a
    value) over 40k nodes, with 1 and 2 batch workers: where more workers pay off;
(p) planning: kgmigrate cuts a label into batches (on the server, window by window);
    throughput and peak Python memory at two graph sizes, to show planning memory does not
    grow with the graph.

The broker is always the embedded FalkorDB/Redis stack the bench starts. Output:
`{"nodes": ..., "neo4j_nodes": ..., "batch_size": ..., "falkordb": {...}, "neo4j": {...}}`,
with per server the ratios c/b, c2/c1 (and c4/c1 on Neo4j), a2/a (Neo4j) and rollback/forward.

Usage: python bench/run.py [--nodes 1000000] [--neo4j-nodes 1000000]
                           [--servers falkordb,neo4j] [--out bench/results/baseline.json]
"""

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).parent.parent))

from kgmigrate import runs
from kgmigrate.connect import resolve
from kgmigrate.dev.neo4j_stack import EmbeddedNeo4j
from kgmigrate.dev.stack import EmbeddedStack
from kgmigrate.errors import BackendError
from kgmigrate.graph import Scope
from kgmigrate.graph.base import GraphBackend
from kgmigrate.graph.falkordb import FalkorDBBackend
from kgmigrate.graph.neo4j import Neo4jBackend
from kgmigrate.ledger import Ledger
from kgmigrate.ledger.lock import MigrationLock
from kgmigrate.model.registry import Registry
from kgmigrate.runtime.settings import load_settings, parse_graph_url
from tests.conftest import free_port

BATCH = 10_000
SERVERS = ("falkordb", "neo4j")
# What tells a worker where the graph is; replaced as a whole for each server's variants.
GRAPH_ENV_KEYS = ("KGMIGRATE_GRAPH_URL", "KGMIGRATE_NEO4J_USER", "KGMIGRATE_NEO4J_PASSWORD")


def load(graph: GraphBackend, nodes: int, neo4j: EmbeddedNeo4j | None = None) -> None:
    """Replace the graph by `nodes` :Item nodes. Neo4j creates them 100k per transaction
    (bounded transaction memory), FalkorDB 500k per statement."""
    if neo4j is not None:
        neo4j.empty(graph)
        chunk = 100_000
    else:
        assert isinstance(graph, FalkorDBBackend)
        graph.delete_graph()
        chunk = 500_000
    for lo in range(0, nodes, chunk):
        graph.write("UNWIND range($lo, $hi - 1) AS i CREATE (:Item {i: i})",
                    {"lo": lo, "hi": min(nodes, lo + chunk)})


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def clear(graph: GraphBackend, prop: str) -> None:
    """Remove `prop` from every :Item (untimed), so that each repetition writes a new value."""
    if isinstance(graph, Neo4jBackend):
        graph.run_autocommit(f"MATCH (n:Item) CALL (n) {{ REMOVE n.{prop} }} "
                             "IN TRANSACTIONS OF 50000 ROWS")
    else:
        graph.write(f"MATCH (n:Item) SET n.{prop} = NULL")


def best_of(graph: GraphBackend, prop: str, fn: Callable[[], Any], nodes: int,
            repeat: int = 3) -> dict[str, Any]:
    """The fastest of `repeat` runs of `fn`, each on a graph without `prop`."""
    seconds = []
    for _ in range(repeat):
        clear(graph, prop)
        seconds.append(timed(fn))
    return {"seconds": min(seconds), "nodes_per_s": nodes / min(seconds), "all_seconds": seconds}


def one_statement(graph: GraphBackend) -> None:
    graph.write("MATCH (n:Item) SET n.a = 1")


def in_transactions(graph: Neo4jBackend) -> None:
    graph.run_autocommit(f"MATCH (n:Item) CALL (n) {{ SET n.a2 = 1 }} "
                         f"IN TRANSACTIONS OF {BATCH} ROWS")


def keyset_loop(graph: GraphBackend) -> None:
    """FalkorDB: 10k-id ranges up to the label's highest id."""
    max_id = graph.read("MATCH (n:Item) RETURN max(id(n)) AS m").value("m")
    for lo in range(0, max_id + 1, BATCH):
        graph.write("MATCH (n:Item) WHERE id(n) >= $lo AND id(n) < $hi SET n.b = 1",
                    {"lo": lo, "hi": lo + BATCH})


def element_id_loop(graph: GraphBackend) -> None:
    """Neo4j: every elementId of the label in order (one list, read once), cut into lists of
    10k keys, one write per list."""
    keys = graph.read("MATCH (n:Item) WITH elementId(n) AS k ORDER BY k "
                      "RETURN collect(k) AS keys").value("keys")
    for lo in range(0, len(keys), BATCH):
        graph.write("MATCH (n:Item) WHERE elementId(n) IN $keys SET n.b = 1",
                    {"keys": keys[lo:lo + BATCH]})


def plan(graph: GraphBackend) -> tuple[float, int, int]:
    """Planning as kgmigrate does it (`plan_batches`: cuts computed on the server), timed
    untraced (tracemalloc slows allocation several-fold), then traced for peak memory."""
    start = time.perf_counter()
    batches = sum(1 for _ in graph.plan_batches(Scope.nodes("Item"), BATCH))
    seconds = time.perf_counter() - start
    tracemalloc.start()
    sum(1 for _ in graph.plan_batches(Scope.nodes("Item"), BATCH))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, batches, peak


MIGRATION = """
from kgmigrate import Migration, ops
migration = Migration(batch_size=%d, steps=[ops.batched("Item", "SET e.%s = 1"%s)])
"""
# The same change as a library op: its undo rows keep only the property it touches, where a
# raw `apply` (MIGRATION) keeps each entity whole. The property is absent, so `where absent`
# selects every node, as the hand loop does.
LIBRARY_MIGRATION = """
from kgmigrate import Migration, ops
migration = Migration(batch_size=%d, steps=[ops.add_property("Item", "%s", 1)])
"""


def peak_rss_kb(pid: int) -> int:
    """Peak resident memory of a process and its children (the prefork pool)."""
    total = 0
    pids = [pid] + [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total = max(total, int(line.split()[1]))
    return total


PYTHON_TRANSFORM = """
from kgmigrate import Migration, ops
migration = Migration(batch_size=1000, steps=[
    ops.python_transform("Doc", "%s", "tests.transforms:burn")])
"""
TRANSFORM_NODES = 40_000  # enough that the fixed cost per run (about 2 s) does not dominate


def kgmigrate_run(stack: EmbeddedStack, graph: GraphBackend, graph_env: dict[str, str],
                  workers: int, prop: str, tmp: Path, *, fail_last: int | None = None,
                  text: str | None = None) -> dict[str, Any]:
    """Enqueue a one-step migration and time it to COMPLETED on real worker processes (with
    `fail_last`: failing validation for keys from there on, and rolled back). `graph_env`:
    the `KGMIGRATE_*` variables that point the workers (and this process) at `graph`."""
    migrations = tmp / f"migrations_{prop}"
    migrations.mkdir(parents=True)
    validation = "" if fail_last is None else f", validation='e.i < {fail_last}'"
    (migrations / "V0001__bench.py").write_text(text or MIGRATION % (BATCH, prop, validation))
    graph.write("MATCH (n:__KGMMigration) DETACH DELETE n")  # each variant starts unapplied
    db = 10 + workers
    for key in GRAPH_ENV_KEYS:
        os.environ.pop(key, None)
    env = {**os.environ, **graph_env,
           "KGMIGRATE_BROKER_URL": f"redis://127.0.0.1:{stack.port}/{db}",
           "KGMIGRATE_RESULT_BACKEND": f"redis://127.0.0.1:{stack.port}/{db}",
           "KGMIGRATE_MIGRATIONS_DIR": str(migrations),
           "KGMIGRATE_BACKUP_DIR": str(tmp / f"backups_{prop}")}
    os.environ.update(env)

    def worker(queue: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "kgmigrate.cli", "worker", "--queues",
                                 queue], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

    control = worker("kgm.control")
    batch_workers = [worker("kgm.batches") for _ in range(workers)]
    try:
        # let the workers connect: we time the migration, not interpreter start-up
        time.sleep(2 + workers)
        settings = load_settings()
        start = time.perf_counter()
        run_id = runs.enqueue_migration(graph, Registry.load(migrations), resolve(settings))
        assert run_id is not None
        run = runs.wait(graph, run_id, poll_s=0.05)
        seconds = time.perf_counter() - start
        # The control task frees the lock before it records the end; checked (untimed) so a
        # regression shows here rather than as a held lock in the next variant.
        wait_lock_free(graph)
        if fail_last is not None:
            return {"workers": workers, **rollback_figures(graph, run)}
        assert run.status.value == "completed", run.error_log
        memory = {"control_peak_rss_kb": peak_rss_kb(control.pid),
                  "batch_worker_peak_rss_kb": max(peak_rss_kb(w.pid) for w in batch_workers)}
    finally:
        for process in [control, *batch_workers]:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()
    latencies = run.steps[0].batch_seconds
    tenth = max(1, len(latencies) // 10)
    first, last = latencies[:tenth], latencies[-tenth:]
    return {"workers": workers, "seconds": seconds, "nodes_per_s": run.steps[0].entities_done
            / seconds, "batches": len(latencies),
            "first_tenth_batch_s": sum(first) / len(first),
            "last_tenth_batch_s": sum(last) / len(last), **memory}


def wait_lock_free(graph: GraphBackend, timeout_s: float = 60.0) -> None:
    lock = MigrationLock(graph)
    deadline = time.monotonic() + timeout_s
    while lock.info() is not None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the migration lock is still held {timeout_s:.0f} s after the "
                               f"run ended: {lock.info()}")
        time.sleep(0.05)


def rollback_figures(graph: GraphBackend, run: Any) -> dict[str, Any]:
    """Forward and rollback phases timed from the run's own status history."""
    assert run.status.value == "rolled_back", run.error_log
    at = {entry.split("@")[0]: datetime.fromisoformat(entry.split("@")[1])
          for entry in run.history}
    forward_s = (at["rolling_back"] - at["in_progress"]).total_seconds()
    rollback_s = (at["rolled_back"] - at["rolling_back"]).total_seconds()
    changed = sum(s.entities_done for s in run.steps)
    restored = sum(int(r["restored"] or 0) for s in run.steps
                   for r in Ledger(graph).restores(s.id))
    assert restored == changed, (restored, changed)
    return {"forward_s": forward_s, "entities_changed": changed, "rollback_s": rollback_s,
            "entities_restored": restored, "forward_per_s": changed / forward_s,
            "rollback_per_s": restored / rollback_s,
            "ratio_rollback_over_forward": (restored / rollback_s) / (changed / forward_s)}


def batched_variants(stack: EmbeddedStack, graph: GraphBackend, graph_env: dict[str, str],
                     tmp: Path, nodes: int, worker_counts: tuple[int, ...],
                     figures: dict[str, Any]) -> None:
    """(c) with each worker count, as a raw `apply` (c) and as a library op (cL), and (r) with
    1 and 2 workers, with their ratios to (a), (b) and c1, into `figures` (which holds (a) and
    (b) already)."""
    a, b = figures["a_one_statement"], figures["b_batch_loop"]
    for tag, name, text in (("c", "kgmigrate", MIGRATION), ("cL", "library", LIBRARY_MIGRATION)):
        for workers in worker_counts:
            prop = f"{tag}{workers}".lower()
            c = kgmigrate_run(stack, graph, graph_env, workers, prop, tmp,
                              text=None if tag == "c" else text % (BATCH, prop))
            figures[f"c_{name}_{workers}_workers"] = c
            if "nodes_per_s" in a:
                figures[f"ratio_{tag}{workers}_over_a"] = c["nodes_per_s"] / a["nodes_per_s"]
            figures[f"ratio_{tag}{workers}_over_b"] = c["nodes_per_s"] / b["nodes_per_s"]
            figures[f"latency_last_over_first_tenth_{tag}{workers}"] = (
                c["last_tenth_batch_s"] / c["first_tenth_batch_s"])
            if workers > 1:
                figures[f"ratio_{tag}{workers}_over_{tag}1"] = (
                    c["nodes_per_s"] / figures[f"c_{name}_1_workers"]["nodes_per_s"])
    for workers in (1, 2):
        r = kgmigrate_run(stack, graph, graph_env, workers, f"r{workers}", tmp,
                          fail_last=nodes - 5)
        figures[f"r_rollback_{workers}_workers"] = r
        figures[f"ratio_rollback_over_forward_{workers}_workers"] = (
            r["ratio_rollback_over_forward"])


def bench_falkordb(stack: EmbeddedStack, tmp: Path, nodes: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"nodes": nodes}
    graph = FalkorDBBackend(parse_graph_url(stack.graph_url("bench")))
    try:
        graph_env = {"KGMIGRATE_GRAPH_URL": graph.target.display}
        load(graph, nodes)
        figures["a_one_statement"] = best_of(graph, "a", lambda: one_statement(graph), nodes)
        figures["b_batch_loop"] = best_of(graph, "b", lambda: keyset_loop(graph), nodes)
        figures["ratio_b_over_a_throughput"] = (figures["a_one_statement"]["seconds"]
                                                / figures["b_batch_loop"]["seconds"])
        batched_variants(stack, graph, graph_env, tmp, nodes, (1, 2), figures)
        graph.write("UNWIND range(1, $n) AS i CREATE (:Doc {i: i, t1: i, t2: i})",
                    {"n": TRANSFORM_NODES})
        for workers in (1, 2):
            prop = f"t{workers}"
            figures[f"t_python_transform_{workers}_workers"] = kgmigrate_run(
                stack, graph, graph_env, workers, prop, tmp, text=PYTHON_TRANSFORM % prop)
        figures["ratio_t2_over_t1_throughput"] = (
            figures["t_python_transform_2_workers"]["nodes_per_s"]
            / figures["t_python_transform_1_workers"]["nodes_per_s"])
        for size in (nodes, 5 * nodes):
            load(graph, size)
            seconds, batches, peak = plan(graph)
            figures[f"plan_{size}"] = {"seconds": seconds, "batches": batches,
                                       "keys_per_s": size / seconds, "peak_python_bytes": peak}
        small, large = figures[f"plan_{nodes}"], figures[f"plan_{5 * nodes}"]
        figures["plan_memory_ratio_5x_graph"] = (large["peak_python_bytes"]
                                                 / small["peak_python_bytes"])
        graph.delete_graph()
    finally:
        graph.close()
    return figures


def bench_neo4j(stack: EmbeddedStack, tmp: Path, nodes: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"nodes": nodes}
    password = SecretStr(secrets.token_urlsafe(12))
    neo4j = EmbeddedNeo4j(tmp / "neo4j", free_port(), heap="2g", page_cache="1g",
                          tx_memory="1g", password=password)
    status = neo4j.up()
    try:
        figures["server"] = f"Neo4j {status.version}"
        graph = Neo4jBackend(neo4j.target)
        try:
            graph_env = {"KGMIGRATE_GRAPH_URL": neo4j.target.display,
                         "KGMIGRATE_NEO4J_USER": "neo4j",
                         "KGMIGRATE_NEO4J_PASSWORD": password.get_secret_value()}
            load(graph, nodes, neo4j)
            try:  # one transaction over the whole label: may exceed the transaction memory
                figures["a_one_statement"] = best_of(graph, "a", lambda: one_statement(graph),
                                                     nodes)
            except BackendError as exc:
                figures["a_one_statement"] = {"error": str(exc)}
            figures["a2_in_transactions"] = best_of(graph, "a2", lambda: in_transactions(graph),
                                                    nodes)
            figures["b_batch_loop"] = best_of(graph, "b", lambda: element_id_loop(graph), nodes)
            a = figures["a_one_statement"]
            if "seconds" in a:
                figures["ratio_a2_over_a_throughput"] = (
                    a["seconds"] / figures["a2_in_transactions"]["seconds"])
                figures["ratio_b_over_a_throughput"] = (
                    a["seconds"] / figures["b_batch_loop"]["seconds"])
            batched_variants(stack, graph, graph_env, tmp, nodes, (1, 2, 4), figures)
        finally:
            graph.close()
    finally:
        neo4j.down()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--neo4j-nodes", type=int, default=1_000_000)
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help="comma-separated, of: " + ", ".join(SERVERS))
    parser.add_argument("--out", type=Path, default=Path("bench/results/baseline.json"))
    args = parser.parse_args()
    servers = {s.strip() for s in args.servers.split(",") if s.strip()}
    if not servers or servers - set(SERVERS):
        parser.error(f"--servers takes {', '.join(SERVERS)}, got {args.servers!r}")
    figures: dict[str, Any] = {"nodes": args.nodes, "neo4j_nodes": args.neo4j_nodes,
                               "batch_size": BATCH}
    with tempfile.TemporaryDirectory() as tmp:
        stack = EmbeddedStack(Path(tmp) / "stack", free_port())
        stack.up()
        try:
            if "falkordb" in servers:
                figures["falkordb"] = bench_falkordb(stack, Path(tmp) / "falkordb", args.nodes)
            if "neo4j" in servers:
                figures["neo4j"] = bench_neo4j(stack, Path(tmp) / "neo4j_bench",
                                               args.neo4j_nodes)
        finally:
            stack.down()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
