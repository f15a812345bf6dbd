"""One facade, `Migrations`, over a graph and everything beside it (the migrations directory,
the broker, the backup store): the CLI's verbs and the ticket's managers all go through it, as
neo4j-migrations' `Migrations` does. It owns the connection; the verbs that change anything
take the migration lock (enqueueing a run, restoring a snapshot) or refuse while one is held.

The functions it calls (`kgmigrate.api`, `kgmigrate.runs`, `kgmigrate.checks`) take what they
work on and return the small result types of `kgmigrate.model.records`.
"""

from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from kgmigrate import api, checks, runs
from kgmigrate.backup.snapshot import Progress, SnapshotManifest, SnapshotRestore
from kgmigrate.backup.store import BackupStore, open_store
from kgmigrate.connect import Endpoints, open_backend, resolve
from kgmigrate.errors import KgmError
from kgmigrate.fingerprint import Fingerprint, fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger.lock import MigrationLock
from kgmigrate.model.records import (
    AppliedMigration,
    Conflict,
    LockInfo,
    MigrationListing,
    PlannedMigration,
    RepairResult,
    RunRecord,
    ValidationResult,
)
from kgmigrate.model.registry import Registry
from kgmigrate.monitoring.monitor import MigrationMetrics, MigrationMonitor
from kgmigrate.monitoring.report import build_report, write_report
from kgmigrate.runtime.settings import Settings, load_settings


class Migrations:
    """Every verb, over one graph. Use it as a context manager (it closes the connection)."""

    def __init__(self, settings: Settings | None = None, *,
                 backend: GraphBackend | None = None) -> None:
        self.settings = settings or load_settings()
        self.backend = backend or open_backend(self.settings)
        self._endpoints: Endpoints | None = None

    def __enter__(self) -> "Migrations":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

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
        return Registry.load(self.settings.migrations_dir)

    # -- what is there ----------------------------------------------------------------------

    def list_migrations(self) -> list[MigrationListing]:
        return checks.list_migrations(self.backend, self.registry())

    def plan(self, target: str | None = None) -> list[PlannedMigration]:
        return api.plan(self.backend, self.registry(), target)

    def history(self) -> list[AppliedMigration]:
        return api.history(self.backend)

    def validate(self) -> ValidationResult:
        return checks.validate(self.backend, self.registry())

    def repair(self) -> RepairResult:
        return api.repair(self.backend, self.registry())

    # -- runs -------------------------------------------------------------------------------

    def upgrade(self, target: str | None = None, *, created_by: str | None = None) -> str | None:
        """Start a run up to `target` (default: everything pending); its id, or None when
        nothing is pending. Workers serving the queues run it."""
        return runs.enqueue_migration(self.backend, self.registry(), self.endpoints,
                                      target=target, created_by=created_by)

    def downgrade(self, target: str) -> str | None:
        """Start undoing every applied migration `target` does not need (`base`: all)."""
        return runs.downgrade(self.backend, self.registry(), self.endpoints, target)

    def resume(self, run_id: str) -> None:
        runs.resume(self.backend, self.endpoints, run_id)

    def rollback(self, run_id: str, *, force: bool = False) -> None:
        """Restore what a failed run changed, from its undo log (also continues a rollback
        that stopped); `wait` for the outcome."""
        runs.rollback(self.backend, self.endpoints, run_id, force=force)

    def wait(self, run_id: str, *, timeout_s: float | None = None,
             on_progress: Callable[[RunRecord], None] | None = None) -> RunRecord:
        return runs.wait(self.backend, run_id, timeout_s=timeout_s, on_progress=on_progress)

    def status(self, run_id: str | None = None) -> RunRecord:
        """A run (default: the latest)."""
        return api.status(self.backend, run_id)

    def conflicts(self, run: RunRecord) -> list[Conflict]:
        """What a rollback left as it was (or restored only because it was forced)."""
        return runs.conflicts(self.store, run)

    def unlock(self, *, force: bool = False) -> LockInfo | None:
        """Clear the migration lock: an expired one always, a live one only with `force`;
        what was cleared (None: nothing was held)."""
        return MigrationLock(self.backend).break_lock(force=force)

    # -- watching ---------------------------------------------------------------------------

    def metrics(self, run_id: str) -> MigrationMetrics | None:
        return MigrationMonitor(self.backend).get_migration_metrics(run_id)

    def report(self, run_id: str, out_dir: Path | None = None) -> list[Path]:
        """Write the run's report (JSON, Markdown, PNG); the paths written."""
        built = build_report(self.backend, self.store, run_id)
        if built is None:
            raise KgmError(f"no run {run_id}")
        return write_report(built, out_dir or self.settings.reports_dir)

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


def new_migration(settings: Settings, name: str, *, kind: str = "py",
                  author: str = "unknown") -> Path:
    """Scaffold the next version's file in the migrations directory (no graph needed)."""
    return api.new_migration(settings.migrations_dir, name, kind=kind, author=author)
