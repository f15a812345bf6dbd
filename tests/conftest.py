"""Real-server fixtures: one embedded FalkorDB/Redis server per test session on a free loopback
port, a fresh graph per test, and Neo4j when `NEO4J_URI` names one (skipped otherwise)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from kgmigrate.config import GraphTarget, parse_graph_url
from kgmigrate.graph.base import GraphBackend
from kgmigrate.graph.falkordb import FalkorDBBackend
from kgmigrate.stack import EmbeddedStack

NEO4J_SKIP_REASON = "NEO4J_URI is not set: no Neo4j server to test against (never faked)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    server = EmbeddedStack(tmp_path_factory.mktemp("stack"), free_port())
    server.up()
    yield server
    server.down()


@pytest.fixture
def graph_target(stack: EmbeddedStack) -> GraphTarget:
    """A graph of its own for each test, on the session's server."""
    return parse_graph_url(stack.graph_url(f"test_{uuid.uuid4().hex[:12]}"))


@pytest.fixture
def falkordb(graph_target: GraphTarget) -> Iterator[FalkorDBBackend]:
    backend = FalkorDBBackend(graph_target)
    yield backend
    backend.delete_graph()
    backend.close()


def neo4j_target() -> GraphTarget | None:
    uri = os.environ.get("NEO4J_URI")
    if not uri:
        return None
    target = parse_graph_url(uri)
    password = os.environ.get("NEO4J_PASSWORD")
    return GraphTarget("neo4j", target.scheme, target.host, target.port,
                       os.environ.get("NEO4J_DATABASE") or target.name,
                       os.environ.get("NEO4J_USER", target.username or "neo4j"),
                       SecretStr(password) if password else target.password)


@pytest.fixture
def neo4j(ns: str) -> Iterator[GraphBackend]:
    """The Neo4j server named by NEO4J_URI; the test's own labels (prefix `ns`) are deleted
    afterwards, so tests never see each other's data."""
    target = neo4j_target()
    if target is None:
        pytest.skip(NEO4J_SKIP_REASON)
    from kgmigrate.graph.neo4j import Neo4jBackend

    backend = Neo4jBackend(target)
    yield backend
    backend.write("MATCH (n) WHERE any(l IN labels(n) WHERE l STARTS WITH $ns) DETACH DELETE n",
                  {"ns": ns})
    backend.close()


@pytest.fixture(params=["falkordb", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def backend(request: pytest.FixtureRequest) -> GraphBackend:
    """The contract suite runs once per backend."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture
def ns() -> str:
    """A label namespace unique to one test, so tests sharing a Neo4j database never meet."""
    return f"T{uuid.uuid4().hex[:8]}_"


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Path:
    """Where a test leaves artifacts for people to look at (test-output/<test name>/)."""
    path = Path(__file__).parent.parent / "test-output" / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path


class Execution:
    """Real worker processes for one test: its graph, its own broker database, its files."""

    _next_db = 3  # databases 0-2 belong to the graph and the stack's default broker/results

    def __init__(self, stack: EmbeddedStack, target: GraphTarget, root: Path) -> None:
        import redis

        db = Execution._next_db
        Execution._next_db = 3 + (db - 2) % 13  # cycle through databases 3..15
        redis.Redis(port=stack.port, db=db).flushdb()
        self.migrations = root / "migrations"
        self.migrations.mkdir()
        self.logs = root / "logs"
        self.logs.mkdir()
        self.env = {
            "KGMIGRATE_GRAPH_URL": target.display,
            "KGMIGRATE_BROKER_URL": f"redis://127.0.0.1:{stack.port}/{db}",
            "KGMIGRATE_RESULT_BACKEND": f"redis://127.0.0.1:{stack.port}/{db}",
            "KGMIGRATE_MIGRATIONS_DIR": str(self.migrations),
            "KGMIGRATE_VISIBILITY_TIMEOUT_S": "10",
            "KGMIGRATE_BACKUP_DIR": str(root / "backups"),
        }
        self.db = db
        self.stack = stack
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self, concurrency: int = 1,
                     queues: str = "kgm.batches,kgm.control") -> "subprocess.Popen[bytes]":
        log = (self.logs / f"worker-{len(self.workers) + 1}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "kgmigrate.cli", "worker", "--concurrency", str(concurrency),
             "--queues", queues],
            env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.workers.append(process)
        return process

    def kill(self, process: "subprocess.Popen[bytes]") -> None:
        """SIGKILL the worker and its pool children: no shutdown, no acks."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill(process)

    def flush_broker(self) -> None:
        import redis

        redis.Redis(port=self.stack.port, db=self.db).flushdb()

    def write_migration(self, name: str, text: str) -> None:
        (self.migrations / name).write_text(text)


@pytest.fixture
def execution(stack: EmbeddedStack, graph_target: GraphTarget, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Execution]:
    env = Execution(stack, graph_target, tmp_path)
    for name, value in env.env.items():
        monkeypatch.setenv(name, value)
    yield env
    env.stop_all()
