"""Every statement kgmigrate renders for Neo4j, with sample parameters, for the lint test.

Each later layer (ledger, ops, undo log) adds its renderings here.
"""

from dataclasses import dataclass, field
from typing import Any

from kgmigrate import adoption, ledger
from kgmigrate.backup import snapshot
from kgmigrate.compile import BatchPlan, compile_op, render
from kgmigrate.dev import sample
from kgmigrate.engine import batch_statement as execution
from kgmigrate.engine import undo
from kgmigrate.engine.undo import Shape
from kgmigrate.graph import IndexSpec, KeyList, Neo4jDialect, Scope
from kgmigrate.graph import neo4j as neo4j_backend
from kgmigrate.ledger import demo as ledger_demo
from kgmigrate.ledger import lock
from kgmigrate.ledger import undo as ledger_undo
from kgmigrate.model import throttle
from kgmigrate.ops import BatchedCypher

N = Neo4jDialect()
HOSTILE = "weird name) // x"


@dataclass(frozen=True)
class Rendered:
    name: str
    query: str
    parameters: dict[str, Any] = field(default_factory=dict)


def _scopes() -> list[tuple[str, Scope]]:
    return [
        ("nodes", Scope.nodes("Compound")),
        ("nodes-where", Scope.nodes("Compound", "e.weight > $min OR e.weight IS NULL", min=1.5)),
        ("relationships", Scope.relationships("TREATS")),
        ("hostile-name", Scope.nodes(HOSTILE)),
    ]


def _dialect() -> list[Rendered]:
    out: list[Rendered] = []
    keys = KeyList(("4:abc:1", "4:abc:2"))
    for tag, scope in _scopes():
        out.append(Rendered(f"scope/{tag}", f"{N.match_scope(scope)} RETURN count(e) AS n",
                            dict(scope.params)))
        clause, params = N.match_batch(scope, keys)
        out.append(Rendered(f"batch/{tag}", f"{clause} SET e.`migrated` = true", params))
        out.append(Rendered(f"keys/{tag}", N.keys_in_order(scope), dict(scope.params)))
        out.append(Rendered(f"key-lists/{tag}", N.key_lists(scope),
                            {**scope.params, "kgm_step": 2}))
    out.append(Rendered("match-key", f"MATCH (n) WHERE {N.match_key('n', 'k')} RETURN n",
                        {"k": "4:abc:1"}))
    for spec in [IndexSpec("node", "Compound", ("cid",)),
                 IndexSpec("node", HOSTILE, ("a b", "c")),
                 IndexSpec("relationship", "TREATS", ("since",)),
                 IndexSpec("node", "Compound", ("cid",), unique=True),
                 IndexSpec("node", "Compound", ("cid", "version"), unique=True)]:
        out.append(Rendered(f"create/{spec.describe()}", N.create_index(spec)))
        out.append(Rendered(f"drop/{spec.describe()}", N.drop_index(spec)))
    return out


def _adapter() -> list[Rendered]:
    return [
        Rendered("show-indexes", neo4j_backend.SHOW_INDEXES),
        Rendered("show-unique-constraints", neo4j_backend.SHOW_UNIQUE_CONSTRAINTS),
        Rendered("server-info", neo4j_backend.SERVER_INFO),
    ]


def _sample() -> list[Rendered]:
    return [
        Rendered("sample/labels", sample.LIST_LABELS),
        Rendered("sample/rel-types", sample.LIST_REL_TYPES),
        Rendered("sample/count-nodes", sample.COUNT_NODES),
        Rendered("sample/count-label", sample.count_label("Compound")),
        Rendered("sample/count-rel-type", sample.count_rel_type("TREATS")),
        Rendered("sample/create-nodes", sample.create_nodes(N, "Compound"),
                 {"rows": [{"cid": "CMP1", "name": "Ibuprofen"}]}),
        Rendered("sample/create-relationships", sample.create_relationships(N, "TREATS"),
                 {"rows": [{"src": "4:a:1", "dst": "4:a:2", "props": {"evidence": "x"}}]}),
    ]


def _ledger_and_lock() -> list[Rendered]:
    at = "2026-11-24T12:00:00.000+00:00"
    step = {"id": "step_1", "order": 1, "version": "V0001", "description": "d",
            "operation": "cypher", "batched": False, "spec": "{}", "batch_size": 10_000,
            "business_key": "cid"}
    lock_params = {"name": "migrations", "holder": "a@h:1", "run_id": "run_1", "host": "h",
                   "pid": 1, "lease_ms": 60_000, "token": 3}
    return [
        Rendered("ledger/append-applied", ledger.APPEND_APPLIED, {
            "version": "V0001", "description": "d", "checksum": "c", "author": "a",
            "applied_at": at, "duration_ms": 1, "applied_by": "a", "host": "h",
            "run_id": "run_1"}),
        Rendered("ledger/applied", ledger.APPLIED),
        Rendered("ledger/append-skipped", ledger.APPEND_SKIPPED, {
            "version": "V0002", "description": "d", "checksum": "c", "author": "a", "at": at,
            "applied_by": "a", "host": "h", "run_id": None,
            "reason": "`assume that edition is enterprise` does not hold"}),
        Rendered("ledger/links", ledger.LINKS),
        Rendered("ledger/set-checksum", ledger.SET_CHECKSUM,
                 {"version": "V0001", "checksum": "c", "at": at}),
        Rendered("ledger/create-run", ledger.CREATE_RUN, {
            "id": "run_1", "status": "pending", "migrations": ["V0001"], "target": None,
            "at": at, "by": "a", "host": "h", "entry": "pending@" + at, "steps": [step],
            "plan": ['{"version": "V0001"}']}),
        Rendered("ledger/transition", ledger.TRANSITION, {
            "id": "run_1", "allowed_from": ["pending"], "status": "in_progress",
            "entry": "in_progress@" + at, "error": None, "finished_at": None,
            "backup_ref": "external:sh"}),
        Rendered("ledger/run-status", ledger.RUN_STATUS, {"id": "run_1"}),
        Rendered("ledger/read-run", ledger.READ_RUN, {"id": "run_1"}),
        Rendered("ledger/read-steps", ledger.READ_STEPS, {"id": "run_1"}),
        Rendered("ledger/latest-runs", ledger.LATEST_RUNS, {"limit": 20}),
        Rendered("ledger/runs-in", ledger.RUNS_IN, {"statuses": ["failed", "in_progress"]}),
        Rendered("ledger/ended-by", ledger.ENDED_BY, {"statuses": ["completed"],
                                                       "cutoff": "2026-11-24T12:00:00.000+00:00"}),
        Rendered("ledger/upsert-batch", ledger.UPSERT_BATCH, {
            "id": "batch_1", "run_id": "run_1", "step_id": "step_1", "seq": 1,
            "status": "completed", "attempts": 1, "worker": "w", "entities": 10,
            "counters": "{}", "error": None, "started_at": at, "finished_at": at,
            "failing": 2, "checked": 10, "offending": '[{"key": "4:a:1"}]'}),
        Rendered("ledger/read-batches", ledger.READ_BATCHES, {"step_id": "step_1"}),
        Rendered("ledger/failed-batches", ledger.FAILED_BATCHES, {"step_id": "step_1"}),
        Rendered("ledger/update-step", ledger.UPDATE_STEP, {
            "id": "step_1", "status": "completed", "batches_total": 4, "batches_done": 4,
            "entities_total": 10, "entities_done": 10, "counters": "{}", "started_at": at,
            "finished_at": at, "batch_seconds": [0.5, 0.25], "validation": "passed",
            "error": None}),
        Rendered("ledger/note-retry", ledger.NOTE_RETRY, {"id": "run_1:1:1", "n": 1}),
        Rendered("ledger/note-outcome", ledger.NOTE_OUTCOME, {
            "id": "run_1:1:1", "counters": '{"properties_set": 3}', "seconds": 0.25,
            "throttled_s": 1.5}),
        Rendered("ledger/set-throttle", ledger.SET_THROTTLE,
                 {"id": "run_1", "throttle": '{"max_rate": 500.0}'}),
        Rendered("ledger/reserve-turn", ledger.RESERVE_TURN,
                 {"id": "run_1", "gap": 0.25, "now": 1_800_000_000.5}),
        Rendered("ledger/note-throttled", ledger.NOTE_THROTTLED,
                 {"id": "run_1", "note": "rate limit", "seconds": 2.0}),
        Rendered("ledger/note-latency", ledger.NOTE_LATENCY, {"id": "run_1", "seconds": 0.4}),
        Rendered("ledger/claim-stop", ledger.CLAIM_STOP, {"id": "run_1", "reason": "critical"}),
        Rendered("ledger/reset-on-resume", ledger.RESET_ON_RESUME, {"id": "run_1"}),
        Rendered("ledger/set-after-migrate", ledger.SET_AFTER_MIGRATE,
                 {"id": "run_1", "scripts": '[{"name": "afterMigrate.cypher"}]'}),
        Rendered("ledger/claim-after-migrate", ledger.CLAIM_AFTER_MIGRATE,
                 {"id": "run_1", "at": "2026-01-01T00:00:00+00:00"}),
        Rendered("ledger/note-callback", ledger.NOTE_CALLBACK,
                 {"id": "run_1", "entry": "afterMigrate.cypher: 2 statements"}),
        Rendered("throttle/active-transactions", throttle.ACTIVE_TRANSACTIONS),
        Rendered("ledger/set-request", ledger.SET_REQUEST,
                 {"id": "run_1", "request": "pause", "by": "ana", "at": "t"}),
        Rendered("ledger/batch-and-run", ledger.BATCH_AND_RUN,
                 {"id": "run_1:1:1", "run_id": "run_1"}),
        Rendered("ledger/begin-watch", ledger.BEGIN_WATCH, {"id": "run_1", "next": "w1:0"}),
        Rendered("ledger/advance-watch", ledger.ADVANCE_WATCH,
                 {"id": "run_1", "expected": "w1:0", "next": "w1:1"}),
        Rendered("ledger/batch-tally", ledger.BATCH_TALLY,
                 {"step_ids": ["step_1", "rb:step_1"]}),
        Rendered("ledger/restore-tally", ledger.RESTORE_TALLY,
                 {"step_ids": ["rb:step_1", "rb:step_2"]}),
        Rendered("ledger/update-run-facts", ledger.UPDATE_RUN_FACTS,
                 {"id": "run_1", "counters": "{}", "backup_ref": "undo/run_1"}),
        *[Rendered(f"ledger/schema/{spec.describe()}", N.create_index(spec))
          for spec in ledger.SCHEMA],
        Rendered("ledger/read-step", ledger.READ_STEP, {"id": "step_1"}),
        Rendered("ledger/create-batches", ledger.CREATE_BATCHES, {
            "run_id": "run_1", "step_id": "step_1",
            "batches": [{"id": "run_1:1:1", "seq": 1, "address": '{"keys": []}'}],
            "status": "staged", "tune": "tune_1"}),
        Rendered("ledger/swap-batches", ledger.SWAP_BATCHES, {
            "run_id": "run_1", "old": ["run_1:1:2", "run_1:1:3"], "step_id": "step_1",
            "tune": "tune_1", "staged": 1, "size": 250}),
        Rendered("ledger/drop-staged", ledger.DROP_STAGED, {"step_id": "step_1"}),
        Rendered("ledger/max-seq", ledger.MAX_SEQ, {"step_id": "step_1"}),
        Rendered("ledger/resize-later-steps", ledger.RESIZE_LATER_STEPS,
                 {"run_id": "run_1", "order": 2, "size": 250}),
        Rendered("ledger/note-tune", ledger.NOTE_TUNE, {"id": "run_1", "entry": "batch size"}),
        Rendered("ledger/mark-planned", ledger.MARK_PLANNED,
                 {"id": "step_1", "batches": 3, "entities": 30}),
        Rendered("ledger/pending-batches", ledger.PENDING_BATCHES, {"step_id": "step_1"}),
        Rendered("ledger/batch-status", ledger.BATCH_STATUS, {"id": "run_1:1:1"}),
        Rendered("ledger/batch-address", ledger.BATCH_ADDRESS, {"id": "run_1:1:1"}),
        Rendered("ledger/undo-shape", ledger.UNDO_SHAPE, {"kgm_undo_batch": "run_1:1:1"}),
        Rendered("undo/conflicts", ledger_undo.CONFLICTS, {"run_id": "run_1"}),
        Rendered("undo/drop-run", ledger_undo.DROP_RUN, {"run_id": "run_1", "limit": 10_000}),
        Rendered("undo/count-run", ledger_undo.COUNT_RUN, {"run_id": "run_1"}),
        Rendered("lock/renew-run", lock.RENEW_RUN, lock_params),
        Rendered("lock/release-run", lock.RELEASE_RUN, lock_params),
        Rendered("lock/acquire", lock.ACQUIRE, lock_params),
        Rendered("lock/renew", lock.RENEW, lock_params),
        Rendered("lock/release", lock.RELEASE, lock_params),
        Rendered("lock/read", lock.READ, lock_params),
        Rendered("lock/break", lock.BREAK, lock_params),
        Rendered("demo/holds-only-demo", ledger_demo.HOLDS_ONLY_DEMO),
        Rendered("demo/mark", ledger_demo.MARK),
        Rendered("demo/holds", ledger_demo.HOLDS, {"reserved": "__KGM"}),
        Rendered("demo/runs", ledger_demo.RUNS),
        *[Rendered(f"count/{tag}", N.count_scope(scope), dict(scope.params))
          for tag, scope in _scopes()],
    ]


def _op(scope: Scope, apply: str, validation: str | None = None, **shape: Any) -> BatchedCypher:
    return BatchedCypher(scope.entity, scope.name, apply, scope.where, dict(scope.params),
                         validation=validation, **shape)


def _execution() -> list[Rendered]:
    out = []
    for tag, scope in _scopes():
        params = execution.batch_params(N, BatchPlan(scope, "SET e.reviewed = false"),
                                        KeyList(("4:a:1",)), run_id="run_1",
                                        step_id="step_1", batch_id="run_1:1:1", worker="w",
                                        at="2026-11-24T12:00:00+00:00")
        for validation in (None, "e.reviewed = false OR e.reviewed IS NULL"):
            v = "validated" if validation else "unvalidated"
            out.append(Rendered(f"batch/{tag}/{v}", execution.batch_statement(
                N, compile_op(_op(scope, "SET e.reviewed = false", validation), "neo4j")), params))
        if scope.entity == "relationship":
            retype = _op(scope, "CREATE (s)-[r:TREATS_CONDITION]->(t) SET r = properties(e) "
                         "DELETE e", creates="r", deletes=True)
            out.append(Rendered(f"batch/{tag}/retype", execution.batch_statement(
                N, compile_op(retype, "neo4j")), params))
        out.append(Rendered(f"diagnosis/{tag}", execution.diagnosis_statement(
            N, scope, "SET e.reviewed = false", "e.reviewed = true"), params))
        out.append(Rendered(f"diagnosis/{tag}/business-key", execution.diagnosis_statement(
            N, scope, "SET e.reviewed = false", "e.reviewed = true", HOSTILE), params))
        out.append(Rendered(f"step-validation/{tag}", execution.step_validation_statement(
            N, scope, "e.reviewed IS NOT NULL"), dict(scope.params)))
    return out


def _undo_and_states() -> list[Rendered]:
    out = []
    restore_params = {"kgm_undo_batch": "run_1:1:1", "kgm_names": ["Compound", HOSTILE],
                      "kgm_missing": 0,
                      "kgm_batch_id": "rb:run_1:1:1", "kgm_run_id": "run_1",
                      "kgm_step_id": "rb:step_1", "kgm_at": "2026-11-24T12:00:00+00:00",
                      "kgm_worker": "w"}
    shapes = {"node": Shape("node", False, False), "node-creates": Shape("node", True, False),
              "relationship": Shape("relationship", False, False),
              "relationship-retype": Shape("relationship", True, True),
              "relationship-delete": Shape("relationship", False, True)}
    for tag, shape in shapes.items():
        names = ["TREATS", HOSTILE] if shape.deletes else ["Compound", HOSTILE]
        for forced in (False, True):
            out.append(Rendered(
                f"restore/{tag}{'/forced' if forced else ''}",
                undo.restore_statement(N, shape, names, conflicts_only=forced, forced=forced),
                {**restore_params, "kgm_names": names}))
    for tag, scope in _scopes():
        statement, params = N.states_in_batch(scope, KeyList(("4:a:1",)))
        out.append(Rendered(f"states/{tag}", statement, params))
    for entity in ("node", "relationship"):
        for labels in ((), ("Compound", HOSTILE)):
            statement = N.state_page(N.all_states(entity, labels), entity)  # type: ignore[arg-type]
            params = {"kgm_after": "", "kgm_limit": 1000, "kgm_labels": list(labels)}
            out.append(Rendered(f"all-states/{entity}/{len(labels)}", statement, params))
    out.append(Rendered("ledger/restores", ledger.READ_RESTORES, {"step_id": "rb:step_1"}))
    out.append(Rendered("ledger/complete-statement", ledger.COMPLETE_STATEMENT, {
        "id": "run_1:1:1", "run_id": "run_1", "step_id": "step_1", "worker": "w",
        "counters": "{}", "at": "2026"}))
    out.append(Rendered("ledger/mark-restored", ledger.MARK_RESTORED, {
        "id": "rb:x", "run_id": "run_1", "step_id": "rb:step_1", "at": "2026"}))
    rows = {"rows": [{"k": "4:a:1", "s": "4:a:1", "t": "4:a:2", "p": {"x": 1}}],
            "labels": ["Compound"]}
    out.append(Rendered("snapshot/delete", snapshot.delete_statement(False), rows))
    out.append(Rendered("snapshot/delete-labels", snapshot.delete_statement(True), rows))
    out.append(Rendered("snapshot/create-nodes", snapshot.create_nodes_statement(
        N, ["Compound", HOSTILE]), rows))
    out.append(Rendered("snapshot/create-unlabelled", snapshot.create_nodes_statement(N, []),
                        rows))
    out.append(Rendered("snapshot/create-relationships",
                        snapshot.create_relationships_statement(N, HOSTILE), rows))
    chain = {"run_id": "run_1", "state": "rolled_back", "at": "2026", "by": "run_1"}
    out.append(Rendered("ledger/mark-chain", ledger.MARK_CHAIN, chain))
    out.append(Rendered("ledger/mark-downgrade-events", ledger.MARK_DOWNGRADE_EVENTS, chain))
    out.append(Rendered("ledger/undo-downgrades", ledger.UNDO_DOWNGRADES, {"run_id": "run_1"}))
    out.append(Rendered("ledger/undo-repeated", ledger.UNDO_REPEATED,
                        {"run_id": "run_1", "versions": ["V0002"], "at": "2026"}))
    out.append(Rendered("ledger/append-repeated", ledger.APPEND_REPEATED, {
        "version": "V0001", "description": "d", "checksum": "c", "author": "a",
        "applied_at": "2026", "duration_ms": 1, "applied_by": "me", "host": "h",
        "run_id": "run_1"}))
    out.append(Rendered("ledger/begin-revert", ledger.BEGIN_REVERT,
                        {"id": "run_1", "entry": "rolling_back@2026"}))
    out.append(Rendered("ledger/record-reverted", ledger.RECORD_REVERTED, {
        "version": "V0001", "run_id": "run_1", "at": "2026", "duration_ms": 1,
        "applied_by": "me", "host": "h"}))
    out.append(Rendered("ledger/run-links", ledger.RUN_LINKS, {"run_id": "run_1"}))
    out.append(Rendered("ledger/record-downgraded", ledger.RECORD_DOWNGRADED, {
        "version": "V0001", "description": "d", "checksum": "c", "author": "a", "at": "2026",
        "duration_ms": 1, "applied_by": "me", "host": "h", "run_id": "run_1"}))
    return out


def _library() -> list[Rendered]:
    """Each library op's batch statement and check, as the workers run them on Neo4j."""
    from kgmigrate import ops

    library: dict[str, ops.LibraryOp] = {
        "add-property": ops.add_property("Compound", "status", "new", where="e.x > $min", min=1),
        "add-computed": ops.add_property("Compound", "label_text",
                                         expression="e.name + ' (' + e.cid + ')'"),
        "python-transform": ops.python_transform("Compound", "name", "pkg.mod:fn"),
        "remove-property": ops.remove_property("Compound", HOSTILE),
        "rename-property": ops.rename_property(rel_type="TREATS", old="since", new=HOSTILE),
        "copy-property": ops.copy_property("Compound", "name", "label_text"),
        "add-label": ops.add_label("Compound", "Reviewed"),
        "remove-label": ops.remove_label("Compound", HOSTILE),
        "rename-label": ops.rename_label("Disease", "Condition"),
        "retype": ops.retype_relationship("TREATS", "TREATS_CONDITION"),
        "invert": ops.invert_relationship("TREATS"),
        "change-type": ops.change_type("Compound", "weight", "float"),
        "change-type-date": ops.change_type(rel_type="TREATS", name="since", to="date"),
        "transform": ops.transform_property("Compound", "name", "toUpper(trim(value)) + $s",
                                            s="!"),
    }
    to_node = ops.move_property("TREATS", HOSTILE, label="Compound")
    to_relationship = ops.move_property("TREATS", "since", label="Disease", to="relationship",
                                        end="end")
    for phase, (node, rel) in enumerate(zip(to_node, to_relationship, strict=True)):
        library[f"move-to-node-{phase}"] = node
        library[f"move-to-relationship-{phase}"] = rel
    out = []
    for tag, op in library.items():
        rendered, plan = render(op, "neo4j"), compile_op(op, "neo4j")
        assert isinstance(plan, BatchPlan)
        params = execution.batch_params(N, plan, KeyList(("4:a:1",)), run_id="run_1",
                                        step_id="step_1", batch_id="run_1:1:1", worker="w",
                                        at="2026")
        if tag == "python-transform":  # computed per batch by the worker
            params.update(op_values={"4:a:1": "v"}, op_sigs={"4:a:1": "[]"})
        out.append(Rendered(f"library/{tag}", execution.batch_statement(N, plan), params))
        if rendered.check:
            out.append(Rendered(f"library/{tag}/check", rendered.check,
                                {**rendered.params, "kgm_planned": 1}))
    return out


def _adoption() -> list[Rendered]:
    """`import-chain`: reading neo4j-migrations' chain, and adopting it into kgmigrate's."""
    row = {"version": "V0001", "description": "d", "checksum": "c", "author": "a",
           "applied_at": "2026-11-24T12:00:00.000+00:00", "duration_ms": 12,
           "applied_by": "ana/neo4j", "host": "unknown", "sequence": 1,
           "source": "V0001__d.cypher", "source_type": "CYPHER", "source_checksum": "1100083332",
           "checksum_compared": True}
    return [
        Rendered("adoption/nm-locks", adoption.NM_LOCKS),
        Rendered("adoption/nm-targets", adoption.NM_TARGETS),
        Rendered("adoption/nm-chain", adoption.NM_CHAIN),
        Rendered("ledger/chain-size", ledger.CHAIN_SIZE),
        Rendered("ledger/adopt-chain", ledger.ADOPT_CHAIN, {
            "rows": [row, {**row, "version": "V0002", "sequence": 2}],
            "tool": "neo4j-migrations", "at": "2026-11-25T12:00:00.000+00:00", "by": "me"}),
    ]


def neo4j_statements() -> list[Rendered]:
    return (_dialect() + _adapter() + _sample() + _ledger_and_lock() + _execution()
            + _undo_and_states() + _library() + _adoption())
