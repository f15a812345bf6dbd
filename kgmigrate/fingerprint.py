"""An order-independent digest of the user graph: proof that a rollback restored the exact state.

Each node hashes its labels and exact properties; each relationship hashes its type, properties
and the hashes of its two end nodes (not their ids: a restore may give an entity a new id, and
FalkorDB reuses ids). The digest is the sum of all hashes modulo 2^256, so it does not depend on
the order entities are read in, and counts duplicates. Ledger (`__KGM*`) entities are left out.

Streaming, except for one 16-byte hash per node kept to resolve relationship ends.
"""

import hashlib
import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from kgmigrate.graph import values
from kgmigrate.graph.base import GraphBackend
from kgmigrate.model.state import StateRow

MOD = 2**256
Progress = Callable[[str, int], None]


class Fingerprint(BaseModel):
    digest: str
    nodes: int
    relationships: int

    def __str__(self) -> str:
        return f"{self.digest} ({self.nodes} nodes, {self.relationships} relationships)"


def canonical(value: Any) -> bytes:
    """Exact and unambiguous: 1 and 1.0 differ, floats keep every bit (repr round-trips)."""
    return json.dumps(values.jsonable(value), sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"), allow_nan=True).encode()


def node_hash(row: StateRow) -> bytes:
    return hashlib.sha256(b"n" + canonical([sorted(row["l"]), row["p"]])).digest()


def relationship_hash(row: StateRow, start: bytes, end: bytes) -> bytes:
    return hashlib.sha256(b"r" + canonical([row["ty"], row["p"], start.hex(), end.hex()])
                          ).digest()


def fingerprint(backend: GraphBackend, progress: Progress | None = None) -> Fingerprint:
    total, nodes, rels = 0, 0, 0
    ends: dict[Any, bytes] = {}
    for page in backend.iter_states("node"):
        for row in page:
            digest = node_hash(row)
            ends[row["k"]] = digest[:16]
            total += int.from_bytes(digest)
        nodes += len(page)
        if progress:
            progress("nodes", len(page))
    for page in backend.iter_states("relationship"):
        for row in page:
            total += int.from_bytes(relationship_hash(row, ends[row["s"]], ends[row["t"]]))
        rels += len(page)
        if progress:
            progress("relationships", len(page))
    return Fingerprint(digest=f"{total % MOD:064x}", nodes=nodes, relationships=rels)
