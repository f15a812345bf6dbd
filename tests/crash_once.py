"""A hooks module for the tests (KGMIGRATE_HOOKS=tests.crash_once): the worker process that
first completes a batch kills itself with SIGKILL right after the batch's transaction has
committed and before its task is acknowledged: the worst moment for exactly-once. The file
named by KGM_CRASH_MARKER makes it happen once (and tells the test which batch it was)."""

import os
import signal

from kgmigrate import hooks


@hooks.on("after_batch")
def _die_once_after_a_commit(event: hooks.Event) -> None:
    if event.status != "completed":
        return
    try:
        fd = os.open(os.environ["KGM_CRASH_MARKER"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, f"{event.run_id} {event.step} {event.batch}\n".encode())
    os.fsync(fd)
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
