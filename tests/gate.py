"""A hooks module for the tests (KGMIGRATE_HOOKS=tests.gate): holds a run before the step
numbered KGM_GATE_STEP starts, until the test opens the gate. It writes the file KGM_GATE
+ ".waiting" when it holds and waits for KGM_GATE + ".open" (at most 5 minutes), so a test can
write to the graph at a moment it knows: between two steps."""

import os

from kgmigrate import hooks
from tests.once import wait_at_gate


@hooks.on("before_step")
def _hold_before_the_step(event: hooks.Event) -> None:
    if event.step != int(os.environ["KGM_GATE_STEP"]):
        return
    gate = os.environ["KGM_GATE"]
    wait_at_gate(gate)
