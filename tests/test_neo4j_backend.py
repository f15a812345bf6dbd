"""The Neo4j adapter's paths that need no Neo4j server: the real driver, an address where
nothing listens, and configuration errors. Everything else is in the contract suite."""

import json
import os
import subprocess
import sys
import time

import pytest
from pydantic import SecretStr

from kgmigrate.dev.neo4j_stack import EmbeddedNeo4j
from kgmigrate.errors import BackendError, ConfigError
from kgmigrate.graph import Scope
from kgmigrate.graph.neo4j import Neo4jBackend
from kgmigrate.runtime.settings import GraphTarget, parse_graph_url
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


def _kgmigrate(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "kgmigrate.cli", *args],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120, check=False)
    return done, time.monotonic() - started


@pytest.mark.parametrize("where", ["nothing listens", "wrong password"])
def test_a_command_facing_an_unreachable_or_refusing_neo4j_fails_in_one_line(
        neo4j_server: EmbeddedNeo4j, where: str) -> None:
    # Given a Neo4j URL where nothing listens, or the real server with a wrong password
    port = free_port() if where == "nothing listens" else neo4j_server.port
    env = {"KGMIGRATE_GRAPH_URL": f"bolt://127.0.0.1:{port}",
           "KGMIGRATE_NEO4J_PASSWORD": "not-the-password"}
    # When a command needs the graph
    done, seconds = _kgmigrate(env, "info")
    # Then it fails with one line naming the problem, never a retry loop or a traceback
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("kgmigrate: error: Neo4j at bolt://127.0.0.1:")
    assert ("unreachable" if where == "nothing listens" else "refused the credentials") \
        in lines[0]
    assert "not-the-password" not in done.stderr + done.stdout
    # (one line also means no driver retry loop: each retry logs a warning; `seconds` is
    # printed for the record, not asserted)
    print(f"{where}: failed in {seconds:.1f}s")


def test_the_right_password_reaches_the_embedded_neo4j(neo4j_server: EmbeddedNeo4j) -> None:
    assert neo4j_server.password.get_secret_value()
    env = {"KGMIGRATE_GRAPH_URL": f"bolt://127.0.0.1:{neo4j_server.port}",
           "KGMIGRATE_NEO4J_PASSWORD": neo4j_server.password.get_secret_value()}
    done, _ = _kgmigrate(env, "info", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["server"]["version"].startswith("Neo4j Kernel 5.26.")
    assert info["server"]["version"].endswith("community")
