"""The Python API: a thin layer of verbs over the registry, the ledger and the lock.

Every verb takes what it works on (a backend, a registry) and returns a pydantic result; the
CLI only formats those. `DataMigrationManager` (kgmigrate.managers) is a class API over them.
"""

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from kgmigrate.backup.snapshot import (
    Progress,
    SnapshotManifest,
    SnapshotRestore,
    create_snapshot,
    list_snapshots,
    load_manifest,
    restore_snapshot,
)
from kgmigrate.backup.store import BackupStore
from kgmigrate.checks import ensure_valid, list_migrations, validate
from kgmigrate.compile import compile_op
from kgmigrate.engine.preview import preview_step
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.ledger.lock import MigrationLock
from kgmigrate.model.records import (
    AppliedMigration,
    DowngradePlan,
    PlannedMigration,
    PlannedStep,
    PlannedUndo,
    RepairResult,
    RunRecord,
)
from kgmigrate.model.registry import Registry
from kgmigrate.model.versions import Version
from kgmigrate.ops import Operation
from kgmigrate.preflight import preflight
from kgmigrate.runs import downgrade_legs
from kgmigrate.runtime.settings import load_settings

__all__ = ["downgrade_plan", "ensure_valid", "history", "list_migrations",
           "new_migration", "plan", "repair", "status", "validate"]


def repair(backend: GraphBackend, registry: Registry) -> RepairResult:
    """Re-record the checksums of applied migrations whose files changed, on purpose."""
    ledger = Ledger(backend)
    repaired = []
    for item in list_migrations(backend, registry):
        if item.state == "checksum_mismatch" and item.checksum is not None:
            ledger.set_checksum(item.version, item.checksum)
            repaired.append(item.version)
    return RepairResult(repaired=repaired)


def plan(backend: GraphBackend, registry: Registry, target: str | None = None, *,
         out_of_order: bool = False, preview: int | None = None) -> list[PlannedMigration]:
    """What `upgrade [target]` would run, with entities per batched step counted now, and
    what it would skip (an `assume` precondition that does not hold; `skipped` says which).
    Refused as `upgrade` would be: a failed `assert`, a migration out of order (unless
    `out_of_order`). `preview`: each batched step's change on its first so many entities too,
    made where it changes nothing (`engine.preview`). Reads only; writes nothing."""
    ensure_valid(backend, registry)
    checked = preflight(backend, registry, target, out_of_order=out_of_order)
    checked.refuse()
    skips = {skip.version: skip.reason for skip in checked.new_skips}
    planned = []
    for version in registry.order:
        migration = registry.migrations[version]
        if version in skips:
            planned.append(PlannedMigration(
                version=str(version), description=migration.description,
                depends_on=[str(v) for v in registry.dependencies[version]], steps=[],
                skipped=skips[version]))
            continue
        if version not in checked.run:
            continue
        planned.append(PlannedMigration(
            version=str(version), description=migration.description,
            depends_on=[str(v) for v in registry.dependencies[version]],
            steps=_counted(backend, migration.definition.operations, preview)))
    return planned


def downgrade_plan(backend: GraphBackend, registry: Registry, target: str, *,
                   count: bool = True) -> DowngradePlan:
    """What `downgrade target` would undo (`Registry.to_revert`), the last applied first,
    each with why (applied after the target, or before it but not an ancestor of it) and how
    (`runs.downgrade_legs`): its inverse's steps with the entities each matches now, or the
    steps of the run whose undo log restores it, with the entities each changed (`count=False`:
    no steps, no counting). Refused like the downgrade itself: a migration neither an inverse
    nor an undo log can undo, a target that is not applied. Reads only; writes nothing."""
    ensure_valid(backend, registry)
    ledger = Ledger(backend)
    applied = ledger.applied()
    versions = [Version.parse(a.version) for a in applied]
    undo = registry.to_revert(versions, target)
    registry.require_undoable(undo, {Version.parse(a.version): a.checksum for a in applied})
    by_log = {version: leg.revert_run for leg in downgrade_legs(ledger, registry, undo)
              for version in leg.versions if leg.revert_run is not None}
    position = {v: i for i, v in enumerate(versions, start=1)}
    target_at = 0 if target == "base" else position[registry.get(target).version]
    planned = []
    for version in undo:
        migration = registry.migrations[version]
        run_id = by_log.get(version)
        steps = [] if not count else (
            _logged(ledger, run_id, version) if run_id is not None
            else _counted(backend, migration.inverse_steps()))
        planned.append(PlannedUndo(
            version=str(version), description=migration.description,
            depends_on=[str(v) for v in registry.dependencies[version]], steps=steps,
            applied_order=position[version], applied_at=applied[position[version] - 1].applied_at,
            reason="applied_after_target" if position[version] > target_at
            else "not_an_ancestor", undone_by="undo_log" if run_id else "inverse",
            revert_run=run_id))
    return DowngradePlan(target=target, keep=[str(v) for v in versions if v not in undo],
                         undo=planned)


def _logged(ledger: Ledger, run_id: str, version: Version) -> list[PlannedStep]:
    """The steps run `run_id` took for `version`, with the entities each changed: what its
    undo log restores."""
    steps = [step for step in ledger.require_run(run_id).steps if step.version == str(version)]
    return [PlannedStep(order=n, description=step.description, operation=step.operation,
                        batched=step.batched,
                        estimated_entities=step.entities_done if step.batched else None)
            for n, step in enumerate(steps, start=1)]


def _counted(backend: GraphBackend, operations: Sequence[Operation],
             preview: int | None = None) -> list[PlannedStep]:
    """Each step, with the entities its scope matches now (None: unbatched, runs once);
    `preview`: and its change on its first so many entities (`engine.preview`)."""
    steps = []
    for order, op in enumerate(operations, start=1):
        scope = compile_op(op, backend.dialect.name).scope
        estimate = None
        if scope is not None:
            estimate = int(backend.read(backend.dialect.count_scope(scope),
                                        dict(scope.params)).value("n"))
        shown, note = preview_step(backend, op, preview) if preview else (None, None)
        steps.append(PlannedStep(order=order, description=op.description, operation=op.kind,
                                 batched=scope is not None, estimated_entities=estimate,
                                 preview=shown, preview_note=note))
    return steps


def history(backend: GraphBackend) -> list[AppliedMigration]:
    """The chain, oldest first: applied migrations, and those a precondition skipped."""
    return Ledger(backend).history()


def status(backend: GraphBackend, run_id: str | None = None) -> RunRecord:
    ledger = Ledger(backend)
    if run_id is None:
        runs = ledger.runs(limit=1)
        if not runs:
            raise KgmError("no runs recorded yet")
        return runs[0]
    run = ledger.run(run_id)
    if run is None:
        raise KgmError(f"no run {run_id}")
    return run


PY_TEMPLATE = '''"""{description}"""

from kgmigrate import Migration, ops

migration = Migration(
    author="{author}",
    {depends_on}
    steps=[
        ops.batched("MyLabel", "SET e.my_property = $value", value=0,
                    down="REMOVE e.my_property"),
    ],
)
'''
CYPHER_TEMPLATE = """// description: {description}
// author: {author}
// Statements end with ';'. Each runs once, in order.

// kgmigrate:down
"""


def new_migration(directory: Path, name: str, *, kind: str = "py", author: str = "unknown",
                  placeholders: Mapping[str, str] | None = None) -> Path:
    """Scaffold the next version's file in `directory`."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise KgmError(f"{name!r} does not make a file name; use letters and digits")
    if kind not in {"py", "cypher"}:
        raise KgmError(f"kind must be py or cypher, got {kind!r}")
    directory.mkdir(parents=True, exist_ok=True)
    registry = Registry.load(directory, placeholders)
    latest = max(registry.migrations, default=None)
    number = (latest.parts[0] + 1) if latest else 1
    width = max(4, len(latest.text.split("_")[0].split(".")[0])) if latest else 4
    path = directory / f"V{number:0{width}d}__{slug}.{kind}"
    template = PY_TEMPLATE if kind == "py" else CYPHER_TEMPLATE
    needs = (f'# depends_on=["{latest}"],  # versions to apply first (default: the one '
             f'before it, {latest})' if latest else
             "# depends_on=[],  # versions to apply first (default: the one before it)")
    path.write_text(template.format(description=name.strip().replace('"', "'"), author=author,
                                    depends_on=needs))
    return path


class BackupService:
    """Snapshots of the graph (or some labels) in the backup store: create, list, restore."""

    def __init__(self, backend: GraphBackend, store: BackupStore) -> None:
        self.backend, self.store = backend, store

    def create_backup(self, labels: Sequence[str] = (), *,
                      progress: Progress | None = None) -> SnapshotManifest:
        return create_snapshot(self.backend, self.store, labels=labels, progress=progress)

    def restore_backup(self, snapshot_id: str, *, verify: bool = True,
                       progress: Progress | None = None) -> SnapshotRestore:
        """Replace what the snapshot covers with it, holding the migration lock meanwhile
        (refused while a migration runs)."""
        load_manifest(self.store, snapshot_id)  # a clear error before taking the lock
        lock = MigrationLock(self.backend, lease_s=load_settings().lock_lease_s)
        with lock.held(f"restore {snapshot_id}"):
            return restore_snapshot(self.backend, self.store, snapshot_id, verify=verify,
                                    progress=progress)

    def list_backups(self) -> list[SnapshotManifest]:
        return list_snapshots(self.store)
