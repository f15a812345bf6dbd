"""All migrations of a directory, ordered by their dependencies, and its callbacks."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kgmigrate.errors import KgmError
from kgmigrate.model.callbacks import Callback, load_callbacks
from kgmigrate.model.dag import DependencyError, resolve_dependencies, topological_order
from kgmigrate.model.migration import LoadedMigration, load
from kgmigrate.model.records import MigrationMetadata
from kgmigrate.model.versions import MigrationFileError, Version, discover


@dataclass(frozen=True)
class Registry:
    migrations: dict[Version, LoadedMigration]
    dependencies: dict[Version, tuple[Version, ...]]
    order: list[Version]  # every migration after all it depends on
    callbacks: Mapping[str, tuple[Callback, ...]] = field(default_factory=dict)  # by phase

    @classmethod
    def load(cls, directory: Path, placeholders: Mapping[str, str] | None = None
             ) -> "Registry":
        """The directory's migrations; `placeholders` fill in `${nm:key}` in `.cypher` files
        (a placeholder without a value is an error naming the file)."""
        loaded = {m.version: load(m, placeholders) for m in discover(directory)}
        dependencies = resolve_dependencies({v: m.depends_on for v, m in loaded.items()})
        return cls(loaded, dependencies, topological_order(dependencies),
                   load_callbacks(directory, placeholders))

    def to_repeat(self, applied: Mapping[Version, str]) -> set[Version]:
        """The repeatable migrations to apply again: applied (`applied`: each applied version's
        recorded checksum) with a file that changed since, as neo4j-migrations decides."""
        return {v for v, recorded in applied.items()
                if v in self.migrations and self.migrations[v].file.repeatable
                and self.migrations[v].checksum != recorded}

    def require_undoable(self, undo: Iterable[Version], applied: Mapping[Version, str]) -> None:
        """Refuse to undo a repeatable migration whose file changed since it was applied: the
        file's inverse now belongs to another text than the one in force."""
        changed = self.to_repeat(applied)
        for version in undo:
            if version in changed:
                raise KgmError(
                    f"{version} ({self.migrations[version].file.path.name}) changed since it "
                    "was applied, so its inverse is not the one of what is in force; upgrade "
                    "first (it applies the file again) or restore the file, then downgrade")

    def callbacks_of(self, phase: str) -> tuple[Callback, ...]:
        return self.callbacks.get(phase, ())

    def __len__(self) -> int:
        return len(self.migrations)

    def get(self, version: str | Version) -> LoadedMigration:
        wanted = version if isinstance(version, Version) else Version.parse(version)
        try:
            return self.migrations[wanted]
        except KeyError:
            known = ", ".join(str(v) for v in self.order[-5:]) or "none"
            some = "the newest known" if len(self.order) > 5 else "known"
            raise KgmError(f"no migration {wanted} ({some}: {known})") from None

    def metadata(self, version: Version) -> MigrationMetadata:
        return self.migrations[version].metadata(self.dependencies[version])

    def down_metadata(self, version: Version) -> MigrationMetadata:
        return self.migrations[version].down_metadata(self.dependencies[version])

    def ancestors(self, version: Version) -> set[Version]:
        """`version` and everything it depends on, transitively."""
        seen: set[Version] = set()
        stack = [version]
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.dependencies[current])
        return seen

    def to_revert(self, applied: Sequence[Version], target: str) -> list[Version]:
        """What `downgrade target` would undo, given the applied migrations in the order they
        were applied: Alembic's rule, the target and its ancestors stay applied and every other
        applied migration is undone, the last applied first (`base`: all of them). So a
        migration applied before the target is undone too when the target does not depend on
        it. A target that is not applied is refused: there is nothing to go back to."""
        if target == "base":
            return list(reversed(applied))
        wanted = self.get(target).version
        if wanted not in applied:
            now = ", ".join(str(v) for v in applied) or "none"
            raise KgmError(f"{wanted} is not applied, so there is nothing to go back to: "
                           f"downgrade TARGET keeps TARGET applied (applied now: {now}; "
                           "`base` undoes all)")
        keep = self.ancestors(wanted)
        return [v for v in reversed(applied) if v not in keep]

    def out_of_order(self, applied: Iterable[Version], pending: Iterable[Version]
                     ) -> dict[Version, Version]:
        """Each of `pending` that an applied migration depends on, directly or not, with the
        highest such applied migration: applied now, it would run after what comes after it.
        In a linear chain (no `depends_on`) that is every pending version below the highest
        applied one; in a DAG, a branch no applied migration needs is not out of order."""
        later: dict[Version, Version] = {}
        for done in sorted(applied):
            if done in self.dependencies:  # an applied migration without a file: validate's
                for needed in self.ancestors(done) - {done}:
                    later[needed] = done  # ascending: the highest applied one wins
        return {v: later[v] for v in pending if v in later}

    def pending(self, applied: Iterable[Version], target: str | None = None) -> list[Version]:
        """What `upgrade [target]` would apply, in order: everything not applied that the
        target needs (the whole graph when no target is given)."""
        done = set(applied)
        wanted = (set(self.order) if target is None
                  else self.ancestors(self.get(target).version))
        return [v for v in self.order if v in wanted and v not in done]


__all__ = ["DependencyError", "MigrationFileError", "Registry"]
