"""`kgmigrate import-chain`: adopt the chain of migrations neo4j-migrations applied to a Neo4j
graph, so that kgmigrate does not run them again.

neo4j-migrations keeps its chain in the graph it migrates (unless told to use a separate
schema database), as nodes linked from a baseline node in the order they were applied:

    (:__Neo4jMigration {version: 'BASELINE'})
      -[:MIGRATED_TO {at: datetime, in: duration, by: installedBy, connectedAs: user}]->
    (:__Neo4jMigration {version: '0001', description, type: 'CYPHER', repeatable: false,
                        source: 'V0001__first.cypher', checksum: '1100083332'})
      -[:MIGRATED_TO {...}]-> ...

The import reads that chain (reads only: the `__Neo4jMigration` nodes are left as they are),
matches each version to a file of the migrations directory, compares checksums where they
can be compared (`kgmigrate.model.nm_checksum`: neo4j-migrations' CRC32 is not kgmigrate's
SHA-256, so the file's is computed as neo4j-migrations computes it), and records the chain,
under the migration lock, as kgmigrate's own (`Ledger.adopt`). It is refused, in one line and
before anything is written, on FalkorDB (neo4j-migrations runs on Neo4j only: no chain of its
can be there), when kgmigrate's chain already has entries, while neo4j-migrations holds its
lock, when there is no chain (or only chains of other databases, kept in this one as their
schema database), when the chain branches or repeats a version, holds a repeatable migration,
names a version that has no file, or names a file that is not the one it applied.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kgmigrate.cypher import identifiers as ident
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import Ledger
from kgmigrate.ledger.lock import MigrationLock, default_holder
from kgmigrate.model import nm_checksum
from kgmigrate.model.migration import LoadedMigration
from kgmigrate.model.records import AdoptedMigration, AdoptionPlan, MigrationMetadata
from kgmigrate.model.registry import Registry
from kgmigrate.model.versions import MigrationFileError, Version

TOOL = "neo4j-migrations"
NM_MIGRATION = ident.label("__Neo4jMigration")
NM_LOCK = ident.label("__Neo4jMigrationsLock")
NM_MIGRATED_TO = ident.rel_type("MIGRATED_TO")
NM_IN = ident.prop("in")

NM_LOCKS = f"MATCH (l:{NM_LOCK}) RETURN count(l) AS n"
# The chains in this graph, by the database each is for (null: this one).
NM_TARGETS = (f"MATCH (n:{NM_MIGRATION}) "
              "RETURN n.migrationTarget AS target, count(n) AS nodes ORDER BY target")
# This graph's chain, from its baseline to its last link, as neo4j-migrations reads it.
NM_CHAIN = (
    f"MATCH (b:{NM_MIGRATION} {{version: 'BASELINE'}}) WHERE b.migrationTarget IS NULL "
    f"MATCH p = (b)-[:{NM_MIGRATED_TO}*]->(last:{NM_MIGRATION}) "
    f"WHERE NOT EXISTS {{ (last)-[:{NM_MIGRATED_TO}]->(:{NM_MIGRATION}) }} "
    "RETURN [r IN relationships(p) | {version: endNode(r).version, "
    "description: endNode(r).description, type: endNode(r).type, source: endNode(r).source, "
    "checksum: endNode(r).checksum, repeatable: coalesce(endNode(r).repeatable, false), "
    "failed: coalesce(endNode(r).flyway_failed, false), "
    "at: CASE WHEN r.at IS :: ZONED DATETIME THEN r.at.epochMillis END, "
    f"took: CASE WHEN r.{NM_IN} IS :: DURATION THEN r.{NM_IN}.milliseconds END, "
    "by: r.by, connected_as: r.connectedAs}] AS links"
)


@dataclass(frozen=True)
class Link:
    """An applied migration of neo4j-migrations' chain, as read."""

    version: Version
    type: str
    source: str
    checksum: str | None
    applied_at: datetime
    applied_by: str
    duration_ms: int


def require_neo4j(backend: GraphBackend) -> None:
    """neo4j-migrations runs on Neo4j only: on FalkorDB there is no chain of its to adopt."""
    if backend.dialect.name != "neo4j":
        raise KgmError(
            f"import-chain adopts the chain neo4j-migrations keeps in a Neo4j graph; "
            f"{backend.target.display} is FalkorDB, which neo4j-migrations does not run on, so "
            "no chain of its is there to adopt (`kgmigrate upgrade` applies the migrations)")


def import_chain(backend: GraphBackend, registry: Registry, directory: Path, *,
                 dry_run: bool = False, lease_s: float = 900.0,
                 adopted_by: str | None = None) -> AdoptionPlan:
    """Adopt the graph's neo4j-migrations chain into kgmigrate's (empty) chain, under the
    migration lock, matched to the files of `registry` (read from `directory`); `dry_run`:
    what would be adopted, reading only."""
    require_neo4j(backend)
    plan, _ = survey(backend, registry, directory)  # a refusal writes nothing, not the lock
    if dry_run:
        return plan.model_copy(update={"dry_run": True})
    by = adopted_by or default_holder()
    with MigrationLock(backend, lease_s=lease_s).held(by):
        plan, metadata = survey(backend, registry, directory)  # as it is under the lock
        Ledger(backend).adopt(list(zip(metadata, plan.adopted, strict=True)), tool=TOOL,
                              adopted_by=by)
    return plan


def survey(backend: GraphBackend, registry: Registry, directory: Path
           ) -> tuple[AdoptionPlan, list[MigrationMetadata]]:
    """What the import would adopt (and each one's metadata from its file), or the one-line
    refusal. Reads only."""
    where = backend.target.display
    ledger = Ledger(backend)
    if entries := ledger.entries():
        applied = ", ".join(a.version for a in ledger.applied()) or "none"
        raise KgmError(
            f"kgmigrate's chain on {where} already has {entries} "
            f"entr{'y' if entries == 1 else 'ies'} (applied: {applied}); import-chain adopts "
            "a neo4j-migrations chain into an empty one only, so that nothing is recorded or "
            "run twice")
    if int(backend.read(NM_LOCKS).value("n")):
        raise KgmError(
            f"neo4j-migrations holds its lock on {where} (a :__Neo4jMigrationsLock node): it "
            "may be migrating this graph now; wait until it is done (a lock it left behind "
            "when it crashed is cleared by its `unlock`)")
    links = _links(backend, where)
    migrations = _matched(links, registry, directory, where)
    adopted = [_adopted(link, migration) for link, migration in zip(links, migrations,
                                                                    strict=True)]
    versions = [link.version for link in links]
    rest = registry.pending(versions)
    later = registry.out_of_order(versions, rest)
    plan = AdoptionPlan(adopted=adopted, not_in_chain=[str(v) for v in rest if v in later],
                        pending=[str(v) for v in rest if v not in later])
    return plan, [registry.metadata(v) for v in versions]


def _links(backend: GraphBackend, where: str) -> list[Link]:
    """The chain's applied migrations, in the order they were applied."""
    targets = {row["target"]: int(row["nodes"]) for row in backend.read(NM_TARGETS).records}
    if None not in targets:
        if targets:
            others = ", ".join(sorted(str(t) for t in targets))
            raise KgmError(
                f"the :__Neo4jMigration nodes on {where} are neo4j-migrations chains of other "
                f"databases (migrationTarget {others}): this is their schema database. "
                "kgmigrate keeps a graph's chain in the graph itself and adopts the chain "
                "kept in the graph it migrates only")
        raise KgmError(
            f"no neo4j-migrations chain on {where}: it has no :__Neo4jMigration nodes (a "
            "chain neo4j-migrations kept in a separate schema database is not read: run "
            "import-chain against a graph that holds its own chain)")
    paths = backend.read(NM_CHAIN).records
    if len(paths) > 1:
        raise KgmError(
            f"the neo4j-migrations chain on {where} branches ({len(paths)} last migrations "
            "after its BASELINE), which neo4j-migrations refuses too: repair it with "
            "neo4j-migrations' `repair` first")
    # As neo4j-migrations reads its chain: a failed Flyway import, a node without a version
    # or a deletion marker is not an applied migration.
    rows = [row for row in (paths[0]["links"] if paths else [])
            if not row["failed"] and row["version"] is not None and row["type"] != "DELETE"]
    if not rows:
        raise KgmError(
            f"the neo4j-migrations chain on {where} has no applied migration (its BASELINE "
            "only); nothing to adopt: `kgmigrate upgrade` applies every migration")
    links = [_link(row, where) for row in rows]
    repeatable = [str(row["source"] or row["version"]) for row in rows if row["repeatable"]]
    if repeatable:
        raise KgmError(
            f"the neo4j-migrations chain on {where} holds repeatable migrations "
            f"({', '.join(repeatable)}), which import-chain does not adopt (their repeats "
            "are not read); it cannot take over this chain")
    seen: dict[Version, Link] = {}
    for link in links:
        if link.version in seen:
            raise KgmError(
                f"the neo4j-migrations chain on {where} has {link.version} twice "
                f"({seen[link.version].source} and {link.source}), which neo4j-migrations "
                "refuses too: repair it with neo4j-migrations' `repair` first")
        seen[link.version] = link
    return links


def _link(row: dict[str, Any], where: str) -> Link:
    """A link as neo4j-migrations writes it, or a refusal naming what is wrong with it."""
    missing = [name for name in ("type", "source", "at") if row[name] is None]
    if missing:
        raise KgmError(
            f"the neo4j-migrations chain on {where} is not as neo4j-migrations writes it: its "
            f"link to version {row['version']!r} has no {', '.join(missing)} "
            "(`at` must be a zoned datetime)")
    try:
        version = Version.parse(str(row["version"]))
    except MigrationFileError:
        raise KgmError(f"the neo4j-migrations chain on {where} has version "
                       f"{row['version']!r} ({row['source']}), which is not a migration "
                       "version") from None
    by = "/".join(str(part) for part in (row["by"], row["connected_as"]) if part)
    return Link(version=version, type=str(row["type"]), source=str(row["source"]),
                checksum=None if row["checksum"] is None else str(row["checksum"]),
                applied_at=datetime.fromtimestamp(int(row["at"]) / 1000, UTC),
                applied_by=by or "unknown", duration_ms=int(row["took"] or 0))


def _matched(links: list[Link], registry: Registry, directory: Path, where: str
             ) -> list[LoadedMigration]:
    """Each link's file; refused when a version has no file, or a `.cypher` file is not the
    one neo4j-migrations applied."""
    missing = [link for link in links if link.version not in registry.migrations]
    if missing:
        names = ", ".join(f"{link.version} ({link.source})" for link in missing)
        them = "it" if len(missing) == 1 else "them"
        raise KgmError(
            f"the neo4j-migrations chain on {where} has {names} applied, but {directory} has "
            f"no file for {them}: put {them} there (a .cypher file as it was applied, or a "
            ".py one with the same version) before adopting the chain")
    changed = []
    for link in links:
        migration = registry.migrations[link.version]
        if _comparable(link, migration) is None:
            found = nm_checksum.checksums(migration.file.path.read_bytes())
            if link.checksum not in {c.value for c in found}:
                changed.append(f"{migration.file.path.name} (applied as {link.source}) "
                               f"has checksum {found[0].value}, not {link.checksum}")
    if changed:
        raise KgmError(
            f"not the files neo4j-migrations applied on {where}: {'; '.join(changed)} "
            "(neo4j-migrations' CRC32 of the statements); restore them as they were applied: "
            "import-chain records them as applied without running them")
    return [registry.migrations[link.version] for link in links]


def _comparable(link: Link, migration: LoadedMigration) -> str | None:
    """Why the link's checksum cannot be compared with the file's (None: it can)."""
    name = migration.file.path.name
    if link.type != "CYPHER":
        return f"not compared: a {link.type} migration there, {name} here"
    if link.checksum is None:
        return "not compared: neo4j-migrations recorded none"
    if migration.file.kind != "cypher":
        return f"not compared: {name} rewrites it in Python"
    return None


def _adopted(link: Link, migration: LoadedMigration) -> AdoptedMigration:
    note = _comparable(link, migration)
    if note is None:
        found = nm_checksum.checksums(migration.file.path.read_bytes())
        variant = next(c.variant for c in found if c.value == link.checksum)
        note = "matches the file" + ("" if variant == "default" else f" ({variant})")
    return AdoptedMigration(
        version=str(migration.version), description=migration.description,
        file=migration.file.path.name, source=link.source, type=link.type,
        applied_at=link.applied_at, applied_by=link.applied_by, duration_ms=link.duration_ms,
        checksum=link.checksum, checksum_compared=note.startswith("matches"),
        checksum_note=note)
