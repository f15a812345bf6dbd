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

from collections.abc import Sequence

from kgmigrate.cypher import identifiers as ident
from kgmigrate.cypher.dialect import Dialect
from kgmigrate.model.scope import EntityKind, IndexSpec

UNDO = ident.label("__KGMUndo", internal=True)
BATCH_ID, RUN_ID, KEY = "__KGM_batch", "__KGM_run", "__KGM_key"
LABELS, LABELS_AFTER = "__KGM_labels", "__KGM_labels_after"
TYPE, START, END = "__KGM_type", "__KGM_start", "__KGM_end"
AFTER, CREATED, CREATED_KEY = "__KGM_after", "__KGM_created", "__KGM_created_key"
CONFLICT, FORCED = "__KGM_conflict", "__KGM_forced"
# A row of a step that declares what it touches: per property its value before and after, per
# label whether the entity had it before and after (numbered in the declared order)
PRE, POST, HAD, HAS = "__KGM_pre", "__KGM_post", "__KGM_had", "__KGM_has"
TOUCHED = "kgm_touched"  # the parameter naming the touched properties, in order
BEFORE = "__KGM_before:"  # a whole pre-image's properties, where names can be dynamic (Neo4j)
LOCK = "__KGM_lock"  # written and removed at once, to take an entity's write lock first
# Every name a row may carry besides the pre-image (FalkorDB stores that unprefixed)
RESERVED = (BATCH_ID, RUN_ID, KEY, LABELS, LABELS_AFTER, TYPE, START, END, AFTER, CREATED,
            CREATED_KEY, CONFLICT, FORCED)
IN_GRAPH = "graph"  # a batch record's `undo`: its rows are in the graph (older runs: a file)

SCHEMA = [IndexSpec("node", "__KGMUndo", (BATCH_ID,), internal=True),
          IndexSpec("node", "__KGMUndo", (RUN_ID,), internal=True)]


def _p(name: str) -> str:
    return ident.prop(name, internal=True)


def bound(dialect: Dialect, entity: EntityKind, touched: Sequence[str] | None = None) -> str:
    """`kgm_pre`, bound before `apply` runs: the entity's state before the change, which its
    undo row keeps: [labels, properties] for a node, [type, properties, start key, end key]
    for a relationship. One variable, so an `apply` with a WITH carries it as it always did
    (`WITH e, kgm_key, kgm_pre, ...`).

    `touched`: the only properties the row keeps (`record_touched`), projected instead of the
    whole map: `properties(e)` builds every property of every entity, which cost a 10k batch
    of 10-property nodes on FalkorDB more than the change itself (29 ms against 7 ms)."""
    props = ("properties(e)" if touched is None else
             "e{" + ", ".join(f".{ident.prop(name)}" for name in touched) + "}")
    if entity == "node":
        return f"[labels(e), {props}] AS kgm_pre"
    return (f"[type(e), {props}, {dialect.key('s')}, {dialect.key('t')}] AS kgm_pre")


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
    clauses = [f"CREATE (u:{UNDO})", dialect.keep_properties("u", "kgm_pre[1]", BEFORE),
               "SET " + ", ".join(own)]
    if not deletes:
        clauses.append(dialect.keep_state("u", "e", entity, AFTER))
    if made:
        clauses += [f"SET u.{_p(CREATED_KEY)} = {dialect.key(made)}",
                    dialect.keep_state("u", made, entity, CREATED)]
    return " ".join(clauses)


def record_touched(dialect: Dialect, entity: EntityKind, properties: Sequence[str],
                   labels: Sequence[str]) -> str:
    """After `apply`, for a step that changes only `properties` and `labels` of `e`: the row
    keeps just those, before and after (copied on the server, exact). Parameters:
    kgm_batch_id, kgm_run_id, and $kgm_touched (= `properties`: a map is read by a key
    parameter, so no name is ever spelled as a string literal)."""
    own = [f"u.{_p(BATCH_ID)} = $kgm_batch_id", f"u.{_p(RUN_ID)} = $kgm_run_id",
           f"u.{_p(KEY)} = kgm_key"]
    if entity == "relationship":
        own += [f"u.{_p(START)} = kgm_pre[2]", f"u.{_p(END)} = kgm_pre[3]"]
    for i, name in enumerate(properties):
        own += [f"u.{_p(f'{PRE}{i}')} = kgm_pre[1][${TOUCHED}[{i}]]",
                f"u.{_p(f'{POST}{i}')} = {ident.ref('e', name)}"]
    for i, name in enumerate(labels):
        own += [f"u.{_p(f'{HAD}{i}')} = ${TOUCHED}_labels[{i}] IN kgm_pre[0]",
                f"u.{_p(f'{HAS}{i}')} = {ident.labelled('e', name)}"]
    return f"CREATE (u:{UNDO}) SET {', '.join(own)}"


def touched_intact(properties: Sequence[str], labels: Sequence[str]) -> str:
    """`e` still holds what the batch wrote to what it touches (an absent property is null
    on both sides)."""
    checks = [f"coalesce({ident.ref('e', name)} = u.{_p(f'{POST}{i}')}, "
              f"{ident.ref('e', name)} IS NULL AND u.{_p(f'{POST}{i}')} IS NULL)"
              for i, name in enumerate(properties)]
    checks += [f"{ident.labelled('e', name)} = u.{_p(f'{HAS}{i}')}"
               for i, name in enumerate(labels)]
    return " AND ".join(checks) or "true"


def restore_touched(var: str, properties: Sequence[str], labels: Sequence[str]) -> list[str]:
    """Put back what the batch touched (a property absent before is removed: set to null),
    on `var` when `go`."""
    when = "CASE WHEN go AND e IS NOT NULL THEN [e] ELSE [] END"
    clauses = []
    if properties:
        sets = ", ".join(f"{ident.ref(var, name)} = u.{_p(f'{PRE}{i}')}"
                         for i, name in enumerate(properties))
        clauses.append(f"FOREACH ({var} IN {when} | SET {sets})")
    for i, name in enumerate(labels):
        had = f"u.{_p(f'{HAD}{i}')}"
        clauses.append(f"FOREACH ({var} IN CASE WHEN go AND e IS NOT NULL AND {had} THEN [e] "
                       f"ELSE [] END | SET {ident.labelled(var, name)})")
        clauses.append(f"FOREACH ({var} IN CASE WHEN go AND e IS NOT NULL AND NOT {had} "
                       f"THEN [e] ELSE [] END | REMOVE {ident.labelled(var, name)})")
    return clauses


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
    return dialect.restore_properties(var, "u", BEFORE, RESERVED)


def mark(*, forced: bool) -> str:
    """Record the outcome on the row, with `go`, `ours` and `there` bound: why it was left
    alone (a conflict), or that only force restored it. A restored row's conflict is cleared."""
    reason = ("CASE WHEN go THEN null WHEN there THEN 'changed by someone else since the "
              "batch wrote it' ELSE 'deleted by someone else since the batch wrote it' END")
    forced_too = f", u.{_p(FORCED)} = CASE WHEN go AND NOT ours THEN true ELSE null END" \
        if forced else ""
    keep = f"CASE WHEN go AND NOT ours THEN u.{_p(CONFLICT)} ELSE {reason} END" if forced \
        else reason
    return f"SET u.{_p(CONFLICT)} = {keep}{forced_too}"


# What a restore must know before it renders its statement (after the batch record's entity
# count, `expected`, is bound: see `Ledger.undo_shape`): how many undo rows the batch has, and
# every label or type they name.
ROWS_AND_NAMES = (f"OPTIONAL MATCH (u:{UNDO}) WHERE u.{_p(BATCH_ID)} = $kgm_undo_batch "
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
