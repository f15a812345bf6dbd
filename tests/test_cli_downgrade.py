"""What `downgrade TARGET` undoes, shown before anything is (issue 17, item 1), through the real
command on the real stack.

`downgrade V0003` undid V0002 too (100,000 relationships retyped back) because V0003 depends
only on V0001, while its help said "the migrations applied after TARGET". The rule is Alembic's:
TARGET and its ancestors stay applied, every other applied migration is undone, the last
applied first. `--dry-run` shows that set with why and the entities each step matches; undoing
one applied *before* TARGET is asked first on a terminal and refused elsewhere unless `--yes`;
`list --graph` shows the dependencies."""

import json
import subprocess
from pathlib import Path

import pytest
from rich.text import Text

from kgmigrate.cli.migrations import dependency_tree
from kgmigrate.fingerprint import Fingerprint, fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.ledger.lock import MigrationLock
from kgmigrate.model.records import MigrationListing
from tests.conftest import Execution, link_items
from tests.test_cli import run, run_on_a_terminal

RENAME = '''from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=100, steps=[
    ops.batched("Item", "SET e.title = e.name REMOVE e.name", where="e.name IS NOT NULL",
                down="SET e.name = e.title REMOVE e.title", down_where="e.title IS NOT NULL"),
])
'''
RETYPE = '''from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=100, depends_on=["V0001"], steps=[
    ops.batched(rel_type="NEXT", apply="CREATE (s)-[r:FOLLOWS]->(t) SET r = properties(e) "
                "DELETE e", creates="r", deletes=True, down_on="FOLLOWS",
                down="CREATE (s)-[r:NEXT]->(t) SET r = properties(e) DELETE e"),
])
'''
FLAG = '''from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=100, depends_on=["{after}"], steps=[
    ops.batched("Item", "SET e.{name} = true", where="e.i <= {upto}",
                down="REMOVE e.{name}"),
])
'''
MIGRATIONS = {
    "V0001__rename_name.py": RENAME,
    "V0002__retype_next.py": RETYPE,  # V0001 <- V0002
    "V0003__flag_items.py": FLAG.format(after="V0001", name="flag", upto=300),  # V0001 <- V0003
    "V0004__score_items.py": FLAG.format(after="V0003", name="score", upto=100),
    "V0005__level_items.py": FLAG.format(after="V0004", name="level", upto=50),
}


def given_the_migrations(execution: Execution, graph: GraphBackend) -> None:
    """300 items and 200 NEXT relationships; V0001 <- V0002, V0001 <- V0003 <- V0004 <-
    V0005; a worker."""
    graph.write("UNWIND range(1, 300) AS i CREATE (:Item {i: i, name: 'item ' + toString(i)})")
    link_items(graph, 200, "{since: k}")
    for name, text in MIGRATIONS.items():
        execution.write_migration(name, text)
    execution.start_worker()
    execution.wait_ready(1)  # an upgrade refuses while no worker answers


def kgm(execution: Execution, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command, not on a terminal (a script, CI)."""
    return run(*args, env=execution.env, cwd=cwd, stdin=subprocess.DEVNULL)


def upgraded(execution: Execution, cwd: Path, *target: str) -> None:
    done = kgm(execution, cwd, "upgrade", *target)
    assert done.returncode == 0, done.stderr


def applied(execution: Execution, cwd: Path) -> list[str]:
    shown = kgm(execution, cwd, "history", "--json")
    assert shown.returncode == 0, shown.stderr
    return [a["version"] for a in json.loads(shown.stdout)]


def latest_run(execution: Execution, cwd: Path) -> dict[str, object]:
    shown = kgm(execution, cwd, "status", "--json")
    assert shown.returncode == 0, shown.stderr
    return dict(json.loads(shown.stdout))


def untouched(graph: GraphBackend) -> tuple[Fingerprint, list[str], object]:
    """The graph's digest, the ledger's runs and chain, and the lock: what a downgrade that
    writes nothing leaves as it was."""
    ledger = Ledger(graph)
    return (fingerprint(graph), [r.id for r in ledger.runs()],
            ([a.model_dump() for a in ledger.applied()], MigrationLock(graph).info()))


def body(output: str) -> list[str]:
    """The lines after the one naming the graph."""
    first, *rest = output.splitlines()
    assert first.startswith("graph ")
    return rest


def count(graph: GraphBackend, query: str) -> int:
    return int(graph.read(query).value("n"))


DRY_RUN = [
    "downgrade V0003 would undo, the last applied first (entities: what each step matches "
    "now; nothing was written):",
    "  V0005 level items: applied after V0003",
    "    1. on :Item: REMOVE e.level: 50 entities",
    "  V0004 score items: applied after V0003",
    "    1. on :Item: REMOVE e.score: 100 entities",
    "  V0002 retype next: not an ancestor of V0003, applied before it",
    "    1. on [:FOLLOWS]: CREATE (s)-[r:NEXT]->(t) SET r = properties(e) DELETE e: "
    "200 entities",
    "stays applied: V0001, V0003",
    "V0002 was applied before V0003, which does not depend on it: `kgmigrate downgrade "
    "V0003` asks before undoing it (--yes does not ask)",
]


@pytest.mark.timeout(900)  # some twenty commands, three runs; Neo4j on a shared machine
def test_downgrade_shows_what_it_undoes_and_asks_before_undoing_an_earlier_migration(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given V0001 <- V0002 and V0001 <- V0003 <- V0004 <- V0005, applied in version order
    given_the_migrations(execution, graph)
    upgraded(execution, tmp_path)
    assert applied(execution, tmp_path) == ["V0001", "V0002", "V0003", "V0004", "V0005"]
    before = untouched(graph)

    # When the user asks what `downgrade V0003` would undo
    dry = kgm(execution, tmp_path, "downgrade", "V0003", "--dry-run")
    # Then it lists V0005 and V0004 (applied after V0003) and V0002 (applied before it, but
    # V0003 does not depend on it), the last applied first, with the entities of each step
    assert dry.returncode == 0, dry.stderr
    assert body(dry.stdout) == DRY_RUN
    # and so does its JSON
    as_json = kgm(execution, tmp_path, "downgrade", "V0003", "--dry-run", "--json")
    assert as_json.returncode == 0, as_json.stderr
    plan = json.loads(as_json.stdout)
    assert (plan["target"], plan["keep"], plan["applied_before_target"]) == (
        "V0003", ["V0001", "V0003"], ["V0002"])
    assert [(u["version"], u["reason"], u["applied_order"],
             [s["estimated_entities"] for s in u["steps"]]) for u in plan["undo"]] == [
        ("V0005", "applied_after_target", 5, [50]), ("V0004", "applied_after_target", 4, [100]),
        ("V0002", "not_an_ancestor", 2, [200])]
    # and `downgrade V0004`, meant to undo V0005 only, says it would undo V0002 too
    v0004 = json.loads(kgm(execution, tmp_path, "downgrade", "V0004", "--dry-run",
                           "--json").stdout)
    assert [(u["version"], u["reason"]) for u in v0004["undo"]] == [
        ("V0005", "applied_after_target"), ("V0002", "not_an_ancestor")]
    # and none of it wrote anything: no run, no lock, the same chain and graph
    assert untouched(graph) == before

    # When it is told to downgrade V0003 without a terminal
    refused = kgm(execution, tmp_path, "downgrade", "V0003")
    # Then it refuses in one line naming what it would undo, the earlier one and --yes
    assert refused.returncode == 1
    assert refused.stderr == (
        "kgmigrate: error: downgrade V0003 would undo V0005, V0004, V0002; V0002 was applied "
        "before V0003, which does not depend on it. Nothing was undone: `kgmigrate downgrade "
        "V0003 --dry-run` shows what and why, --yes undoes it without asking\n")
    # When it is run on a terminal and the user answers no
    declined = run_on_a_terminal("downgrade", "V0003", typed="n\n", env=execution.env,
                                 cwd=tmp_path)
    # Then it asked, naming them, and undid nothing
    assert declined.returncode == 1
    assert body(declined.stdout) == [
        "Downgrade V0003 undoes V0005, V0004, V0002; V0002 was applied before V0003, which "
        "does not depend on it. Undo all of them? [y/N]: "]
    assert declined.stderr == "kgmigrate: error: downgrade V0003: nothing was undone\n"
    assert untouched(graph) == before

    # When the user says --yes
    done = kgm(execution, tmp_path, "downgrade", "V0003", "--yes")
    # Then exactly V0005, V0004 and V0002 were undone, newest first
    assert done.returncode == 0, done.stderr
    assert latest_run(execution, tmp_path)["migrations"] == ["V0005", "V0004", "V0002"]
    assert applied(execution, tmp_path) == ["V0001", "V0003"]
    assert count(graph, "MATCH ()-[r:NEXT]->() RETURN count(r) AS n") == 200
    assert count(graph, "MATCH ()-[r:FOLLOWS]->() RETURN count(r) AS n") == 0
    assert count(graph, "MATCH (e:Item) WHERE e.score IS NOT NULL OR e.level IS NOT NULL "
                        "RETURN count(e) AS n") == 0
    # and V0001 and V0003 stay
    assert count(graph, "MATCH (e:Item) WHERE e.flag AND e.title IS NOT NULL AND e.name IS "
                        "NULL RETURN count(e) AS n") == 300


@pytest.mark.timeout(900)  # some twenty commands, three runs; Neo4j on a shared machine
def test_a_downgrade_of_only_later_applied_migrations_asks_nothing_and_list_shows_the_graph(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given V0001 <- V0002 and V0001 <- V0003 <- V0004 <- V0005, V0003 applied first
    given_the_migrations(execution, graph)
    upgraded(execution, tmp_path, "V0003")
    upgraded(execution, tmp_path)
    assert applied(execution, tmp_path) == ["V0001", "V0003", "V0002", "V0004", "V0005"]

    # When the user lists the migrations as a graph
    tree = kgm(execution, tmp_path, "list", "--graph")
    # Then each is under what it depends on, with its state and the order it was applied in
    assert tree.returncode == 0, tree.stderr
    assert body(tree.stdout) == [
        "Migrations by dependency, each under what it depends on (#n: applied n-th):",
        "V0001 rename name  applied #1",
        "├── V0002 retype next  applied #3",
        "└── V0003 flag items  applied #2",
        "    └── V0004 score items  applied #4",
        "        └── V0005 level items  applied #5"]
    # and the JSON of `list` names each one's dependencies
    listed = json.loads(kgm(execution, tmp_path, "list", "--json").stdout)
    assert [(m["version"], m["depends_on"], m["applied_order"]) for m in listed] == [
        ("V0001", [], 1), ("V0002", ["V0001"], 3), ("V0003", ["V0001"], 2),
        ("V0004", ["V0003"], 4), ("V0005", ["V0004"], 5)]

    # When it downgrades V0003, everything to undo having been applied after it, without a
    # terminal and without --yes
    done = kgm(execution, tmp_path, "downgrade", "V0003")
    # Then nothing is asked: V0005, V0004 and V0002 are undone, the last applied first
    assert done.returncode == 0, done.stderr
    assert latest_run(execution, tmp_path)["migrations"] == ["V0005", "V0004", "V0002"]
    assert applied(execution, tmp_path) == ["V0001", "V0003"]
    tree = kgm(execution, tmp_path, "list", "--graph")
    assert body(tree.stdout)[1:] == [
        "V0001 rename name  applied #1",
        "├── V0002 retype next  pending",
        "└── V0003 flag items  applied #2",
        "    └── V0004 score items  pending",
        "        └── V0005 level items  pending"]
    # and again there is nothing to undo
    again = kgm(execution, tmp_path, "downgrade", "V0003", "--dry-run")
    assert body(again.stdout) == [
        "Nothing to undo: every applied migration is V0003 or one it depends on."]
    # and a target that is not applied is refused, with what is
    unapplied = kgm(execution, tmp_path, "downgrade", "V0004")
    assert unapplied.returncode == 1
    assert unapplied.stderr == (
        "kgmigrate: error: V0004 is not applied, so there is nothing to go back to: downgrade "
        "TARGET keeps TARGET applied (applied now: V0001, V0003; `base` undoes all)\n")


def test_the_dependency_tree_names_a_merge_s_other_dependencies() -> None:
    # Given V0001 <- V0002, V0001 <- V0003 and a merge V0004 of V0002 and V0003, one applied
    def listing(version: str, deps: list[str], order: int | None = None) -> MigrationListing:
        return MigrationListing(version=version, description=f"m{version[-1]}",
                                state="applied" if order else "pending", checksum="c",
                                depends_on=deps, applied_order=order)

    items = [listing("V0001", [], 1), listing("V0002", ["V0001"]),
             listing("V0003", ["V0001"]), listing("V0004", ["V0002", "V0003"])]
    # When it is drawn, without colors, in ASCII
    lines = [Text.from_markup(line).plain for line in dependency_tree(items, {}, unicode=False)]
    # Then the merge hangs under its last dependency and names the other
    assert lines[1:] == [
        "V0001 m1  applied #1",
        "|-- V0002 m2  pending",
        "`-- V0003 m3  pending",
        "    `-- V0004 m4  pending  (also depends on V0002)"]
