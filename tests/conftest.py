"""Real-server fixtures. One embedded FalkorDB/Redis server per test session on a free loopback
port (the graph server and the Celery broker), and one embedded Neo4j (Community, real Bolt)
started the first time a test asks for it. Integration tests take `graph` (or `graph_target`)
and run once per server: a fresh FalkorDB graph per test, or the Neo4j database emptied before
the test. A Neo4j server of your own named by `NEO4J_URI` adds a third run of the backend
contract suite (its data is only ever touched under the test's own label prefix)."""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from kgmigrate.connect import backend_for
from kgmigrate.dev.neo4j_stack import EmbeddedNeo4j
from kgmigrate.dev.stack import EmbeddedStack
from kgmigrate.graph.base import GraphBackend
from kgmigrate.graph.falkordb import FalkorDBBackend
from kgmigrate.ledger import Ledger
from kgmigrate.runtime.settings import GraphTarget, load_settings, parse_graph_url

SERVERS = ["falkordb", pytest.param("neo4j", marks=pytest.mark.neo4j)]


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


def _embedded_neo4j(tmp_path_factory: pytest.TempPathFactory,
                    version: str | None) -> Iterator[EmbeddedNeo4j]:
    server = EmbeddedNeo4j(tmp_path_factory.mktemp("neo4j"), free_port(), version=version,
                           heap="1g", page_cache="256m", tx_memory="512m",
                           password=SecretStr(secrets.token_urlsafe(12)))
    server.up()
    yield server
    server.down()


@pytest.fixture(scope="session")
def neo4j_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNeo4j]:
    """The default (LTS) Neo4j, started once, on first use."""
    yield from _embedded_neo4j(tmp_path_factory, None)


@pytest.fixture(scope="session")
def neo4j_calendar_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNeo4j]:
    """The newest calendar release (on its own JDK), for the contract suite."""
    yield from _embedded_neo4j(tmp_path_factory, "calendar")


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> str:
    """Which graph server the test runs on."""
    return str(request.param)


@pytest.fixture
def graph_target(server: str, request: pytest.FixtureRequest) -> GraphTarget:
    """A graph of its own for each test: a new FalkorDB graph, or the emptied Neo4j database."""
    if server == "falkordb":
        return request.getfixturevalue("falkordb_target")  # type: ignore[no-any-return]
    neo4j: EmbeddedNeo4j = request.getfixturevalue("neo4j_server")
    with backend_for(neo4j.target, load_settings()) as backend:
        neo4j.empty(backend)
    return neo4j.target


@pytest.fixture
def falkordb_target(stack: EmbeddedStack) -> GraphTarget:
    """A new FalkorDB graph on the session's server, for tests of FalkorDB itself."""
    return parse_graph_url(stack.graph_url(f"test_{uuid.uuid4().hex[:12]}"))


@pytest.fixture
def graph(graph_target: GraphTarget) -> Iterator[GraphBackend]:
    """The test's graph, on the server the test is parametrized with."""
    backend = backend_for(graph_target, load_settings())
    yield backend
    if isinstance(backend, FalkorDBBackend):
        backend.delete_graph()
    backend.close()


@pytest.fixture
def falkordb(falkordb_target: GraphTarget) -> Iterator[FalkorDBBackend]:
    backend = FalkorDBBackend(falkordb_target)
    yield backend
    backend.delete_graph()
    backend.close()


def neo4j_external_target() -> GraphTarget | None:
    """A user's own Neo4j named by NEO4J_URI (+ NEO4J_USER, NEO4J_PASSWORD, NEO4J_DATABASE)."""
    uri = os.environ.get("NEO4J_URI")
    if not uri:
        return None
    target = parse_graph_url(uri)
    password = os.environ.get("NEO4J_PASSWORD")
    return GraphTarget("neo4j", target.scheme, target.host, target.port,
                       os.environ.get("NEO4J_DATABASE") or target.name,
                       os.environ.get("NEO4J_USER", target.username or "neo4j"),
                       SecretStr(password) if password else target.password)


CONTRACT_SERVERS = [
    "falkordb",
    pytest.param("neo4j", marks=pytest.mark.neo4j),
    pytest.param("neo4j-calendar", marks=pytest.mark.neo4j),
    *([pytest.param("neo4j-external", marks=pytest.mark.neo4j)]
      if neo4j_external_target() else []),
]


@pytest.fixture(params=CONTRACT_SERVERS)
def backend(request: pytest.FixtureRequest, ns: str) -> Iterator[GraphBackend]:
    """The contract suite runs once per server, each test under its own label prefix `ns`
    (deleted afterwards), so it never touches anything else in a shared database."""
    if request.param == "falkordb":
        yield request.getfixturevalue("falkordb")
        return
    if request.param == "neo4j-external":
        target = neo4j_external_target()
        assert target is not None
    else:
        fixture = "neo4j_server" if request.param == "neo4j" else "neo4j_calendar_server"
        target = request.getfixturevalue(fixture).target
    from kgmigrate.graph.neo4j import Neo4jBackend

    neo4j = Neo4jBackend(target)
    yield neo4j
    neo4j.write("MATCH (n) WHERE any(l IN labels(n) WHERE l STARTS WITH $ns) DETACH DELETE n",
                {"ns": ns})
    neo4j.close()


def wait_until(value: Any, what: str, timeout_s: float = 60) -> Any:
    """`value()` once it is truthy, within a bound: wait for the state a test asserts, never
    for a fixed time."""
    deadline = time.monotonic() + timeout_s
    while not (found := value()):
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f}s"
        time.sleep(0.1)
    return found


def rollback_story(execution: "Execution", graph: GraphBackend, run_id: str) -> str:
    """What a rollback left, per step and reason, with the batches' attempts: the message a
    failing rollback test prints, so a failure seen once can be understood afterwards."""
    from collections import Counter

    from kgmigrate.runs import conflicts

    ledger = Ledger(graph)
    run = ledger.require_run(run_id)
    kept = Counter((c.step, c.reason) for c in conflicts(graph, run))
    lines = [f"{run.status}: {run.error_log}", f"history: {run.history}"]
    for step in run.steps:
        batches = ledger.batches(step.id)
        lines.append(f"step {step.order} {step.status}: batches "
                     f"{[(b.seq, b.status.value, b.attempts) for b in batches]}, restores "
                     f"{[(r['restored'], r['conflicts']) for r in ledger.restores(step.id)]}")
        lines += [f"  {n} conflicts: {reason}" for (order, reason), n in kept.items()
                  if order == step.order]
    return "\n".join(lines)


def link_items(graph: GraphBackend, count: int, properties: str = "") -> None:
    """`(:Item {i: k + 1})-[:NEXT]->(:Item {i: k + 2})` for k in [0, count), with `properties`
    (a map literal over k), on either server: by the items' order, never by internal ids."""
    graph.write("MATCH (a:Item) WITH a ORDER BY a.i LIMIT $n WITH collect(a) AS items "
                "UNWIND range(0, $n - 2) AS k WITH k, items[k] AS a, items[k + 1] AS b "
                f"CREATE (a)-[:NEXT {properties}]->(b)", {"n": count + 1})


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


def graph_env(target: GraphTarget) -> dict[str, str]:
    """The environment a kgmigrate process needs to reach `target` (credentials included)."""
    env = {"KGMIGRATE_GRAPH_URL": target.display}
    if target.backend == "neo4j" and target.password is not None:
        env["KGMIGRATE_NEO4J_USER"] = target.username or "neo4j"
        env["KGMIGRATE_NEO4J_PASSWORD"] = target.password.get_secret_value()
    return env


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
            **graph_env(target),
            "KGMIGRATE_BROKER_URL": f"redis://127.0.0.1:{stack.port}/{db}",
            "KGMIGRATE_RESULT_BACKEND": f"redis://127.0.0.1:{stack.port}/{db}",
            "KGMIGRATE_MIGRATIONS_DIR": str(self.migrations),
            "KGMIGRATE_VISIBILITY_TIMEOUT_S": "10",
            "KGMIGRATE_BACKUP_DIR": str(root / "backups"),
        }
        self.db = db
        self.stack = stack
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self, concurrency: int = 1, queues: str = "kgm.batches,kgm.control", *,
                     env: dict[str, str] | None = None, cwd: Path | None = None,
                     ) -> "subprocess.Popen[bytes]":
        """`env` overrides the test's settings for this worker, `cwd` is its working directory
        (a worker on another host)."""
        log = (self.logs / f"worker-{len(self.workers) + 1}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "kgmigrate.cli", "worker", "--concurrency", str(concurrency),
             "--queues", queues],
            env={**os.environ, **self.env, **(env or {})}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd)
        self.workers.append(process)
        return process

    def wait_ready(self, count: int, timeout_s: float = 120) -> None:
        """Until `count` worker processes answer a broadcast ping: started and consuming (so a
        test about how work spreads over workers does not race a worker's start)."""
        from kgmigrate.runtime.app import sender

        app = sender(self.env["KGMIGRATE_BROKER_URL"], self.env["KGMIGRATE_RESULT_BACKEND"])
        wait_until(lambda: len(app.control.ping(timeout=1.0) or []) >= count,
                   f"{count} workers answering", timeout_s)

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


def with_transforms(execution: Execution) -> dict[str, str]:
    """A command's environment when it loads a migration whose Python transform it imports
    (`tests.transforms`), as a worker does: the tests' package on its path, as a user's
    transforms module is on theirs."""
    return {**execution.env, "PYTHONPATH": str(Path(__file__).parent.parent)}


@pytest.fixture
def execution(stack: EmbeddedStack, graph_target: GraphTarget, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Execution]:
    env = Execution(stack, graph_target, tmp_path)
    for name, value in env.env.items():
        monkeypatch.setenv(name, value)
    yield env
    env.stop_all()
