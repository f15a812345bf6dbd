"""A hooks module for the tests (KGMIGRATE_HOOKS=tests.crash_once): the worker process that
first completes a batch kills itself with SIGKILL right after the batch's transaction has
committed and before its task is acknowledged: the worst moment for exactly-once. The file
named by KGM_CRASH_MARKER makes it happen once (and tells the test which batch it was)."""

import os
import signal

from kgmigrate.monitoring import hooks
from tests.once import first_time


@hooks.on("after_batch")
def _die_once_after_a_commit(event: hooks.Event) -> None:
    if event.status != "completed":
        return
    if not first_time("KGM_CRASH_MARKER", f"{event.run_id} {event.step} {event.batch}\n"):
        return
    os.kill(os.getpid(), signal.SIGKILL)
