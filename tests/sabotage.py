"""A hooks module for the tests (KGMIGRATE_HOOKS=tests.sabotage): another client's write that
lands while a step runs, after its first batch commits and before the step's check. The
statement is in KGM_SABOTAGE; the file KGM_SABOTAGE_MARKER makes it run once."""

import os

from kgmigrate import hooks
from kgmigrate.runtime import current


@hooks.on("after_batch")
def _write_once_after_a_batch(event: hooks.Event) -> None:
    if event.status != "completed":
        return
    try:
        fd = os.open(os.environ["KGM_SABOTAGE_MARKER"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    current().backend.write(os.environ["KGM_SABOTAGE"])
