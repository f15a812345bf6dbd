"""The Python API's classes, as thin adapters: `DataMigrationManager` over the facade
(`kgmigrate.service.Migrations`), and `SchemaEvolutionManager` and `DataTransformationManager`
as names for building operations in migration files. Those two describe changes; running them
is `upgrade`'s job (batched, validated, undo-logged), never a side effect of calling them.

    from kgmigrate.managers import SchemaEvolutionManager as schema
    steps = [schema.add_property("Compound", "review_status", "unreviewed"),
             schema.modify_relationship("TREATS", "TREATS_CONDITION")]
"""

from pathlib import Path

from kgmigrate import ops
from kgmigrate.api import BackupService
from kgmigrate.fingerprint import Fingerprint
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import (
    Conflict,
    DowngradePlan,
    MigrationMetadata,
    MigrationStatus,
    RunRecord,
)
from kgmigrate.model.registry import Registry
from kgmigrate.monitoring.monitor import MigrationMetrics
from kgmigrate.runtime.settings import Settings
from kgmigrate.service import Migrations


class SchemaEvolutionManager:
    add_property = staticmethod(ops.add_property)
    remove_property = staticmethod(ops.remove_property)
    rename_property = staticmethod(ops.rename_property)
    copy_property = staticmethod(ops.copy_property)
    add_label = staticmethod(ops.add_label)
    remove_label = staticmethod(ops.remove_label)
    rename_label = staticmethod(ops.rename_label)
    modify_relationship = staticmethod(ops.retype_relationship)
    invert_relationship = staticmethod(ops.invert_relationship)
    create_index = staticmethod(ops.create_index)
    drop_index = staticmethod(ops.drop_index)


class DataTransformationManager:
    transform_property = staticmethod(ops.transform_property)
    change_type = staticmethod(ops.change_type)
    python_transform = staticmethod(ops.python_transform)


class DataMigrationManager:
    """Migrations from Python: run, wait, roll back, revert, downgrade and monitor them, over
    the facade the CLI uses too (`kgmigrate.service.Migrations`)."""

    def __init__(self, settings: Settings | None = None, *,
                 backend: GraphBackend | None = None) -> None:
        self.migrations = Migrations(settings, backend=backend)
        self.settings, self.backend = self.migrations.settings, self.migrations.backend

    def registry(self) -> Registry:
        return self.migrations.registry()

    def create_migration(self, metadata: MigrationMetadata) -> str:
        """Record a PENDING run of one migration; returns the run id."""
        return Ledger(self.backend).create_run([metadata], target=metadata.version).id

    def get_migration_status(self, migration_id: str) -> RunRecord | None:
        return Ledger(self.backend).run(migration_id)

    def enqueue_migration(self, target: str | None = None) -> str | None:
        """Start a run up to `target` (default: everything pending) and return its id at
        once; None when there is nothing to apply. Workers serving the queues run it."""
        return self.migrations.upgrade(target)

    def wait(self, run_id: str, timeout_s: float | None = None) -> RunRecord:
        return self.migrations.wait(run_id, timeout_s=timeout_s)

    def execute_migration(self, target: str | None = None,
                          timeout_s: float | None = None) -> bool:
        """Apply what is pending (up to `target`) and wait; True when the run completed (or
        nothing was pending), False when it failed."""
        run_id = self.enqueue_migration(target)
        if run_id is None:
            return True
        return self.wait(run_id, timeout_s).status is MigrationStatus.COMPLETED

    def resume(self, run_id: str) -> None:
        self.migrations.resume(run_id)

    def downgrade(self, target: str) -> str | None:
        """Start undoing every applied migration that is neither `target` nor an ancestor of
        it, the last applied first (`base`: all); the run id, or None when there is nothing
        to undo. A migration without an inverse is restored from its run's undo log, in a
        run of its own: call again once a run has ended for the next. `plan_downgrade` shows
        the set, and how each is undone, first."""
        return self.migrations.downgrade(target)

    def plan_downgrade(self, target: str) -> DowngradePlan:
        """What `downgrade(target)` would undo, why, and the entities each step matches now."""
        return self.migrations.plan_downgrade(target)

    def rollback_migration(self, run_id: str, *, force: bool = False) -> None:
        """Restore what a failed run changed, from its undo log (also continues a rollback
        that stopped); `wait` for the outcome."""
        self.migrations.rollback(run_id, force=force)

    def revert(self, run_id: str) -> None:
        """Undo a completed upgrade run from its undo log (the last run applied, while its
        log is kept), under rollback's conflict rule; `wait` for the outcome."""
        self.migrations.revert(run_id)

    def conflicts(self, run_id: str) -> list[Conflict]:
        return self.migrations.conflicts(self.migrations.status(run_id))

    def fingerprint(self) -> Fingerprint:
        return self.migrations.fingerprint()

    def get_migration_metrics(self, run_id: str) -> MigrationMetrics | None:
        """A run's progress, throughput and errors, from the ledger (None: no such run)."""
        return self.migrations.metrics(run_id)

    def report(self, run_id: str, out_dir: Path | None = None) -> list[Path]:
        """Write the run's report (JSON, Markdown, PNG); the paths written."""
        return self.migrations.report(run_id, out_dir)

    @property
    def backup_service(self) -> BackupService:
        return BackupService(self.backend, self.migrations.store)

    def close(self) -> None:
        self.migrations.close()
