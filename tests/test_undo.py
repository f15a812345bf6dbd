"""The undo log's rules and the restore statement, without a server (rendered Cypher and the
row logic); the end-to-end behaviour is in test_rollback.py."""

from pathlib import Path

import pytest

from kgmigrate import ops
from kgmigrate.backup.store import DirectoryStore
from kgmigrate.cypher.dialect import FalkorDBDialect, Neo4jDialect
from kgmigrate.engine.undo import Shape, restore_rows, restore_statement, touched_names
from kgmigrate.errors import IdentifierError, KgmError

F = FalkorDBDialect()
UNDO = "runs/r/undo/0001/000001.abc"


def write(store: DirectoryStore, pre: list[dict[str, object]],
          post: list[list[object]] | None) -> None:
    store.put_rows(UNDO + ".pre", pre)
    if post is not None:
        store.put_rows(UNDO + ".post", post)


def node(key: int, sig: object, **props: object) -> dict[str, object]:
    return {"k": key, "l": ["Item"], "p": props, "sig": sig}


def test_rows_pair_each_pre_image_with_what_the_batch_left(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    write(store, [node(1, "s1", a=1), node(2, "s2", a=2), node(3, "s3", a=3)],
          [[1, "s1", "after1", None, None], [2, "s2-other", "after2", None, None],
           [4, "s4", "after4", None, None]])
    rows, early = restore_rows(store, UNDO, force=False)
    # 1 is restorable; 2 changed between capture and statement; 3 left the scope (untouched);
    # 4 entered it after the capture (no pre-image)
    assert [(r["k"], r["post"], r["p"]) for r in rows] == [(1, "after1", {"a": 1})]
    assert {e["key"]: e["reason"].split(" (")[0] for e in early} == {
        2: "changed by someone else between the pre-image and the change",
        4: "changed by the batch without a pre-image"}
    forced, early = restore_rows(store, UNDO, force=True)
    assert [r["k"] for r in forced] == [1, 2]  # forcing restores the stale one too
    assert [e["key"] for e in early] == [4]  # but nothing can restore what has no pre-image
    assert all(r["force"] for r in forced)
    only, _ = restore_rows(store, UNDO, force=True, only={2})
    assert [r["k"] for r in only] == [2]


def test_a_missing_post_record_makes_every_entity_a_conflict_unless_forced(
        tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    write(store, [node(1, "s1"), node(2, "s2")], None)
    rows, early = restore_rows(store, UNDO, force=False)
    assert rows == []
    assert {e["reason"] for e in early} == {"the batch's record of what it wrote is missing"}
    rows, early = restore_rows(store, UNDO, force=True)
    assert [r["k"] for r in rows] == [1, 2] and early == []


def test_touched_names_cover_labels_before_and_after() -> None:
    rows = [{"l": ["A", "B"], "after_labels": ["B", "C"]}, {"l": ["A"], "after_labels": None}]
    assert touched_names(rows, Shape("node", False, False)) == ["A", "B", "C"]
    rels = [{"ty": "T", "post": None}, {"ty": "U", "post": None}]
    assert touched_names(rels, Shape("relationship", True, True)) == ["T", "U"]
    assert touched_names(rels, Shape("relationship", False, False)) == []


def test_the_node_restore_compares_signatures_and_sets_labels_by_parameter() -> None:
    statement = restore_statement(F, Shape("node", False, False), ["Item", "weird name"])
    # the restore's own record first: its lock orders two deliveries, a repeat aborts at once
    assert statement.startswith(
        "MERGE (b:`__KGMBatch` {id: $kgm_batch_id}) SET b.attempts = coalesce(b.attempts, 0) + 1 "
        "WITH 1 / (CASE WHEN coalesce(b.status = 'completed', false) THEN 0 ELSE 1 END) AS first "
        "UNWIND CASE WHEN first = 1 THEN $kgm_rows ELSE [] END AS row "
        "OPTIONAL MATCH (e) WHERE id(e) = row.k ")
    assert ("(e IS NOT NULL AND toJSON([labels(e), properties(e)]) = row.post)"
            in statement)
    assert "ours OR (row.force AND e IS NOT NULL) AS go" in statement
    assert "SET x = row.p" in statement
    assert "$kgm_names[1] IN row.l THEN [e] ELSE [] END | SET x:`weird name`)" in statement
    assert "NOT $kgm_names[0] IN row.l THEN [e] ELSE [] END | REMOVE x:`Item`)" in statement
    assert statement.endswith("MATCH (b:`__KGMBatch` {id: $kgm_batch_id}) SET b.status = "
                              "'completed', b.kind = 'restore', b.run_id = $kgm_run_id, "
                              "b.step_id = $kgm_step_id, b.restored = restored, "
                              "b.conflicts = size(conflicts) + $kgm_early, "
                              "b.worker = $kgm_worker, "
                              "b.finished_at = $kgm_at RETURN seen, restored, conflicts")


def test_the_retype_restore_deletes_ours_and_recreates_the_original() -> None:
    statement = restore_statement(Neo4jDialect(), Shape("relationship", True, True),
                                  ["TREATS"])
    assert "MATCH (s) WHERE elementId(s) = row.s MATCH (t) WHERE elementId(t) = row.t" in (
        statement)
    # ours may run either way: an inversion creates it from t to s
    assert ("OPTIONAL MATCH (s)-[c1]->(t) WHERE elementId(c1) = row.ck "
            "OPTIONAL MATCH (t)-[c2]->(s) WHERE elementId(c2) = row.ck "
            "WITH row, s, t, coalesce(c1, c2) AS c") in statement
    assert "OPTIONAL MATCH (s)-[e]" not in statement  # e was deleted by the batch
    assert "THEN [c] ELSE [] END | DELETE x)" in statement
    assert ("WHEN go AND row.ty = $kgm_names[0] THEN [1] ELSE [] END | "
            "CREATE (s)-[r:`TREATS`]->(t) SET r = row.p)") in statement


def test_names_reach_the_restore_only_through_identifier_checks() -> None:
    with pytest.raises(IdentifierError):
        restore_statement(F, Shape("node", False, False), ["bad`label"])
    with pytest.raises(IdentifierError):
        restore_statement(F, Shape("relationship", True, True), ["__KGMRun"])


def test_a_step_declares_what_the_undo_log_must_know() -> None:
    retype = ops.batched(rel_type="TREATS", apply="CREATE (s)-[r:X]->(t) DELETE e",
                         creates="r", deletes=True, down="CREATE (s)-[r:TREATS]->(t) DELETE e",
                         down_on="X", where="e.w > 1")
    back = retype.reverse()
    assert (back.name, back.apply, back.creates, back.deletes) == (
        "X", "CREATE (s)-[r:TREATS]->(t) DELETE e", "r", True)
    assert back.reverse() == retype
    with pytest.raises(KgmError, match="creates='e'"):
        ops.batched("Item", "SET e.x = 1", creates="e")
    with pytest.raises(KgmError, match="deletes nodes cannot be undone from the undo log"):
        ops.batched("Item", "DETACH DELETE e", deletes=True)
    with pytest.raises(IdentifierError):
        ops.batched(rel_type="T", apply="SET e.x = 1", down_on="bad`type")
