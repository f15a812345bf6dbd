"""Which of a run's tasks a dead worker holds, and when the broker gives them back.

With late acknowledgement, a task stays on the broker until its worker acknowledges it:
kombu's Redis transport keeps every delivered, unacknowledged message in a hash, with the time
it was taken in a sorted set. A worker that dies whole (SIGKILL, a lost host) never
acknowledges: its task comes back to a live worker only once the visibility timeout has passed
since it was taken (`redelivery_bound_s`). Until then a run's step cannot end, and nothing in
the ledger says why: the batch is not recorded until it commits. So `status` reads the broker
itself: a task held before and after the live workers were asked, and that none of them has
(running or reserved), is held by a worker that no longer answers.
"""

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from kgmigrate.connect import Endpoints
from kgmigrate.errors import KgmError
from kgmigrate.runtime.app import (
    APPLY_BATCH,
    RESTORE_BATCH,
    WATCH_RUN,
    redelivery_bound_s,
    sender,
)
from kgmigrate.runtime.settings import redact_url

UNACKED, UNACKED_INDEX = "unacked", "unacked_index"  # kombu's Redis transport's keys


@dataclass(frozen=True)
class HeldTask:
    """A task of the run that a worker took from the broker and has not acknowledged, and no
    live worker has: its worker died (or stopped answering) while holding it."""

    task_id: str
    name: str
    step: int | None  # the step's order, for a batch or restore task
    version: str | None
    batch: int | None  # the batch's seq
    taken_at: datetime
    back_by: datetime  # delivered again to a live worker by then at the latest

    @property
    def what(self) -> str:
        """`batch 3 of step 1 (V0001)`; a restore: `the restore of batch 3 ...`."""
        if self.batch is None:
            return f"task {self.name}"
        named = f"batch {self.batch} of step {self.step} ({self.version})"
        return f"the restore of {named}" if self.name == RESTORE_BATCH else named

    def as_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "task": self.name, "step": self.step,
                "version": self.version, "batch": self.batch,
                "taken_at": self.taken_at.isoformat(), "back_by": self.back_by.isoformat()}


def held_by_dead_workers(endpoints: Endpoints, run_id: str, *, timeout_s: float,
                         visibility_timeout_s: int) -> list[HeldTask]:
    """The run's tasks that a worker took and that no live worker holds, oldest first. A
    KgmError names the broker when it cannot be read."""
    broker = endpoints.broker_url.get_secret_value()
    before = {t.task_id: t for t in _unacked(broker, run_id, visibility_timeout_s)}
    if not before:
        return []  # the common case costs one read, no broadcast
    live = _live_task_ids(broker, endpoints.result_backend.get_secret_value(), list(before),
                          timeout_s)
    still = {t.task_id for t in _unacked(broker, run_id, visibility_timeout_s)}
    # acknowledged meanwhile: it was a live worker's, which finished it after it answered
    return sorted((t for i, t in before.items() if i in still and i not in live),
                  key=lambda t: t.taken_at)


def _unacked(broker_url: str, run_id: str, visibility_timeout_s: int) -> Iterator[HeldTask]:
    bound = timedelta(seconds=redelivery_bound_s(visibility_timeout_s))
    client = redis.Redis.from_url(broker_url)
    try:
        index: list[tuple[bytes, float]] = list(
            client.zrange(UNACKED_INDEX, 0, -1, withscores=True))  # type: ignore[arg-type]
        payloads: list[bytes | None] = (
            list(client.hmget(UNACKED, [tag for tag, _ in index]))  # type: ignore[arg-type]
            if index else [])
    except RedisError as exc:
        raise KgmError(f"the broker {redact_url(broker_url)} cannot be read "
                       f"({type(exc).__name__}: {exc})") from None
    finally:
        client.close()
    for (_, score), payload in zip(index, payloads, strict=True):
        if payload is None:
            continue  # acknowledged between the two reads
        task = _task(json.loads(payload)[0])
        if task is None or not task[1] or task[1][0] != run_id or task[0] == WATCH_RUN:
            continue  # the run's watch: housekeeping, sent again by the next of its chain
        name, args, kwargs, task_id = task[0], task[1], task[2], task[3]
        taken = datetime.fromtimestamp(score, UTC)
        batched = name in (APPLY_BATCH, RESTORE_BATCH) and len(args) > 2
        yield HeldTask(task_id=task_id, name=name,
                       step=_int(kwargs.get("step")) if batched else None,
                       version=str(kwargs.get("version")) if batched else None,
                       batch=_int(args[2]) if batched else None,
                       taken_at=taken, back_by=taken + bound)


def _task(message: Mapping[str, Any]
          ) -> tuple[str, list[Any], Mapping[str, Any], str] | None:
    """(name, args, kwargs, id) of a Celery message (protocol 2, JSON), None for another."""
    headers = message.get("headers") or {}
    name, task_id = headers.get("task"), headers.get("id")
    if not name or not task_id:
        return None
    body: Any = message.get("body", "")
    if (message.get("properties") or {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    try:
        args, kwargs, _ = json.loads(body)
    except (ValueError, TypeError):
        return None
    return str(name), list(args), dict(kwargs), str(task_id)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _live_task_ids(broker_url: str, result_backend: str, ids: list[str],
                   timeout_s: float) -> set[str]:
    """Which of `ids` the live workers have (running, reserved, or waiting for a retry's
    countdown): one broadcast, every answer for the whole `timeout_s` (a dead worker does not
    answer)."""
    app = sender(broker_url, result_backend)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2)
            replies = app.control.inspect(timeout=timeout_s, connection=connection
                                          ).query_task(*ids) or {}
            return {str(task_id) for found in replies.values() for task_id in found or {}}
    except (OSError, KombuError, RedisError) as exc:
        raise KgmError(f"the broker {redact_url(broker_url)} does not answer "
                       f"({type(exc).__name__}: {exc})") from None
    finally:
        app.close()
