"""The Python API: a thin layer of verbs over the registry, the ledger and the lock.

Every verb takes what it works on (a backend, a registry) and returns a pydantic result; the
CLI only formats those. `DataMigrationManager` keeps the ticket's names.
"""

import re
from pathlib import Path

from kgmigrate.config import Settings, load_settings
from kgmigrate.connect import open_backend
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.models import (
    AppliedMigration,
    MigrationListing,
    MigrationMetadata,
    MigrationState,
    PlannedMigration,
    PlannedStep,
    RepairResult,
    RunRecord,
    ValidationProblem,
    ValidationResult,
)
from kgmigrate.registry import Registry
from kgmigrate.versions import Version


def list_migrations(backend: GraphBackend, registry: Registry) -> list[MigrationListing]:
    """Every migration file, and every applied migration whose file is gone."""
    applied = {Version.parse(a.version): a for a in Ledger(backend).applied()}
    listings = []
    for version in registry.order:
        migration = registry.migrations[version]
        record = applied.get(version)
        state: MigrationState = ("pending" if record is None else
                 "applied" if record.checksum == migration.checksum else "checksum_mismatch")
        listings.append(MigrationListing(
            version=str(version), description=migration.description, state=state,
            checksum=migration.checksum, applied_at=record.applied_at if record else None))
    for version, record in applied.items():
        if version not in registry.migrations:
            listings.append(MigrationListing(version=record.version,
                                             description=record.description,
                                             state="missing_file", checksum=None,
                                             applied_at=record.applied_at))
    return listings


def validate(backend: GraphBackend, registry: Registry) -> ValidationResult:
    """Applied migrations must still have their file, unchanged."""
    problems = []
    listings = list_migrations(backend, registry)
    recorded = {a.version: a.checksum for a in Ledger(backend).applied()}
    for item in listings:
        if item.state == "checksum_mismatch":
            path = registry.get(item.version).file.path
            problems.append(ValidationProblem(
                version=item.version, kind="checksum_mismatch",
                message=f"{path.name} changed after it was applied: recorded checksum "
                        f"{recorded[item.version]}, file checksum {item.checksum}; restore the "
                        "file, or run `kgmigrate repair` if the change is intended"))
        elif item.state == "missing_file":
            problems.append(ValidationProblem(
                version=item.version, kind="missing_file",
                message=f"{item.version} ({item.description}) is applied but its file is gone"))
    return ValidationResult(problems=problems,
                            applied=sum(i.state != "pending" for i in listings),
                            pending=sum(i.state == "pending" for i in listings))


def ensure_valid(backend: GraphBackend, registry: Registry) -> None:
    """Refuse to go on (upgrade, plan) when applied migrations changed: name file and sums."""
    result = validate(backend, registry)
    if not result.valid:
        raise KgmError("; ".join(p.message for p in result.problems))


def repair(backend: GraphBackend, registry: Registry) -> RepairResult:
    """Re-record the checksums of applied migrations whose files changed, on purpose."""
    ledger = Ledger(backend)
    repaired = []
    for item in list_migrations(backend, registry):
        if item.state == "checksum_mismatch" and item.checksum is not None:
            ledger.set_checksum(item.version, item.checksum)
            repaired.append(item.version)
    return RepairResult(repaired=repaired)


def plan(backend: GraphBackend, registry: Registry,
         target: str | None = None) -> list[PlannedMigration]:
    """What `upgrade [target]` would run, with entities per batched step counted now.
    Reads only; writes nothing."""
    ensure_valid(backend, registry)
    applied = [Version.parse(a.version) for a in Ledger(backend).applied()]
    planned = []
    for version in registry.pending(applied, target):
        migration = registry.migrations[version]
        steps = []
        for order, op in enumerate(migration.definition.steps, start=1):
            scope = op.scope()
            estimate = None
            if scope is not None:
                estimate = int(backend.read(backend.dialect.count_scope(scope),
                                            dict(scope.params)).value("n"))
            steps.append(PlannedStep(order=order, description=op.description,
                                     operation=op.kind, batched=scope is not None,
                                     estimated_entities=estimate))
        planned.append(PlannedMigration(
            version=str(version), description=migration.description,
            depends_on=[str(v) for v in registry.dependencies[version]], steps=steps))
    return planned


def history(backend: GraphBackend) -> list[AppliedMigration]:
    return Ledger(backend).applied()


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
    # depends_on=["V0001"],  # default: the previous version
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


def new_migration(directory: Path, name: str, *, kind: str = "py",
                  author: str = "unknown") -> Path:
    """Scaffold the next version's file in `directory`."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise KgmError(f"{name!r} does not make a file name; use letters and digits")
    if kind not in {"py", "cypher"}:
        raise KgmError(f"kind must be py or cypher, got {kind!r}")
    directory.mkdir(parents=True, exist_ok=True)
    registry = Registry.load(directory)
    latest = max(registry.migrations, default=None)
    number = (latest.parts[0] + 1) if latest else 1
    width = max(4, len(latest.text.split("_")[0].split(".")[0])) if latest else 4
    path = directory / f"V{number:0{width}d}__{slug}.{kind}"
    template = PY_TEMPLATE if kind == "py" else CYPHER_TEMPLATE
    path.write_text(template.format(description=name.strip().replace('"', "'"), author=author))
    return path


class DataMigrationManager:
    """The ticket's entry point, over the embedded stack or the configured servers."""

    def __init__(self, settings: Settings | None = None, *,
                 backend: GraphBackend | None = None) -> None:
        self.settings = settings or load_settings()
        self.backend = backend or open_backend(self.settings)

    def registry(self) -> Registry:
        return Registry.load(self.settings.migrations_dir)

    def create_migration(self, metadata: MigrationMetadata) -> str:
        """Record a PENDING run of one migration; returns the run id."""
        return Ledger(self.backend).create_run([metadata], target=metadata.version).id

    def get_migration_status(self, migration_id: str) -> RunRecord | None:
        return Ledger(self.backend).run(migration_id)

    def close(self) -> None:
        self.backend.close()
