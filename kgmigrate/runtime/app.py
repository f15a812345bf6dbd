"""The Celery app both sides share: JSON only, late acks, two queues, tasks addressed by name.

Batch tasks (data plane, `workers`) go to the batch queue, which is scaled horizontally;
control tasks (`orchestrator`) go to the control queue. Neither side imports the other: they
send tasks by name (`app.signature("workers.apply_batch", ...)`). A worker process loads the
task modules of the queues it serves, by module name.
"""


from celery import Celery

from kgmigrate.runtime.settings import load_settings

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
