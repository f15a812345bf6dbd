"""From settings to live endpoints: configured servers, or the embedded stack on demand."""

import dataclasses
from dataclasses import dataclass, field

import redis
from pydantic import SecretStr

from kgmigrate.dev.neo4j_stack import EmbeddedNeo4j
from kgmigrate.dev.stack import EmbeddedStack
from kgmigrate.errors import BackendError, ConfigError, KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.runtime.settings import GraphTarget, Settings, parse_graph_url


@dataclass(frozen=True)
class Endpoints:
    graph: GraphTarget
    broker_url: SecretStr = field(repr=False)
    result_backend: SecretStr = field(repr=False)
    stack: EmbeddedStack | None = None  # set when anything comes from the embedded stack
    neo4j: EmbeddedNeo4j | None = None  # set when the graph is the embedded Neo4j


def resolve(settings: Settings, *, start_stack: bool = True, broker: bool = True) -> Endpoints:
    """Fill whatever is not configured from the embedded stack, starting it if asked.

    Commands that only talk to the graph pass `broker=False`, so a configured graph never
    starts the embedded stack just for an unused broker.
    """
    graph = settings.graph_target
    neo4j = (EmbeddedNeo4j.from_settings(settings)
             if graph is None and settings.stack_graph == "neo4j" else None)
    needs_broker = broker and (settings.broker_url is None or settings.result_backend is None)
    needs_stack = (graph is None and neo4j is None) or needs_broker
    stack = EmbeddedStack.from_settings(settings) if needs_stack else None
    if stack is not None and start_stack:
        stack.ensure_up()
    if neo4j is not None:
        if start_stack:
            neo4j.ensure_up()
        graph = neo4j.target
    if graph is None:
        assert stack is not None
        graph = parse_graph_url(stack.graph_url(settings.graph_name))
    broker_url = settings.broker_url or SecretStr(stack.broker_url if stack else "")
    results = settings.result_backend or SecretStr(stack.result_backend_url if stack else "")
    return Endpoints(graph, broker_url, results, stack, neo4j)


def backend_for(target: GraphTarget, settings: Settings, *, verify: bool = False
                ) -> GraphBackend:
    """The backend for `target`. `verify`: connect once now, so that a server that is down or
    refuses the credentials is one line within seconds, not a minute of driver retries
    (commands verify; workers do not: they wait for a restarting server)."""
    backend: GraphBackend
    if target.backend == "falkordb":
        from kgmigrate.graph.falkordb import FalkorDBBackend

        backend = FalkorDBBackend(target, query_timeout_s=settings.query_timeout_s,
                                  probe_copy_max_mb=settings.probe_copy_max_mb)
    else:
        from kgmigrate.graph.neo4j import Neo4jBackend

        backend = Neo4jBackend(target, query_timeout_s=settings.query_timeout_s)
    if verify:
        try:
            backend.verify()
        except BaseException:
            backend.close()
            raise
    return backend


def open_backend(settings: Settings, *, must_exist: bool = False) -> GraphBackend:
    """The graph backend the settings name, or the embedded stack's graph, verified.
    `must_exist`: refuse a graph the server does not have (for commands that only read: on
    FalkorDB their first query would create it), before anything is sent to it."""
    target = resolve(settings, broker=False).graph
    if must_exist:
        require_graph(target, settings)
    return backend_for(target, settings, verify=True)


def require_graph(target: GraphTarget, settings: Settings) -> None:
    """One line naming the graphs there are, when `target`'s graph is not among them."""
    names = graph_names(target, settings)
    wanted = target.name
    if names is None or wanted is None:  # the server's default database is always there
        return
    neo4j = target.backend == "neo4j"
    if (wanted.lower() if neo4j else wanted) in names:
        return
    what = "database" if neo4j else "graph"
    raise KgmError(f"no {what} {wanted!r} on {target.driver_uri}; {what}s: "
                   f"{', '.join(sorted(names)) or '(none)'} (a command that writes, such as "
                   "`upgrade` or `sample`, creates it)")


def graph_names(target: GraphTarget, settings: Settings) -> set[str] | None:
    """The graphs (FalkorDB) or databases (Neo4j, lower case) on `target`'s server; None when
    the server will not say (a Neo4j user without access to the system database)."""
    if target.backend == "neo4j":
        system = dataclasses.replace(target, name="system")
        with backend_for(system, settings, verify=True) as backend:
            try:
                rows = backend.read("SHOW DATABASES YIELD name, type WHERE type <> 'system' "
                                    "RETURN DISTINCT name").records
            except BackendError as exc:
                if exc.transient:
                    raise
                return None
        return {str(row["name"]).lower() for row in rows}
    client = redis.Redis(
        host=target.host, port=target.port, username=target.username,
        password=target.password.get_secret_value() if target.password else None,
        socket_connect_timeout=10, socket_timeout=30, decode_responses=True)
    try:
        names = client.execute_command("GRAPH.LIST")  # type: ignore[no-untyped-call]
        return {str(name) for name in names}
    except redis.exceptions.AuthenticationError as exc:
        raise ConfigError(f"FalkorDB at {target.display} refused the credentials") from exc
    except redis.exceptions.RedisError as exc:
        raise BackendError(f"FalkorDB at {target.display} unreachable: {exc}",
                           transient=True) from exc
    finally:
        client.close()
