"""The undo log: one `__KGMUndo` row per entity a batch changed, written by the batch statement.

The row is created in the same atomic statement (one transaction on Neo4j) as the change and
the batch's ledger record, so it is durable exactly when the change is and cannot disagree with
it: no read before the write, no file, nothing a worker must share with another. Its parts:

- the entity's properties just before the change, copied on the server (exact: no client ever
  rounds a double), with its labels, or its type and end keys (a relationship);
- the entity's state just after the change (and that of the entity the step created from it),
  kept for the rollback to compare with: an entity is restored only while it still holds what
  the batch wrote; otherwise it is a conflict, recorded on the row (`CONFLICT`);
- the batch and run it belongs to (indexed: a restore reads one batch's rows, pruning a run's).

How a state is kept differs per server (`Dialect.keep_state`): FalkorDB keeps its one-string
rendering; Neo4j, which has no such rendering and stores neither maps nor nested lists, keeps
each property under a prefixed dynamic name.
"""

from kgmigrate.cypher import identifiers as ident
from kgmigrate.cypher.dialect import Dialect
from kgmigrate.model.scope import EntityKind, IndexSpec

UNDO = ident.label("__KGMUndo", internal=True)
BATCH_ID, RUN_ID, KEY = "__KGM_batch", "__KGM_run", "__KGM_key"
LABELS, LABELS_AFTER = "__KGM_labels", "__KGM_labels_after"
TYPE, START, END = "__KGM_type", "__KGM_start", "__KGM_end"
AFTER, CREATED, CREATED_KEY = "__KGM_after", "__KGM_created", "__KGM_created_key"
CONFLICT, FORCED = "__KGM_conflict", "__KGM_forced"
# Every name a row may carry besides the pre-image (FalkorDB stores that unprefixed)
RESERVED = (BATCH_ID, RUN_ID, KEY, LABELS, LABELS_AFTER, TYPE, START, END, AFTER, CREATED,
            CREATED_KEY, CONFLICT, FORCED)
IN_GRAPH = "graph"  # a batch record's `undo`: its rows are in the graph (older runs: a file)

SCHEMA = [IndexSpec("node", "__KGMUndo", (BATCH_ID,), internal=True),
          IndexSpec("node", "__KGMUndo", (RUN_ID,), internal=True)]


def _p(name: str) -> str:
    return ident.prop(name, internal=True)


def bound(dialect: Dialect, entity: EntityKind) -> str:
    """`kgm_pre`, bound before `apply` runs: the entity's state before the change, which its
    undo row keeps: [labels, properties] for a node, [type, properties, start key, end key]
    for a relationship. One variable, so an `apply` with a WITH carries it as it always did
    (`WITH e, kgm_key, kgm_pre, ...`)."""
    if entity == "node":
        return "[labels(e), properties(e)] AS kgm_pre"
    return (f"[type(e), properties(e), {dialect.key('s')}, {dialect.key('t')}] AS kgm_pre")


def record(dialect: Dialect, entity: EntityKind, *, made: str | None, deletes: bool) -> str:
    """After `apply`: the row of `e` (its key bound to `kgm_key`, its state before to
    `kgm_pre`). Parameters: kgm_batch_id, kgm_run_id."""
    own = [f"u.{_p(BATCH_ID)} = $kgm_batch_id", f"u.{_p(RUN_ID)} = $kgm_run_id",
           f"u.{_p(KEY)} = kgm_key"]
    if entity == "node":
        own.append(f"u.{_p(LABELS)} = kgm_pre[0]")
        if not deletes:
            own.append(f"u.{_p(LABELS_AFTER)} = labels(e)")
    else:
        own += [f"u.{_p(TYPE)} = kgm_pre[0]", f"u.{_p(START)} = kgm_pre[2]",
                f"u.{_p(END)} = kgm_pre[3]"]
    clauses = [f"CREATE (u:{UNDO})", dialect.keep_properties("u", "kgm_pre[1]"),
               "SET " + ", ".join(own)]
    if not deletes:
        clauses.append(dialect.keep_state("u", "e", entity, AFTER))
    if made:
        clauses += [f"SET u.{_p(CREATED_KEY)} = {dialect.key(made)}",
                    dialect.keep_state("u", made, entity, CREATED)]
    return " ".join(clauses)


def rows(*, conflicts_only: bool) -> str:
    """Open a restore after `lock_restore`: the rows of batch $kgm_undo_batch (a forced pass
    after a first one: only those it left as conflicts), bound to `u`."""
    only = f" AND u.{_p(CONFLICT)} IS NOT NULL" if conflicts_only else ""
    return f"MATCH (u:{UNDO}) WHERE first = 1 AND u.{_p(BATCH_ID)} = $kgm_undo_batch{only}"


def after_batch(dialect: Dialect, var: str, entity: EntityKind) -> str:
    """`var` still holds what the batch wrote."""
    return dialect.same_state("u", var, entity, AFTER)


def created_intact(dialect: Dialect, var: str, entity: EntityKind) -> str:
    return dialect.same_state("u", var, entity, CREATED)


def field(name: str) -> str:
    return f"u.{_p(name)}"


def restore_into(dialect: Dialect, var: str) -> str:
    return dialect.restore_properties(var, "u", RESERVED)


def mark(*, forced: bool) -> str:
    """Record the outcome on the row, with `go`, `ours` and `present` bound: why it was left
    alone (a conflict), or that only force restored it. A restored row's conflict is cleared."""
    reason = ("CASE WHEN go THEN null WHEN present THEN 'changed by someone else since the "
              "batch wrote it' ELSE 'deleted by someone else since the batch wrote it' END")
    forced_too = f", u.{_p(FORCED)} = CASE WHEN go AND NOT ours THEN true ELSE null END" \
        if forced else ""
    keep = f"CASE WHEN go AND NOT ours THEN u.{_p(CONFLICT)} ELSE {reason} END" if forced \
        else reason
    return f"SET u.{_p(CONFLICT)} = {keep}{forced_too}"


def shape(batch_label: str) -> str:
    """What a restore must know before it renders its statement: how many entities the batch
    recorded (`expected`), how many undo rows it has, and every label or type they name."""
    return (f"OPTIONAL MATCH (b:{batch_label} {{id: $kgm_undo_batch}}) "
            "WITH b.entities AS expected "
            f"OPTIONAL MATCH (u:{UNDO}) WHERE u.{_p(BATCH_ID)} = $kgm_undo_batch "
            f"UNWIND coalesce(u.{_p(LABELS)}, []) + coalesce(u.{_p(LABELS_AFTER)}, []) + "
            f"[u.{_p(TYPE)}] AS kgm_n "
            "RETURN expected, count(DISTINCT u) AS rows, collect(DISTINCT kgm_n) AS names")


CONFLICTS = (f"MATCH (u:{UNDO}) WHERE u.{_p(RUN_ID)} = $run_id AND u.{_p(CONFLICT)} IS NOT NULL "
             f"RETURN u.{_p(BATCH_ID)} AS batch_id, u.{_p(KEY)} AS key, "
             f"u.{_p(CONFLICT)} AS reason, coalesce(u.{_p(FORCED)}, false) AS forced "
             f"ORDER BY batch_id, key")

DROP_RUN = (f"MATCH (u:{UNDO}) WHERE u.{_p(RUN_ID)} = $run_id WITH u LIMIT $limit "
            "DELETE u RETURN count(*) AS n")
COUNT_RUN = f"MATCH (u:{UNDO}) WHERE u.{_p(RUN_ID)} = $run_id RETURN count(u) AS n"
