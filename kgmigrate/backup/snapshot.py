"""Snapshots: an explicit, whole-graph (or per-label) export to the backup store, and back.

The undo log is the default protection of a run; a snapshot is the separate backup kind
`backup_service.create_backup` / `restore_backup` make (and what a migration
with `snapshot=True` takes before it starts). It streams the graph page by page:

    snapshots/<id>/nodes/<n>           exact node states (`kgmigrate.graph.state`)
    snapshots/<id>/relationships/<n>   exact relationship states, ends by node key
    snapshots/<id>/manifest            written last: parts with sha256 and row counts

A snapshot without its manifest is incomplete and is not listed. Restoring replaces the
entities the snapshot covers (all user entities, or the nodes with its labels and their
relationships) with the snapshot's, under the migration lock; it is not one transaction, so an
interrupted restore is simply run again.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from kgmigrate.backup.store import BackupStore, BackupStoreError
from kgmigrate.cypher import identifiers as ident
from kgmigrate.cypher.dialect import INTERNAL_PREFIX, Dialect
from kgmigrate.fingerprint import MOD, fingerprint, node_hash, relationship_hash
from kgmigrate.graph.base import GraphBackend
from kgmigrate.model.ids import new_id
from kgmigrate.model.records import utc_now
from kgmigrate.model.scope import EntityKind
from kgmigrate.model.state import StateRows

Progress = Callable[[str, int], None]
WRITE_ROWS = 5_000  # entities per create statement on restore
DELETE_ROWS = 10_000


class SnapshotPart(BaseModel):
    key: str
    sha256: str
    rows: int


class SnapshotManifest(BaseModel):
    id: str
    created_at: datetime
    graph: str
    labels: list[str] = []  # empty: the whole graph
    nodes: int
    relationships: int
    fingerprint: str | None = None  # of the whole graph when taken (whole-graph snapshots)
    parts: list[SnapshotPart]
    reason: str | None = None  # e.g. "before run run_..."


class SnapshotRestore(BaseModel):
    id: str
    nodes_deleted: int
    nodes: int
    relationships: int
    verified: bool | None = None  # the graph's fingerprint equals the snapshot's


def create_snapshot(backend: GraphBackend, store: BackupStore, *, labels: Iterable[str] = (),
                    reason: str | None = None, progress: Progress | None = None
                    ) -> SnapshotManifest:
    chosen = tuple(ident.validate(label, ident.Kind.LABEL) for label in labels)
    snapshot_id = new_id("snap")
    parts: list[SnapshotPart] = []
    ends: dict[Any, bytes] = {}
    total, counts = 0, {"node": 0, "relationship": 0}
    entities: tuple[EntityKind, ...] = ("node", "relationship")
    for entity in entities:
        for n, page in enumerate(backend.iter_states(entity, chosen)):
            rows: StateRows = [row.copy() for row in page]
            for row in rows:
                row.pop("sig", None)
            key = f"snapshots/{snapshot_id}/{entity}s/{n:06d}"
            parts.append(SnapshotPart(key=key, sha256=store.put_rows(key, rows), rows=len(rows)))
            counts[entity] += len(rows)
            if not chosen:
                total += _digest(rows, entity, ends)
            if progress:
                progress(f"{entity}s", len(rows))
    manifest = SnapshotManifest(
        id=snapshot_id, created_at=utc_now(), graph=backend.target.display, labels=list(chosen),
        nodes=counts["node"], relationships=counts["relationship"],
        fingerprint=None if chosen else f"{total % MOD:064x}", parts=parts, reason=reason)
    store.put_json(f"snapshots/{snapshot_id}/manifest", manifest.model_dump(mode="json"))
    return manifest


def _digest(rows: StateRows, entity: str, ends: dict[Any, bytes]) -> int:
    """The fingerprint's sum over these rows (see kgmigrate.fingerprint)."""
    total = 0
    for row in rows:
        if entity == "node":
            digest = node_hash(row)
            ends[row["k"]] = digest[:16]
        else:
            digest = relationship_hash(row, ends[row["s"]], ends[row["t"]])
        total += int.from_bytes(digest)
    return total


def list_snapshots(store: BackupStore) -> list[SnapshotManifest]:
    found = []
    for key in store.keys("snapshots"):
        if key.endswith("/manifest"):
            found.append(SnapshotManifest(**store.get_json(key)))
    return sorted(found, key=lambda m: m.created_at, reverse=True)


def load_manifest(store: BackupStore, snapshot_id: str) -> SnapshotManifest:
    key = f"snapshots/{snapshot_id}/manifest"
    if not store.exists(key):
        raise BackupStoreError(f"no complete snapshot {snapshot_id} in {store.describe()} "
                               "(`kgmigrate backup list` shows them)")
    return SnapshotManifest(**store.get_json(key))


def restore_snapshot(backend: GraphBackend, store: BackupStore, snapshot_id: str, *,
                     verify: bool = True, progress: Progress | None = None) -> SnapshotRestore:
    """Check every part's checksum first (nothing is deleted from a damaged snapshot), then
    replace what the snapshot covers with it."""
    manifest = load_manifest(store, snapshot_id)
    for part in manifest.parts:
        if store.sha256(part.key) != part.sha256:
            raise BackupStoreError(f"snapshot {snapshot_id}: part {part.key} does not match its "
                                   "checksum; refusing to restore from it")
    labels = tuple(manifest.labels)
    deleted = _delete_covered(backend, labels, progress)
    new_keys: dict[Any, Any] = {}
    nodes = rels = 0
    for part in manifest.parts:
        rows = list(store.rows(part.key))
        if "/nodes/" in part.key:
            nodes += _create_nodes(backend, rows, new_keys)
            what = "nodes restored"
        else:
            rels += _create_relationships(backend, rows, new_keys)
            what = "relationships restored"
        if progress:
            progress(what, len(rows))
    verified = None
    if verify and manifest.fingerprint is not None:
        verified = fingerprint(backend).digest == manifest.fingerprint
    return SnapshotRestore(id=snapshot_id, nodes_deleted=deleted, nodes=nodes,
                           relationships=rels, verified=verified)


def delete_statement(by_label: bool) -> str:
    """Delete up to DELETE_ROWS user nodes (those with one of $labels), with relationships."""
    user = f"NOT any(l IN labels(n) WHERE l STARTS WITH '{INTERNAL_PREFIX}')"
    covered = " AND any(l IN labels(n) WHERE l IN $labels)" if by_label else ""
    return (f"MATCH (n) WHERE {user}{covered} WITH n LIMIT {DELETE_ROWS} "
            "DETACH DELETE n RETURN count(*) AS n")


def create_nodes_statement(dialect: Dialect, labels: Sequence[str]) -> str:
    """Labels cannot be parameters: one statement per label set, each label validated."""
    rendered = "".join(f":{ident.label(label)}" for label in labels)
    return (f"UNWIND $rows AS row CREATE (n{rendered}) SET n = row.p "
            f"RETURN row.k AS old, {dialect.key('n')} AS new")


def create_relationships_statement(dialect: Dialect, rel_type: str) -> str:
    return (f"UNWIND $rows AS row MATCH (s) WHERE {dialect.key('s')} = row.s "
            f"MATCH (t) WHERE {dialect.key('t')} = row.t "
            f"CREATE (s)-[r:{ident.rel_type(rel_type)}]->(t) SET r = row.p RETURN count(r) AS n")


def _delete_covered(backend: GraphBackend, labels: tuple[str, ...],
                    progress: Progress | None) -> int:
    statement = delete_statement(bool(labels))
    total = 0
    while True:
        done = int(backend.write(statement, {"labels": list(labels)}).value("n"))
        total += done
        if progress and done:
            progress("nodes deleted", done)
        if done < DELETE_ROWS:
            return total


def _groups(rows: list[dict[str, Any]], by: Callable[[dict[str, Any]], Any]
            ) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(by(row), []).append(row)
    for name, members in groups.items():
        for lo in range(0, len(members), WRITE_ROWS):
            yield name, members[lo:lo + WRITE_ROWS]


def _create_nodes(backend: GraphBackend, rows: list[dict[str, Any]],
                  new_keys: dict[Any, Any]) -> int:
    created = 0
    for labels, members in _groups(rows, lambda r: tuple(sorted(r["l"]))):
        result = backend.write(create_nodes_statement(backend.dialect, labels),
                               {"rows": [{"k": r["k"], "p": r["p"]} for r in members]})
        for record in result.records:
            new_keys[record["old"]] = record["new"]
        created += len(result.records)
    return created


def _create_relationships(backend: GraphBackend, rows: list[dict[str, Any]],
                          new_keys: dict[Any, Any]) -> int:
    """Ends outside a per-label snapshot were not deleted: they keep their keys."""
    created = 0
    for rel_type, members in _groups(rows, lambda r: r["ty"]):
        statement = create_relationships_statement(backend.dialect, rel_type)
        params = [{"s": new_keys.get(r["s"], r["s"]), "t": new_keys.get(r["t"], r["t"]),
                   "p": r["p"]} for r in members]
        created += int(backend.write(statement, {"rows": params}).value("n"))
    return created
