"""The ledger's part of the statements that change the graph: a batch (or restore) and its
ledger record are one atomic statement, so these fragments are embedded in the statements the
engine builds. The engine never spells out `__KGM*` itself.

Each statement locks its record first (a write), then reads its status. Neo4j reads at
read-committed isolation: read before the lock, a second delivery of the same batch could see
`planned` while the first is still uncommitted, and both would count it. With the lock first,
the second waits, reads `completed`, and aborts by dividing by zero (`REPEAT_MARKERS`).

Parameters they use: kgm_batch_id, kgm_step_id, kgm_run_id, kgm_worker, kgm_at, and for a
forward batch kgm_started and kgm_undo (where its undo rows are).
"""

from kgmigrate.ledger import BATCH, RESTORE_PREFIX, RUN, STEP

# How the servers word the abort of a repeated delivery (a division by zero)
REPEAT_MARKERS = ("division by zero", "/ by zero")


def restore_batch_id(batch_id: str, forced: bool) -> str:
    """A restore's record: apart from its batch's, and apart from a forced pass's."""
    return f"{RESTORE_PREFIX}{batch_id}{':forced' if forced else ''}"


def restored_seq(restore_id: str) -> int:
    """`rb:<batch id>` (a forced pass ends in `:forced`) -> the batch's seq (its last part)."""
    return int(restore_id.removesuffix(":forced").split(":")[-1])


def is_repeat(error: object) -> bool:
    """Whether a statement aborted because its batch was already done (a repeated delivery)."""
    return any(marker in str(error).lower() for marker in REPEAT_MARKERS)


def lock_batch(carried: str) -> str:
    """Take the batch record's lock, then read whether it is done (or a retune superseded it:
    its keys are another batch's now): `dup`, `b` and `carried` flow on."""
    return (f"MERGE (b:{BATCH} {{id: $kgm_batch_id}}) SET b.attempts = coalesce(b.attempts, 0) + 1 "
            f"WITH {carried}, b, coalesce(b.status IN ['completed', 'superseded'], false) "
            "AS dup ")


def complete_batch(carried: str) -> str:
    """After `lock_batch`: mark it completed with `n` entities, and count it in its step
    (`st` flows on, with `carried` and `dup`)."""
    return ("SET b.status = 'completed', b.entities = n, b.worker = $kgm_worker, "
            "b.started_at = $kgm_started, b.finished_at = $kgm_at, b.undo = $kgm_undo "
            f"WITH {carried}, dup MATCH (st:{STEP} {{id: $kgm_step_id}}) "
            "SET st.batches_done = st.batches_done + 1, st.entities_done = st.entities_done + n ")


def lock_restore() -> str:
    """Open a restore statement: take its record's lock and abort at once when it is done
    (nothing is compared or restored twice) or when its run is no longer rolling back (a
    late restore of an abandoned run changes nothing); `first` flows on."""
    return (f"MERGE (b:{BATCH} {{id: $kgm_batch_id}}) "
            "SET b.attempts = coalesce(b.attempts, 0) + 1 "
            f"WITH b MATCH (run:{RUN} {{id: $kgm_run_id}}) "
            "WITH 1 / (CASE WHEN coalesce(b.status = 'completed', false) "
            "OR run.status <> 'rolling_back' THEN 0 ELSE 1 END) AS first")


def complete_restore() -> str:
    """Close a restore statement (after `seen`, `restored` and `conflicts` are aggregated).
    $kgm_missing counts the entities whose undo rows are missing (the batch recorded more than
    the log holds): they stay migrated, so they decide the run's outcome like conflicts."""
    return (f"MATCH (b:{BATCH} {{id: $kgm_batch_id}}) "
            "SET b.status = 'completed', b.kind = 'restore', b.run_id = $kgm_run_id, "
            "b.step_id = $kgm_step_id, b.restored = restored, "
            "b.conflicts = size(conflicts) + $kgm_missing, b.missing = $kgm_missing, "
            "b.worker = $kgm_worker, b.finished_at = $kgm_at ")
