"""A small Vitalyst-like knowledge graph for the demo, the tests and the benchmarks.

Compounds, conditions, genes and studies, with TREATS, TARGETS, ASSOCIATED_WITH, STUDIES and
INVESTIGATES relationships. Deterministic for a given seed. Written in chunks through the
backend port, so it works on FalkorDB and Neo4j alike.
"""

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kgmigrate.cypher import identifiers as ident
from kgmigrate.cypher.dialect import Dialect
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.model.scope import Key

CHUNK = 5_000
# label -> share of the nodes
MIX = {"Compound": 0.40, "Gene": 0.25, "Condition": 0.10, "Study": 0.25}
_SYLLABLES = ["ami", "bro", "cyl", "dex", "eto", "flu", "gal", "hep", "ido", "lor", "meth", "nor",
              "oxa", "pra", "quin", "rit", "sul", "tam", "uro", "val", "xan", "zol"]
_CHROMOSOMES = [*(str(i) for i in range(1, 23)), "X", "Y"]
Progress = Callable[[str, int], None]


@dataclass
class GraphSummary:
    nodes: dict[str, int] = field(default_factory=dict)
    relationships: dict[str, int] = field(default_factory=dict)

    @property
    def node_count(self) -> int:
        return sum(self.nodes.values())

    @property
    def relationship_count(self) -> int:
        return sum(self.relationships.values())


LIST_LABELS = "CALL db.labels() YIELD label RETURN label"
LIST_REL_TYPES = "CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType"
COUNT_NODES = "MATCH (n) RETURN count(n) AS n"


def count_label(name: str) -> str:
    return f"MATCH (e:{ident.label(name, internal=True)}) RETURN count(e) AS n"


def count_rel_type(name: str) -> str:
    return f"MATCH ()-[e:{ident.rel_type(name, internal=True)}]->() RETURN count(e) AS n"


def create_nodes(dialect: Dialect, label: str) -> str:
    return (f"UNWIND $rows AS row CREATE (e:{ident.label(label)}) SET e = row "
            f"RETURN {dialect.key('e')} AS key")


def create_relationships(dialect: Dialect, rel_type: str) -> str:
    return (f"UNWIND $rows AS row MATCH (a) WHERE {dialect.key_equals('a', 'src')} "
            f"MATCH (b) WHERE {dialect.key_equals('b', 'dst')} "
            f"CREATE (a)-[r:{ident.rel_type(rel_type)}]->(b) SET r = row.props")


def summarize(backend: GraphBackend) -> GraphSummary:
    """Entity counts per label and relationship type (kgmigrate's own `__KGM*` included)."""
    summary = GraphSummary()
    for rec in backend.read(LIST_LABELS).records:
        if count := backend.read(count_label(rec["label"])).value("n"):
            summary.nodes[rec["label"]] = count
    for rec in backend.read(LIST_REL_TYPES).records:
        if count := backend.read(count_rel_type(rec["relationshipType"])).value("n"):
            summary.relationships[rec["relationshipType"]] = count
    return summary


def load_sample(backend: GraphBackend, nodes: int = 200_000, *, seed: int = 7,
                progress: Progress | None = None) -> GraphSummary:
    """Create about `nodes` nodes and 1.5x as many relationships in an empty graph.

    Keeps the new nodes' keys in memory to wire relationships (a few MB per million nodes):
    fine for a sample, and unlike the planner it has no reason to stream.
    """
    if nodes < len(MIX):
        raise KgmError(f"the sample graph needs at least {len(MIX)} nodes, got {nodes}")
    existing = backend.read(COUNT_NODES).value("n")
    if existing:
        raise KgmError(f"the graph already holds {existing} nodes; the sample loader only "
                       "writes into an empty graph")
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    counts = {name: max(1, int(nodes * share)) for name, share in MIX.items()}
    keys: dict[str, list[Key]] = {}
    makers = {"Compound": _compound, "Gene": _gene, "Condition": _condition, "Study": _study}
    for name, count in counts.items():
        keys[name] = _create_nodes(backend, name, (makers[name](rng, i) for i in range(count)),
                                   progress)
    def props(**make: Callable[[], Any]) -> Callable[[], dict[str, Any]]:
        return lambda: {name: value() for name, value in make.items()}

    rels: list[tuple[str, str, str, float, Callable[[], dict[str, Any]]]] = [
        ("TREATS", "Compound", "Condition", 0.5, props(
            evidence=lambda: rng.choice(["clinical", "preclinical", "in_silico"]),
            confidence=lambda: round(rng.random(), 3))),
        ("TARGETS", "Compound", "Gene", 0.4, props(
            affinity_nm=lambda: round(rng.uniform(1, 1e4), 1))),
        ("ASSOCIATED_WITH", "Gene", "Condition", 0.2, props(score=lambda: round(rng.random(), 3))),
        ("STUDIES", "Study", "Compound", 0.25, props()),
        ("INVESTIGATES", "Study", "Condition", 0.15, props()),
    ]
    for rel_type, src, dst, share, make_props in rels:
        count = int(nodes * share)
        pairs = ((rng.choice(keys[src]), rng.choice(keys[dst]), make_props())
                 for _ in range(count))
        _create_relationships(backend, rel_type, pairs, progress)
    return summarize(backend)


def _create_nodes(backend: GraphBackend, label: str, rows: Iterator[dict[str, Any]],
                  progress: Progress | None) -> list[Key]:
    statement = create_nodes(backend.dialect, label)
    keys: list[Key] = []
    for chunk in itertools.batched(rows, CHUNK):
        keys.extend(r["key"] for r in backend.write(statement, {"rows": list(chunk)}).records)
        if progress:
            progress(label, len(chunk))
    return keys


def _create_relationships(backend: GraphBackend, rel_type: str,
                          pairs: Iterator[tuple[Key, Key, dict[str, Any]]],
                          progress: Progress | None) -> None:
    statement = create_relationships(backend.dialect, rel_type)
    for chunk in itertools.batched(pairs, CHUNK):
        rows = [{"src": s, "dst": t, "props": p} for s, t, p in chunk]
        backend.write(statement, {"rows": rows})
        if progress:
            progress(rel_type, len(chunk))


def _name(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(parts))


def _compound(rng: random.Random, i: int) -> dict[str, Any]:
    return {"cid": f"CMP{i:07d}", "name": _name(rng, 3).capitalize() + rng.choice(["ine", "ol",
                                                                                    "ide", "an"]),
            "molecular_weight": round(rng.uniform(80, 900), 2),
            "formula": f"C{rng.randint(2, 40)}H{rng.randint(2, 60)}O{rng.randint(0, 9)}"}


def _gene(rng: random.Random, i: int) -> dict[str, Any]:
    return {"gid": f"GEN{i:07d}", "symbol": _name(rng, 2).upper()[:6] + str(rng.randint(1, 99)),
            "chromosome": rng.choice(_CHROMOSOMES)}


def _condition(rng: random.Random, i: int) -> dict[str, Any]:
    return {"did": f"CND{i:07d}", "name": f"{_name(rng, 2).capitalize()} syndrome",
            "icd10": f"{chr(65 + rng.randint(0, 25))}{rng.randint(0, 99):02d}"}


def _study(rng: random.Random, i: int) -> dict[str, Any]:
    return {"sid": f"STD{i:07d}", "title": f"Effects of {_name(rng, 3)} on {_name(rng, 2)}",
            "year": rng.randint(1990, 2026), "phase": rng.choice(["I", "II", "III", "IV"])}
