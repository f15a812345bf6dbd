"""The statement that restores one batch from its undo rows (see kgmigrate.ledger.undo).

Restoring an entity is only safe when it still holds exactly what the batch left; otherwise
someone else changed it since, and it is a *conflict*: recorded on its undo row and kept as it
is, unless the rollback is forced. The decision is taken on the server, in the same statement
as the restore and its ledger record, so nothing can change in between.
"""

from dataclasses import dataclass

from kgmigrate.compile import Touches
from kgmigrate.cypher import identifiers as ident
from kgmigrate.cypher.dialect import Dialect, pattern
from kgmigrate.ledger import undo
from kgmigrate.ledger.batches import complete_restore, lock_restore
from kgmigrate.model.scope import EntityKind


@dataclass(frozen=True)
class Shape:
    """What a step's apply does to the entities it is given (from the op's declaration):
    `touches`: the footprint its undo rows kept (`kgmigrate.compile.BatchPlan.kept`; None:
    whole entities)."""

    entity: EntityKind
    creates: bool
    deletes: bool
    touches: Touches | None = None


def restore_statement(dialect: Dialect, shape: Shape, names: list[str], *,
                      conflicts_only: bool = False, forced: bool = False) -> str:
    """Restore one batch's entities, unless they changed since the batch wrote them; record the
    restore batch in the ledger and abort (divide by zero) if it was already done.

    The restore batch's record is written first: its write lock makes a second delivery wait
    until the first commits, so it reads `completed` and aborts before it compares anything.
    Read before the lock (Neo4j reads at read-committed), both deliveries would restore and
    the second would record the first one's work as its own conflicts.

    `names`: every label (or type) the rows name (see `kgmigrate.ledger.undo.SHAPE`).
    `conflicts_only`: a forced pass after a first one revisits only its conflicts.
    Parameters: kgm_undo_batch, kgm_names (= `names`), kgm_missing (undo rows the batch
    should have and has not), kgm_batch_id, kgm_run_id, kgm_step_id, kgm_at, kgm_worker."""
    touched = shape.touches
    restore = (undo.restore_touched("x", touched.properties, touched.labels) if touched
               else _undo(dialect, shape, names))
    return " ".join([
        lock_restore(), undo.rows(conflicts_only=conflicts_only),
        *_find_entities(dialect, shape), *_lock(dialect, shape),
        *_decide(dialect, shape, forced),
        undo.mark(forced=forced), *restore, _report(dialect, shape)])


def _find_entities(dialect: Dialect, shape: Shape) -> list[str]:
    """Bind what the row is about: a relationship's ends, the entity as the batch left it (`e`,
    unless the batch deleted it), and what the batch created (`c`)."""
    key, clauses = dialect.key, []
    if shape.entity == "relationship":
        clauses.append(f"MATCH (s) WHERE {key('s')} = {undo.field(undo.START)} "
                       f"MATCH (t) WHERE {key('t')} = {undo.field(undo.END)}")
    if not shape.deletes:
        clauses.append(f"OPTIONAL MATCH {pattern(shape.entity)} "
                       f"WHERE {key('e')} = {undo.field(undo.KEY)}")
    created = undo.field(undo.CREATED_KEY)
    if shape.creates and shape.entity == "node":
        clauses.append(f"OPTIONAL MATCH (c) WHERE {key('c')} = {created}")
    elif shape.creates:  # either direction: an inversion creates it from t to s
        clauses.append(f"OPTIONAL MATCH (s)-[c1]->(t) WHERE {key('c1')} = {created} "
                       f"OPTIONAL MATCH (t)-[c2]->(s) WHERE {key('c2')} = {created} "
                       f"WITH {'u, s, t' + (', e' if not shape.deletes else '')}, "
                       "coalesce(c1, c2) AS c")
    return clauses


def _lock(dialect: Dialect, shape: Shape) -> list[str]:
    """Take the write locks of what the restore compares before it compares (servers with
    concurrent writers, `Dialect.lock`): read-committed, a write committed between the
    comparison and the restore would be overwritten with the pre-image."""
    lock = dialect.lock("x", undo.LOCK)
    if not lock:
        return []
    bound = ", ".join(([] if shape.deletes else ["e"]) + (["c"] if shape.creates else []))
    return [f"FOREACH (x IN [y IN [{bound}] WHERE y IS NOT NULL] | {lock})"] if bound else []


def _carried(shape: Shape) -> str:
    return ("u" + (", s, t" if shape.entity == "relationship" else "")
            + (", e" if not shape.deletes else "") + (", c" if shape.creates else ""))


def _decide(dialect: Dialect, shape: Shape, forced: bool) -> list[str]:
    """`ours`: everything is as the batch left it; `present`: the entity is there to restore;
    `there`: what the batch left is there at all (else someone deleted it); `go`: restore
    (ours, or forced, though an entity someone deleted stays deleted)."""
    checks, touched = [], shape.touches
    if touched:
        checks.append(f"(e IS NOT NULL AND "
                      f"{undo.touched_intact(touched.properties, touched.labels)})")
    elif not shape.deletes:
        checks.append(f"(e IS NOT NULL AND {undo.after_batch(dialect, 'e', shape.entity)})")
    if shape.creates:
        checks.append(f"(c IS NOT NULL AND {undo.created_intact(dialect, 'c', shape.entity)})")
    ours = " AND ".join(checks) or "true"
    present = "true" if shape.deletes else "e IS NOT NULL"
    there = ("c IS NOT NULL" if shape.creates else "true") if shape.deletes else present
    carried = _carried(shape)
    go = f"ours OR ({str(forced).lower()} AND present)"
    return [f"WITH {carried}, ({ours}) AS ours, {present} AS present, {there} AS there "
            f"WITH {carried}, ours, present, there, {go} AS go"]


def _undo(dialect: Dialect, shape: Shape, names: list[str]) -> list[str]:
    """Delete what the batch created; put the entity's properties and labels back, or
    recreate the relationship it deleted (its type among `names`, by index: a parameter
    cannot be a type)."""
    clauses = []
    if shape.creates:
        detach = "DETACH DELETE" if shape.entity == "node" else "DELETE"
        clauses.append("FOREACH (x IN CASE WHEN go AND c IS NOT NULL THEN [c] ELSE [] END | "
                       f"{detach} x)")
    if shape.deletes:
        kind = undo.field(undo.TYPE)
        return clauses + [
            f"FOREACH (x IN CASE WHEN go AND {kind} = $kgm_names[{i}] THEN [1] "
            f"ELSE [] END | CREATE (s)-[r:{ident.rel_type(name)}]->(t) "
            f"{undo.restore_into(dialect, 'r')})"
            for i, name in enumerate(names)]
    clauses.append("FOREACH (x IN CASE WHEN go AND e IS NOT NULL THEN [e] ELSE [] END | "
                   f"{undo.restore_into(dialect, 'x')})")
    if shape.entity == "node":
        labels = undo.field(undo.LABELS)
        for i, name in enumerate(names):
            has = ident.labelled("x", name)
            clauses.append(f"FOREACH (x IN CASE WHEN go AND e IS NOT NULL AND $kgm_names[{i}] "
                           f"IN {labels} THEN [e] ELSE [] END | SET {has})")
            clauses.append(f"FOREACH (x IN CASE WHEN go AND e IS NOT NULL AND NOT "
                           f"$kgm_names[{i}] IN {labels} THEN [e] ELSE [] END | REMOVE {has})")
    return clauses


def _report(dialect: Dialect, shape: Shape) -> str:
    """Count, record the restore batch, and list what was left alone with its state now."""
    now = ("null" if shape.deletes else
           f"CASE WHEN e IS NULL THEN null ELSE {dialect.signature('e', shape.entity)} END")
    return ("WITH count(u) AS seen, sum(CASE WHEN go THEN 1 ELSE 0 END) AS restored, "
            f"collect(CASE WHEN go THEN null ELSE [{undo.field(undo.KEY)}, {now}] END) "
            f"AS conflicts {complete_restore()}RETURN seen, restored, conflicts")
