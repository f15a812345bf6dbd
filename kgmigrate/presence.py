"""Whether any worker serves the queues a run needs, and saying so when none does.

A run is only records in the ledger and messages on the broker: nothing happens until a worker
takes them. Without one, `upgrade` used to print nothing while its run stayed `pending`
holding the migration lock. So the verbs that start a run ask the workers first (Celery's
broadcast `active_queues`: a dead worker does not answer) and refuse, before recording
anything or taking the lock, when no worker consumes a queue the run needs; and whoever
follows or looks at a run that has not ended (`upgrade`, `status`, `status --watch`) is told
when it waits for workers, with the command that starts one.

Every run needs both queues: the control queue starts it and advances it step by step, the
batch queue applies (and restores) its batches.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kgmigrate.connect import Endpoints
from kgmigrate.errors import KgmError
from kgmigrate.model.records import LockInfo, RunRecord
from kgmigrate.model.status import ENDED
from kgmigrate.runtime.app import BATCH_QUEUE, CONTROL_QUEUE, consumers
from kgmigrate.runtime.settings import redact_url

RUN_QUEUES = (BATCH_QUEUE, CONTROL_QUEUE)
START_ONE = "`kgmigrate worker`"


@dataclass(frozen=True)
class Workers:
    """What the workers answered: the queues each live worker consumes, on which broker; or
    why the broker could not be asked (`error`)."""

    broker: str  # without credentials
    serving: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # queue -> workers
    error: str | None = None

    @property
    def missing(self) -> tuple[str, ...]:
        """The queues a run needs that no live worker consumes (none: unknown, see `error`)."""
        if self.error is not None:
            return ()
        return tuple(q for q in RUN_QUEUES if not self.serving.get(q))

    @property
    def none_consumes(self) -> str:
        """`none consumes kgm.batches or kgm.control (broker redis://...)`."""
        return f"none consumes {' or '.join(self.missing)} (broker {self.broker})"

    def as_json(self) -> dict[str, object]:
        return {"broker": self.broker, "missing_queues": list(self.missing),
                "serving": {q: list(w) for q, w in self.serving.items()},
                "error": self.error}


def ask(endpoints: Endpoints, *, timeout_s: float) -> Workers:
    """Ask the workers on the endpoints' broker which queues they consume (at most
    `timeout_s`, less when the first answer covers both queues)."""
    broker = endpoints.broker_url.get_secret_value()
    shown = redact_url(broker)
    try:
        found = consumers(broker, endpoints.result_backend.get_secret_value(),
                          timeout_s=timeout_s, wanted=RUN_QUEUES)
    except KgmError as exc:
        return Workers(shown, error=str(exc))
    return Workers(shown, {q: tuple(w) for q, w in found.items()})


class NoWorkersError(KgmError):
    """A run was asked for while no worker serves a queue it needs: refused before anything
    was recorded or locked."""

    def __init__(self, workers: Workers) -> None:
        if workers.error is not None:
            text = (f"{workers.error}: no worker can take the run; nothing was recorded and "
                    "the migration lock was not taken")
        else:
            text = (f"no worker consumes {' or '.join(workers.missing)} (broker "
                    f"{workers.broker}): start one with {START_ONE}, or pass --local-workers N; "
                    "nothing was recorded and the migration lock was not taken "
                    "(--allow-no-workers queues the run to wait for one)")
        super().__init__(text)
        self.workers = workers


def require(endpoints: Endpoints, *, timeout_s: float) -> Workers:
    """The workers, when every queue a run needs has one; NoWorkersError otherwise."""
    workers = ask(endpoints, timeout_s=timeout_s)
    if workers.error is not None or workers.missing:
        raise NoWorkersError(workers)
    return workers


def waiting(run: RunRecord) -> bool:
    """Whether the run can still move on its own (so it needs workers): not ended."""
    return run.status not in ENDED


def hint(run: RunRecord, workers: Workers, lock: LockInfo | None) -> str:
    """One line: the run waits for workers, the command that starts one, and the lock it holds
    meanwhile with how to give the run up instead."""
    line = (f"cannot tell whether the run has workers: {workers.error}"
            if workers.error is not None else
            f"waiting for workers: {workers.none_consumes}; start one with {START_ONE}")
    if lock is not None and lock.run_id == run.id:
        line += (f". Meanwhile run {run.id} holds the migration lock (lease until "
                 f"{lock.lease_until:%H:%M:%S} UTC); to give it up instead: "
                 f"`kgmigrate abandon {run.id} --reason ...`")
    return line


def progress_mark(run: RunRecord) -> tuple[object, ...]:
    """What changes whenever a worker does something the ledger shows."""
    return (run.status, len(run.history),
            tuple((s.status, s.batches_total, s.batches_done, s.entities_done)
                  for s in run.steps))


class WorkerWatch:
    """Reads a followed run's records as they come (`wait`'s `on_progress`) and returns a hint
    line when the run waits for workers: once the run has shown no progress for `quiet_s`
    (or at the first record, `at_once`), it asks the workers; when none serves a queue the
    run needs, the hint is returned once (again only if that changes, e.g. they came back and
    died). A run that moves has workers, so it is never asked about while it moves."""

    def __init__(self, ask_workers: Callable[[], Workers],
                 describe: Callable[[RunRecord, Workers], str], *, quiet_s: float,
                 at_once: bool = False, told: Workers | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ask, self._describe, self.quiet_s = ask_workers, describe, quiet_s
        self._due_now, self._clock = at_once, clock
        self._mark: tuple[object, ...] | None = None
        self._since = clock()
        self._told = _told(told) if told is not None else None

    def observe(self, run: RunRecord) -> str | None:
        now = self._clock()
        mark = progress_mark(run)
        if mark != self._mark:
            if self._mark is not None:
                self._told = None  # it moved: whatever was missing is back
            self._mark, self._since = mark, now
        if not waiting(run) or not (self._due_now or now - self._since >= self.quiet_s):
            return None
        self._due_now, self._since = False, now
        workers = self._ask()
        told = _told(workers)
        if told == self._told:
            return None
        self._told = told
        return None if told == () else self._describe(run, workers)


def _told(workers: Workers) -> tuple[str, ...]:
    return (workers.error,) if workers.error is not None else workers.missing


__all__ = ["RUN_QUEUES", "NoWorkersError", "WorkerWatch", "Workers", "ask",
           "hint", "require", "waiting"]
