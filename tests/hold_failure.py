"""A hooks module for the tests (KGMIGRATE_HOOKS=tests.hold_failure): the control task that
fails a run holds once its failure is recorded, before it rolls the run back, until the test
opens KGM_GATE (so the test can stop the batch workers first: the rollback's restores then
wait in the queue, where the test can take one away)."""

import os

from kgmigrate.monitoring import hooks
from tests.once import wait_at_gate


@hooks.on("on_failure")
def _hold_before_the_rollback(event: hooks.Event) -> None:
    wait_at_gate(os.environ["KGM_GATE"])
