"""The audit ledger, kept in the graph next to the data it describes.

    (:__KGMMigration)-[:__KGM_MIGRATED_TO]->(:__KGMMigration)   the applied chain
    (:__KGMRun)-[:__KGM_HAS_STEP]->(:__KGMStep)                 each run and its steps
    (:__KGMBatch {run_id, step_id})                             each batch of a step

Maps cannot be Neo4j properties, so specs and counters are JSON text and status histories are
lists of strings. Every read goes through an indexed `__KGM*` label: showing a run never scans
the user graph. Times are ISO-8601 UTC strings (readable in any browser, sortable).
"""

import json
import socket
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple

from kgmigrate.cypher import identifiers as ident
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import undo
from kgmigrate.ledger.lock import default_holder
from kgmigrate.model.ids import new_id
from kgmigrate.model.records import (
    AdoptedMigration,
    Adoption,
    AppliedMigration,
    BatchRecord,
    FailedBatch,
    MigrationMetadata,
    MigrationStatus,
    PlannedBatch,
    RunRecord,
    StepRecord,
    utc_now,
)
from kgmigrate.model.scope import IndexSpec
from kgmigrate.model.status import ALLOWED, StatusTransitionError
from kgmigrate.model.throttle import Throttle

MIGRATION = ident.label("__KGMMigration", internal=True)
RUN = ident.label("__KGMRun", internal=True)
STEP = ident.label("__KGMStep", internal=True)
BATCH = ident.label("__KGMBatch", internal=True)
RESTORE_PREFIX = "rb:"  # a restore's records, apart from the forward batches'
MIGRATED_TO = ident.rel_type("__KGM_MIGRATED_TO", internal=True)
HAS_STEP = ident.rel_type("__KGM_HAS_STEP", internal=True)

SCHEMA = [
    IndexSpec("node", "__KGMRun", ("id",), unique=True, internal=True),
    IndexSpec("node", "__KGMStep", ("id",), unique=True, internal=True),
    IndexSpec("node", "__KGMBatch", ("id",), unique=True, internal=True),
    IndexSpec("node", "__KGMLock", ("name",), unique=True, internal=True),
    IndexSpec("node", "__KGMMigration", ("version",), internal=True),
    IndexSpec("node", "__KGMStep", ("run_id",), internal=True),
    IndexSpec("node", "__KGMBatch", ("step_id",), internal=True),
    *undo.SCHEMA,
]
UNDO_SHAPE = (f"OPTIONAL MATCH (b:{BATCH} {{id: $kgm_undo_batch}}) WITH b.entities AS expected "
              f"{undo.ROWS_AND_NAMES}")

APPEND_APPLIED = (
    f"OPTIONAL MATCH (dup:{MIGRATION} {{version: $version, state: 'applied'}}) "
    "WITH count(dup) AS dups WHERE dups = 0 "
    f"OPTIONAL MATCH (prev:{MIGRATION}) WITH prev ORDER BY prev.sequence DESC LIMIT 1 "
    f"CREATE (m:{MIGRATION} {{version: $version, description: $description, "
    "checksum: $checksum, author: $author, applied_at: $applied_at, duration_ms: $duration_ms, "
    "applied_by: $applied_by, host: $host, run_id: $run_id, state: 'applied', "
    "sequence: coalesce(prev.sequence, 0) + 1}) "
    "FOREACH (p IN CASE WHEN prev IS NULL THEN [] ELSE [prev] END | "
    f"CREATE (p)-[:{MIGRATED_TO} {{at: $applied_at}}]->(m)) "
    "RETURN m.sequence AS sequence"
)
# Where an adopted link comes from (`kgmigrate import-chain`): null on the others.
ADOPTION_FIELDS = (
    "m.adopted_from AS adopted_from, m.source AS source, m.source_type AS source_type, "
    "m.source_checksum AS source_checksum, m.checksum_compared AS checksum_compared, "
    "m.adopted_at AS adopted_at, m.adopted_by AS adopted_by"
)
APPLIED = (
    f"MATCH (m:{MIGRATION}) WHERE m.state = 'applied' "
    "RETURN m.version AS version, m.description AS description, m.checksum AS checksum, "
    "m.author AS author, m.applied_at AS applied_at, m.duration_ms AS duration_ms, "
    "m.applied_by AS applied_by, m.host AS host, m.run_id AS run_id, m.sequence AS sequence, "
    "m.repeat_of AS repeat_of, "
    f"{ADOPTION_FIELDS} ORDER BY coalesce(m.first_sequence, m.sequence)"
)
# A migration an `assume` precondition skipped: a link of the chain with state 'skipped', the
# precondition that did not hold and the run that decided it (null: nothing else ran).
APPEND_SKIPPED = (
    f"OPTIONAL MATCH (prev:{MIGRATION}) WITH prev ORDER BY prev.sequence DESC LIMIT 1 "
    f"CREATE (m:{MIGRATION} {{version: $version, description: $description, "
    "checksum: $checksum, author: $author, applied_at: $at, duration_ms: 0, "
    "applied_by: $applied_by, host: $host, run_id: $run_id, state: 'skipped', "
    "reason: $reason, sequence: coalesce(prev.sequence, 0) + 1}) "
    "FOREACH (p IN CASE WHEN prev IS NULL THEN [] ELSE [prev] END | "
    f"CREATE (p)-[:{MIGRATED_TO} {{at: $at}}]->(m)) "
    "RETURN m.sequence AS sequence"
)
# Every link of the chain, oldest first: `history` shows the applied and skipped ones; a
# version's latest link says whether it is skipped since.
LINKS = (
    f"MATCH (m:{MIGRATION}) "
    "RETURN m.version AS version, m.description AS description, m.checksum AS checksum, "
    "m.author AS author, m.applied_at AS applied_at, m.duration_ms AS duration_ms, "
    "m.applied_by AS applied_by, m.host AS host, m.run_id AS run_id, m.sequence AS sequence, "
    f"m.state AS state, m.reason AS reason, m.repeat_of AS repeat_of, {ADOPTION_FIELDS} "
    "ORDER BY m.sequence"
)
RUN_LINKS = (
    f"MATCH (m:{MIGRATION}) WHERE m.run_id = $run_id "
    "RETURN m.version AS version, m.state AS state, m.sequence AS sequence ORDER BY m.sequence"
)
CHAIN_SIZE = f"MATCH (m:{MIGRATION}) RETURN count(m) AS n"
# Migrations another tool applied, adopted as the whole chain at once (`import-chain`): only
# into an empty chain (checked again here, in the one transaction that writes them all), in
# the order of `sequence`, each linked to the one before as an upgrade links it.
ADOPT_CHAIN = (
    f"OPTIONAL MATCH (existing:{MIGRATION}) WITH count(existing) AS existing "
    "WHERE existing = 0 UNWIND $rows AS row "
    f"CREATE (m:{MIGRATION} {{version: row.version, description: row.description, "
    "checksum: row.checksum, author: row.author, applied_at: row.applied_at, "
    "duration_ms: row.duration_ms, applied_by: row.applied_by, host: row.host, "
    "state: 'applied', sequence: row.sequence, adopted_from: $tool, source: row.source, "
    "source_type: row.source_type, source_checksum: row.source_checksum, "
    "checksum_compared: row.checksum_compared, adopted_at: $at, adopted_by: $by}) "
    "WITH m ORDER BY m.sequence WITH collect(m) AS chain "
    "FOREACH (i IN range(1, size(chain) - 1) | FOREACH (p IN [chain[i - 1]] | "
    f"FOREACH (n IN [chain[i]] | CREATE (p)-[:{MIGRATED_TO} {{at: n.applied_at}}]->(n)))) "
    "RETURN size(chain) AS adopted"
)
SET_CHECKSUM = (
    f"MATCH (m:{MIGRATION} {{version: $version, state: 'applied'}}) "
    "SET m.checksum = $checksum, m.repaired_at = $at RETURN count(m) AS n"
)
CREATE_RUN = (
    f"CREATE (r:{RUN} {{id: $id, status: $status, migrations: $migrations, target: $target, "
    "created_at: $at, created_by: $by, host: $host, history: [$entry], plan: $plan}) "
    "WITH r UNWIND $steps AS s "
    f"CREATE (r)-[:{HAS_STEP}]->(:{STEP} {{id: s.id, run_id: $id, order: s.order, "
    "version: s.version, description: s.description, operation: s.operation, "
    "batched: s.batched, spec: s.spec, batch_size: s.batch_size, "
    "business_key: s.business_key, status: $status, "
    "planned: false, batches_total: 0, batches_done: 0, entities_total: 0, entities_done: 0}) "
    "RETURN count(*) AS steps"
)
# Writes that decide on a status read take the node's write lock first (a write), then read:
# Neo4j reads at read-committed, so a status read before the lock can be stale and two
# concurrent callers would both see the state they need.
TRANSITION = (
    f"MATCH (r:{RUN} {{id: $id}}) SET r.writes = coalesce(r.writes, 0) + 1 "
    "WITH r WHERE r.status IN $allowed_from "
    "SET r.status = $status, r.history = r.history + [$entry], "
    "r.error_log = coalesce($error, r.error_log), r.finished_at = $finished_at, "
    "r.backup_ref = coalesce($backup_ref, r.backup_ref) "
    "RETURN r.status AS status"
)
RUN_STATUS = f"MATCH (r:{RUN} {{id: $id}}) RETURN r.status AS status"
READ_RUN = (
    f"MATCH (r:{RUN} {{id: $id}}) "
    "RETURN r.id AS id, r.status AS status, r.migrations AS migrations, r.target AS target, "
    "r.created_at AS created_at, r.created_by AS created_by, r.host AS host, "
    "r.history AS history, r.error_log AS error_log, r.backup_ref AS backup_ref, "
    "r.counters AS counters, r.finished_at AS finished_at, r.plan AS plan, "
    "r.request AS request, r.request_by AS request_by, r.throttle AS throttle, "
    "r.throttled_s AS throttled_s, r.throttle_note AS throttle_note, r.tunes AS tunes, "
    "r.callback_notes AS callback_notes"
)
# An operator's request to a running run (pause, cancel): kept on the run until carried out
# or withdrawn; every batch reads it before it starts, with its own status, in one read.
SET_REQUEST = (
    f"MATCH (r:{RUN} {{id: $id}}) SET r.request = $request, r.request_by = $by, "
    "r.request_at = $at RETURN r.status AS status"
)
BATCH_AND_RUN = (
    f"OPTIONAL MATCH (b:{BATCH} {{id: $id}}) OPTIONAL MATCH (r:{RUN} {{id: $run_id}}) "
    "RETURN b.status AS batch, r.status AS run, r.request AS request, r.throttle AS throttle, "
    "r.latency_s AS latency_s"
)
# The run's throttle (JSON; kgmigrate.model.throttle), set or changed: the turns reserved
# under the old rate are forgotten (a slower rate's far-off turn must not hold a faster one),
# and so is the last latency (measured while no latency limit held, perhaps long ago).
SET_THROTTLE = (
    f"MATCH (r:{RUN} {{id: $id}}) SET r.throttle = $throttle, r.next_turn = null, "
    "r.latency_s = null RETURN r.status AS status"
)
# The next free start time under the run's rate (seconds since the epoch), taken for one batch:
# the run's write lock first, then the read (see TRANSITION), so two workers never share one.
RESERVE_TURN = (
    f"MATCH (r:{RUN} {{id: $id}}) SET r.turns = coalesce(r.turns, 0) + 1 "
    "WITH r, CASE WHEN coalesce(r.next_turn, 0.0) > $now THEN r.next_turn ELSE $now END AS turn "
    "SET r.next_turn = turn + $gap RETURN turn"
)
NOTE_THROTTLED = (
    f"MATCH (r:{RUN} {{id: $id}}) SET r.throttle_note = $note, "
    "r.throttled_s = coalesce(r.throttled_s, 0.0) + $seconds RETURN r.id AS id"
)
# A critical limit stops the run once: the first batch to see it claims the stop (the run's
# write lock first, then the read) and fails; the others return without starting.
CLAIM_STOP = (
    f"MATCH (r:{RUN} {{id: $id}}) SET r.stop_writes = coalesce(r.stop_writes, 0) + 1 "
    "WITH r, r.stopped_by_throttle IS NULL AS first "
    "SET r.stopped_by_throttle = coalesce(r.stopped_by_throttle, $reason) RETURN first"
)
NOTE_LATENCY = f"MATCH (r:{RUN} {{id: $id}}) SET r.latency_s = $seconds RETURN r.id AS id"
# A run continued after a pause, crash or failure: what its throttle measured before says
# nothing of the graph now (latency and turns start afresh), and its afterMigrate callbacks
# run again when it ends.
RESET_ON_RESUME = (
    f"MATCH (r:{RUN} {{id: $id}}) SET r.latency_s = null, r.next_turn = null, "
    "r.throttle_note = null, r.stopped_by_throttle = null, r.after_migrate_ran = null "
    "RETURN r.id AS id"
)
# The afterMigrate callbacks of an upgrade run (JSON; kgmigrate.model.callbacks), kept on it
# so that the worker that ends it runs them without the migrations directory.
SET_AFTER_MIGRATE = f"MATCH (r:{RUN} {{id: $id}}) SET r.after_migrate = $scripts RETURN r.id AS id"
# The first of the deliveries that end a run claims its afterMigrate callbacks (the write
# first: on Neo4j it takes the run's lock before the read). At most once: a worker that dies
# between the claim and the callbacks leaves them not run (the run's notes say nothing).
CLAIM_AFTER_MIGRATE = (
    f"MATCH (r:{RUN} {{id: $id}}) WHERE r.after_migrate IS NOT NULL "
    "SET r.callback_writes = coalesce(r.callback_writes, 0) + 1 "
    "WITH r, r.after_migrate_ran IS NULL AS first "
    "SET r.after_migrate_ran = coalesce(r.after_migrate_ran, $at) "
    "RETURN first, r.after_migrate AS scripts"
)
NOTE_CALLBACK = (
    f"MATCH (r:{RUN} {{id: $id}}) "
    "SET r.callback_notes = coalesce(r.callback_notes, []) + [$entry] "
    "RETURN r.id AS id"
)
STEP_FIELDS = (
    "RETURN s.id AS id, s.run_id AS run_id, s.order AS order, s.version AS version, "
    "s.description AS description, s.operation AS operation, s.batched AS batched, "
    "s.status AS status, s.batches_total AS batches_total, s.batches_done AS batches_done, "
    "s.entities_total AS entities_total, s.entities_done AS entities_done, "
    "s.counters AS counters, s.started_at AS started_at, s.finished_at AS finished_at, "
    "s.spec AS spec, s.batch_size AS batch_size, s.planned AS planned, "
    "s.batch_seconds AS batch_seconds, s.validation AS validation, s.error AS error, "
    "s.business_key AS business_key"
)
READ_STEPS = f"MATCH (s:{STEP} {{run_id: $id}}) {STEP_FIELDS} ORDER BY s.order"
READ_STEP = f"MATCH (s:{STEP} {{id: $id}}) {STEP_FIELDS}"
CREATE_BATCHES = (
    "UNWIND $batches AS row "
    f"MERGE (b:{BATCH} {{id: row.id}}) "
    "ON CREATE SET b.run_id = $run_id, b.step_id = $step_id, b.seq = row.seq, "
    "b.address = row.address, b.status = $status, b.tune = $tune, b.attempts = 0, "
    "b.entities = 0 "
    "RETURN count(b) AS n"
)
# A retune (kgmigrate.engine.retune) cuts a paused step's batches not yet started anew: the new
# ones are written `staged` (no launch sees them), then one statement swaps them in. It takes
# the run's write lock, then the old batches', and writes nothing unless the run is still
# paused (no row: a resume started it meanwhile), and refuses (1/0) unless every old batch is
# still pending (one committed meanwhile, a stale delivery: its keys would be in two batches)
# and every staged one is there (another retune dropped them). The old ones stay,
# `superseded`, for the audit: a late delivery of one skips it.
SWAP_BATCHES = (
    f"MATCH (r:{RUN} {{id: $run_id}}) SET r.tune_writes = coalesce(r.tune_writes, 0) + 1 "
    "WITH r WHERE r.status = 'paused' "
    f"UNWIND $old AS id MATCH (b:{BATCH} {{id: id}}) "
    "SET b.tune_writes = coalesce(b.tune_writes, 0) + 1 "
    "WITH r, collect(b) AS olds "  # grouped by the run: no row when it is not paused
    "WITH r, olds, size([o IN olds WHERE o.status IN ['pending', 'failed']]) AS still "
    f"OPTIONAL MATCH (n:{BATCH} {{step_id: $step_id}}) WHERE n.status = 'staged' "
    "AND n.tune = $tune "
    "WITH r, olds, still, collect(n) AS news "
    "WITH olds, news, 1 / (CASE WHEN still = size($old) AND size(news) = $staged "
    "THEN 1 ELSE 0 END) AS ok "
    "FOREACH (o IN olds | SET o.status = 'superseded', o.superseded_by = $tune) "
    "FOREACH (n IN news | SET n.status = 'pending') "
    f"WITH size(news) AS staged MATCH (s:{STEP} {{id: $step_id}}) "
    "SET s.batches_total = s.batches_done + staged, s.batch_size = $size "
    "RETURN staged"
)
DROP_STAGED = (
    f"MATCH (b:{BATCH} {{step_id: $step_id}}) WHERE b.status = 'staged' DETACH DELETE b "
    "RETURN count(*) AS n"
)
MAX_SEQ = f"MATCH (b:{BATCH} {{step_id: $step_id}}) RETURN max(b.seq) AS seq"
# Steps not planned yet are cut at the new size when they start.
RESIZE_LATER_STEPS = (
    f"MATCH (s:{STEP} {{run_id: $run_id}}) WHERE s.order >= $order AND NOT s.planned "
    "SET s.batch_size = $size RETURN count(s) AS n"
)
NOTE_TUNE = (
    f"MATCH (r:{RUN} {{id: $id}}) SET r.tunes = coalesce(r.tunes, []) + [$entry] "
    "RETURN r.id AS id"
)
# Batches a retune swapped out or has not swapped in yet are not the step's batches.
NOT_LIVE = "['staged', 'superseded']"
MARK_PLANNED = (
    f"MATCH (s:{STEP} {{id: $id}}) SET s.planned = true, s.batches_total = $batches, "
    "s.entities_total = $entities RETURN s.id AS id"
)
PENDING_BATCHES = (
    f"MATCH (b:{BATCH} {{step_id: $step_id}}) "
    "WHERE NOT b.status IN ['completed', 'staged', 'superseded'] "
    "RETURN b.id AS id, b.seq AS seq, b.address AS address ORDER BY b.seq"
)
BATCH_STATUS = f"MATCH (b:{BATCH} {{id: $id}}) RETURN b.status AS status"
BATCH_ADDRESS = f"MATCH (b:{BATCH} {{id: $id}}) RETURN b.address AS address"
NOTE_RETRY = (f"MATCH (b:{BATCH} {{id: $id}}) SET b.retries = coalesce(b.retries, 0) + $n "
              "RETURN b.retries AS retries")
NOTE_OUTCOME = (f"MATCH (b:{BATCH} {{id: $id}}) SET b.counters = $counters, b.seconds = $seconds, "
                "b.throttled_s = $throttled_s RETURN b.id AS id")
# The run's watch (kgmigrate.engine.watch): one chain of checks per run. A check moves the mark
# on only from the one it carries, after the run's write lock is taken (read-committed Neo4j
# would otherwise let two deliveries of one check both read the old mark): a superseded chain
# (a newer start or rollback began one) or a second delivery of a check stops.
ADVANCE_WATCH = (
    f"MATCH (r:{RUN} {{id: $id}}) SET r.watch_writes = coalesce(r.watch_writes, 0) + 1 "
    "WITH r WHERE coalesce(r.watch, '') = $expected SET r.watch = $next RETURN r.watch AS watch"
)
BEGIN_WATCH = f"MATCH (r:{RUN} {{id: $id}}) SET r.watch = $next RETURN r.watch AS watch"
# What moves while a run makes progress: its batches' and restores' records, by status.
BATCH_TALLY = (
    f"MATCH (b:{BATCH}) WHERE b.step_id IN $step_ids "
    "RETURN b.step_id AS step_id, b.status AS status, count(*) AS n ORDER BY step_id, status"
)
# A rollback's progress: per step, its restore records of a first pass and of a forced one
RESTORE_TALLY = (
    f"MATCH (b:{BATCH}) WHERE b.step_id IN $step_ids "
    "RETURN b.step_id AS step_id, b.id ENDS WITH ':forced' AS forced, count(*) AS batches, "
    "sum(coalesce(b.restored, 0)) AS restored, sum(coalesce(b.conflicts, 0)) AS conflicts, "
    "max(b.finished_at) AS last_at ORDER BY step_id, forced"
)
UPDATE_STEP = (
    f"MATCH (s:{STEP} {{id: $id}}) "
    "SET s.status = coalesce($status, s.status), "
    "s.batches_total = coalesce($batches_total, s.batches_total), "
    "s.batches_done = coalesce($batches_done, s.batches_done), "
    "s.entities_total = coalesce($entities_total, s.entities_total), "
    "s.entities_done = coalesce($entities_done, s.entities_done), "
    "s.counters = coalesce($counters, s.counters), "
    "s.started_at = coalesce($started_at, s.started_at), "
    "s.finished_at = coalesce($finished_at, s.finished_at), "
    "s.batch_seconds = coalesce($batch_seconds, s.batch_seconds), "
    "s.validation = coalesce($validation, s.validation), s.error = coalesce($error, s.error) "
    "RETURN s.id AS id"
)
UPDATE_RUN_FACTS = (
    f"MATCH (r:{RUN} {{id: $id}}) "
    "SET r.counters = coalesce($counters, r.counters), "
    "r.backup_ref = coalesce($backup_ref, r.backup_ref) "
    "RETURN r.id AS id"
)
RUNS_IN = f"MATCH (r:{RUN}) WHERE r.status IN $statuses RETURN r.id AS id, r.status AS status"
ENDED_BY = (
    f"MATCH (r:{RUN}) WHERE r.status IN $statuses AND r.finished_at <= $cutoff "
    "RETURN r.id AS id, r.status AS status, r.finished_at AS finished_at ORDER BY r.finished_at"
)
LATEST_RUNS = (
    f"MATCH (r:{RUN}) RETURN r.id AS id ORDER BY r.created_at DESC, r.id DESC LIMIT $limit"
)
# A batch's failure, recorded by its worker: never over a batch another delivery committed
# or a retune superseded (its keys would then count as pending again). The lock first.
UPSERT_BATCH = (
    f"MERGE (b:{BATCH} {{id: $id}}) SET b.attempts = coalesce(b.attempts, 0) "
    "WITH b WHERE NOT coalesce(b.status IN ['completed', 'superseded'], false) "
    "SET b.run_id = $run_id, b.step_id = $step_id, b.seq = $seq, b.status = $status, "
    "b.attempts = $attempts, b.worker = $worker, b.entities = $entities, "
    "b.counters = $counters, b.error = $error, b.started_at = $started_at, "
    "b.finished_at = $finished_at, b.failing = $failing, b.checked = $checked, "
    "b.offending = $offending "
    "RETURN b.id AS id"
)
BATCH_FIELDS = (
    "RETURN b.id AS id, b.run_id AS run_id, b.step_id AS step_id, b.seq AS seq, "
    "b.status AS status, b.attempts AS attempts, b.worker AS worker, b.entities AS entities, "
    "b.counters AS counters, b.error AS error, b.started_at AS started_at, "
    "b.finished_at AS finished_at, b.undo AS undo, b.retries AS retries, "
    "b.failing AS failing, b.checked AS checked, b.offending AS offending, "
    "b.seconds AS seconds, b.throttled_s AS throttled_s ORDER BY b.seq"
)
READ_BATCHES = (f"MATCH (b:{BATCH} {{step_id: $step_id}}) WHERE NOT b.status IN {NOT_LIVE} "
                f"{BATCH_FIELDS}")
FAILED_BATCHES = (f"MATCH (b:{BATCH} {{step_id: $step_id}}) WHERE b.status = 'failed' "
                  f"{BATCH_FIELDS}")
MARK_RESTORED = (
    f"MERGE (b:{BATCH} {{id: $id}}) SET b.status = 'completed', b.kind = 'restore', "
    "b.run_id = $run_id, b.step_id = $step_id, b.restored = 1, b.conflicts = 0, "
    "b.finished_at = $at RETURN b.id AS id"
)
COMPLETE_STATEMENT = (
    f"MERGE (b:{BATCH} {{id: $id}}) SET b.attempts = coalesce(b.attempts, 0) + 1 "
    "WITH b, coalesce(b.status = 'completed', false) AS dup "
    "SET b.status = 'completed', b.run_id = $run_id, b.step_id = $step_id, b.seq = 1, "
    "b.worker = $worker, b.counters = $counters, b.finished_at = $at "
    f"WITH dup MATCH (st:{STEP} {{id: $step_id}}) "
    "SET st.batches_done = st.batches_done + CASE WHEN dup THEN 0 ELSE 1 END RETURN dup"
)
READ_RESTORES = (
    f"MATCH (b:{BATCH} {{step_id: $step_id}}) "
    "RETURN b.id AS id, b.restored AS restored, b.conflicts AS conflicts, "
    "b.missing AS missing, b.finished_at AS finished_at ORDER BY b.id"
)
RECORD_DOWNGRADED = (
    f"MATCH (m:{MIGRATION} {{version: $version, state: 'applied'}}) "
    "SET m.state = 'downgraded', m.downgraded_by = $run_id, m.downgraded_at = $at "
    f"WITH count(m) AS n MATCH (prev:{MIGRATION}) "
    "WITH n, prev ORDER BY prev.sequence DESC LIMIT 1 "
    f"CREATE (prev)-[:{MIGRATED_TO} {{at: $at}}]->(d:{MIGRATION} {{version: $version, "
    "description: $description, checksum: $checksum, author: $author, applied_at: $at, "
    "duration_ms: $duration_ms, applied_by: $applied_by, host: $host, run_id: $run_id, "
    "state: 'downgrade', sequence: prev.sequence + 1}) "
    "RETURN n, d.sequence AS sequence"
)
# A repeatable migration applied again (its file changed): its applied link becomes
# 'repeated' and a new applied link is appended, so a version has one applied link at most.
# The new link keeps the place of the first application (`first_sequence`): the applied
# migrations stay in the order they were first applied (a downgrade undoes in that order).
# Written first, then checked (on Neo4j the write takes the link's lock): a second delivery
# of the same decision finds the link repeated by its own run, and writes nothing more.
APPEND_REPEATED = (
    f"MATCH (old:{MIGRATION} {{version: $version, state: 'applied'}}) "
    "SET old.repeat_writes = coalesce(old.repeat_writes, 0) + 1 "
    "WITH old WHERE old.state = 'applied' AND coalesce(old.run_id, '') <> $run_id "
    "SET old.state = 'repeated', old.repeated_by = $run_id, old.repeated_at = $applied_at "
    f"WITH old MATCH (prev:{MIGRATION}) WITH old, prev ORDER BY prev.sequence DESC LIMIT 1 "
    f"CREATE (prev)-[:{MIGRATED_TO} {{at: $applied_at}}]->(m:{MIGRATION} {{version: $version, "
    "description: $description, checksum: $checksum, author: $author, "
    "applied_at: $applied_at, duration_ms: $duration_ms, applied_by: $applied_by, host: $host, "
    "run_id: $run_id, state: 'applied', repeat_of: old.sequence, "
    "first_sequence: coalesce(old.first_sequence, old.sequence), "
    "sequence: prev.sequence + 1}) "
    "RETURN m.sequence AS sequence"
)
# A rolled-back run that ran (some of) a repeatable migration's steps again: its rollback
# ran their undo (a `.cypher` file's down section undoes the whole file), so the earlier
# application is not in force either: 'undone', and the next upgrade applies the file afresh.
UNDO_REPEATED = (
    f"MATCH (m:{MIGRATION}) WHERE m.version IN $versions AND (m.state = 'applied' OR "
    "(m.state = 'repeated' AND m.repeated_by = $run_id)) "
    "SET m.state = 'undone', m.undone_by = $run_id, m.undone_at = $at "
    "RETURN m.version AS version"
)
UNDO_DOWNGRADES = (
    f"MATCH (m:{MIGRATION} {{state: 'downgraded'}}) WHERE m.downgraded_by = $run_id "
    "SET m.state = 'applied', m.downgraded_by = null, m.downgraded_at = null "
    "RETURN m.version AS version"
)
MARK_CHAIN = (
    f"MATCH (m:{MIGRATION} {{state: 'applied'}}) WHERE m.run_id = $run_id "
    "SET m.state = $state, m.reverted_at = $at, m.reverted_by = $by RETURN m.version AS version"
)
# `kgmigrate revert`: the one way out of COMPLETED (never a failure's automatic rollback,
# which transitions through the status table, where COMPLETED is final).
BEGIN_REVERT = (
    f"MATCH (r:{RUN} {{id: $id}}) SET r.writes = coalesce(r.writes, 0) + 1 "
    "WITH r WHERE r.status = 'completed' "
    "SET r.status = 'rolling_back', r.history = r.history + [$entry], r.finished_at = null "
    "RETURN r.status AS status"
)
# A reverted run's migration is recorded as a downgrade: its applied link `downgraded`, and
# a `downgrade` link appended (by the reverted run). Written first, then checked, as
# APPEND_REPEATED: a second delivery of the rollback's end appends nothing more.
RECORD_REVERTED = (
    f"MATCH (m:{MIGRATION} {{version: $version, state: 'applied'}}) WHERE m.run_id = $run_id "
    "SET m.revert_writes = coalesce(m.revert_writes, 0) + 1 "
    "WITH m WHERE m.state = 'applied' "
    "SET m.state = 'downgraded', m.downgraded_by = $run_id, m.downgraded_at = $at "
    f"WITH m MATCH (prev:{MIGRATION}) WITH m, prev ORDER BY prev.sequence DESC LIMIT 1 "
    f"CREATE (prev)-[:{MIGRATED_TO} {{at: $at}}]->(d:{MIGRATION} {{version: m.version, "
    "description: m.description, checksum: m.checksum, author: m.author, applied_at: $at, "
    "duration_ms: $duration_ms, applied_by: $applied_by, host: $host, run_id: $run_id, "
    "state: 'downgrade', reverted: true, sequence: prev.sequence + 1}) "
    "RETURN d.sequence AS sequence"
)
MARK_DOWNGRADE_EVENTS = (
    f"MATCH (m:{MIGRATION} {{state: 'downgrade'}}) WHERE m.run_id = $run_id "
    "SET m.state = $state, m.reverted_at = $at, m.reverted_by = $by RETURN m.version AS version"
)


class RunGate(NamedTuple):
    """What a batch reads before it starts: its own status, its run's, the operator's request
    to the run, and the run's throttle with the last batch's latency."""

    batch: str | None
    run: str | None
    request: str | None
    throttle: Throttle
    latency_s: float | None

    @property
    def holds(self) -> bool:
        """The batch must not start: another delivery committed it (or a retune superseded
        it), or its run is paused or asked to pause or cancel."""
        return self.done or self.request is not None or self.run == MigrationStatus.PAUSED

    @property
    def done(self) -> bool:
        return self.batch in ("completed", "superseded")


class RestoreTally(NamedTuple):
    """A step's restore records of one rollback pass (`forced` or a first pass)."""

    step_id: str
    forced: bool
    batches: int
    restored: int
    conflicts: int
    last_at: datetime | None


def read_throttle(text: str | None) -> Throttle:
    return Throttle.model_validate_json(text) if text else Throttle()


class Ledger:
    """Reads and writes the `__KGM*` bookkeeping. Creates its indexes on first use."""

    def __init__(self, backend: GraphBackend) -> None:
        self.backend = backend
        self._schema_ready = False

    def ensure_schema(self) -> None:
        if not self._schema_ready:
            for spec in SCHEMA:
                self.backend.ensure_index(spec)
            self._schema_ready = True

    # -- the applied chain ----------------------------------------------------------------

    def applied(self) -> list[AppliedMigration]:
        return [_link(r) for r in self.backend.read(APPLIED).records]

    def record_applied(self, meta: MigrationMetadata, *, run_id: str, duration_ms: int,
                       applied_by: str | None = None, repeat: bool = False
                       ) -> AppliedMigration | None:
        """A migration becomes the chain's latest link; `repeat`: a repeatable one applied
        again, its earlier link kept as 'repeated'."""
        self.ensure_schema()
        params = {
            "version": meta.version, "description": meta.description, "checksum": meta.checksum,
            "author": meta.created_by, "applied_at": _iso(utc_now()), "duration_ms": duration_ms,
            "applied_by": applied_by or default_holder(), "host": socket.gethostname(),
            "run_id": run_id,
        }
        rows = self.backend.write(APPEND_REPEATED if repeat else APPEND_APPLIED, params).records
        if not rows and repeat:  # recorded by an earlier delivery of this run's decision
            return None
        if not rows:
            raise KgmError(f"migration {meta.version} is already applied")
        return AppliedMigration(**{**params, "sequence": rows[0]["sequence"]})

    def history(self) -> list[AppliedMigration]:
        """The chain's applied and skipped links, oldest first, and the applications of a
        repeatable migration that a later one repeated or a rollback undid."""
        return [_link(r) for r in self.backend.read(LINKS).records
                if r["state"] in ("applied", "skipped", "repeated", "undone")]

    def run_links(self, run_id: str) -> list[tuple[str, str, int]]:
        """(version, state, sequence) of the chain's links a run wrote, in chain order."""
        return [(r["version"], r["state"], int(r["sequence"]))
                for r in self.backend.read(RUN_LINKS, {"run_id": run_id}).records]

    def skipped(self) -> dict[str, AppliedMigration]:
        """The migrations an `assume` precondition skipped and that were not applied since:
        those whose latest link is the skip, by version."""
        latest = {r["version"]: r for r in self.backend.read(LINKS).records}
        return {version: _link(r) for version, r in latest.items() if r["state"] == "skipped"}

    def record_skipped(self, meta: MigrationMetadata, *, reason: str, run_id: str | None,
                       skipped_by: str | None = None) -> AppliedMigration:
        """A skipped migration becomes a link of the chain (call with the lock held)."""
        self.ensure_schema()
        params = {
            "version": meta.version, "description": meta.description, "checksum": meta.checksum,
            "author": meta.created_by, "at": _iso(utc_now()),
            "applied_by": skipped_by or default_holder(), "host": socket.gethostname(),
            "run_id": run_id, "reason": reason,
        }
        sequence = self.backend.write(APPEND_SKIPPED, params).value("sequence")
        return AppliedMigration(**{**params, "applied_at": params["at"], "duration_ms": 0,
                                   "sequence": sequence, "state": "skipped"})

    def entries(self) -> int:
        """How many links the chain has, whatever their state (applied, skipped, downgraded,
        rolled back)."""
        return int(self.backend.read(CHAIN_SIZE).value("n"))

    def adopt(self, migrations: Sequence[tuple[MigrationMetadata, AdoptedMigration]], *,
              tool: str, adopted_by: str | None = None) -> list[AppliedMigration]:
        """Record migrations another tool applied as kgmigrate's applied chain, in the given
        order, in one transaction (call with the lock held); refused when the chain is not
        empty. Each keeps that tool's time, duration and user, and where it comes from; its
        checksum is kgmigrate's, of the file (`validate` and `list` compare that one)."""
        if not migrations:
            raise KgmError("nothing to adopt")
        self.ensure_schema()
        by, at = adopted_by or default_holder(), _iso(utc_now())
        rows = [{"version": meta.version, "description": meta.description,
                 "checksum": meta.checksum, "author": meta.created_by,
                 "applied_at": _iso(found.applied_at), "duration_ms": found.duration_ms,
                 "applied_by": found.applied_by, "host": "unknown", "sequence": sequence,
                 "source": found.source, "source_type": found.type,
                 "source_checksum": found.checksum, "checksum_compared": found.checksum_compared}
                for sequence, (meta, found) in enumerate(migrations, start=1)]
        adopted = self.backend.write(ADOPT_CHAIN, {"rows": rows, "tool": tool, "at": at,
                                                   "by": by}).value("adopted")
        if adopted != len(rows):
            raise KgmError(f"kgmigrate's chain is no longer empty ({self.entries()} entries): "
                           "another process recorded migrations meanwhile; nothing adopted")
        return self.applied()

    def set_checksum(self, version: str, checksum: str) -> bool:
        rows = self.backend.write(SET_CHECKSUM, {"version": version, "checksum": checksum,
                                                 "at": _iso(utc_now())})
        return bool(rows.value("n"))

    # -- runs -----------------------------------------------------------------------------

    def create_run(self, migrations: Sequence[MigrationMetadata], *, target: str | None = None,
                   created_by: str | None = None, run_id: str | None = None) -> RunRecord:
        """A PENDING run with one step node per step of each migration, in order. The run
        keeps each migration's metadata, so the chain can be written when it completes."""
        if not migrations:
            raise KgmError("a run needs at least one migration")
        self.ensure_schema()
        run_id, now = run_id or new_id("run"), utc_now()
        steps = [{"id": new_id("step"), "order": order, "version": meta.version,
                  "description": step.description, "operation": step.operation,
                  "batched": step.batched, "spec": json.dumps(step.spec, sort_keys=True),
                  "batch_size": meta.batch_size, "business_key": step.business_key}
                 for order, (meta, step) in enumerate(
                     ((m, s) for m in migrations for s in m.steps), start=1)]
        plan = [m.model_dump_json(exclude={"steps"}) for m in migrations]
        self.backend.write(CREATE_RUN, {
            "id": run_id, "status": MigrationStatus.PENDING.value,
            "migrations": [m.version for m in migrations], "target": target, "at": _iso(now),
            "by": created_by or default_holder(), "host": socket.gethostname(),
            "entry": _entry(MigrationStatus.PENDING, now), "steps": steps, "plan": plan,
        })
        run = self.run(run_id)
        assert run is not None
        return run

    def transition(self, run_id: str, status: MigrationStatus, *,
                   error: str | None = None, backup_ref: str | None = None) -> RunRecord:
        """Move a run to `status` if its current status allows it, atomically (with the backup
        that protects it, when given: only the delivery that starts the run records its own)."""
        allowed_from = [s.value for s, targets in ALLOWED.items() if status in targets]
        now = utc_now()
        rows = self.backend.write(TRANSITION, {
            "id": run_id, "allowed_from": allowed_from, "status": status.value,
            "entry": _entry(status, now), "error": error, "backup_ref": backup_ref,
            "finished_at": _iso(now) if status.is_final else None,
        }).records
        if not rows:
            current = self.backend.read(RUN_STATUS, {"id": run_id}).records
            if not current:
                raise KgmError(f"no run {run_id}")
            raise StatusTransitionError(
                f"run {run_id} is {current[0]['status']} and cannot become {status}")
        run = self.run(run_id)
        assert run is not None
        return run

    def update_step(self, step_id: str, *, status: MigrationStatus | None = None,
                    batches_total: int | None = None, batches_done: int | None = None,
                    entities_total: int | None = None, entities_done: int | None = None,
                    counters: dict[str, int] | None = None, started_at: datetime | None = None,
                    finished_at: datetime | None = None,
                    batch_seconds: list[float] | None = None,
                    validation: Literal["passed", "failed"] | None = None,
                    error: str | None = None) -> None:
        """Set the given facts of a step; what is not given stays as it is."""
        rows = self.backend.write(UPDATE_STEP, {
            "id": step_id, "status": status.value if status else None,
            "batches_total": batches_total, "batches_done": batches_done,
            "entities_total": entities_total, "entities_done": entities_done,
            "counters": json.dumps(counters, sort_keys=True) if counters is not None else None,
            "started_at": _iso(started_at) if started_at else None,
            "finished_at": _iso(finished_at) if finished_at else None,
            "batch_seconds": batch_seconds, "validation": validation,
            "error": error[:4000] if error else None,
        }).records
        if not rows:
            raise KgmError(f"no step {step_id}")

    def update_run_facts(self, run_id: str, *, counters: dict[str, int] | None = None,
                         backup_ref: str | None = None) -> None:
        """Record a run's totals and the backup that protects it."""
        rows = self.backend.write(UPDATE_RUN_FACTS, {
            "id": run_id, "backup_ref": backup_ref,
            "counters": json.dumps(counters, sort_keys=True) if counters is not None else None,
        }).records
        if not rows:
            raise KgmError(f"no run {run_id}")

    def run(self, run_id: str) -> RunRecord | None:
        rows = self.backend.read(READ_RUN, {"id": run_id}).records
        if not rows:
            return None
        steps = [_step(r) for r in self.backend.read(READ_STEPS, {"id": run_id}).records]
        run = {**rows[0], "counters": json.loads(rows[0]["counters"] or "{}"),
               "plan": [json.loads(p) for p in rows[0]["plan"] or []],
               "throttle": read_throttle(rows[0]["throttle"]) if rows[0]["throttle"] else None}
        return RunRecord(**_present(run), steps=steps)

    def require_run(self, run_id: str) -> RunRecord:
        """The run, for control code that was handed its id (a missing run is a bug there)."""
        run = self.run(run_id)
        if run is None:
            raise LookupError(f"no run {run_id}")
        return run

    def step(self, step_id: str) -> StepRecord:
        rows = self.backend.read(READ_STEP, {"id": step_id}).records
        if not rows:
            raise KgmError(f"no step {step_id}")
        return _step(rows[0])

    def runs_in(self, statuses: Sequence[MigrationStatus]) -> list[tuple[str, MigrationStatus]]:
        rows = self.backend.read(RUNS_IN, {"statuses": [s.value for s in statuses]}).records
        return [(r["id"], MigrationStatus(r["status"])) for r in rows]

    def ended_by(self, statuses: Sequence[MigrationStatus], cutoff: datetime
                 ) -> list[tuple[str, MigrationStatus, datetime]]:
        """Runs in `statuses` that ended at `cutoff` or earlier, oldest first (one query: the
        retention asks this after every run)."""
        rows = self.backend.read(ENDED_BY, {"statuses": [s.value for s in statuses],
                                            "cutoff": _iso(cutoff)}).records
        return [(r["id"], MigrationStatus(r["status"]), datetime.fromisoformat(r["finished_at"]))
                for r in rows]

    def runs(self, limit: int = 20) -> list[RunRecord]:
        ids = [r["id"] for r in self.backend.read(LATEST_RUNS, {"limit": limit}).records]
        return [run for run_id in ids if (run := self.run(run_id)) is not None]

    # -- batches --------------------------------------------------------------------------

    def create_batches(self, run_id: str, step_id: str, batches: Sequence[PlannedBatch], *,
                       staged_by: str | None = None) -> None:
        """Record planned batches (id, seq, address) as pending, or as staged for the retune
        `staged_by` (see SWAP_BATCHES); idempotent by id."""
        rows = [{"id": bid, "seq": seq, "address": json.dumps(address)}
                for bid, seq, address in batches]
        self.backend.write(CREATE_BATCHES, {
            "run_id": run_id, "step_id": step_id, "batches": rows, "tune": staged_by,
            "status": "pending" if staged_by is None else "staged"})

    def drop_staged(self, step_id: str) -> int:
        """Forget the batches a retune staged and did not swap in (it stopped half way)."""
        return int(self.backend.write(DROP_STAGED, {"step_id": step_id}).value("n") or 0)

    def max_seq(self, step_id: str) -> int:
        return int(self.backend.read(MAX_SEQ, {"step_id": step_id}).value("seq") or 0)

    def swap_batches(self, run_id: str, step_id: str, old: Sequence[str], tune: str,
                     staged: int, batch_size: int) -> bool:
        """Swap the `staged` batches `tune` staged in for the `old` ones (superseded), and
        make the step's size `batch_size`, in one statement. False when the run is no longer
        paused; a BackendError (`is_repeat`) when an old batch is no longer pending or a
        staged one is gone. Either way nothing was changed."""
        return bool(self.backend.write(SWAP_BATCHES, {
            "run_id": run_id, "old": list(old), "step_id": step_id, "tune": tune,
            "staged": staged, "size": batch_size}).records)

    def resize_later_steps(self, run_id: str, from_order: int, batch_size: int) -> int:
        """Steps from `from_order` on that are not planned yet: cut at `batch_size`."""
        return int(self.backend.write(RESIZE_LATER_STEPS, {
            "run_id": run_id, "order": from_order, "size": batch_size}).value("n") or 0)

    def note_tune(self, run_id: str, entry: str) -> None:
        self.backend.write(NOTE_TUNE, {"id": run_id, "entry": entry})

    def mark_planned(self, step_id: str, *, batches: int, entities: int) -> None:
        self.backend.write(MARK_PLANNED, {"id": step_id, "batches": batches,
                                          "entities": entities})

    def pending_batches(self, step_id: str) -> list[PlannedBatch]:
        """Batches of a step not yet committed: what a (re)launch must enqueue."""
        return [PlannedBatch(r["id"], r["seq"], json.loads(r["address"]))
                for r in self.backend.read(PENDING_BATCHES, {"step_id": step_id}).records]

    def note_retry(self, batch_id: str, count: int = 1) -> None:
        """More attempts at a batch, for the metrics: a task's retry after a transient error,
        a redelivery after a worker died, or the driver's own retries of its transaction."""
        self.backend.write(NOTE_RETRY, {"id": batch_id, "n": count})

    def note_outcome(self, batch_id: str, counters: dict[str, int], seconds: float,
                     throttled_s: float | None = None) -> None:
        """A committed batch's counters and time, as its worker saw them: the step's totals
        are added up from here, not from whichever delivery's results reach the callback
        first (a duplicate of a batch reports it skipped, with nothing). `throttled_s`: how
        long it waited for its run's throttle before it started."""
        self.backend.write(NOTE_OUTCOME, {"id": batch_id, "seconds": seconds,
                                          "counters": json.dumps(counters, sort_keys=True),
                                          "throttled_s": throttled_s})

    def begin_watch(self, run_id: str, mark: str) -> None:
        """The run's watch is now the chain that carries `mark`; any other chain stops."""
        self.backend.write(BEGIN_WATCH, {"id": run_id, "next": mark})

    def advance_watch(self, run_id: str, expected: str, mark: str) -> bool:
        """Move the run's watch from `expected` to `mark`; False when it is not at `expected`
        (another chain took over, or another delivery of this check moved it first)."""
        return bool(self.backend.write(ADVANCE_WATCH, {"id": run_id, "expected": expected,
                                                       "next": mark}).records)

    def batch_tally(self, step_ids: list[str]) -> list[tuple[str, str, int]]:
        """(step id, status, count) of the batch and restore records of these steps."""
        rows = self.backend.read(BATCH_TALLY, {"step_ids": step_ids}).records
        return [(str(r["step_id"]), str(r["status"]), int(r["n"])) for r in rows]

    def restore_tally(self, step_ids: list[str]) -> list[RestoreTally]:
        """What rollbacks of these (forward) steps restored so far, per step and pass."""
        rows = self.backend.read(RESTORE_TALLY, {
            "step_ids": [restore_step_id(s) for s in step_ids]}).records
        return [RestoreTally(step_id=str(r["step_id"]).removeprefix(RESTORE_PREFIX),
                             forced=bool(r["forced"]), batches=int(r["batches"]),
                             restored=int(r["restored"]), conflicts=int(r["conflicts"]),
                             last_at=datetime.fromisoformat(r["last_at"]) if r["last_at"]
                             else None)
                for r in rows]

    def set_request(self, run_id: str, request: str | None, by: str | None) -> str | None:
        """Ask the run to pause or cancel (`request`), or withdraw what was asked (None). The
        run's status as it was written, None when there is no such run."""
        rows = self.backend.write(SET_REQUEST, {"id": run_id, "request": request, "by": by,
                                                "at": _iso(utc_now())}).records
        return str(rows[0]["status"]) if rows else None

    def batch_and_run(self, batch_id: str, run_id: str) -> "RunGate":
        """What a batch checks before it starts, in one read."""
        rows = self.backend.read(BATCH_AND_RUN, {"id": batch_id, "run_id": run_id}).records
        row = rows[0] if rows else {}
        return RunGate(batch=row.get("batch"), run=row.get("run"), request=row.get("request"),
                       throttle=read_throttle(row.get("throttle")),
                       latency_s=row.get("latency_s"))

    def set_throttle(self, run_id: str, throttle: Throttle) -> str | None:
        """Set the run's throttle (an empty one lifts it); the run's status as it was written,
        None when there is no such run."""
        rows = self.backend.write(SET_THROTTLE, {
            "id": run_id, "throttle": None if throttle.is_empty else throttle.model_dump_json(
                exclude_none=True)}).records
        return str(rows[0]["status"]) if rows else None

    def reserve_turn(self, run_id: str, gap_s: float, now: float) -> float:
        """The start time (time.time()) of the run's next free turn, taken; the one after it
        is `gap_s` later."""
        return float(self.backend.write(RESERVE_TURN, {"id": run_id, "gap": gap_s,
                                                       "now": now}).value("turn"))

    def note_throttled(self, run_id: str, note: str | None, seconds: float) -> None:
        """`seconds` more the run waited for its throttle, and why it waits now (None: it
        does not)."""
        self.backend.write(NOTE_THROTTLED, {"id": run_id, "note": note, "seconds": seconds})

    def claim_stop(self, run_id: str, reason: str) -> bool:
        """True for the first batch that stops the run on a critical limit (since it last
        started)."""
        return bool(self.backend.write(CLAIM_STOP, {"id": run_id, "reason": reason}
                                       ).value("first"))

    def note_latency(self, run_id: str, seconds: float) -> None:
        """The run's last committed batch took `seconds` (what a latency limit compares)."""
        self.backend.write(NOTE_LATENCY, {"id": run_id, "seconds": seconds})

    def reset_on_resume(self, run_id: str) -> None:
        self.backend.write(RESET_ON_RESUME, {"id": run_id})

    def set_after_migrate(self, run_id: str, scripts: str) -> None:
        self.backend.write(SET_AFTER_MIGRATE, {"id": run_id, "scripts": scripts})

    def claim_after_migrate(self, run_id: str) -> str | None:
        """The run's afterMigrate callbacks (JSON) for the first delivery that ends it since
        it last started; None for the others, or when it has none."""
        rows = self.backend.write(CLAIM_AFTER_MIGRATE, {"id": run_id,
                                                        "at": _iso(utc_now())}).records
        return str(rows[0]["scripts"]) if rows and rows[0]["first"] else None

    def note_callback(self, run_id: str, entry: str) -> None:
        """What a callback run by a worker for the run did (shown by `status`)."""
        self.backend.write(NOTE_CALLBACK, {"id": run_id, "entry": entry})

    def batch_status(self, batch_id: str) -> str | None:
        rows = self.backend.read(BATCH_STATUS, {"id": batch_id}).records
        return rows[0]["status"] if rows else None

    def batch_address(self, batch_id: str) -> dict[str, Any]:
        rows = self.backend.read(BATCH_ADDRESS, {"id": batch_id}).records
        if not rows:
            raise KgmError(f"no batch {batch_id}")
        return dict(json.loads(rows[0]["address"]))

    def record_batch(self, batch: BatchRecord) -> None:
        self.ensure_schema()
        data = batch.model_dump()
        data["status"] = batch.status.value
        data["counters"] = json.dumps(batch.counters, sort_keys=True)
        data["started_at"] = _iso(batch.started_at) if batch.started_at else None
        data["finished_at"] = _iso(batch.finished_at) if batch.finished_at else None
        data["offending"] = (json.dumps(data["offending"], sort_keys=True, default=str)
                             if batch.offending else None)
        self.backend.write(UPSERT_BATCH, data)

    def complete_statement(self, batch_id: str, *, run_id: str, step_id: str, worker: str,
                           counters: dict[str, int]) -> None:
        """An unbatched step's statement ran: its batch completed and the step counts it, once."""
        self.backend.write(COMPLETE_STATEMENT, {
            "id": batch_id, "run_id": run_id, "step_id": step_id, "worker": worker,
            "counters": json.dumps(counters, sort_keys=True), "at": _iso(utc_now())})

    def restores(self, step_id: str) -> list[dict[str, Any]]:
        """The restore batches a rollback recorded for a step (see kgmigrate.engine.undo)."""
        return self.backend.read(READ_RESTORES, {"step_id": restore_step_id(step_id)}).records

    def mark_restored(self, batch_id: str, run_id: str, step_id: str) -> None:
        self.backend.write(MARK_RESTORED, {"id": batch_id, "run_id": run_id, "step_id": step_id,
                                           "at": _iso(utc_now())})

    def record_downgraded(self, meta: MigrationMetadata, *, run_id: str,
                          duration_ms: int) -> None:
        """The applied link becomes `downgraded`, and the downgrade is a new link."""
        rows = self.backend.write(RECORD_DOWNGRADED, {
            "version": meta.version, "description": meta.description,
            "checksum": meta.checksum, "author": meta.created_by, "at": _iso(utc_now()),
            "duration_ms": duration_ms, "applied_by": default_holder(),
            "host": socket.gethostname(), "run_id": run_id}).records
        if not rows or not rows[0]["n"]:
            raise KgmError(f"migration {meta.version} is not applied; nothing to downgrade")

    def begin_revert(self, run_id: str) -> bool:
        """COMPLETED -> ROLLING_BACK for `kgmigrate revert`; False when it is no longer
        completed."""
        rows = self.backend.write(BEGIN_REVERT, {
            "id": run_id, "entry": _entry(MigrationStatus.ROLLING_BACK, utc_now())}).records
        return bool(rows)

    def record_reverted(self, run_id: str, versions: Sequence[str], *, duration_ms: int,
                        repeated: Sequence[str] = ()) -> None:
        """A reverted run's migrations (`versions`: the last applied first) are downgraded in
        the chain, as `downgrade` records them; `repeated`: as in `revert_applied`."""
        at = _iso(utc_now())
        for version in versions:
            self.backend.write(RECORD_REVERTED, {
                "version": version, "run_id": run_id, "at": at, "duration_ms": duration_ms,
                "applied_by": default_holder(), "host": socket.gethostname()})
        if repeated:
            self.backend.write(UNDO_REPEATED, {"run_id": run_id, "versions": list(repeated),
                                               "at": at})

    def revert_applied(self, run_id: str, *, state: str, by: str,
                       repeated: Sequence[str] = ()) -> list[str]:
        """Undo what a rolled-back run wrote to the chain (its links stay, for the audit,
        marked `state`): migrations it applied, and downgrades it recorded. `repeated`: the
        repeatable migrations applied before whose steps it ran again (undone with them)."""
        params = {"run_id": run_id, "state": state, "at": _iso(utc_now()), "by": by}
        rows = self.backend.write(MARK_CHAIN, params).records
        self.backend.write(MARK_DOWNGRADE_EVENTS, params)
        self.backend.write(UNDO_DOWNGRADES, {"run_id": run_id})
        if repeated:
            self.backend.write(UNDO_REPEATED, {"run_id": run_id, "versions": list(repeated),
                                               "at": params["at"]})
        return [r["version"] for r in rows]

    def batches(self, step_id: str) -> list[BatchRecord]:
        return [_batch(r) for r in self.backend.read(READ_BATCHES, {"step_id": step_id}).records]

    def failed_batches(self, run: RunRecord) -> list[FailedBatch]:
        """The run's failed batches, by step and batch, with the entities that failed their
        validation (what `status --json` and the report show)."""
        found = []
        for step in run.steps:
            if step.batched and step.status is not MigrationStatus.PENDING:
                rows = self.backend.read(FAILED_BATCHES, {"step_id": step.id}).records
                found += [failed_batch(step, _batch(r)) for r in rows]
        return found

    # -- the undo log (rows written by the batch statements: kgmigrate.ledger.undo) ---------

    def undo_shape(self, batch_id: str) -> tuple[int, int, list[str]]:
        """(entities the batch recorded, undo rows it has, labels or types they name)."""
        row = self.backend.read(UNDO_SHAPE, {"kgm_undo_batch": batch_id}).single()
        return int(row["expected"] or 0), int(row["rows"]), sorted(row["names"])

    def undo_conflicts(self, run_id: str) -> list[dict[str, Any]]:
        """The run's undo rows a rollback left as conflicts (or restored only by force)."""
        return self.backend.read(undo.CONFLICTS, {"run_id": run_id}).records

    def undo_rows(self, run_id: str) -> int:
        return int(self.backend.read(undo.COUNT_RUN, {"run_id": run_id}).value("n") or 0)

    def drop_undo(self, run_id: str, *, page: int = 10_000) -> int:
        """Delete a run's undo log, a page per statement (a transaction of bounded size)."""
        dropped = 0
        while True:
            n = int(self.backend.write(undo.DROP_RUN, {"run_id": run_id, "limit": page}
                                       ).value("n") or 0)
            dropped += n
            if n < page:
                return dropped


def restore_step_id(step_id: str) -> str:
    """Restore batches are filed under their own step id, apart from the forward batches."""
    return f"{RESTORE_PREFIX}{step_id}"


def failed_batch(step: StepRecord, batch: BatchRecord) -> FailedBatch:
    return FailedBatch(step=step.order, version=step.version, batch=batch.seq,
                       error=batch.error, failing=batch.failing, checked=batch.checked,
                       offending=batch.offending)


def _batch(row: dict[str, Any]) -> BatchRecord:
    return BatchRecord(**_present({**row, "counters": json.loads(row["counters"] or "{}"),
                                   "offending": json.loads(row["offending"] or "[]")}))


def _step(row: dict[str, Any]) -> StepRecord:
    return StepRecord(**_present({**row, "spec": json.loads(row["spec"] or "{}"),
                                  "counters": json.loads(row["counters"] or "{}")}))


def _link(row: dict[str, Any]) -> AppliedMigration:
    """A link of the chain, with where it comes from when it was adopted."""
    fields = _present(row)
    tool = fields.pop("adopted_from", None)
    origin = {key: fields.pop(key, None) for key in (
        "source", "source_type", "source_checksum", "checksum_compared", "adopted_at",
        "adopted_by")}
    adopted = None if tool is None else Adoption(
        tool=tool, source=origin["source"], type=origin["source_type"],
        checksum=origin["source_checksum"], checksum_compared=bool(origin["checksum_compared"]),
        adopted_at=origin["adopted_at"], adopted_by=origin["adopted_by"])
    return AppliedMigration(**fields, adopted=adopted)


def _present(row: dict[str, Any]) -> dict[str, Any]:
    """Absent properties come back as null; let the model's defaults apply instead."""
    return {k: v for k, v in row.items() if v is not None}


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _entry(status: MigrationStatus, moment: datetime) -> str:
    return f"{status.value}@{_iso(moment)}"

