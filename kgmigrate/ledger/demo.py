"""The mark `kgmigrate demo` leaves in a database it filled, so that a later demo may replace
that database and nothing else (it is kgmigrate's own node, never the user's data)."""

from kgmigrate.cypher import identifiers as ident
from kgmigrate.graph.base import GraphBackend

DEMO_MARK = ident.label("__KGMDemo", internal=True)


def holds_only_demo(backend: GraphBackend) -> bool:
    """Empty, or marked by an earlier demo."""
    row = backend.read(f"OPTIONAL MATCH (m:{DEMO_MARK}) WITH count(m) AS marks "
                       "OPTIONAL MATCH (n) RETURN marks, count(n) AS nodes").single()
    return bool(row["marks"]) or row["nodes"] == 0


def mark_demo(backend: GraphBackend) -> None:
    backend.write(f"CREATE (:{DEMO_MARK})")
