"""A hooks module for the tests (KGMIGRATE_HOOKS=tests.hold_publish): the control task that
sends a launch holds once, in the middle of sending it, so the test can kill its worker there.

It holds just before publishing the KGM_HOLD_NTH task named KGM_HOLD_TASK (of step
KGM_HOLD_STEP when set): the tasks before it are on the broker, the rest are not, and the
chord's size (which Celery stores before its last task) is not either. The worker's process
group goes into the file KGM_HOLD_FIRST; the hold lasts until KGM_GATE + ".open"."""

import os
from typing import Any

from celery.signals import before_task_publish

from tests.once import first_time, wait_at_gate

_sent: dict[str, int] = {}


@before_task_publish.connect
def _hold_mid_launch(sender: str | None = None, body: Any = None, **_: Any) -> None:
    if sender != os.environ["KGM_HOLD_TASK"]:
        return
    step = os.environ.get("KGM_HOLD_STEP")
    if step is not None and str(body[1].get("step")) != step:  # body: (args, kwargs, embed)
        return
    _sent[sender] = _sent.get(sender, 0) + 1
    if (_sent[sender] == int(os.environ["KGM_HOLD_NTH"])
            and first_time("KGM_HOLD_FIRST", note=str(os.getpgid(0)))):
        wait_at_gate(os.environ["KGM_GATE"])
