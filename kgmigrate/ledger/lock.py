"""At most one run mutates a graph at a time: a lock node with a lease and a fencing token.

The lock lives in the graph (`__KGMLock`), like neo4j-migrations' lock node, but with a lease:
the holder renews it while it runs, and a crashed holder's lock expires by itself. Times are the
*server's* clock (`timestamp()`), so clients with skewed clocks agree. Each acquisition
increments a fencing token; writes that must only come from the current holder check it.

On Neo4j, `SET l.last_attempt_at` takes the node's write lock before the holder is read, so two
concurrent acquirers serialize instead of both seeing a free lock.
"""

import getpass
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kgmigrate.cypher import identifiers as ident
from kgmigrate.errors import KgmError
from kgmigrate.graph.base import GraphBackend
from kgmigrate.model.records import LockInfo

LOCK = ident.label("__KGMLock", internal=True)
DEFAULT_NAME = "migrations"

ACQUIRE = (
    f"MERGE (l:{LOCK} {{name: $name}}) "
    "SET l.last_attempt_at = timestamp() "
    "WITH l, timestamp() AS now "
    "WHERE l.holder IS NULL OR l.lease_until < now OR "
    "($run_id IS NOT NULL AND l.run_id = $run_id) "
    "SET l.holder = $holder, l.run_id = $run_id, l.host = $host, l.pid = $pid, "
    "l.token = coalesce(l.token, 0) + 1, l.acquired_at = now, l.lease_until = now + $lease_ms "
    "RETURN l.token AS token"
)
RENEW = (
    f"MATCH (l:{LOCK} {{name: $name}}) WHERE l.token = $token AND l.holder IS NOT NULL "
    "SET l.lease_until = timestamp() + $lease_ms RETURN l.lease_until AS lease_until"
)
RELEASE = (
    f"MATCH (l:{LOCK} {{name: $name}}) WHERE l.token = $token AND l.holder IS NOT NULL "
    "SET l.holder = null, l.run_id = null, l.lease_until = null "
    "RETURN l.token AS token"
)
RENEW_RUN = (
    f"MATCH (l:{LOCK} {{name: $name}}) WHERE l.run_id = $run_id AND l.holder IS NOT NULL "
    "SET l.lease_until = timestamp() + $lease_ms RETURN l.token AS token"
)
RELEASE_RUN = (
    f"MATCH (l:{LOCK} {{name: $name}}) WHERE l.run_id = $run_id AND l.holder IS NOT NULL "
    "SET l.holder = null, l.run_id = null, l.lease_until = null RETURN l.token AS token"
)
READ = (
    f"MATCH (l:{LOCK} {{name: $name}}) WHERE l.holder IS NOT NULL "
    "RETURN l.holder AS holder, l.run_id AS run_id, l.host AS host, l.pid AS pid, "
    "l.token AS token, l.acquired_at AS acquired_at, l.lease_until AS lease_until, "
    "timestamp() AS now"
)
BREAK = (
    f"MATCH (l:{LOCK} {{name: $name}}) WHERE l.holder IS NOT NULL AND l.token = $token "
    "SET l.holder = null, l.run_id = null, l.lease_until = null "
    "RETURN l.token AS token"
)


class LockHeldError(KgmError):
    def __init__(self, info: LockInfo) -> None:
        run = f" (run {info.run_id})" if info.run_id else ""
        super().__init__(
            f"the migration lock is held by {info.holder}{run} on {info.host} pid {info.pid} "
            f"since {info.acquired_at:%Y-%m-%d %H:%M:%S} UTC; its lease runs until "
            f"{info.lease_until:%H:%M:%S} UTC. If that process is gone, the lock frees itself "
            "then, or break it with `kgmigrate unlock --force`.")
        self.info = info


class LockLostError(KgmError):
    """The holder's lease expired and someone else took the lock (or it was broken)."""


def default_holder() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Lease:
    name: str
    token: int
    holder: str


class MigrationLock:
    def __init__(self, backend: GraphBackend, *, name: str = DEFAULT_NAME,
                 lease_s: float = 60.0) -> None:
        if lease_s <= 0:
            raise ValueError("the lease must be positive")
        self.backend = backend
        self.name = name
        self.lease_ms = int(lease_s * 1000)

    def acquire(self, holder: str | None = None, run_id: str | None = None) -> Lease:
        """Take the lock at once or raise LockHeldError naming the holder; never waits."""
        holder = holder or default_holder()
        rows = self.backend.write(ACQUIRE, {
            "name": self.name, "holder": holder, "run_id": run_id, "host": socket.gethostname(),
            "pid": os.getpid(), "lease_ms": self.lease_ms}).records
        if rows:
            return Lease(self.name, int(rows[0]["token"]), holder)
        info = self.info()
        if info is None:  # released between our attempt and the read: try once more
            return self.acquire(holder, run_id)
        raise LockHeldError(info)

    def renew(self, lease: Lease) -> None:
        rows = self.backend.write(RENEW, {"name": self.name, "token": lease.token,
                                          "lease_ms": self.lease_ms}).records
        if not rows:
            raise LockLostError(f"lost the migration lock (token {lease.token}): it expired and "
                                "was taken over, or was broken by hand")

    def release(self, lease: Lease) -> bool:
        """Release if still held with this token; False when it was already lost."""
        return bool(self.backend.write(RELEASE, {"name": self.name,
                                                 "token": lease.token}).records)

    def renew_for_run(self, run_id: str) -> None:
        """Extend the lease of the lock a run holds; its tasks call this as they work."""
        rows = self.backend.write(RENEW_RUN, {"name": self.name, "run_id": run_id,
                                              "lease_ms": self.lease_ms}).records
        if not rows:
            raise LockLostError(f"run {run_id} no longer holds the migration lock")

    def release_for_run(self, run_id: str) -> bool:
        return bool(self.backend.write(RELEASE_RUN, {"name": self.name,
                                                     "run_id": run_id}).records)

    def info(self) -> LockInfo | None:
        rows = self.backend.read(READ, {"name": self.name}).records
        if not rows:
            return None
        return _info(self.name, rows[0])

    def break_lock(self, *, force: bool = False) -> LockInfo | None:
        """Clear the lock. Without `force` only an expired lease is cleared; a live one raises
        LockHeldError. Returns what was cleared (None if the lock was free)."""
        rows = self.backend.read(READ, {"name": self.name}).records
        if not rows:
            return None
        info = _info(self.name, rows[0])
        if not force and rows[0]["lease_until"] >= rows[0]["now"]:
            raise LockHeldError(info)
        self.backend.write(BREAK, {"name": self.name, "token": info.token})
        return info

    @contextmanager
    def held(self, holder: str | None = None, run_id: str | None = None) -> Iterator[Lease]:
        """Hold the lock for the block, renewing the lease in the background."""
        lease = self.acquire(holder, run_id)
        keeper = LeaseKeeper(self, lease)
        keeper.start()
        try:
            yield lease
        finally:
            keeper.stop()
            self.release(lease)


class LeaseKeeper(threading.Thread):
    """Renews a lease every third of its length until stopped or the lock is lost."""

    def __init__(self, lock: MigrationLock, lease: Lease) -> None:
        super().__init__(name=f"kgmigrate-lease-{lease.token}", daemon=True)
        self.lock, self.lease = lock, lease
        self.lost: KgmError | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.lock.lease_ms / 3000):
            try:
                self.lock.renew(self.lease)
            except KgmError as exc:  # lost, or the server is unreachable: the owner decides
                self.lost = exc
                if isinstance(exc, LockLostError):
                    return

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _ms(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def _info(name: str, row: dict[str, Any]) -> LockInfo:
    return LockInfo(name=name, holder=row["holder"], run_id=row["run_id"], host=row["host"],
                    pid=int(row["pid"]), token=int(row["token"]),
                    acquired_at=_ms(row["acquired_at"]), lease_until=_ms(row["lease_until"]))
