"""Starting, waiting for and resuming runs; progress from the ledger.

The API process never runs migration work itself: it takes the lock, records the run and sends
`orchestrator.start_run` by name to the control queue. Whatever workers serve the queues do
the rest, so the caller may go away; `wait` and `status --watch` only read the ledger.
"""

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

from kgmigrate.checks import ensure_valid
from kgmigrate.compile import StatementPlan, compile_op
from kgmigrate.connect import Endpoints
from kgmigrate.engine.retune import Retuned, retune
from kgmigrate.engine.throttle import require_health_query
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.ledger.lock import MigrationLock, default_holder
from kgmigrate.ledger.undo import IN_GRAPH
from kgmigrate.model.ids import new_id
from kgmigrate.model.records import (
    Conflict,
    MigrationMetadata,
    MigrationStatus,
    RunRecord,
    StepRecord,
    status_changes,
    utc_now,
)
from kgmigrate.model.registry import Registry
from kgmigrate.model.status import ENDED, FINAL_STEP, ROLLBACK_STATES, UNFINISHED
from kgmigrate.model.throttle import Throttle
from kgmigrate.model.versions import Version
from kgmigrate.ops import from_spec
from kgmigrate.preflight import preflight
from kgmigrate.runtime.app import CARRY_OUT, START_ROLLBACK, START_RUN, sender
from kgmigrate.runtime.settings import load_settings


def enqueue_migration(backend: GraphBackend, registry: Registry, endpoints: Endpoints, *,
                      target: str | None = None, created_by: str | None = None,
                      out_of_order: bool = False,
                      on_skip: Callable[[str, str], None] | None = None,
                      before_lock: Callable[[], object] | None = None,
                      throttle: Throttle | None = None,
                      after_migrate: str | None = None) -> str | None:
    """Start a run of everything pending up to `target`; None when nothing is pending.
    Refused at once (LockHeldError) while another run holds the migration lock, and before
    anything is written when an `assert` precondition fails or a migration is out of order
    (unless `out_of_order`). Migrations whose `assume` precondition does not hold are left
    out and recorded as skipped (`on_skip(version, why)` is told of each newly skipped one).
    `before_lock` runs once there is something to run, before the lock is taken or anything
    recorded: it may refuse by raising (e.g. when no worker serves the queues).
    `after_migrate`: the afterMigrate callbacks (JSON) the run's last worker runs when it ends
    (kgmigrate.callbacks)."""
    ensure_valid(backend, registry)
    checked = preflight(backend, registry, target, out_of_order=out_of_order)
    checked.refuse()
    skips = [(registry.metadata(s.version), s.reason) for s in checked.new_skips]
    if checked.run:
        if before_lock is not None:
            before_lock()
        run_id: str | None = _start(backend, endpoints,
                                    [registry.metadata(v) for v in checked.run], target,
                                    created_by, skips=skips, throttle=throttle,
                                    after_migrate=after_migrate)
    else:
        run_id = None
        if skips:  # nothing runs, but the skips are recorded, under the lock like a run
            with MigrationLock(backend, lease_s=load_settings().lock_lease_s).held(
                    created_by or default_holder()):
                _refuse_unfinished(Ledger(backend))
                _record_skips(backend, skips, None, created_by)
    for meta, reason in skips:
        if on_skip is not None:
            on_skip(meta.version, reason)
    return run_id


def _record_skips(backend: GraphBackend, skips: list[tuple[MigrationMetadata, str]],
                  run_id: str | None, created_by: str | None) -> None:
    """Called with the lock held; a skip another upgrade recorded meanwhile is not doubled."""
    ledger = Ledger(backend)
    recorded = ledger.skipped() if skips else {}
    for meta, reason in skips:
        if meta.version not in recorded:
            ledger.record_skipped(meta, reason=reason, run_id=run_id, skipped_by=created_by)


def downgrade(backend: GraphBackend, registry: Registry, endpoints: Endpoints, target: str, *,
              created_by: str | None = None, expect: Sequence[str] | None = None,
              before_lock: Callable[[], object] | None = None,
              throttle: Throttle | None = None) -> str | None:
    """Start the first run of undoing every applied migration that is neither `target` nor an
    ancestor of it, the last applied first (`base`: all; `Registry.to_revert`); None when
    there is nothing to undo. Migrations with an inverse run it, batched, validated,
    undo-logged and locked like an upgrade; one without is undone by reverting the run that
    applied it from its undo log (`downgrade_legs`). Each such leg is a run of its own: call
    again once it ends for the next. `expect`: the versions the caller showed (and a user
    confirmed) as still to undo; refused when what would be undone is not them."""
    ensure_valid(backend, registry)
    ledger = Ledger(backend)
    applied = ledger.applied()
    undo = registry.to_revert([Version.parse(a.version) for a in applied], target)
    registry.require_undoable(undo, {Version.parse(a.version): a.checksum for a in applied})
    if expect is not None and [str(v) for v in undo] != list(expect):
        raise KgmError(f"downgrade {target} would now undo "
                       f"{', '.join(str(v) for v in undo) or 'nothing'}, not "
                       f"{', '.join(expect) or 'nothing'} as shown (another run changed "
                       "what is applied); nothing was undone")
    if not undo:
        return None
    leg = downgrade_legs(ledger, registry, undo)[0]
    if leg.revert_run is not None:
        revert(backend, endpoints, leg.revert_run, before_lock=before_lock)
        return leg.revert_run
    if before_lock is not None:
        before_lock()
    return _start(backend, endpoints, [registry.down_metadata(v) for v in leg.versions],
                  target, created_by, throttle=throttle)


@dataclass(frozen=True)
class DowngradeLeg:
    """One run of a downgrade: the inverses of `versions`, or, when `revert_run` is set, the
    revert of that run (whose migrations are `versions`) from its undo log."""

    versions: list[Version]
    revert_run: str | None = None


def downgrade_legs(ledger: Ledger, registry: Registry, undo: Sequence[Version]
                   ) -> list[DowngradeLeg]:
    """How a downgrade undoes `undo` (the last applied first), in runs one after another: by
    inverses, but a migration without one by reverting the run that applied it, whole (the
    same restore, conflict rule and chain records as `kgmigrate revert`). Refused, naming the
    migration, when that run cannot be reverted: it applied a migration the downgrade keeps,
    its undo log is pruned, the migration was adopted, ... (`revert_refusal`; migrations the
    downgrade undoes first do not count as applied after it)."""
    by_log: dict[Version, str] = {}
    applied_by = {a.version: a.run_id for a in ledger.applied()}
    for version in undo:
        if version in by_log:
            continue
        try:  # an inverse needs no undo log
            registry.migrations[version].inverse_steps()
            continue
        except KgmError as exc:
            cause = str(exc)
        run_id = applied_by.get(str(version))
        if run_id is None:
            raise KgmError(f"{cause}; {version} was adopted, not applied by a run of this "
                           "graph, so no undo log knows what it changed")
        run = ledger.require_run(run_id)
        kept = [v for v in run.migrations  # downgraded since: `revert_refusal` says so
                if Version.parse(v) not in undo and applied_by.get(v) == run_id]
        if kept:
            raise KgmError(
                f"{cause}; the run that applied it, {run_id}, also applied {', '.join(kept)}, "
                f"which this downgrade keeps; `kgmigrate revert {run_id}` undoes the whole run "
                "from its undo log")
        problem = revert_refusal(ledger, run_id, after=[str(v) for v in undo])
        if problem:
            raise KgmError(f"{cause}; nor can its run's undo log: {problem}")
        by_log.update((Version.parse(v), run_id) for v in run.migrations)
    legs: list[DowngradeLeg] = []
    for version in undo:
        run_id = by_log.get(version)
        if legs and legs[-1].revert_run == run_id:
            legs[-1].versions.append(version)
        else:
            legs.append(DowngradeLeg([version], run_id))
    return legs


def _start(backend: GraphBackend, endpoints: Endpoints, migrations: list[MigrationMetadata],
           target: str | None, created_by: str | None,
           skips: list[tuple[MigrationMetadata, str]] | None = None,
           throttle: Throttle | None = None, after_migrate: str | None = None) -> str:
    if throttle is not None:  # refused before anything is locked or recorded
        require_health_query(backend, throttle.require_consistent())
    run_id = new_id("run")
    lock = MigrationLock(backend, lease_s=load_settings().lock_lease_s)
    lease = lock.acquire(created_by or default_holder(), run_id)  # a live run holds it
    try:
        _refuse_unfinished(Ledger(backend))  # read within the lock: no run starts meanwhile
        _record_skips(backend, skips or [], run_id, created_by)
        Ledger(backend).create_run(migrations, target=target, created_by=created_by,
                                   run_id=run_id)
        if throttle is not None and not throttle.is_empty:  # before any batch can start
            Ledger(backend).set_throttle(run_id, throttle)
        if after_migrate is not None:  # before a worker can end the run
            Ledger(backend).set_after_migrate(run_id, after_migrate)
        try:
            _send_start(endpoints, run_id)
        except Exception as exc:  # the broker: the run never started, so it blocks nothing
            Ledger(backend).transition(run_id, MigrationStatus.ABANDONED,
                                       error=f"its start could not be sent: {exc}")
            raise KgmError(f"could not send run {run_id} to the broker "
                           f"({type(exc).__name__}: {exc}); nothing was applied") from None
    except BaseException:
        lock.release(lease)
        raise
    return run_id


def _refuse_unfinished(ledger: Ledger) -> None:
    """A run that has not finished may have left the graph half migrated: a new run would apply
    its steps again on top. Called with the lock held, so an unfinished run found here has no
    live holder: its workers (or the whole stack) stopped."""
    unfinished = ledger.runs_in(sorted(UNFINISHED))
    if not unfinished:
        return
    run_id, status = unfinished[0]
    give_up = (f"; or give it up, what it changed staying changed: "
               f"`kgmigrate abandon {run_id} --reason ...`")
    if status is MigrationStatus.FAILED:
        raise KgmError(f"run {run_id} failed and is neither resumed nor rolled back: "
                       f"`kgmigrate resume {run_id}` or `kgmigrate rollback {run_id}` first"
                       + give_up)
    if status is MigrationStatus.PAUSED:
        raise KgmError(f"run {run_id} is paused: continue it (`kgmigrate resume {run_id}`) "
                       f"or stop it (`kgmigrate cancel {run_id}`) first")
    if status in ROLLBACK_STATES:
        raise KgmError(f"run {run_id} is {status}: finish its rollback first "
                       f"(`kgmigrate rollback {run_id}`)" + give_up)
    raise KgmError(f"run {run_id} is {status} and nothing holds its lock: its workers "
                   f"stopped. Finish it first: `kgmigrate resume {run_id}`" + give_up)


def abandon(backend: GraphBackend, run_id: str, *, reason: str, by: str | None = None,
            take_over: bool = False) -> RunRecord:
    """Give up an unfinished run whose workers are gone: it becomes ABANDONED (final), with
    who and why in its history and error log. Nothing is undone: the graph stays as the run
    left it, and its unfinished steps are closed so that no late batch applies.
    `take_over`: the caller knows no worker serves the run (it asked them), so the run's own
    live lease does not stand in the way."""
    if not reason.strip():
        raise KgmError("say why the run is abandoned (--reason): it is kept in its record")
    ledger = Ledger(backend)
    who = by or default_holder()
    lock = MigrationLock(backend, lease_s=load_settings().lock_lease_s)
    # not for the run: refused while its workers hold the lease (unless none is left)
    lease = lock.acquire(who, run_id if take_over else None)
    try:
        run = ledger.run(run_id)  # within the lock: it cannot end meanwhile
        if run is None:
            raise KgmError(f"no run {run_id}")
        if run.status.is_final:
            raise KgmError(f"run {run_id} is {run.status}; there is nothing to abandon")
        if run.reverts:  # its links say applied while part of what it changed is restored
            raise KgmError(f"run {run_id} is a revert, half done: carry it on with "
                           f"`kgmigrate rollback {run_id}` (`--force` restores the conflicts "
                           "too); abandoned, the chain would call its migrations applied")
        for step in run.steps:
            if not step.status.is_final and step.status not in FINAL_STEP:
                ledger.update_step(step.id, status=MigrationStatus.FAILED,
                                   error="the run was abandoned")
        note = f"abandoned by {who}: {reason.strip()}"
        return ledger.transition(run_id, MigrationStatus.ABANDONED, error=(
            f"{run.error_log} || {note}" if run.error_log else note))
    finally:
        lock.release(lease)


RUNNING = (MigrationStatus.PENDING, MigrationStatus.IN_PROGRESS, MigrationStatus.VALIDATING)


def pause(backend: GraphBackend, run_id: str, *, by: str | None = None) -> RunRecord:
    """Ask a running run to pause: no batch of it starts any more, those in flight finish, and
    then the run is PAUSED (its control worker decides that moment: see `control.pause`). It
    keeps its lock, renewed, until `resume` continues it or `cancel` stops it. Returns the run
    as it was when asked."""
    run = _running(backend, run_id, "paused")
    if run.status is not MigrationStatus.PAUSED:
        Ledger(backend).set_request(run_id, "pause", by or default_holder())
    return run


def cancel(backend: GraphBackend, endpoints: Endpoints, run_id: str, *, keep: bool = False,
           by: str | None = None) -> RunRecord:
    """Stop a running (or paused) run: once no batch of it is in flight it is rolled back like
    a failed run, recorded as cancelled by `by`; `keep`: it ends FAILED as it is instead (to be
    resumed or rolled back later). Returns the run as it was when asked."""
    run = _running(backend, run_id, "cancelled")
    request = "cancel_keep" if keep else "cancel"
    # the request first, then the status (one statement, under the run's write lock): when it
    # is already PAUSED no chord will come back to carry the request out, so this sends it
    if Ledger(backend).set_request(run_id, request, by or default_holder()) == "paused":
        _send(endpoints, CARRY_OUT, run_id)
    return run


def throttle(backend: GraphBackend, run_id: str, change: Throttle, *,
             cleared: Sequence[str] = (), off: bool = False) -> RunRecord:
    """Change the limits of a running, paused or failed (to be resumed) run: `cleared` limits
    are lifted, then `change`'s set (`off`: all lifted first). Every worker's next batch
    starts under them; a batch waiting for the old ones takes its turn again. Returns the run
    as it is now."""
    ledger = Ledger(backend)
    run = _running(backend, run_id, "throttled", failed_too=True)
    current = Throttle() if off or run.throttle is None else run.throttle
    limits = current.merged(change, cleared=tuple(cleared))
    if limits.health_query != current.health_query:
        require_health_query(backend, limits)
    if ledger.set_throttle(run_id, limits) is None:
        raise KgmError(f"no run {run_id}")
    return ledger.require_run(run_id)


def tune(backend: GraphBackend, endpoints: Endpoints, run_id: str, batch_size: int, *,
         by: str | None = None, timeout_s: float | None = None) -> Retuned:
    """Change the batch size of what a run has not started yet (see kgmigrate.engine.retune).
    A running run is paused for it (those in flight finish; `timeout_s` bounds that wait),
    retuned, and continued; a paused one is retuned and stays paused."""
    if batch_size < 1:
        raise KgmError("the batch size must be at least 1")
    run = _running(backend, run_id, "retuned")
    if run.request in ("cancel", "cancel_keep"):
        raise KgmError(f"run {run_id} is being cancelled; it cannot be retuned")
    if run.status is MigrationStatus.PENDING:
        raise KgmError(f"run {run_id} has not started yet (no worker took it up?); retune it "
                       "once it runs")
    continue_after = run.status is not MigrationStatus.PAUSED and run.request is None
    if run.status is not MigrationStatus.PAUSED:
        pause(backend, run_id, by=by)
        try:
            run = wait(backend, run_id, timeout_s=timeout_s,
                       until={MigrationStatus.PAUSED, *ENDED})
        except KgmError as exc:
            raise KgmError(f"{exc}: it was asked to pause for the retune and pauses once its "
                           f"batches in flight are done; nothing was retuned. Retune it then "
                           f"(`kgmigrate tune {run_id} ...`) or continue it (`kgmigrate "
                           f"resume {run_id}`)") from None
        if run.status is not MigrationStatus.PAUSED:
            raise KgmError(f"run {run_id} ended {run.status} before it could be retuned")
    try:
        done = retune(backend, run, batch_size, by=by)
    except KgmError as exc:
        if continue_after:
            raise KgmError(f"{exc}; run {run_id} stays paused: `kgmigrate resume {run_id}` "
                           "continues it") from None
        raise
    if continue_after:
        resume(backend, endpoints, run_id)
    return replace(done, continued=continue_after)


def _running(backend: GraphBackend, run_id: str, what: str, *,
             failed_too: bool = False) -> RunRecord:
    run = Ledger(backend).run(run_id)
    if run is None:
        raise KgmError(f"no run {run_id}")
    if failed_too and run.status is MigrationStatus.FAILED:
        return run
    if run.status not in (*RUNNING, MigrationStatus.PAUSED):
        raise KgmError(f"run {run_id} is {run.status}: only a running or paused run can be "
                       f"{what}" + (f"; roll it back with `kgmigrate rollback {run_id}` or "
                                    f"give it up with `kgmigrate abandon {run_id}`"
                                    if run.status is MigrationStatus.FAILED else ""))
    return run


def resume(backend: GraphBackend, endpoints: Endpoints, run_id: str, *,
           before_lock: Callable[[], object] | None = None) -> None:
    """Re-enqueue what a run has not committed, after a crash of anything, or continue a
    paused one (a pause still under way is withdrawn). `before_lock`: as for
    `enqueue_migration`."""
    run = Ledger(backend).run(run_id)
    if run is None:
        raise KgmError(f"no run {run_id}")
    if run.status.is_final:
        raise KgmError(f"run {run_id} is {run.status}; there is nothing to resume")
    if run.status in ROLLBACK_STATES:
        raise KgmError(f"run {run_id} is {run.status}: a run being rolled back cannot be "
                       f"resumed forward; continue the rollback: kgmigrate rollback {run_id}")
    if before_lock is not None:
        before_lock()
    MigrationLock(backend, lease_s=load_settings().lock_lease_s).acquire(default_holder(), run_id)
    if run.request is not None:  # withdrawn first: the run's start then takes it up
        Ledger(backend).set_request(run_id, None, None)
    Ledger(backend).reset_on_resume(run_id)
    if run.status is MigrationStatus.FAILED:
        # before the send, like rollback's transition: a `wait` right after `resume` must not
        # read the old FAILED and return before a worker has taken the run up
        Ledger(backend).transition(run_id, MigrationStatus.IN_PROGRESS)
    _send_start(endpoints, run_id)


def rollback(backend: GraphBackend, endpoints: Endpoints, run_id: str, *,
             force: bool = False, before_lock: Callable[[], object] | None = None) -> None:
    """Restore what a failed run changed, from its undo log (`rollback_migration` in Python).

    Also continues a rollback that crashed or stopped at conflicts; `force` restores conflicting
    entities too. A COMPLETED run is undone with `downgrade` instead. `before_lock`: as for
    `enqueue_migration`."""
    ledger = Ledger(backend)
    run = ledger.run(run_id)
    if run is None:
        raise KgmError(f"no run {run_id}")
    if run.status is MigrationStatus.ROLLED_BACK:
        raise KgmError(f"run {run_id} is already rolled back")
    if run.status is MigrationStatus.COMPLETED:
        raise KgmError(f"run {run_id} completed; revert it from its undo log with "
                       f"`kgmigrate revert {run_id}`, or undo its migrations by their inverses "
                       "with `kgmigrate downgrade TARGET`")
    if run.status in (MigrationStatus.PENDING, MigrationStatus.IN_PROGRESS,
                      MigrationStatus.VALIDATING):
        raise KgmError(f"run {run_id} is {run.status}; wait for it to end (or fail) first")
    if before_lock is not None:
        before_lock()
    MigrationLock(backend, lease_s=load_settings().lock_lease_s).acquire(default_holder(), run_id)
    if run.status is not MigrationStatus.ROLLING_BACK:
        ledger.transition(run_id, MigrationStatus.ROLLING_BACK)
    _send(endpoints, START_ROLLBACK, run_id, force)


def revert(backend: GraphBackend, endpoints: Endpoints, run_id: str, *,
           before_lock: Callable[[], object] | None = None) -> None:
    """Undo a completed upgrade run from its undo log, as a rollback does (what was changed
    since it wrote it is a conflict, kept as it is), recording its migrations as downgraded.
    Refused (see `revert_refusal`) unless it is the last thing applied and its log is kept."""
    ledger = Ledger(backend)
    problem = revert_refusal(ledger, run_id, undo_log=False)  # the cheap checks, before waiting
    if problem:
        raise KgmError(problem)
    if before_lock is not None:
        before_lock()
    lock = MigrationLock(backend, lease_s=load_settings().lock_lease_s)
    lease = lock.acquire(default_holder(), run_id)
    try:  # all of them under the lock: nothing can be applied meanwhile now
        _refuse_unfinished(ledger)  # another run would go on over the reverted graph
        problem = revert_refusal(ledger, run_id)
        if problem:
            raise KgmError(problem)
        if not ledger.begin_revert(run_id):
            raise KgmError(f"run {run_id} is no longer completed; see `kgmigrate status "
                           f"{run_id}`")
    except BaseException:
        lock.release(lease)
        raise
    _send(endpoints, START_ROLLBACK, run_id, False)


def revert_refusal(ledger: Ledger, run_id: str, *, undo_log: bool = True,
                   after: Collection[str] = ()) -> str | None:
    """Why run `run_id` cannot be reverted now (None: it can). Refused: no such run; a run
    not completed (a failed one is rolled back, a rolling-back one carried on); a downgrade;
    a run whose migrations are not all still applied; one with a migration applied after it
    in force (it may build on what the run changed: downgrade or revert that first; those in
    `after` do not count: a downgrade undoes them first); and,
    unless `undo_log` is False (it walks every batch record), a run whose undo log cannot
    restore it (see `_unrestorable`)."""
    run = ledger.run(run_id)
    if run is None:
        return f"no run {run_id}"
    if run.status in ROLLBACK_STATES:
        return (f"run {run_id} is {run.status}; carry its rollback on with "
                f"`kgmigrate rollback {run_id}`")
    if run.status is not MigrationStatus.COMPLETED:
        return (f"run {run_id} is {run.status}; only a completed run is reverted"
                + (f" (a failed one is rolled back: `kgmigrate rollback {run_id}`)"
                   if run.status is MigrationStatus.FAILED else ""))
    if run.direction == "down":
        return (f"run {run_id} is a downgrade; apply its migrations again with "
                "`kgmigrate upgrade`")
    links = ledger.run_links(run_id)
    undone = [f"{version} ({state})" for version, state, _ in links
              if state not in ("applied", "skipped")]
    if undone:
        return (f"run {run_id}'s migrations are no longer all in force: {', '.join(undone)}; "
                "reverting the rest alone is not supported")
    mine = [sequence for _, state, sequence in links if state == "applied"]
    if not mine:
        return f"run {run_id} applied no migration; there is nothing to revert"
    later = [link for link in ledger.history() if link.state == "applied"
             and link.run_id != run_id and link.sequence > min(mine)
             and link.version not in after]
    if later:
        names = ", ".join(f"{link.version} (run {link.run_id or 'adopted'})" for link in later)
        return (f"migrations applied after run {run_id} are in force: {names}; they may build "
                "on what it changed: downgrade or revert them first")
    return _unrestorable(ledger, run, ledger.backend.dialect.name) if undo_log else None


def _unrestorable(ledger: Ledger, run: RunRecord, dialect: str) -> str | None:
    """Why a restore of every step of `run` could not finish: an unbatched Cypher step with
    no down statement, a batch logged by an earlier kgmigrate (a file), an undo log pruned
    (wholly or in part)."""
    expected = 0
    for step in run.steps:
        if not step.batched:
            plan = compile_op(from_spec(step.operation, step.spec), dialect)
            if isinstance(plan, StatementPlan) and plan.undo is None:
                return (f"run {run.id}'s step {step.order} ({step.description}) is a Cypher "
                        "statement without a down statement: nothing can undo it")
            continue
        for batch in ledger.batches(step.id):
            if batch.status is not MigrationStatus.COMPLETED:
                continue
            if batch.undo != IN_GRAPH:
                return (f"run {run.id}'s step {step.order} was logged by an earlier kgmigrate "
                        f"({batch.undo or 'no undo log'}): revert it with that version")
            expected += batch.entities
    kept = ledger.undo_rows(run.id)
    if kept < expected:
        return (f"run {run.id}'s undo log has been pruned ({kept:,} of its {expected:,} "
                "records are left); it cannot be reverted: undo its migrations with "
                "`kgmigrate downgrade TARGET` (by their inverses) or restore a snapshot")
    return None


def conflicts(backend: GraphBackend, run: RunRecord) -> list[Conflict]:
    """What a rollback left as it was (or restored only because it was forced), per entity,
    from the run's undo rows."""
    found = []
    for row in Ledger(backend).undo_conflicts(run.id):
        order, seq = row["batch_id"].split(":")[-2:]  # <run>:<step order>:<seq>
        found.append(Conflict(step=int(order), batch=int(seq), key=row["key"],
                              reason=row["reason"], forced=bool(row["forced"])))
    return found


def _send_start(endpoints: Endpoints, run_id: str) -> None:
    _send(endpoints, START_RUN, run_id)


def _send(endpoints: Endpoints, task: str, *args: object) -> None:
    app = sender(endpoints.broker_url.get_secret_value(),
                 endpoints.result_backend.get_secret_value())
    try:
        app.send_task(task, args=list(args))
    finally:
        app.close()


def wait(backend: GraphBackend, run_id: str, *, timeout_s: float | None = None,
         poll_s: float = 0.5, on_progress: Callable[[RunRecord], None] | None = None,
         until: Collection[MigrationStatus] = ENDED) -> RunRecord:
    """Block until the run ends (see ENDED), or reaches a status of `until`; read-only."""
    ledger = Ledger(backend)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        run = ledger.run(run_id)
        if run is None:
            raise KgmError(f"no run {run_id}")
        if on_progress:
            on_progress(run)
        if run.status in until:
            return run
        if deadline is not None and time.monotonic() > deadline:
            raise KgmError(f"run {run_id} is still {run.status} after {timeout_s:.0f}s")
        time.sleep(poll_s)


@dataclass(frozen=True)
class StepProgress:
    order: int
    description: str
    status: MigrationStatus
    batches_done: int
    batches_total: int
    entities_done: int
    entities_total: int
    entities_per_s: float | None
    eta_s: float | None
    # a rollback's progress (`restore_progress`): `entities_done` were restored, `conflicts`
    # were kept as someone else left them; both count towards `entities_total`
    restoring: bool = False
    conflicts: int = 0


def progress(run: RunRecord) -> list[StepProgress]:
    """Per step: batches and entities done of total, throughput since the step started, ETA."""
    return [_step_progress(step) for step in run.steps]


def _step_progress(step: StepRecord) -> StepProgress:
    rate = eta = None
    if step.started_at and step.entities_done:
        end = step.finished_at or utc_now()
        elapsed = max((end - step.started_at).total_seconds(), 1e-3)
        rate = step.entities_done / elapsed
        eta = max(step.entities_total - step.entities_done, 0) / rate if rate else None
    return StepProgress(step.order, step.description, step.status, step.batches_done,
                        step.batches_total, step.entities_done, step.entities_total, rate, eta)


def restore_progress(backend: GraphBackend, run: RunRecord) -> list[StepProgress]:
    """A rollback's (or revert's) progress, per step with committed batches, the last step
    first as the rollback goes: batches restored of those committed, entities restored (a
    forced pass adds to what the first pass restored) and kept as conflicts, and throughput
    since the pass reached the step. The forward figures say nothing about this."""
    tally = Ledger(backend).restore_tally([s.id for s in run.steps])
    forced = any(t.forced for t in tally)  # a forced pass comes after any first pass
    passes = [at for status, at in status_changes(run.history)
              if status is MigrationStatus.ROLLING_BACK]
    reached = passes[-1] if passes else run.created_at
    shown: list[StepProgress] = []
    for step in sorted(run.steps, key=lambda s: s.order, reverse=True):
        if not step.batches_done:
            continue
        mine = {t.forced: t for t in tally if t.step_id == step.id}
        now = mine.get(forced)
        first = mine.get(False) if forced else None
        batches = now.batches if now else 0
        done = batches >= step.batches_done
        status = (MigrationStatus.ROLLED_BACK if done else MigrationStatus.ROLLING_BACK
                  if batches else MigrationStatus.PENDING)
        by_entity = step.batched and step.entities_done > 0
        rate = eta = None
        if now and by_entity:
            end = now.last_at if done and now.last_at else utc_now()
            rate = (now.restored + now.conflicts) / max((end - reached).total_seconds(), 1e-3)
            left = step.entities_done - (first.restored if first else 0) - now.restored \
                - now.conflicts
            eta = max(left, 0) / rate if rate else None
        restored = (now.restored if now else 0) + (first.restored if first else 0)
        shown.append(StepProgress(
            step.order, step.description, status, batches, step.batches_done,
            restored if by_entity else 0, step.entities_done if by_entity else 0, rate, eta,
            restoring=True, conflicts=now.conflicts if now else 0))
        if now and now.last_at:
            reached = max(reached, now.last_at)
    return shown
