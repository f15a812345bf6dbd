"""From settings to live endpoints: configured servers, or the embedded stack on demand."""

from dataclasses import dataclass, field

from pydantic import SecretStr

from kgmigrate.config import GraphTarget, Settings, parse_graph_url
from kgmigrate.graph.base import GraphBackend
from kgmigrate.stack import EmbeddedStack


@dataclass(frozen=True)
class Endpoints:
    graph: GraphTarget
    broker_url: SecretStr = field(repr=False)
    result_backend: SecretStr = field(repr=False)
    stack: EmbeddedStack | None = None  # set when anything comes from the embedded stack


def resolve(settings: Settings, *, start_stack: bool = True, broker: bool = True) -> Endpoints:
    """Fill whatever is not configured from the embedded stack, starting it if asked.

    Commands that only talk to the graph pass `broker=False`, so a configured graph never
    starts the embedded stack just for an unused broker.
    """
    graph = settings.graph_target
    needs_stack = graph is None or (broker and (settings.broker_url is None
                                                or settings.result_backend is None))
    stack = EmbeddedStack.from_settings(settings) if needs_stack else None
    if stack is not None and start_stack:
        stack.ensure_up()
    if graph is None:
        assert stack is not None
        graph = parse_graph_url(stack.graph_url(settings.graph_name))
    broker_url = settings.broker_url or SecretStr(stack.broker_url if stack else "")
    results = settings.result_backend or SecretStr(stack.result_backend_url if stack else "")
    return Endpoints(graph, broker_url, results, stack)


def backend_for(target: GraphTarget, settings: Settings) -> GraphBackend:
    if target.backend == "falkordb":
        from kgmigrate.graph.falkordb import FalkorDBBackend

        return FalkorDBBackend(target, query_timeout_s=settings.query_timeout_s)
    from kgmigrate.graph.neo4j import Neo4jBackend

    return Neo4jBackend(target, query_timeout_s=settings.query_timeout_s)


def open_backend(settings: Settings) -> GraphBackend:
    """The graph backend the settings name, or the embedded stack's graph."""
    return backend_for(resolve(settings, broker=False).graph, settings)
