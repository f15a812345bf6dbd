"""Before a run is planned: the migrations' preconditions and the out-of-order guard.

`plan` and `upgrade` (and `validate`, which reports what they would refuse) evaluate them in
the process that plans the run, before anything is written, against the graph's server:

- `assert` preconditions of every migration the upgrade would apply must hold, or nothing runs
  (each failure names the file and the precondition);
- a migration whose `assume` precondition does not hold is skipped: it leaves the run and is
  recorded as skipped in the chain (not applied, not pending). As in neo4j-migrations, which
  evaluates preconditions at each run, it is evaluated again by each later upgrade, and runs
  when its assumption holds then; being lower than migrations applied since, the out-of-order
  guard asks for that to be allowed first;
- a pending migration that an applied migration comes after (depends on, directly or not: in
  a linear chain, any version below the highest applied one) is refused unless out-of-order
  runs are allowed (`--out-of-order`, KGMIGRATE_OUT_OF_ORDER), neo4j-migrations' default.
"""

from dataclasses import dataclass

from kgmigrate.errors import BackendError, KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.graph.types import ServerInfo
from kgmigrate.ledger import Ledger
from kgmigrate.model.migration import LoadedMigration
from kgmigrate.model.preconditions import Precondition
from kgmigrate.model.records import ValidationProblem
from kgmigrate.model.registry import Registry
from kgmigrate.model.versions import Version

OUT_OF_ORDER_HINT = ("kgmigrate applies migrations in order: allow it with `--out-of-order` "
                     "(KGMIGRATE_OUT_OF_ORDER=true), or give it a version above the applied "
                     "ones")


@dataclass(frozen=True)
class Skip:
    version: Version
    reason: str  # the `assume` precondition that does not hold, and on what
    recorded: bool  # the chain already records it skipped (by an earlier upgrade)


@dataclass(frozen=True)
class Preflight:
    run: list[Version]  # what the upgrade applies, in order
    skips: list[Skip]  # what it skips, in order
    problems: list[ValidationProblem]  # what refuses it: failed assertions, out of order

    @property
    def new_skips(self) -> list[Skip]:
        """The skips the chain does not record yet: the upgrade records them."""
        return [skip for skip in self.skips if not skip.recorded]

    def refuse(self) -> None:
        """Stop (`plan`, `upgrade`) when an assertion fails or a migration is out of order."""
        if self.problems:
            raise KgmError("; ".join(problem.message for problem in self.problems))


def preflight(backend: GraphBackend, registry: Registry, target: str | None = None, *,
              out_of_order: bool = False) -> Preflight:
    """What `upgrade [target]` would apply and skip, and what refuses it. Reads only."""
    ledger = Ledger(backend)
    checksums = {Version.parse(a.version): a.checksum for a in ledger.applied()}
    repeat = registry.to_repeat(checksums)  # pending again, in their place
    applied = [v for v in checksums if v not in repeat]
    # nor is one whose repeat a rollback undid out of order: it was applied in its place
    in_place = repeat | {Version.parse(h.version) for h in ledger.history()
                         if h.state == "undone"}
    recorded = {Version.parse(v) for v in ledger.skipped()}
    server = _Server(backend)
    run: list[Version] = []
    skips: list[Skip] = []
    problems: list[ValidationProblem] = []
    for version in registry.pending(applied, target):
        migration = registry.migrations[version]
        try:
            reason = _assumption_failing(backend, server, migration)
        except KgmError as exc:
            problems.append(ValidationProblem(version=str(version), kind="precondition",
                                              message=str(exc)))
            continue
        if reason is None:
            run.append(version)
        else:
            skips.append(Skip(version, reason, version in recorded))
    if not out_of_order:
        for version, later in registry.out_of_order(
                checksums, [v for v in run if v not in in_place]).items():
            name = registry.migrations[version].file.path.name
            again = (" (skipped earlier by a precondition that holds now)"
                     if version in recorded else "")
            problems.append(ValidationProblem(
                version=str(version), kind="out_of_order",
                message=f"{version} ({name}) is pending{again} but {later}, which comes after "
                        f"it, is already applied; {OUT_OF_ORDER_HINT}"))
    return Preflight(run, skips, problems)


class _Server:
    """The server's facts, asked once and only when a precondition needs them."""

    def __init__(self, backend: GraphBackend) -> None:
        self.backend = backend
        self._info: ServerInfo | None = None

    @property
    def info(self) -> ServerInfo:
        if self._info is None:
            self._info = self.backend.server_info()
        return self._info


def _assumption_failing(backend: GraphBackend, server: _Server,
                        migration: LoadedMigration) -> str | None:
    """Why the migration is skipped (an `assume` that does not hold), or None when it runs;
    raises KgmError, naming the file and the precondition, when an `assert` does not hold or
    a precondition cannot be evaluated. Assertions first, as neo4j-migrations does."""
    name = migration.file.path.name
    conditions = sorted(migration.definition.preconditions, key=lambda c: c.assumption)
    for condition in conditions:
        held, why = _evaluate(backend, server, name, condition)
        if held:
            continue
        if condition.assumption:
            return why
        raise KgmError(f"{name}: precondition {why}")
    return None


def _evaluate(backend: GraphBackend, server: _Server, name: str,
              condition: Precondition) -> tuple[bool, str]:
    """Whether the precondition holds, and if not, why (for the message or the chain)."""
    if condition.query is None:
        return condition.holds_on(server.info), condition.not_holding(server.info)
    try:
        result = backend.read(condition.query)
    except BackendError as exc:
        if exc.transient:
            raise
        raise KgmError(f"{name}: precondition `{condition.text}` could not be evaluated "
                       f"(it must be a read-only query): {exc}") from None
    values = [next(iter(record.values()), None) for record in result.records]
    if len(values) != 1 or not isinstance(values[0], bool):
        got = f"{len(values)} rows" if len(values) != 1 else repr(values[0])
        raise KgmError(f"{name}: precondition `{condition.text}` must return one boolean, "
                       f"got {got}")
    return values[0], f"`{condition.text}` is false on this graph"
