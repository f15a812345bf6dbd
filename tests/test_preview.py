"""`kgmigrate plan --preview N` (issue 18, item 5): each batched step's change on its first N
entities, before and after, with its validation's verdict, made where it changes nothing (a
rolled-back transaction on Neo4j, a scratch copy of the graph on FalkorDB). Both servers, the
real command."""

import json
import re
from pathlib import Path

from kgmigrate.fingerprint import fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.graph.falkordb import FalkorDBBackend
from kgmigrate.ledger import Ledger
from tests.conftest import Execution, link_items, with_transforms
from tests.items import create_in_batch_order
from tests.test_cli import run as kgm
from tests.test_ops_library import assert_copies_counted, graph_copies

THREE_STEPS = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=10, steps=[
    ops.batched("Item", "SET e.name = toUpper(e.name), e:Seen", validation="e.i <= 20"),
    ops.python_transform("Item", "t", "tests.transforms:held"),
    ops.batched(rel_type="NEXT", apply="SET e.w = 1"),
    ops.cypher("CREATE INDEX item_i IF NOT EXISTS FOR (n:Item) ON (n.i)"),
])
"""


def test_a_preview_shows_each_steps_change_and_verdict_and_changes_nothing(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given 40 items (name 'item i', t = i) linked by 30 NEXT relationships, and a migration
    # of a Cypher change with a validation, a Python transform, a relationship change and an
    # unbatched statement
    create_in_batch_order(graph, 40, "{i: i, t: i, name: 'item ' + toString(i)}")
    link_items(graph, 30)
    execution.write_migration("V0001__three.py", THREE_STEPS)
    before = fingerprint(graph)
    # When it is planned with a preview of 5 entities
    shown = kgm("plan", "--preview", "5", "--json", env=with_transforms(execution), cwd=tmp_path)
    # Then each batched step shows its change on 5 entities
    assert shown.returncode == 0, shown.stderr
    [planned] = json.loads(shown.stdout)
    cypher, transform, relationships, statement = planned["steps"]
    assert len(cypher["preview"]) == 5
    for entity in cypher["preview"]:
        i = entity["before"]["i"]
        assert entity["after"]["name"] == entity["before"]["name"].upper() == f"ITEM {i}"
        assert (entity["labels_before"], entity["labels_after"]) == (["Item"], ["Item", "Seen"])
        assert entity["valid"] is (i <= 20)
    assert [e["after"]["t"] for e in transform["preview"]] == [
        e["before"]["t"] * 10 for e in transform["preview"]]
    assert all(e["valid"] is None for e in transform["preview"])
    assert [(e["labels_before"], e["before"].get("w"), e["after"]["w"])
            for e in relationships["preview"]] == [(["NEXT"], None, 1)] * 5
    assert statement["preview"] == [] and "not previewed" in statement["preview_note"]
    # and nothing changed: the graph, the ledger (no run), no scratch graph left behind
    assert fingerprint(graph) == before
    assert Ledger(graph).runs() == []
    if isinstance(graph, FalkorDBBackend):
        assert [g for g in graph._db.list_graphs() if "__kgm_probe" in g] == []
    # And the table says what changes on each entity, and its verdict
    table = kgm("plan", "--preview", "2", env=with_transforms(execution), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    at = lines.index("V0001 step 1: on :Item: SET e.name = toUpper(e.name), e:Seen (first 2 "
                     "entities):")
    for line in lines[at + 1:at + 3]:
        assert re.fullmatch(r"  key \S+: name 'item (\d+)' -> 'ITEM \1'; labels \['Item'\] -> "
                            r"\['Item', 'Seen'\]; (valid|fails validation)", line), line
    assert any(re.fullmatch(r"  key \S+: w \(absent\) -> 1", line) for line in lines), lines


LIBRARY = """
from kgmigrate import Migration, ops

migration = Migration(author="test", batch_size=10, steps=[
    ops.add_label("Item", "Seen"),
    ops.remove_label("Item", "Old"),
    ops.rename_property("Item", "name", "title"),
])
"""


def test_library_ops_are_previewed_on_the_graph_itself_and_put_back(
        execution: Execution, graph: GraphBackend, tmp_path: Path) -> None:
    # Given 20 items, the even ones also labelled Old, and a migration of library ops (they
    # change only what they declare, so their preview puts it back in the same statement)
    create_in_batch_order(graph, 20, "{i: i, name: 'item ' + toString(i)}")
    graph.write("MATCH (e:Item) WHERE e.i % 2 = 0 SET e:Old")
    execution.write_migration("V0001__library.py", LIBRARY)
    before, copies = fingerprint(graph), graph_copies(graph)
    # When it is planned with a preview of 4 entities
    shown = kgm("plan", "--preview", "4", "--json", env=execution.env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    [planned] = json.loads(shown.stdout)
    add, remove, rename = (step["preview"] for step in planned["steps"])
    # Then each shows its change
    assert len(add) == len(remove) == len(rename) == 4
    assert all(e["labels_after"] == sorted({*e["labels_before"], "Seen"}) for e in add)
    assert all("Old" in e["labels_before"] and "Old" not in e["labels_after"] for e in remove)
    assert all(e["after"]["title"] == e["before"]["name"] and "name" not in e["after"]
               for e in rename)
    # and the graph is as it was, with no copy of it made on FalkorDB
    assert fingerprint(graph) == before
    assert graph_copies(graph) == copies
    assert_copies_counted(graph, copies)
