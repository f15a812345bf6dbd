"""One facade, `Migrations`, over a graph and everything beside it (the migrations directory,
the broker, the backup store): the CLI's verbs and the Python API's managers all go through it, as
neo4j-migrations' `Migrations` does. It owns the connection; the verbs that change anything
take the migration lock (enqueueing a run, restoring a snapshot) or refuse while one is held.

The functions it calls (`kgmigrate.api`, `kgmigrate.runs`, `kgmigrate.checks`) take what they
work on and return the small result types of `kgmigrate.model.records`.
"""

import contextlib
import os
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType

from kgmigrate import adoption, api, callbacks, checks, held, presence, runs
from kgmigrate.backup.snapshot import Progress, SnapshotManifest, SnapshotRestore, load_manifest
from kgmigrate.backup.store import BackupStore, open_store
from kgmigrate.connect import Endpoints, backend_for, open_backend, resolve
from kgmigrate.dev.facade import DEMO_GRAPH, DevStack
from kgmigrate.dev.local_workers import LocalWorkers
from kgmigrate.dev.neo4j_stack import Neo4jStatus
from kgmigrate.dev.sample import GraphSummary, load_sample, summarize
from kgmigrate.dev.stack import StackStatus
from kgmigrate.engine import retention
from kgmigrate.engine.retention import PrunedRun
from kgmigrate.engine.retune import Retuned
from kgmigrate.errors import ConfigError, KgmError
from kgmigrate.fingerprint import Fingerprint, fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.graph.types import ServerInfo
from kgmigrate.held import HeldTask
from kgmigrate.ledger import Ledger
from kgmigrate.ledger.demo import DemoGraph
from kgmigrate.ledger.lock import LockHeldError, MigrationLock, default_holder
from kgmigrate.model.callbacks import callbacks_json
from kgmigrate.model.records import (
    AdoptionPlan,
    AppliedMigration,
    Conflict,
    DowngradePlan,
    FailedBatch,
    LockInfo,
    MigrationListing,
    MigrationStatus,
    PlannedMigration,
    RepairResult,
    RunRecord,
    ValidationResult,
)
from kgmigrate.model.registry import Registry
from kgmigrate.model.scope import IndexSpec
from kgmigrate.model.status import ENDED, UNDOING
from kgmigrate.model.throttle import Throttle
from kgmigrate.monitoring import exporter, hooks, logs
from kgmigrate.monitoring.monitor import MigrationMetrics, MigrationMonitor
from kgmigrate.monitoring.report import RunReport, build_report, markdown, write_report
from kgmigrate.presence import NoWorkersError, Workers, WorkerWatch
from kgmigrate.runs import StepProgress, progress
from kgmigrate.runtime.app import BATCH_QUEUE, CONTROL_QUEUE, QUEUE_MODULES, configure
from kgmigrate.runtime.settings import GraphTarget, Settings, export, load_settings

__all__ = ["BATCH_QUEUE", "CONTROL_QUEUE", "DEMO_GRAPH", "DemoGraph", "DevStack", "GraphSummary",
           "HeldTask", "Migrations", "Neo4jStatus", "NoWorkersError", "PrunedRun", "RunReport",
           "StackStatus", "StepProgress", "WorkerWatch", "Workers", "default_author", "demo",
           "markdown", "new_migration", "progress", "serve_flower", "serve_worker"]


class Migrations:
    """Every verb, over one graph. Use it as a context manager (it closes the connection)."""

    def __init__(self, settings: Settings | None = None, *,
                 backend: GraphBackend | None = None,
                 endpoints: Endpoints | None = None, must_exist: bool = False) -> None:
        """`must_exist`: refuse a graph that is not there (a read-only caller's mistyped name
        would otherwise create it on FalkorDB) with one line naming those that are."""
        self.settings = settings or load_settings()
        self.backend = backend or open_backend(self.settings, must_exist=must_exist)
        self._endpoints = endpoints
        self._first_use_done = False

    def __enter__(self) -> "Migrations":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    @property
    def graph(self) -> GraphTarget:
        """The graph this facade talks to (no credentials in its `display`)."""
        return self.backend.target

    @property
    def endpoints(self) -> Endpoints:
        """The broker and graph endpoints (the embedded stack is started on first need)."""
        if self._endpoints is None:
            self._endpoints = resolve(self.settings)
        return self._endpoints

    @property
    def store(self) -> BackupStore:
        return open_store(self.settings.backup_dir)

    def registry(self) -> Registry:
        """The migrations directory, loaded (placeholders filled in from the settings);
        refused if a value in it cannot be stored on this graph's server
        (`checks.check_values`), before any verb writes."""
        registry = Registry.load(self.settings.migrations_dir, self.settings.placeholders)
        checks.check_values(self.backend, registry)
        if not self._first_use_done:  # once per facade, before its first verb goes on
            self._first_use_done = True
            callbacks.invoke(self.backend, registry.callbacks_of("beforeFirstUse"))
        return registry

    # -- what is there ----------------------------------------------------------------------

    def list_migrations(self) -> list[MigrationListing]:
        """Each migration and its state, between the beforeInfo and afterInfo callbacks."""
        registry = self.registry()
        return callbacks.around(self.backend, registry.callbacks_of("beforeInfo"),
                                registry.callbacks_of("afterInfo"),
                                lambda: checks.list_migrations(self.backend, registry))

    def plan(self, target: str | None = None, *, out_of_order: bool | None = None,
             preview: int | None = None) -> list[PlannedMigration]:
        """What `upgrade` would run and skip. `out_of_order`: allow a pending migration that
        an applied one comes after (default: KGMIGRATE_OUT_OF_ORDER). `preview`: each batched
        step's change on its first so many entities, before and after, with its validation,
        made where it changes nothing (on FalkorDB a scratch copy of the graph per step)."""
        return api.plan(self.backend, self.registry(), target,
                        out_of_order=self._out_of_order(out_of_order), preview=preview)

    def history(self) -> list[AppliedMigration]:
        return api.history(self.backend)

    def validate(self) -> ValidationResult:
        """Between the beforeValidate and afterValidate callbacks."""
        registry = self.registry()
        return callbacks.around(self.backend, registry.callbacks_of("beforeValidate"),
                                registry.callbacks_of("afterValidate"),
                                lambda: checks.validate(self.backend, registry,
                                                        out_of_order=self.settings.out_of_order))

    def repair(self) -> RepairResult:
        return api.repair(self.backend, self.registry())

    def import_chain(self, *, dry_run: bool = False) -> AdoptionPlan:
        """Adopt the chain neo4j-migrations applied to this Neo4j graph into kgmigrate's empty
        chain, under the migration lock, so that `upgrade` runs only what comes after it
        (`dry_run`: what would be adopted; reads only). Each version must have its file in
        the migrations directory, a `.cypher` one unchanged (neo4j-migrations' checksum);
        refused in one line otherwise, on FalkorDB, or when kgmigrate's chain has entries."""
        adoption.require_neo4j(self.backend)
        return adoption.import_chain(self.backend, self.registry(),
                                     self.settings.migrations_dir, dry_run=dry_run,
                                     lease_s=self.settings.lock_lease_s)

    # -- runs -------------------------------------------------------------------------------

    def upgrade(self, target: str | None = None, *, created_by: str | None = None,
                out_of_order: bool | None = None,
                on_skip: Callable[[str, str], None] | None = None,
                require_workers: bool = False, throttle: Throttle | None = None) -> str | None:
        """Start a run up to `target` (default: everything pending); its id, or None when
        nothing is pending. Workers serving the queues run it. Migrations whose `assume`
        precondition does not hold are skipped and recorded so (`on_skip(version, why)`);
        `out_of_order` allows a pending migration that an applied one comes after (default:
        KGMIGRATE_OUT_OF_ORDER). `require_workers`: when there is something to run, refuse
        (NoWorkersError) unless workers serve both queues, before anything is recorded or
        locked; the same for the verbs below. `throttle`: the limits it runs under from its
        first batch (see `throttle`). Callbacks: beforeMigrate first; afterMigrate when the
        run ends (by its worker), or here when nothing is pending; none when the upgrade is
        refused (kgmigrate.callbacks)."""
        registry = self.registry()
        after = registry.callbacks_of("afterMigrate")
        callbacks.invoke(self.backend, registry.callbacks_of("beforeMigrate"))
        started = runs.enqueue_migration(
            self.backend, registry, self.endpoints, target=target, created_by=created_by,
            out_of_order=self._out_of_order(out_of_order), on_skip=on_skip,
            before_lock=self._workers_check(require_workers), throttle=throttle,
            after_migrate=callbacks_json(after))
        if started is None and after:  # nothing to run: this upgrade ends here, locked too
            with MigrationLock(self.backend, lease_s=self.settings.lock_lease_s).held(
                    created_by or default_holder()):
                callbacks.invoke(self.backend, after)
        return started

    def _out_of_order(self, allowed: bool | None) -> bool:
        return self.settings.out_of_order if allowed is None else allowed

    def downgrade(self, target: str, *, expect: Sequence[str] | None = None,
                  require_workers: bool = False, throttle: Throttle | None = None
                  ) -> str | None:
        """Start undoing every applied migration that is neither `target` nor an ancestor of
        it, the last applied first (`base`: all): its first run (inverses, or a revert from an
        undo log for a migration without one; `runs.downgrade`), whose id is returned. Call
        again once it has ended for the next; None: nothing is left. `expect`: the versions
        shown to the user (`plan_downgrade`) and not undone yet; refused when they are no
        longer what would be undone."""
        return runs.downgrade(self.backend, self.registry(), self.endpoints, target,
                              expect=expect, before_lock=self._workers_check(require_workers),
                              throttle=throttle)

    def plan_downgrade(self, target: str, *, count: bool = True) -> DowngradePlan:
        """What `downgrade(target)` would undo and why, with its inverses' entity counts
        (`count=False`: without steps). Writes nothing."""
        return api.downgrade_plan(self.backend, self.registry(), target, count=count)

    def pause(self, run_id: str, *, by: str | None = None) -> RunRecord:
        """Ask a running run to pause: no new batch starts, those in flight finish, then the
        run is `paused`, keeping its lock; `resume` continues it. Returns it as it was."""
        return runs.pause(self.backend, run_id, by=by)

    def throttle(self, run_id: str, change: Throttle | None = None, *,
                 cleared: Sequence[str] = (), off: bool = False) -> RunRecord:
        """Change a run's limits while it runs (or before it is resumed): `cleared` ones
        lifted, `change`'s set (`off`: every limit lifted first). Rate, latency and health
        limits: see kgmigrate.model.throttle. Returns the run as it is now."""
        return runs.throttle(self.backend, run_id, change or Throttle(), cleared=cleared,
                             off=off)

    def tune(self, run_id: str, batch_size: int, *, by: str | None = None,
             timeout_s: float | None = None) -> Retuned:
        """Cut what the run has not started yet at `batch_size`: its step's pending batches
        and its steps not planned yet. A running run is paused for it and continued after;
        a paused one stays paused. Committed batches, the undo log, resume and rollback are
        untouched."""
        return runs.tune(self.backend, self.endpoints, run_id, batch_size, by=by,
                         timeout_s=timeout_s)

    def cancel(self, run_id: str, *, keep: bool = False, by: str | None = None) -> RunRecord:
        """Stop a running or paused run and roll back what it applied, recorded as cancelled
        by `by` (`keep`: it ends `failed` as it is, to be resumed or rolled back). Returns it
        as it was; `wait` for the outcome."""
        return runs.cancel(self.backend, self.endpoints, run_id, keep=keep, by=by)

    def resume(self, run_id: str, *, require_workers: bool = False) -> None:
        runs.resume(self.backend, self.endpoints, run_id,
                    before_lock=self._workers_check(require_workers))

    def rollback(self, run_id: str, *, force: bool = False,
                 require_workers: bool = False) -> None:
        """Restore what a failed run changed, from its undo log (also continues a rollback
        that stopped); `wait` for the outcome."""
        runs.rollback(self.backend, self.endpoints, run_id, force=force,
                      before_lock=self._workers_check(require_workers))

    def revert(self, run_id: str, *, require_workers: bool = False) -> None:
        """Undo a completed upgrade run from its undo log: restored entity by entity under
        rollback's conflict rule, its migrations recorded as downgraded; `wait` for the
        outcome (`rolled_back`, or `rollback_blocked` with conflicts: `rollback --force`)."""
        runs.revert(self.backend, self.endpoints, run_id,
                    before_lock=self._workers_check(require_workers))

    def revert_refusal(self, run_id: str) -> str | None:
        """Why `revert(run_id)` would be refused now; None when it would start."""
        return runs.revert_refusal(Ledger(self.backend), run_id)

    def abandon(self, run_id: str, *, reason: str, by: str | None = None,
                when_workers_gone: bool = False) -> RunRecord:
        """Give up an unfinished run whose workers are gone (audited; nothing is undone).
        Refused while the run's lease is live, unless `when_workers_gone` and the workers,
        asked now, show that none serves the run's queues (a run that never started, or
        whose workers all died, holds its lease until it expires)."""
        try:
            return runs.abandon(self.backend, run_id, reason=reason, by=by)
        except LockHeldError as held:  # by the run itself: are its workers there at all?
            if not (when_workers_gone and held.info.run_id == run_id
                    and self.workers().missing):
                raise
        return runs.abandon(self.backend, run_id, reason=reason, by=by, take_over=True)

    # -- workers ----------------------------------------------------------------------------

    def workers(self) -> Workers:
        """Which queues the live workers on the broker consume (they are asked now, for at
        most KGMIGRATE_WORKER_PING_S)."""
        endpoints = self._endpoints or resolve(self.settings, start_stack=False)
        return presence.ask(endpoints, timeout_s=self.settings.worker_ping_s)

    def waiting_for_workers(self, run: RunRecord) -> Workers | None:
        """For a run that has not ended: the workers, when none serves a queue it needs (or
        the broker cannot be asked). None when it has ended or has its workers."""
        if not presence.waiting(run):
            return None
        workers = self.workers()
        return workers if workers.missing or workers.error else None

    def held_by_dead_workers(self, run: RunRecord) -> list[HeldTask]:
        """The run's tasks that a worker took and no live worker has: they come back to a
        running worker by their `back_by` (the visibility timeout after they were taken).
        Empty for a run that has ended; asks the broker, and the workers only when it holds
        a task of the run."""
        if run.status in ENDED:
            return []
        return held.held_by_dead_workers(
            self.endpoints, run.id, timeout_s=self.settings.worker_ping_s,
            visibility_timeout_s=self.settings.visibility_timeout_s)

    def workers_hint(self, run: RunRecord, workers: Workers) -> str:
        """The line that says the run waits for workers, how to start one, and the lock it
        holds meanwhile."""
        return presence.hint(run, workers, MigrationLock(self.backend).info())

    def worker_watch(self, *, at_once: bool = False, told: Workers | None = None
                     ) -> WorkerWatch:
        """A watch to feed a followed run's records: it returns the hint line when the run
        has not moved for KGMIGRATE_WORKER_WAIT_S (or at once) and no worker serves a queue
        it needs. `told`: what the caller has already said."""
        return WorkerWatch(self.workers, self.workers_hint,
                           quiet_s=self.settings.worker_wait_s, at_once=at_once, told=told)

    def _workers_check(self, required: bool) -> Callable[[], Workers] | None:
        if not required:
            return None
        return lambda: presence.require(self.endpoints, timeout_s=self.settings.worker_ping_s)

    def wait(self, run_id: str, *, timeout_s: float | None = None,
             on_progress: Callable[[RunRecord], None] | None = None,
             until: Collection[MigrationStatus] = ENDED) -> RunRecord:
        """Until the run ends, or reaches a status of `until` (e.g. `paused`)."""
        return runs.wait(self.backend, run_id, timeout_s=timeout_s, on_progress=on_progress,
                         until=until)

    def progress(self, run: RunRecord) -> list[StepProgress]:
        """Per step, how far the run has got: forward, or, once it is being rolled back (or
        reverted, or that has ended), how far the rollback has restored what it changed."""
        if run.status in UNDOING:
            return runs.restore_progress(self.backend, run)
        return progress(run)

    def status(self, run_id: str | None = None) -> RunRecord:
        """A run (default: the latest)."""
        return api.status(self.backend, run_id)

    def conflicts(self, run: RunRecord) -> list[Conflict]:
        """What a rollback left as it was (or restored only because it was forced)."""
        return runs.conflicts(self.backend, run)

    def failed_batches(self, run: RunRecord) -> list[FailedBatch]:
        """The run's failed batches, with the entities that failed their validation."""
        return Ledger(self.backend).failed_batches(run)

    def unlock(self, *, force: bool = False) -> LockInfo | None:
        """Clear the migration lock: an expired one always, a live one only with `force`;
        what was cleared (None: nothing was held)."""
        return MigrationLock(self.backend).break_lock(force=force)

    # -- watching ---------------------------------------------------------------------------

    def metrics(self, run_id: str) -> MigrationMetrics | None:
        return MigrationMonitor(self.backend).get_migration_metrics(run_id)

    def report(self, run_id: str, out_dir: Path | None = None) -> list[Path]:
        """Write the run's report (JSON, Markdown, PNG); the paths written."""
        return self.write_report(self.build_report(run_id), out_dir)

    def build_report(self, run_id: str) -> RunReport:
        built = build_report(self.backend, run_id)
        if built is None:
            raise KgmError(f"no run {run_id}")
        return built

    def write_report(self, built: RunReport, out_dir: Path | None = None) -> list[Path]:
        return write_report(built, out_dir or self.settings.reports_dir)

    def serve_metrics(self, host: str, port: int, runs: int,
                      on_ready: Callable[[], None] = lambda: None) -> None:
        """Serve Prometheus metrics read from the ledger at each scrape, until Ctrl-C."""
        logs.configure()
        exporter.serve(self.backend, host=host, port=port, runs=runs)
        on_ready()
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()

    def fingerprint(self, progress: Progress | None = None) -> Fingerprint:
        return fingerprint(self.backend, progress=progress)

    # -- snapshots --------------------------------------------------------------------------

    def create_backup(self, labels: Sequence[str] = (), *,
                      progress: Progress | None = None) -> SnapshotManifest:
        return api.BackupService(self.backend, self.store).create_backup(labels,
                                                                         progress=progress)

    def restore_backup(self, snapshot_id: str, *, verify: bool = True,
                       progress: Progress | None = None) -> SnapshotRestore:
        return api.BackupService(self.backend, self.store).restore_backup(
            snapshot_id, verify=verify, progress=progress)

    def list_backups(self) -> list[SnapshotManifest]:
        return api.BackupService(self.backend, self.store).list_backups()

    def prune(self, *, older_than_days: float | None = None, dry_run: bool = False,
              only: Sequence[str] | None = None) -> list[PrunedRun]:
        """Remove the undo logs of runs finalized more than `older_than_days` ago (default:
        KGMIGRATE_UNDO_RETENTION_DAYS); runs that may still be resumed or rolled back keep
        theirs."""
        days = self.settings.undo_retention_days if older_than_days is None else older_than_days
        return retention.prune(Ledger(self.backend), self.store,
                               older_than=timedelta(days=days), dry_run=dry_run, only=only)

    def backup_manifest(self, snapshot_id: str) -> SnapshotManifest:
        return load_manifest(self.store, snapshot_id)

    # -- the graph itself -------------------------------------------------------------------

    def load_sample(self, nodes: int, *, seed: int = 7,
                    progress: Callable[[str, int], None] | None = None) -> GraphSummary:
        """A Vitalyst-like sample graph, into an empty graph."""
        return load_sample(self.backend, nodes, seed=seed, progress=progress)

    def summary(self) -> GraphSummary:
        return summarize(self.backend)

    def server(self) -> ServerInfo:
        return self.backend.server_info()

    def indexes(self) -> list[IndexSpec]:
        return self.backend.indexes()

    def mark_demo(self) -> None:
        """What the demo loaded may be replaced by a later demo (the embedded Neo4j only)."""
        DevStack(self.settings).mark_demo(self.backend, self.endpoints)

    @contextlib.contextmanager
    def local_workers(self, count: int) -> Iterator[None]:
        """`count` worker processes for this graph and broker, stopped afterwards."""
        if count <= 0:
            yield
            return
        with LocalWorkers(count, self.endpoints, log_dir=self.settings.stack_dir / "workers"):
            yield


def new_migration(settings: Settings, name: str, *, kind: str = "py",
                  author: str = "unknown") -> Path:
    """Scaffold the next version's file in the migrations directory (no graph needed)."""
    return api.new_migration(settings.migrations_dir, name, kind=kind, author=author,
                             placeholders=settings.placeholders)


def default_author() -> str:
    """Who a new migration is by, when not said: the user running kgmigrate."""
    return default_holder().split("@")[0]


def demo(settings: Settings, *, replace: Callable[[GraphTarget, DemoGraph], bool]
         ) -> Migrations:
    """The facade over the demo's own graph on the embedded stack, emptied first (and only
    that graph: see `DevStack.reset_demo_graph`). A graph that holds anything (an earlier
    demo, the user's own nodes, applied migrations) is emptied only when `replace`, told
    what it holds, says so; otherwise it is left as it is and refused."""
    if settings.graph_url is not None:
        raise KgmError("the demo runs on the embedded stack; unset KGMIGRATE_GRAPH_URL")
    endpoints = resolve(settings)
    migrations = Migrations(settings, endpoints=endpoints,
                            backend=backend_for(endpoints.graph, settings, verify=True))
    try:
        stack = DevStack(settings)
        held = stack.demo_graph(migrations.backend, endpoints)
        if not held.empty and not replace(migrations.graph, held):
            raise KgmError(f"the demo's graph {migrations.graph.display} holds "
                           f"{held.describe()}; left as it is")
        stack.reset_demo_graph(migrations.backend, endpoints)
    except BaseException:
        migrations.close()
        raise
    return migrations


def serve_worker(queues: Sequence[str], *, concurrency: int, loglevel: str,
                 on_start: Callable[[GraphTarget], None] = lambda graph: None) -> None:
    """Run a Celery worker for the given queues in this process, until it is stopped.
    `on_start` is told the graph its tasks will write (before the worker starts)."""
    wanted = [q for q in queues if q]
    unknown = sorted(set(wanted) - set(QUEUE_MODULES))
    if unknown or not wanted:
        raise KgmError(f"unknown queue(s) {', '.join(unknown) or '(none)'}; "
                       f"use {BATCH_QUEUE} and/or {CONTROL_QUEUE}")
    endpoints = resolve(load_settings())
    on_start(endpoints.graph)
    logs.configure()  # kgmigrate's own lines: JSON with run, step and batch (by default)
    hooks.load_configured()  # KGMIGRATE_HOOKS: imported before the pool forks
    celery_app = configure(endpoints.broker_url.get_secret_value(),
                           endpoints.result_backend.get_secret_value())
    celery_app.conf.imports = [QUEUE_MODULES[q] for q in wanted]
    celery_app.worker_main(["worker", "-Q", ",".join(wanted), "-c", str(concurrency),
                            "-l", loglevel, "-n", f"kgm{os.getpid()}@%h",
                            "--without-gossip", "--without-mingle"])


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve_flower(*, port: int, address: str, insecure_local: bool) -> None:
    """Flower on kgmigrate's Celery app, in this process. Basic auth is required (or loopback
    only, when insecure_local); the credentials reach Flower through its environment, never a
    command line (which `ps` shows)."""
    settings = load_settings()
    user, password = settings.flower_user, settings.flower_password
    if insecure_local:
        if address not in LOOPBACK:
            raise ConfigError(f"--insecure-local serves loopback only, not {address}")
        export("FLOWER_BASIC_AUTH", None)
    elif not user or password is None or not password.get_secret_value():
        raise ConfigError("Flower needs basic auth: set KGMIGRATE_FLOWER_USER and "
                          "KGMIGRATE_FLOWER_PASSWORD (or pass --insecure-local to run "
                          "without, on loopback only)")
    else:
        export("FLOWER_BASIC_AUTH", f"{user}:{password.get_secret_value()}")
    endpoints = resolve(settings)
    celery_app = configure(endpoints.broker_url.get_secret_value(),
                           endpoints.result_backend.get_secret_value())
    celery_app.start(["flower", f"--port={port}", f"--address={address}",
                      "--purge_offline_workers=60"])
