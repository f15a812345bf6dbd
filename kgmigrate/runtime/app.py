"""The Celery app both sides share: JSON only, late acks, two queues, tasks addressed by name.

Batch tasks (data plane, `workers`) go to the batch queue, which is scaled horizontally;
control tasks (`orchestrator`) go to the control queue. Neither side imports the other: they
send tasks by name (`app.signature("workers.apply_batch", ...)`). A worker process loads the
task modules of the queues it serves, by module name.
"""

from collections.abc import Sequence
from typing import Any

from celery import Celery
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from kgmigrate.errors import KgmError
from kgmigrate.runtime.settings import load_settings, redact_url

BATCH_QUEUE = "kgm.batches"
CONTROL_QUEUE = "kgm.control"
QUEUE_MODULES = {BATCH_QUEUE: "workers.tasks", CONTROL_QUEUE: "orchestrator.tasks"}

APPLY_BATCH = "workers.apply_batch"
RUN_STATEMENT = "workers.run_statement"
START_RUN = "orchestrator.start_run"
STEP_DONE = "orchestrator.step_done"
STEP_CRASHED = "orchestrator.step_crashed"
RESTORE_BATCH = "workers.restore_batch"
START_ROLLBACK = "orchestrator.start_rollback"
ROLLBACK_STEP_DONE = "orchestrator.rollback_step_done"
ROLLBACK_CRASHED = "orchestrator.rollback_crashed"
WATCH_RUN = "orchestrator.watch_run"
CARRY_OUT = "orchestrator.carry_out"

app = Celery("kgmigrate")  # the workers' app: task modules register on it


def shown_name(task: str, version: object, step: object) -> str:
    """The name Flower lists a task under (Celery's `shadow`; routing keeps the real name):
    `workers.apply_batch V0003 step 2`. Bounded on purpose: Flower's own Prometheus metrics
    are labelled by task name, so a run id or batch number here would make a new series per
    batch. The run, batch and key range are in the task's arguments (searchable in Flower).
    The sender names each task so; a task's retry (sent by the worker) names itself so too."""
    return f"{task} {version} step {step}"


def configure(broker_url: str, result_backend: str, *,
              visibility_timeout_s: int | None = None) -> Celery:
    """Configure the workers' app (once per worker process, before it starts)."""
    return _apply_config(app, broker_url, result_backend, visibility_timeout_s)


def sender(broker_url: str, result_backend: str) -> Celery:
    """A fresh app for sending tasks by name from an API process. Fresh, because a Celery app
    keeps its first connection pool: reconfiguring a shared one would send to the old broker."""
    return _apply_config(Celery("kgmigrate-sender"), broker_url, result_backend, None)


def consumers(broker_url: str, result_backend: str, *, timeout_s: float,
              wanted: Sequence[str]) -> dict[str, list[str]]:
    """Which live workers consume which queues, as the workers themselves answer a broadcast
    (`active_queues`) within `timeout_s`: {queue: [worker names]}. Returns as soon as the first
    answer covers every `wanted` queue (the common case: one worker serves both), otherwise
    collects every answer for the whole timeout. A dead worker does not answer. A broker that
    cannot be reached is a KgmError naming it (a refused connection is not retried)."""
    app = sender(broker_url, result_backend)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2)
            found = _active_queues(app, connection, timeout_s, limit=1)
            if found and not set(wanted) <= found.keys():  # one answered: ask all of them
                found = _active_queues(app, connection, timeout_s, limit=None)
            return found
    except (OSError, KombuError, RedisError) as exc:
        raise KgmError(f"the broker {redact_url(broker_url)} does not answer "
                       f"({type(exc).__name__}: {exc})") from None
    finally:
        app.close()


def _active_queues(app: Celery, connection: Any, timeout_s: float, *, limit: int | None
                   ) -> dict[str, list[str]]:
    replies = app.control.inspect(timeout=timeout_s, limit=limit,
                                  connection=connection).active_queues() or {}
    found: dict[str, list[str]] = {}
    for worker, queues in sorted(replies.items()):
        for queue in queues or []:
            found.setdefault(str(queue.get("name")), []).append(str(worker))
    return found


def queued(app: Celery, queue: str) -> int:
    """How many messages wait in `queue`; not those a worker has taken (running, or held
    unacknowledged until they come back)."""
    with app.connection_for_write() as connection:
        return int(connection.default_channel.queue_declare(queue=queue).message_count)


RESTORE_SWEEP_S = 10
RESTORE_MUTEX_S = 60


def redelivery_bound_s(visibility_timeout_s: int) -> int:
    """How long after its worker died a task is delivered again at the latest, with a worker
    alive to take it: the visibility timeout, one sweep, and a sweep mutex left by a worker that
    died holding it."""
    return visibility_timeout_s + RESTORE_SWEEP_S + min(RESTORE_MUTEX_S, visibility_timeout_s)


def _apply_config(target: Celery, broker_url: str, result_backend: str,
                  visibility_timeout_s: int | None) -> Celery:
    timeout = visibility_timeout_s or load_settings().visibility_timeout_s
    target.conf.update(
        broker_url=broker_url,
        result_backend=result_backend,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Liveness: a task whose worker died comes back within `redelivery_bound_s`. Kombu
        # sweeps for expired unacknowledged tasks every interval x throttle seconds (its
        # defaults: 10 x 10); a worker SIGKILLed while holding the sweep's mutex blocks every
        # other worker's sweep until the mutex expires (its default: 300 s). The sweep is one
        # sorted-set range query: every 10 s costs nothing.
        broker_transport_options={"visibility_timeout": timeout,
                                  "unacked_restore_interval": RESTORE_SWEEP_S,
                                  "unacked_restore_throttle": 1,
                                  "unacked_mutex_expire": min(RESTORE_MUTEX_S, timeout)},
        result_backend_transport_options={"visibility_timeout": timeout},
        result_expires=7 * 24 * 3600,
        task_default_queue=CONTROL_QUEUE,
        task_routes={"workers.*": {"queue": BATCH_QUEUE},
                     "orchestrator.*": {"queue": CONTROL_QUEUE}},
        task_track_started=True,
        # events for Flower: tasks show up there once a worker receives them. Not when they
        # are sent: the sender's "task-sent" event carries the task's real name, not its
        # shadow, and Flower merges an event that arrives late over what it knows, so a
        # task's name flipped to `workers.apply_batch` when that event lost the race with the
        # worker's (seen in 1 of 48 tasks of a run, often)
        worker_send_task_events=True,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    return target
