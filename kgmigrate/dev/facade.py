"""One facade over the development stack: the embedded FalkorDB + broker server, the embedded
Neo4j, and the demo's own graph. The CLI's `stack` verbs and the demo go through it."""

from collections.abc import Iterator
from dataclasses import dataclass

from kgmigrate.connect import Endpoints
from kgmigrate.dev.neo4j_stack import EmbeddedNeo4j, Neo4jStatus, Neo4jVersion, version_named
from kgmigrate.dev.neo4j_stack import build as build_neo4j
from kgmigrate.dev.neo4j_stack import versions as neo4j_versions
from kgmigrate.dev.stack import EmbeddedStack, StackStatus
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.graph.falkordb import FalkorDBBackend
from kgmigrate.ledger import demo
from kgmigrate.ledger.demo import DemoGraph
from kgmigrate.runtime.settings import Settings

DEMO_GRAPH = "kgmigrate_demo"
GRAPHS = ("falkordb", "neo4j")


@dataclass(frozen=True)
class Built:
    version: Neo4jVersion
    already: bool


class DevStack:
    """The embedded servers, as configured by `settings` (KGMIGRATE_STACK_*)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def graph(self, chosen: str | None) -> str:
        """The graph server to use: `chosen`, else KGMIGRATE_STACK_GRAPH."""
        graph = chosen or self.settings.stack_graph
        if graph not in GRAPHS:
            raise KgmError(f"--graph must be falkordb or neo4j, not {graph!r}")
        return graph

    def up(self, graph: str | None = None) -> tuple[StackStatus, Neo4jStatus | None]:
        """Start the embedded server (idempotent); with graph neo4j the embedded Neo4j too."""
        status = EmbeddedStack.from_settings(self.settings).up()
        neo4j = (EmbeddedNeo4j.from_settings(self.settings).up()
                 if self.graph(graph) == "neo4j" else None)
        return status, neo4j

    def down(self) -> tuple[StackStatus, Neo4jStatus | None]:
        neo4j = EmbeddedNeo4j.from_settings(self.settings)
        neo4j_status = neo4j.down() if neo4j.status().pid is not None else None
        return EmbeddedStack.from_settings(self.settings).down(), neo4j_status

    def status(self) -> tuple[StackStatus, Neo4jStatus]:
        return (EmbeddedStack.from_settings(self.settings).status(),
                EmbeddedNeo4j.from_settings(self.settings).status())

    def build(self, version: str | None = None, *, every: bool = False) -> Iterator[Built]:
        """Resolve the embedded Neo4j's jars from Maven Central and build its launcher: the
        named (or configured) version, or every pinned one."""
        chosen = (list(neo4j_versions().values()) if every
                  else [version_named(version or self.settings.stack_neo4j_version)])
        for neo4j_version in chosen:
            already = neo4j_version.built
            build_neo4j(neo4j_version)
            yield Built(neo4j_version, already)

    def demo_graph(self, backend: GraphBackend, endpoints: Endpoints) -> DemoGraph:
        """What the demo's own graph holds (FalkorDB's `kgmigrate_demo` graph, or the embedded
        Neo4j's database), read only; refused when that database is not the demo's."""
        self._only_the_demos(backend, endpoints)
        return demo.holds(backend)

    def reset_demo_graph(self, backend: GraphBackend, endpoints: Endpoints) -> None:
        """Empty the demo's own graph, and nothing else: FalkorDB's `kgmigrate_demo` graph,
        or the embedded Neo4j's database when it is empty or holds only an earlier demo
        (`demo_graph` says what would be lost)."""
        self._only_the_demos(backend, endpoints)
        if isinstance(backend, FalkorDBBackend):
            backend.delete_graph()
            return
        assert endpoints.neo4j is not None
        endpoints.neo4j.empty(backend)

    @staticmethod
    def _only_the_demos(backend: GraphBackend, endpoints: Endpoints) -> None:
        """The embedded Neo4j's database is the demo's when it is empty or an earlier demo
        marked it; any other is refused, whatever the user allows."""
        if isinstance(backend, FalkorDBBackend):
            return
        assert endpoints.neo4j is not None
        if not endpoints.neo4j.holds_only_demo(backend):
            raise KgmError("the embedded Neo4j holds data that is not the demo's; the demo "
                           "only replaces its own. Stop it (`kgmigrate stack down`) and use "
                           "another KGMIGRATE_STACK_DIR, or empty it yourself")

    def mark_demo(self, backend: GraphBackend, endpoints: Endpoints) -> None:
        """On the embedded Neo4j: a later demo may replace what this one loads."""
        if endpoints.neo4j is not None:
            endpoints.neo4j.mark_demo(backend)
