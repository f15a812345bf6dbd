"""A hooks module for the tests (KGMIGRATE_HOOKS=tests.hold_first): the first delivery of step
1's batch 1 holds before its batch (until KGM_GATE + ".open", at most 5 minutes), after writing
its worker's process group into the file KGM_HOLD_FIRST: the test knows which worker holds it,
and can kill that worker whole."""

import os

from kgmigrate.monitoring import hooks
from tests.once import first_time, wait_at_gate


@hooks.on("before_batch")
def _hold_the_first_delivery(event: hooks.Event) -> None:
    if event.step != 1 or event.batch != 1:
        return
    if first_time("KGM_HOLD_FIRST", note=str(os.getpgid(0))):
        wait_at_gate(os.environ["KGM_GATE"])
