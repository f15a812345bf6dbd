"""A hooks module for the tests (KGMIGRATE_HOOKS=tests.hold): in step 1, the first delivery of
batch 1 and every delivery of batch 2 wait before their batch until the test opens their gate
(KGM_HOLD + ".1.open" or ".2.open"; at most 5 minutes). A held delivery outlives the broker's
visibility timeout, so the broker delivers it again while it still runs: batch 1 then reports
twice, with batch 2 still running. Each held delivery touches KGM_HOLD + ".<batch>.waiting"."""

import os

from kgmigrate import hooks
from tests.once import first_time, wait_at_gate


@hooks.on("before_batch")
def _hold(event: hooks.Event) -> None:
    if event.step != 1 or event.batch not in (1, 2):
        return
    if event.batch == 1 and not first_time("KGM_HOLD_FIRST"):
        return
    gate = f"{os.environ['KGM_HOLD']}.{event.batch}"
    wait_at_gate(gate)
