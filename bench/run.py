"""Baselines on the embedded FalkorDB, in one process on one server, reported as ratios.

(a) one hand-written statement sets a property on every node of a label;
(b) a hand-written loop of 10k-id range batches does the same;
(c) kgmigrate: the same change as a migration, planned and run as batch tasks on 1 and on 2
    batch-worker processes (plus one control worker), from enqueue to COMPLETED;
(r) rollback: the same change, failing validation in its last batch, rolled back on its own
    from the undo log; rollback throughput (entities restored per second) over forward
    throughput (entities changed per second, undo capture included), from the run's history;
(t) a deliberately CPU-bound Python-callable transform (`tests.transforms:burn`, about 1 ms a
    value) over 40k nodes, with 1 and 2 batch workers: where more workers pay off;
(p) planning: kgmigrate cuts a label into batches (on the server, window by window);
    throughput and peak Python memory at two graph sizes, to show planning memory does not
    grow with the graph.

Usage: python bench/run.py [--nodes 1000000] [--out bench/results/baseline.json]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent))

from kgmigrate import runs
from kgmigrate.config import load_settings, parse_graph_url
from kgmigrate.connect import resolve
from kgmigrate.graph import Scope
from kgmigrate.graph.falkordb import FalkorDBBackend
from kgmigrate.ledger import Ledger
from kgmigrate.registry import Registry
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


def kgmigrate_run(stack: EmbeddedStack, graph: FalkorDBBackend, workers: int, prop: str,
                  tmp: Path, *, fail_last: int | None = None,
                  text: str | None = None) -> dict[str, Any]:
    """Enqueue a one-step migration and time it to COMPLETED on real worker processes (with
    `fail_last`: failing validation for keys from there on, and rolled back)."""
    migrations = tmp / f"migrations_{prop}"
    migrations.mkdir()
    validation = "" if fail_last is None else f", validation='e.i < {fail_last}'"
    (migrations / "V0001__bench.py").write_text(text or MIGRATION % (BATCH, prop, validation))
    graph.write("MATCH (n:__KGMMigration) DETACH DELETE n")  # each variant starts unapplied
    db = 10 + workers
    env = {**os.environ, "KGMIGRATE_GRAPH_URL": graph.target.display,
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
    time.sleep(3)  # let the workers connect: we time the migration, not interpreter start-up
    settings = load_settings()
    start = time.perf_counter()
    run_id = runs.enqueue_migration(graph, Registry.load(migrations), resolve(settings))
    assert run_id is not None
    run = runs.wait(graph, run_id, poll_s=0.05)
    seconds = time.perf_counter() - start
    if fail_last is not None:
        figures = rollback_figures(graph, run)
        for process in [control, *batch_workers]:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()
        return figures
    assert run.status.value == "completed", run.error_log
    memory = {"control_peak_rss_kb": peak_rss_kb(control.pid),
              "batch_worker_peak_rss_kb": max(peak_rss_kb(w.pid) for w in batch_workers)}
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


def rollback_figures(graph: FalkorDBBackend, run: Any) -> dict[str, Any]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/baseline.json"))
    args = parser.parse_args()
    figures: dict[str, Any] = {"nodes": args.nodes, "batch_size": BATCH}
    with tempfile.TemporaryDirectory() as tmp:
        stack = EmbeddedStack(Path(tmp) / "stack", free_port())
        stack.up()
        try:
            graph = FalkorDBBackend(parse_graph_url(stack.graph_url("bench")))
            load(graph, args.nodes)
            a = min(timed(lambda: one_statement(graph)) for _ in range(3))
            b = min(timed(lambda: keyset_loop(graph, args.nodes)) for _ in range(3))
            figures["a_one_statement"] = {"seconds": a, "nodes_per_s": args.nodes / a}
            figures["b_keyset_loop"] = {"seconds": b, "nodes_per_s": args.nodes / b}
            figures["ratio_b_over_a_throughput"] = a / b
            for workers in (1, 2):
                c = kgmigrate_run(stack, graph, workers, f"c{workers}", Path(tmp))
                figures[f"c_kgmigrate_{workers}_workers"] = c
                figures[f"ratio_c{workers}_over_a"] = c["nodes_per_s"] / figures[
                    "a_one_statement"]["nodes_per_s"]
                figures[f"ratio_c{workers}_over_b"] = c["nodes_per_s"] / figures[
                    "b_keyset_loop"]["nodes_per_s"]
                figures[f"latency_last_over_first_tenth_c{workers}"] = (
                    c["last_tenth_batch_s"] / c["first_tenth_batch_s"])
            for workers in (1, 2):
                figures[f"r_rollback_{workers}_workers"] = kgmigrate_run(
                    stack, graph, workers, f"r{workers}", Path(tmp), fail_last=args.nodes - 5)
            graph.write("UNWIND range(1, $n) AS i CREATE (:Doc {i: i, t1: i, t2: i})",
                        {"n": TRANSFORM_NODES})
            for workers in (1, 2):
                prop = f"t{workers}"
                figures[f"t_python_transform_{workers}_workers"] = kgmigrate_run(
                    stack, graph, workers, prop, Path(tmp), text=PYTHON_TRANSFORM % prop)
            figures["ratio_t2_over_t1_throughput"] = (
                figures["t_python_transform_2_workers"]["nodes_per_s"]
                / figures["t_python_transform_1_workers"]["nodes_per_s"])
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
