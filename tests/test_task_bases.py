"""The task base classes carry what every task shares, in one place: here, that every control
task's log lines name its run, wherever its run id sits among its arguments."""

import inspect

import pytest
from celery import Celery

from kgmigrate.monitoring import logs
from kgmigrate.runtime.tasks import ControlTask
from orchestrator import tasks as control_tasks

CONTROL = [control_tasks.start_run, control_tasks.step_done, control_tasks.step_crashed,
           control_tasks.start_rollback, control_tasks.rollback_step_done,
           control_tasks.rollback_crashed]


@pytest.mark.parametrize("task", CONTROL, ids=lambda t: t.name)
def test_every_control_task_names_the_argument_that_is_its_run_id(task: ControlTask) -> None:
    assert isinstance(task, ControlTask)
    params = list(inspect.signature(task.run).parameters)
    if params[0] == "args":  # an error callback: Celery's failure first, then our arguments
        assert task.run_arg == -2
    else:
        assert params[task.run_arg] == "run_id"


@pytest.mark.parametrize(("run_arg", "args"), [
    (0, ("run_7", True)),  # start_rollback(run_id, force)
    (1, ([{"status": "completed"}], "run_7", "step_1")),  # a chord callback
    (-2, ("task-id", "run_7", "step_1")),  # an error callback
])
def test_a_control_task_logs_in_its_runs_context(run_arg: int, args: tuple[object, ...]
                                                  ) -> None:
    app = Celery("test_task_bases")
    seen = []

    @app.task(base=ControlTask, run_arg=run_arg)  # type: ignore[untyped-decorator]
    def probe(*_: object) -> None:
        seen.append(logs.current().get("run_id"))

    probe(*args)
    assert seen == ["run_7"]
    assert logs.current().get("run_id") is None  # the context ends with the task
