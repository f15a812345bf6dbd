"""What a migration file declares, and loading both kinds of file into it.

A Python migration (`V0001__add_age.py`) assigns a module-level `migration`:

    from kgmigrate import Migration, ops

    migration = Migration(
        author="ana",
        depends_on=["V0000"],          # default: the previous version (a linear chain)
        batch_size=10_000,
        steps=[ops.batched("Person", "SET e.age = coalesce(e.age, 0)", down="REMOVE e.age")],
    )

A Cypher migration (`V0002__index.cypher`) is statements separated by `;`, each a step run
once, with optional header comments (`// author: ana`, `// depends_on: V0001`,
`// batch_size: 500`, `// timeout: 600`, `// description: ...`), preconditions in
neo4j-migrations' grammar (`// assume that edition is enterprise`: see
`kgmigrate.model.preconditions`), placeholders `${nm:key}` (`kgmigrate.model.placeholders`) and
an optional `// kgmigrate:down` line after which come the statements that undo it. A `:use db`
line or `USING PERIODIC COMMIT` is refused naming the line (`kgmigrate.cypher.text.not_cypher`);
a statement with `CALL { ... } IN TRANSACTIONS` is a step like any other, run in an implicit
transaction (`kgmigrate.compile.StatementPlan.implicit`).
Loading a Python migration executes it, as Alembic does: migration files are code.
"""

import importlib.util
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

from kgmigrate.cypher import identifiers as ident
from kgmigrate.cypher.text import (
    CypherTextError,
    normalize_line_endings,
    not_cypher,
    split_statements,
    tokens,
)
from kgmigrate.errors import KgmError
from kgmigrate.model import placeholders as nm
from kgmigrate.model.preconditions import Precondition, PreconditionError, parse
from kgmigrate.model.records import MigrationMetadata, MigrationStep, ScopeInfo
from kgmigrate.model.versions import MigrationFile, MigrationFileError, Version, checksum
from kgmigrate.ops import Operation, RunCypher
from kgmigrate.ops.base import IrreversibleOperationError

DOWN_MARKER = re.compile(r"^\s*//\s*kgmigrate:down\s*$", re.MULTILINE)
HEADER = re.compile(r"^\s*//\s*(author|depends_on|batch_size|timeout|description)\s*:\s*(.*?)\s*$")


def _flatten(steps: "Sequence[Operation | Sequence[Operation]]") -> list[Operation]:
    flat: list[Operation] = []
    for step in steps:
        if isinstance(step, list | tuple):
            flat.extend(step)
        else:
            flat.append(step)  # type: ignore[arg-type]  # checked below
    return flat


@dataclass(frozen=True)
class Migration:
    steps: Sequence[Operation | Sequence[Operation]]
    description: str | None = None
    author: str | None = None
    depends_on: Sequence[str] | None = None
    batch_size: int = 10_000
    timeout: int = 3600
    # the explicit inverse; default: the steps' inverses in reverse order
    down: Sequence[Operation | Sequence[Operation]] | None = None
    # A snapshot before the run starts (or the configured external backup command); off by
    # default: the undo log already protects every batch.
    snapshot: bool = False
    # The property that names an entity for people (`"cid"`), or one per label or
    # relationship type (`{"Compound": "cid", "Gene": "symbol"}`): a failed validation names
    # the offending entities by it, beside their internal keys.
    business_key: str | Mapping[str, str] | None = None
    # `assume` / `assert` preconditions (a `.cypher` file's `// assume that ...` lines),
    # evaluated against the graph when a run is planned
    preconditions: Sequence[Precondition] = ()

    def __post_init__(self) -> None:
        # an op built of several steps (ops.move_property) is given as one item
        object.__setattr__(self, "steps", _flatten(self.steps))
        if self.down is not None:
            object.__setattr__(self, "down", _flatten(self.down))
        if not self.steps:
            raise KgmError("a migration needs at least one step")
        for step in [*self.steps, *(self.down or [])]:
            if not isinstance(step, Operation):
                raise KgmError(f"steps must be kgmigrate operations, got {type(step).__name__}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise KgmError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not isinstance(self.timeout, int) or self.timeout < 1:
            raise KgmError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        _check_business_key(self.business_key)
        for condition in self.preconditions:
            if not isinstance(condition, Precondition):
                raise KgmError("preconditions must be kgmigrate preconditions, got "
                               f"{type(condition).__name__}")

    def business_key_of(self, op: Operation) -> str | None:
        """The business key of `op`'s entities: the migration's, or its scope's label's."""
        scope = op.scope()
        if scope is None or self.business_key is None:
            return None
        if isinstance(self.business_key, str):
            return self.business_key
        return self.business_key.get(scope.name)

    @property
    def operations(self) -> list[Operation]:
        return cast(list[Operation], self.steps)  # flattened and checked in __post_init__

    @property
    def down_operations(self) -> list[Operation]:
        """The explicit inverse's steps (none when the inverse is the steps' own)."""
        return cast(list[Operation], self.down or [])

    def reverse_steps(self) -> list[Operation]:
        if self.down is not None:
            return self.down_operations
        return [step.reverse() for step in reversed(self.operations)]

    @property
    def reversible(self) -> bool:
        try:
            self.reverse_steps()
        except IrreversibleOperationError:
            return False
        return True


@dataclass(frozen=True)
class LoadedMigration:
    file: MigrationFile
    checksum: str
    definition: Migration
    depends_on: tuple[Version, ...] | None = field(default=None)  # None: the previous version

    @property
    def version(self) -> Version:
        return self.file.version

    @property
    def description(self) -> str:
        return self.definition.description or self.file.description

    def metadata(self, dependencies: Sequence[Version]) -> MigrationMetadata:
        return MigrationMetadata(
            version=str(self.version), description=self.description,
            created_by=self.definition.author or "unknown",
            steps=[step_record(i, op, self.definition.business_key_of(op))
                   for i, op in enumerate(self.definition.operations, start=1)],
            dependencies=[str(v) for v in dependencies],
            batch_size=self.definition.batch_size, timeout=self.definition.timeout,
            checksum=self.checksum, path=str(self.file.path), snapshot=self.definition.snapshot,
            repeatable=self.file.repeatable,
        )

    def inverse_steps(self) -> list[Operation]:
        """The steps that undo the migration (IrreversibleOperationError, naming the file and
        the op, when a step has no inverse)."""
        try:
            return self.definition.reverse_steps()
        except IrreversibleOperationError as exc:
            raise IrreversibleOperationError(
                f"{self.file.path.name} cannot be downgraded: {exc}") from None

    def down_metadata(self, dependencies: Sequence[Version]) -> MigrationMetadata:
        """The migration's inverse as a run of its own (IrreversibleOperationError, naming
        the op, when a step has no inverse)."""
        steps = self.inverse_steps()
        meta = self.metadata(dependencies)
        return meta.model_copy(update={
            "direction": "down", "description": f"undo: {meta.description}",
            "steps": [step_record(i, op, self.definition.business_key_of(op))
                      for i, op in enumerate(steps, start=1)]})


def step_record(order: int, op: Operation, business_key: str | None = None) -> MigrationStep:
    """How a step is recorded: the op's kind, scope and spec, and its business key."""
    scope = op.scope()
    return MigrationStep(
        order=order, description=op.description, operation=op.kind, batched=scope is not None,
        scope=ScopeInfo(entity=scope.entity, name=scope.name, where=scope.where)
        if scope else None, spec=op.spec(), business_key=business_key)


def _check_business_key(key: object) -> None:
    """A property name, or a mapping of labels (or relationship types) to property names;
    every name as safe as any identifier (`kgmigrate.cypher.identifiers`)."""
    if key is None:
        return
    try:
        if isinstance(key, str):
            ident.validate(key, ident.Kind.PROPERTY)
        elif isinstance(key, Mapping):
            for name, prop in key.items():
                ident.validate(name, ident.Kind.LABEL)
                ident.validate(prop, ident.Kind.PROPERTY)
        else:
            raise KgmError(f"must be a property name or a mapping of labels to property names, "
                           f"got {type(key).__name__}")
    except KgmError as exc:
        raise KgmError(f"business_key: {exc}") from None


def load(file: MigrationFile, placeholders: Mapping[str, str] | None = None
         ) -> LoadedMigration:
    """The file's migration; a `.cypher` file's placeholders are replaced by `placeholders`
    (its checksum stays that of the file as written)."""
    raw = file.path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MigrationFileError(f"{file.path.name}: not UTF-8 text") from None
    try:
        definition = (_load_python(file) if file.kind == "py"
                      else _load_cypher(file, text, placeholders or {}))
    except MigrationFileError:
        raise
    except (KgmError, ValueError, TypeError) as exc:
        raise MigrationFileError(f"{file.path.name}: {exc}") from None
    deps = definition.depends_on
    if isinstance(deps, str):
        raise MigrationFileError(f"{file.path.name}: depends_on must be a list of versions")
    try:
        depends_on = None if deps is None else tuple(Version.parse(d) for d in deps)
    except MigrationFileError as exc:
        raise MigrationFileError(f"{file.path.name}: depends_on: {exc}") from None
    return LoadedMigration(file, checksum(raw), definition, depends_on)


def _load_python(file: MigrationFile) -> Migration:
    module_name = f"kgmigrate_migrations.V{file.version.text}"
    spec = importlib.util.spec_from_file_location(module_name, file.path)
    if spec is None or spec.loader is None:
        raise MigrationFileError(f"{file.path.name}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # any error in user code is reported as a file error
        line = _user_line(exc, file.path)
        what = str(exc) if isinstance(exc, KgmError) else f"{type(exc).__name__}: {exc}"
        raise MigrationFileError(f"{file.path.name}{line}: {what}") from None
    finally:
        sys.modules.pop(module_name, None)
    migration = getattr(module, "migration", None)
    if not isinstance(migration, Migration):
        raise MigrationFileError(f"{file.path.name}: must assign `migration = Migration(...)` "
                                 "(from kgmigrate import Migration)")
    return migration


def _user_line(exc: BaseException, path: Path) -> str:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename) == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is None and isinstance(exc, SyntaxError) and exc.lineno:
        line = exc.lineno
    return f":{line}" if line else ""


def cypher_text(name: str, text: str) -> str:
    """A `.cypher` file's text as kgmigrate reads it (a migration's or a callback's): without
    a byte order mark, CRLF and a lone CR (old Mac files) ending lines as the checksum counts
    them; a `:use db` line or `USING PERIODIC COMMIT` refused, naming the line."""
    text = normalize_line_endings(text.removeprefix("\ufeff"))
    if found := not_cypher(text):
        line, why = found[0]
        raise MigrationFileError(f"{name}:{line}: {why}")
    return text


def _load_cypher(file: MigrationFile, text: str, values: Mapping[str, str]) -> Migration:
    text = cypher_text(file.path.name, text)
    up_text, *down_parts = DOWN_MARKER.split(text, maxsplit=1)
    headers: dict[str, str] = {}
    for line in up_text.splitlines():
        if match := HEADER.match(line):
            headers[match[1]] = match[2]
        elif line.strip() and not line.strip().startswith("//"):
            break
    try:
        preconditions, up_text = take_preconditions(up_text)
        if down_parts and (misplaced := take_preconditions(down_parts[0])[0]):
            raise MigrationFileError(
                f"{file.path.name}: precondition `{misplaced[0].text}` is after "
                "`// kgmigrate:down`; preconditions decide whether the migration runs: put "
                "them before it")
        nm.substitute(text, values)  # every placeholder without a value, in one message
        # split first, then fill in placeholders, as neo4j-migrations does: a value cannot
        # end a statement or open a comment
        up = [nm.substitute(s, values) for s in split_statements(up_text)]
        down = ([nm.substitute(s, values) for s in split_statements(down_parts[0])]
                if down_parts else None)
        preconditions = [p if p.query is None else
                         replace(p, query=nm.substitute(p.query, values))
                         for p in preconditions]
    except (CypherTextError, nm.PlaceholderError, PreconditionError) as exc:
        raise MigrationFileError(f"{file.path.name}: {exc}") from None
    if not up:
        raise MigrationFileError(f"{file.path.name}: no Cypher statements")

    def number(key: str, default: int) -> int:
        try:
            return int(headers.get(key, default))
        except ValueError:
            raise MigrationFileError(f"{file.path.name}: header {key}: not a whole number: "
                                     f"{headers[key]!r}") from None

    deps = headers.get("depends_on")
    steps = ([RunCypher(s) for s in up] if down is None else
             [RunCypher(s, file_down=down if i == 0 else []) for i, s in enumerate(up)])
    return Migration(
        steps=steps,
        description=headers.get("description"),
        author=headers.get("author"),
        depends_on=[d.strip() for d in deps.split(",") if d.strip()] if deps is not None else None,
        batch_size=number("batch_size", 10_000),
        timeout=number("timeout", 3600),
        down=[RunCypher(s) for s in down] if down is not None else None,
        preconditions=preconditions,
    )


def take_preconditions(text: str) -> tuple[list[Precondition], str]:
    """The preconditions among the `//` comments of `text` (quotes respected), and `text`
    without them: a precondition is never sent to the server as part of a statement."""
    found: list[Precondition] = []
    kept: list[str] = []
    for kind, chunk in tokens(text):
        condition = parse(chunk) if kind == "comment" and chunk.startswith("//") else None
        if condition is None:
            kept.append(chunk)
        else:
            found.append(condition)
    return found, "".join(kept)
