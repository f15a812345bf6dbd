"""The write-ahead undo log and the statement that restores one batch from it.

For every batch attempt the worker writes two objects to the backup store:

    runs/<run>/undo/<step order>/<seq>.<attempt>.pre    exact pre-image, BEFORE the change
    runs/<run>/undo/<step order>/<seq>.<attempt>.post   what the batch statement reported

The batch statement records `<seq>.<attempt>` on its ledger batch in the same atomic write, so
the ledger names the one attempt whose change is in the graph; the pre-image of an attempt that
crashed before (or lost the race to) committing is never restored.

`post` holds, per entity, the server's rendering of its state before and after the change
(`Dialect.signature`). Restoring an entity is only safe when it still looks exactly as the
batch left it; otherwise someone else changed it since, and it is a *conflict*: reported with
its key and values, and kept unless the rollback is forced. The same holds when the captured
pre-image and the statement's own "before" differ (someone wrote in between): the pre-image is
stale, so restoring it could undo their write.
"""

from dataclasses import dataclass
from typing import Any, NamedTuple

from kgmigrate.backup.store import BackupStore, BackupStoreError
from kgmigrate.cypher import identifiers as ident
from kgmigrate.cypher.dialect import Dialect, pattern
from kgmigrate.ledger.batches import complete_restore, lock_restore
from kgmigrate.model.scope import EntityKind


def undo_key(run_id: str, order: int, seq: int, attempt: str) -> str:
    return f"runs/{run_id}/undo/{order:04d}/{seq:06d}.{attempt}"


def conflicts_key(run_id: str, order: int, seq: int, forced: bool) -> str:
    return f"runs/{run_id}/rollback/{order:04d}/{seq:06d}.{'forced' if forced else 'conflicts'}"


class Image(NamedTuple):
    """One entity of a batch's `.post` record (a JSON list, in this order): what the batch
    statement saw and left (see `batch_statement.images`)."""

    key: Any
    before: Any  # the entity's signature just before the change
    after: Any  # ... and after it (None when the step deletes the entity)
    created_key: Any = None  # the entity the step created from it, if any
    created: Any = None  # ... and its signature
    labels: list[str] | None = None  # labels after the change (nodes; absent in old records)


@dataclass(frozen=True)
class Shape:
    """What a step's apply does to the entities it is given (from the op's declaration)."""

    entity: EntityKind
    creates: bool
    deletes: bool


def restore_rows(store: BackupStore, undo: str, *, force: bool,
                 only: set[Any] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows for `restore_statement`, and the entities that are conflicts before the graph is
    even read (a stale pre-image, or a lost `post` record), unless forced."""
    pre = list(store.rows(undo + ".pre"))
    try:
        posts = [Image(*row) for row in store.rows(undo + ".post")]
        images = {image.key: image for image in posts}
        missing_post = False
    except BackupStoreError:  # the worker died between commit and writing it
        images, missing_post = {}, True
    rows, early = [], []
    captured = {state["k"] for state in pre}
    for key in images.keys() - captured:  # entered the batch after the capture
        if only is None or key in only:
            early.append({"key": key, "now": None, "reason": "changed by the batch without a "
                          "pre-image (it entered the batch's scope after the capture)"})
    for state in pre:
        key = state["k"]
        if only is not None and key not in only:
            continue
        image = images.get(key)
        if image is None and not missing_post:
            continue  # in the window when captured, no longer in scope when applied
        reason = ("the batch's record of what it wrote is missing" if image is None else
                  "changed by someone else between the pre-image and the change"
                  if image.before != state["sig"] else None)
        if reason and not force:
            early.append({"key": key, "reason": reason, "now": None})
            continue
        rows.append({
            "k": key, "p": state["p"], "l": state.get("l", []), "ty": state.get("ty"),
            "s": state.get("s"), "t": state.get("t"),
            "post": image.after if image else None,
            "ck": image.created_key if image else None,
            "cpost": image.created if image else None,
            "after_labels": image.labels if image else None,
            "force": force,
        })
    return rows, early


def touched_names(rows: list[dict[str, Any]], shape: Shape) -> list[str]:
    """Labels (nodes) or types (recreated relationships) the restore may need to write."""
    names: set[str] = set()
    for row in rows:
        if shape.entity == "node":
            names.update(row["l"])
            names.update(row.get("after_labels") or [])
        elif shape.deletes:
            names.add(row["ty"])
    return sorted(names)


def restore_statement(dialect: Dialect, shape: Shape, names: list[str]) -> str:
    """Restore one batch's entities, unless they changed since the batch wrote them; record the
    restore batch in the ledger and abort (divide by zero) if it was already done.

    The restore batch's record is written first: its write lock makes a second delivery wait
    until the first commits, so it reads `completed` and aborts before it compares anything.
    Read before the lock (Neo4j reads at read-committed), both deliveries would restore and
    the second would record the first one's work as its own conflicts.

    Parameters: kgm_rows (from `restore_rows`), kgm_names (= `names`), kgm_early (how many
    conflicts `restore_rows` found), kgm_batch_id,
    kgm_run_id, kgm_step_id, kgm_at, kgm_worker."""
    return " ".join([
        lock_restore(), "UNWIND CASE WHEN first = 1 THEN $kgm_rows ELSE [] END AS row",
        *_find_entities(dialect, shape), *_decide(dialect, shape), *_undo(shape, names),
        _report(dialect, shape)])


def _find_entities(dialect: Dialect, shape: Shape) -> list[str]:
    """Bind what the row is about: a relationship's ends, the entity as the batch left it (`e`,
    unless the batch deleted it), and what the batch created (`c`)."""
    key, clauses = dialect.key, []
    if shape.entity == "relationship":
        clauses.append(f"MATCH (s) WHERE {key('s')} = row.s MATCH (t) WHERE {key('t')} = row.t")
    if not shape.deletes:
        clauses.append(f"OPTIONAL MATCH {pattern(shape.entity)} WHERE {key('e')} = row.k")
    if shape.creates and shape.entity == "node":
        clauses.append(f"OPTIONAL MATCH (c) WHERE {key('c')} = row.ck")
    elif shape.creates:  # either direction: an inversion creates it from t to s
        clauses.append(f"OPTIONAL MATCH (s)-[c1]->(t) WHERE {key('c1')} = row.ck "
                       f"OPTIONAL MATCH (t)-[c2]->(s) WHERE {key('c2')} = row.ck "
                       f"WITH {'row, s, t' + (', e' if not shape.deletes else '')}, "
                       "coalesce(c1, c2) AS c")
    return clauses


def _carried(shape: Shape) -> str:
    return ("row" + (", s, t" if shape.entity == "relationship" else "")
            + (", e" if not shape.deletes else "") + (", c" if shape.creates else ""))


def _decide(dialect: Dialect, shape: Shape) -> list[str]:
    """`ours`: everything is as the batch left it; `go`: restore (ours, or forced, though an
    entity someone deleted stays deleted)."""
    checks = []
    if not shape.deletes:
        checks.append(f"(e IS NOT NULL AND {dialect.signature('e', shape.entity)} = row.post)")
    if shape.creates:
        checks.append(f"(c IS NOT NULL AND {dialect.signature('c', shape.entity)} = row.cpost)")
    ours = " AND ".join(checks) or "true"
    present = "true" if shape.deletes else "e IS NOT NULL"
    carried = _carried(shape)
    return [f"WITH {carried}, ({ours}) AS ours "
            f"WITH {carried}, ours, ours OR (row.force AND {present}) AS go"]


def _undo(shape: Shape, names: list[str]) -> list[str]:
    """Delete what the batch created; put the entity's properties and labels back, or
    recreate the relationship it deleted (its type among `names`, by index: a parameter
    cannot be a type)."""
    clauses = []
    if shape.creates:
        detach = "DETACH DELETE" if shape.entity == "node" else "DELETE"
        clauses.append("FOREACH (x IN CASE WHEN go AND c IS NOT NULL THEN [c] ELSE [] END | "
                       f"{detach} x)")
    if shape.deletes:
        return clauses + [
            f"FOREACH (x IN CASE WHEN go AND row.ty = $kgm_names[{i}] THEN [1] "
            f"ELSE [] END | CREATE (s)-[r:{ident.rel_type(name)}]->(t) SET r = row.p)"
            for i, name in enumerate(names)]
    clauses.append("FOREACH (x IN CASE WHEN go AND e IS NOT NULL THEN [e] ELSE [] END | "
                   "SET x = row.p)")
    if shape.entity == "node":
        for i, name in enumerate(names):
            has = ident.labelled("x", name)
            clauses.append(f"FOREACH (x IN CASE WHEN go AND e IS NOT NULL AND $kgm_names[{i}] "
                           f"IN row.l THEN [e] ELSE [] END | SET {has})")
            clauses.append(f"FOREACH (x IN CASE WHEN go AND e IS NOT NULL AND NOT "
                           f"$kgm_names[{i}] IN row.l THEN [e] ELSE [] END | REMOVE {has})")
    return clauses


def _report(dialect: Dialect, shape: Shape) -> str:
    """Count, record the restore batch, and list what was left alone with its state now."""
    now = ("null" if shape.deletes else
           f"CASE WHEN e IS NULL THEN null ELSE {dialect.signature('e', shape.entity)} END")
    return ("WITH count(row) AS seen, sum(CASE WHEN go THEN 1 ELSE 0 END) AS restored, "
            f"collect(CASE WHEN go THEN null ELSE [row.k, {now}] END) AS conflicts "
            f"{complete_restore()}RETURN seen, restored, conflicts")
