"""A run's watch: the last line against a task the broker lost.

A run moves only when a task finishes: a batch commits and its chord counts it, the last one
sends the step's callback, the callback launches the next step. Kombu's Redis transport takes a
message off its queue (BRPOP) and only then records it as unacknowledged; a worker killed
between the two loses that message for good: no visibility timeout brings it back. A lost
batch leaves its chord one short, a lost callback decides nothing, and the run waits forever,
`in_progress` (seen once in a full suite: a step at 199 of 200 batches, nothing queued).

So every run has one chain of checks: a control task that sends itself again every
KGMIGRATE_STALL_AFTER_S (at most half the visibility timeout, so that Redis does not deliver a
waiting check twice). A check tallies the run's batch and restore records. When they have not
moved for KGMIGRATE_STALL_AFTER_S and nothing waits in the batch queue, no worker is about to
move them: the check says the run is stalled and its task carries it on from the ledger
(`control.redrive`): the step's uncommitted batches are sent again with a new callback, its
decision is taken when all are in, or what is left of a rollback is launched again. Sending
again is safe: each batch and restore commits once in the ledger (a duplicate is skipped), and
the callback of a step already decided only carries the run on again. After a redrive the wait
doubles (up to 8 times), so a batch that is only slow is not sent again and again.

A throttled run is not stalled: its waiting batches add to its throttled time as they nap,
and that is part of what a check compares. A PAUSED run is only kept: each check renews its
lock's lease (it holds the lock while an operator holds it) and nothing is redriven.

One chain per run: the run's record holds the chain's mark (`token:count`), and a check moves
it on only from the mark it carries. A second delivery of a check stops there, and so does the
chain of an earlier start once a resume or a rollback has begun a new one.
"""

import hashlib
import logging
import time

from celery import Celery

from kgmigrate.ledger import restore_step_id
from kgmigrate.ledger.lock import LockLostError
from kgmigrate.model.ids import new_id
from kgmigrate.model.records import MigrationStatus, RunRecord
from kgmigrate.runtime.app import BATCH_QUEUE, WATCH_RUN, queued
from kgmigrate.runtime.context import Runtime

log = logging.getLogger("kgmigrate.orchestrator")

# A run in these states moves by itself; in any other a person decides what comes next
WATCHED = (MigrationStatus.IN_PROGRESS, MigrationStatus.VALIDATING,
           MigrationStatus.ROLLING_BACK, MigrationStatus.PAUSED)
MAX_BACKOFF = 8


def begin(rt: Runtime, app: Celery, run_id: str, *, force: bool = False) -> None:
    """Start the run's chain of checks; a chain begun before for it stops at its next check.
    `force`: the chain of a forced rollback (what it carries on is forced too)."""
    mark = f"{new_id('watch')}:0"
    rt.ledger.begin_watch(run_id, mark)
    _send(rt, app, run_id, mark, seen="", since=time.time(), quiet_s=rt.settings.stall_after_s,
          force=force)


def check(rt: Runtime, app: Celery, run_id: str, mark: str, seen: str, since: float,
          quiet_s: float, force: bool) -> bool:
    """One check of the chain (it sends the next one itself). True when the run is stalled:
    its batches have not moved for `quiet_s` since `since` and none waits to be taken."""
    run = rt.ledger.require_run(run_id)
    if run.status not in WATCHED:
        return False
    token, _, count = mark.rpartition(":")
    following = f"{token}:{int(count) + 1}"
    if not rt.ledger.advance_watch(run_id, mark, following):
        return False  # a second delivery of this check, or a newer chain took over
    now = time.time()
    if run.status is MigrationStatus.PAUSED:  # it keeps its lock while an operator holds it
        _renew(rt, run_id)
        _send(rt, app, run_id, following, seen=seen, since=now, quiet_s=quiet_s, force=force)
        return False
    progress = _progress(rt, run)
    base = rt.settings.stall_after_s
    if progress != seen:
        _send(rt, app, run_id, following, seen=progress, since=now, quiet_s=base, force=force)
        return False
    # VALIDATING: a callback is deciding; if its worker dies, the broker delivers it again
    stalled = (run.status is not MigrationStatus.VALIDATING and now - since >= quiet_s
               and queued(app, BATCH_QUEUE) == 0)
    if stalled:
        log.warning("run %s: its batches have not moved for %.0f s and none is queued (the "
                    "broker may have lost a task): carrying it on from the ledger",
                    run_id, now - since)
        _send(rt, app, run_id, following, seen=progress, since=now,
              quiet_s=min(quiet_s * 2, base * MAX_BACKOFF), force=force)
    else:
        _send(rt, app, run_id, following, seen=progress, since=since, quiet_s=quiet_s,
              force=force)
    return stalled


def _renew(rt: Runtime, run_id: str) -> None:
    try:
        rt.lock.renew_for_run(run_id)
    except LockLostError as exc:  # broken by an operator (`unlock --force`): say so, go on
        log.warning("run %s is paused but no longer holds the migration lock: %s", run_id, exc)


def _progress(rt: Runtime, run: RunRecord) -> str:
    """A digest of what moves while the run makes progress: its status, its steps' statuses,
    its batch and restore records by status, and the time its batches waited for its throttle
    (a batch waiting for its turn moves that on every nap: a throttled run is not stalled)."""
    step_ids = [s.id for s in run.steps]
    tally = rt.ledger.batch_tally(step_ids + [restore_step_id(s) for s in step_ids])
    state = [run.status.value, f"throttled={run.throttled_s}",
             *(f"{s.id}={s.status.value}" for s in run.steps),
             *(f"{step}/{status}={n}" for step, status, n in tally)]
    return hashlib.blake2b("\n".join(state).encode(), digest_size=12).hexdigest()


def _send(rt: Runtime, app: Celery, run_id: str, mark: str, *, seen: str, since: float,
          quiet_s: float, force: bool) -> None:
    every = min(rt.settings.stall_after_s, rt.settings.visibility_timeout_s / 2)
    app.signature(WATCH_RUN, args=(run_id, mark, seen, since, quiet_s, force)).apply_async(
        countdown=every)
