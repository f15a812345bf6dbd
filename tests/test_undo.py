"""The undo log's rows and the restore statement, without a server (rendered Cypher); the
end-to-end behaviour is in test_rollback.py and test_rollback_paths.py."""

import pytest

from kgmigrate import ops
from kgmigrate.compile import compile_op
from kgmigrate.cypher.dialect import FalkorDBDialect, Neo4jDialect
from kgmigrate.engine.batch_statement import batch_statement
from kgmigrate.engine.undo import Shape, restore_statement
from kgmigrate.errors import IdentifierError, KgmError

F, N = FalkorDBDialect(), Neo4jDialect()


def test_the_batch_statement_writes_each_entitys_undo_row_before_the_ledger_record() -> None:
    op = ops.batched("Item", "SET e.c = 1")
    statement = batch_statement(F, compile_op(op, "falkordb"))
    # the pre-image is bound before `apply` runs, and copied on the server, unprefixed
    assert ("WITH e, id(e) AS kgm_key, [labels(e), properties(e)] AS kgm_pre "
            "SET e.c = 1 WITH e, kgm_key, kgm_pre, (true) AS ok ") in statement
    assert ("CREATE (u:`__KGMUndo`) SET u += kgm_pre[1] SET u.`__KGM_batch` = $kgm_batch_id, "
            "u.`__KGM_run` = $kgm_run_id, u.`__KGM_key` = kgm_key, "
            "u.`__KGM_labels` = kgm_pre[0], "
            "u.`__KGM_labels_after` = labels(e) "
            "SET u.`__KGM_after` = toJSON([labels(e), properties(e)]) WITH count(e) AS n") in (
        statement)
    # nothing but counts travels back
    assert statement.endswith("RETURN n, bad, bad_keys, undo_props, dup, 1 / (CASE WHEN dup "
                              "OR bad > 0 OR st.status <> 'in_progress' THEN 0 ELSE 1 END) "
                              "AS ok")


def test_on_neo4j_the_batch_locks_each_entity_before_it_reads_its_pre_image() -> None:
    op = ops.batched("Item", "SET e.c = 1")
    statement = batch_statement(N, compile_op(op, "neo4j"))
    assert statement.startswith(
        "MATCH (e:`Item`) WHERE elementId(e) IN $kgm_keys SET e.`__KGM_lock` = true REMOVE "
        "e.`__KGM_lock` WITH e, elementId(e) AS kgm_key, [labels(e), properties(e)] AS kgm_pre ")
    # each property under a prefix (Neo4j stores no maps), the state after it likewise
    assert ("FOREACH (kgm_k IN keys(kgm_pre[1]) | SET u['__KGM_before:' + kgm_k] = "
            "kgm_pre[1][kgm_k])") in statement
    assert ("SET u.`__KGM_after_keys` = keys(e), u.`__KGM_after_labels` = labels(e) "
            "FOREACH (kgm_k IN keys(e) | SET u['__KGM_after:' + kgm_k] = e[kgm_k])") in statement


def test_a_relationships_pre_image_carries_its_type_and_ends_through_an_applys_with() -> None:
    op = ops.batched(rel_type="T", apply="WITH e, kgm_key, kgm_pre SET e.w = 1")
    statement = batch_statement(N, compile_op(op, "neo4j"))
    assert ("[type(e), properties(e), elementId(s), elementId(t)] AS kgm_pre WITH e, kgm_key, "
            "kgm_pre SET e.w = 1") in statement
    assert ("u.`__KGM_type` = kgm_pre[0], u.`__KGM_start` = kgm_pre[2], "
            "u.`__KGM_end` = kgm_pre[3]") in statement


def test_the_node_restore_compares_states_and_sets_labels_by_parameter() -> None:
    statement = restore_statement(F, Shape("node", False, False), ["Item", "weird name"])
    # the restore's own record first: its lock orders two deliveries, a repeat aborts at once,
    # and so does a restore of a run no longer rolling back (abandoned meanwhile)
    assert statement.startswith(
        "MERGE (b:`__KGMBatch` {id: $kgm_batch_id}) SET b.attempts = coalesce(b.attempts, 0) + 1 "
        "WITH b MATCH (run:`__KGMRun` {id: $kgm_run_id}) "
        "WITH 1 / (CASE WHEN coalesce(b.status = 'completed', false) OR run.status <> "
        "'rolling_back' THEN 0 ELSE 1 END) AS first "
        "MATCH (u:`__KGMUndo`) WHERE first = 1 AND u.`__KGM_batch` = $kgm_undo_batch "
        "OPTIONAL MATCH (e) WHERE id(e) = u.`__KGM_key` ")
    assert ("(e IS NOT NULL AND toJSON([labels(e), properties(e)]) = u.`__KGM_after`)"
            in statement)
    assert "ours OR (false AND present) AS go" in statement
    # the outcome is recorded on the row, in the same statement
    assert ("SET u.`__KGM_conflict` = CASE WHEN go THEN null WHEN there THEN 'changed by "
            "someone else since the batch wrote it' ELSE 'deleted by someone else since the "
            "batch wrote it' END") in statement
    assert "e IS NOT NULL AS present, e IS NOT NULL AS there" in statement
    # the pre-image is copied back on the server, the row's own names left out
    assert ("SET x = properties(u) REMOVE x.`__KGM_batch`, x.`__KGM_run`, x.`__KGM_key`"
            in statement)
    assert ("$kgm_names[1] IN u.`__KGM_labels` THEN [e] ELSE [] END | SET x:`weird name`)"
            in statement)
    assert ("NOT $kgm_names[0] IN u.`__KGM_labels` THEN [e] ELSE [] END | REMOVE x:`Item`)"
            in statement)
    assert statement.endswith("MATCH (b:`__KGMBatch` {id: $kgm_batch_id}) SET b.status = "
                              "'completed', b.kind = 'restore', b.run_id = $kgm_run_id, "
                              "b.step_id = $kgm_step_id, b.restored = restored, "
                              "b.conflicts = size(conflicts) + $kgm_missing, "
                              "b.missing = $kgm_missing, b.worker = $kgm_worker, "
                              "b.finished_at = $kgm_at RETURN seen, restored, conflicts")


def test_a_forced_pass_after_a_first_revisits_only_its_conflicts_and_marks_what_it_forced(
        ) -> None:
    statement = restore_statement(F, Shape("node", False, False), ["Item"],
                                  conflicts_only=True, forced=True)
    assert ("WHERE first = 1 AND u.`__KGM_batch` = $kgm_undo_batch AND "
            "u.`__KGM_conflict` IS NOT NULL ") in statement
    assert "ours OR (true AND present) AS go" in statement
    assert "u.`__KGM_forced` = CASE WHEN go AND NOT ours THEN true ELSE null END" in statement


def test_the_neo4j_restore_compares_each_kept_property_and_labels_as_sets() -> None:
    statement = restore_statement(N, Shape("node", False, False), ["Item"])
    assert ("coalesce(size(labels(e)) = size(u.`__KGM_after_labels`) AND all(kgm_l IN "
            "u.`__KGM_after_labels` WHERE kgm_l IN labels(e)) AND size(keys(e)) = "
            "size(u.`__KGM_after_keys`) AND all(kgm_k IN u.`__KGM_after_keys` WHERE e[kgm_k] = "
            "u['__KGM_after:' + kgm_k]), false)") in statement
    assert ("SET x = {} FOREACH (kgm_k IN [kgm_k IN keys(u) WHERE kgm_k STARTS WITH "
            "'__KGM_before:'] | SET x[substring(kgm_k, 13)] = u[kgm_k])") in statement


def test_the_retype_restore_deletes_ours_and_recreates_the_original() -> None:
    statement = restore_statement(N, Shape("relationship", True, True), ["TREATS"])
    assert ("MATCH (s) WHERE elementId(s) = u.`__KGM_start` "
            "MATCH (t) WHERE elementId(t) = u.`__KGM_end`") in statement
    # ours may run either way: an inversion creates it from t to s
    assert ("OPTIONAL MATCH (s)-[c1]->(t) WHERE elementId(c1) = u.`__KGM_created_key` "
            "OPTIONAL MATCH (t)-[c2]->(s) WHERE elementId(c2) = u.`__KGM_created_key` "
            "WITH u, s, t, coalesce(c1, c2) AS c") in statement
    assert "OPTIONAL MATCH (s)-[e]" not in statement  # e was deleted by the batch
    assert "THEN [c] ELSE [] END | DELETE x)" in statement
    assert "true AS present, c IS NOT NULL AS there" in statement
    assert ("WHEN go AND u.`__KGM_type` = $kgm_names[0] THEN [1] ELSE [] END | "
            "CREATE (s)-[r:`TREATS`]->(t) SET r = {} FOREACH") in statement


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


def test_a_library_op_keeps_only_what_it_touches_and_restores_only_that() -> None:
    plan = compile_op(ops.rename_property("Item", "old", "new name"), "falkordb")
    statement = batch_statement(F, plan)
    # before and after of both properties, the old values read by a parameter key
    assert ("CREATE (u:`__KGMUndo`) SET u.`__KGM_batch` = $kgm_batch_id, u.`__KGM_run` = "
            "$kgm_run_id, u.`__KGM_key` = kgm_key, u.`__KGM_pre0` = kgm_pre[1][$kgm_touched[0]], "
            "u.`__KGM_post0` = e.`old`, u.`__KGM_pre1` = kgm_pre[1][$kgm_touched[1]], "
            "u.`__KGM_post1` = e.`new name` WITH count(e)") in statement
    assert "SET u +=" not in statement and "toJSON" not in statement
    restore = restore_statement(F, Shape("node", False, False, plan.touches), [])
    assert ("(e IS NOT NULL AND coalesce(e.`old` = u.`__KGM_post0`, e.`old` IS NULL AND "
            "u.`__KGM_post0` IS NULL) AND coalesce(e.`new name` = u.`__KGM_post1`, "
            "e.`new name` IS NULL AND u.`__KGM_post1` IS NULL))") in restore
    assert ("FOREACH (x IN CASE WHEN go AND e IS NOT NULL THEN [e] ELSE [] END | "
            "SET x.`old` = u.`__KGM_pre0`, x.`new name` = u.`__KGM_pre1`)") in restore
    assert "properties(u)" not in restore


def test_a_label_op_keeps_whether_the_entity_had_the_label() -> None:
    plan = compile_op(ops.add_label("Item", "Reviewed"), "neo4j")
    statement = batch_statement(N, plan)
    assert ("u.`__KGM_had0` = $kgm_touched_labels[0] IN kgm_pre[0], "
            "u.`__KGM_has0` = e:`Reviewed`") in statement
    restore = restore_statement(N, Shape("node", False, False, plan.touches), [])
    assert "e:`Reviewed` = u.`__KGM_has0`" in restore
    assert ("CASE WHEN go AND e IS NOT NULL AND NOT u.`__KGM_had0` THEN [e] ELSE [] END | "
            "REMOVE x:`Reviewed`)") in restore


def test_a_retype_keeps_whole_relationships_whatever_it_touches() -> None:
    plan = compile_op(ops.retype_relationship("TREATS", "CURES"), "neo4j")
    assert "__KGM_before:" in batch_statement(N, plan)


def test_on_neo4j_the_restore_locks_what_it_compares_before_comparing() -> None:
    statement = restore_statement(N, Shape("node", False, False), ["Item"])
    lock = ("FOREACH (x IN [y IN [e] WHERE y IS NOT NULL] | SET x.`__KGM_lock` = true "
            "REMOVE x.`__KGM_lock`)")
    assert lock in statement and statement.index(lock) < statement.index(" AS ours")
    assert "__KGM_lock" not in restore_statement(F, Shape("node", False, False), ["Item"])
