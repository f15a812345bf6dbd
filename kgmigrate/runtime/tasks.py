"""What tasks share, in one place (as Dramatiq's middleware): every batch and restore task the
log context of its run and step, the retry of a transient graph error with exponential backoff,
and the name Flower shows it under; every control task the log context of its run."""

import logging
from typing import Any

from celery import Task

from kgmigrate.errors import BackendError
from kgmigrate.monitoring import logs
from kgmigrate.runtime.app import shown_name

MAX_RETRIES = 5
log = logging.getLogger("workers.tasks")


class StepTask(Task):  # type: ignore[misc]
    """A task of one step, called as `(run_id, step_id, [seq, ...], **labels)`: `labels`
    (version, step, keys) are there to read well in Flower and in the logs."""

    max_retries = MAX_RETRIES

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        seq = args[2] if len(args) > 2 and isinstance(args[2], int) else None
        with logs.context(run_id=args[0] if args else None, version=kwargs.get("version"),
                          step=kwargs.get("step"), batch=seq,
                          rollback=kwargs.get("rollback")):
            try:
                return super().__call__(*args, **kwargs)
            except BackendError as exc:  # the graph failed us, not the task: try again
                log.warning("%s: transient error, retry %s: %s", self.name,
                            self.request.retries + 1, exc)
                raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries)) from exc

    def shadow_name(self, args: Any, kwargs: dict[str, Any], options: Any) -> str | None:
        """Retries keep the name Flower shows: Celery computes a retry's `shadow` from here,
        not from the message it retries."""
        if "version" in kwargs and "step" in kwargs:
            return shown_name(self.name, kwargs["version"], kwargs["step"])
        return None


class ControlTask(Task):  # type: ignore[misc]
    """A control task (plan, callbacks, rollback steps): its log lines carry its run id. Where
    that id sits differs per task (a chord callback gets the results first, an error callback
    Celery's failure first), so each task names the position: `run_arg`, counted from the end
    when negative. Control tasks are not retried: a failed one is settled by its run's state."""

    run_arg = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        index = self.run_arg if self.run_arg >= 0 else len(args) + self.run_arg
        run_id = args[index] if 0 <= index < len(args) else None
        with logs.context(run_id=run_id):
            return super().__call__(*args, **kwargs)
