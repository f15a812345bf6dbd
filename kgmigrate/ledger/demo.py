"""The mark `kgmigrate demo` leaves in a database it filled, so that a later demo may replace
that database and nothing else (it is kgmigrate's own node, never the user's data), and what
the demo's graph holds before a demo replaces it."""

from dataclasses import dataclass

from kgmigrate.cypher import identifiers as ident
from kgmigrate.graph.base import GraphBackend
from kgmigrate.ledger import RUN, Ledger

DEMO_MARK = ident.label("__KGMDemo", internal=True)
HOLDS_ONLY_DEMO = (f"OPTIONAL MATCH (m:{DEMO_MARK}) WITH count(m) AS marks "
                   "OPTIONAL MATCH (n) RETURN marks, count(n) AS nodes")
MARK = f"CREATE (:{DEMO_MARK})"
# Every node but the mark: the user's (no label of kgmigrate's) and kgmigrate's own records.
HOLDS = (f"MATCH (n) WHERE NOT n:{DEMO_MARK} "
         "RETURN count(n) AS nodes, sum(CASE WHEN any(l IN labels(n) WHERE l STARTS WITH "
         "$reserved) THEN 0 ELSE 1 END) AS data")
RUNS = f"MATCH (r:{RUN}) RETURN count(r) AS runs"


@dataclass(frozen=True)
class DemoGraph:
    """What a graph the demo would replace holds: `nodes` of data (the sample's and anything
    added since), the `applied` migrations, the `runs` recorded, and `records`, all of
    kgmigrate's bookkeeping nodes (the demo's mark aside)."""

    nodes: int = 0
    applied: tuple[str, ...] = ()
    runs: int = 0
    records: int = 0

    @property
    def empty(self) -> bool:
        return self.nodes == 0 and self.records == 0

    def describe(self) -> str:
        """`40 nodes, migrations V0001, V0002 applied, 1 run recorded`."""
        parts = [f"{self.nodes:,} node{'' if self.nodes == 1 else 's'}"]
        if self.applied:
            parts.append(f"migration{'' if len(self.applied) == 1 else 's'} "
                         f"{', '.join(self.applied)} applied")
        if self.runs:
            parts.append(f"{self.runs:,} run{'' if self.runs == 1 else 's'} recorded")
        elif self.records:
            parts.append(f"{self.records:,} of kgmigrate's bookkeeping nodes")
        return ", ".join(parts)


def holds(backend: GraphBackend) -> DemoGraph:
    """What the graph holds, by reads only (not even the ledger's indexes are created)."""
    row = backend.read(HOLDS, {"reserved": ident.RESERVED_PREFIX}).single()
    nodes, data = int(row["nodes"]), int(row["data"] or 0)
    if nodes == 0:
        return DemoGraph()
    return DemoGraph(nodes=data, records=nodes - data,
                     applied=tuple(m.version for m in Ledger(backend).applied()),
                     runs=int(backend.read(RUNS).value("runs")))


def holds_only_demo(backend: GraphBackend) -> bool:
    """Empty, or marked by an earlier demo."""
    row = backend.read(HOLDS_ONLY_DEMO).single()
    return bool(row["marks"]) or row["nodes"] == 0


def mark_demo(backend: GraphBackend) -> None:
    backend.write(MARK)
