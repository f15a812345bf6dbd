"""The Neo4j adapter's paths that need no Neo4j server: the real driver, an address where
nothing listens, and configuration errors. Everything else is in the contract suite."""

import pytest
from pydantic import SecretStr

from kgmigrate.config import GraphTarget, parse_graph_url
from kgmigrate.errors import BackendError, ConfigError
from kgmigrate.graph import Scope
from kgmigrate.graph.neo4j import Neo4jBackend
from tests.conftest import free_port


def _nowhere() -> GraphTarget:
    target = parse_graph_url(f"bolt://127.0.0.1:{free_port()}/kg")
    return GraphTarget("neo4j", target.scheme, target.host, target.port, target.name, "neo4j",
                       SecretStr("pw"))


def test_an_unreachable_server_is_a_transient_backend_error() -> None:
    backend = Neo4jBackend(_nowhere(), retry_time_s=1.0)
    with backend, pytest.raises(BackendError) as failure:
        backend.read("RETURN 1 AS x")
    assert failure.value.transient
    assert "unreachable" in str(failure.value)
    assert "pw" not in str(failure.value)


def test_key_streaming_translates_errors_too() -> None:
    backend = Neo4jBackend(_nowhere(), retry_time_s=1.0)
    with backend, pytest.raises(BackendError, match="unreachable"):
        list(backend.iter_keys(Scope.nodes("Compound")))


def test_a_missing_password_is_a_config_error() -> None:
    target = parse_graph_url("neo4j://prod:7687")
    with pytest.raises(ConfigError, match="KGMIGRATE_NEO4J_PASSWORD"):
        Neo4jBackend(target)
