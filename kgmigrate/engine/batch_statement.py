"""How one batch of a step runs: the single statement that applies, validates and records it.

Every batch is one atomic statement (FalkorDB has nothing bigger; on Neo4j it is one managed
transaction). In that statement:

1. the batch's entities are matched by key (range or list), write-locked first on a server with
   concurrent writers (`Dialect.lock`), and their pre-images bound;
2. the step's `apply` runs on them, and each is checked against the step's validation;
3. each entity's undo row is written: its exact pre-image and the state the batch left
   (`kgmigrate.ledger.undo`), so the undo log is durable exactly when the change is;
4. the step's progress counters advance and the batch is marked completed in the ledger. The
   batch's status is read only after the statement holds the batch record's write lock (it
   writes `attempts` first): Neo4j reads at read-committed isolation, so a status read before
   the lock could predate a concurrent delivery's commit of the same batch;
5. the statement divides by zero - and so the server undoes *all* of it, undo rows included -
   when the batch was already completed (a redelivered task: exactly-once), when any entity
   failed validation, or when its step is no longer running (it failed: a rollback may be
   planning already).

After such an abort the worker tells the two apart by reading the batch's status, and for a
validation failure runs the statement again with `probe_write` (whose effects are discarded)
to report how many of the batch's entities fail, and the first of them: their keys, business
keys and values.
"""

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel

from kgmigrate.compile import BatchPlan
from kgmigrate.compile.plans import Touches
from kgmigrate.cypher import identifiers as ident
from kgmigrate.cypher.dialect import Dialect
from kgmigrate.ledger import undo
from kgmigrate.ledger.batches import complete_batch, lock_batch
from kgmigrate.model.scope import BatchAddress, KeyList, KeyRange, Scope

BAD_SAMPLE = 20  # offending entities reported per failed batch


class BatchResult(BaseModel):
    """What a batch task returns (JSON): a failed batch is a result, not an exception."""

    run_id: str
    step_id: str
    batch_id: str
    seq: int
    status: Literal["completed", "skipped", "failed", "paused"]
    entities: int = 0
    counters: dict[str, int] = {}
    error: str | None = None
    # a validation failure: the first failing entities (`Offending`: key, business_key,
    # properties), how many failed, of how many the batch checked
    offending: list[dict[str, Any]] = []
    failing: int | None = None
    checked: int | None = None
    seconds: float = 0.0
    worker: str = ""


def address_to_json(address: BatchAddress) -> dict[str, Any]:
    if isinstance(address, KeyRange):
        return {"lo": address.lo, "hi": address.hi}
    return {"keys": list(address.keys)}


def address_from_json(data: dict[str, Any]) -> BatchAddress:
    if "keys" in data:
        return KeyList(tuple(data["keys"]))
    return KeyRange(int(data["lo"]), int(data["hi"]))


def batch_statement(dialect: Dialect, plan: BatchPlan) -> str:
    """The statement for one batch of a batched step (parameters: `batch_params`).

    Per entity it writes the undo row (`kgmigrate.ledger.undo.record`) next to the change, so
    nothing but counts travels back: the batch's entities, how many failed validation, the
    first keys of those, and the properties its undo rows hold (`undo_props`: the counters
    the server reports include them)."""
    scope = plan.scope
    valid = plan.validation or "true"
    made = plan.creates
    touched = plan.kept
    row = (undo.record_touched(dialect, scope.entity, touched.properties, touched.labels)
           if touched else undo.record(dialect, scope.entity, made=made, deletes=plan.deletes))
    # a Python transform compares the whole state its values were computed from
    narrow = touched.properties if touched and plan.values is None else None
    return (
        f"{bound_batch(dialect, scope, narrow)} {plan.apply} "
        f"WITH e, {made + ', ' if made else ''}kgm_key, kgm_pre, ({valid}) AS ok {row} "
        f"WITH count(e) AS n, sum(CASE WHEN ok THEN 0 ELSE 1 END) AS bad, "
        f"collect(CASE WHEN ok THEN null ELSE kgm_key END)[..{BAD_SAMPLE}] AS bad_keys, "
        "sum(size(keys(u))) AS undo_props "
        f"{lock_batch('n, bad, bad_keys, undo_props')}"
        f"{complete_batch('n, bad, bad_keys, undo_props')}"
        "RETURN n, bad, bad_keys, undo_props, dup, "
        "1 / (CASE WHEN dup OR bad > 0 OR st.status <> 'in_progress' THEN 0 ELSE 1 END) AS ok"
    )


def bound_batch(dialect: Dialect, scope: Scope, touched: Sequence[str] | None = None) -> str:
    """One batch's entities, write-locked first where other transactions may write
    (`Dialect.lock`), with what `apply` may use besides `e` (and `s`, `t`): `kgm_key`, and
    `kgm_pre`, the state before the change that the undo row keeps
    (`kgmigrate.ledger.undo.bound`; only the `touched` properties when given). An `apply`
    that needs a WITH carries them."""
    match = dialect.batch_match(scope)
    carried = "e" if scope.entity == "node" else "e, s, t"
    lock = dialect.lock("e", undo.LOCK)
    return (f"{match} {lock + ' ' if lock else ''}WITH {carried}, {dialect.key('e')} AS kgm_key, "
            f"{undo.bound(dialect, scope.entity, touched)}")


def diagnosis_statement(dialect: Dialect, scope: Scope, apply: str, validation: str,
                        business_key: str | None = None, *,
                        put_back: Touches | None = None) -> str:
    """Apply and return one row: how many entities the batch checked (`checked`), how many
    failed validation (`failing`), and the first `BAD_SAMPLE` of those (`sample`): each its
    key, its business key's value before the change (as it is in the graph again once the
    batch is undone) and its properties after. The validation is projected before it is
    counted: FalkorDB allows pattern comprehensions only in projections.

    `put_back`: what `apply` touches, all it changes; the statement then puts it back as it
    was before its end (parameters: `touched_params`), so it may run as a plain write. Else it
    must run where its effects are discarded (`GraphBackend.probe_write`), which on FalkorDB
    copies the whole graph, undo log included."""
    named = f"kgm_pre[1].{ident.prop(business_key)}" if business_key else "null"
    return (f"{bound_batch(dialect, scope)} {apply} "
            f"WITH e, kgm_key, kgm_pre, ({validation}) AS kgm_ok "
            f"WITH e, kgm_key, kgm_pre, kgm_ok, properties(e) AS kgm_after "
            f"{put_back_touched(put_back)} "
            "WITH count(e) AS kgm_checked, sum(CASE WHEN kgm_ok THEN 0 ELSE 1 END) AS kgm_bad, "
            f"collect(CASE WHEN kgm_ok THEN null ELSE [kgm_key, {named}, kgm_after] END)"
            f"[..{BAD_SAMPLE}] AS kgm_sample "
            "RETURN kgm_checked AS checked, kgm_bad AS failing, [row IN kgm_sample | "
            "{key: row[0], business: row[1], properties: row[2]}] AS sample")


def put_back_touched(touches: Touches | None) -> str:
    """Clauses that put back, on `e`, what `touches` names as it was in `kgm_pre` (bound with
    the whole property map); an absent property is removed (set to null). Empty for None."""
    if touches is None:
        return ""
    sets = [f"{ident.ref('e', name)} = kgm_pre[1].{ident.prop(name)}"
            for name in touches.properties]
    clauses = [f"SET {', '.join(sets)}"] if sets else []
    for i, name in enumerate(touches.labels):
        had, label = f"${undo.TOUCHED}_labels[{i}] IN kgm_pre[0]", ident.labelled("x", name)
        clauses += [f"FOREACH (x IN CASE WHEN {had} THEN [e] ELSE [] END | SET {label})",
                    f"FOREACH (x IN CASE WHEN {had} THEN [] ELSE [e] END | REMOVE {label})"]
    return " ".join(clauses)


def touched_params(touches: Touches | None) -> dict[str, Any]:
    """The names a statement that keeps or puts back `touches` reads by position: a map is
    read by a key parameter, so no name is ever spelled as a string literal."""
    if touches is None:
        return {}
    return {undo.TOUCHED: list(touches.properties),
            f"{undo.TOUCHED}_labels": list(touches.labels)}


def batch_params(dialect: Dialect, plan: BatchPlan, address: BatchAddress, *, run_id: str,
                 step_id: str, batch_id: str, worker: str, at: str,
                 started: str | None = None) -> dict[str, Any]:
    """`started`: when the worker took the batch (default `at`), for its latency."""
    names = touched_params(plan.kept)
    return {**dialect.batch_params(plan.scope, address), **names, "kgm_batch_id": batch_id,
            "kgm_step_id": step_id, "kgm_run_id": run_id, "kgm_worker": worker, "kgm_at": at,
            "kgm_undo": undo.IN_GRAPH, "kgm_started": started or at}


def step_validation_statement(dialect: Dialect, scope: Scope, validation: str) -> str:
    """Step-level proof: no entity in scope fails the per-entity validation."""
    carried = "e" if scope.entity == "node" else "e, s, t"
    return (f"{dialect.match_scope(scope)} WITH {carried}, ({validation}) AS kgm_ok "
            "WHERE NOT kgm_ok RETURN count(e) AS failing")


def batch_id(run_id: str, step_order: int, seq: int) -> str:
    """Deterministic, so a redelivered or re-enqueued batch finds its own ledger record."""
    return f"{run_id}:{step_order}:{seq}"


