"""The migration lock: lease, fencing token, contention between real processes."""

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from kgmigrate.config import GraphTarget
from kgmigrate.graph.base import GraphBackend
from kgmigrate.lock import Lease, LockHeldError, LockLostError, MigrationLock
from tests.conftest import graph_env, wait_until

HOLDER = """
import signal, sys, time
# a process started in the background inherits SIGINT ignored (no KeyboardInterrupt, so no
# `finally`): the test interrupts this one on purpose
signal.signal(signal.SIGINT, signal.default_int_handler)
from kgmigrate.config import load_settings
from kgmigrate.connect import open_backend
from kgmigrate.lock import MigrationLock
backend = open_backend(load_settings())
with MigrationLock(backend, lease_s=float(sys.argv[1])).held("holder-proc", "run_held"):
    print("acquired", flush=True)
    time.sleep(600)
"""


def start_holder(target: GraphTarget, lease_s: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lease_s)],
                            env={**os.environ, **graph_env(target)}, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "acquired"
    return proc


def test_acquire_renew_release_and_fencing_tokens(graph: GraphBackend) -> None:
    lock = MigrationLock(graph, lease_s=30)
    first = lock.acquire("a", "run_1")
    info = lock.info()
    assert info is not None
    assert (info.holder, info.run_id, info.token, info.pid) == ("a", "run_1", first.token,
                                                                os.getpid())
    lock.renew(first)
    assert lock.release(first) is True
    assert lock.info() is None
    second = lock.acquire("b")
    assert second.token == first.token + 1
    with pytest.raises(LockLostError):
        lock.renew(first)  # an old token can no longer renew
    assert lock.release(first) is False
    lock.release(second)


def test_a_second_process_is_refused_at_once_naming_the_holder(
        graph: GraphBackend, graph_target: GraphTarget) -> None:
    holder = start_holder(graph_target, lease_s=600)
    try:
        # (a refusal that waited would wait for the 600 s lease: pytest's timeout is 300 s)
        with pytest.raises(LockHeldError) as refused:
            MigrationLock(graph).acquire("second")
        message = str(refused.value)
        assert "held by holder-proc (run run_held)" in message
        assert f"pid {holder.pid} since " in message
        assert "kgmigrate unlock --force" in message
    finally:
        holder.send_signal(signal.SIGINT)  # an interrupted holder leaves through `finally`
        try:
            holder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
            raise
    # a clean exit released it
    assert MigrationLock(graph).info() is None


def test_a_killed_holders_lock_expires_after_its_lease(
        graph: GraphBackend, graph_target: GraphTarget) -> None:
    # Given a holder renewing a 30 s lease (every 10 s): seen renewing, so only renewals keep
    # it. 30 s, not less: "still held right after the kill" must hold however loaded the
    # machine is (with 6 s, a loaded machine took the 4 s left between kill and check)
    holder = start_holder(graph_target, lease_s=LEASE_S)
    lock = MigrationLock(graph)
    try:
        first = lock.info()
        assert first is not None
        wait_until(lambda: _lease_until(lock) > first.lease_until, "a renewal", timeout_s=120)
        with pytest.raises(LockHeldError):
            lock.acquire("waiting")
        # When the holder is SIGKILLed (no release)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        # Then the lock is still held right after, until its lease runs out (20 s and more
        # remain: it was renewed at most 10 s before the kill), and can be taken after
        with pytest.raises(LockHeldError):
            lock.acquire("waiting")
        held = lock.info()
        assert held is not None and (held.holder, held.token) == ("holder-proc", first.token)
        lease = wait_until(lambda: _try_acquire(lock), "the dead holder's lease to expire",
                           timeout_s=120)
        assert lease.token == first.token + 1
        lock.release(lease)
    finally:  # whatever failed above, the next test finds the lock free
        holder.kill()
        holder.wait()
        lock.break_lock(force=True)


LEASE_S = 30


def _lease_until(lock: MigrationLock) -> Any:
    info = lock.info()
    assert info is not None
    return info.lease_until


def _server_now(graph: GraphBackend) -> Any:
    """The lease's clock: the server's (leases are written with its timestamp())."""
    millis = graph.read("RETURN timestamp() AS now").value("now")
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def _try_acquire(lock: MigrationLock) -> Lease | None:
    try:
        return lock.acquire("waiting")
    except LockHeldError:
        return None


def test_unlock_clears_only_expired_locks_unless_forced(graph: GraphBackend) -> None:
    live = MigrationLock(graph, lease_s=60)
    lease = live.acquire("busy")
    with pytest.raises(LockHeldError):
        live.break_lock()
    cleared = live.break_lock(force=True)
    assert cleared is not None and cleared.holder == "busy"
    assert live.info() is None
    with pytest.raises(LockLostError):
        live.renew(lease)
    assert live.break_lock() is None
    short = MigrationLock(graph, lease_s=0.3)
    short.acquire("expiring")
    wait_until(lambda: _lease_until(short) < _server_now(graph), "the short lease to expire")
    assert short.break_lock() is not None  # expired: no --force needed
