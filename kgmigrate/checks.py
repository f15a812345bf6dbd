"""Are the applied migrations' files still there and unchanged? (validate, and the refusal
that `plan` and `upgrade` make when they are not.) Would an upgrade be refused by a failed
`assert` precondition or a migration out of order? (validate reports it: `kgmigrate.preflight`.)
Can the server take every value the migrations hold, and run every statement? (checked as they
load)"""

from collections.abc import Iterator

from kgmigrate.compile import StatementPlan, compile_op, sent_values
from kgmigrate.cypher.text import needs_implicit_transaction
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.model.records import (
    MigrationListing,
    MigrationState,
    ValidationProblem,
    ValidationResult,
)
from kgmigrate.model.registry import Registry
from kgmigrate.model.versions import MigrationFileError, Version
from kgmigrate.ops import Operation
from kgmigrate.preflight import preflight


def list_migrations(backend: GraphBackend, registry: Registry) -> list[MigrationListing]:
    """Every migration file, and every applied migration whose file is gone. A migration an
    `assume` precondition skipped is `skipped` (with why), until an upgrade finds that its
    assumption holds (`kgmigrate.preflight`); so is a changed repeatable one whose new file an
    upgrade skipped (its earlier application stays in force)."""
    ledger = Ledger(backend)
    applied = {Version.parse(a.version): a for a in ledger.applied()}
    order = {version: i for i, version in enumerate(applied, start=1)}  # applied, in order
    skipped = {Version.parse(v): s for v, s in ledger.skipped().items()}
    repeat = registry.to_repeat({v: a.checksum for v, a in applied.items()})
    listings = []
    for version in registry.order:
        migration = registry.migrations[version]
        record = applied.get(version)
        skip = skipped.get(version)
        if record is not None and not (version in repeat and skip is not None
                                       and skip.checksum == migration.checksum):
            skip = None  # a skip counts for an applied one only as that of its changed file
        state: MigrationState = (
            "skipped" if skip is not None else
            "pending" if record is None or version in repeat else
            "applied" if record.checksum == migration.checksum else "checksum_mismatch")
        reason = (_skipped_repeat(skip.reason) if skip is not None and record is not None else
                  skip.reason if skip is not None else
                  "repeatable, changed since it was applied: applied again by the next upgrade"
                  if version in repeat else None)
        listings.append(MigrationListing(
            version=str(version), description=migration.description, state=state,
            checksum=migration.checksum, applied_at=record.applied_at if record else None,
            depends_on=[str(v) for v in registry.dependencies[version]],
            applied_order=order.get(version), reason=reason,
            repeatable=migration.file.repeatable))
    for version, record in applied.items():
        if version not in registry.migrations:
            listings.append(MigrationListing(version=record.version,
                                             description=record.description,
                                             state="missing_file", checksum=None,
                                             applied_at=record.applied_at,
                                             applied_order=order[version]))
    return listings


def _skipped_repeat(reason: str | None) -> str:
    return (f"repeatable, changed since it was applied, and not applied again: {reason or '?'} "
            "(what it applied before stays in force; the next upgrade checks again)")


def validate(backend: GraphBackend, registry: Registry, *,
             out_of_order: bool = False) -> ValidationResult:
    """Applied migrations must still have their file, unchanged; and what an upgrade would
    refuse is reported: a failed `assert` precondition, a migration out of order (unless
    `out_of_order` allows it)."""
    result = _validate_files(backend, registry)
    checked = preflight(backend, registry, out_of_order=out_of_order)
    return result.model_copy(update={"problems": [*result.problems, *checked.problems]})


def _validate_files(backend: GraphBackend, registry: Registry) -> ValidationResult:
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
                            applied=sum(i.state not in ("pending", "skipped") for i in listings),
                            pending=sum(i.state == "pending" for i in listings),
                            skipped=sum(i.state == "skipped" for i in listings))


def ensure_valid(backend: GraphBackend, registry: Registry) -> None:
    """Refuse to go on (upgrade, plan, downgrade) when applied migrations changed: name file
    and sums. (What else refuses an upgrade is `kgmigrate.preflight`'s.)"""
    result = _validate_files(backend, registry)
    if not result.valid:
        raise KgmError("; ".join(p.message for p in result.problems))


def check_values(backend: GraphBackend, registry: Registry) -> None:
    """Refuse a value the server cannot store (NaN, infinity, an integer past 64 bits, a NUL
    character on FalkorDB) as the migrations load, naming the file, the step and the op's
    field: every verb stops before writing anything, where the run would otherwise be
    recorded and fail at that step. So too a statement the server cannot run for want of
    implicit transactions (`CALL { ... } IN TRANSACTIONS` on FalkorDB)."""
    for where, op in _steps(registry):
        try:
            for field, value in sent_values(op, backend.dialect.name).items():
                backend.check_value(value, field)
        except KgmError as exc:
            raise MigrationFileError(f"{where}: {exc}") from None
    if not backend.dialect.implicit_transactions:
        _check_implicit(backend, registry)


def _check_implicit(backend: GraphBackend, registry: Registry) -> None:
    """Refuse the first statement that needs an implicit transaction: a step's own (a
    `.cypher` file's down section is down steps), else one of a step's down statements."""
    plans = [(where, compile_op(op, backend.dialect.name)) for where, op in _steps(registry)]
    statements = [(where, plan) for where, plan in plans if isinstance(plan, StatementPlan)]
    found = next((where for where, plan in statements if plan.statement in plan.implicit),
                 None) or next((f"{where}, its down statement" for where, plan in statements
                                if plan.implicit), None)
    if found is not None:
        raise MigrationFileError(
            f"{found}: `CALL {{ ... }} IN TRANSACTIONS` needs an implicit transaction, which "
            f"{backend.server_info().version} does not have; write it as a batched step "
            "instead, `ops.batched(label, apply)` in a .py migration, which kgmigrate commits "
            "batch by batch")
    callback = next((f"{c.name}, statement {number}" for phase in registry.callbacks.values()
                     for c in phase for number, statement in enumerate(c.statements, start=1)
                     if needs_implicit_transaction(statement)), None)
    if callback is not None:
        raise MigrationFileError(
            f"{callback}: `CALL {{ ... }} IN TRANSACTIONS` needs an implicit transaction, which "
            f"{backend.server_info().version} does not have; write the callback's statement "
            "without it (a callback is not batched)")


def _steps(registry: Registry) -> Iterator[tuple[str, Operation]]:
    """Every step and explicit down step of every migration, with where it is
    (`V0001__x.cypher: step 1 (MATCH ...)`)."""
    for version in registry.order:
        migration = registry.migrations[version]
        steps = [(f"step {i}", op) for i, op in enumerate(migration.definition.operations, 1)]
        steps += [(f"down step {i}", op)
                  for i, op in enumerate(migration.definition.down_operations, 1)]
        for step, op in steps:
            yield f"{migration.file.path.name}: {step} ({op.description})", op
