"""The backup store, snapshots and the fingerprint, against the real embedded server."""

import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest

from kgmigrate import runs
from kgmigrate.backup.snapshot import create_snapshot, list_snapshots, restore_snapshot
from kgmigrate.backup.store import BackupStoreError, DirectoryStore
from kgmigrate.fingerprint import fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import MigrationStatus
from kgmigrate.runtime.app import redelivery_bound_s
from kgmigrate.runtime.settings import GraphTarget
from tests.conftest import Execution, graph_env, wait_until
from tests.test_cli import KGM
from tests.test_execution import start

# -- store ----------------------------------------------------------------------------------


def test_store_round_trips_rows_atomically_and_lists_keys(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    rows = [{"k": 1, "p": {"x": 0.1 + 0.2, "s": 'q"\\\n'}}, [1, None, True], "text"]
    digest = store.put_rows("runs/r1/undo/0001/000001.a", rows)
    assert list(store.rows("runs/r1/undo/0001/000001.a")) == rows
    assert store.sha256("runs/r1/undo/0001/000001.a") == digest
    store.put_rows("runs/r1/undo/0001/000001.a", [{"again": True}])  # replaced whole
    assert list(store.rows("runs/r1/undo/0001/000001.a")) == [{"again": True}]
    store.put_json("runs/r1/undo/0002/000001.b", {"one": 1})
    assert store.keys("runs/r1") == ["runs/r1/undo/0001/000001.a", "runs/r1/undo/0002/000001.b"]
    assert not list(tmp_path.rglob(".tmp-*"))  # no temporary file left behind


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "a/./b", "a b", "x/" + "y" * 300])
def test_store_refuses_keys_that_are_not_plain_paths(tmp_path: Path, key: str) -> None:
    with pytest.raises(BackupStoreError, match="invalid backup key"):
        DirectoryStore(tmp_path).put_json(key, {})


def test_store_reports_missing_and_damaged_objects_in_one_line(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    with pytest.raises(BackupStoreError, match="missing"):
        list(store.rows("snapshots/none/manifest"))
    store.put_json("snapshots/s1/manifest", {"id": "s1"})
    path = tmp_path / "snapshots" / "s1" / "manifest.jsonl.gz"
    path.write_bytes(path.read_bytes()[:-6])  # a torn write
    with pytest.raises(BackupStoreError, match="damaged"):
        list(store.rows("snapshots/s1/manifest"))
    path.write_bytes(gzip.compress(b"{not json\n"))
    with pytest.raises(BackupStoreError, match="damaged"):
        list(store.rows("snapshots/s1/manifest"))


# -- fingerprint ----------------------------------------------------------------------------


GRAPH = [
    "CREATE (a:A:B {x: 0.30000000000000004, l: [1.5, 0.1], q: ['q\"'], s: 'back\\\\slash'}), "
    "(b:B {i: 9007199254740993}), (c {}), (a)-[:R {w: 1.0}]->(b), (a)-[:R {w: 1.0}]->(b), "
    "(b)-[:S]->(c), (c)-[:S]->(c)",
]
OTHER_ORDER = ("CREATE (c {}), (b:B {i: 9007199254740993}), "
               "(a:B:A {q: ['q\"'], l: [1.5, 0.1], s: 'back\\\\slash', x: 0.30000000000000004}), "
               "(c)-[:S]->(c), (b)-[:S]->(c), (a)-[:R {w: 1.0}]->(b), (a)-[:R {w: 1.0}]->(b)")


def test_the_fingerprint_ignores_order_and_ids_but_sees_every_bit(graph: GraphBackend) -> None:
    for statement in GRAPH:
        graph.write(statement)
    first = fingerprint(graph)
    assert (first.nodes, first.relationships) == (3, 4)
    # the same graph built in another order, with other ids, has the same digest
    graph.write("MATCH (n) DETACH DELETE n")
    graph.write("CREATE (:Filler)")
    graph.write(OTHER_ORDER)
    graph.write("MATCH (f:Filler) DELETE f")
    assert fingerprint(graph) == first
    # ledger entities do not count
    Ledger(graph).ensure_schema()
    graph.write("CREATE (:__KGMRun {id: 'x'})")
    assert fingerprint(graph) == first
    # one ulp, an int for a float, a reversed relationship: each changes the digest (`SET r.w =
    # 1` would keep the property a Float on FalkorDB: replacing the map changes its type)
    for change, undo in [
        ("MATCH (a:A) SET a.x = 0.3", "MATCH (a:A) SET a.x = 0.30000000000000004"),
        ("MATCH ()-[r:R]->() WITH r LIMIT 1 SET r = {w: 1}", None),
        ("MATCH (b:B {i: 9007199254740993})-[s:S]->(c) DELETE s CREATE (c)-[:S]->(b)", None),
    ]:
        graph.write(change)
        assert fingerprint(graph) != first
        if undo:
            graph.write(undo)
            assert fingerprint(graph) == first


# -- snapshots ------------------------------------------------------------------------------


def test_a_snapshot_restores_the_exact_graph(graph: GraphBackend, tmp_path: Path) -> None:
    # Given a graph with floats, lists, quotes, parallel relationships, an unlabelled node
    for statement in GRAPH:
        graph.write(statement)
    graph.write("UNWIND range(1, 3000) AS i CREATE (:C {i: i, f: i / 3.0})-[:T {k: i}]->"
                   "(:D {j: i})")
    Ledger(graph).ensure_schema()
    graph.write("CREATE (:__KGMRun {id: 'keep-me'})")
    before = fingerprint(graph)
    store = DirectoryStore(tmp_path)
    counted: dict[str, int] = {}
    manifest = create_snapshot(graph, store, progress=lambda what, n: counted.update(
        {what: counted.get(what, 0) + n}))
    assert (manifest.nodes, manifest.relationships) == (6003, 3004)
    assert counted == {"nodes": 6003, "relationships": 3004}
    assert manifest.fingerprint == before.digest
    assert [m.id for m in list_snapshots(store)] == [manifest.id]
    # When the graph changes in every way and the snapshot is restored
    graph.write("MATCH (c:C) WHERE c.i % 2 = 0 DETACH DELETE c")
    graph.write("MATCH (d:D) SET d.j = -1, d:Changed")
    graph.write("CREATE (:New {v: 1})")
    assert fingerprint(graph) != before
    result = restore_snapshot(graph, store, manifest.id)
    # Then it is exactly as it was, and the ledger was left alone
    assert result.verified is True
    assert fingerprint(graph) == before
    assert graph.read("MATCH (r:__KGMRun) RETURN r.id AS id").value("id") == "keep-me"


def test_a_label_snapshot_restores_only_its_labels(graph: GraphBackend,
                                                   tmp_path: Path) -> None:
    graph.write("UNWIND range(1, 100) AS i CREATE (:C {i: i})-[:T {k: i}]->(:D {j: i})")
    store = DirectoryStore(tmp_path)
    manifest = create_snapshot(graph, store, labels=["C"])
    assert (manifest.nodes, manifest.relationships, manifest.fingerprint) == (100, 100, None)
    graph.write("MATCH (c:C) SET c.i = 0")
    graph.write("MATCH (d:D) SET d.j = 0")
    restore_snapshot(graph, store, manifest.id)
    rows = graph.read("MATCH (c:C)-[t:T]->(d:D) RETURN c.i AS i, t.k AS k, d.j AS j").records
    assert sorted(r["i"] for r in rows) == list(range(1, 101))  # C restored
    assert all(r["i"] == r["k"] for r in rows)  # with their relationships to D
    assert {r["j"] for r in rows} == {0}  # D, not in the snapshot, kept its new values


def test_a_damaged_snapshot_is_refused_before_anything_is_deleted(
        graph: GraphBackend, tmp_path: Path) -> None:
    graph.write("UNWIND range(1, 10) AS i CREATE (:C {i: i})")
    store = DirectoryStore(tmp_path)
    manifest = create_snapshot(graph, store)
    part = tmp_path / (manifest.parts[0].key + ".jsonl.gz")
    part.write_bytes(gzip.compress(b'[{"k": 0, "l": ["C"], "p": {"i": 99}}]\n'))
    graph.write("CREATE (:Later)")
    with pytest.raises(BackupStoreError, match="does not match its checksum"):
        restore_snapshot(graph, store, manifest.id)
    assert graph.read("MATCH (n) RETURN count(n) AS n").value("n") == 11


def test_backup_cli_create_list_restore(graph: GraphBackend, graph_target: GraphTarget,
                                        tmp_path: Path) -> None:
    graph.write("UNWIND range(1, 50) AS i CREATE (:C {i: i, f: i / 7.0})")
    before = fingerprint(graph)
    env = {**os.environ, **graph_env(graph_target),
           "KGMIGRATE_BACKUP_DIR": str(tmp_path / "b")}

    def kgm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*KGM, *args], env=env, text=True, capture_output=True,
                              timeout=120, check=False)

    created = kgm("backup", "create", "--json")
    assert created.returncode == 0, created.stderr
    snapshot_id = json.loads(created.stdout)["id"]
    listed = kgm("backup", "list", "--json")
    assert [m["id"] for m in json.loads(listed.stdout)] == [snapshot_id]
    graph.write("MATCH (c:C) DELETE c")
    refused = kgm("backup", "restore", snapshot_id)  # no --yes, no terminal: not confirmed
    assert refused.returncode == 1
    assert graph.read("MATCH (n) RETURN count(n) AS n").value("n") == 0
    restored = kgm("backup", "restore", snapshot_id, "--yes", "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["verified"] is True
    assert fingerprint(graph) == before
    missing = kgm("backup", "restore", "snap_nope", "--yes")
    assert missing.returncode == 1
    assert missing.stderr.startswith("kgmigrate: error: no complete snapshot snap_nope")
    printed = kgm("fingerprint", "--json")
    assert json.loads(printed.stdout) == before.model_dump()


# -- a migration that asks for a snapshot ---------------------------------------------------


SNAPSHOT_FIRST = """
from kgmigrate import Migration, ops

migration = Migration(author="test", snapshot=True, steps=[
    ops.batched("C", "SET e.i = e.i + 1", down="SET e.i = e.i - 1"),
])
"""


def test_a_migration_that_asks_for_a_snapshot_gets_one_before_it_starts(
        execution: Execution, graph: GraphBackend) -> None:
    graph.write("UNWIND range(1, 100) AS i CREATE (:C {i: i})")
    before = fingerprint(graph)
    execution.write_migration("V0001__bump.py", SNAPSHOT_FIRST)
    execution.start_worker()
    run = runs.wait(graph, start(execution, graph), timeout_s=120)
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert run.backup_ref is not None and run.backup_ref.startswith("snapshot:")
    store = DirectoryStore(Path(execution.env["KGMIGRATE_BACKUP_DIR"]))
    [manifest] = list_snapshots(store)
    assert (f"snapshot:{manifest.id}", manifest.labels) == (run.backup_ref, ["C"])
    assert manifest.reason == f"before run {run.id}"
    restore_snapshot(graph, store, manifest.id)
    assert fingerprint(graph) == before


def test_the_external_backup_hook_runs_first_and_its_failure_stops_the_run(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    graph.write("UNWIND range(1, 100) AS i CREATE (:C {i: i})")
    execution.write_migration("V0001__bump.py", SNAPSHOT_FIRST)
    marker = tmp_path / "dumped"
    execution.env["KGMIGRATE_PRE_MIGRATION_BACKUP_COMMAND"] = (
        f"sh -c 'echo $KGMIGRATE_RUN_ID > {marker}; exit 3'")
    execution.start_worker()
    run = runs.wait(graph, start(execution, graph), timeout_s=120)
    assert marker.read_text().strip() == run.id
    assert run.status is MigrationStatus.ROLLED_BACK
    assert "the pre-migration backup command sh exited with 3" in (run.error_log or "")
    assert graph.read("MATCH (c:C) RETURN sum(c.i) AS s").value("s") == 5050  # untouched


def test_a_start_delivered_again_during_a_long_backup_changes_nothing_before_a_backup_ends(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given a migration that asks for a backup, and a backup command that runs until the test
    # lets it end (longer than the broker's visibility timeout: the start task is delivered
    # again while its first delivery still waits for the backup)
    graph.write("UNWIND range(1, 100) AS i CREATE (:C {i: i})")
    execution.write_migration("V0001__bump.py", SNAPSHOT_FIRST)
    log, gate = tmp_path / "backups.log", tmp_path / "gate"
    execution.env["KGMIGRATE_PRE_MIGRATION_BACKUP_COMMAND"] = (
        f"sh -c 'echo start >> {log}; while [ ! -e {gate} ]; do sleep 0.1; done'")
    execution.start_worker(concurrency=2)
    run_id = start(execution, graph)
    ledger = Ledger(graph)

    def batches_committed() -> int:
        run = ledger.run(run_id)
        return sum(s.batches_done for s in run.steps) if run else 0

    # When the start is delivered again while the backup still runs
    bound = redelivery_bound_s(int(execution.env["KGMIGRATE_VISIBILITY_TIMEOUT_S"]))
    wait_until(lambda: log.exists() and (log.read_text().count("start") >= 2
                                         or batches_committed() > 0),
               "the start delivered again", timeout_s=4 * bound)
    # Then nothing was changed before a backup ended: the second delivery takes its own
    committed_before_the_backup_ended = batches_committed()
    gate.touch()
    run = runs.wait(graph, run_id, timeout_s=120)
    assert committed_before_the_backup_ended == 0
    assert run.status is MigrationStatus.COMPLETED, run.error_log
    assert run.backup_ref == "external:sh"
    assert graph.read("MATCH (c:C) RETURN sum(c.i) AS s").value("s") == 5050 + 100  # once
