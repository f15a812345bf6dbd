"""Repeatable migrations (issue 19, item 5) through the real CLI with real workers, on both
servers, with neo4j-migrations' semantics: `R<version>__...` takes its place among the
versioned ones, is applied again whenever its file changes (and only then), even below the
highest applied version, and each application is a link of the chain in its first place; a
changed one is not undone by a downgrade; a rolled-back repeat leaves it to be applied
afresh."""

import json
import re
from pathlib import Path

from kgmigrate.graph.base import GraphBackend
from tests.conftest import Execution
from tests.test_cli import runner


def repeatable(value: str, undo: str | None = None) -> bytes:
    down = f"// kgmigrate:down\nMATCH (c:RView {{k: 1}}) SET c.v = '{undo}';\n" if undo else ""
    return (f"MERGE (c:RView {{k: 1}}) SET c.n = coalesce(c.n, 0) + 1, c.v = '{value}';\n"
            f"{down}").encode()


FAILS = """
from kgmigrate import Migration, ops

migration = Migration(author="test", steps=[
    ops.batched("RAfter", "SET e.x = 1", validation="e.x = 2", down="REMOVE e.x"),
])
"""


def view(graph: GraphBackend) -> tuple[int, str]:
    row = graph.read("MATCH (c:RView {k: 1}) RETURN c.n AS n, c.v AS v").single()
    return int(row["n"]), str(row["v"])


def test_a_repeatable_migration_is_applied_again_whenever_its_file_changes(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    kgm = runner(execution.env, tmp_path)

    def listed() -> dict[str, tuple[str, bool, str | None]]:
        return {m["version"]: (m["state"], m["repeatable"], m["reason"])
                for m in json.loads(kgm("list", "--json").stdout)}

    def chain() -> list[tuple[str, str, int | None]]:
        return [(h["version"], h["state"], h["repeat_of"])
                for h in json.loads(kgm("history", "--json").stdout)]

    migrations = execution.migrations
    # Given a repeatable migration between two versioned ones
    (migrations / "V0001__base.cypher").write_bytes(b"CREATE (:RBase);\n")
    (migrations / "R0002__refresh_view.cypher").write_bytes(repeatable("one"))
    (migrations / "V0003__after.cypher").write_bytes(b"CREATE (:RAfter);\n")
    execution.start_worker()
    execution.wait_ready(1)
    # When they are applied, and applied again with nothing changed
    kgm("upgrade")
    again = kgm("upgrade")
    # Then the repeatable one ran once, in its place, recorded like the others
    assert "Nothing to apply" in again.stdout
    assert view(graph) == (1, "one")
    assert listed() == {"V0001": ("applied", False, None), "V0002": ("applied", True, None),
                        "V0003": ("applied", False, None)}
    assert chain() == [("V0001", "applied", None), ("V0002", "applied", None),
                       ("V0003", "applied", None)]

    # When its file changes (now with a down section)
    (migrations / "R0002__refresh_view.cypher").write_bytes(repeatable("two", undo="one"))
    # Then it is pending again, not a changed applied file: validate is content, and the plan
    # runs it alone, below V0003 without an out-of-order refusal
    changed = ("pending", True, "repeatable, changed since it was applied: applied again by "
               "the next upgrade")
    assert listed()["V0002"] == changed
    assert re.search(r"R0002 .*pending \(repeatable, changed\)", kgm("list").stdout)
    assert kgm("validate").stdout.splitlines()[-1] == "valid: 2 applied, 1 pending"
    assert [m["version"] for m in json.loads(kgm("plan", "--json").stdout)] == ["V0002"]
    # When it is upgraded
    kgm("upgrade")
    # Then it ran again, and the chain keeps both applications: the first as repeated
    assert view(graph) == (2, "two")
    assert listed()["V0002"] == ("applied", True, None)
    assert chain() == [("V0001", "applied", None), ("V0002", "repeated", None),
                       ("V0003", "applied", None), ("V0002", "applied", 2)]
    assert "Nothing to apply" in kgm("upgrade").stdout

    # and it keeps the place of its first application in the applied order
    assert [(m["version"], m["applied_order"]) for m in json.loads(kgm("list", "--json").stdout)
            ] == [("V0001", 1), ("V0002", 2), ("V0003", 3)]

    # When it changes again
    (migrations / "R0002__refresh_view.cypher").write_bytes(repeatable("three", undo="two"))
    # Then a downgrade that would undo it is refused: its file's inverse is not the one of
    # what is in force
    refused = kgm("downgrade", "V0001", "--yes", ok=False)
    assert "V0002 (R0002__refresh_view.cypher) changed since it was applied" in refused.stderr
    # When a new migration after it fails in the same run
    (migrations / "V0004__fails.py").write_text(FAILS)
    failed = kgm("upgrade", "--json", ok=False)
    # Then the run is rolled back, its repeat undone by its down section, and the earlier
    # application is not taken to be in force either: undone, the migration pending
    assert json.loads(failed.stdout)["status"] == "rolled_back"
    assert view(graph) == (3, "two")
    assert chain() == [("V0001", "applied", None), ("V0002", "repeated", None),
                       ("V0003", "applied", None), ("V0002", "undone", 2)]
    assert listed()["V0002"] == ("pending", True, None)
    links = graph.read("MATCH (m:__KGMMigration {version: 'V0002'}) RETURN m.state AS s "
                       "ORDER BY m.sequence").column("s")
    assert links == ["repeated", "undone", "rolled_back"]
    # When the failing migration is gone and the upgrade runs again
    (migrations / "V0004__fails.py").unlink()
    kgm("upgrade")
    # Then the file is applied afresh, once
    assert view(graph) == (4, "three")
    assert listed()["V0002"] == ("applied", True, None)
    assert chain()[-1] == ("V0002", "applied", None)


def test_a_changed_repeatable_migration_whose_assumption_fails_is_listed_as_skipped(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    kgm = runner(execution.env, tmp_path)
    migrations = execution.migrations
    # Given an applied repeatable migration
    (migrations / "R0001__refresh_view.cypher").write_bytes(repeatable("one"))
    execution.start_worker()
    execution.wait_ready(1)
    kgm("upgrade")
    # When its file changes to assume something that does not hold, and the upgrade runs
    graph.write("CREATE (:RStop)")
    assume = b"// assume q' MATCH (s:RStop) RETURN count(s) = 0\n"
    (migrations / "R0001__refresh_view.cypher").write_bytes(assume + repeatable("two"))
    skipped = kgm("upgrade")
    # Then it is skipped, and listed so (not pending "applied again by the next upgrade"):
    # what it applied before stays in force
    assert "V0001 skipped: " in skipped.stdout and view(graph) == (1, "one")
    [listed] = json.loads(kgm("list", "--json").stdout)
    assert (listed["state"], listed["repeatable"]) == ("skipped", True)
    assert listed["reason"].startswith("repeatable, changed since it was applied, and not "
                                       "applied again: ")
    assert "RStop" in listed["reason"] and "stays in force" in listed["reason"]
    assert re.search(r"R0001 .*skipped \(repeatable, changed\)", kgm("list").stdout)
    # When its assumption holds again
    graph.write("MATCH (s:RStop) DELETE s")
    kgm("upgrade")
    # Then the upgrade applies it again, and it is listed applied
    assert view(graph) == (2, "two")
    assert json.loads(kgm("list", "--json").stdout)[0]["state"] == "applied"
