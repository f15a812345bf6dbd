"""A hooks module for the tests (KGMIGRATE_HOOKS=tests.sabotage): another client's write that
lands while a step runs, after its first batch commits and before the step's check. The
statement is in KGM_SABOTAGE; the file KGM_SABOTAGE_MARKER makes it run once."""

import os

from kgmigrate.monitoring import hooks
from kgmigrate.runtime.context import current
from tests.once import first_time


@hooks.on("after_batch")
def _write_once_after_a_batch(event: hooks.Event) -> None:
    if event.status != "completed":
        return
    if not first_time("KGM_SABOTAGE_MARKER"):
        return
    current().backend.write(os.environ["KGM_SABOTAGE"])
