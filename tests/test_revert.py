"""`kgmigrate revert RUN` (issue 17, item 2): a completed run undone from its undo log,
through the real CLI with real workers, on both servers. An op without an inverse (add a
property where absent) has nothing to run backwards, yet its run's undo log knows which
entities had the value before; the revert restores them under rollback's conflict rule and
records the migration as downgraded. `downgrade` does the same for such a migration (item 2's
"make downgrade use it"): its legs run one after another, inverses and reverts."""

import json
import subprocess
from pathlib import Path
from typing import Any

from kgmigrate.graph.base import GraphBackend
from tests.conftest import Execution
from tests.test_cli import run, runner

ADD_AND_RENAME = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=40, steps=[
    ops.add_property("RGene", "organism", "human"),
    ops.rename_property("RGene", "name", "symbol"),
])
"""
LATER = """
from kgmigrate import Migration, ops

migration = Migration(author="test", steps=[ops.add_property("RGene", "late", 1)])
"""


def genes(graph: GraphBackend) -> dict[int, dict[str, Any]]:
    rows = graph.read("MATCH (g:RGene) RETURN g.i AS i, properties(g) AS p").records
    return {int(r["i"]): dict(r["p"]) for r in rows}


def load_genes(graph: GraphBackend) -> dict[int, dict[str, Any]]:
    """200 genes named g0..g199, a third of them with an organism ('mouse')."""
    graph.write("UNWIND range(0, 199) AS i CREATE (g:RGene {i: i, name: 'g' + toString(i)}) "
                "WITH g WHERE g.i % 3 = 0 SET g.organism = 'mouse'")
    return genes(graph)


def links(graph: GraphBackend, version: str) -> list[str]:
    return graph.read("MATCH (m:__KGMMigration {version: $v}) RETURN m.state AS s "
                      "ORDER BY m.sequence", {"v": version}).column("s")


def test_a_completed_run_is_reverted_from_its_undo_log_under_the_conflict_rule(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    kgm = runner(execution.env, tmp_path)

    # Given 200 genes, a third of them with an organism already, and a migration that adds
    # the organism where absent (no inverse) and renames name to symbol
    before = load_genes(graph)
    (execution.migrations / "V0001__organism.py").write_text(ADD_AND_RENAME)
    execution.start_worker()
    execution.wait_ready(1)
    applied = json.loads(kgm("upgrade", "--json").stdout)
    assert applied["status"] == "completed"
    run_id = applied["id"]
    # (piped, `history` prints whole run ids: its table is not cut to 80 columns)
    assert f" {run_id} " in kgm("history").stdout
    # Then a downgrade would undo it from this run's undo log (it has no inverse)
    assert f"restored from the undo log of run {run_id}" in kgm("downgrade", "base",
                                                                "--dry-run").stdout

    # When another client changes, after the run, a property the run wrote on gene 7 and one
    # it did not touch on gene 8
    graph.write("MATCH (g:RGene {i: 7}) SET g.symbol = 'edited'")
    graph.write("MATCH (g:RGene {i: 8}) SET g.note = 'kept'")
    # and the run is reverted without a terminal and without --yes
    unasked = run("revert", run_id, env=execution.env, cwd=tmp_path, stdin=subprocess.DEVNULL)
    # Then it is refused in one line, nothing restored
    assert unasked.returncode == 1 and "Aborted" not in unasked.stderr
    assert unasked.stderr.strip().endswith("nothing was restored: without a terminal, add --yes")
    assert genes(graph)[7] == {"i": 7, "symbol": "edited", "organism": "human"}
    # When it is reverted with --yes
    blocked = kgm("revert", run_id, "--yes", "--json", ok=False)
    # Then everything is restored but gene 7's rename, a conflict kept as the client left it
    # (each step decides on what it touched: its organism, as the run left it, is restored)
    assert json.loads(blocked.stdout)["status"] == "rollback_blocked"
    now = genes(graph)
    assert now[7] == {"i": 7, "symbol": "edited"}
    assert now[8] == {**before[8], "note": "kept"}
    assert {i: p for i, p in now.items() if i not in (7, 8)} == {
        i: p for i, p in before.items() if i not in (7, 8)}
    shown = json.loads(kgm("status", run_id, "--json").stdout)
    conflicts = shown["conflicts"]
    assert len(conflicts) == 1
    # and its progress counts, per step undone (the last first), what it restored and kept
    assert [(p["order"], p["entities_done"], p["entities_total"], p["conflicts"], p["status"])
            for p in shown["rollback_progress"]] == [
        (2, 199, 200, 1, "rolled_back"), (1, 133, 133, 0, "rolled_back")]
    # and the half-done revert cannot be abandoned: the chain would still call it applied
    kept = kgm("abandon", run_id, "--reason", "no", "--yes", ok=False)
    assert "is a revert, half done" in kept.stderr
    # When it is forced
    done = json.loads(kgm("rollback", run_id, "--force", "--json").stdout)
    # Then the graph is as it was before the run, but for the untouched property written
    # since; the chain records the migration as downgraded, and it is pending again
    assert done["status"] == "rolled_back" and not done["error_log"]
    forced = json.loads(kgm("status", run_id, "--json").stdout)["conflicts"]
    assert [(c["key"], c["forced"]) for c in forced] == [(conflicts[0]["key"], True)]
    assert "(restored anyway by a forced pass)" in kgm("status", run_id).stdout
    # and the forced pass's progress counts on from what the first pass restored
    assert [(p["order"], p["entities_done"], p["entities_total"], p["conflicts"])
            for p in json.loads(kgm("status", run_id, "--json").stdout)[
                "rollback_progress"]] == [(2, 200, 200, 0), (1, 133, 133, 0)]
    # and its report says it was reverted, not an upgrade that failed
    kgm("report", run_id, "--out", str(tmp_path / "reports"))
    assert (tmp_path / "reports" / f"{run_id}.md").read_text().startswith(
        f"# Run {run_id}: rolled_back (upgrade, reverted after it completed)\n")
    assert genes(graph) == {**before, 8: {**before[8], "note": "kept"}}
    assert links(graph, "V0001") == ["downgraded", "downgrade"]
    assert [(m["version"], m["state"]) for m in json.loads(kgm("list", "--json").stdout)] == [
        ("V0001", "pending")]
    assert "reverted after it completed" in kgm("status", run_id).stdout
    # and reverted again it is refused
    again = kgm("revert", run_id, "--yes", ok=False)
    assert f"run {run_id} is rolled_back; only a completed run is reverted" in again.stderr

    # When it is applied again, then a later migration after it
    second = json.loads(kgm("upgrade", "--json").stdout)
    assert second["status"] == "completed"
    (execution.migrations / "V0002__late.py").write_text(LATER)
    kgm("upgrade")
    # Then the earlier run cannot be reverted under the later one
    under = kgm("revert", second["id"], "--yes", ok=False)
    assert "migrations applied after run" in under.stderr and "V0002" in under.stderr
    # nor a run whose undo log was pruned
    kgm("prune", "--older-than", "0", "--yes")
    late = json.loads(kgm("history", "--json").stdout)[-1]["run_id"]
    pruned = kgm("revert", late, "--yes", ok=False)
    assert "undo log has been pruned" in pruned.stderr
    # and nothing changed meanwhile
    assert links(graph, "V0002") == ["applied"]


UNDOABLE_BY_NOTHING = """
from kgmigrate import Migration, ops

migration = Migration(author="test", steps=[ops.cypher("CREATE (:RMark {n: 1})")])
"""
UNDOABLE = """
from kgmigrate import Migration, ops

migration = Migration(author="test", steps=[
    ops.cypher("CREATE (:RMark2 {n: 1})", down="MATCH (m:RMark2) DELETE m")])
"""
FAILS = """
from kgmigrate import Migration, ops

migration = Migration(author="test", steps=[
    ops.batched("RMark2", "SET e.n = 2", validation="e.n = 3", down="SET e.n = 1")])
"""


def test_a_revert_is_refused_when_it_could_not_finish_or_another_run_is_unfinished(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    kgm = runner(execution.env, tmp_path)
    # Given a completed run whose one step is a Cypher statement without a down statement
    (execution.migrations / "V0001__mark.py").write_text(UNDOABLE_BY_NOTHING)
    execution.start_worker(env={"KGMIGRATE_AUTO_ROLLBACK": "false"})
    execution.wait_ready(1)
    first = json.loads(kgm("upgrade", "--json").stdout)["id"]
    # Then its revert is refused before anything is restored: nothing could undo that step
    refused = kgm("revert", first, "--yes", ok=False)
    assert "is a Cypher statement without a down statement" in refused.stderr
    # When a run applies an undoable migration, and a later run fails and is left as it is
    # (neither resumed nor rolled back)
    (execution.migrations / "V0002__mark.py").write_text(UNDOABLE)
    second = json.loads(kgm("upgrade", "--json").stdout)["id"]
    (execution.migrations / "V0003__fails.py").write_text(FAILS)
    assert json.loads(kgm("upgrade", "--json", ok=False).stdout)["status"] == "failed"
    # Then the second run is not reverted under the failed one, and nothing was undone
    under = kgm("revert", second, "--yes", ok=False)
    assert "failed and is neither resumed nor rolled back" in under.stderr
    assert graph.read("MATCH (m:RMark2) RETURN m.n AS n").column("n") == [1]
    assert json.loads(kgm("status", second, "--json").stdout)["status"] == "completed"


ORGANISM = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=40, steps=[
    ops.add_property("RGene", "organism", "human")])
"""
RENAME_ROOT = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=40, depends_on=[], steps=[
    ops.rename_property("RGene", "name", "symbol")])
"""


def json_documents(text: str) -> list[dict[str, Any]]:
    """The JSON records a command printed one after another."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        record, at = decoder.raw_decode(text, at)
        found.append(record)
    return found


def test_downgrade_restores_a_migration_without_an_inverse_from_its_runs_undo_log(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    kgm = runner(execution.env, tmp_path)
    # Given 200 genes, a third with an organism already, and one run applying V0001 (adds
    # the organism where absent: no inverse) and V0002 (a rename, depending on nothing)
    before = load_genes(graph)
    (execution.migrations / "V0001__organism.py").write_text(ORGANISM)
    (execution.migrations / "V0002__rename.py").write_text(RENAME_ROOT)
    execution.start_worker()
    execution.wait_ready(1)
    both = json.loads(kgm("upgrade", "--json").stdout)["id"]
    # When V0001 alone is downgraded (downgrade V0002 keeps V0002, which depends on nothing)
    refused = kgm("downgrade", "V0002", "--yes", ok=False)
    # Then it is refused: only the whole run could restore it, and that would undo V0002 too
    assert (f"the run that applied it, {both}, also applied V0002, which this downgrade keeps; "
            f"`kgmigrate revert {both}` undoes the whole run") in refused.stderr
    assert genes(graph) != before and links(graph, "V0001") == ["applied"]
    # When everything is downgraded
    plan = json.loads(kgm("downgrade", "base", "--dry-run", "--json").stdout)
    assert [(u["version"], u["undone_by"], u["revert_run"]) for u in plan["undo"]] == [
        ("V0002", "undo_log", both), ("V0001", "undo_log", both)]
    assert [s["estimated_entities"] for u in plan["undo"] for s in u["steps"]] == [200, 133]
    [whole] = json_documents(kgm("downgrade", "base", "--yes", "--json").stdout)
    # Then that run is reverted, whole, from its undo log
    assert (whole["id"], whole["status"], whole["reverts"]) == (both, "rolled_back", True)
    assert genes(graph) == before

    # When V0001 and V0002 are applied again by a run each
    first = json.loads(kgm("upgrade", "V0001", "--json").stdout)["id"]
    kgm("upgrade")
    # and everything is downgraded
    done = json_documents(kgm("downgrade", "base", "--yes", "--json").stdout)
    # Then V0002 is undone by its inverse, in a downgrade run, and V0001 after it by the
    # revert of its run, each a run of its own; the graph is as before and nothing is applied
    assert [(r["direction"], r["status"], r["migrations"]) for r in done] == [
        ("down", "completed", ["V0002"]), ("up", "rolled_back", ["V0001"])]
    assert done[1]["id"] == first
    assert genes(graph) == before
    assert [m["state"] for m in json.loads(kgm("list", "--json").stdout)] == [
        "pending", "pending"]
    assert links(graph, "V0001")[-1] == "downgrade"

    # When one run applies both again, and V0002 alone is downgraded since (by its inverse)
    again = json.loads(kgm("upgrade", "--json").stdout)["id"]
    kgm("downgrade", "V0001", "--yes")
    # Then V0001 cannot be restored from that run's undo log, and the refusal says why: the
    # run's V0002 is no longer in force (not "kept by this downgrade"); nothing is undone
    refused = kgm("downgrade", "base", "--yes", ok=False)
    assert (f"nor can its run's undo log: run {again}'s migrations are no longer all in "
            "force: V0002 (downgraded)") in refused.stderr
    assert "keeps" not in refused.stderr
    assert links(graph, "V0001")[-1] == "applied"
